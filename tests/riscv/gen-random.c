/* gen-random: writes a deterministic (seeded) random RV64GC instruction stream as an
 * assembly file.  Blocks of random integer, M, A, F and D instructions (static and dynamic
 * rounding modes, NaN-boxed and improperly boxed singles, loads/stores/AMOs on a scratch
 * buffer, short forward branches) each end in a call to rt_dump(), which prints every
 * register and fflags.  Run the program under qemu-riscv64 and rv-run, compare the output.
 *   gen-random SEED BLOCKS > out.S
 * Reserved: x2 (sp), x3 (gp), x4 (tp), x30 (address temp), x31 (scratch base). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t rng_state;

static uint64_t rnd(void)
{
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static unsigned rn(unsigned n) { return (unsigned)(rnd() % n); }

/* integer registers the stream may write; x8-x15 twice so many encodings compress */
static const int xregs[] = { 1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
                             22, 23, 24, 25, 26, 27, 28, 29, 8, 9, 10, 11, 12, 13, 14, 15 };
static int xr(void) { return xregs[rn(sizeof(xregs) / sizeof(xregs[0]))]; }
static int xs(void) { return rn(8) == 0 ? 0 : xr(); }
/* doubles live mostly in f0-f15, singles in f16-f31, so values stay interesting */
static const char *cur_fmt = "d";
static int fr(void)
{
    if (rn(8) == 0)
        return rn(32);
    if (rn(3) == 0)
        return 8 + rn(8) + (*cur_fmt == 's' ? 8 : 0);
    return rn(16) + (*cur_fmt == 's' ? 16 : 0);
}

static const char *rm(void)
{
    static const char *const m[] = { "rne", "rtz", "rdn", "rup", "rmm", "dyn" };
    return m[rn(6)];
}

static const uint64_t fpvals[] = {
    0x0000000000000000ULL, 0x8000000000000000ULL, 0x3ff0000000000000ULL, 0xbff0000000000000ULL,
    0x0000000000000001ULL, 0x800fffffffffffffULL, 0x0010000000000000ULL, 0x7fefffffffffffffULL,
    0x7ff0000000000000ULL, 0xfff0000000000000ULL, 0x7ff8000000000000ULL, 0x7ff4000000000001ULL,
    0x3ff0000000000001ULL, 0x3ca0000000000000ULL, 0x400921fb54442d18ULL, 0x43e0000000000000ULL,
    0xffffffff00000000ULL, 0xffffffff80000000ULL, 0xffffffff3f800000ULL, 0xffffffffbf800000ULL,
    0xffffffff00000001ULL, 0xffffffff807fffffULL, 0xffffffff00800000ULL, 0xffffffff7f7fffffULL,
    0xffffffff7f800000ULL, 0xffffffffff800000ULL, 0xffffffff7fc00000ULL, 0xffffffff7fa00001ULL,
    0xffffffff3f800001ULL, 0xffffffff33800000ULL, 0xffffffff40490fdbULL, 0x000000003f800000ULL,
};
#define NFPV (sizeof(fpvals) / sizeof(fpvals[0]))

static void gen_insn(void)
{
    static const char *const rr[] = { "add", "sub", "sll", "slt", "sltu", "xor", "srl", "sra", "or",
        "and", "addw", "subw", "sllw", "srlw", "sraw", "mul", "mulh", "mulhsu", "mulhu", "div",
        "divu", "rem", "remu", "mulw", "divw", "divuw", "remw", "remuw" };
    static const char *const ri[] = { "addi", "slti", "sltiu", "xori", "ori", "andi", "addiw" };
    static const char *const sh[] = { "slli", "srli", "srai" };
    static const char *const shw[] = { "slliw", "srliw", "sraiw" };
    static const char *const ld[] = { "lb", "lh", "lw", "ld", "lbu", "lhu", "lwu" };
    static const char *const st[] = { "sb", "sh", "sw", "sd" };
    static const char *const amo[] = { "amoswap", "amoadd", "amoxor", "amoand", "amoor", "amomin",
        "amomax", "amominu", "amomaxu" };
    static const char *const fbin[] = { "fadd", "fsub", "fmul", "fdiv" };
    static const char *const fnr[] = { "fmin", "fmax", "fsgnj", "fsgnjn", "fsgnjx" };
    static const char *const fcmp[] = { "feq", "flt", "fle" };
    static const char *const fma[] = { "fmadd", "fmsub", "fnmadd", "fnmsub" };
    static const char *const toi[] = { "w", "wu", "l", "lu" };
    const char *fmt = rn(2) ? "d" : "s";
    cur_fmt = fmt;

    switch (rn(24)) {
    case 0: case 1: case 2: case 3:
        printf("    %s x%d, x%d, x%d\n", rr[rn(28)], xr(), xs(), xs());
        break;
    case 4: case 5: {
        int imm = (int)rn(4096) - 2048;
        if (rn(3) == 0)
            imm = (int)rn(64) - 32;
        int d = xr();
        printf("    %s x%d, x%d, %d\n", ri[rn(7)], d, rn(3) ? d : xs(), imm);
        break;
    }
    case 6: {
        int d = xr();
        printf("    %s x%d, x%d, %u\n", sh[rn(3)], d, rn(2) ? d : xs(), rn(64));
        printf("    %s x%d, x%d, %u\n", shw[rn(3)], xr(), xs(), rn(32));
        break;
    }
    case 7:
        if (rn(2))
            printf("    lui x%d, %u\n", xr(), rn(1 << 20));
        else
            printf("    auipc x%d, %u\n", xr(), rn(1 << 20));
        break;
    case 8: {
        unsigned k = rn(7), size = 1u << (k == 6 ? 2 : k % 4);
        printf("    %s x%d, %u(x31)\n", ld[k], xr(), rn(2048 / size) * size);
        break;
    }
    case 9: {
        unsigned k = rn(4), size = 1u << k;
        printf("    %s x%d, %u(x31)\n", st[k], xs(), rn(2048 / size) * size);
        break;
    }
    case 10: {
        unsigned w = rn(2);
        printf("    addi x30, x31, %u\n", rn(256) * 8);
        printf("    %s.%s x%d, x%d, (x30)\n", amo[rn(9)], w ? "w" : "d", xr(), xs());
        break;
    }
    case 11: {
        unsigned w = rn(2);
        int d = xr();
        printf("    addi x30, x31, %u\n", rn(256) * 8);
        printf("    lr.%s x%d, (x30)\n", w ? "w" : "d", d);
        if (rn(4) == 0)
            printf("    addi x30, x30, 8\n");
        printf("    sc.%s x%d, x%d, (x30)\n", w ? "w" : "d", xr(), xs());
        break;
    }
    case 12: {
        static const char *const br[] = { "beq", "bne", "blt", "bge", "bltu", "bgeu" };
        printf("    %s x%d, x%d, 1f\n", br[rn(6)], xs(), xs());
        printf("    addi x%d, x%d, %d\n", xr(), xs(), (int)rn(100));
        printf("    xor x%d, x%d, x%d\n1:\n", xr(), xs(), xs());
        break;
    }
    case 13: case 14: case 15:
        printf("    %s.%s f%d, f%d, f%d, %s\n", fbin[rn(4)], fmt, fr(), fr(), fr(), rm());
        break;
    case 16:
        printf("    %s.%s f%d, f%d, f%d, f%d, %s\n", fma[rn(4)], fmt, fr(), fr(), fr(), fr(), rm());
        break;
    case 17:
        if (rn(2))
            printf("    fsqrt.%s f%d, f%d, %s\n", fmt, fr(), fr(), rm());
        else
            printf("    %s.%s f%d, f%d, f%d\n", fnr[rn(5)], fmt, fr(), fr(), fr());
        break;
    case 18:
        if (rn(2))
            printf("    %s.%s x%d, f%d, f%d\n", fcmp[rn(3)], fmt, xr(), fr(), fr());
        else
            printf("    fclass.%s x%d, f%d\n", fmt, xr(), fr());
        break;
    case 19:
        printf("    fcvt.%s.%s x%d, f%d, %s\n", toi[rn(4)], fmt, xr(), fr(), rm());
        break;
    case 20: {
        unsigned k = rn(4);
        if (*fmt == 'd' && k == 0)
            printf("    fcvt.d.w f%d, x%d\n", fr(), xs());
        else if (*fmt == 'd' && k == 1)
            printf("    fcvt.d.wu f%d, x%d\n", fr(), xs());
        else
            printf("    fcvt.%s.%s f%d, x%d, %s\n", fmt, toi[k], fr(), xs(), rm());
        break;
    }
    case 21:
        switch (rn(6)) {
        case 0: printf("    fcvt.s.d f%d, f%d, %s\n", fr(), fr(), rm()); break;
        case 1: printf("    fcvt.d.s f%d, f%d\n", fr(), fr()); break;
        case 2: printf("    fmv.x.d x%d, f%d\n", xr(), fr()); break;
        case 3: printf("    fmv.x.w x%d, f%d\n", xr(), fr()); break;
        case 4: printf("    fmv.d.x f%d, x%d\n", fr(), xs()); break;
        default: printf("    fmv.w.x f%d, x%d\n", fr(), xs()); break;
        }
        break;
    case 22:
        switch (rn(5)) {
        case 0: printf("    flw f%d, %u(x31)\n", fr(), rn(512) * 4); break;
        case 1: printf("    fld f%d, %u(x31)\n", fr(), rn(256) * 8); break;
        case 2: printf("    fsw f%d, %u(x31)\n", fr(), rn(512) * 4); break;
        case 3: printf("    fsd f%d, %u(x31)\n", fr(), rn(256) * 8); break;
        default:
            printf("    la x30, fpvals\n    fld f%d, %u(x30)\n", fr(), rn(NFPV) * 8);
            break;
        }
        break;
    default:
        if (rn(2))
            printf("    fsrmi %u\n", rn(5));
        else
            printf("    csrrw x%d, fflags, x%d\n", xr(), xs());
        break;
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: gen-random SEED BLOCKS > out.S\n");
        return 2;
    }
    rng_state = strtoull(argv[1], NULL, 0);
    unsigned blocks = (unsigned)strtoul(argv[2], NULL, 0);

    printf("/* generated by gen-random %s %s */\n", argv[1], argv[2]);
    printf("    .data\n    .balign 8\nfpvals:\n");
    for (unsigned i = 0; i < NFPV; i++)
        printf("    .dword 0x%016llx\n", (unsigned long long)fpvals[i]);
    printf("initx:\n");
    for (unsigned i = 0; i < 32; i++) {
        uint64_t v = rnd();
        switch (rn(4)) {
        case 0: v = (uint64_t)(int64_t)(int32_t)v; break;
        case 1: v &= 0xff; break;
        default: break;
        }
        printf("    .dword 0x%016llx\n", (unsigned long long)v);
    }
    printf("    .balign 16\nregsave:\n    .zero 528\nscratch:\n");
    for (unsigned i = 0; i < 2048 / 8; i++)
        printf("    .dword 0x%016llx\n", (unsigned long long)rnd());
    printf("    .text\n    .globl main\nmain:\n");
    printf("    la x31, scratch\n    la x30, initx\n");
    for (int r = 1; r < 30; r++)
        if (r < 2 || r > 4)
            printf("    ld x%d, %d(x30)\n", r, r * 8);
    printf("    la x30, fpvals\n");
    for (int r = 0; r < 32; r++)
        printf("    fld f%d, %d(x30)\n", r, (int)((r * 7) % NFPV) * 8);
    printf("    fsflags x0\n    fsrmi %u\n", rn(5));
    for (unsigned b = 0; b < blocks; b++) {
        unsigned n = 8 + rn(24);
        printf("    la x30, fpvals\n");
        for (unsigned i = 0; i < 6; i++) {
            unsigned r = rn(32), v = r < 16 ? rn(16) : 16 + rn(16);
            if (rn(10) == 0)
                v = rn(NFPV);
            printf("    fld f%u, %u(x30)\n", r, v * 8);
        }
        for (unsigned i = 0; i < n; i++)
            gen_insn();
        printf("    call dump_all\n");
    }
    printf("    call rt_flush_all\n    li a0, 0\n    call rt_exit\n");

    /* dump_all: saves everything to regsave, prints it, restores it */
    printf("dump_all:\n");
    printf("    sd x30, -8(x31)\n    la x30, regsave\n");
    for (int r = 1; r < 30; r++)
        printf("    sd x%d, %d(x30)\n", r, r * 8);
    for (int r = 0; r < 32; r++)
        printf("    fsd f%d, %d(x30)\n", r, 256 + r * 8);
    printf("    frcsr t0\n    sd t0, 512(x30)\n");
    printf("    ld t0, -8(x31)\n    sd t0, 240(x30)\n");
    printf("    mv a0, x30\n    mv s11, x30\n    call rt_dump\n    mv x30, s11\n");
    printf("    ld t0, 512(x30)\n    fscsr t0\n");
    for (int r = 0; r < 32; r++)
        printf("    fld f%d, %d(x30)\n", r, 256 + r * 8);
    for (int r = 1; r < 30; r++)
        if (r != 2 && r != 3 && r != 4)
            printf("    ld x%d, %d(x30)\n", r, r * 8);
    printf("    ld x30, 240(x30)\n    ret\n");
    return 0;
}
