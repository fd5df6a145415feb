/* Exact IEEE 754-2008 binary32/binary64 arithmetic for the RV64 F and D extensions
 * (unprivileged ISA 20191213, chapters 11-13): all five rounding modes, exact fflags
 * with tininess detected after rounding, canonical NaN, NaN boxing.
 * Integer-only soft float (unsigned __int128 intermediates): no host fenv, same
 * results on every host. */
#include "cpu-riscv-private.h"

#include <string.h>

typedef unsigned __int128 u128;

typedef struct {
    int mbits;   /* stored mantissa bits: 23 or 52 */
    int ebits;   /* exponent bits: 8 or 11 */
    int bias;
} Fmt;

static const Fmt F32 = { 23, 8, 127 };
static const Fmt F64 = { 52, 11, 1023 };

#define EXPMAX(f)   ((1u << (f)->ebits) - 1)
#define SIGNBIT(f)  (1ULL << ((f)->mbits + (f)->ebits))
#define MANTMASK(f) ((1ULL << (f)->mbits) - 1)
#define QUIETBIT(f) (1ULL << ((f)->mbits - 1))
#define INF(f)      ((uint64_t)EXPMAX(f) << (f)->mbits)
#define CANON(f)    (INF(f) | QUIETBIT(f))

static inline unsigned fexp(const Fmt *f, uint64_t a) { return (a >> f->mbits) & EXPMAX(f); }
static inline uint64_t fman(const Fmt *f, uint64_t a) { return a & MANTMASK(f); }
static inline int fsign(const Fmt *f, uint64_t a) { return (a & SIGNBIT(f)) != 0; }
static inline gboolean is_nan(const Fmt *f, uint64_t a) { return fexp(f, a) == EXPMAX(f) && fman(f, a); }
static inline gboolean is_snan(const Fmt *f, uint64_t a) { return is_nan(f, a) && !(a & QUIETBIT(f)); }
static inline gboolean is_inf(const Fmt *f, uint64_t a) { return fexp(f, a) == EXPMAX(f) && !fman(f, a); }
static inline gboolean is_zero(const Fmt *f, uint64_t a) { return (a & ~SIGNBIT(f)) == 0; }

static inline int clz128(u128 x)
{
    uint64_t hi = (uint64_t)(x >> 64);
    return hi ? __builtin_clzll(hi) : 64 + __builtin_clzll((uint64_t)x);
}

static inline u128 shr_jam(u128 x, int n)
{
    if (n <= 0)
        return x;
    if (n >= 128)
        return x != 0;
    return (x >> n) | ((x & (((u128)1 << n) - 1)) != 0);
}

/* Finite nonzero a -> sig * 2^exp with sig holding the implicit bit. */
static inline void unpack(const Fmt *f, uint64_t a, uint64_t *sig, int *exp)
{
    unsigned e = fexp(f, a);
    uint64_t m = fman(f, a);
    if (e) {
        *sig = m | (1ULL << f->mbits);
        *exp = (int)e - f->bias - f->mbits;
    } else {
        *sig = m;
        *exp = 1 - f->bias - f->mbits;
    }
}

static inline gboolean round_up(int sign, uint64_t q, u128 rem, u128 half, unsigned rm)
{
    if (!rem)
        return FALSE;
    switch (rm) {
    case RV_RM_RNE: return rem > half || (rem == half && (q & 1));
    case RV_RM_RTZ: return FALSE;
    case RV_RM_RDN: return sign;
    case RV_RM_RUP: return !sign;
    default:        return rem >= half;   /* RMM */
    }
}

/* Splits sig into q = sig >> shift and the discarded rem; half = weight of the
 * first discarded bit.  shift >= 128 is handled as "all bits discarded, below half". */
static inline void split(u128 sig, int shift, uint64_t *q, u128 *rem, u128 *half)
{
    if (shift <= 0) {
        *q = (uint64_t)(sig << -shift);
        *rem = 0;
        *half = 1;
    } else if (shift >= 128) {
        *q = 0;
        *rem = 1;
        *half = 2;   /* rem < half, nonzero */
    } else {
        *q = (uint64_t)(sig >> shift);
        *rem = sig & (((u128)1 << shift) - 1);
        *half = (u128)1 << (shift - 1);
    }
}

/* Rounds sign * sig * 2^exp (sig != 0) to format f. */
static uint64_t round_pack(const Fmt *f, int sign, int exp, u128 sig, unsigned rm, unsigned *flags)
{
    int msb = 127 - clz128(sig);
    int e = exp + msb;                       /* sig*2^exp in [2^e, 2^(e+1)) */
    int emin = 1 - f->bias;
    int lsb = e - f->mbits;
    if (lsb < emin - f->mbits)
        lsb = emin - f->mbits;               /* subnormal range */
    uint64_t q;
    u128 rem, half;
    split(sig, lsb - exp, &q, &rem, &half);
    if (round_up(sign, q, rem, half, rm))
        q++;
    uint64_t s = sign ? SIGNBIT(f) : 0;
    if (rem)
        *flags |= RV_FFLAG_NX;
    if (e < emin && rem) {
        /* tininess after rounding: tiny unless rounding to full precision with
         * an unbounded exponent reaches 2^emin */
        gboolean tiny = TRUE;
        if (e == emin - 1) {
            uint64_t q2;
            u128 r2, h2;
            split(sig, e - f->mbits - exp, &q2, &r2, &h2);
            if (round_up(sign, q2, r2, h2, rm))
                q2++;
            if (q2 >> (f->mbits + 1))
                tiny = FALSE;
        }
        if (tiny)
            *flags |= RV_FFLAG_UF;
    }
    uint64_t bits = ((uint64_t)(lsb - (emin - f->mbits)) << f->mbits) + q;
    if (bits >= INF(f)) {
        *flags |= RV_FFLAG_OF | RV_FFLAG_NX;
        gboolean to_inf = rm == RV_RM_RNE || rm == RV_RM_RMM ||
                          (rm == RV_RM_RUP && !sign) || (rm == RV_RM_RDN && sign);
        return s | (to_inf ? INF(f) : INF(f) - 1);
    }
    return s | bits;
}

static uint64_t nan_result(const Fmt *f, uint64_t a, uint64_t b, unsigned *flags)
{
    if (is_snan(f, a) || is_snan(f, b))
        *flags |= RV_FFLAG_NV;
    return CANON(f);
}

static uint64_t f_add(const Fmt *f, uint64_t a, uint64_t b, unsigned rm, unsigned *flags)
{
    if (is_nan(f, a) || is_nan(f, b))
        return nan_result(f, a, b, flags);
    int sa = fsign(f, a), sb = fsign(f, b);
    if (is_inf(f, a)) {
        if (is_inf(f, b) && sa != sb) {
            *flags |= RV_FFLAG_NV;
            return CANON(f);
        }
        return a;
    }
    if (is_inf(f, b))
        return b;
    if (is_zero(f, a) && is_zero(f, b)) {
        if (sa == sb)
            return a;
        return rm == RV_RM_RDN ? SIGNBIT(f) : 0;
    }
    if (is_zero(f, a))
        return b;
    if (is_zero(f, b))
        return a;
    uint64_t ma, mb;
    int ea, eb;
    unpack(f, a, &ma, &ea);
    unpack(f, b, &mb, &eb);
    /* put both with their msb at bit 125, then align the smaller one */
    u128 A = (u128)ma << (125 - (63 - __builtin_clzll(ma)));
    int xa = ea - (125 - (63 - __builtin_clzll(ma)));
    u128 B = (u128)mb << (125 - (63 - __builtin_clzll(mb)));
    int xb = eb - (125 - (63 - __builtin_clzll(mb)));
    if (xa < xb || (xa == xb && A < B)) {
        u128 t = A; A = B; B = t;
        int ti = xa; xa = xb; xb = ti;
        int ts = sa; sa = sb; sb = ts;
    }
    B = shr_jam(B, xa - xb);
    u128 R = sa == sb ? A + B : A - B;
    if (!R)
        return rm == RV_RM_RDN ? SIGNBIT(f) : 0;
    return round_pack(f, sa, xa, R, rm, flags);
}

static uint64_t f_mul(const Fmt *f, uint64_t a, uint64_t b, unsigned rm, unsigned *flags)
{
    if (is_nan(f, a) || is_nan(f, b))
        return nan_result(f, a, b, flags);
    uint64_t s = (a ^ b) & SIGNBIT(f);
    if (is_inf(f, a) || is_inf(f, b)) {
        if (is_zero(f, a) || is_zero(f, b)) {
            *flags |= RV_FFLAG_NV;
            return CANON(f);
        }
        return s | INF(f);
    }
    if (is_zero(f, a) || is_zero(f, b))
        return s;
    uint64_t ma, mb;
    int ea, eb;
    unpack(f, a, &ma, &ea);
    unpack(f, b, &mb, &eb);
    return round_pack(f, s != 0, ea + eb, (u128)ma * mb, rm, flags);
}

static uint64_t f_div(const Fmt *f, uint64_t a, uint64_t b, unsigned rm, unsigned *flags)
{
    if (is_nan(f, a) || is_nan(f, b))
        return nan_result(f, a, b, flags);
    uint64_t s = (a ^ b) & SIGNBIT(f);
    if (is_inf(f, a)) {
        if (is_inf(f, b)) {
            *flags |= RV_FFLAG_NV;
            return CANON(f);
        }
        return s | INF(f);
    }
    if (is_inf(f, b))
        return s;
    if (is_zero(f, b)) {
        if (is_zero(f, a)) {
            *flags |= RV_FFLAG_NV;
            return CANON(f);
        }
        *flags |= RV_FFLAG_DZ;
        return s | INF(f);
    }
    if (is_zero(f, a))
        return s;
    uint64_t ma, mb;
    int ea, eb;
    unpack(f, a, &ma, &ea);
    unpack(f, b, &mb, &eb);
    int na = 52 - (63 - __builtin_clzll(ma)), nb = 52 - (63 - __builtin_clzll(mb));
    ma <<= na; ea -= na;
    mb <<= nb; eb -= nb;
    u128 N = (u128)ma << 74;
    u128 q = N / mb;
    if (N % mb)
        q |= 1;
    return round_pack(f, s != 0, ea - 74 - eb, q, rm, flags);
}

static u128 isqrt128(u128 n, gboolean *exact)
{
    u128 res = 0, bit = (u128)1 << 126;
    while (bit > n)
        bit >>= 2;
    while (bit) {
        if (n >= res + bit) {
            n -= res + bit;
            res = (res >> 1) + bit;
        } else {
            res >>= 1;
        }
        bit >>= 2;
    }
    *exact = n == 0;
    return res;
}

static uint64_t f_sqrt(const Fmt *f, uint64_t a, unsigned rm, unsigned *flags)
{
    if (is_nan(f, a))
        return nan_result(f, a, a, flags);
    if (is_zero(f, a))
        return a;
    if (fsign(f, a)) {
        *flags |= RV_FFLAG_NV;
        return CANON(f);
    }
    if (is_inf(f, a))
        return a;
    uint64_t m;
    int e;
    unpack(f, a, &m, &e);
    int n = 52 - (63 - __builtin_clzll(m));
    m <<= n;
    e -= n;
    u128 N = (u128)m << 70;
    e -= 70;
    if (e & 1) {
        N <<= 1;
        e -= 1;
    }
    gboolean exact;
    u128 r = isqrt128(N, &exact);
    if (!exact)
        r |= 1;
    return round_pack(f, 0, e / 2, r, rm, flags);
}

/* (a*b) + c with one rounding; negation of product/addend done by the caller on bits */
static uint64_t f_fma(const Fmt *f, uint64_t a, uint64_t b, uint64_t c, unsigned rm, unsigned *flags)
{
    if (is_nan(f, a) || is_nan(f, b) || is_nan(f, c)) {
        if (is_snan(f, a) || is_snan(f, b) || is_snan(f, c) ||
            ((is_inf(f, a) && is_zero(f, b)) || (is_zero(f, a) && is_inf(f, b))))
            *flags |= RV_FFLAG_NV;
        return CANON(f);
    }
    int sp = fsign(f, a) ^ fsign(f, b);
    int sc = fsign(f, c);
    if (is_inf(f, a) || is_inf(f, b)) {
        if (is_zero(f, a) || is_zero(f, b)) {
            *flags |= RV_FFLAG_NV;
            return CANON(f);
        }
        if (is_inf(f, c) && sc != sp) {
            *flags |= RV_FFLAG_NV;
            return CANON(f);
        }
        return (sp ? SIGNBIT(f) : 0) | INF(f);
    }
    if (is_inf(f, c))
        return c;
    if (is_zero(f, a) || is_zero(f, b)) {
        if (is_zero(f, c)) {
            if (sp == sc)
                return c;
            return rm == RV_RM_RDN ? SIGNBIT(f) : 0;
        }
        return c;
    }
    uint64_t ma, mb, mc;
    int ea, eb, ec;
    unpack(f, a, &ma, &ea);
    unpack(f, b, &mb, &eb);
    u128 P = (u128)ma * mb;
    int sh = 125 - (127 - clz128(P));
    P <<= sh;
    int xp = ea + eb - sh;
    if (is_zero(f, c))
        return round_pack(f, sp, xp, P, rm, flags);
    unpack(f, c, &mc, &ec);
    int shc = 125 - (63 - __builtin_clzll(mc));
    u128 C = (u128)mc << shc;
    int xc = ec - shc;
    u128 A = P, B = C;
    int xa = xp, xb = xc, sa = sp, sb = sc;
    if (xa < xb || (xa == xb && A < B)) {
        A = C; B = P;
        xa = xc; xb = xp;
        sa = sc; sb = sp;
    }
    B = shr_jam(B, xa - xb);
    u128 R = sa == sb ? A + B : A - B;
    if (!R)
        return rm == RV_RM_RDN ? SIGNBIT(f) : 0;
    return round_pack(f, sa, xa, R, rm, flags);
}

static uint64_t f_from_int(const Fmt *f, int sign, uint64_t mag, unsigned rm, unsigned *flags)
{
    if (!mag)
        return 0;
    return round_pack(f, sign, 0, mag, rm, flags);
}

/* float -> integer of `bits` (32/64), signed or not, RISC-V saturation rules */
static uint64_t f_to_int(const Fmt *f, uint64_t a, int bits, gboolean is_signed, unsigned rm, unsigned *flags)
{
    uint64_t umax = bits == 64 ? ~0ULL : 0xffffffffULL;
    uint64_t smax = bits == 64 ? (uint64_t)INT64_MAX : (uint64_t)INT32_MAX;
    uint64_t smin = bits == 64 ? (uint64_t)INT64_MIN : (uint64_t)(int64_t)INT32_MIN;
    int sign = fsign(f, a);
    uint64_t result;
    if (is_nan(f, a)) {
        *flags |= RV_FFLAG_NV;
        result = is_signed ? smax : umax;
        goto out;
    }
    if (is_inf(f, a)) {
        *flags |= RV_FFLAG_NV;
        result = is_signed ? (sign ? smin : smax) : (sign ? 0 : umax);
        goto out;
    }
    if (is_zero(f, a)) {
        result = 0;
        goto out;
    }
    uint64_t m;
    int e;
    unpack(f, a, &m, &e);
    uint64_t q;
    gboolean inexact = FALSE, big = FALSE;
    if (e >= 0) {
        if ((63 - __builtin_clzll(m)) + e >= 64) {
            q = ~0ULL;
            big = TRUE;   /* >= 2^64: out of range for every format */
            goto range;
        }
        q = m << e;
    } else {
        u128 rem, half;
        split(m, -e, &q, &rem, &half);
        if (round_up(sign, q, rem, half, rm))
            q++;
        inexact = rem != 0;
    }
range:
    if (is_signed) {
        if (!sign && (big || q > smax)) {
            *flags |= RV_FFLAG_NV;
            result = smax;
            goto out;
        }
        if (sign && (big || q > (uint64_t)0 - smin)) {
            *flags |= RV_FFLAG_NV;
            result = smin;
            goto out;
        }
        result = sign ? (uint64_t)0 - q : q;
    } else {
        if (sign && (big || q)) {
            *flags |= RV_FFLAG_NV;
            result = 0;
            goto out;
        }
        if (big || q > umax) {
            *flags |= RV_FFLAG_NV;
            result = umax;
            goto out;
        }
        result = q;
    }
    if (inexact)
        *flags |= RV_FFLAG_NX;
out:
    if (bits == 32)
        result = (uint64_t)(int64_t)(int32_t)result;
    return result;
}

static uint64_t f_convert(const Fmt *to, const Fmt *from, uint64_t a, unsigned rm, unsigned *flags)
{
    if (is_nan(from, a)) {
        if (is_snan(from, a))
            *flags |= RV_FFLAG_NV;
        return CANON(to);
    }
    uint64_t s = fsign(from, a) ? SIGNBIT(to) : 0;
    if (is_inf(from, a))
        return s | INF(to);
    if (is_zero(from, a))
        return s;
    uint64_t m;
    int e;
    unpack(from, a, &m, &e);
    return round_pack(to, s != 0, e, m, rm, flags);
}

/* -1, 0, 1 for ordered a<b, a==b, a>b; 2 if unordered */
static int f_compare(const Fmt *f, uint64_t a, uint64_t b)
{
    if (is_nan(f, a) || is_nan(f, b))
        return 2;
    if (is_zero(f, a) && is_zero(f, b))
        return 0;
    int sa = fsign(f, a), sb = fsign(f, b);
    if (sa != sb)
        return sa ? -1 : 1;
    uint64_t ma = a & ~SIGNBIT(f), mb = b & ~SIGNBIT(f);
    if (ma == mb)
        return 0;
    int lt = ma < mb;
    if (sa)
        lt = !lt;
    return lt ? -1 : 1;
}

static uint64_t f_minmax(const Fmt *f, uint64_t a, uint64_t b, gboolean is_max, unsigned *flags)
{
    if (is_snan(f, a) || is_snan(f, b))
        *flags |= RV_FFLAG_NV;
    if (is_nan(f, a) && is_nan(f, b))
        return CANON(f);
    if (is_nan(f, a))
        return b;
    if (is_nan(f, b))
        return a;
    if (is_zero(f, a) && is_zero(f, b)) {
        /* -0.0 is less than +0.0 here */
        if (is_max)
            return (fsign(f, a) && fsign(f, b)) ? a : (fsign(f, a) ? b : a);
        return fsign(f, a) ? a : b;
    }
    int c = f_compare(f, a, b);
    if (is_max)
        return c >= 0 ? a : b;
    return c <= 0 ? a : b;
}

static uint64_t f_class(const Fmt *f, uint64_t a)
{
    int s = fsign(f, a);
    if (is_inf(f, a))
        return s ? 1 << 0 : 1 << 7;
    if (is_nan(f, a))
        return is_snan(f, a) ? 1 << 8 : 1 << 9;
    if (is_zero(f, a))
        return s ? 1 << 3 : 1 << 4;
    if (fexp(f, a) == 0)
        return s ? 1 << 2 : 1 << 5;
    return s ? 1 << 1 : 1 << 6;
}

uint64_t ferry_rv_f64_add(uint64_t a, uint64_t b, unsigned rm, unsigned *fl) { return f_add(&F64, a, b, rm, fl); }
uint64_t ferry_rv_f64_mul(uint64_t a, uint64_t b, unsigned rm, unsigned *fl) { return f_mul(&F64, a, b, rm, fl); }
uint64_t ferry_rv_f64_div(uint64_t a, uint64_t b, unsigned rm, unsigned *fl) { return f_div(&F64, a, b, rm, fl); }
uint64_t ferry_rv_f64_sqrt(uint64_t a, unsigned rm, unsigned *fl) { return f_sqrt(&F64, a, rm, fl); }
uint64_t ferry_rv_f64_fma(uint64_t a, uint64_t b, uint64_t c, unsigned rm, unsigned *fl) { return f_fma(&F64, a, b, c, rm, fl); }
uint32_t ferry_rv_f32_add(uint32_t a, uint32_t b, unsigned rm, unsigned *fl) { return (uint32_t)f_add(&F32, a, b, rm, fl); }
uint32_t ferry_rv_f32_mul(uint32_t a, uint32_t b, unsigned rm, unsigned *fl) { return (uint32_t)f_mul(&F32, a, b, rm, fl); }
uint32_t ferry_rv_f32_div(uint32_t a, uint32_t b, unsigned rm, unsigned *fl) { return (uint32_t)f_div(&F32, a, b, rm, fl); }
uint32_t ferry_rv_f32_fma(uint32_t a, uint32_t b, uint32_t c, unsigned rm, unsigned *fl) { return (uint32_t)f_fma(&F32, a, b, c, rm, fl); }

#define BOX32 0xffffffff00000000ULL

/* f register -> operand of format fmt (0 = S, 1 = D); improperly boxed S is canonical NaN */
static inline uint64_t fget(const uint64_t *f, unsigned r, unsigned fmt)
{
    if (fmt)
        return f[r];
    if ((f[r] & BOX32) != BOX32)
        return CANON(&F32);
    return f[r] & 0xffffffffULL;
}

static inline void fput(uint64_t *f, unsigned r, unsigned fmt, uint64_t v)
{
    f[r] = fmt ? v : (v | BOX32);
}

/* ---- host fast path (x86-64): SSE arithmetic with MXCSR holding the guest rounding
 * mode.  SSE rounds, detects tininess after rounding and raises flags as IEEE 754 (and
 * RISC-V) require, with FTZ/DAZ off.  While guest FP runs on a thread, MXCSR belongs to
 * it: its sticky flags are the guest's accrued flags since the last harvest, and
 * ferry_rv_fp_suspend() folds them into fflags and gives the host its MXCSR back.
 * NaN operands and RMM take the soft path (RISC-V NaN rules differ from x86's); a NaN
 * result is made canonical.  FERRY_RV_SOFTFLOAT=1 in the environment disables it. */
#if defined(__x86_64__)
enum { HOP_ADD, HOP_SUB, HOP_MUL, HOP_DIV, HOP_SQRT, HOP_FMA };

static int host_fp_state;   /* 0 unknown, 1 on, -1 off */
static gboolean host_fma;

static __thread struct {
    gboolean active;        /* MXCSR holds guest state */
    uint32_t host;          /* the host's MXCSR, restored by ferry_rv_fp_suspend() */
    uint32_t ctl;           /* guest control bits now loaded */
} fpt;

static gboolean host_fp_enabled(void)
{
    int st = __atomic_load_n(&host_fp_state, __ATOMIC_RELAXED);
    if (G_LIKELY(st))
        return st > 0;
    const char *e = g_getenv("FERRY_RV_SOFTFLOAT");
    host_fma = __builtin_cpu_supports("fma");
    st = (e && *e && *e != '0') ? -1 : 1;
    __atomic_store_n(&host_fp_state, st, __ATOMIC_RELAXED);
    return st > 0;
}

static inline unsigned mxcsr_flags(uint32_t m)
{
    return ((m & 1) ? RV_FFLAG_NV : 0) | ((m & 4) ? RV_FFLAG_DZ : 0) | ((m & 8) ? RV_FFLAG_OF : 0) |
           ((m & 16) ? RV_FFLAG_UF : 0) | ((m & 32) ? RV_FFLAG_NX : 0);
}

static inline uint32_t get_mxcsr(void)
{
    uint32_t m;
    __asm__ volatile("stmxcsr %0" : "=m"(m));
    return m;
}

static inline void set_mxcsr(uint32_t m)
{
    __asm__ volatile("ldmxcsr %0" :: "m"(m));
}

void ferry_rv_fp_suspend(unsigned *fflags)
{
    if (!fpt.active)
        return;
    *fflags |= mxcsr_flags(get_mxcsr());
    set_mxcsr(fpt.host);
    fpt.active = FALSE;
}

/* RISC-V rm (0-3) -> MXCSR: all exceptions masked, RC = RNE 0, RDN 1, RUP 2, RTZ 3 */
static const uint32_t ctl_of_rm[4] = { 0x1f80 | (0u << 13), 0x1f80 | (3u << 13),
                                       0x1f80 | (1u << 13), 0x1f80 | (2u << 13) };

static inline gboolean host_begin(unsigned rm, unsigned *fl)
{
    uint32_t ctl = ctl_of_rm[rm];
    if (G_LIKELY(fpt.active)) {
        if (G_LIKELY(fpt.ctl == ctl))
            return TRUE;
        uint32_t m = get_mxcsr();
        *fl |= mxcsr_flags(m);
    } else {
        if (!host_fp_enabled())
            return FALSE;
        fpt.host = get_mxcsr();
        fpt.active = TRUE;
    }
    fpt.ctl = ctl;
    set_mxcsr(ctl);
    return TRUE;
}

#define HOST_BIN(insn, T) __asm__ volatile(insn " %1, %0" : "+x"(x) : "x"(y) : "memory")

/* Returns FALSE if the soft path must handle it. */
static gboolean host_f64(unsigned op, uint64_t a, uint64_t b, uint64_t c, unsigned rm, unsigned *fl, uint64_t *out)
{
    if (rm > RV_RM_RUP || is_nan(&F64, a) || is_nan(&F64, b) ||
        (op == HOP_FMA && (is_nan(&F64, c) || !host_fma)) || !host_begin(rm, fl))
        return FALSE;
    double x, y, z;
    memcpy(&x, &a, 8);
    memcpy(&y, &b, 8);
    memcpy(&z, &c, 8);
    switch (op) {
    case HOP_ADD: HOST_BIN("addsd", double); break;
    case HOP_SUB: HOST_BIN("subsd", double); break;
    case HOP_MUL: HOST_BIN("mulsd", double); break;
    case HOP_DIV: HOST_BIN("divsd", double); break;
    case HOP_SQRT: __asm__ volatile("sqrtsd %0, %0" : "+x"(x) :: "memory"); break;
    default: __asm__ volatile("vfmadd213sd %2, %1, %0" : "+x"(x) : "x"(y), "x"(z) : "memory"); break;
    }
    uint64_t r;
    memcpy(&r, &x, 8);
    *out = is_nan(&F64, r) ? CANON(&F64) : r;
    return TRUE;
}

static gboolean host_f32(unsigned op, uint64_t a, uint64_t b, uint64_t c, unsigned rm, unsigned *fl, uint64_t *out)
{
    if (rm > RV_RM_RUP || is_nan(&F32, a) || is_nan(&F32, b) ||
        (op == HOP_FMA && (is_nan(&F32, c) || !host_fma)) || !host_begin(rm, fl))
        return FALSE;
    float x, y, z;
    uint32_t a32 = (uint32_t)a, b32 = (uint32_t)b, c32 = (uint32_t)c;
    memcpy(&x, &a32, 4);
    memcpy(&y, &b32, 4);
    memcpy(&z, &c32, 4);
    switch (op) {
    case HOP_ADD: HOST_BIN("addss", float); break;
    case HOP_SUB: HOST_BIN("subss", float); break;
    case HOP_MUL: HOST_BIN("mulss", float); break;
    case HOP_DIV: HOST_BIN("divss", float); break;
    case HOP_SQRT: __asm__ volatile("sqrtss %0, %0" : "+x"(x) :: "memory"); break;
    default: __asm__ volatile("vfmadd213ss %2, %1, %0" : "+x"(x) : "x"(y), "x"(z) : "memory"); break;
    }
    uint32_t r;
    memcpy(&r, &x, 4);
    *out = is_nan(&F32, r) ? CANON(&F32) : r;
    return TRUE;
}

static inline gboolean host_op(const Fmt *F, unsigned op, uint64_t a, uint64_t b, uint64_t c, unsigned rm,
                               unsigned *fl, uint64_t *out)
{
    return F == &F64 ? host_f64(op, a, b, c, rm, fl, out) : host_f32(op, a, b, c, rm, fl, out);
}
#else
enum { HOP_ADD, HOP_SUB, HOP_MUL, HOP_DIV, HOP_SQRT, HOP_FMA };

void ferry_rv_fp_suspend(unsigned *fflags)
{
    (void)fflags;
}

static inline gboolean host_op(const Fmt *F, unsigned op, uint64_t a, uint64_t b, uint64_t c, unsigned rm,
                               unsigned *fl, uint64_t *out)
{
    (void)F; (void)op; (void)a; (void)b; (void)c; (void)rm; (void)fl; (void)out;
    return FALSE;
}
#endif

gboolean ferry_rv_fp_exec(uint32_t insn, uint64_t *x, uint64_t *f, unsigned frm, unsigned *fflags)
{
    unsigned opcode = insn & 0x7f;
    unsigned rd = (insn >> 7) & 31, rm = (insn >> 12) & 7;
    unsigned rs1 = (insn >> 15) & 31, rs2 = (insn >> 20) & 31, rs3 = insn >> 27;
    unsigned fmt = (insn >> 25) & 3;
    unsigned funct7 = insn >> 25;
    unsigned fl = 0;
    unsigned erm = rm == RV_RM_DYN ? frm : rm;
    gboolean rm_ok = erm <= RV_RM_RMM;
    const Fmt *F;
    uint64_t r;

    if (opcode != 0x53) {
        /* FMADD 0x43, FMSUB 0x47, FNMSUB 0x4b, FNMADD 0x4f */
        if (fmt > 1 || !rm_ok)
            return FALSE;
        F = fmt ? &F64 : &F32;
        uint64_t a = fget(f, rs1, fmt), b = fget(f, rs2, fmt), c = fget(f, rs3, fmt);
        /* negating a NaN operand would not change the result (always canonical) */
        if (opcode == 0x47 || opcode == 0x4f)
            c ^= is_nan(F, c) ? 0 : SIGNBIT(F);
        if (opcode == 0x4b || opcode == 0x4f)
            a ^= is_nan(F, a) ? 0 : SIGNBIT(F);
        if (!host_op(F, HOP_FMA, a, b, c, erm, &fl, &r))
            r = f_fma(F, a, b, c, erm, &fl);
        fput(f, rd, fmt, r);
        *fflags |= fl;
        return TRUE;
    }

    fmt = funct7 & 1;
    if ((funct7 & 2))
        return FALSE;   /* H and Q formats are not implemented */
    F = fmt ? &F64 : &F32;
    uint64_t a = fget(f, rs1, fmt), b = fget(f, rs2, fmt);

    switch (funct7 >> 2) {
    case 0x00: /* FADD */
    case 0x01: /* FSUB */
        if (!rm_ok)
            return FALSE;
        if ((funct7 >> 2) == 1 && !is_nan(F, b))
            b ^= SIGNBIT(F);
        if (!host_op(F, HOP_ADD, a, b, 0, erm, &fl, &r))
            r = f_add(F, a, b, erm, &fl);
        fput(f, rd, fmt, r);
        break;
    case 0x02: /* FMUL */
        if (!rm_ok)
            return FALSE;
        if (!host_op(F, HOP_MUL, a, b, 0, erm, &fl, &r))
            r = f_mul(F, a, b, erm, &fl);
        fput(f, rd, fmt, r);
        break;
    case 0x03: /* FDIV */
        if (!rm_ok)
            return FALSE;
        if (!host_op(F, HOP_DIV, a, b, 0, erm, &fl, &r))
            r = f_div(F, a, b, erm, &fl);
        fput(f, rd, fmt, r);
        break;
    case 0x0b: /* FSQRT */
        if (!rm_ok || rs2)
            return FALSE;
        if (!host_op(F, HOP_SQRT, a, 0, 0, erm, &fl, &r))
            r = f_sqrt(F, a, erm, &fl);
        fput(f, rd, fmt, r);
        break;
    case 0x04: /* FSGNJ, FSGNJN, FSGNJX */
        if (rm == 0)
            r = (a & ~SIGNBIT(F)) | (b & SIGNBIT(F));
        else if (rm == 1)
            r = (a & ~SIGNBIT(F)) | (~b & SIGNBIT(F));
        else if (rm == 2)
            r = a ^ (b & SIGNBIT(F));
        else
            return FALSE;
        fput(f, rd, fmt, r);
        break;
    case 0x05: /* FMIN, FMAX */
        if (rm > 1)
            return FALSE;
        fput(f, rd, fmt, f_minmax(F, a, b, rm == 1, &fl));
        break;
    case 0x08: /* FCVT.S.D (fmt S, rs2 = 1), FCVT.D.S (fmt D, rs2 = 0) */
        if (!rm_ok || rs2 != (fmt ? 0u : 1u))
            return FALSE;
        if (fmt)
            r = f_convert(&F64, &F32, fget(f, rs1, 0), erm, &fl);
        else
            r = f_convert(&F32, &F64, fget(f, rs1, 1), erm, &fl);
        fput(f, rd, fmt, r);
        break;
    case 0x14: { /* FLE, FLT, FEQ */
        int c = f_compare(F, a, b);
        if (rm == 2) {
            if (is_snan(F, a) || is_snan(F, b))
                fl |= RV_FFLAG_NV;
            r = c == 0;
        } else if (rm <= 1) {
            if (c == 2)
                fl |= RV_FFLAG_NV;
            r = rm == 1 ? c == -1 : (c == -1 || c == 0);
        } else {
            return FALSE;
        }
        if (rd)
            x[rd] = r;
        break;
    }
    case 0x18: /* FCVT.{W,WU,L,LU}.fmt */
        if (!rm_ok || rs2 > 3)
            return FALSE;
        r = f_to_int(F, a, rs2 & 2 ? 64 : 32, !(rs2 & 1), erm, &fl);
        if (rd)
            x[rd] = r;
        break;
    case 0x1a: { /* FCVT.fmt.{W,WU,L,LU} */
        if (!rm_ok || rs2 > 3)
            return FALSE;
        uint64_t v = x[rs1];
        int sign = 0;
        switch (rs2) {
        case 0: { int64_t s = (int32_t)v; sign = s < 0; v = sign ? (uint64_t)0 - (uint64_t)s : (uint64_t)s; break; }
        case 1: v = (uint32_t)v; break;
        case 2: { int64_t s = (int64_t)v; sign = s < 0; v = sign ? (uint64_t)0 - v : v; break; }
        default: break;
        }
        fput(f, rd, fmt, f_from_int(F, sign, v, erm, &fl));
        break;
    }
    case 0x1c: /* FMV.X.{W,D}, FCLASS */
        if (rs2)
            return FALSE;
        if (rm == 0)
            r = fmt ? f[rs1] : (uint64_t)(int64_t)(int32_t)f[rs1];
        else if (rm == 1)
            r = f_class(F, a);
        else
            return FALSE;
        if (rd)
            x[rd] = r;
        break;
    case 0x1e: /* FMV.{W,D}.X */
        if (rs2 || rm)
            return FALSE;
        fput(f, rd, fmt, fmt ? x[rs1] : (x[rs1] & 0xffffffffULL));
        break;
    default:
        return FALSE;
    }
    *fflags |= fl;
    return TRUE;
}
