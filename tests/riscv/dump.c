/* rt_dump: prints the register file saved by a gen-random block (see gen-random.c). */
#include "rt.h"

static unsigned block;

void rt_dump(const uint64_t *save)
{
    rt_puts("block ");
    rt_hex(block++, 4);
    rt_putc('\n');
    for (int r = 1; r < 31; r++) {
        if (r >= 2 && r <= 4)
            continue;
        rt_putc('x');
        rt_hex(r, 2);
        rt_putc('=');
        rt_hex64(save[r]);
        rt_putc(r % 4 == 3 ? '\n' : ' ');
    }
    rt_putc('\n');
    for (int r = 0; r < 32; r++) {
        rt_putc('f');
        rt_hex(r, 2);
        rt_putc('=');
        rt_hex64(save[32 + r]);
        rt_putc(r % 4 == 3 ? '\n' : ' ');
    }
    rt_puts("fcsr=");
    rt_hex(save[64], 3);
    rt_putc('\n');
}

void rt_flush_all(void)
{
    rt_flush();
}
