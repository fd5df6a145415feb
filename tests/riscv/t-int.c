/* Differential test: integer ALU, M extension (incl. division by zero and overflow),
 * loads/stores of every width and sign. Output: one line per operation. */
#include "rt.h"

static const uint64_t vals[] = {
    0, 1, 2, 3, 7, 31, 32, 63, 64, 0x7fffffff, 0x80000000, 0xffffffff, 0x100000000ULL,
    0x7fffffffffffffffULL, 0x8000000000000000ULL, 0xffffffffffffffffULL, 0xfffffffffffffffeULL,
    0xffffffff80000000ULL, 0xffffffff7fffffffULL, 0x123456789abcdef0ULL, 0xfedcba9876543210ULL,
    0x00000000deadbeefULL, 0x8000000080000000ULL, 0x5555555555555555ULL, 0xaaaaaaaaaaaaaaaaULL,
    0x0000000100000001ULL,
};
#define NV (sizeof(vals) / sizeof(vals[0]))

#define RR(op) static uint64_t op_##op(uint64_t a, uint64_t b) \
    { uint64_t r; __asm__ volatile(#op " %0, %1, %2" : "=r"(r) : "r"(a), "r"(b)); return r; }
RR(add) RR(sub) RR(sll) RR(slt) RR(sltu) RR(xor) RR(srl) RR(sra) RR(or) RR(and)
RR(addw) RR(subw) RR(sllw) RR(srlw) RR(sraw)
RR(mul) RR(mulh) RR(mulhsu) RR(mulhu) RR(div) RR(divu) RR(rem) RR(remu)
RR(mulw) RR(divw) RR(divuw) RR(remw) RR(remuw)

#define RI(id, op, imm) static uint64_t op_##id(uint64_t a) \
    { uint64_t r; __asm__ volatile(#op " %0, %1, " #imm : "=r"(r) : "r"(a)); return r; }
RI(i0, addi, 0) RI(i1, addi, 2047) RI(i2, addi, -2048) RI(i3, slti, -1) RI(i4, sltiu, -1) RI(i5, xori, -1) RI(i6, ori, 1365) RI(i7, andi, -16) RI(i8, slli, 0) RI(i9, slli, 63) RI(i10, srli, 1) RI(i11, srli, 63) RI(i12, srai, 33) RI(i13, srai, 63) RI(i14, addiw, 0) RI(i15, addiw, -1) RI(i16, slliw, 31) RI(i17, srliw, 31) RI(i18, sraiw, 31) RI(i19, sraiw, 0) RI(i20, srliw, 0)

static const struct { const char *name; uint64_t (*f)(uint64_t, uint64_t); } rr[] = {
#define E(op) { #op, op_##op },
    E(add) E(sub) E(sll) E(slt) E(sltu) E(xor) E(srl) E(sra) E(or) E(and)
    E(addw) E(subw) E(sllw) E(srlw) E(sraw)
    E(mul) E(mulh) E(mulhsu) E(mulhu) E(div) E(divu) E(rem) E(remu)
    E(mulw) E(divw) E(divuw) E(remw) E(remuw)
#undef E
};
static const struct { const char *name; uint64_t (*f)(uint64_t); } ri[] = {
#define E(id, op, imm) { #op " " #imm, op_##id },
    E(i0, addi, 0) E(i1, addi, 2047) E(i2, addi, -2048) E(i3, slti, -1) E(i4, sltiu, -1) E(i5, xori, -1) E(i6, ori, 1365) E(i7, andi, -16) E(i8, slli, 0) E(i9, slli, 63) E(i10, srli, 1) E(i11, srli, 63) E(i12, srai, 33) E(i13, srai, 63) E(i14, addiw, 0) E(i15, addiw, -1) E(i16, slliw, 31) E(i17, srliw, 31) E(i18, sraiw, 31) E(i19, sraiw, 0) E(i20, srliw, 0)
#undef E
};

static uint8_t buf[64] __attribute__((aligned(16)));

int main(void)
{
    for (unsigned k = 0; k < sizeof(rr) / sizeof(rr[0]); k++) {
        for (unsigned i = 0; i < NV; i++) {
            for (unsigned j = 0; j < NV; j++) {
                rt_puts(rr[k].name);
                rt_putc(' ');
                rt_hex64(vals[i]);
                rt_putc(' ');
                rt_hex64(vals[j]);
                rt_puts(" = ");
                rt_hex64(rr[k].f(vals[i], vals[j]));
                rt_putc('\n');
            }
        }
    }
    for (unsigned k = 0; k < sizeof(ri) / sizeof(ri[0]); k++) {
        for (unsigned i = 0; i < NV; i++) {
            rt_puts(ri[k].name);
            rt_putc(' ');
            rt_hex64(vals[i]);
            rt_puts(" = ");
            rt_hex64(ri[k].f(vals[i]));
            rt_putc('\n');
        }
    }
    for (unsigned i = 0; i < NV; i++) {
        uint64_t r[7];
        volatile uint64_t *p = (volatile uint64_t *)buf;
        p[0] = vals[i];
        p[1] = ~vals[i];
        __asm__ volatile("lb %0, 1(%7)\n lbu %1, 3(%7)\n lh %2, 2(%7)\n lhu %3, 6(%7)\n"
                         "lw %4, 4(%7)\n lwu %5, 4(%7)\n ld %6, 8(%7)"
                         : "=&r"(r[0]), "=&r"(r[1]), "=&r"(r[2]), "=&r"(r[3]), "=&r"(r[4]), "=&r"(r[5]), "=&r"(r[6])
                         : "r"(buf) : "memory");
        __asm__ volatile("sb %0, 17(%1)\n sh %0, 18(%1)\n sw %0, 20(%1)\n sd %0, 24(%1)"
                         :: "r"(vals[i]), "r"(buf) : "memory");
        rt_puts("mem");
        for (unsigned k = 0; k < 7; k++) {
            rt_putc(' ');
            rt_hex64(r[k]);
        }
        rt_putc(' ');
        rt_hex64(p[2]);
        rt_putc(' ');
        rt_hex64(p[3]);
        rt_putc('\n');
    }
    rt_flush();
    return 0;
}
