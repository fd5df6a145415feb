/* Differential test: F and D arithmetic on special values (zeros, subnormals, extremes,
 * infinities, quiet and signalling NaNs, ties) in all five static rounding modes and the
 * dynamic one; every line prints the result bits and the accrued fflags. */
#include "rt.h"

static const uint64_t dv[] = {
    0x0000000000000000ULL, 0x8000000000000000ULL, 0x3ff0000000000000ULL, 0xbff0000000000000ULL,
    0x0000000000000001ULL, 0x800fffffffffffffULL, 0x0010000000000000ULL, 0x7fefffffffffffffULL,
    0xffefffffffffffffULL, 0x7ff0000000000000ULL, 0xfff0000000000000ULL, 0x7ff8000000000000ULL,
    0x7ff4000000000001ULL, 0x3ff0000000000001ULL, 0x3ca0000000000000ULL, 0x4340000000000001ULL,
    0x400921fb54442d18ULL, 0xc1e0000000000000ULL, 0x41efffffffe00000ULL, 0x43e0000000000000ULL,
    0x3fe0000000000000ULL, 0x3ff8000000000000ULL, 0xc004000000000000ULL, 0x0008000000000000ULL,
};
static const uint32_t fv[] = {
    0x00000000, 0x80000000, 0x3f800000, 0xbf800000, 0x00000001, 0x807fffff, 0x00800000,
    0x7f7fffff, 0xff7fffff, 0x7f800000, 0xff800000, 0x7fc00000, 0x7fa00001, 0x3f800001,
    0x33800000, 0x4b800001, 0x40490fdb, 0xcf000000, 0x4f7fffff, 0x5f000000, 0x3f000000,
    0x3fc00000, 0xc0200000, 0x00400000,
};
#define ND (sizeof(dv) / sizeof(dv[0]))
#define NF (sizeof(fv) / sizeof(fv[0]))

static inline void clear_flags(void) { __asm__ volatile("fsflags x0"); }
static inline uint64_t get_flags(void) { uint64_t f; __asm__ volatile("frflags %0" : "=r"(f)); return f; }
static inline double d_of(uint64_t b) { double d; __asm__("fmv.d.x %0, %1" : "=f"(d) : "r"(b)); return d; }
static inline uint64_t b_of(double d) { uint64_t b; __asm__("fmv.x.d %0, %1" : "=r"(b) : "f"(d)); return b; }
static inline float s_of(uint32_t b) { float d; __asm__("fmv.w.x %0, %1" : "=f"(d) : "r"(b)); return d; }
static inline uint64_t bs_of(float d) { uint64_t b; __asm__("fmv.x.w %0, %1" : "=r"(b) : "f"(d)); return b; }

static void out(const char *op, const char *rm, uint64_t a, uint64_t b, uint64_t c, uint64_t r, uint64_t fl)
{
    rt_puts(op); rt_putc(' '); rt_puts(rm); rt_putc(' ');
    rt_hex64(a); rt_putc(' '); rt_hex64(b); rt_putc(' '); rt_hex64(c);
    rt_puts(" = "); rt_hex64(r); rt_putc(' '); rt_hex(fl, 2); rt_putc('\n');
}

#define RMS(X, ...) X(rne, __VA_ARGS__) X(rtz, __VA_ARGS__) X(rdn, __VA_ARGS__) \
    X(rup, __VA_ARGS__) X(rmm, __VA_ARGS__) X(dyn, __VA_ARGS__)

/* binary ops */
#define BIN_D(rm, op) static uint64_t d_##op##_##rm(uint64_t a, uint64_t b) \
    { double r; __asm__ volatile(#op ".d %0, %1, %2, " #rm : "=f"(r) : "f"(d_of(a)), "f"(d_of(b))); return b_of(r); }
#define BIN_S(rm, op) static uint64_t s_##op##_##rm(uint64_t a, uint64_t b) \
    { float r; __asm__ volatile(#op ".s %0, %1, %2, " #rm : "=f"(r) : "f"(s_of(a)), "f"(s_of(b))); return bs_of(r); }
#define FMA_D(rm, op) static uint64_t d_##op##_##rm(uint64_t a, uint64_t b, uint64_t c) \
    { double r; __asm__ volatile(#op ".d %0, %1, %2, %3, " #rm : "=f"(r) : "f"(d_of(a)), "f"(d_of(b)), "f"(d_of(c))); return b_of(r); }
#define FMA_S(rm, op) static uint64_t s_##op##_##rm(uint64_t a, uint64_t b, uint64_t c) \
    { float r; __asm__ volatile(#op ".s %0, %1, %2, %3, " #rm : "=f"(r) : "f"(s_of(a)), "f"(s_of(b)), "f"(s_of(c))); return bs_of(r); }
#define SQRT_D(rm, x) static uint64_t d_fsqrt_##rm(uint64_t a) \
    { double r; __asm__ volatile("fsqrt.d %0, %1, " #rm : "=f"(r) : "f"(d_of(a))); return b_of(r); }
#define SQRT_S(rm, x) static uint64_t s_fsqrt_##rm(uint64_t a) \
    { float r; __asm__ volatile("fsqrt.s %0, %1, " #rm : "=f"(r) : "f"(s_of(a))); return bs_of(r); }
#define CVT_TOI_D(rm, id, mn) static uint64_t d_##id##_##rm(uint64_t a) \
    { uint64_t r; __asm__ volatile(mn ".d %0, %1, " #rm : "=r"(r) : "f"(d_of(a))); return r; }
#define CVT_TOI_S(rm, id, mn) static uint64_t s_##id##_##rm(uint64_t a) \
    { uint64_t r; __asm__ volatile(mn ".s %0, %1, " #rm : "=r"(r) : "f"(s_of(a))); return r; }
#define CVT_FROMI_D(rm, id, mn) static uint64_t d_##id##_##rm(uint64_t a) \
    { double r; __asm__ volatile(mn " %0, %1, " #rm : "=f"(r) : "r"(a)); return b_of(r); }
#define CVT_FROMI_S(rm, id, mn) static uint64_t s_##id##_##rm(uint64_t a) \
    { float r; __asm__ volatile(mn " %0, %1, " #rm : "=f"(r) : "r"(a)); return bs_of(r); }
#define CVT_SD(rm, x) static uint64_t s_fcvtsd_##rm(uint64_t a) \
    { float r; __asm__ volatile("fcvt.s.d %0, %1, " #rm : "=f"(r) : "f"(d_of(a))); return bs_of(r); }

RMS(BIN_D, fadd) RMS(BIN_D, fsub) RMS(BIN_D, fmul) RMS(BIN_D, fdiv)
RMS(BIN_S, fadd) RMS(BIN_S, fsub) RMS(BIN_S, fmul) RMS(BIN_S, fdiv)
RMS(FMA_D, fmadd) RMS(FMA_D, fmsub) RMS(FMA_D, fnmadd) RMS(FMA_D, fnmsub)
RMS(FMA_S, fmadd) RMS(FMA_S, fmsub) RMS(FMA_S, fnmadd) RMS(FMA_S, fnmsub)
RMS(SQRT_D, x) RMS(SQRT_S, x) RMS(CVT_SD, x)
RMS(CVT_TOI_D, w, "fcvt.w") RMS(CVT_TOI_D, wu, "fcvt.wu") RMS(CVT_TOI_D, l, "fcvt.l") RMS(CVT_TOI_D, lu, "fcvt.lu")
RMS(CVT_TOI_S, w, "fcvt.w") RMS(CVT_TOI_S, wu, "fcvt.wu") RMS(CVT_TOI_S, l, "fcvt.l") RMS(CVT_TOI_S, lu, "fcvt.lu")
RMS(CVT_FROMI_D, dl, "fcvt.d.l") RMS(CVT_FROMI_D, dlu, "fcvt.d.lu")
RMS(CVT_FROMI_S, sl, "fcvt.s.l") RMS(CVT_FROMI_S, slu, "fcvt.s.lu") RMS(CVT_FROMI_S, sw, "fcvt.s.w")
RMS(CVT_FROMI_S, swu, "fcvt.s.wu")

typedef uint64_t (*bin_fn)(uint64_t, uint64_t);
typedef uint64_t (*un_fn)(uint64_t);
typedef uint64_t (*tri_fn)(uint64_t, uint64_t, uint64_t);

#define NAMES(X, p, op) X(p, op, rne) X(p, op, rtz) X(p, op, rdn) X(p, op, rup) X(p, op, rmm) X(p, op, dyn)
#define F(p, op, rm) p##_##op##_##rm,
static const char *const rmn[6] = { "rne", "rtz", "rdn", "rup", "rmm", "dyn" };

static const struct { const char *n; int dbl; bin_fn f[6]; } bins[] = {
    { "fadd.d", 1, { NAMES(F, d, fadd) } }, { "fsub.d", 1, { NAMES(F, d, fsub) } },
    { "fmul.d", 1, { NAMES(F, d, fmul) } }, { "fdiv.d", 1, { NAMES(F, d, fdiv) } },
    { "fadd.s", 0, { NAMES(F, s, fadd) } }, { "fsub.s", 0, { NAMES(F, s, fsub) } },
    { "fmul.s", 0, { NAMES(F, s, fmul) } }, { "fdiv.s", 0, { NAMES(F, s, fdiv) } },
};
static const struct { const char *n; int dbl; tri_fn f[6]; } tris[] = {
    { "fmadd.d", 1, { NAMES(F, d, fmadd) } }, { "fmsub.d", 1, { NAMES(F, d, fmsub) } },
    { "fnmadd.d", 1, { NAMES(F, d, fnmadd) } }, { "fnmsub.d", 1, { NAMES(F, d, fnmsub) } },
    { "fmadd.s", 0, { NAMES(F, s, fmadd) } }, { "fmsub.s", 0, { NAMES(F, s, fmsub) } },
    { "fnmadd.s", 0, { NAMES(F, s, fnmadd) } }, { "fnmsub.s", 0, { NAMES(F, s, fnmsub) } },
};

static uint64_t val(int dbl, unsigned i) { return dbl ? dv[i % ND] : fv[i % NF]; }

/* rounding-sensitive integer inputs for int->float */
static const uint64_t iv[] = {
    0, 1, 0xffffffffffffffffULL, 0x7fffffffffffffffULL, 0x8000000000000000ULL, 0x20000001ULL,
    0x1000001ULL, 0xffffffff00000001ULL, 0x7fffffff, 0x80000000, 0xffffffff, 0x0020000000000001ULL,
    0x0020000000000003ULL, 0xfff0000000000001ULL, 0x1000003ULL, 0xfffffffffeffffffULL,
};

#define NR(X) \
    X("fmin.d", d, "fmin.d") X("fmax.d", d, "fmax.d") X("fsgnj.d", d, "fsgnj.d") \
    X("fsgnjn.d", d, "fsgnjn.d") X("fsgnjx.d", d, "fsgnjx.d")
static uint64_t nr_d(int k, uint64_t a, uint64_t b)
{
    double r, x = d_of(a), y = d_of(b);
    uint64_t i;
    switch (k) {
    case 0: __asm__ volatile("fmin.d %0, %1, %2" : "=f"(r) : "f"(x), "f"(y)); return b_of(r);
    case 1: __asm__ volatile("fmax.d %0, %1, %2" : "=f"(r) : "f"(x), "f"(y)); return b_of(r);
    case 2: __asm__ volatile("fsgnj.d %0, %1, %2" : "=f"(r) : "f"(x), "f"(y)); return b_of(r);
    case 3: __asm__ volatile("fsgnjn.d %0, %1, %2" : "=f"(r) : "f"(x), "f"(y)); return b_of(r);
    case 4: __asm__ volatile("fsgnjx.d %0, %1, %2" : "=f"(r) : "f"(x), "f"(y)); return b_of(r);
    case 5: __asm__ volatile("feq.d %0, %1, %2" : "=r"(i) : "f"(x), "f"(y)); return i;
    case 6: __asm__ volatile("flt.d %0, %1, %2" : "=r"(i) : "f"(x), "f"(y)); return i;
    case 7: __asm__ volatile("fle.d %0, %1, %2" : "=r"(i) : "f"(x), "f"(y)); return i;
    case 8: __asm__ volatile("fclass.d %0, %1" : "=r"(i) : "f"(x)); return i;
    default: __asm__ volatile("fcvt.s.d %0, %1" : "=f"(r) : "f"(x)); return b_of(r);
    }
}
static uint64_t nr_s(int k, uint64_t a, uint64_t b)
{
    float r, x = s_of(a), y = s_of(b);
    double d;
    uint64_t i;
    switch (k) {
    case 0: __asm__ volatile("fmin.s %0, %1, %2" : "=f"(r) : "f"(x), "f"(y)); return bs_of(r);
    case 1: __asm__ volatile("fmax.s %0, %1, %2" : "=f"(r) : "f"(x), "f"(y)); return bs_of(r);
    case 2: __asm__ volatile("fsgnj.s %0, %1, %2" : "=f"(r) : "f"(x), "f"(y)); return bs_of(r);
    case 3: __asm__ volatile("fsgnjn.s %0, %1, %2" : "=f"(r) : "f"(x), "f"(y)); return bs_of(r);
    case 4: __asm__ volatile("fsgnjx.s %0, %1, %2" : "=f"(r) : "f"(x), "f"(y)); return bs_of(r);
    case 5: __asm__ volatile("feq.s %0, %1, %2" : "=r"(i) : "f"(x), "f"(y)); return i;
    case 6: __asm__ volatile("flt.s %0, %1, %2" : "=r"(i) : "f"(x), "f"(y)); return i;
    case 7: __asm__ volatile("fle.s %0, %1, %2" : "=r"(i) : "f"(x), "f"(y)); return i;
    case 8: __asm__ volatile("fclass.s %0, %1" : "=r"(i) : "f"(x)); return i;
    default: __asm__ volatile("fcvt.d.s %0, %1" : "=f"(d) : "f"(x)); return b_of(d);
    }
}

int main(void)
{
    static const uint64_t frms[5] = { 0, 1, 2, 3, 4 };
    for (unsigned k = 0; k < sizeof(bins) / sizeof(bins[0]); k++)
        for (unsigned r = 0; r < 6; r++) {
            if (r == 5)
                __asm__ volatile("fsrm %0" :: "r"(frms[k % 5]));
            unsigned n = bins[k].dbl ? ND : NF;
            for (unsigned i = 0; i < n; i++)
                for (unsigned j = 0; j < n; j++) {
                    uint64_t a = val(bins[k].dbl, i), b = val(bins[k].dbl, j);
                    clear_flags();
                    uint64_t res = bins[k].f[r](a, b);
                    out(bins[k].n, rmn[r], a, b, 0, res, get_flags());
                }
        }
    for (unsigned k = 0; k < sizeof(tris) / sizeof(tris[0]); k++)
        for (unsigned r = 0; r < 6; r++) {
            if (r == 5)
                __asm__ volatile("fsrm %0" :: "r"(frms[(k + 2) % 5]));
            for (unsigned i = 0; i < 14; i++)
                for (unsigned j = 0; j < 14; j++)
                    for (unsigned l = 0; l < 14; l++) {
                        int d = tris[k].dbl;
                        uint64_t a = val(d, i + 2), b = val(d, j + 4), c = val(d, l + 6);
                        clear_flags();
                        uint64_t res = tris[k].f[r](a, b, c);
                        out(tris[k].n, rmn[r], a, b, c, res, get_flags());
                    }
        }
    {
        static const struct { const char *n; int dbl; un_fn f[6]; } uns[] = {
            { "fsqrt.d", 1, { NAMES(F, d, fsqrt) } }, { "fsqrt.s", 0, { NAMES(F, s, fsqrt) } },
            { "fcvt.s.d", 1, { NAMES(F, s, fcvtsd) } },
        };
        for (unsigned k = 0; k < sizeof(uns) / sizeof(uns[0]); k++)
            for (unsigned r = 0; r < 6; r++)
                for (unsigned i = 0; i < (uns[k].dbl ? ND : NF); i++) {
                    uint64_t a = val(uns[k].dbl, i);
                    clear_flags();
                    uint64_t res = uns[k].f[r](a);
                    out(uns[k].n, rmn[r], a, 0, 0, res, get_flags());
                }
    }
    for (int k = 0; k < 10; k++)
        for (unsigned i = 0; i < ND; i++)
            for (unsigned j = 0; j < ND; j++) {
                clear_flags();
                uint64_t r = nr_d(k, dv[i], dv[j]);
                out("nr.d", rmn[k % 6], dv[i], dv[j], (uint64_t)k, r, get_flags());
            }
    for (int k = 0; k < 10; k++)
        for (unsigned i = 0; i < NF; i++)
            for (unsigned j = 0; j < NF; j++) {
                clear_flags();
                uint64_t r = nr_s(k, fv[i], fv[j]);
                out("nr.s", rmn[k % 6], fv[i], fv[j], (uint64_t)k, r, get_flags());
            }
    {
        static const struct { const char *n; int dbl; un_fn f[6]; } cv[] = {
            { "fcvt.w.d", 1, { NAMES(F, d, w) } }, { "fcvt.wu.d", 1, { NAMES(F, d, wu) } },
            { "fcvt.l.d", 1, { NAMES(F, d, l) } }, { "fcvt.lu.d", 1, { NAMES(F, d, lu) } },
            { "fcvt.w.s", 0, { NAMES(F, s, w) } }, { "fcvt.wu.s", 0, { NAMES(F, s, wu) } },
            { "fcvt.l.s", 0, { NAMES(F, s, l) } }, { "fcvt.lu.s", 0, { NAMES(F, s, lu) } },
        };
        static const uint64_t extra_d[] = { 0x3fe0000000000000ULL, 0xbfe0000000000000ULL, 0x3ff8000000000000ULL,
            0xbff8000000000000ULL, 0x4004000000000000ULL, 0xc004000000000000ULL, 0x41dfffffffc00000ULL,
            0x41dfffffffe00000ULL, 0xc1e0000000100000ULL, 0x43dfffffffffffffULL, 0xc3e0000000000001ULL,
            0x41f0000000000000ULL, 0x43f0000000000000ULL, 0xbfefffffffffffffULL, 0x3fd0000000000000ULL };
        static const uint64_t extra_s[] = { 0x3f000000, 0xbf000000, 0x3fc00000, 0xbfc00000, 0x40200000,
            0xc0200000, 0x4effffff, 0xcf000001, 0x5effffff, 0xdf000001, 0x4f800000, 0x5f800000,
            0xbf7fffff, 0x3e800000, 0xcf000000 };
        for (unsigned k = 0; k < 8; k++)
            for (unsigned r = 0; r < 6; r++) {
                if (r == 5)
                    __asm__ volatile("fsrm %0" :: "r"(frms[k % 5]));
                int d = cv[k].dbl;
                unsigned n = (d ? ND : NF) + 15;
                for (unsigned i = 0; i < n; i++) {
                    uint64_t a = i < (d ? ND : NF) ? val(d, i) : (d ? extra_d : extra_s)[i - (d ? ND : NF)];
                    clear_flags();
                    uint64_t res = cv[k].f[r](a);
                    out(cv[k].n, rmn[r], a, 0, 0, res, get_flags());
                }
            }
        static const struct { const char *n; un_fn f[6]; } fi[] = {
            { "fcvt.d.l", { NAMES(F, d, dl) } }, { "fcvt.d.lu", { NAMES(F, d, dlu) } },
            { "fcvt.s.l", { NAMES(F, s, sl) } },
            { "fcvt.s.lu", { NAMES(F, s, slu) } }, { "fcvt.s.w", { NAMES(F, s, sw) } },
            { "fcvt.s.wu", { NAMES(F, s, swu) } },
        };
        for (unsigned k = 0; k < 6; k++)
            for (unsigned r = 0; r < 6; r++) {
                if (r == 5)
                    __asm__ volatile("fsrm %0" :: "r"(frms[(k + 1) % 5]));
                for (unsigned i = 0; i < sizeof(iv) / sizeof(iv[0]); i++) {
                    clear_flags();
                    uint64_t res = fi[k].f[r](iv[i]);
                    out(fi[k].n, rmn[r], iv[i], 0, 0, res, get_flags());
                }
            }
    }
    rt_flush();
    return 0;
}
