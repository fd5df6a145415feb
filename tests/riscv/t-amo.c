/* Differential test: A extension, single hart: every AMO on interesting values,
 * LR/SC success and the deterministic failure cases. */
#include "rt.h"

static const uint64_t vals[] = {
    0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0x7fffffffffffffffULL, 0x8000000000000000ULL,
    0xffffffffffffffffULL, 0x123456789abcdef0ULL, 0xffffffff80000001ULL,
};
#define NV (sizeof(vals) / sizeof(vals[0]))

static volatile uint64_t mem[4] __attribute__((aligned(16)));

#define AMO(id, op) static void t_##id(uint64_t a, uint64_t b, uint64_t *old, uint64_t *now) \
    { mem[0] = a; mem[1] = a; uint64_t r; \
      __asm__ volatile(#op " %0, %1, (%2)" : "=r"(r) : "r"(b), "r"(mem) : "memory"); \
      *old = r; *now = mem[0]; }
AMO(amoswap_w, amoswap.w) AMO(amoadd_w, amoadd.w) AMO(amoxor_w, amoxor.w) AMO(amoand_w, amoand.w) AMO(amoor_w, amoor.w)
AMO(amomin_w, amomin.w) AMO(amomax_w, amomax.w) AMO(amominu_w, amominu.w) AMO(amomaxu_w, amomaxu.w)
AMO(amoswap_d, amoswap.d) AMO(amoadd_d, amoadd.d) AMO(amoxor_d, amoxor.d) AMO(amoand_d, amoand.d) AMO(amoor_d, amoor.d)
AMO(amomin_d, amomin.d) AMO(amomax_d, amomax.d) AMO(amominu_d, amominu.d) AMO(amomaxu_d, amomaxu.d)
AMO(amoadd_w_aq, amoadd.w.aq) AMO(amoswap_d_aqrl, amoswap.d.aqrl)

int main(void)
{
    static const struct { const char *n; void (*f)(uint64_t, uint64_t, uint64_t *, uint64_t *); } t[] = {
#define E(id, op) { #op, t_##id },
        E(amoswap_w, amoswap.w) E(amoadd_w, amoadd.w) E(amoxor_w, amoxor.w) E(amoand_w, amoand.w) E(amoor_w, amoor.w)
        E(amomin_w, amomin.w) E(amomax_w, amomax.w) E(amominu_w, amominu.w) E(amomaxu_w, amomaxu.w)
        E(amoswap_d, amoswap.d) E(amoadd_d, amoadd.d) E(amoxor_d, amoxor.d) E(amoand_d, amoand.d) E(amoor_d, amoor.d)
        E(amomin_d, amomin.d) E(amomax_d, amomax.d) E(amominu_d, amominu.d) E(amomaxu_d, amomaxu.d)
        E(amoadd_w_aq, amoadd.w.aq) E(amoswap_d_aqrl, amoswap.d.aqrl)
#undef E
    };
    for (unsigned k = 0; k < sizeof(t) / sizeof(t[0]); k++)
        for (unsigned i = 0; i < NV; i++)
            for (unsigned j = 0; j < NV; j++) {
                uint64_t old, now;
                t[k].f(vals[i], vals[j], &old, &now);
                rt_puts(t[k].n);
                rt_putc(' ');
                rt_hex64(vals[i]);
                rt_putc(' ');
                rt_hex64(vals[j]);
                rt_puts(" -> ");
                rt_hex64(old);
                rt_putc(' ');
                rt_hex64(now);
                rt_putc('\n');
            }
    for (unsigned i = 0; i < NV; i++) {
        uint64_t r1, r2, r3, r4, r5;
        mem[0] = vals[i];
        /* LR/SC pair succeeds */
        __asm__ volatile("lr.d %0, (%2)\n addi %0, %0, 1\n sc.d %1, %0, (%2)"
                         : "=&r"(r1), "=&r"(r2) : "r"(mem) : "memory");
        /* LR.W sign-extends, SC.W stores 32 bits */
        __asm__ volatile("lr.w.aq %0, (%2)\n sc.w.rl %1, %0, (%2)"
                         : "=&r"(r3), "=&r"(r4) : "r"(mem) : "memory");
        /* SC to another address than the reservation fails */
        __asm__ volatile("lr.d %0, (%1)\n sc.d %0, %0, (%2)" : "=&r"(r5) : "r"(mem), "r"(mem + 1) : "memory");
        rt_puts("lrsc ");
        rt_hex64(r1); rt_putc(' ');
        rt_hex64(r2); rt_putc(' ');
        rt_hex64(r3); rt_putc(' ');
        rt_hex64(r4); rt_putc(' ');
        rt_hex64(r5 != 0); rt_putc(' ');
        rt_hex64(mem[0]); rt_putc('\n');
    }
    rt_flush();
    return 0;
}
