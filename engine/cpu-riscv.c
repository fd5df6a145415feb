/* RV64GC software hart: interpreter for RV64 I M A F D C Zicsr Zifencei with M, S and
 * U modes, Sv39/Sv48 paging, software TLB and a predecoded-instruction cache.
 * Unprivileged ISA 20191213, privileged ISA 20211203.
 *
 * Design:
 *  - Instructions are predecoded per physical 4 KiB page into RvPage: one 16-byte slot
 *    per halfword (handler address, imm, rd, rs1, rs2), filled lazily on first
 *    execution, plus two sentinel slots past the end that lead to the next-page fetch.
 *    Dispatch is threaded (GCC labels as values): each handler ends in `goto *ins->h`.
 *    Every handler exists twice (4-byte and compressed encoding) so the step to the next
 *    slot is a constant: with the length loaded from the slot the dispatch chain had a
 *    load in it and ran at ~500 MIPS; with constant steps ~1100 MIPS.  Straight-line code
 *    steps to the next slot without any lookup; a taken branch within the page is an
 *    index computation; leaving the page goes through a 1024-entry iTLB that maps a
 *    virtual page straight to its RvPage.  (64 entries missed about 100 times per 4 KiB
 *    disk request in Linux's block path, each miss a page walk.)  Budget, kicks and interrupt lines are checked
 *    on every taken branch and page change, so a slice is bounded and an interrupt is
 *    seen within one basic block.  A block cache (superblocks) was not needed to reach
 *    the target, and would complicate precise traps.
 *  - Measured (AMD EPYC, 2-core CI box, gcc -O2, user CPU time, same static ELF):
 *      tests/riscv/bench-loop.S (1e9 integer instructions): Ferry 0.82 s = 1150 MIPS,
 *          qemu-riscv64 7.2 TCG 0.14 s = 7100 MIPS  -> 5.9x
 *      tests/riscv/bench-mix.c (sieve, qsort, crc32, hashing; 262M instructions):
 *          Ferry 0.27 s = 970 MIPS, qemu-riscv64 0.07 s -> 3.9x
 *      a double-precision fmadd/fadd loop (113M instructions): Ferry 0.33 s, qemu 0.10 s
 *    Linux 6.1 + OpenSBI 1.1 + busybox initramfs boots to init and powers off in 0.5 s
 *    (94M instructions, 1 hart).
 *  - Straight runs of integer code are translated to x86-64 on their first decode
 *    (cpu-riscv-jit.c): the run's first slot then holds the block (op_jit), which does
 *    the whole run, loads and stores included, and leaves through a side exit for
 *    anything its inline TLB fast path cannot do (jit_side runs that instruction here).
 *    Blocks of one page chain into each other without coming back here. In the riscv
 *    guest (tests/bench/block-guest.sh), 1 MiB sequential disk reads went from ~3000
 *    MB/s interpreted to ~4000 with blocks and ~5700 with chaining, random 4 KiB reads
 *    from ~19k to ~37k and ~70k IOPS.
 *  - Data accesses go through a per-hart, per-privilege software TLB (1024 entries for
 *    loads, 1024 for stores; a flush clears only the entries filled since the last one)
 *    mapping a virtual page to a host addend; the tag compare also checks natural
 *    alignment, so the fast path is one compare.  Entries are filled only
 *    after the page walk and the RAM bounds check; MMIO and misaligned accesses take the
 *    slow path.  Stores never get a fast-path entry for a page holding decoded code, so a
 *    store there invalidates the decoded slots of that page (self-modifying code works
 *    even without FENCE.I).  FENCE.I drops every decoded page.
 *  - Misaligned loads and stores raise address-misaligned exceptions (OpenSBI emulates
 *    them for S/U); misaligned AMO/LR/SC too.
 *  - LR/SC across harts on different host threads: LR counts a reservation on its RAM
 *    page in state shared by every hart on that RAM; while the count is nonzero, stores
 *    and AMOs to the page (checked on the fast path too) take a per-address-bucket
 *    seqlock and bump its generation.  SC succeeds only if the bucket generation is
 *    unchanged since LR and the word still holds the LR value (host CAS), holding the
 *    bucket while it writes: a store by any hart between LR and SC, ABA included, makes
 *    it fail.  A store another hart already had in flight when LR started (at most one
 *    per hart, past its check) is caught by the value compare unless it leaves the LR
 *    value in place, which is indistinguishable from it landing just before the LR; only
 *    two such racing stores restoring the value (an ABA inside a few host instructions)
 *    would go unseen.  Reservations drop at SC, traps and xRET; SC may fail spuriously
 *    (bucket collisions).
 *  - A/D bits are set by the page walker with a host CAS on the PTE.
 *  - No PMP enforcement (CSRs are storage), no ASIDs (ASIDLEN = 0), no Sstc, no H. */
#include "cpu-riscv-private.h"

#include <stdatomic.h>
#include <string.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "cpu-riscv.c assumes a little-endian host"
#endif

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define PG_SHIFT    12
#define PG_SIZE     4096ULL
#define PG_MASK     (~(PG_SIZE - 1))
#define TLB_BITS    10
#define TLB_N       (1u << TLB_BITS)
#define ITLB_BITS   10
#define ITLB_N      (1u << ITLB_BITS)
#define SLOTS       (PG_SIZE / 2)
#define MAX_DECODED_PAGES 1536
#define TLB_INVALID (~0ULL)
#define TLB_USED_MAX 512

enum { PRV_U = 0, PRV_S = 1, PRV_M = 3 };
enum { ACC_R = 0, ACC_W = 1, ACC_X = 2 };

#define MSTATUS_SIE   (1ULL << 1)
#define MSTATUS_MIE   (1ULL << 3)
#define MSTATUS_SPIE  (1ULL << 5)
#define MSTATUS_MPIE  (1ULL << 7)
#define MSTATUS_SPP   (1ULL << 8)
#define MSTATUS_MPP   (3ULL << 11)
#define MSTATUS_FS    (3ULL << 13)
#define MSTATUS_MPRV  (1ULL << 17)
#define MSTATUS_SUM   (1ULL << 18)
#define MSTATUS_MXR   (1ULL << 19)
#define MSTATUS_TVM   (1ULL << 20)
#define MSTATUS_TW    (1ULL << 21)
#define MSTATUS_TSR   (1ULL << 22)
#define MSTATUS_UXL   (3ULL << 32)
#define MSTATUS_SXL   (3ULL << 34)
#define MSTATUS_SD    (1ULL << 63)
#define MSTATUS_WMASK (MSTATUS_SIE | MSTATUS_MIE | MSTATUS_SPIE | MSTATUS_MPIE | MSTATUS_SPP | \
                       MSTATUS_MPP | MSTATUS_FS | MSTATUS_MPRV | MSTATUS_SUM | MSTATUS_MXR | \
                       MSTATUS_TVM | MSTATUS_TW | MSTATUS_TSR)
#define SSTATUS_WMASK (MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP | MSTATUS_FS | MSTATUS_SUM | MSTATUS_MXR)
#define SSTATUS_RMASK (SSTATUS_WMASK | MSTATUS_UXL | MSTATUS_SD)

#define MIP_SSIP (1ULL << 1)
#define MIP_MSIP (1ULL << 3)
#define MIP_STIP (1ULL << 5)
#define MIP_MTIP (1ULL << 7)
#define MIP_SEIP (1ULL << 9)
#define MIP_MEIP (1ULL << 11)
#define MIP_S_MASK (MIP_SSIP | MIP_STIP | MIP_SEIP)
#define MIE_MASK (MIP_S_MASK | MIP_MSIP | MIP_MTIP | MIP_MEIP)
#define MEDELEG_MASK 0xb3ffULL

#define CAUSE_INTERRUPT (1ULL << 63)
enum {
    EXC_INSN_MISALIGNED = 0, EXC_INSN_ACCESS = 1, EXC_ILLEGAL = 2, EXC_BREAKPOINT = 3,
    EXC_LOAD_MISALIGNED = 4, EXC_LOAD_ACCESS = 5, EXC_STORE_MISALIGNED = 6, EXC_STORE_ACCESS = 7,
    EXC_ECALL_U = 8, EXC_ECALL_S = 9, EXC_ECALL_M = 11,
    EXC_INSN_PAGE = 12, EXC_LOAD_PAGE = 13, EXC_STORE_PAGE = 15,
};

#define PTE_V (1ULL << 0)
#define PTE_R (1ULL << 1)
#define PTE_W (1ULL << 2)
#define PTE_X (1ULL << 3)
#define PTE_U (1ULL << 4)
#define PTE_A (1ULL << 6)
#define PTE_D (1ULL << 7)

#define MISA_VALUE ((2ULL << 62) | (1 << 0) | (1 << 2) | (1 << 3) | (1 << 5) | (1 << 8) | \
                    (1 << 12) | (1 << 18) | (1 << 20))

enum { REQ_IRQ = 1, REQ_KICK = 2 };

/* One decoded instruction.  rd is 32 (a write-only sink) when the destination is x0.
 * The first instruction of a translated block (cpu-riscv-jit.c) holds the block
 * instead, with h = op_jit. */
typedef struct {
    const void *h;
    union {
        struct {
            int32_t imm;
            uint8_t rd, rs1, rs2, len;
        };
        void *jit;
    };
} RvInsn;

typedef struct {
    uint8_t *host;              /* host address of the physical page */
    uint64_t ram_index;         /* page index within RAM */
    RvInsn slot[SLOTS + 2];     /* + 2 sentinels: next-page fetch */
} RvPage;

typedef struct {
    uint64_t tag;               /* virtual page, TLB_INVALID when empty */
    uintptr_t addend;           /* host = addend + vaddr */
} RvTlbEntry;

typedef struct {
    RvTlbEntry r[TLB_N];
    RvTlbEntry w[TLB_N];
} RvDTlb;

typedef struct {
    uint64_t tag;
    RvPage *page;
} RvITlbEntry;

/* The entries of one privilege's TLBs filled since its last flush, so that
 * a flush (SFENCE.VMA, satp, SUM/MXR changes: thousands while Linux boots)
 * touches those rather than all 2 * TLB_N + ITLB_N. n > TLB_USED_MAX: too
 * many to list, the flush clears everything. */
typedef struct {
    uint64_t *tag[TLB_USED_MAX];
    unsigned n;
} RvTlbUsed;

/* State shared by all harts on the same guest RAM, for LR/SC across host threads:
 * per RAM page the number of reservations held there (stores to such a page take the
 * locked path), and per address bucket a generation counter used as a tiny seqlock:
 * odd while a store or an SC to the bucket is in progress, +2 per completed store. */
#define RES_BUCKETS 1024
typedef struct {
    uint8_t *ram;
    unsigned refs;
    uint8_t *watch;
    uint64_t gen[RES_BUCKETS];
} RvShared;

struct FerryRvHart {
    uint64_t x[33];             /* x[32] is the sink for writes to x0 */
    uint64_t f[32];
    uint64_t pc;
    unsigned priv;
    RvDTlb *dtlb;               /* set for the effective data privilege */
    RvITlbEntry *itlb;          /* set for the current privilege */
    atomic_int exit_req;
    _Atomic uint64_t mip_ext;   /* MSIP, MTIP, MEIP, SEIP lines */
    uint64_t mip_sw;            /* SSIP, STIP, SEIP written by software */

    unsigned fflags, frm;
    uint64_t mstatus, misa, medeleg, mideleg, mie, mtvec, mcounteren, menvcfg, mscratch;
    uint64_t mepc, mcause, mtval, mcountinhibit;
    uint64_t stvec, scounteren, senvcfg, sscratch, sepc, scause, stval, satp;
    uint64_t pmpcfg[16], pmpaddr[64];
    uint64_t hartid;
    uint64_t instret, cur_n, cycle_offset;

    /* LR/SC reservation: host address, the value LR read, the bucket generation seen */
    RvShared *sh;
    uintptr_t watch_adj;        /* sh->watch - (ram >> 12): watch byte of a host address */
    uintptr_t res_host;         /* 0: no reservation held */
    uint64_t res_val, res_gen;

    FerryRvBus bus;
    uint64_t ram_pages;
    RvPage **pages;             /* per RAM page, decoded instructions or NULL */
    uint8_t *code;              /* per RAM page: 1 if slots may be live (no store fast path) */
    unsigned n_pages;
    const void *lbl_decode, *lbl_pageend, *lbl_jit;
    RvJit *jit;                 /* NULL: interpret everything */
    RvInsn xins[3];             /* an instruction crossing a page boundary, + sentinels */

    uint64_t *decoded;          /* the RAM page indices in pages[], n_pages of them */

    RvDTlb dtlbs[4];
    RvITlbEntry itlbs[4][ITLB_N];
    RvTlbUsed tlb_used[4];
};

/* ------------------------------------------------------------------------------------- */
/* Decoder */

/* RV_OPS, Decoded: cpu-riscv-private.h */

/* sign-extends the low `bits` bits of v (shifts on unsigned: no UB) */
static inline int32_t sext(uint32_t v, unsigned bits)
{
    return (int32_t)(v << (32 - bits)) >> (32 - bits);
}
static inline int32_t imm_i(uint32_t i) { return (int32_t)i >> 20; }
static inline int32_t imm_s(uint32_t i) { return sext(((i >> 25) << 5) | ((i >> 7) & 31), 12); }
static inline int32_t imm_b(uint32_t i)
{
    return sext(((i >> 31) << 12) | (((i >> 7) & 1) << 11) | (((i >> 25) & 63) << 5) |
                (((i >> 8) & 15) << 1), 13);
}
static inline int32_t imm_j(uint32_t i)
{
    return sext(((i >> 31) << 20) | (i & 0xff000) | (((i >> 20) & 1) << 11) |
                (((i >> 21) & 1023) << 1), 21);
}

/* Integer destination: x0 goes to the sink register. */
static inline unsigned xd(unsigned rd) { return rd ? rd : 32; }

static void decode32(uint32_t i, Decoded *d)
{
    unsigned opc = i & 0x7f, rd = (i >> 7) & 31, f3 = (i >> 12) & 7;
    unsigned rs1 = (i >> 15) & 31, rs2 = (i >> 20) & 31, f7 = i >> 25;
    d->op = OP_ILLEGAL;
    d->imm = 0;
    d->rd = xd(rd);
    d->rs1 = rs1;
    d->rs2 = rs2;
    switch (opc) {
    case 0x37:
        d->op = OP_LUI;
        d->imm = (int32_t)(i & 0xfffff000);
        break;
    case 0x17:
        d->op = OP_AUIPC;
        d->imm = (int32_t)(i & 0xfffff000);
        break;
    case 0x6f:
        d->op = OP_JAL;
        d->imm = imm_j(i);
        break;
    case 0x67:
        if (f3 == 0) {
            d->op = OP_JALR;
            d->imm = imm_i(i);
        }
        break;
    case 0x63: {
        static const unsigned ops[8] = { OP_BEQ, OP_BNE, OP_ILLEGAL, OP_ILLEGAL,
                                         OP_BLT, OP_BGE, OP_BLTU, OP_BGEU };
        d->op = ops[f3];
        d->imm = imm_b(i);
        break;
    }
    case 0x03: {
        static const unsigned ops[8] = { OP_LB, OP_LH, OP_LW, OP_LD, OP_LBU, OP_LHU, OP_LWU, OP_ILLEGAL };
        d->op = ops[f3];
        d->imm = imm_i(i);
        break;
    }
    case 0x23: {
        static const unsigned ops[8] = { OP_SB, OP_SH, OP_SW, OP_SD, OP_ILLEGAL, OP_ILLEGAL,
                                         OP_ILLEGAL, OP_ILLEGAL };
        d->op = ops[f3];
        d->imm = imm_s(i);
        break;
    }
    case 0x13:
        d->imm = imm_i(i);
        switch (f3) {
        case 0: d->op = OP_ADDI; break;
        case 2: d->op = OP_SLTI; break;
        case 3: d->op = OP_SLTIU; break;
        case 4: d->op = OP_XORI; break;
        case 6: d->op = OP_ORI; break;
        case 7: d->op = OP_ANDI; break;
        case 1:
            if ((i >> 26) == 0) {
                d->op = OP_SLLI;
                d->imm &= 63;
            }
            break;
        case 5:
            if ((i >> 26) == 0)
                d->op = OP_SRLI;
            else if ((i >> 26) == 0x10)
                d->op = OP_SRAI;
            d->imm &= 63;
            break;
        }
        if (d->op == OP_ADDI && rd == 0 && rs1 == 0)
            d->op = OP_NOP;
        else if (d->op == OP_ADDI && rs1 == 0)
            d->op = OP_LI;
        else if (d->op == OP_ADDI && d->imm == 0)
            d->op = OP_MV;
        break;
    case 0x1b:
        d->imm = imm_i(i);
        if (f3 == 0) {
            d->op = OP_ADDIW;
        } else if (f3 == 1 && f7 == 0) {
            d->op = OP_SLLIW;
            d->imm = rs2;
        } else if (f3 == 5 && f7 == 0) {
            d->op = OP_SRLIW;
            d->imm = rs2;
        } else if (f3 == 5 && f7 == 0x20) {
            d->op = OP_SRAIW;
            d->imm = rs2;
        }
        break;
    case 0x33:
        if (f7 == 0) {
            static const unsigned ops[8] = { OP_ADD, OP_SLL, OP_SLT, OP_SLTU, OP_XOR, OP_SRL, OP_OR, OP_AND };
            d->op = ops[f3];
        } else if (f7 == 0x20) {
            if (f3 == 0)
                d->op = OP_SUB;
            else if (f3 == 5)
                d->op = OP_SRA;
        } else if (f7 == 1) {
            static const unsigned ops[8] = { OP_MUL, OP_MULH, OP_MULHSU, OP_MULHU,
                                             OP_DIV, OP_DIVU, OP_REM, OP_REMU };
            d->op = ops[f3];
        }
        break;
    case 0x3b:
        if (f7 == 0) {
            if (f3 == 0) d->op = OP_ADDW;
            else if (f3 == 1) d->op = OP_SLLW;
            else if (f3 == 5) d->op = OP_SRLW;
        } else if (f7 == 0x20) {
            if (f3 == 0) d->op = OP_SUBW;
            else if (f3 == 5) d->op = OP_SRAW;
        } else if (f7 == 1) {
            if (f3 == 0) d->op = OP_MULW;
            else if (f3 == 4) d->op = OP_DIVW;
            else if (f3 == 5) d->op = OP_DIVUW;
            else if (f3 == 6) d->op = OP_REMW;
            else if (f3 == 7) d->op = OP_REMUW;
        }
        break;
    case 0x0f:
        if (f3 == 0) {
            d->op = OP_FENCE;
            d->imm = (i >> 20) & 0xff;   /* pred (PI PO PR PW), succ (SI SO SR SW) */
        } else if (f3 == 1)
            d->op = OP_FENCE_I;
        break;
    case 0x73:
        d->imm = (int32_t)(i >> 20);   /* csr number */
        switch (f3) {
        case 0:
            if (i == 0x00000073) d->op = OP_ECALL;
            else if (i == 0x00100073) d->op = OP_EBREAK;
            else if (i == 0x30200073) d->op = OP_MRET;
            else if (i == 0x10200073) d->op = OP_SRET;
            else if (i == 0x10500073) d->op = OP_WFI;
            else if (f7 == 0x09 && rd == 0) d->op = OP_SFENCE_VMA;
            break;
        case 1: d->op = OP_CSRRW; break;
        case 2: d->op = OP_CSRRS; break;
        case 3: d->op = OP_CSRRC; break;
        case 5: d->op = OP_CSRRWI; break;
        case 6: d->op = OP_CSRRSI; break;
        case 7: d->op = OP_CSRRCI; break;
        }
        break;
    case 0x2f: {
        unsigned f5 = i >> 27;
        if (f3 != 2 && f3 != 3)
            break;
        gboolean dw = f3 == 3;
        switch (f5) {
        case 0x02: if (rs2 == 0) d->op = dw ? OP_LR_D : OP_LR_W; break;
        case 0x03: d->op = dw ? OP_SC_D : OP_SC_W; break;
        case 0x01: d->op = dw ? OP_AMOSWAP_D : OP_AMOSWAP_W; break;
        case 0x00: d->op = dw ? OP_AMOADD_D : OP_AMOADD_W; break;
        case 0x04: d->op = dw ? OP_AMOXOR_D : OP_AMOXOR_W; break;
        case 0x0c: d->op = dw ? OP_AMOAND_D : OP_AMOAND_W; break;
        case 0x08: d->op = dw ? OP_AMOOR_D : OP_AMOOR_W; break;
        case 0x10: d->op = dw ? OP_AMOMIN_D : OP_AMOMIN_W; break;
        case 0x14: d->op = dw ? OP_AMOMAX_D : OP_AMOMAX_W; break;
        case 0x18: d->op = dw ? OP_AMOMINU_D : OP_AMOMINU_W; break;
        case 0x1c: d->op = dw ? OP_AMOMAXU_D : OP_AMOMAXU_W; break;
        }
        break;
    }
    case 0x07:
        d->rd = rd;
        d->imm = imm_i(i);
        if (f3 == 2) d->op = OP_FLW;
        else if (f3 == 3) d->op = OP_FLD;
        break;
    case 0x27:
        d->imm = imm_s(i);
        if (f3 == 2) d->op = OP_FSW;
        else if (f3 == 3) d->op = OP_FSD;
        break;
    case 0x43: case 0x47: case 0x4b: case 0x4f: case 0x53:
        d->op = OP_FP;
        d->imm = (int32_t)i;
        break;
    }
}

/* RVC -> equivalent 32-bit encoding; 0 if reserved/illegal. */
static inline uint32_t enc_r(unsigned opc, unsigned rd, unsigned f3, unsigned rs1, unsigned rs2, unsigned f7)
{
    return opc | (rd << 7) | (f3 << 12) | (rs1 << 15) | (rs2 << 20) | (f7 << 25);
}
static inline uint32_t enc_i(unsigned opc, unsigned rd, unsigned f3, unsigned rs1, int32_t imm)
{
    return opc | (rd << 7) | (f3 << 12) | (rs1 << 15) | ((uint32_t)imm << 20);
}
static inline uint32_t enc_s(unsigned opc, unsigned f3, unsigned rs1, unsigned rs2, int32_t imm)
{
    return opc | (((uint32_t)imm & 31) << 7) | (f3 << 12) | (rs1 << 15) | (rs2 << 20) |
           (((uint32_t)imm >> 5) << 25);
}
static inline uint32_t enc_b(unsigned f3, unsigned rs1, unsigned rs2, int32_t imm)
{
    uint32_t u = (uint32_t)imm;
    return 0x63 | (((u >> 11) & 1) << 7) | (((u >> 1) & 15) << 8) | (f3 << 12) | (rs1 << 15) |
           (rs2 << 20) | (((u >> 5) & 63) << 25) | (((u >> 12) & 1) << 31);
}
static inline uint32_t enc_j(unsigned rd, int32_t imm)
{
    uint32_t u = (uint32_t)imm;
    return 0x6f | (rd << 7) | (u & 0xff000) | (((u >> 11) & 1) << 20) | (((u >> 1) & 1023) << 21) |
           (((u >> 20) & 1) << 31);
}

#define B(v, hi, lo) (((v) >> (lo)) & ((1u << ((hi) - (lo) + 1)) - 1))

static uint32_t expand_rvc(uint32_t c)
{
    unsigned f3 = B(c, 15, 13);
    unsigned rd = B(c, 11, 7), rs2 = B(c, 6, 2);
    unsigned rdp = 8 + B(c, 4, 2), rs1p = 8 + B(c, 9, 7);
    int32_t imm6 = sext((B(c, 12, 12) << 5) | B(c, 6, 2), 6);

    switch (c & 3) {
    case 0:
        switch (f3) {
        case 0: {
            unsigned nz = (B(c, 12, 11) << 4) | (B(c, 10, 7) << 6) | (B(c, 6, 6) << 2) | (B(c, 5, 5) << 3);
            if (!nz)
                return 0;
            return enc_i(0x13, rdp, 0, 2, (int32_t)nz);
        }
        case 1: return enc_i(0x07, rdp, 3, rs1p, (int32_t)((B(c, 12, 10) << 3) | (B(c, 6, 5) << 6)));
        case 2: return enc_i(0x03, rdp, 2, rs1p, (int32_t)((B(c, 12, 10) << 3) | (B(c, 6, 6) << 2) | (B(c, 5, 5) << 6)));
        case 3: return enc_i(0x03, rdp, 3, rs1p, (int32_t)((B(c, 12, 10) << 3) | (B(c, 6, 5) << 6)));
        case 5: return enc_s(0x27, 3, rs1p, rdp, (int32_t)((B(c, 12, 10) << 3) | (B(c, 6, 5) << 6)));
        case 6: return enc_s(0x23, 2, rs1p, rdp, (int32_t)((B(c, 12, 10) << 3) | (B(c, 6, 6) << 2) | (B(c, 5, 5) << 6)));
        case 7: return enc_s(0x23, 3, rs1p, rdp, (int32_t)((B(c, 12, 10) << 3) | (B(c, 6, 5) << 6)));
        default: return 0;
        }
    case 1:
        switch (f3) {
        case 0: return enc_i(0x13, rd, 0, rd, imm6);
        case 1:
            if (!rd)
                return 0;
            return enc_i(0x1b, rd, 0, rd, imm6);
        case 2: return enc_i(0x13, rd, 0, 0, imm6);
        case 3:
            if (rd == 2) {
                int32_t nz = sext((B(c, 12, 12) << 9) | (B(c, 6, 6) << 4) | (B(c, 5, 5) << 6) |
                                  (B(c, 4, 3) << 7) | (B(c, 2, 2) << 5), 10);
                if (!nz)
                    return 0;
                return enc_i(0x13, 2, 0, 2, nz);
            } else {
                if (!imm6)
                    return 0;
                return 0x37 | (rd << 7) | ((uint32_t)imm6 << 12);
            }
        case 4: {
            unsigned sh = (B(c, 12, 12) << 5) | B(c, 6, 2);
            switch (B(c, 11, 10)) {
            case 0: return enc_i(0x13, rs1p, 5, rs1p, (int32_t)sh);
            case 1: return enc_i(0x13, rs1p, 5, rs1p, (int32_t)(sh | 0x400));
            case 2: return enc_i(0x13, rs1p, 7, rs1p, imm6);
            default: {
                unsigned rs2p = rdp;
                unsigned k = B(c, 6, 5);
                if (!B(c, 12, 12)) {
                    static const unsigned f3s[4] = { 0, 4, 6, 7 };
                    return enc_r(0x33, rs1p, f3s[k], rs1p, rs2p, k == 0 ? 0x20 : 0);
                }
                if (k == 0)
                    return enc_r(0x3b, rs1p, 0, rs1p, rs2p, 0x20);
                if (k == 1)
                    return enc_r(0x3b, rs1p, 0, rs1p, rs2p, 0);
                return 0;
            }
            }
        }
        case 5: {
            int32_t off = sext((B(c, 12, 12) << 11) | (B(c, 11, 11) << 4) | (B(c, 10, 9) << 8) |
                               (B(c, 8, 8) << 10) | (B(c, 7, 7) << 6) | (B(c, 6, 6) << 7) |
                               (B(c, 5, 3) << 1) | (B(c, 2, 2) << 5), 12);
            return enc_j(0, off);
        }
        default: {
            int32_t off = sext((B(c, 12, 12) << 8) | (B(c, 11, 10) << 3) | (B(c, 6, 5) << 6) |
                               (B(c, 4, 3) << 1) | (B(c, 2, 2) << 5), 9);
            return enc_b(f3 == 6 ? 0 : 1, rs1p, 0, off);
        }
        }
    case 2:
        switch (f3) {
        case 0: return enc_i(0x13, rd, 1, rd, (int32_t)((B(c, 12, 12) << 5) | B(c, 6, 2)));
        case 1: return enc_i(0x07, rd, 3, 2, (int32_t)((B(c, 12, 12) << 5) | (B(c, 6, 5) << 3) | (B(c, 4, 2) << 6)));
        case 2:
            if (!rd)
                return 0;
            return enc_i(0x03, rd, 2, 2, (int32_t)((B(c, 12, 12) << 5) | (B(c, 6, 4) << 2) | (B(c, 3, 2) << 6)));
        case 3:
            if (!rd)
                return 0;
            return enc_i(0x03, rd, 3, 2, (int32_t)((B(c, 12, 12) << 5) | (B(c, 6, 5) << 3) | (B(c, 4, 2) << 6)));
        case 4:
            if (!B(c, 12, 12)) {
                if (!rs2)
                    return rd ? enc_i(0x67, 0, 0, rd, 0) : 0;
                return enc_r(0x33, rd, 0, 0, rs2, 0);
            }
            if (!rs2)
                return rd ? enc_i(0x67, 1, 0, rd, 0) : 0x00100073;
            return enc_r(0x33, rd, 0, rd, rs2, 0);
        case 5: return enc_s(0x27, 3, 2, rs2, (int32_t)((B(c, 12, 10) << 3) | (B(c, 9, 7) << 6)));
        case 6: return enc_s(0x23, 2, 2, rs2, (int32_t)((B(c, 12, 9) << 2) | (B(c, 8, 7) << 6)));
        default: return enc_s(0x23, 3, 2, rs2, (int32_t)((B(c, 12, 10) << 3) | (B(c, 9, 7) << 6)));
        }
    }
    return 0;
}

static void decode(uint32_t raw, Decoded *d, unsigned *len)
{
    if ((raw & 3) != 3) {
        uint32_t e = expand_rvc(raw & 0xffff);
        *len = 2;
        if (!e) {
            d->op = OP_ILLEGAL;
            d->imm = 0;
            d->rd = 32;
            d->rs1 = d->rs2 = 0;
            return;
        }
        decode32(e, d);
        return;
    }
    *len = 4;
    decode32(raw, d);
}

/* ------------------------------------------------------------------------------------- */
/* TLBs, decoded pages, translation */

static inline void tlb_note(FerryRvHart *h, unsigned p, uint64_t *tag)
{
    RvTlbUsed *u = &h->tlb_used[p];
    if (*tag != TLB_INVALID)
        return;                 /* listed when it was filled */
    if (u->n < TLB_USED_MAX)
        u->tag[u->n] = tag;
    if (u->n <= TLB_USED_MAX)
        u->n++;
}

static void tlb_flush_set(FerryRvHart *h, unsigned p)
{
    RvTlbUsed *u = &h->tlb_used[p];
    if (u->n <= TLB_USED_MAX) {
        for (unsigned i = 0; i < u->n; i++)
            *u->tag[i] = TLB_INVALID;
        u->n = 0;
        return;
    }
    u->n = 0;
    for (unsigned i = 0; i < TLB_N; i++) {
        h->dtlbs[p].r[i].tag = TLB_INVALID;
        h->dtlbs[p].w[i].tag = TLB_INVALID;
    }
    for (unsigned i = 0; i < ITLB_N; i++)
        h->itlbs[p][i].tag = TLB_INVALID;
}

/* Everything, listed or not (a new or reset hart). */
static void tlb_flush_all(FerryRvHart *h)
{
    for (unsigned p = 0; p < 4; p++) {
        h->tlb_used[p].n = TLB_USED_MAX + 1;
        tlb_flush_set(h, p);
    }
}

static void tlb_flush_paged(FerryRvHart *h)
{
    tlb_flush_set(h, PRV_U);
    tlb_flush_set(h, PRV_S);
}

/* Drops the store-TLB entries that reach host page `host`: it now holds
 * decoded code, so stores there must take the slow path (code_invalidate).
 * Only the listed entries when there is a list: a page's first decode comes
 * often when OpenSBI's or the kernel's code shares a page with data. */
static void wtlb_drop_page(FerryRvHart *h, const uint8_t *host)
{
    for (unsigned p = 0; p < 4; p++) {
        RvTlbUsed *u = &h->tlb_used[p];
        RvTlbEntry *w = h->dtlbs[p].w;
        if (u->n <= TLB_USED_MAX) {
            for (unsigned i = 0; i < u->n; i++) {
                uint64_t *tag = u->tag[i];
                if ((uintptr_t)tag < (uintptr_t)w || (uintptr_t)tag >= (uintptr_t)(w + TLB_N))
                    continue;       /* a load or fetch entry */
                RvTlbEntry *e = (RvTlbEntry *)tag;
                if (e->tag != TLB_INVALID && (const uint8_t *)(e->addend + (uintptr_t)(e->tag & PG_MASK)) == host)
                    e->tag = TLB_INVALID;
            }
            continue;
        }
        for (unsigned i = 0; i < TLB_N; i++)
            if (w[i].tag != TLB_INVALID && (const uint8_t *)(w[i].addend + (uintptr_t)(w[i].tag & PG_MASK)) == host)
                w[i].tag = TLB_INVALID;
    }
}

static void wtlb_flush(FerryRvHart *h)
{
    for (unsigned p = 0; p < 4; p++)
        for (unsigned i = 0; i < TLB_N; i++)
            h->dtlbs[p].w[i].tag = TLB_INVALID;
}

static inline unsigned data_priv(FerryRvHart *h)
{
    if (h->priv == PRV_M && (h->mstatus & MSTATUS_MPRV))
        return (h->mstatus >> 11) & 3;
    return h->priv;
}

static void update_mode(FerryRvHart *h)
{
    h->itlb = h->itlbs[h->priv];
    h->dtlb = &h->dtlbs[data_priv(h)];
}

static void code_flush(FerryRvHart *h)
{
    for (unsigned i = 0; i < h->n_pages; i++) {
        uint64_t idx = h->decoded[i];
        g_free(h->pages[idx]);
        h->pages[idx] = NULL;
        h->code[idx] = 0;       /* only decoded pages have it set */
    }
    h->n_pages = 0;
    for (unsigned p = 0; p < 4; p++)
        for (unsigned i = 0; i < ITLB_N; i++)
            h->itlbs[p][i].tag = TLB_INVALID;
    ferry_rv_jit_reset(h->jit);     /* no slot leads to a block any more */
}

static void page_reset_slots(FerryRvHart *h, RvPage *pg)
{
    for (unsigned i = 0; i < SLOTS; i++)
        pg->slot[i].h = h->lbl_decode;
}

/* A store hit RAM page `idx`: drop the decoded instructions there. */
static void code_invalidate(FerryRvHart *h, uint64_t idx)
{
    if (h->pages[idx])
        page_reset_slots(h, h->pages[idx]);
    h->code[idx] = 0;
}

static inline uint8_t *ram_ptr(FerryRvHart *h, uint64_t pa, unsigned size)
{
    uint64_t off = pa - h->bus.ram_base;
    if (off < h->bus.ram_size && size <= h->bus.ram_size - off)
        return h->bus.ram + off;
    return NULL;
}

static GMutex shared_lock;
static GHashTable *shared_map;   /* ram pointer -> RvShared */

static RvShared *shared_ref(const FerryRvBus *bus)
{
    g_mutex_lock(&shared_lock);
    if (!shared_map)
        shared_map = g_hash_table_new(g_direct_hash, g_direct_equal);
    RvShared *sh = g_hash_table_lookup(shared_map, bus->ram);
    if (!sh) {
        sh = g_new0(RvShared, 1);
        sh->ram = bus->ram;
        /* indexed by host page: RAM need not be page-aligned in host memory */
        sh->watch = g_malloc0(bus->ram_size / PG_SIZE + 2);
        g_hash_table_insert(shared_map, bus->ram, sh);
    }
    sh->refs++;
    g_mutex_unlock(&shared_lock);
    return sh;
}

static void shared_unref(RvShared *sh)
{
    g_mutex_lock(&shared_lock);
    if (--sh->refs == 0) {
        g_hash_table_remove(shared_map, sh->ram);
        g_free(sh->watch);
        g_free(sh);
    }
    g_mutex_unlock(&shared_lock);
}

static inline uint8_t *watch_of(FerryRvHart *h, const uint8_t *host)
{
    return (uint8_t *)(h->watch_adj + ((uintptr_t)host >> PG_SHIFT));
}

/* TRUE if some hart holds a reservation on the page of host: stores go the locked way */
static inline gboolean watched(FerryRvHart *h, const uint8_t *host)
{
    return __atomic_load_n(watch_of(h, host), __ATOMIC_SEQ_CST) != 0;
}

static inline uint64_t *bucket_of(FerryRvHart *h, const uint8_t *host)
{
    return &h->sh->gen[((uintptr_t)host >> 3) & (RES_BUCKETS - 1)];
}

static void bucket_lock(uint64_t *g)
{
    for (unsigned spins = 0;; spins++) {
        uint64_t v = __atomic_load_n(g, __ATOMIC_ACQUIRE);
        if (!(v & 1) && __atomic_compare_exchange_n(g, &v, v + 1, FALSE, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return;
        if (spins > 64)
            g_thread_yield();   /* the holder's host thread may be descheduled */
    }
}

static inline void bucket_unlock(uint64_t *g)
{
    __atomic_fetch_add(g, 1, __ATOMIC_RELEASE);
}

static void res_release(FerryRvHart *h)
{
    if (h->res_host) {
        __atomic_fetch_sub(watch_of(h, (uint8_t *)h->res_host), 1, __ATOMIC_SEQ_CST);
        h->res_host = 0;
    }
}

/* A store to RAM on a page where a hart holds a reservation: bumps the bucket so that
 * reservation's SC fails. */
static void store_locked(FerryRvHart *h, uint8_t *host, unsigned size, uint64_t val)
{
    uint64_t *g = bucket_of(h, host);
    bucket_lock(g);
    switch (size) {
    case 1: __atomic_store_n(host, (uint8_t)val, __ATOMIC_SEQ_CST); break;
    case 2: __atomic_store_n((uint16_t *)host, (uint16_t)val, __ATOMIC_SEQ_CST); break;
    case 4: __atomic_store_n((uint32_t *)host, (uint32_t)val, __ATOMIC_SEQ_CST); break;
    default: __atomic_store_n((uint64_t *)host, val, __ATOMIC_SEQ_CST); break;
    }
    bucket_unlock(g);
}

static inline unsigned fault_cause(int acc, gboolean page)
{
    if (acc == ACC_X)
        return page ? EXC_INSN_PAGE : EXC_INSN_ACCESS;
    if (acc == ACC_R)
        return page ? EXC_LOAD_PAGE : EXC_LOAD_ACCESS;
    return page ? EXC_STORE_PAGE : EXC_STORE_ACCESS;
}

/* Virtual -> physical for an access of kind acc at privilege priv.
 * Returns 0 or an exception cause. Sets A (and D for stores) in the leaf PTE. */
static unsigned translate(FerryRvHart *h, uint64_t va, int acc, unsigned priv, uint64_t *pa)
{
    unsigned mode = h->satp >> 60;
    if (priv == PRV_M || mode == 0) {
        *pa = va;
        return 0;
    }
    int levels = mode == 8 ? 3 : 4;
    int vabits = 12 + 9 * levels;
    if ((uint64_t)((int64_t)(va << (64 - vabits)) >> (64 - vabits)) != va)
        return fault_cause(acc, TRUE);
    uint64_t base = (h->satp & ((1ULL << 44) - 1)) << PG_SHIFT;
    for (int lvl = levels - 1; lvl >= 0; lvl--) {
        uint64_t pte_pa = base + ((va >> (12 + 9 * lvl)) & 511) * 8;
        uint64_t *pp = (uint64_t *)ram_ptr(h, pte_pa, 8);
        if (!pp)
            return fault_cause(acc, FALSE);
        uint64_t pte = __atomic_load_n(pp, __ATOMIC_ACQUIRE);
    again:
        if (!(pte & PTE_V) || (!(pte & PTE_R) && (pte & PTE_W)) || (pte >> 54))
            return fault_cause(acc, TRUE);
        uint64_t ppn = (pte >> 10) & ((1ULL << 44) - 1);
        if (!(pte & (PTE_R | PTE_X))) {
            base = ppn << PG_SHIFT;
            continue;
        }
        if (priv == PRV_U && !(pte & PTE_U))
            return fault_cause(acc, TRUE);
        if (priv == PRV_S && (pte & PTE_U) && (acc == ACC_X || !(h->mstatus & MSTATUS_SUM)))
            return fault_cause(acc, TRUE);
        if (acc == ACC_X && !(pte & PTE_X))
            return fault_cause(acc, TRUE);
        if (acc == ACC_R && !((pte & PTE_R) || ((h->mstatus & MSTATUS_MXR) && (pte & PTE_X))))
            return fault_cause(acc, TRUE);
        if (acc == ACC_W && !(pte & PTE_W))
            return fault_cause(acc, TRUE);
        if (lvl > 0 && (ppn & ((1ULL << (9 * lvl)) - 1)))
            return fault_cause(acc, TRUE);
        uint64_t want = PTE_A | (acc == ACC_W ? PTE_D : 0);
        if ((pte & want) != want) {
            if (!__atomic_compare_exchange_n(pp, &pte, pte | want, FALSE,
                                             __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                goto again;   /* pte now holds the current value: check it again */
        }
        uint64_t off_mask = (1ULL << (12 + 9 * lvl)) - 1;
        *pa = ((ppn << PG_SHIFT) & ~off_mask) | (va & off_mask);
        return 0;
    }
    return fault_cause(acc, TRUE);
}

static void tlb_fill(FerryRvHart *h, unsigned p, RvTlbEntry *e, uint64_t va, uint64_t pa)
{
    uint8_t *host = ram_ptr(h, pa & PG_MASK, PG_SIZE);
    if (!host)
        return;
    tlb_note(h, p, &e->tag);
    e->tag = va & PG_MASK;
    e->addend = (uintptr_t)host - (uintptr_t)(va & PG_MASK);
}

static unsigned load_slow(FerryRvHart *h, uint64_t va, unsigned size, uint64_t *val)
{
    if (va & (size - 1))
        return EXC_LOAD_MISALIGNED;
    unsigned p = data_priv(h);
    uint64_t pa;
    unsigned cause = translate(h, va, ACC_R, p, &pa);
    if (cause)
        return cause;
    uint8_t *host = ram_ptr(h, pa, size);
    if (host) {
        switch (size) {
        case 1: *val = __atomic_load_n(host, __ATOMIC_RELAXED); break;
        case 2: *val = __atomic_load_n((uint16_t *)host, __ATOMIC_RELAXED); break;
        case 4: *val = __atomic_load_n((uint32_t *)host, __ATOMIC_RELAXED); break;
        default: *val = __atomic_load_n((uint64_t *)host, __ATOMIC_RELAXED); break;
        }
        tlb_fill(h, p, &h->dtlbs[p].r[(va >> PG_SHIFT) & (TLB_N - 1)], va, pa);
        return 0;
    }
    ferry_rv_fp_suspend(&h->fflags);
    if (h->bus.mmio_read && h->bus.mmio_read(h->bus.opaque, pa, size, val)) {
        if (size < 8)
            *val &= (1ULL << (size * 8)) - 1;
        return 0;
    }
    return EXC_LOAD_ACCESS;
}

/* Translates a store/AMO target; returns its host address in RAM (fills the store TLB)
 * or NULL with *pa set for MMIO. */
static unsigned store_translate(FerryRvHart *h, uint64_t va, unsigned size, uint8_t **host, uint64_t *pa)
{
    if (va & (size - 1))
        return EXC_STORE_MISALIGNED;
    unsigned p = data_priv(h);
    unsigned cause = translate(h, va, ACC_W, p, pa);
    if (cause)
        return cause;
    *host = ram_ptr(h, *pa, size);
    if (*host) {
        uint64_t idx = (*pa - h->bus.ram_base) >> PG_SHIFT;
        if (unlikely(h->code[idx]))
            code_invalidate(h, idx);
        tlb_fill(h, p, &h->dtlbs[p].w[(va >> PG_SHIFT) & (TLB_N - 1)], va, *pa);
    }
    return 0;
}

static unsigned store_slow(FerryRvHart *h, uint64_t va, unsigned size, uint64_t val)
{
    uint8_t *host;
    uint64_t pa;
    unsigned cause = store_translate(h, va, size, &host, &pa);
    if (cause)
        return cause;
    if (host && unlikely(watched(h, host))) {
        store_locked(h, host, size, val);
        return 0;
    }
    if (host) {
        switch (size) {
        case 1: __atomic_store_n(host, (uint8_t)val, __ATOMIC_RELAXED); break;
        case 2: __atomic_store_n((uint16_t *)host, (uint16_t)val, __ATOMIC_RELAXED); break;
        case 4: __atomic_store_n((uint32_t *)host, (uint32_t)val, __ATOMIC_RELAXED); break;
        default: __atomic_store_n((uint64_t *)host, val, __ATOMIC_RELAXED); break;
        }
        return 0;
    }
    ferry_rv_fp_suspend(&h->fflags);
    if (h->bus.mmio_write && h->bus.mmio_write(h->bus.opaque, pa, size, val))
        return 0;
    return EXC_STORE_ACCESS;
}

/* Host address for an AMO/SC (store permission), RAM only. */
static inline unsigned amo_host(FerryRvHart *h, uint64_t va, unsigned size, uint8_t **host)
{
    RvTlbEntry *e = &h->dtlb->w[(va >> PG_SHIFT) & (TLB_N - 1)];
    if (likely(e->tag == (va & (PG_MASK | (size - 1))))) {
        *host = (uint8_t *)(e->addend + (uintptr_t)va);
        return 0;
    }
    uint64_t pa;
    unsigned cause = store_translate(h, va, size, host, &pa);
    if (cause)
        return cause;
    return *host ? 0 : EXC_STORE_ACCESS;
}

/* Host address for LR (load permission), RAM only. */
static inline unsigned lr_host(FerryRvHart *h, uint64_t va, unsigned size, uint8_t **host)
{
    if (va & (size - 1))
        return EXC_LOAD_MISALIGNED;
    RvTlbEntry *e = &h->dtlb->r[(va >> PG_SHIFT) & (TLB_N - 1)];
    if (likely(e->tag == (va & PG_MASK))) {
        *host = (uint8_t *)(e->addend + (uintptr_t)va);
        return 0;
    }
    unsigned p = data_priv(h);
    uint64_t pa;
    unsigned cause = translate(h, va, ACC_R, p, &pa);
    if (cause)
        return cause;
    *host = ram_ptr(h, pa, size);
    if (!*host)
        return EXC_LOAD_ACCESS;
    tlb_fill(h, p, &h->dtlbs[p].r[(va >> PG_SHIFT) & (TLB_N - 1)], va, pa);
    return 0;
}

/* Instruction page lookup for pc (fills the iTLB). */
static unsigned itlb_fill(FerryRvHart *h, uint64_t pc, RvPage **out)
{
    uint64_t pa;
    unsigned cause = translate(h, pc, ACC_X, h->priv, &pa);
    if (cause)
        return cause;
    uint8_t *host = ram_ptr(h, pa & PG_MASK, PG_SIZE);
    if (!host)
        return EXC_INSN_ACCESS;
    uint64_t idx = ((pa & PG_MASK) - h->bus.ram_base) >> PG_SHIFT;
    RvPage *pg = h->pages[idx];
    if (!pg) {
        if (h->n_pages >= MAX_DECODED_PAGES)
            code_flush(h);
        pg = g_malloc(sizeof(RvPage));
        pg->host = host;
        pg->ram_index = idx;
        page_reset_slots(h, pg);
        for (unsigned i = SLOTS; i < SLOTS + 2; i++) {
            pg->slot[i].h = h->lbl_pageend;
            pg->slot[i].len = 0;
        }
        h->pages[idx] = pg;
        h->decoded[h->n_pages++] = idx;
    }
    RvITlbEntry *e = &h->itlb[(pc >> PG_SHIFT) & (ITLB_N - 1)];
    tlb_note(h, h->priv, &e->tag);
    e->tag = pc & PG_MASK;
    e->page = pg;
    *out = pg;
    return 0;
}

static inline void set_insn(RvInsn *ins, const void *handler, const Decoded *d, unsigned len)
{
    ins->h = handler;
    ins->imm = d->imm;
    ins->rd = d->rd;
    ins->rs1 = d->rs1;
    ins->rs2 = d->rs2;
    ins->len = len;
}

/* The raw instruction at offset off of pg; FALSE if it is a 4-byte one that starts
 * in the page's last halfword (*raw then holds its first half). */
static inline gboolean page_insn(const RvPage *pg, unsigned off, uint32_t *raw)
{
    uint32_t v = pg->host[off] | (pg->host[off + 1] << 8);
    if ((v & 3) == 3) {
        if (off == PG_SIZE - 2) {
            *raw = v;
            return FALSE;
        }
        v |= (uint32_t)(pg->host[off + 2] | (pg->host[off + 3] << 8)) << 16;
    }
    *raw = v;
    return TRUE;
}

/* Decodes the instructions of pg from offset off on, as a block would take them:
 * up to MAX_INSNS, stopping after the first one that ends a block or is not
 * translated, and before one that crosses the page's end. Returns how many. */
static unsigned jit_scan(const RvPage *pg, unsigned off, Decoded *d, uint8_t *lens)
{
    unsigned n = 0;
    while (n < MAX_INSNS && off <= PG_SIZE - 2) {
        uint32_t raw;
        unsigned len;
        if (!page_insn(pg, off, &raw))
            break;
        decode(raw, &d[n], &len);
        lens[n] = len;
        if (ferry_rv_jit_op_kind(d[n++].op) != RV_JIT_BODY)
            break;
        off += len;
    }
    return n;
}

/* Reads the raw instruction at pc (for mtval on illegal instructions); 0 if it faults. */
static uint32_t fetch_raw(FerryRvHart *h, uint64_t pc)
{
    uint64_t pa;
    uint8_t *p;
    if (translate(h, pc, ACC_X, h->priv, &pa) || !(p = ram_ptr(h, pa, 2)))
        return 0;
    uint32_t lo = p[0] | (p[1] << 8);
    if ((lo & 3) != 3)
        return lo;
    if (translate(h, pc + 2, ACC_X, h->priv, &pa) || !(p = ram_ptr(h, pa, 2)))
        return 0;
    return lo | ((uint32_t)(p[0] | (p[1] << 8)) << 16);
}

/* ------------------------------------------------------------------------------------- */
/* Traps, interrupts, CSRs */

static void set_priv(FerryRvHart *h, unsigned p)
{
    h->priv = p;
    update_mode(h);
}

/* Takes a trap with h->pc as the faulting/interrupted pc. */
static void trap(FerryRvHart *h, uint64_t cause, uint64_t tval)
{
    gboolean irq = (cause & CAUSE_INTERRUPT) != 0;
    unsigned code = cause & 63;
    uint64_t deleg = irq ? h->mideleg : h->medeleg;
    res_release(h);
    if (h->priv <= PRV_S && ((deleg >> code) & 1)) {
        h->scause = cause;
        h->sepc = h->pc;
        h->stval = tval;
        uint64_t s = h->mstatus;
        s = (s & ~MSTATUS_SPIE) | ((s & MSTATUS_SIE) ? MSTATUS_SPIE : 0);
        s = (s & ~MSTATUS_SPP) | (h->priv == PRV_S ? MSTATUS_SPP : 0);
        s &= ~MSTATUS_SIE;
        h->mstatus = s;
        h->pc = (h->stvec & ~3ULL) + ((irq && (h->stvec & 1)) ? 4 * code : 0);
        set_priv(h, PRV_S);
    } else {
        h->mcause = cause;
        h->mepc = h->pc;
        h->mtval = tval;
        uint64_t s = h->mstatus;
        s = (s & ~MSTATUS_MPIE) | ((s & MSTATUS_MIE) ? MSTATUS_MPIE : 0);
        s = (s & ~MSTATUS_MPP) | ((uint64_t)h->priv << 11);
        s &= ~MSTATUS_MIE;
        h->mstatus = s;
        h->pc = (h->mtvec & ~3ULL) + ((irq && (h->mtvec & 1)) ? 4 * code : 0);
        set_priv(h, PRV_M);
    }
}

static inline uint64_t mip_read(FerryRvHart *h)
{
    return h->mip_sw | atomic_load_explicit(&h->mip_ext, memory_order_relaxed);
}

/* Takes the highest-priority pending and enabled interrupt, if any. */
static gboolean take_interrupt(FerryRvHart *h)
{
    uint64_t pend = mip_read(h) & h->mie;
    if (!pend)
        return FALSE;
    uint64_t m_en = 0, s_en = 0;
    if (h->priv < PRV_M || (h->mstatus & MSTATUS_MIE))
        m_en = pend & ~h->mideleg;
    if (h->priv < PRV_S || (h->priv == PRV_S && (h->mstatus & MSTATUS_SIE)))
        s_en = pend & h->mideleg;
    uint64_t en = m_en ? m_en : s_en;
    if (!en)
        return FALSE;
    static const unsigned order[] = { 11, 3, 7, 9, 1, 5 };
    for (unsigned i = 0; i < G_N_ELEMENTS(order); i++) {
        if (en & (1ULL << order[i])) {
            trap(h, CAUSE_INTERRUPT | order[i], 0);
            return TRUE;
        }
    }
    return FALSE;
}

static uint64_t mstatus_read(FerryRvHart *h)
{
    uint64_t s = h->mstatus;
    if ((s & MSTATUS_FS) == MSTATUS_FS)
        s |= MSTATUS_SD;
    return s;
}

static void mstatus_write(FerryRvHart *h, uint64_t v, uint64_t mask)
{
    uint64_t old = h->mstatus;
    uint64_t s = (old & ~mask) | (v & mask);
    if (((s >> 11) & 3) == 2)
        s = (s & ~MSTATUS_MPP) | (old & MSTATUS_MPP);
    h->mstatus = s;
    if ((old ^ s) & (MSTATUS_SUM | MSTATUS_MXR))
        tlb_flush_paged(h);
    update_mode(h);
}

static inline uint64_t cur_instret(FerryRvHart *h)
{
    return h->instret + h->cur_n;
}

static gboolean csr_read(FerryRvHart *h, unsigned csr, uint64_t *v)
{
    if (csr <= 0x003 || csr == 0xc01)
        ferry_rv_fp_suspend(&h->fflags);   /* accrued host flags; time calls out */
    switch (csr) {
    case 0x001: *v = h->fflags; return TRUE;
    case 0x002: *v = h->frm; return TRUE;
    case 0x003: *v = (h->frm << 5) | h->fflags; return TRUE;
    case 0xc00: case 0xb00: *v = cur_instret(h) + h->cycle_offset; return TRUE;
    case 0xc01: *v = h->bus.read_time ? h->bus.read_time(h->bus.opaque) : 0; return TRUE;
    case 0xc02: case 0xb02: *v = cur_instret(h); return TRUE;
    case 0x100: *v = mstatus_read(h) & SSTATUS_RMASK; return TRUE;
    case 0x104: *v = h->mie & h->mideleg; return TRUE;
    case 0x105: *v = h->stvec; return TRUE;
    case 0x106: *v = h->scounteren; return TRUE;
    case 0x10a: *v = h->senvcfg; return TRUE;
    case 0x140: *v = h->sscratch; return TRUE;
    case 0x141: *v = h->sepc; return TRUE;
    case 0x142: *v = h->scause; return TRUE;
    case 0x143: *v = h->stval; return TRUE;
    case 0x144: *v = mip_read(h) & h->mideleg; return TRUE;
    case 0x180: *v = h->satp; return TRUE;
    case 0xf11: case 0xf12: case 0xf13: case 0xf15: *v = 0; return TRUE;
    case 0xf14: *v = h->hartid; return TRUE;
    case 0x300: *v = mstatus_read(h); return TRUE;
    case 0x301: *v = h->misa; return TRUE;
    case 0x302: *v = h->medeleg; return TRUE;
    case 0x303: *v = h->mideleg; return TRUE;
    case 0x304: *v = h->mie; return TRUE;
    case 0x305: *v = h->mtvec; return TRUE;
    case 0x306: *v = h->mcounteren; return TRUE;
    case 0x30a: *v = h->menvcfg; return TRUE;
    case 0x320: *v = h->mcountinhibit; return TRUE;
    case 0x340: *v = h->mscratch; return TRUE;
    case 0x341: *v = h->mepc; return TRUE;
    case 0x342: *v = h->mcause; return TRUE;
    case 0x343: *v = h->mtval; return TRUE;
    case 0x344: *v = mip_read(h); return TRUE;
    }
    if ((csr >= 0xc03 && csr <= 0xc1f) || (csr >= 0xb03 && csr <= 0xb1f) ||
        (csr >= 0x323 && csr <= 0x33f)) {
        *v = 0;
        return TRUE;
    }
    if (csr >= 0x3a0 && csr <= 0x3af) {
        *v = h->pmpcfg[csr - 0x3a0];
        return TRUE;
    }
    if (csr >= 0x3b0 && csr <= 0x3ef) {
        *v = h->pmpaddr[csr - 0x3b0];
        return TRUE;
    }
    return FALSE;
}

static inline void fs_dirty(FerryRvHart *h)
{
    h->mstatus |= MSTATUS_FS;
}

/* Writes a CSR that exists (checked by csr_read first). */
static void csr_write(FerryRvHart *h, unsigned csr, uint64_t v)
{
    switch (csr) {
    case 0x001: h->fflags = v & 31; fs_dirty(h); return;
    case 0x002: h->frm = v & 7; fs_dirty(h); return;
    case 0x003: h->fflags = v & 31; h->frm = (v >> 5) & 7; fs_dirty(h); return;
    case 0xb00: h->cycle_offset = v - cur_instret(h) - 1; return;
    case 0xb02: h->instret = v - h->cur_n - 1; return;
    case 0x100: mstatus_write(h, v, SSTATUS_WMASK); return;
    case 0x104: h->mie = (h->mie & ~h->mideleg) | (v & h->mideleg & MIE_MASK); return;
    case 0x105: h->stvec = v & ~2ULL; return;
    case 0x106: h->scounteren = v & 0xffffffffULL; return;
    case 0x10a: h->senvcfg = v & 1; return;
    case 0x140: h->sscratch = v; return;
    case 0x141: h->sepc = v & ~1ULL; return;
    case 0x142: h->scause = v; return;
    case 0x143: h->stval = v; return;
    case 0x144: {
        uint64_t m = h->mideleg & MIP_SSIP;
        h->mip_sw = (h->mip_sw & ~m) | (v & m);
        return;
    }
    case 0x180: {
        unsigned mode = v >> 60;
        if (mode == 0)
            h->satp = 0;
        else if (mode == 8 || mode == 9)
            h->satp = (v & (0xfULL << 60)) | (v & ((1ULL << 44) - 1));
        else
            return;
        tlb_flush_paged(h);
        return;
    }
    case 0x300: mstatus_write(h, v, MSTATUS_WMASK); return;
    case 0x302: h->medeleg = v & MEDELEG_MASK; return;
    case 0x303: h->mideleg = v & MIP_S_MASK; return;
    case 0x304: h->mie = v & MIE_MASK; return;
    case 0x305: h->mtvec = v & ~2ULL; return;
    case 0x306: h->mcounteren = v & 0xffffffffULL; return;
    case 0x30a: h->menvcfg = v & 1; return;
    case 0x320: h->mcountinhibit = v & 0xfffffffdULL; return;
    case 0x340: h->mscratch = v; return;
    case 0x341: h->mepc = v & ~1ULL; return;
    case 0x342: h->mcause = v; return;
    case 0x343: h->mtval = v; return;
    case 0x344: h->mip_sw = v & MIP_S_MASK; return;
    }
    if (csr >= 0x3a0 && csr <= 0x3af)
        h->pmpcfg[csr - 0x3a0] = v;
    else if (csr >= 0x3b0 && csr <= 0x3ef)
        h->pmpaddr[csr - 0x3b0] = v & ((1ULL << 54) - 1);
}

/* The value CSRRS/CSRRC modify: for mip, SEIP is the software-written bit only, or a
 * `csrc mip, STIP` while the PLIC line is high would latch SEIP in software. */
static inline uint64_t csr_rmw_base(FerryRvHart *h, unsigned csr, uint64_t old)
{
    if (csr == 0x344)
        return (old & ~MIP_SEIP) | (h->mip_sw & MIP_SEIP);
    return old;
}

/* Permission check for an access by the running hart. */
static gboolean csr_allowed(FerryRvHart *h, unsigned csr, gboolean write)
{
    if (h->priv < ((csr >> 8) & 3))
        return FALSE;
    if (write && (csr >> 10) == 3)
        return FALSE;
    if (csr == 0x180 && h->priv == PRV_S && (h->mstatus & MSTATUS_TVM))
        return FALSE;
    if (csr <= 0x003 && !(h->mstatus & MSTATUS_FS))
        return FALSE;
    if (csr >= 0xc00 && csr <= 0xc1f) {
        unsigned bit = csr & 31;
        if (h->priv < PRV_M && !((h->mcounteren >> bit) & 1))
            return FALSE;
        if (h->priv == PRV_U && !((h->scounteren >> bit) & 1))
            return FALSE;
    }
    return TRUE;
}

static void do_mret(FerryRvHart *h)
{
    uint64_t s = h->mstatus;
    unsigned mpp = (s >> 11) & 3;
    s = (s & ~MSTATUS_MIE) | ((s & MSTATUS_MPIE) ? MSTATUS_MIE : 0);
    s |= MSTATUS_MPIE;
    s &= ~MSTATUS_MPP;
    if (mpp != PRV_M)
        s &= ~MSTATUS_MPRV;
    h->mstatus = s;
    res_release(h);
    h->pc = h->mepc;
    set_priv(h, mpp);
}

static void do_sret(FerryRvHart *h)
{
    uint64_t s = h->mstatus;
    unsigned spp = (s & MSTATUS_SPP) ? PRV_S : PRV_U;
    s = (s & ~MSTATUS_SIE) | ((s & MSTATUS_SPIE) ? MSTATUS_SIE : 0);
    s |= MSTATUS_SPIE;
    s &= ~MSTATUS_SPP;
    s &= ~MSTATUS_MPRV;
    h->mstatus = s;
    res_release(h);
    h->pc = h->sepc;
    set_priv(h, spp);
}

/* ------------------------------------------------------------------------------------- */
/* Public API */

FerryRvHart *ferry_rv_hart_new(const FerryRvBus *bus, uint64_t hartid)
{
    g_return_val_if_fail(bus != NULL, NULL);
    g_return_val_if_fail(bus->ram != NULL && bus->ram_size % PG_SIZE == 0, NULL);
    g_return_val_if_fail(bus->ram_base % PG_SIZE == 0, NULL);
    FerryRvHart *h = g_malloc0(sizeof(FerryRvHart));
    h->bus = *bus;
    h->sh = shared_ref(bus);
    h->watch_adj = (uintptr_t)h->sh->watch - ((uintptr_t)bus->ram >> PG_SHIFT);
    h->hartid = hartid;
    h->ram_pages = bus->ram_size / PG_SIZE;
    h->pages = g_new0(RvPage *, h->ram_pages);
    h->code = g_malloc0(h->ram_pages);
    h->decoded = g_new(uint64_t, MAX_DECODED_PAGES);
    G_STATIC_ASSERT(sizeof(RvTlbEntry) == 16 && G_STRUCT_OFFSET(FerryRvHart, x) == 0);
    G_STATIC_ASSERT(sizeof(RvInsn) == 16 && G_STRUCT_OFFSET(RvInsn, jit) == 8);
    RvJitLayout lay = {
        .dtlb_offset = G_STRUCT_OFFSET(FerryRvHart, dtlb),
        .watch_adj_offset = G_STRUCT_OFFSET(FerryRvHart, watch_adj),
        .tlb_w_offset = G_STRUCT_OFFSET(RvDTlb, w),
        .tlb_n = TLB_N,
        .exit_req_offset = G_STRUCT_OFFSET(FerryRvHart, exit_req),
    };
    h->jit = ferry_rv_jit_new(&lay);
    ferry_rv_hart_reset(h, bus->ram_base);
    return h;
}

void ferry_rv_hart_free(FerryRvHart *h)
{
    if (!h)
        return;
    res_release(h);
    shared_unref(h->sh);
    for (uint64_t i = 0; i < h->ram_pages; i++)
        g_free(h->pages[i]);
    g_free(h->pages);
    g_free(h->code);
    g_free(h->decoded);
    ferry_rv_jit_free(h->jit);
    g_free(h);
}

void ferry_rv_hart_reset(FerryRvHart *h, uint64_t pc)
{
    memset(h->x, 0, sizeof(h->x));
    memset(h->f, 0, sizeof(h->f));
    h->pc = pc;
    h->fflags = h->frm = 0;
    h->mstatus = (2ULL << 32) | (2ULL << 34);
    h->misa = MISA_VALUE;
    h->medeleg = h->mideleg = h->mie = h->mtvec = h->mcounteren = h->menvcfg = 0;
    h->mscratch = h->mepc = h->mcause = h->mtval = h->mcountinhibit = 0;
    h->stvec = h->scounteren = h->senvcfg = h->sscratch = h->sepc = h->scause = h->stval = 0;
    h->satp = 0;
    h->mip_sw = 0;
    memset(h->pmpcfg, 0, sizeof(h->pmpcfg));
    memset(h->pmpaddr, 0, sizeof(h->pmpaddr));
    h->instret = h->cur_n = h->cycle_offset = 0;
    res_release(h);
    if (h->lbl_decode)
        code_flush(h);
    tlb_flush_all(h);
    set_priv(h, PRV_M);
}

void ferry_rv_hart_flush_code(FerryRvHart *h)
{
    code_flush(h);
    wtlb_flush(h);
}

void ferry_rv_hart_set_reg(FerryRvHart *h, unsigned r, uint64_t v)
{
    if (r >= 1 && r < 32)
        h->x[r] = v;
    else if (r >= 32 && r < 64)
        h->f[r - 32] = v;
}

uint64_t ferry_rv_hart_get_reg(FerryRvHart *h, unsigned r)
{
    if (r < 32)
        return h->x[r];
    if (r < 64)
        return h->f[r - 32];
    return 0;
}

uint64_t ferry_rv_hart_get_pc(FerryRvHart *h) { return h->pc; }
void ferry_rv_hart_set_pc(FerryRvHart *h, uint64_t pc) { h->pc = pc & ~1ULL; }
unsigned ferry_rv_hart_get_priv(FerryRvHart *h) { return h->priv; }
uint64_t ferry_rv_hart_get_instret(FerryRvHart *h) { return h->instret; }

gboolean ferry_rv_hart_read_csr(FerryRvHart *h, unsigned csr, uint64_t *value)
{
    return csr_read(h, csr & 0xfff, value);
}

gboolean ferry_rv_hart_write_csr(FerryRvHart *h, unsigned csr, uint64_t value)
{
    uint64_t old;
    if (!csr_read(h, csr & 0xfff, &old))
        return FALSE;
    csr_write(h, csr & 0xfff, value);
    return TRUE;
}

void ferry_rv_hart_set_irq(FerryRvHart *h, unsigned mip_bit, gboolean level)
{
    uint64_t m = 1ULL << mip_bit;
    if (level) {
        atomic_fetch_or(&h->mip_ext, m);
        atomic_fetch_or(&h->exit_req, REQ_IRQ);
    } else {
        atomic_fetch_and(&h->mip_ext, ~m);
    }
}

void ferry_rv_hart_kick(FerryRvHart *h)
{
    atomic_fetch_or(&h->exit_req, REQ_KICK);
}

gboolean ferry_rv_hart_wfi_wakeup(FerryRvHart *h)
{
    return (mip_read(h) & h->mie) != 0;
}

void ferry_rv_hart_dump(FerryRvHart *h, GString *out)
{
    static const char *const names[32] = {
        "zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3",
        "a4", "a5", "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11",
        "t3", "t4", "t5", "t6",
    };
    static const char prv[4] = { 'U', 'S', '?', 'M' };
    g_string_append_printf(out, "hart %" G_GUINT64_FORMAT " pc %016" G_GINT64_MODIFIER "x priv %c\n",
                           h->hartid, h->pc, prv[h->priv & 3]);
    for (unsigned i = 0; i < 32; i++)
        g_string_append_printf(out, "x%-2u/%-4s %016" G_GINT64_MODIFIER "x%s", i, names[i], h->x[i],
                               (i & 3) == 3 ? "\n" : "  ");
    for (unsigned i = 0; i < 32; i++)
        g_string_append_printf(out, "f%-2u %016" G_GINT64_MODIFIER "x%s", i, h->f[i],
                               (i & 3) == 3 ? "\n" : "  ");
    static const struct { const char *name; unsigned csr; } csrs[] = {
        { "mstatus", 0x300 }, { "mie", 0x304 }, { "mip", 0x344 }, { "mtvec", 0x305 },
        { "mepc", 0x341 }, { "mcause", 0x342 }, { "mtval", 0x343 }, { "medeleg", 0x302 },
        { "mideleg", 0x303 }, { "stvec", 0x105 }, { "sepc", 0x141 }, { "scause", 0x142 },
        { "stval", 0x143 }, { "satp", 0x180 }, { "fcsr", 0x003 }, { "minstret", 0xb02 },
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(csrs); i++) {
        uint64_t v = 0;
        csr_read(h, csrs[i].csr, &v);
        g_string_append_printf(out, "%-8s %016" G_GINT64_MODIFIER "x%s", csrs[i].name, v,
                               (i & 3) == 3 ? "\n" : "  ");
    }
}

/* ------------------------------------------------------------------------------------- */
/* The interpreter */

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
/* the decoded pages keep handler addresses of this function: not a dangling pointer */
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#endif
#if defined(__GNUC__) && !defined(__clang__)
/* Keep one dispatch jump per handler (better indirect-branch prediction): ~10% */
__attribute__((optimize("no-crossjumping")))
#endif
FerryRvRunResult ferry_rv_hart_run(FerryRvHart *h, uint64_t budget)
{
    /* [0]: 4-byte encodings, [1]: compressed; the length is a constant in each copy */
    static const void *const labels[2][OP_COUNT] = {
#define OP_LABEL4(n) [OP_##n] = &&op_##n##_4,
#define OP_LABEL2(n) [OP_##n] = &&op_##n##_2,
        { RV_OPS(OP_LABEL4) },
        { RV_OPS(OP_LABEL2) },
#undef OP_LABEL4
#undef OP_LABEL2
    };
    uint64_t *const xr = h->x;
    uint64_t pc, n = 0, cur_va = TLB_INVALID;
    RvPage *cur = NULL;
    RvInsn *ins;
    unsigned cause;
    uint64_t tval;
    FerryRvRunResult result;

    /* decoded pages outlive this call: they hold these handler addresses */
    static const void *const special[3] = { &&op_decode, &&op_pageend, &&op_jit };
    if (unlikely(!h->lbl_decode)) {
        h->lbl_decode = special[0];
        h->lbl_pageend = special[1];
        h->lbl_jit = special[2];
        for (unsigned i = 0; i < 3; i++) {
            h->xins[i].h = special[1];
            h->xins[i].len = 0;
        }
    }
    if (budget == 0)
        return FERRY_RV_RUN_BUDGET;
    atomic_fetch_and(&h->exit_req, ~REQ_IRQ);
    h->cur_n = 0;
    take_interrupt(h);
    goto reload;

#define IMM ((int64_t)ins->imm)
#define RS1 xr[ins->rs1]
#define RS2 xr[ins->rs2]
#define RD  xr[ins->rd]
#define NEXT() do { pc += L; n++; ins += L / 2; goto *ins->h; } while (0)
#define JUMP(target) do { pc = (target); goto jump; } while (0)
#define RAISE(c, t) do { cause = (c); tval = (t); goto exception; } while (0)

reload:
    pc = h->pc;
    cur_va = TLB_INVALID;
    if (unlikely(n >= budget || atomic_load_explicit(&h->exit_req, memory_order_relaxed)))
        goto slow;
fetch: {
        RvITlbEntry *e = &h->itlb[(pc >> PG_SHIFT) & (ITLB_N - 1)];
        if (likely(e->tag == (pc & PG_MASK))) {
            cur = e->page;
        } else if ((cause = itlb_fill(h, pc, &cur)) != 0) {
            RAISE(cause, pc);
        }
        cur_va = pc & PG_MASK;
        ins = &cur->slot[(pc & (PG_SIZE - 1)) >> 1];
        goto *ins->h;
    }

jump:
    n++;
    if (unlikely(n >= budget || atomic_load_explicit(&h->exit_req, memory_order_relaxed)))
        goto slow;
    if (likely((pc & PG_MASK) == cur_va)) {
        ins = &cur->slot[(pc & (PG_SIZE - 1)) >> 1];
        goto *ins->h;
    }
    goto fetch;

slow:
    h->pc = pc;
    if (n >= budget) {
        result = FERRY_RV_RUN_BUDGET;
        goto out;
    }
    {
        int req = atomic_exchange(&h->exit_req, 0);
        if (req & REQ_KICK) {
            result = FERRY_RV_RUN_KICKED;
            goto out;
        }
        h->cur_n = n;
        take_interrupt(h);
    }
    pc = h->pc;
    cur_va = TLB_INVALID;
    goto fetch;

check_state:
    /* after CSR writes and xRET: modes, TLB sets and interrupt enables may have changed */
    h->pc = pc;
    h->cur_n = n;
    take_interrupt(h);
    goto reload;

exception:
    h->pc = pc;
    trap(h, cause, tval);
    n++;
    goto reload;

illegal:
    RAISE(EXC_ILLEGAL, fetch_raw(h, pc));

out:
    ferry_rv_fp_suspend(&h->fflags);
    h->instret += n;
    h->cur_n = 0;
    return result;

op_pageend:
    goto fetch;

op_decode: {
        unsigned off = pc & (PG_SIZE - 1);
        uint32_t raw;
        Decoded d;
        unsigned len;
        if (unlikely(!h->code[cur->ram_index])) {
            h->code[cur->ram_index] = 1;
            wtlb_drop_page(h, cur->host);
        }
        if (unlikely(!page_insn(cur, off, &raw))) {
            /* crosses into the next page: decode each time, never cache */
            uint64_t pa;
            uint8_t *p;
            if ((cause = translate(h, pc + 2, ACC_X, h->priv, &pa)) != 0)
                RAISE(cause, pc + 2);
            if (!(p = ram_ptr(h, pa, 2)))
                RAISE(EXC_INSN_ACCESS, pc + 2);
            raw |= (uint32_t)(p[0] | (p[1] << 8)) << 16;
            decode(raw, &d, &len);
            ins = &h->xins[0];
            set_insn(ins, labels[len == 2][d.op], &d, len);
            cur_va = TLB_INVALID;
            goto *ins->h;
        }
        decode(raw, &d, &len);
        if (h->jit && ferry_rv_jit_op_kind(d.op) == RV_JIT_BODY) {
            Decoded bd[MAX_INSNS];
            uint8_t bl[MAX_INSNS];
            unsigned k = ferry_rv_jit_block_length(bd, jit_scan(cur, off, bd, bl));
            if (k >= 2) {
                if (ferry_rv_jit_full(h->jit)) {
                    /* every block goes, and this page with them: start again */
                    code_flush(h);
                    h->pc = pc;
                    goto reload;
                }
                RvJitPlace place = { cur->slot, off, h->lbl_jit };
                ins->jit = ferry_rv_jit_compile(h->jit, bd, bl, k, &place);
                ins->h = h->lbl_jit;
                goto op_jit;
            }
        }
        set_insn(ins, labels[len == 2][d.op], &d, len);
        goto *ins->h;
    }

op_jit: {
        RvJitExit r = ((RvJitFn)ins->jit)(h, pc, n < budget ? budget - n : 0);
        pc = r.pc;
        n += (uint32_t)r.info;
        if (unlikely(r.info & RV_JIT_SIDE))
            goto jit_side;
        n--;                    /* jump counts the last instruction again */
        goto jump;
    }

jit_side: {
        /* A load or store of the block (same page, never crossing it) that its
         * fast path could not do: this one runs here, decoded afresh (its slot
         * may be the block's own), then the fetch goes on after it. */
        unsigned off = pc & (PG_SIZE - 1);
        uint32_t raw;
        Decoded d;
        unsigned len;
        if (unlikely(!page_insn(cur, off, &raw))) {
            /* was compressed when translated; another hart or a device
             * rewrote it (no FENCE.I yet): op_decode's page-crossing path */
            ins = &cur->slot[off >> 1];
            goto op_decode;
        }
        decode(raw, &d, &len);
        ins = &h->xins[0];
        set_insn(ins, labels[len == 2][d.op], &d, len);
        cur_va = TLB_INVALID;
        goto *ins->h;
    }

/* Each handler exists twice, for 4-byte and compressed encodings, so that the step
 * to the next slot is a constant and not a load on the dispatch chain. */
#define HANDLER(name, ...) \
    op_##name##_4: { enum { L = 4 }; __VA_ARGS__ } \
    op_##name##_2: { enum { L = 2 }; __VA_ARGS__ }

HANDLER(ILLEGAL,
    goto illegal;)
HANDLER(NOP, NEXT();)
HANDLER(MV, RD = RS1; NEXT();)
HANDLER(LI, RD = IMM; NEXT();)
HANDLER(LUI, RD = IMM; NEXT();)
HANDLER(AUIPC, RD = pc + IMM; NEXT();)
HANDLER(JAL, {
        uint64_t t = pc + IMM;
        RD = pc + L;
        JUMP(t);
    })
HANDLER(JALR, {
        uint64_t t = (RS1 + IMM) & ~1ULL;
        RD = pc + L;
        JUMP(t);
    })
HANDLER(BEQ, if (RS1 == RS2) JUMP(pc + IMM); NEXT();)
HANDLER(BNE, if (RS1 != RS2) JUMP(pc + IMM); NEXT();)
HANDLER(BLT, if ((int64_t)RS1 < (int64_t)RS2) JUMP(pc + IMM); NEXT();)
HANDLER(BGE, if ((int64_t)RS1 >= (int64_t)RS2) JUMP(pc + IMM); NEXT();)
HANDLER(BLTU, if (RS1 < RS2) JUMP(pc + IMM); NEXT();)
HANDLER(BGEU, if (RS1 >= RS2) JUMP(pc + IMM); NEXT();)
#define LOAD(T, SZ, CONV) do { \
        uint64_t va_ = RS1 + IMM, v_; \
        RvTlbEntry *e_ = &h->dtlb->r[(va_ >> PG_SHIFT) & (TLB_N - 1)]; \
        if (likely(e_->tag == (va_ & (PG_MASK | (SZ - 1))))) { \
            v_ = (uint64_t)(CONV)__atomic_load_n((T *)(e_->addend + (uintptr_t)va_), __ATOMIC_RELAXED); \
        } else { \
            if ((cause = load_slow(h, va_, SZ, &v_)) != 0) \
                RAISE(cause, va_); \
            v_ = (uint64_t)(CONV)(T)v_; \
        } \
        RD = v_; \
    } while (0)
HANDLER(LB, LOAD(uint8_t, 1, int8_t); NEXT();)
HANDLER(LH, LOAD(uint16_t, 2, int16_t); NEXT();)
HANDLER(LW, LOAD(uint32_t, 4, int32_t); NEXT();)
HANDLER(LD, LOAD(uint64_t, 8, uint64_t); NEXT();)
HANDLER(LBU, LOAD(uint8_t, 1, uint8_t); NEXT();)
HANDLER(LHU, LOAD(uint16_t, 2, uint16_t); NEXT();)
HANDLER(LWU, LOAD(uint32_t, 4, uint32_t); NEXT();)
#define STORE(T, SZ, VAL) do { \
        uint64_t va_ = RS1 + IMM; \
        RvTlbEntry *e_ = &h->dtlb->w[(va_ >> PG_SHIFT) & (TLB_N - 1)]; \
        if (likely(e_->tag == (va_ & (PG_MASK | (SZ - 1))))) { \
            uint8_t *p_ = (uint8_t *)(e_->addend + (uintptr_t)va_); \
            if (likely(!watched(h, p_))) \
                __atomic_store_n((T *)p_, (T)(VAL), __ATOMIC_RELAXED); \
            else \
                store_locked(h, p_, SZ, (VAL)); \
        } else if ((cause = store_slow(h, va_, SZ, (VAL))) != 0) { \
            RAISE(cause, va_); \
        } \
    } while (0)
HANDLER(SB, STORE(uint8_t, 1, RS2); NEXT();)
HANDLER(SH, STORE(uint16_t, 2, RS2); NEXT();)
HANDLER(SW, STORE(uint32_t, 4, RS2); NEXT();)
HANDLER(SD, STORE(uint64_t, 8, RS2); NEXT();)
HANDLER(ADDI, RD = RS1 + IMM; NEXT();)
HANDLER(SLTI, RD = (int64_t)RS1 < IMM; NEXT();)
HANDLER(SLTIU, RD = RS1 < (uint64_t)IMM; NEXT();)
HANDLER(XORI, RD = RS1 ^ IMM; NEXT();)
HANDLER(ORI, RD = RS1 | IMM; NEXT();)
HANDLER(ANDI, RD = RS1 & IMM; NEXT();)
HANDLER(SLLI, RD = RS1 << ins->imm; NEXT();)
HANDLER(SRLI, RD = RS1 >> ins->imm; NEXT();)
HANDLER(SRAI, RD = (uint64_t)((int64_t)RS1 >> ins->imm); NEXT();)
HANDLER(ADD, RD = RS1 + RS2; NEXT();)
HANDLER(SUB, RD = RS1 - RS2; NEXT();)
HANDLER(SLL, RD = RS1 << (RS2 & 63); NEXT();)
HANDLER(SLT, RD = (int64_t)RS1 < (int64_t)RS2; NEXT();)
HANDLER(SLTU, RD = RS1 < RS2; NEXT();)
HANDLER(XOR, RD = RS1 ^ RS2; NEXT();)
HANDLER(SRL, RD = RS1 >> (RS2 & 63); NEXT();)
HANDLER(SRA, RD = (uint64_t)((int64_t)RS1 >> (RS2 & 63)); NEXT();)
HANDLER(OR, RD = RS1 | RS2; NEXT();)
HANDLER(AND, RD = RS1 & RS2; NEXT();)
HANDLER(ADDIW, RD = (uint64_t)(int64_t)(int32_t)(RS1 + IMM); NEXT();)
HANDLER(SLLIW, RD = (uint64_t)(int64_t)(int32_t)((uint32_t)RS1 << ins->imm); NEXT();)
HANDLER(SRLIW, RD = (uint64_t)(int64_t)(int32_t)((uint32_t)RS1 >> ins->imm); NEXT();)
HANDLER(SRAIW, RD = (uint64_t)(int64_t)((int32_t)RS1 >> ins->imm); NEXT();)
HANDLER(ADDW, RD = (uint64_t)(int64_t)(int32_t)(RS1 + RS2); NEXT();)
HANDLER(SUBW, RD = (uint64_t)(int64_t)(int32_t)(RS1 - RS2); NEXT();)
HANDLER(SLLW, RD = (uint64_t)(int64_t)(int32_t)((uint32_t)RS1 << (RS2 & 31)); NEXT();)
HANDLER(SRLW, RD = (uint64_t)(int64_t)(int32_t)((uint32_t)RS1 >> (RS2 & 31)); NEXT();)
HANDLER(SRAW, RD = (uint64_t)(int64_t)((int32_t)RS1 >> (RS2 & 31)); NEXT();)
HANDLER(MUL, RD = RS1 * RS2; NEXT();)
HANDLER(MULH, RD = (uint64_t)(((__int128)(int64_t)RS1 * (__int128)(int64_t)RS2) >> 64); NEXT();)
HANDLER(MULHSU, RD = (uint64_t)(((__int128)(int64_t)RS1 * (__int128)RS2) >> 64); NEXT();)
HANDLER(MULHU, RD = (uint64_t)(((unsigned __int128)RS1 * RS2) >> 64); NEXT();)
HANDLER(DIV, {
        int64_t a = (int64_t)RS1, b = (int64_t)RS2;
        RD = b == 0 ? ~0ULL : (a == INT64_MIN && b == -1) ? (uint64_t)a : (uint64_t)(a / b);
        NEXT();
    })
HANDLER(DIVU, RD = RS2 == 0 ? ~0ULL : RS1 / RS2; NEXT();)
HANDLER(REM, {
        int64_t a = (int64_t)RS1, b = (int64_t)RS2;
        RD = b == 0 ? (uint64_t)a : (a == INT64_MIN && b == -1) ? 0 : (uint64_t)(a % b);
        NEXT();
    })
HANDLER(REMU, RD = RS2 == 0 ? RS1 : RS1 % RS2; NEXT();)
HANDLER(MULW, RD = (uint64_t)(int64_t)(int32_t)(RS1 * RS2); NEXT();)
HANDLER(DIVW, {
        int32_t a = (int32_t)RS1, b = (int32_t)RS2;
        RD = (uint64_t)(int64_t)(b == 0 ? -1 : (a == INT32_MIN && b == -1) ? a : a / b);
        NEXT();
    })
HANDLER(DIVUW, {
        uint32_t a = (uint32_t)RS1, b = (uint32_t)RS2;
        RD = (uint64_t)(int64_t)(int32_t)(b == 0 ? 0xffffffffu : a / b);
        NEXT();
    })
HANDLER(REMW, {
        int32_t a = (int32_t)RS1, b = (int32_t)RS2;
        RD = (uint64_t)(int64_t)(b == 0 ? a : (a == INT32_MIN && b == -1) ? 0 : a % b);
        NEXT();
    })
HANDLER(REMUW, {
        uint32_t a = (uint32_t)RS1, b = (uint32_t)RS2;
        RD = (uint64_t)(int64_t)(int32_t)(b == 0 ? a : a % b);
        NEXT();
    })
/* Guest loads/stores are host loads/stores.  On a TSO host (x86-64) only a fence that
 * orders earlier stores before later loads needs a host fence; elsewhere all do. */
#if defined(__x86_64__)
#define FENCE_NEEDS_HOST(imm) (((imm) & 0x50) && ((imm) & 0x0a))
#else
#define FENCE_NEEDS_HOST(imm) 1
#endif
HANDLER(FENCE,
    if (FENCE_NEEDS_HOST(ins->imm))
        atomic_thread_fence(memory_order_seq_cst);
    else
        atomic_signal_fence(memory_order_seq_cst);
    NEXT();)
HANDLER(FENCE_I,
    h->pc = pc + L;
    n++;
    code_flush(h);
    goto reload;)
HANDLER(ECALL,
    RAISE(EXC_ECALL_U + h->priv, 0);)
HANDLER(EBREAK,
    RAISE(EXC_BREAKPOINT, pc);)
HANDLER(WFI,
    if (h->priv == PRV_U || (h->priv == PRV_S && (h->mstatus & MSTATUS_TW)))
        goto illegal;
    pc += L;
    n++;
    if (ferry_rv_hart_wfi_wakeup(h))
        goto check_state;
    h->pc = pc;
    result = FERRY_RV_RUN_WFI;
    goto out;)
HANDLER(MRET,
    if (h->priv < PRV_M)
        goto illegal;
    n++;
    do_mret(h);
    pc = h->pc;
    goto check_state;)
HANDLER(SRET,
    if (h->priv < PRV_S || (h->priv == PRV_S && (h->mstatus & MSTATUS_TSR)))
        goto illegal;
    n++;
    do_sret(h);
    pc = h->pc;
    goto check_state;)
HANDLER(SFENCE_VMA,
    if (h->priv < PRV_S || (h->priv == PRV_S && (h->mstatus & MSTATUS_TVM)))
        goto illegal;
    tlb_flush_paged(h);
    h->pc = pc + L;
    n++;
    goto reload;)
#define CSR_OP(SRC, KIND, WRITES) do { \
        unsigned csr_ = (unsigned)ins->imm & 0xfff; \
        uint64_t old_, src_ = (SRC), new_; \
        gboolean w_ = (WRITES); \
        h->cur_n = n; \
        if (!csr_allowed(h, csr_, w_) || !csr_read(h, csr_, &old_)) \
            goto illegal; \
        if (w_) { \
            uint64_t base_ = csr_rmw_base(h, csr_, old_); \
            new_ = KIND == 0 ? src_ : KIND == 1 ? (base_ | src_) : (base_ & ~src_); \
            csr_write(h, csr_, new_); \
        } \
        RD = old_; \
        if (!w_) \
            NEXT(); \
        pc += L; \
        n++; \
        goto check_state; \
    } while (0)
HANDLER(CSRRW, CSR_OP(RS1, 0, TRUE);)
HANDLER(CSRRS, CSR_OP(RS1, 1, ins->rs1 != 0);)
HANDLER(CSRRC, CSR_OP(RS1, 2, ins->rs1 != 0);)
HANDLER(CSRRWI, CSR_OP(ins->rs1, 0, TRUE);)
HANDLER(CSRRSI, CSR_OP(ins->rs1, 1, ins->rs1 != 0);)
HANDLER(CSRRCI, CSR_OP(ins->rs1, 2, ins->rs1 != 0);)
#define LR_OP(SZ) do { \
        uint8_t *p_; \
        uint64_t va_ = RS1; \
        if ((cause = lr_host(h, va_, SZ, &p_)) != 0) \
            RAISE(cause, va_); \
        res_release(h); \
        __atomic_fetch_add(watch_of(h, p_), 1, __ATOMIC_SEQ_CST); \
        h->res_host = (uintptr_t)p_; \
        h->res_gen = __atomic_load_n(bucket_of(h, p_), __ATOMIC_SEQ_CST); \
        uint64_t v_ = SZ == 4 ? (uint64_t)(int64_t)(int32_t)__atomic_load_n((uint32_t *)p_, __ATOMIC_SEQ_CST) \
                              : __atomic_load_n((uint64_t *)p_, __ATOMIC_SEQ_CST); \
        h->res_val = v_; \
        RD = v_; \
        NEXT(); \
    } while (0)
/* SC succeeds only if no store took the bucket since LR (generation unchanged and
 * even) and the word still holds the LR value; it holds the bucket while it writes. */
#define SC_OP(T, SZ) do { \
        uint8_t *p_; \
        uint64_t va_ = RS1; \
        if ((cause = amo_host(h, va_, SZ, &p_)) != 0) \
            RAISE(cause, va_); \
        gboolean ok_ = FALSE; \
        if (h->res_host == (uintptr_t)p_ && !(h->res_gen & 1)) { \
            uint64_t *g_ = bucket_of(h, p_), gen_ = h->res_gen; \
            if (__atomic_compare_exchange_n(g_, &gen_, gen_ + 1, FALSE, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) { \
                T exp_ = (T)h->res_val; \
                ok_ = __atomic_compare_exchange_n((T *)p_, &exp_, (T)RS2, FALSE, \
                                                  __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST); \
                bucket_unlock(g_); \
            } \
        } \
        res_release(h); \
        RD = !ok_; \
        NEXT(); \
    } while (0)
HANDLER(LR_W, LR_OP(4);)
HANDLER(LR_D, LR_OP(8);)
HANDLER(SC_W, SC_OP(uint32_t, 4);)
HANDLER(SC_D, SC_OP(uint64_t, 8);)
#define AMO(T, SZ, EXPR_FETCH) do { \
        uint8_t *p_; \
        uint64_t va_ = RS1; \
        if ((cause = amo_host(h, va_, SZ, &p_)) != 0) \
            RAISE(cause, va_); \
        T *a_ = (T *)p_; \
        T s_ = (T)RS2; \
        uint64_t *g_ = unlikely(watched(h, p_)) ? bucket_of(h, p_) : NULL; \
        if (g_) \
            bucket_lock(g_); \
        T o_ = EXPR_FETCH; \
        if (g_) \
            bucket_unlock(g_); \
        RD = SZ == 4 ? (uint64_t)(int64_t)(int32_t)o_ : (uint64_t)o_; \
        NEXT(); \
    } while (0)
/* min/max have no host atomic: a CAS loop as AMO's fetch (o_ inside is the
 * value the CAS saw, which NEWV uses). */
#define AMO_CAS(T, SZ, NEWV) AMO(T, SZ, ({ \
        T o_ = __atomic_load_n(a_, __ATOMIC_RELAXED); \
        while (!__atomic_compare_exchange_n(a_, &o_, (NEWV), FALSE, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) \
            ; \
        o_; }))
HANDLER(AMOSWAP_W, AMO(uint32_t, 4, __atomic_exchange_n(a_, s_, __ATOMIC_SEQ_CST));)
HANDLER(AMOADD_W, AMO(uint32_t, 4, __atomic_fetch_add(a_, s_, __ATOMIC_SEQ_CST));)
HANDLER(AMOXOR_W, AMO(uint32_t, 4, __atomic_fetch_xor(a_, s_, __ATOMIC_SEQ_CST));)
HANDLER(AMOAND_W, AMO(uint32_t, 4, __atomic_fetch_and(a_, s_, __ATOMIC_SEQ_CST));)
HANDLER(AMOOR_W, AMO(uint32_t, 4, __atomic_fetch_or(a_, s_, __ATOMIC_SEQ_CST));)
HANDLER(AMOMIN_W, AMO_CAS(uint32_t, 4, (int32_t)o_ < (int32_t)s_ ? o_ : s_);)
HANDLER(AMOMAX_W, AMO_CAS(uint32_t, 4, (int32_t)o_ > (int32_t)s_ ? o_ : s_);)
HANDLER(AMOMINU_W, AMO_CAS(uint32_t, 4, o_ < s_ ? o_ : s_);)
HANDLER(AMOMAXU_W, AMO_CAS(uint32_t, 4, o_ > s_ ? o_ : s_);)
HANDLER(AMOSWAP_D, AMO(uint64_t, 8, __atomic_exchange_n(a_, s_, __ATOMIC_SEQ_CST));)
HANDLER(AMOADD_D, AMO(uint64_t, 8, __atomic_fetch_add(a_, s_, __ATOMIC_SEQ_CST));)
HANDLER(AMOXOR_D, AMO(uint64_t, 8, __atomic_fetch_xor(a_, s_, __ATOMIC_SEQ_CST));)
HANDLER(AMOAND_D, AMO(uint64_t, 8, __atomic_fetch_and(a_, s_, __ATOMIC_SEQ_CST));)
HANDLER(AMOOR_D, AMO(uint64_t, 8, __atomic_fetch_or(a_, s_, __ATOMIC_SEQ_CST));)
HANDLER(AMOMIN_D, AMO_CAS(uint64_t, 8, (int64_t)o_ < (int64_t)s_ ? o_ : s_);)
HANDLER(AMOMAX_D, AMO_CAS(uint64_t, 8, (int64_t)o_ > (int64_t)s_ ? o_ : s_);)
HANDLER(AMOMINU_D, AMO_CAS(uint64_t, 8, o_ < s_ ? o_ : s_);)
HANDLER(AMOMAXU_D, AMO_CAS(uint64_t, 8, o_ > s_ ? o_ : s_);)
#define FP_ENABLED() do { if (unlikely(!(h->mstatus & MSTATUS_FS))) goto illegal; } while (0)
HANDLER(FLW, {
        FP_ENABLED();
        uint64_t va_ = RS1 + IMM, v_;
        RvTlbEntry *e_ = &h->dtlb->r[(va_ >> PG_SHIFT) & (TLB_N - 1)];
        if (likely(e_->tag == (va_ & (PG_MASK | 3))))
            v_ = __atomic_load_n((uint32_t *)(e_->addend + (uintptr_t)va_), __ATOMIC_RELAXED);
        else if ((cause = load_slow(h, va_, 4, &v_)) != 0)
            RAISE(cause, va_);
        h->f[ins->rd] = (v_ & 0xffffffffULL) | 0xffffffff00000000ULL;
        fs_dirty(h);
        NEXT();
    })
HANDLER(FLD, {
        FP_ENABLED();
        uint64_t va_ = RS1 + IMM, v_;
        RvTlbEntry *e_ = &h->dtlb->r[(va_ >> PG_SHIFT) & (TLB_N - 1)];
        if (likely(e_->tag == (va_ & (PG_MASK | 7))))
            v_ = __atomic_load_n((uint64_t *)(e_->addend + (uintptr_t)va_), __ATOMIC_RELAXED);
        else if ((cause = load_slow(h, va_, 8, &v_)) != 0)
            RAISE(cause, va_);
        h->f[ins->rd] = v_;
        fs_dirty(h);
        NEXT();
    })
HANDLER(FSW,
    FP_ENABLED();
    STORE(uint32_t, 4, h->f[ins->rs2]);
    NEXT();)
HANDLER(FSD,
    FP_ENABLED();
    STORE(uint64_t, 8, h->f[ins->rs2]);
    NEXT();)
HANDLER(FP,
    FP_ENABLED();
    if (!ferry_rv_fp_exec((uint32_t)ins->imm, xr, h->f, h->frm, &h->fflags))
        goto illegal;
    fs_dirty(h);
    NEXT();)
}
