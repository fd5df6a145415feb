/* Output helpers for the differential test programs (no libc). */
#pragma once
#include <stdint.h>

long rt_write(int fd, const void *buf, unsigned long len);
void rt_exit(int code) __attribute__((noreturn));

static char rt_buf[4096];
static unsigned rt_len;

static inline void rt_flush(void)
{
    if (rt_len)
        rt_write(1, rt_buf, rt_len);
    rt_len = 0;
}

static inline void rt_putc(char c)
{
    if (rt_len == sizeof(rt_buf))
        rt_flush();
    rt_buf[rt_len++] = c;
}

static inline void rt_puts(const char *s)
{
    while (*s)
        rt_putc(*s++);
}

static inline void rt_hex(uint64_t v, int digits)
{
    for (int i = digits - 1; i >= 0; i--)
        rt_putc("0123456789abcdef"[(v >> (i * 4)) & 15]);
}

static inline void rt_hex64(uint64_t v) { rt_hex(v, 16); }
