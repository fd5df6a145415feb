/* Benchmark and differential test: an integer mix (sieve, quicksort, CRC-32, string
 * hashing with calls) and a small double-precision kernel; prints checksums.
 * `rv-run -b` prints MIPS; compare the wall time with qemu-riscv64 on the same ELF. */
#include "rt.h"

static uint32_t seed = 12345;
static uint32_t rnd(void) { seed = seed * 1103515245u + 12345u; return seed >> 1; }

static uint8_t sieve[1 << 20];
static uint32_t arr[1 << 17];
static double ma[64][64], mb[64][64], mc[64][64];

static unsigned do_sieve(void)
{
    unsigned n = sizeof(sieve), count = 0;
    for (unsigned i = 0; i < n; i++)
        sieve[i] = 1;
    for (unsigned i = 2; i * i < n; i++)
        if (sieve[i])
            for (unsigned j = i * i; j < n; j += i)
                sieve[j] = 0;
    for (unsigned i = 2; i < n; i++)
        count += sieve[i];
    return count;
}

static void qsort_u32(uint32_t *a, long lo, long hi)
{
    while (lo < hi) {
        uint32_t p = a[(lo + hi) / 2];
        long i = lo, j = hi;
        while (i <= j) {
            while (a[i] < p) i++;
            while (a[j] > p) j--;
            if (i <= j) { uint32_t t = a[i]; a[i] = a[j]; a[j] = t; i++; j--; }
        }
        if (j - lo < hi - i) { qsort_u32(a, lo, j); lo = i; }
        else { qsort_u32(a, i, hi); hi = j; }
    }
}

static uint32_t crc32(const uint8_t *p, unsigned long n)
{
    uint32_t c = 0xffffffffu;
    while (n--) {
        c ^= *p++;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & -(c & 1));
    }
    return ~c;
}

static __attribute__((noinline)) uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    while (*s)
        h = (h ^ (uint8_t)*s++) * 1099511628211ULL;
    return h;
}

int main(void)
{
    uint64_t sum = 0;
    for (int round = 0; round < 3; round++) {
        sum += do_sieve();
        for (unsigned i = 0; i < sizeof(arr) / sizeof(arr[0]); i++)
            arr[i] = rnd();
        qsort_u32(arr, 0, sizeof(arr) / sizeof(arr[0]) - 1);
        for (unsigned i = 1; i < sizeof(arr) / sizeof(arr[0]); i++)
            if (arr[i - 1] > arr[i])
                sum += 1000000;
        sum += arr[777];
        sum += crc32(sieve, 1 << 18);
        char buf[32];
        for (int i = 0; i < 100000; i++) {
            for (int k = 0; k < 16; k++)
                buf[k] = (char)('a' + ((i >> k) & 15));
            buf[16] = 0;
            sum ^= hash_str(buf);
        }
    }
    rt_puts("int ");
    rt_hex64(sum);
    rt_putc('\n');
    for (int i = 0; i < 64; i++)
        for (int j = 0; j < 64; j++) {
            ma[i][j] = (double)(rnd() % 1000) / 7.0;
            mb[i][j] = (double)(rnd() % 1000) / 13.0;
        }
    double tr = 0;
    for (int r = 0; r < 4; r++) {
        for (int i = 0; i < 64; i++)
            for (int j = 0; j < 64; j++) {
                double s = 0;
                for (int k = 0; k < 64; k++)
                    s += ma[i][k] * mb[k][j];
                mc[i][j] = s;
            }
        for (int i = 0; i < 64; i++)
            tr += mc[i][i];
    }
    union { double d; uint64_t u; } u = { .d = tr };
    rt_puts("fp ");
    rt_hex64(u.u);
    rt_putc('\n');
    rt_flush();
    return 0;
}
