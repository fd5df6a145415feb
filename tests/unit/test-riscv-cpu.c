/* Unit tests of the RV64GC software hart (engine/cpu-riscv.c): small instruction
 * sequences encoded in C, run from RAM, results checked in registers and CSRs.
 * Unprivileged ISA 20191213 / privileged ISA 20211203. */
#include "cpu-riscv-private.h"

#include <string.h>

#define RAM_BASE 0x80000000ULL
#define RAM_SIZE (4ULL << 20)
#define VEC      (RAM_BASE + 0x000)    /* mtvec: wfi, then spin */
#define SVEC     (RAM_BASE + 0x040)    /* stvec: ecall to M (cause 9) */
#define ENTER    (RAM_BASE + 0x080)    /* mret, used to enter S/U */
#define CODE     (RAM_BASE + 0x1000)
#define DATA     (RAM_BASE + 0x10000)
#define MMIO_DEV 0x10000000ULL

enum { MSTATUS = 0x300, MEDELEG = 0x302, MIDELEG = 0x303, MIE = 0x304, MTVEC = 0x305,
       MCOUNTEREN = 0x306, MEPC = 0x341, MCAUSE = 0x342, MTVAL = 0x343, MIP = 0x344,
       SSTATUS = 0x100, SIE = 0x104, STVEC = 0x105, SEPC = 0x141, SCAUSE = 0x142, STVAL = 0x143,
       SATP = 0x180, FFLAGS = 0x001, FRM = 0x002 };

/* ---- encoders ---- */
static uint32_t R(unsigned f7, unsigned rs2, unsigned rs1, unsigned f3, unsigned rd, unsigned op)
{
    return (f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;
}
static uint32_t I(int imm, unsigned rs1, unsigned f3, unsigned rd, unsigned op)
{
    return ((uint32_t)imm << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;
}
static uint32_t S(int imm, unsigned rs2, unsigned rs1, unsigned f3, unsigned op)
{
    uint32_t u = (uint32_t)imm;
    return ((u >> 5) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((u & 31) << 7) | op;
}
static uint32_t Bx(int imm, unsigned rs2, unsigned rs1, unsigned f3)
{
    uint32_t u = (uint32_t)imm;
    return (((u >> 12) & 1) << 31) | (((u >> 5) & 63) << 25) | (rs2 << 20) | (rs1 << 15) |
           (f3 << 12) | (((u >> 1) & 15) << 8) | (((u >> 11) & 1) << 7) | 0x63;
}
#define ADDI(rd, rs1, imm) I(imm, rs1, 0, rd, 0x13)
#define LD(rd, rs1, imm)   I(imm, rs1, 3, rd, 0x03)
#define LW(rd, rs1, imm)   I(imm, rs1, 2, rd, 0x03)
#define SD(rs2, rs1, imm)  S(imm, rs2, rs1, 3, 0x23)
#define SW(rs2, rs1, imm)  S(imm, rs2, rs1, 2, 0x23)
#define CSRRS(rd, csr, rs1) I(csr, rs1, 2, rd, 0x73)
#define CSRRW(rd, csr, rs1) I(csr, rs1, 1, rd, 0x73)
#define AMO(f5, w, rd, rs1, rs2) R((f5) << 2, rs2, rs1, (w) ? 2 : 3, rd, 0x2f)
#define BNE(rs1, rs2, off) Bx(off, rs2, rs1, 1)
#define ECALL  0x00000073u
#define WFI    0x10500073u
#define MRET   0x30200073u
#define FENCEI 0x0000100fu

typedef struct {
    uint8_t *ram;
    FerryRvBus bus;
    FerryRvHart *h;
    uint64_t pos;
    uint64_t mmio_last_addr, mmio_last_val;
    unsigned mmio_reads, mmio_writes;
} T;

static gboolean mmio_read(void *opaque, uint64_t pa, unsigned size, uint64_t *v)
{
    T *t = opaque;
    if (pa < MMIO_DEV || pa >= MMIO_DEV + 0x1000)
        return FALSE;
    t->mmio_reads++;
    t->mmio_last_addr = pa;
    *v = 0x1122334455667788ULL + size;
    return TRUE;
}

static gboolean mmio_write(void *opaque, uint64_t pa, unsigned size, uint64_t v)
{
    T *t = opaque;
    (void)size;
    if (pa < MMIO_DEV || pa >= MMIO_DEV + 0x1000)
        return FALSE;
    t->mmio_writes++;
    t->mmio_last_addr = pa;
    t->mmio_last_val = v;
    return TRUE;
}

static void put32(T *t, uint64_t addr, uint32_t v)
{
    memcpy(t->ram + (addr - RAM_BASE), &v, 4);
}

static void put16(T *t, uint64_t addr, uint16_t v)
{
    memcpy(t->ram + (addr - RAM_BASE), &v, 2);
}

static void put64(T *t, uint64_t addr, uint64_t v)
{
    memcpy(t->ram + (addr - RAM_BASE), &v, 8);
}

static uint64_t get64(T *t, uint64_t addr)
{
    uint64_t v;
    memcpy(&v, t->ram + (addr - RAM_BASE), 8);
    return v;
}

static void emit(T *t, uint32_t insn)
{
    put32(t, t->pos, insn);
    t->pos += 4;
}

static void emit16(T *t, uint16_t insn)
{
    put16(t, t->pos, insn);
    t->pos += 2;
}

static T *t_new(void)
{
    T *t = g_new0(T, 1);
    t->ram = g_malloc0(RAM_SIZE);
    t->bus = (FerryRvBus){ .ram = t->ram, .ram_base = RAM_BASE, .ram_size = RAM_SIZE, .opaque = t,
                           .mmio_read = mmio_read, .mmio_write = mmio_write };
    t->h = ferry_rv_hart_new(&t->bus, 0);
    put32(t, VEC, WFI);
    put32(t, VEC + 4, 0x0000006f);   /* j . */
    put32(t, SVEC, ECALL);
    put32(t, ENTER, MRET);
    ferry_rv_hart_reset(t->h, CODE);
    ferry_rv_hart_write_csr(t->h, MTVEC, VEC);
    ferry_rv_hart_write_csr(t->h, STVEC, SVEC);
    ferry_rv_hart_write_csr(t->h, MSTATUS, 1ULL << 13);   /* FS = Initial */
    t->pos = CODE;
    return t;
}

static void t_free(T *t)
{
    ferry_rv_hart_free(t->h);
    g_free(t->ram);
    g_free(t);
}

static uint64_t csr(T *t, unsigned c)
{
    uint64_t v = 0;
    g_assert_true(ferry_rv_hart_read_csr(t->h, c, &v));
    return v;
}

static uint64_t reg(T *t, unsigned r) { return ferry_rv_hart_get_reg(t->h, r); }
static void set(T *t, unsigned r, uint64_t v) { ferry_rv_hart_set_reg(t->h, r, v); }

/* Runs until the M trap vector's WFI; returns mcause. */
static uint64_t run_to_trap(T *t)
{
    FerryRvRunResult r = ferry_rv_hart_run(t->h, 1000000);
    g_assert_cmpint(r, ==, FERRY_RV_RUN_WFI);
    g_assert_cmphex(ferry_rv_hart_get_pc(t->h), ==, VEC + 4);
    return csr(t, MCAUSE);
}

/* Runs until the M trap vector, for traps taken while an interrupt stays pending (then
 * the vector's WFI does not stop); returns mcause. */
static uint64_t run_to_vec(T *t)
{
    for (unsigned i = 0; i < 1000 && ferry_rv_hart_get_pc(t->h) != VEC + 4; i++)
        ferry_rv_hart_run(t->h, 100);
    g_assert_cmphex(ferry_rv_hart_get_pc(t->h), ==, VEC + 4);
    return csr(t, MCAUSE);
}

/* Starts at CODE in privilege priv (0 U, 1 S, 3 M). */
static void start(T *t, unsigned priv)
{
    uint64_t s = csr(t, MSTATUS);
    s = (s & ~(3ULL << 11)) | ((uint64_t)priv << 11);
    ferry_rv_hart_write_csr(t->h, MSTATUS, s);
    ferry_rv_hart_write_csr(t->h, MEPC, CODE);
    ferry_rv_hart_set_pc(t->h, ENTER);
    ferry_rv_hart_flush_code(t->h);   /* the tests rewrite CODE from the host */
}

/* ---- integer ---- */

static void test_div_by_zero(void)
{
    static const struct { unsigned op, f3; uint64_t a, b, want; } cases[] = {
        { 0x33, 4, 7, 0, ~0ULL },                                   /* div  */
        { 0x33, 5, 7, 0, ~0ULL },                                   /* divu */
        { 0x33, 6, 7, 0, 7 },                                       /* rem  */
        { 0x33, 7, 7, 0, 7 },                                       /* remu */
        { 0x33, 4, 0x8000000000000000ULL, ~0ULL, 0x8000000000000000ULL },
        { 0x33, 6, 0x8000000000000000ULL, ~0ULL, 0 },
        { 0x3b, 4, 0x123480000000ULL, ~0ULL, 0xffffffff80000000ULL },  /* divw overflow */
        { 0x3b, 6, 0x80000000ULL, ~0ULL, 0 },                       /* remw overflow */
        { 0x3b, 4, 5, 0x100000000ULL, ~0ULL },                      /* divw by (int32)0 */
        { 0x3b, 5, 5, 0, ~0ULL },                                   /* divuw: all ones */
        { 0x3b, 6, 0xfffffffffffffff9ULL, 0, 0xfffffffffffffff9ULL }, /* remw: dividend */
        { 0x3b, 7, 0x80000001ULL, 0, 0xffffffff80000001ULL },       /* remuw: sext dividend */
        { 0x33, 4, (uint64_t)-7, 2, (uint64_t)-3 },                 /* rounds toward zero */
        { 0x33, 6, (uint64_t)-7, 2, (uint64_t)-1 },
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        T *t = t_new();
        emit(t, R(1, 11, 10, cases[i].f3, 12, cases[i].op));
        emit(t, ECALL);
        set(t, 10, cases[i].a);
        set(t, 11, cases[i].b);
        g_assert_cmpuint(run_to_trap(t), ==, 11);
        g_assert_cmphex(reg(t, 12), ==, cases[i].want);
        t_free(t);
    }
}

static void test_misaligned(void)
{
    T *t = t_new();
    emit(t, LW(12, 10, 1));
    set(t, 10, DATA);
    g_assert_cmpuint(run_to_trap(t), ==, 4);
    g_assert_cmphex(csr(t, MTVAL), ==, DATA + 1);
    g_assert_cmphex(csr(t, MEPC), ==, CODE);
    t_free(t);

    t = t_new();
    emit(t, SD(11, 10, 4));
    set(t, 10, DATA);
    g_assert_cmpuint(run_to_trap(t), ==, 6);
    g_assert_cmphex(csr(t, MTVAL), ==, DATA + 4);
    t_free(t);

    t = t_new();
    emit(t, AMO(0x00, 1, 12, 10, 11));   /* amoadd.w misaligned */
    set(t, 10, DATA + 2);
    g_assert_cmpuint(run_to_trap(t), ==, 6);
    t_free(t);
}

static void test_lr_sc(void)
{
    T *t = t_new();
    put64(t, DATA, 41);
    emit(t, AMO(0x02, 0, 12, 10, 0));    /* lr.d a2, (a0) */
    emit(t, ADDI(12, 12, 1));
    emit(t, AMO(0x03, 0, 13, 10, 12));   /* sc.d a3, a2, (a0): succeeds */
    emit(t, AMO(0x03, 0, 14, 10, 12));   /* sc.d a4 without reservation: fails */
    emit(t, AMO(0x02, 0, 15, 10, 0));    /* lr.d a5 */
    emit(t, SD(0, 11, 0));               /* store by "another hart" is simulated below */
    emit(t, AMO(0x03, 0, 16, 10, 12));   /* sc.d a6: fails, value changed */
    emit(t, ECALL);
    set(t, 10, DATA);
    set(t, 11, DATA);
    g_assert_cmpuint(run_to_trap(t), ==, 11);
    g_assert_cmpuint(reg(t, 13), ==, 0);
    g_assert_cmpuint(reg(t, 14), !=, 0);
    g_assert_cmpuint(reg(t, 15), ==, 42);
    g_assert_cmpuint(reg(t, 16), !=, 0);
    g_assert_cmpuint(get64(t, DATA), ==, 0);
    t_free(t);
}

/* Another hart writes a different value and then the original one back between LR and
 * SC (ABA): the SC must fail although the word holds the value LR read. */
static void test_lr_sc_aba(void)
{
    T *t = t_new();
    FerryRvHart *b = ferry_rv_hart_new(&t->bus, 1);
    put64(t, DATA, 5);
    emit(t, AMO(0x02, 0, 12, 10, 0));    /* A: lr.d a2, (a0) */
    emit(t, WFI);                        /*    park: B runs now */
    emit(t, AMO(0x03, 0, 13, 10, 14));   /*    sc.d a3, a4, (a0) */
    emit(t, ECALL);
    t->pos = CODE + 0x800;
    emit(t, SD(11, 10, 0));              /* B: sd a1, (a0)   (warm its TLB first) */
    emit(t, WFI);
    emit(t, SD(11, 10, 0));              /*    sd a1, (a0): 9 */
    emit(t, SD(12, 10, 0));              /*    sd a2, (a0): 5 again */
    emit(t, ECALL);
    ferry_rv_hart_reset(b, CODE + 0x800);
    ferry_rv_hart_write_csr(b, MTVEC, VEC);
    ferry_rv_hart_set_reg(b, 10, DATA);
    ferry_rv_hart_set_reg(b, 11, 9);
    ferry_rv_hart_set_reg(b, 12, 5);
    set(t, 10, DATA);
    set(t, 14, 77);
    g_assert_cmpint(ferry_rv_hart_run(b, 1000), ==, FERRY_RV_RUN_WFI);   /* B: first store */
    put64(t, DATA, 5);
    g_assert_cmpint(ferry_rv_hart_run(t->h, 1000), ==, FERRY_RV_RUN_WFI); /* A: LR */
    g_assert_cmpuint(reg(t, 12), ==, 5);
    g_assert_cmpint(ferry_rv_hart_run(b, 1000), ==, FERRY_RV_RUN_WFI);    /* B: 9, then 5 */
    g_assert_cmpuint(get64(t, DATA), ==, 5);
    g_assert_cmpuint(run_to_trap(t), ==, 11);                             /* A: SC */
    g_assert_cmpuint(reg(t, 13), !=, 0);
    g_assert_cmpuint(get64(t, DATA), ==, 5);
    ferry_rv_hart_free(b);
    t_free(t);
}

/* two harts on two threads: LR/SC increments and AMOADDs must not lose updates */
typedef struct {
    FerryRvHart *h;
} HartThread;

static gpointer hart_thread(gpointer data)
{
    HartThread *ht = data;
    while (ferry_rv_hart_run(ht->h, 100000) != FERRY_RV_RUN_WFI)
        ;
    return NULL;
}

static void test_lr_sc_threads(void)
{
    T *t = t_new();
    const unsigned n = 200000;
    emit(t, AMO(0x02, 0, 5, 10, 0));     /* 1: lr.d t0, (a0) */
    emit(t, ADDI(5, 5, 1));
    emit(t, AMO(0x03, 0, 6, 10, 5));     /* sc.d t1, t0, (a0) */
    emit(t, BNE(6, 0, -12));
    emit(t, AMO(0x00, 0, 0, 11, 12));    /* amoadd.d x0, a2, (a1) */
    emit(t, ADDI(13, 13, -1));
    emit(t, BNE(13, 0, -24));
    emit(t, ECALL);
    HartThread ht[2];
    GThread *th[2];
    for (unsigned i = 0; i < 2; i++) {
        ht[i].h = i == 0 ? t->h : ferry_rv_hart_new(&t->bus, 1);
        ferry_rv_hart_reset(ht[i].h, CODE);
        ferry_rv_hart_write_csr(ht[i].h, MTVEC, VEC);
        ferry_rv_hart_set_reg(ht[i].h, 10, DATA);
        ferry_rv_hart_set_reg(ht[i].h, 11, DATA + 64);
        ferry_rv_hart_set_reg(ht[i].h, 12, 1);
        ferry_rv_hart_set_reg(ht[i].h, 13, n);
    }
    for (unsigned i = 0; i < 2; i++)
        th[i] = g_thread_new("hart", hart_thread, &ht[i]);
    for (unsigned i = 0; i < 2; i++)
        g_thread_join(th[i]);
    g_assert_cmpuint(get64(t, DATA), ==, 2 * n);
    g_assert_cmpuint(get64(t, DATA + 64), ==, 2 * n);
    ferry_rv_hart_free(ht[1].h);
    t_free(t);
}

static void test_amo(void)
{
    static const struct { unsigned f5, w; uint64_t mem, src, want_rd, want_mem; } cases[] = {
        { 0x00, 0, 5, 7, 5, 12 },                                              /* amoadd.d */
        { 0x01, 0, 5, 7, 5, 7 },                                               /* amoswap.d */
        { 0x10, 0, (uint64_t)-3, 2, (uint64_t)-3, (uint64_t)-3 },              /* amomin.d */
        { 0x18, 0, (uint64_t)-3, 2, (uint64_t)-3, 2 },                         /* amominu.d */
        { 0x14, 1, 0x00000000fffffffeULL, 1, 0xfffffffffffffffeULL, 1 },       /* amomax.w sext */
        { 0x1c, 1, 0x00000000fffffffeULL, 1, 0xfffffffffffffffeULL, 0xfffffffe },
        { 0x0c, 0, 0xff00, 0x0ff0, 0xff00, 0x0f00 },                           /* amoand.d */
        { 0x08, 1, 0x11223344aaaa0000ULL, 0x5555, 0xffffffffaaaa0000ULL, 0x11223344aaaa5555ULL },
        { 0x04, 0, 0xf0, 0xff, 0xf0, 0x0f },                                   /* amoxor.d */
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        T *t = t_new();
        put64(t, DATA, cases[i].mem);
        emit(t, AMO(cases[i].f5, cases[i].w, 12, 10, 11));
        emit(t, ECALL);
        set(t, 10, DATA);
        set(t, 11, cases[i].src);
        g_assert_cmpuint(run_to_trap(t), ==, 11);
        g_assert_cmphex(reg(t, 12), ==, cases[i].want_rd);
        g_assert_cmphex(get64(t, DATA), ==, cases[i].want_mem);
        t_free(t);
    }
}

/* ---- floating point ---- */

static void test_fp_rounding(void)
{
    unsigned fl;
    /* 1 + 2^-53 is a tie: RNE keeps 1, RMM and RUP go up, RDN/RTZ keep 1 */
    const uint64_t one = 0x3ff0000000000000ULL, tiny = 0x3ca0000000000000ULL;
    static const uint64_t want[5] = { 0x3ff0000000000000ULL, 0x3ff0000000000000ULL,
                                      0x3ff0000000000000ULL, 0x3ff0000000000001ULL,
                                      0x3ff0000000000001ULL };
    for (unsigned rm = 0; rm < 5; rm++) {
        fl = 0;
        g_assert_cmphex(ferry_rv_f64_add(one, tiny, rm, &fl), ==, want[rm]);
        g_assert_cmpuint(fl, ==, RV_FFLAG_NX);
    }
    /* -1 - 2^-53 in RDN goes away from zero */
    fl = 0;
    g_assert_cmphex(ferry_rv_f64_add(one | (1ULL << 63), tiny | (1ULL << 63), RV_RM_RDN, &fl), ==,
                    0xbff0000000000001ULL);
    /* overflow: max * 2 */
    fl = 0;
    g_assert_cmphex(ferry_rv_f64_mul(0x7fefffffffffffffULL, 0x4000000000000000ULL, RV_RM_RNE, &fl), ==,
                    0x7ff0000000000000ULL);
    g_assert_cmpuint(fl, ==, RV_FFLAG_OF | RV_FFLAG_NX);
    fl = 0;
    g_assert_cmphex(ferry_rv_f64_mul(0x7fefffffffffffffULL, 0x4000000000000000ULL, RV_RM_RTZ, &fl), ==,
                    0x7fefffffffffffffULL);
    /* underflow: min normal / 3 is tiny and inexact */
    fl = 0;
    ferry_rv_f64_div(0x0010000000000000ULL, 0x4008000000000000ULL, RV_RM_RNE, &fl);
    g_assert_cmpuint(fl, ==, RV_FFLAG_UF | RV_FFLAG_NX);
    /* exact subnormal result: no underflow flag */
    fl = 0;
    g_assert_cmphex(ferry_rv_f64_div(0x0010000000000000ULL, 0x4000000000000000ULL, RV_RM_RNE, &fl), ==,
                    0x0008000000000000ULL);
    g_assert_cmpuint(fl, ==, 0);
    /* tininess after rounding: 2^-1022 (1 - 2^-104) rounds up to the min normal: no UF;
     * rounded toward zero it stays subnormal: UF */
    fl = 0;
    g_assert_cmphex(ferry_rv_f64_mul(0x000fffffffffffffULL, 0x3ff0000000000001ULL, RV_RM_RNE, &fl), ==,
                    0x0010000000000000ULL);
    g_assert_cmpuint(fl, ==, RV_FFLAG_NX);
    fl = 0;
    g_assert_cmphex(ferry_rv_f64_mul(0x000fffffffffffffULL, 0x3ff0000000000001ULL, RV_RM_RTZ, &fl), ==,
                    0x000fffffffffffffULL);
    g_assert_cmpuint(fl, ==, RV_FFLAG_UF | RV_FFLAG_NX);
    /* divide by zero, invalid */
    fl = 0;
    g_assert_cmphex(ferry_rv_f64_div(one, 0, RV_RM_RNE, &fl), ==, 0x7ff0000000000000ULL);
    g_assert_cmpuint(fl, ==, RV_FFLAG_DZ);
    fl = 0;
    g_assert_cmphex(ferry_rv_f64_sqrt(one | (1ULL << 63), RV_RM_RNE, &fl), ==, 0x7ff8000000000000ULL);
    g_assert_cmpuint(fl, ==, RV_FFLAG_NV);
    /* fma rounds once: 0.1*10 - 1 is 2^-54 exactly, not 0 */
    fl = 0;
    g_assert_cmphex(ferry_rv_f64_fma(0x3fb999999999999aULL, 0x4024000000000000ULL, 0xbff0000000000000ULL,
                                     RV_RM_RNE, &fl), ==, 0x3c90000000000000ULL);
    /* fma: inf * 0 + qNaN still raises NV */
    fl = 0;
    ferry_rv_f64_fma(0x7ff0000000000000ULL, 0, 0x7ff8000000000000ULL, RV_RM_RNE, &fl);
    g_assert_cmpuint(fl, ==, RV_FFLAG_NV);
    /* float: 16777217 is not representable; RMM ties away */
    fl = 0;
    g_assert_cmphex(ferry_rv_f32_add(0x4b800000, 0x3f800000, RV_RM_RMM, &fl), ==, 0x4b800001);
    g_assert_cmphex(ferry_rv_f32_add(0x4b800000, 0x3f800000, RV_RM_RNE, &fl), ==, 0x4b800000);

    /* the same through the instruction stream: dynamic rounding via frm, fflags accrue */
    T *t = t_new();
    emit(t, R(0x01, 11, 10, 7, 12, 0x53));   /* fadd.d f12, f10, f11, dyn */
    emit(t, R(0x01, 11, 10, 1, 13, 0x53));   /* fadd.d f13, f10, f11, rtz */
    emit(t, CSRRS(5, FFLAGS, 0));
    emit(t, R(0x01, 11, 10, 5, 14, 0x53));   /* rm = 5: illegal */
    set(t, 32 + 10, one);
    set(t, 32 + 11, tiny);
    ferry_rv_hart_write_csr(t->h, FRM, RV_RM_RUP);
    g_assert_cmpuint(run_to_trap(t), ==, 2);
    g_assert_cmphex(csr(t, MEPC), ==, CODE + 12);
    g_assert_cmphex(csr(t, MTVAL), ==, R(0x01, 11, 10, 5, 14, 0x53));
    g_assert_cmphex(reg(t, 32 + 12), ==, 0x3ff0000000000001ULL);
    g_assert_cmphex(reg(t, 32 + 13), ==, one);
    g_assert_cmpuint(reg(t, 5), ==, RV_FFLAG_NX);
    g_assert_cmphex(csr(t, MSTATUS) & (3ULL << 13), ==, 3ULL << 13);   /* FS dirty */
    g_assert_cmphex(csr(t, MSTATUS) >> 63, ==, 1);                     /* SD */
    t_free(t);

    /* FS = Off: FP instructions are illegal */
    t = t_new();
    ferry_rv_hart_write_csr(t->h, MSTATUS, 0);
    emit(t, R(0x01, 11, 10, 0, 12, 0x53));
    g_assert_cmpuint(run_to_trap(t), ==, 2);
    t_free(t);
}

static void test_nan_boxing(void)
{
    T *t = t_new();
    emit(t, R(0x00, 11, 10, 0, 12, 0x53));   /* fadd.s f12, f10, f11 (f10 badly boxed) */
    emit(t, R(0x00, 11, 11, 0, 13, 0x53));   /* fadd.s f13, f11, f11 */
    emit(t, R(0x70, 0, 10, 1, 5, 0x53));     /* fclass.s t0, f10: canonical qNaN */
    emit(t, R(0x70, 0, 10, 0, 6, 0x53));     /* fmv.x.w t1, f10: raw low bits, sign-extended */
    emit(t, I(0, 10, 2, 14, 0x07));          /* flw f14, 0(a0) */
    emit(t, R(0x10, 10, 10, 0, 15, 0x53));   /* fsgnj.s f15, f10, f10 */
    emit(t, R(0x14, 16, 17, 0, 16, 0x53));   /* fmin.s f16, f17, f16: -0 vs +0 */
    emit(t, R(0x15, 18, 18, 1, 18, 0x53));   /* fmax.d f18, f18, f18 (sNaN): canonical, NV */
    emit(t, ECALL);
    set(t, 32 + 10, 0x00000000bf800000ULL);  /* -1.0f without the box */
    set(t, 32 + 11, 0xffffffff3f800000ULL);  /* 1.0f */
    set(t, 32 + 16, 0xffffffff00000000ULL);  /* +0.0f */
    set(t, 32 + 17, 0xffffffff80000000ULL);  /* -0.0f */
    set(t, 32 + 18, 0x7ff0000000000001ULL);  /* sNaN (double) */
    put32(t, DATA, 0x80000001);
    set(t, 10, DATA);
    g_assert_cmpuint(run_to_trap(t), ==, 11);
    g_assert_cmphex(reg(t, 32 + 12), ==, 0xffffffff7fc00000ULL);
    g_assert_cmphex(reg(t, 32 + 13), ==, 0xffffffff40000000ULL);
    g_assert_cmphex(reg(t, 5), ==, 1 << 9);
    g_assert_cmphex(reg(t, 6), ==, 0xffffffffbf800000ULL);
    g_assert_cmphex(reg(t, 32 + 14), ==, 0xffffffff80000001ULL);
    g_assert_cmphex(reg(t, 32 + 15), ==, 0xffffffff7fc00000ULL);
    g_assert_cmphex(reg(t, 32 + 16), ==, 0xffffffff80000000ULL);
    g_assert_cmphex(reg(t, 32 + 18), ==, 0x7ff8000000000000ULL);
    g_assert_cmphex(csr(t, FFLAGS), ==, RV_FFLAG_NV);
    t_free(t);
}

/* ---- compressed ---- */

static void test_compressed(void)
{
    T *t = t_new();
    emit16(t, 0x4515);   /* c.li a0, 5 */
    emit16(t, 0x0505);   /* c.addi a0, 1 */
    emit16(t, 0x85aa);   /* c.mv a1, a0 */
    emit16(t, 0x95aa);   /* c.add a1, a0 */
    emit16(t, 0x058a);   /* c.slli a1, 2 */
    emit16(t, 0x6605);   /* c.lui a2, 1 */
    emit16(t, 0x8d89);   /* c.sub a1, a0 */
    emit16(t, 0xe290);   /* c.sd a2, 0(a3) */
    emit16(t, 0x6298);   /* c.ld a4, 0(a3) */
    emit16(t, 0xc119);   /* c.beqz a0, +6 (not taken) */
    emit16(t, 0xa011);   /* c.j +4 */
    emit16(t, 0x4781);   /* c.li a5, 0 (skipped) */
    emit16(t, 0x0001);   /* c.nop */
    emit(t, ECALL);
    emit16(t, 0x0000);   /* illegal */
    set(t, 13, DATA);
    set(t, 15, 99);
    g_assert_cmpuint(run_to_trap(t), ==, 11);
    g_assert_cmpuint(reg(t, 10), ==, 6);
    g_assert_cmpuint(reg(t, 11), ==, 42);
    g_assert_cmpuint(reg(t, 12), ==, 0x1000);
    g_assert_cmpuint(reg(t, 14), ==, 0x1000);
    g_assert_cmpuint(reg(t, 15), ==, 99);
    g_assert_cmphex(csr(t, MEPC), ==, CODE + 26);
    /* continue after the ecall: the 16-bit zero is illegal, mtval holds it */
    ferry_rv_hart_write_csr(t->h, MEPC, CODE + 30);
    ferry_rv_hart_write_csr(t->h, MSTATUS, csr(t, MSTATUS) | (3ULL << 11));
    ferry_rv_hart_set_pc(t->h, ENTER);
    g_assert_cmpuint(run_to_trap(t), ==, 2);
    g_assert_cmphex(csr(t, MEPC), ==, CODE + 30);
    g_assert_cmphex(csr(t, MTVAL), ==, 0);
    t_free(t);
}

/* ---- privilege ---- */

static void test_csr_permissions(void)
{
    /* S mode reading mstatus: illegal instruction, taken in M */
    T *t = t_new();
    emit(t, CSRRS(10, MSTATUS, 0));
    start(t, 1);
    g_assert_cmpuint(run_to_trap(t), ==, 2);
    g_assert_cmphex(csr(t, MTVAL), ==, CSRRS(10, MSTATUS, 0));
    g_assert_cmpuint((csr(t, MSTATUS) >> 11) & 3, ==, 1);   /* MPP = S */
    t_free(t);

    /* S mode reading sstatus is fine; writing mhartid (read-only) from M is illegal */
    t = t_new();
    emit(t, CSRRS(10, SSTATUS, 0));
    emit(t, ECALL);
    start(t, 1);
    g_assert_cmpuint(run_to_trap(t), ==, 9);
    g_assert_cmphex(reg(t, 10) & (3ULL << 13), ==, 1ULL << 13);
    t_free(t);
    t = t_new();
    emit(t, CSRRW(0, 0xf14, 10));
    g_assert_cmpuint(run_to_trap(t), ==, 2);
    t_free(t);

    /* U mode rdcycle needs mcounteren.CY (and scounteren.CY) */
    t = t_new();
    emit(t, CSRRS(10, 0xc00, 0));
    start(t, 0);
    g_assert_cmpuint(run_to_trap(t), ==, 2);
    t_free(t);
    t = t_new();
    emit(t, CSRRS(10, 0xc02, 0));
    emit(t, ECALL);
    ferry_rv_hart_write_csr(t->h, MCOUNTEREN, 7);
    ferry_rv_hart_write_csr(t->h, 0x106, 7);
    start(t, 0);
    g_assert_cmpuint(run_to_trap(t), ==, 8);
    t_free(t);

    /* satp from S with mstatus.TVM: illegal */
    t = t_new();
    emit(t, CSRRS(10, SATP, 0));
    ferry_rv_hart_write_csr(t->h, MSTATUS, csr(t, MSTATUS) | (1ULL << 20));
    start(t, 1);
    g_assert_cmpuint(run_to_trap(t), ==, 2);
    t_free(t);

    /* MRET from S: illegal */
    t = t_new();
    emit(t, MRET);
    start(t, 1);
    g_assert_cmpuint(run_to_trap(t), ==, 2);
    t_free(t);
}

/* Sv39 page table at DATA + 0x10000: VA 0x40000000.. maps to RAM_BASE + 0x100000.. */
#define PT_ROOT (DATA + 0x10000)
#define PT_L1   (DATA + 0x11000)
#define PT_L0   (DATA + 0x12000)
#define VA      0x40000000ULL
#define PA      (RAM_BASE + 0x100000)

static void map_page(T *t, unsigned idx, uint64_t pa, uint64_t flags)
{
    put64(t, PT_L0 + idx * 8, ((pa >> 12) << 10) | flags);
}

static void setup_sv39(T *t)
{
    put64(t, PT_ROOT + ((VA >> 30) & 511) * 8, ((PT_L1 >> 12) << 10) | 1);
    put64(t, PT_L1 + ((VA >> 21) & 511) * 8, ((PT_L0 >> 12) << 10) | 1);
    /* the code runs from a 1 GiB identity gigapage at RAM_BASE */
    put64(t, PT_ROOT + ((RAM_BASE >> 30) & 511) * 8, ((RAM_BASE >> 12) << 10) | 0xcf);
    ferry_rv_hart_write_csr(t->h, SATP, (8ULL << 60) | (PT_ROOT >> 12));
}

static void test_page_tables(void)
{
    T *t = t_new();
    setup_sv39(t);
    map_page(t, 0, PA, 0x07);            /* V R W, A = D = 0 */
    map_page(t, 1, PA + 0x1000, 0x03);   /* read-only */
    map_page(t, 2, PA + 0x2000, 0x17);   /* user page */
    put64(t, PA + 8, 0x1234);
    emit(t, LD(12, 10, 8));              /* load: sets A only */
    emit(t, ECALL);
    set(t, 10, VA);
    set(t, 14, VA + 0x1000);
    set(t, 15, VA + 0x2000);
    set(t, 16, VA + 0x3000);
    start(t, 1);
    g_assert_cmpuint(run_to_trap(t), ==, 9);
    g_assert_cmphex(reg(t, 12), ==, 0x1234);
    g_assert_cmphex(get64(t, PT_L0) & 0xc0, ==, 0x40);

    t->pos = CODE;
    emit(t, SD(11, 10, 16));             /* store: sets D */
    emit(t, SD(11, 14, 0));              /* store to read-only page: store page fault */
    set(t, 11, 0x77);
    start(t, 1);
    g_assert_cmpuint(run_to_trap(t), ==, 15);
    g_assert_cmphex(csr(t, MTVAL), ==, VA + 0x1000);
    g_assert_cmphex(get64(t, PT_L0) & 0xc0, ==, 0xc0);
    g_assert_cmphex(get64(t, PA + 16), ==, 0x77);

    t->pos = CODE;
    emit(t, LD(12, 15, 0));              /* S touching a U page without SUM: load page fault */
    start(t, 1);
    g_assert_cmpuint(run_to_trap(t), ==, 13);
    g_assert_cmphex(csr(t, MTVAL), ==, VA + 0x2000);
    ferry_rv_hart_write_csr(t->h, MSTATUS, csr(t, MSTATUS) | (1ULL << 18));   /* SUM */
    t->pos = CODE;
    emit(t, LD(12, 15, 0));
    emit(t, LD(12, 16, 0));              /* unmapped: load page fault */
    start(t, 1);
    g_assert_cmpuint(run_to_trap(t), ==, 13);
    g_assert_cmphex(csr(t, MTVAL), ==, VA + 0x3000);
    g_assert_cmphex(csr(t, MEPC), ==, CODE + 4);

    /* page faults delegated to S land in stvec with scause/stval */
    ferry_rv_hart_write_csr(t->h, MEDELEG, 1 << 13);
    start(t, 1);
    g_assert_cmpuint(run_to_trap(t), ==, 9);         /* SVEC does ecall */
    g_assert_cmpuint(csr(t, SCAUSE), ==, 13);
    g_assert_cmphex(csr(t, STVAL), ==, VA + 0x3000);
    g_assert_cmphex(csr(t, SEPC), ==, CODE + 4);
    g_assert_cmphex(csr(t, MEPC), ==, SVEC);

    /* a non-canonical address faults too */
    t->pos = CODE;
    emit(t, LD(12, 11, 0));
    set(t, 11, 0x0000008000000000ULL);
    ferry_rv_hart_write_csr(t->h, MEDELEG, 0);
    start(t, 1);
    g_assert_cmpuint(run_to_trap(t), ==, 13);

    /* instruction fetch from a non-executable page: instruction page fault */
    t->pos = CODE;
    emit(t, I(0, 10, 0, 0, 0x67));       /* jr a0 */
    start(t, 1);
    g_assert_cmpuint(run_to_trap(t), ==, 12);
    g_assert_cmphex(csr(t, MTVAL), ==, VA);

    /* MMIO and unmapped physical addresses (M mode, bare) */
    t->pos = CODE;
    emit(t, LW(12, 10, 0));
    emit(t, SD(11, 10, 8));
    emit(t, LD(13, 14, 0));
    ferry_rv_hart_reset(t->h, CODE);
    ferry_rv_hart_write_csr(t->h, MTVEC, VEC);
    set(t, 10, MMIO_DEV);
    set(t, 11, 0xabcdef);
    set(t, 14, 0x20000000);
    g_assert_cmpuint(run_to_trap(t), ==, 5);
    g_assert_cmphex(reg(t, 12), ==, (uint64_t)(int64_t)(int32_t)(0x1122334455667788ULL + 4));
    g_assert_cmpuint(t->mmio_reads, ==, 1);
    g_assert_cmpuint(t->mmio_writes, ==, 1);
    g_assert_cmphex(t->mmio_last_val, ==, 0xabcdef);
    g_assert_cmphex(csr(t, MTVAL), ==, 0x20000000);
    t_free(t);
}

static void test_interrupts(void)
{
    /* S mode spinning; SEIP delegated to S with a vectored stvec */
    T *t = t_new();
    emit(t, 0x0000006f);                 /* j . */
    uint64_t svec = RAM_BASE + 0x200;
    put32(t, svec + 4 * 9, ECALL);
    ferry_rv_hart_write_csr(t->h, STVEC, svec | 1);
    ferry_rv_hart_write_csr(t->h, MIDELEG, 0x222);
    ferry_rv_hart_write_csr(t->h, MIE, (1 << 9) | (1 << 7));
    ferry_rv_hart_write_csr(t->h, MSTATUS, csr(t, MSTATUS) | 2);   /* SIE */
    start(t, 1);
    g_assert_cmpint(ferry_rv_hart_run(t->h, 10000), ==, FERRY_RV_RUN_BUDGET);
    g_assert_cmphex(ferry_rv_hart_get_pc(t->h), ==, CODE);
    ferry_rv_hart_set_irq(t->h, FERRY_RV_IRQ_SEIP, TRUE);
    g_assert_cmpuint(run_to_vec(t), ==, 9);           /* ecall from the S vector slot */
    g_assert_cmphex(csr(t, SCAUSE), ==, (1ULL << 63) | 9);
    g_assert_cmphex(csr(t, SEPC), ==, CODE);
    g_assert_cmphex(csr(t, MEPC), ==, svec + 4 * 9);
    g_assert_cmphex(csr(t, SIE) & (1 << 9), ==, 1 << 9);
    g_assert_cmphex(csr(t, 0x144) & (1 << 9), ==, 1 << 9);  /* sip.SEIP */
    ferry_rv_hart_set_irq(t->h, FERRY_RV_IRQ_SEIP, FALSE);

    /* a machine timer interrupt is taken in M from S even with mstatus.MIE = 0 */
    start(t, 1);
    g_assert_cmpint(ferry_rv_hart_run(t->h, 1000), ==, FERRY_RV_RUN_BUDGET);
    ferry_rv_hart_set_irq(t->h, FERRY_RV_IRQ_MTIP, TRUE);
    g_assert_cmphex(run_to_vec(t), ==, (1ULL << 63) | 7);
    g_assert_cmphex(csr(t, MEPC), ==, CODE);
    g_assert_cmpuint((csr(t, MSTATUS) >> 11) & 3, ==, 1);
    t_free(t);

    /* WFI in M with nothing pending returns WFI; an interrupt line wakes it */
    t = t_new();
    emit(t, WFI);
    emit(t, ECALL);
    ferry_rv_hart_write_csr(t->h, MIE, 1 << 3);
    g_assert_cmpint(ferry_rv_hart_run(t->h, 1000), ==, FERRY_RV_RUN_WFI);
    g_assert_false(ferry_rv_hart_wfi_wakeup(t->h));
    ferry_rv_hart_set_irq(t->h, FERRY_RV_IRQ_MSIP, TRUE);
    g_assert_true(ferry_rv_hart_wfi_wakeup(t->h));
    g_assert_cmpuint(run_to_vec(t), ==, 11);   /* MIE = 0 in M: no trap, continues */
    ferry_rv_hart_kick(t->h);
    g_assert_cmpint(ferry_rv_hart_run(t->h, 1000), ==, FERRY_RV_RUN_KICKED);
    t_free(t);
}

static void test_self_modifying(void)
{
    T *t = t_new();
    /* loop twice over a block whose first instruction gets patched by a store */
    uint64_t patch = CODE + 0x100;
    emit(t, ADDI(13, 0, 2));                 /* a3 = 2 */
    {   /* jal ra, patch */
        int32_t off = (int32_t)(patch - (CODE + 4));
        uint32_t u = (uint32_t)off;
        emit(t, 0x6f | (1 << 7) | (u & 0xff000) | (((u >> 11) & 1) << 20) | (((u >> 1) & 1023) << 21) |
                (((u >> 20) & 1) << 31));
    }
    emit(t, SW(11, 12, 0));                  /* patch: *(patch) = a1 (addi a0, a0, 100) */
    emit(t, ADDI(13, 13, -1));
    emit(t, BNE(13, 0, -12));
    emit(t, ECALL);
    t->pos = patch;
    emit(t, ADDI(10, 10, 1));
    emit(t, I(0, 1, 0, 0, 0x67));            /* ret */
    set(t, 11, ADDI(10, 10, 100));
    set(t, 12, patch);
    g_assert_cmpuint(run_to_trap(t), ==, 11);
    g_assert_cmpuint(reg(t, 10), ==, 101);
    t_free(t);
}

/* a 4-byte instruction whose halves lie on two pages, executed twice (never cached) */
static void test_cross_page(void)
{
    T *t = t_new();
    emit(t, ADDI(13, 0, 2));
    uint64_t jal_at = t->pos;
    t->pos = CODE + 0xffe;
    emit(t, ADDI(10, 10, 7));
    emit(t, ADDI(13, 13, -1));
    emit(t, BNE(13, 0, -8));
    emit(t, ECALL);
    t->pos = jal_at;
    {   /* j CODE + 0xffe */
        uint32_t u = (uint32_t)(CODE + 0xffe - jal_at);
        emit(t, 0x6f | (u & 0xff000) | (((u >> 11) & 1) << 20) | (((u >> 1) & 1023) << 21) |
                (((u >> 20) & 1) << 31));
    }
    g_assert_cmpuint(run_to_trap(t), ==, 11);
    g_assert_cmpuint(reg(t, 10), ==, 14);
    g_assert_cmphex(csr(t, MEPC), ==, CODE + 0x100a);
    t_free(t);
}

/* csrc mip while the external SEIP line is high must not latch SEIP in software */
static void test_mip_rmw(void)
{
    T *t = t_new();
    emit(t, (0x344u << 20) | (5u << 15) | (3u << 12) | 0x73);   /* csrc mip, t0 */
    emit(t, ECALL);
    set(t, 5, 1 << 5);
    ferry_rv_hart_write_csr(t->h, MIP, 1 << 5);                 /* STIP set by M */
    ferry_rv_hart_set_irq(t->h, FERRY_RV_IRQ_SEIP, TRUE);
    g_assert_cmpuint(run_to_trap(t), ==, 11);
    g_assert_cmphex(csr(t, MIP), ==, 1 << 9);
    ferry_rv_hart_set_irq(t->h, FERRY_RV_IRQ_SEIP, FALSE);
    g_assert_cmphex(csr(t, MIP), ==, 0);
    t_free(t);
}

/* Random instruction words (privileged ones, CSRs, satp, wild addresses included) with a
 * trap handler that skips the faulting instruction: the hart must neither crash nor
 * touch host memory outside guest RAM (run this under ASan), and must stay bounded. */
static void test_fuzz(void)
{
    T *t = t_new();
    GRand *rnd = g_rand_new_with_seed(20191213);
    static const uint32_t opcodes[] = { 0x03, 0x07, 0x0f, 0x13, 0x17, 0x1b, 0x23, 0x27, 0x2f, 0x33,
                                        0x37, 0x3b, 0x43, 0x47, 0x4b, 0x4f, 0x53, 0x63, 0x67, 0x6f, 0x73 };
    /* M handler at VEC: mepc += 4; mret (the spin after it is never reached) */
    uint64_t hv = RAM_BASE + 0x400;
    put32(t, hv, CSRRS(31, MEPC, 0));
    put32(t, hv + 4, ADDI(31, 31, 4));
    put32(t, hv + 8, CSRRW(0, MEPC, 31));
    put32(t, hv + 12, MRET);
    for (uint64_t a = CODE; a < CODE + 0x20000; a += 4) {
        uint32_t w = g_rand_int(rnd);
        if (g_rand_int_range(rnd, 0, 4))
            w = (w & ~0x7fu) | opcodes[g_rand_int_range(rnd, 0, G_N_ELEMENTS(opcodes))];
        put32(t, a, w);
    }
    for (unsigned round = 0; round < 200; round++) {
        for (unsigned r = 1; r < 31; r++)
            set(t, r, g_rand_int_range(rnd, 0, 3) ? RAM_BASE + g_rand_int_range(rnd, 0, RAM_SIZE)
                                                  : ((uint64_t)g_rand_int(rnd) << 32) | g_rand_int(rnd));
        ferry_rv_hart_write_csr(t->h, MTVEC, hv);
        ferry_rv_hart_write_csr(t->h, MSTATUS, (1ULL << 13) | ((uint64_t)g_rand_int_range(rnd, 0, 2) << 11));
        ferry_rv_hart_write_csr(t->h, MEPC, CODE + 4 * g_rand_int_range(rnd, 0, 0x8000));
        if (round % 3 == 0) {
            setup_sv39(t);
            map_page(t, 0, PA, 0x1f);
        }
        ferry_rv_hart_set_pc(t->h, ENTER);
        for (unsigned k = 0; k < 20; k++) {
            if (ferry_rv_hart_run(t->h, 5000) == FERRY_RV_RUN_WFI)
                ferry_rv_hart_set_pc(t->h, ferry_rv_hart_get_pc(t->h) + 4);
            uint64_t pc = ferry_rv_hart_get_pc(t->h);
            if (pc < CODE || pc >= CODE + 0x20000)   /* escaped: restart in the random code */
                ferry_rv_hart_set_pc(t->h, CODE + 4 * g_rand_int_range(rnd, 0, 0x8000));
        }
    }
    g_rand_free(rnd);
    t_free(t);
}

/* ---- the translator (cpu-riscv-jit.c) against the interpreter ----
 * Random straight-line programs of what the translator takes (ALU, W forms, shifts,
 * LUI/AUIPC, MUL, loads/stores of every width, forward branches and jumps, compressed
 * forms), with what it leaves to the interpreter mixed in (DIV, CSR access) and memory
 * operands that hit, miss the TLB, are misaligned, reach MMIO or fault. Two harts, one
 * translating and one interpreting, run each program on RAM of their own; registers,
 * pc, retired count, trap CSRs, device accesses and all of RAM must agree. Half the
 * rounds run in S mode under Sv39 and then run the same code page again through a
 * second virtual address (a decoded page serves every address that maps it). */
#define JH (RAM_BASE + 0x800)           /* M handler: skip the trapping instruction */
#define JCODE_ALIAS 0x40010000ULL       /* VA page mapped to CODE */

static uint32_t J_(int imm, unsigned rd)
{
    uint32_t u = (uint32_t)imm;
    return (((u >> 20) & 1) << 31) | (((u >> 1) & 1023) << 21) | (((u >> 11) & 1) << 20) |
           (((u >> 12) & 255) << 12) | (rd << 7) | 0x6f;
}

static T *t_new_interp(gboolean translate)
{
    if (!translate)
        g_setenv("FERRY_RV_JIT", "0", TRUE);
    T *t = t_new();
    g_unsetenv("FERRY_RV_JIT");
    return t;
}

/* Registers the random code may write: not x5..x8 (memory bases), x27 (return
 * address of calls into the second page), x28 (loop counter) or x30/x31 (handler). */
static unsigned jit_rd(GRand *r)
{
    unsigned v = g_rand_int_range(r, 0, 24);
    return v < 5 ? v : v < 23 ? v + 4 : 29;     /* 0..4, 9..26, 29 */
}

static unsigned jit_rs(GRand *r) { return g_rand_int_range(r, 0, 30); }

/* JFUNCS functions in the page after CODE, each some random ALU and memory
 * instructions with forward branches, then jalr x0, 0(x27). Returns their
 * addresses in f[]. */
#define JFUNCS 6
static void jit_functions(T *a, GRand *r, uint64_t *f)
{
    uint64_t pc = CODE + 0x1000;
    for (unsigned k = 0; k < JFUNCS; k++) {
        unsigned m = g_rand_int_range(r, 4, 60);
        f[k] = pc;
        for (unsigned i = 0; i < m; i++, pc += 4) {
            unsigned rd = jit_rd(r), rs1 = jit_rs(r), rs2 = jit_rs(r), c = g_rand_int_range(r, 0, 10);
            uint32_t w;
            if (c < 3)
                w = I(g_rand_int_range(r, -2048, 2048), rs1, (unsigned[]){ 0, 4, 6, 7 }[c], rd, 0x13);
            else if (c < 5)
                w = R(c == 3 ? 0x20 : 0, rs2, rs1, 0, rd, 0x33);
            else if (c < 7)
                w = I(g_rand_int_range(r, 0, 64) * 8, 5 + g_rand_int_range(r, 0, 4), 3, rd, 0x03);
            else if (c < 8)
                w = S(g_rand_int_range(r, 0, 64) * 8, rs2, 5 + g_rand_int_range(r, 0, 2), 3, 0x23);
            else
                w = Bx(4 * g_rand_int_range(r, 1, m - i + 1), rs2, rs1, (unsigned[]){ 0, 1, 4, 5, 6, 7 }[g_rand_int_range(r, 0, 6)]);
            put32(a, pc, w);
        }
        put32(a, pc, I(0, 27, 0, 0, 0x67));            /* jalr x0, 0(x27) */
        pc += 4;
    }
    g_assert_cmpuint(pc, <=, CODE + 0x2000);
}


static void jit_program(T *a, T *b, GRand *r)
{
    enum { N = 900 };
    enum { LOOP_START = 100, LOOP_END = 101 };
    uint8_t kind[N], len[N];
    unsigned loop_to[N] = { 0 };        /* nonzero: a loop ends here, back to that index */
    uint64_t addr[N + 1];
    uint64_t pc = CODE;
    /* pass 1: what and how long; loops (x28 = 3 ... x28 -= 1, blt x0, x28, back:
     * a body entered from outside with x28 = 0 runs once) do not nest */
    for (unsigned i = 0, open_until = 0; i < N; i++) {
        if (loop_to[i]) {
            kind[i] = LOOP_END;         /* placed when its loop started */
        } else if (i >= open_until && i + 12 < N && g_rand_int_range(r, 0, 30) == 0) {
            unsigned m = g_rand_int_range(r, 2, 11);
            kind[i] = LOOP_START;
            loop_to[i + m] = i + 1;
            open_until = i + m + 1;
        } else {
            kind[i] = g_rand_int_range(r, 0, 100);
        }
        len[i] = kind[i] >= 90 && kind[i] < LOOP_START ? 2 : 4;
        if ((kind[i] >= 86 && kind[i] < 88) || kind[i] == LOOP_END)
            len[i] = 8;                 /* auipc + jalr; addi + blt */
        addr[i] = pc;
        pc += len[i];
    }
    addr[N] = pc;                       /* the final wfi */
    g_assert_cmpuint(pc + 4, <=, CODE + 0x1000);
    uint64_t func[JFUNCS];
    jit_functions(a, r, func);
    static const uint32_t rr[][2] = {   /* f7, f3 for OP (0x33) and OP-32 (0x3b) */
        { 0, 0 }, { 0x20, 0 }, { 0, 1 }, { 0, 2 }, { 0, 3 }, { 0, 4 }, { 0, 5 }, { 0x20, 5 },
        { 0, 6 }, { 0, 7 }, { 1, 0 }, { 1, 4 }, { 1, 6 },
    };
    for (unsigned i = 0; i < N; i++) {
        uint32_t w;
        unsigned k = kind[i], rd = jit_rd(r), rs1 = jit_rs(r), rs2 = jit_rs(r);
        int imm = g_rand_int_range(r, -2048, 2048);
        unsigned tgt = i + 1 + g_rand_int_range(r, 0, MIN(12u, N - i));
        int off = (int)(addr[tgt] - addr[i]);
        if (k == LOOP_START) {
            w = ADDI(28, 0, 3);
        } else if (k == LOOP_END) {
            put32(a, addr[i], ADDI(28, 28, -1));
            put32(a, addr[i] + 4, Bx((int)(addr[loop_to[i]] - addr[i] - 4), 28, 0, 4));
            continue;
        } else if (k < 20) {            /* OP-IMM */
            unsigned f3 = g_rand_int_range(r, 0, 8);
            if (f3 == 1)
                imm = g_rand_int_range(r, 0, 64);
            else if (f3 == 5)
                imm = g_rand_int_range(r, 0, 64) | (g_rand_boolean(r) ? 0x400 : 0);
            w = I(imm, rs1, f3, rd, 0x13);
        } else if (k < 26) {            /* OP-IMM-32 */
            unsigned f3 = (unsigned[]){ 0, 1, 5 }[g_rand_int_range(r, 0, 3)];
            if (f3 != 0)
                imm = g_rand_int_range(r, 0, 32) | (f3 == 5 && g_rand_boolean(r) ? 0x400 : 0);
            w = I(imm, rs1, f3, rd, 0x1b);
        } else if (k < 40) {            /* OP */
            unsigned x = g_rand_int_range(r, 0, G_N_ELEMENTS(rr));
            w = R(rr[x][0], rs2, rs1, rr[x][1], rd, 0x33);
        } else if (k < 46) {            /* OP-32: addw subw sllw srlw sraw mulw divw */
            static const uint32_t r32[][2] = { { 0, 0 }, { 0x20, 0 }, { 0, 1 }, { 0, 5 }, { 0x20, 5 }, { 1, 0 }, { 1, 4 } };
            unsigned x = g_rand_int_range(r, 0, G_N_ELEMENTS(r32));
            w = R(r32[x][0], rs2, rs1, r32[x][1], rd, 0x3b);
        } else if (k < 50) {            /* LUI, AUIPC */
            w = (g_rand_int(r) & 0xfffff000u) | (rd << 7) | (k < 48 ? 0x37 : 0x17);
        } else if (k < 64) {            /* loads off a base register */
            unsigned f3 = (unsigned[]){ 0, 1, 2, 3, 4, 5, 6 }[g_rand_int_range(r, 0, 7)];
            unsigned base = 5 + g_rand_int_range(r, 0, 4);
            int o = g_rand_int_range(r, 0, 6) ? g_rand_int_range(r, 0, 64) * 8 : g_rand_int_range(r, -16, 64);
            w = I(o, base, f3, rd, 0x03);
        } else if (k < 76) {            /* stores */
            unsigned f3 = g_rand_int_range(r, 0, 4);
            unsigned base = 5 + g_rand_int_range(r, 0, 4);
            int o = g_rand_int_range(r, 0, 6) ? g_rand_int_range(r, 0, 64) * 8 : g_rand_int_range(r, -16, 64);
            w = S(o, rs2, base, f3, 0x23);
        } else if (k < 84) {            /* forward branches */
            w = Bx(off, rs2, rs1, (unsigned[]){ 0, 1, 4, 5, 6, 7 }[g_rand_int_range(r, 0, 6)]);
        } else if (k < 85) {            /* jal forward, or a call into the next page */
            if (g_rand_boolean(r))
                w = J_(off, rd);
            else
                w = J_((int)(func[g_rand_int_range(r, 0, JFUNCS)] - addr[i]), 27);
        } else if (k < 86) {            /* left to the interpreter: csrrs mscratch, div */
            w = g_rand_boolean(r) ? I(0x340, rs1, 2, rd, 0x73) : R(1, rs2, rs1, 4, rd, 0x33);
        } else if (k < 88) {            /* auipc x9 + jalr forward through it */
            put32(a, addr[i], (9u << 7) | 0x17);
            put32(a, addr[i] + 4, I(off, 9, 0, rd == 9 ? 10 : rd, 0x67));
            continue;
        } else if (k < 90) {            /* fence rw,rw */
            w = 0x0330000fu;
        } else {                        /* compressed: addi, li, mv, add, nop */
            unsigned c = g_rand_int_range(r, 0, 5), cd = rd ? rd : 1, cs = rs2 ? rs2 : 1;
            int ci = g_rand_int_range(r, -32, 32);
            uint16_t h = c == 0 ? (uint16_t)((((ci >> 5) & 1) << 12) | (cd << 7) | ((ci & 31) << 2) | 1)
                       : c == 1 ? (uint16_t)((2 << 13) | (((ci >> 5) & 1) << 12) | (cd << 7) | ((ci & 31) << 2) | 1)
                       : c == 2 ? (uint16_t)((4 << 13) | (cd << 7) | (cs << 2) | 2)
                       : c == 3 ? (uint16_t)((4 << 13) | (1 << 12) | (cd << 7) | (cs << 2) | 2)
                       : 0x0001;
            put16(a, addr[i], h);
            continue;
        }
        put32(a, addr[i], w);
    }
    put32(a, addr[N], WFI);
    memcpy(b->ram + (CODE - RAM_BASE), a->ram + (CODE - RAM_BASE), 0x2000);
}

static void jit_handler(T *t)
{
    /* reads the instruction through the trapped mode's translation (MPRV) */
    const uint32_t h[] = {
        (0x20u << 12) | (30 << 7) | 0x37,   /* lui   x30, 0x20 (MPRV) */
        I(0x300, 30, 2, 0, 0x73),           /* csrrs x0, mstatus, x30 */
        I(0x341, 0, 2, 31, 0x73),           /* csrrs x31, mepc, x0 */
        I(0, 31, 5, 30, 0x03),              /* lhu   x30, 0(x31) */
        ADDI(31, 31, 2),
        I(3, 30, 7, 30, 0x13),              /* andi  x30, x30, 3 */
        ADDI(30, 30, -3),
        BNE(30, 0, 8),
        ADDI(31, 31, 2),
        I(0x341, 31, 1, 0, 0x73),           /* csrrw x0, mepc, x31 */
        (0x20u << 12) | (30 << 7) | 0x37,   /* lui   x30, 0x20 */
        I(0x300, 30, 3, 0, 0x73),           /* csrrc x0, mstatus, x30 */
        MRET,
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(h); i++)
        put32(t, JH + 4 * i, h[i]);
}

/* Runs t from its current state to the program's final WFI. */
static void jit_run(T *t, uint64_t end)
{
    for (unsigned i = 0; i < 100000; i++) {
        if (ferry_rv_hart_run(t->h, 1 + i % 97) == FERRY_RV_RUN_WFI && ferry_rv_hart_get_pc(t->h) == end + 4)
            return;
    }
    g_error("did not reach %#" G_GINT64_MODIFIER "x: pc %#" G_GINT64_MODIFIER "x mcause %" G_GINT64_MODIFIER "u mepc %#" G_GINT64_MODIFIER "x", end + 4, ferry_rv_hart_get_pc(t->h), csr(t, MCAUSE), csr(t, MEPC));
}

static void jit_compare(T *a, T *b)
{
    for (unsigned r = 1; r < 32; r++)
        if (reg(a, r) != reg(b, r))
            g_error("x%u: translated %#" G_GINT64_MODIFIER "x, interpreted %#" G_GINT64_MODIFIER "x",
                    r, reg(a, r), reg(b, r));
    g_assert_cmphex(ferry_rv_hart_get_pc(a->h), ==, ferry_rv_hart_get_pc(b->h));
    g_assert_cmpuint(ferry_rv_hart_get_instret(a->h), ==, ferry_rv_hart_get_instret(b->h));
    static const unsigned c[] = { MEPC, MCAUSE, MTVAL, 0x340 };
    for (unsigned i = 0; i < G_N_ELEMENTS(c); i++)
        g_assert_cmphex(csr(a, c[i]), ==, csr(b, c[i]));
    g_assert_cmpuint(a->mmio_reads, ==, b->mmio_reads);
    g_assert_cmpuint(a->mmio_writes, ==, b->mmio_writes);
    g_assert_cmphex(a->mmio_last_val, ==, b->mmio_last_val);
    g_assert_true(memcmp(a->ram, b->ram, RAM_SIZE) == 0);
}

static void test_jit_vs_interpreter(void)
{
    GRand *r = g_rand_new_with_seed(20260127);
    unsigned translated_rounds = 0;
    for (unsigned round = 0; round < 120; round++) {
        T *a = t_new_interp(TRUE), *b = t_new_interp(FALSE);
        gboolean paged = round & 1;
        jit_program(a, b, r);
        for (uint64_t o = 0; o < 0x8000; o += 8) {      /* data: PA and after */
            uint64_t v = ((uint64_t)g_rand_int(r) << 32) | g_rand_int(r);
            put64(a, PA + o, v);
            put64(b, PA + o, v);
        }
        T *both[2] = { a, b };
        for (unsigned s = 0; s < 2; s++) {
            T *t = both[s];
            jit_handler(t);
            ferry_rv_hart_write_csr(t->h, MTVEC, JH);
            for (unsigned x = 1; x < 30; x++)
                set(t, x, ((uint64_t)g_rand_int(r) << 32) | g_rand_int(r));
            set(t, 28, 0);
            set(t, 5, paged ? VA : PA);
            set(t, 6, PA + 0xff8);                      /* accesses across a page end */
            set(t, 7, MMIO_DEV + 0x100);
            set(t, 8, paged ? VA + 0x1ff8 : RAM_BASE + 0x3ffff8);
            if (paged) {
                setup_sv39(t);
                for (unsigned p = 0; p < 8; p++)
                    map_page(t, p, PA + p * 0x1000, 0xcf);
                map_page(t, (JCODE_ALIAS - VA) >> 12, CODE, 0xcb);
                map_page(t, ((JCODE_ALIAS - VA) >> 12) + 1, CODE + 0x1000, 0xcb);
            }
            start(t, paged ? 1 : 3);
        }
        /* The two harts drew the same numbers only if they drew them in turn: redo b's. */
        for (unsigned x = 1; x < 32; x++)
            set(b, x, reg(a, x));
        uint64_t end = CODE + 0x1000 - 4;
        for (; end >= CODE; end -= 2) {
            uint32_t w;
            memcpy(&w, a->ram + (end - RAM_BASE), 4);
            if (w == WFI)
                break;
        }
        jit_run(a, end);
        jit_run(b, end);
        jit_compare(a, b);
        if (!paged) {
            /* again: now the blocks exist and chain into each other */
            ferry_rv_hart_set_pc(a->h, CODE);
            ferry_rv_hart_set_pc(b->h, CODE);
            jit_run(a, end);
            jit_run(b, end);
            jit_compare(a, b);
        }
        if (paged) {
            /* the same code page again, through its alias (still in S mode) */
            g_assert_cmpuint(ferry_rv_hart_get_priv(a->h), ==, 1);
            ferry_rv_hart_set_pc(a->h, JCODE_ALIAS);
            ferry_rv_hart_set_pc(b->h, JCODE_ALIAS);
            jit_run(a, JCODE_ALIAS + (end - CODE));
            jit_run(b, JCODE_ALIAS + (end - CODE));
            jit_compare(a, b);
        }
        translated_rounds++;
        t_free(a);
        t_free(b);
    }
    g_assert_cmpuint(translated_rounds, ==, 120);
    g_rand_free(r);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
    g_test_add_func("/riscv/cpu/div-by-zero", test_div_by_zero);
    g_test_add_func("/riscv/cpu/misaligned", test_misaligned);
    g_test_add_func("/riscv/cpu/lr-sc", test_lr_sc);
    g_test_add_func("/riscv/cpu/lr-sc-aba", test_lr_sc_aba);
    g_test_add_func("/riscv/cpu/lr-sc-threads", test_lr_sc_threads);
    g_test_add_func("/riscv/cpu/amo", test_amo);
    g_test_add_func("/riscv/cpu/fp-rounding", test_fp_rounding);
    g_test_add_func("/riscv/cpu/nan-boxing", test_nan_boxing);
    g_test_add_func("/riscv/cpu/compressed", test_compressed);
    g_test_add_func("/riscv/cpu/csr-permissions", test_csr_permissions);
    g_test_add_func("/riscv/cpu/page-tables", test_page_tables);
    g_test_add_func("/riscv/cpu/interrupts", test_interrupts);
    g_test_add_func("/riscv/cpu/self-modifying", test_self_modifying);
    g_test_add_func("/riscv/cpu/cross-page", test_cross_page);
    g_test_add_func("/riscv/cpu/mip-rmw", test_mip_rmw);
    g_test_add_func("/riscv/cpu/fuzz", test_fuzz);
    g_test_add_func("/riscv/cpu/jit-vs-interpreter", test_jit_vs_interpreter);
    return g_test_run();
}
