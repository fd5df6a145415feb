/* RV64GC software hart: the interface the riscv-virt machine and the tests use.
 * Unprivileged ISA 20191213 (I, M, A, F, D, C, Zicsr, Zifencei) and privileged
 * ISA 20211203 (M, S, U modes, Sv39/Sv48).  Implementation in cpu-riscv.c,
 * exact IEEE 754 arithmetic in cpu-riscv-fpu.c. */
#pragma once

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

typedef struct FerryRvBus {
    uint8_t *ram;             /* guest RAM, host pointer */
    uint64_t ram_base;        /* guest-physical address of ram[0] */
    uint64_t ram_size;        /* bytes, multiple of 4096 */
    void *opaque;
    /* Non-RAM physical accesses (devices), size 1/2/4/8, naturally aligned.
     * Return FALSE for "no device": the hart raises an access fault.
     * Called on the thread running ferry_rv_hart_run(). */
    gboolean (*mmio_read)(void *opaque, uint64_t paddr, unsigned size, uint64_t *value);
    gboolean (*mmio_write)(void *opaque, uint64_t paddr, unsigned size, uint64_t value);
    uint64_t (*read_time)(void *opaque);  /* the `time` CSR / mtime, 10 MHz; NULL reads 0 */
} FerryRvBus;

typedef struct FerryRvHart FerryRvHart;

/* mip bit numbers for ferry_rv_hart_set_irq() */
enum {
    FERRY_RV_IRQ_SSIP = 1,
    FERRY_RV_IRQ_MSIP = 3,
    FERRY_RV_IRQ_STIP = 5,
    FERRY_RV_IRQ_MTIP = 7,
    FERRY_RV_IRQ_SEIP = 9,
    FERRY_RV_IRQ_MEIP = 11,
};

/* The bus is copied.  Harts made from buses with the same `ram` may run on
 * different threads at once: their AMOs and LR/SC are atomic on host memory.
 * Caller owns the result; free it with ferry_rv_hart_free() (NULL is fine). */
FerryRvHart *ferry_rv_hart_new(const FerryRvBus *bus, uint64_t hartid);
void ferry_rv_hart_free(FerryRvHart *h);
/* M mode, all registers and CSRs at their reset values, pc as given.
 * The caller sets a0 (hartid), a1 (FDT) etc. with ferry_rv_hart_set_reg(). */
void ferry_rv_hart_reset(FerryRvHart *h, uint64_t pc);
/* Drops every predecoded instruction: call after the host (a loader, snapshot restore)
 * wrote guest RAM that may hold code the hart already ran, while the hart is not in
 * run().  Guest stores need no call; device DMA is covered by the guest's FENCE.I. */
void ferry_rv_hart_flush_code(FerryRvHart *h);
/* r = 0..31 integer registers; 32..63 FP registers f0..f31 (raw 64-bit). */
void ferry_rv_hart_set_reg(FerryRvHart *h, unsigned r, uint64_t v);
uint64_t ferry_rv_hart_get_reg(FerryRvHart *h, unsigned r);
uint64_t ferry_rv_hart_get_pc(FerryRvHart *h);
void ferry_rv_hart_set_pc(FerryRvHart *h, uint64_t pc);
/* Current privilege: 0 U, 1 S, 3 M. */
unsigned ferry_rv_hart_get_priv(FerryRvHart *h);
/* CSR access for the monitor, the tests and the machine (no permission checks,
 * no side effects beyond what a write by M mode would have).  FALSE: no such CSR. */
gboolean ferry_rv_hart_read_csr(FerryRvHart *h, unsigned csr, uint64_t *value);
gboolean ferry_rv_hart_write_csr(FerryRvHart *h, unsigned csr, uint64_t value);

/* Interrupt lines from CLINT/PLIC, any thread: MSIP, MTIP, MEIP, SEIP bits of mip.
 * A level that becomes pending makes a running hart look at it within one block. */
void ferry_rv_hart_set_irq(FerryRvHart *h, unsigned mip_bit, gboolean level);
/* Any thread: make run() return FERRY_RV_RUN_KICKED soon (within one block). */
void ferry_rv_hart_kick(FerryRvHart *h);
/* Any thread: TRUE if an interrupt is pending and enabled in mie (the WFI wake-up
 * condition, regardless of mstatus.MIE/SIE). */
gboolean ferry_rv_hart_wfi_wakeup(FerryRvHart *h);

typedef enum { FERRY_RV_RUN_BUDGET, FERRY_RV_RUN_WFI, FERRY_RV_RUN_KICKED } FerryRvRunResult;
/* Runs up to `budget` instructions (bounded slice); returns early on WFI with no
 * pending interrupt (pc is then past the WFI: call run again after an interrupt
 * line changes), or on kick.  One thread at a time per hart. */
FerryRvRunResult ferry_rv_hart_run(FerryRvHart *h, uint64_t budget);
/* Number of instructions retired since reset (minstret). */
uint64_t ferry_rv_hart_get_instret(FerryRvHart *h);
/* Appends pc, privilege, x/f registers and the main CSRs, for "info registers". */
void ferry_rv_hart_dump(FerryRvHart *h, GString *out);

/* ---- internal: the decoder's output (cpu-riscv.c), also the JIT's input ---- */

#define RV_OPS(X) \
    X(ILLEGAL) X(LUI) X(AUIPC) X(JAL) X(JALR) \
    X(BEQ) X(BNE) X(BLT) X(BGE) X(BLTU) X(BGEU) \
    X(LB) X(LH) X(LW) X(LD) X(LBU) X(LHU) X(LWU) X(SB) X(SH) X(SW) X(SD) \
    X(ADDI) X(SLTI) X(SLTIU) X(XORI) X(ORI) X(ANDI) X(SLLI) X(SRLI) X(SRAI) \
    X(ADD) X(SUB) X(SLL) X(SLT) X(SLTU) X(XOR) X(SRL) X(SRA) X(OR) X(AND) \
    X(ADDIW) X(SLLIW) X(SRLIW) X(SRAIW) X(ADDW) X(SUBW) X(SLLW) X(SRLW) X(SRAW) \
    X(MUL) X(MULH) X(MULHSU) X(MULHU) X(DIV) X(DIVU) X(REM) X(REMU) \
    X(MULW) X(DIVW) X(DIVUW) X(REMW) X(REMUW) \
    X(FENCE) X(FENCE_I) X(ECALL) X(EBREAK) X(WFI) X(MRET) X(SRET) X(SFENCE_VMA) \
    X(CSRRW) X(CSRRS) X(CSRRC) X(CSRRWI) X(CSRRSI) X(CSRRCI) \
    X(LR_W) X(SC_W) X(LR_D) X(SC_D) \
    X(AMOSWAP_W) X(AMOADD_W) X(AMOXOR_W) X(AMOAND_W) X(AMOOR_W) \
    X(AMOMIN_W) X(AMOMAX_W) X(AMOMINU_W) X(AMOMAXU_W) \
    X(AMOSWAP_D) X(AMOADD_D) X(AMOXOR_D) X(AMOAND_D) X(AMOOR_D) \
    X(AMOMIN_D) X(AMOMAX_D) X(AMOMINU_D) X(AMOMAXU_D) \
    X(FLW) X(FLD) X(FSW) X(FSD) X(FP) \
    X(MV) X(LI) X(NOP)

enum {
#define OP_ENUM(n) OP_##n,
    RV_OPS(OP_ENUM)
#undef OP_ENUM
    OP_COUNT
};

typedef struct {
    unsigned op;
    int32_t imm;
    unsigned rd, rs1, rs2;
} Decoded;

/* ---- internal: the translator (cpu-riscv-jit.c) ---- */

typedef struct RvJit RvJit;
/* Where the translated code finds the hart's state (offsetof in FerryRvHart,
 * which starts with x[0..32]); the data TLB is RvTlbEntry { tag, addend }[tlb_n]
 * for loads, then as many for stores at tlb_w_offset. */
typedef struct {
    size_t dtlb_offset;         /* RvDTlb *dtlb */
    size_t watch_adj_offset;    /* uintptr_t watch_adj */
    size_t tlb_w_offset;
    unsigned tlb_n;
    size_t exit_req_offset;     /* atomic_int exit_req: nonzero, stop chaining */
} RvJitLayout;
/* Where a block sits, for chaining to the blocks of its page: the page's decoded
 * slots (16 bytes each: handler, then the block for handler == lbl_jit), the
 * block's offset in the page. */
typedef struct {
    const void *slots;
    unsigned page_offset;
    const void *lbl_jit;
} RvJitPlace;
/* A block's result, in rax:rdx: where to go on, and how many instructions
 * retired (| RV_JIT_SIDE: the instruction at pc must run in the interpreter). */
typedef struct {
    uint64_t pc;
    uint64_t info;
} RvJitExit;
#define RV_JIT_SIDE (1ULL << 32)
#define MAX_INSNS 64
/* budget: how many instructions it may retire before it stops chaining blocks */
typedef RvJitExit (*RvJitFn)(void *hart, uint64_t pc, uint64_t budget);

/* NULL where there is no translator (not x86-64, FERRY_RV_JIT=0, no executable memory). */
RvJit *ferry_rv_jit_new(const RvJitLayout *layout);
void ferry_rv_jit_free(RvJit *j);
/* Forgets every block: call when nothing can reach them any more. */
void ferry_rv_jit_reset(RvJit *j);
/* TRUE when the next block might not fit: drop every block, then reset. */
gboolean ferry_rv_jit_full(RvJit *j);
enum { RV_JIT_NONE, RV_JIT_BODY, RV_JIT_END };
/* RV_JIT_BODY: translated, goes on; RV_JIT_END: translated, ends a block (branches,
 * jumps); RV_JIT_NONE: not translated (a block ends before it). */
unsigned ferry_rv_jit_op_kind(unsigned op);
/* How many of the n decoded instructions d[] make a block (0 or 1: not worth one). */
unsigned ferry_rv_jit_block_length(const Decoded *d, unsigned n);
/* Translates d[0..n) (lengths lens[]; n from ferry_rv_jit_block_length). */
void *ferry_rv_jit_compile(RvJit *j, const Decoded *d, const uint8_t *lens, unsigned n,
                           const RvJitPlace *place);

/* ---- internal: exact F/D arithmetic (cpu-riscv-fpu.c) ---- */

enum {
    RV_FFLAG_NX = 1, RV_FFLAG_UF = 2, RV_FFLAG_OF = 4, RV_FFLAG_DZ = 8, RV_FFLAG_NV = 16,
};
enum { RV_RM_RNE = 0, RV_RM_RTZ = 1, RV_RM_RDN = 2, RV_RM_RUP = 3, RV_RM_RMM = 4, RV_RM_DYN = 7 };

/* Executes one OP-FP / FMADD / FMSUB / FNMSUB / FNMADD instruction `insn` on the
 * integer registers x[0..31] (x[0] is never written) and FP registers f[0..31],
 * frm = fcsr.frm.  Accrues exception flags into *fflags.  Returns FALSE if the
 * instruction is illegal (reserved encoding or rounding mode); nothing is written then. */
gboolean ferry_rv_fp_exec(uint32_t insn, uint64_t *x, uint64_t *f, unsigned frm, unsigned *fflags);

/* While guest FP instructions run, the host FPU's control/status register may hold the
 * guest's rounding mode and accrued flags (x86-64 fast path).  This folds those flags
 * into *fflags and restores the host's FP state; the hart calls it before any other host
 * code runs on its thread (run() exit, device callbacks, fflags/fcsr access). */
void ferry_rv_fp_suspend(unsigned *fflags);

/* Scalar helpers, exported for the unit test.  Values are raw IEEE bit patterns. */
uint64_t ferry_rv_f64_add(uint64_t a, uint64_t b, unsigned rm, unsigned *flags);
uint64_t ferry_rv_f64_mul(uint64_t a, uint64_t b, unsigned rm, unsigned *flags);
uint64_t ferry_rv_f64_div(uint64_t a, uint64_t b, unsigned rm, unsigned *flags);
uint64_t ferry_rv_f64_sqrt(uint64_t a, unsigned rm, unsigned *flags);
uint64_t ferry_rv_f64_fma(uint64_t a, uint64_t b, uint64_t c, unsigned rm, unsigned *flags);
uint32_t ferry_rv_f32_add(uint32_t a, uint32_t b, unsigned rm, unsigned *flags);
uint32_t ferry_rv_f32_mul(uint32_t a, uint32_t b, unsigned rm, unsigned *flags);
uint32_t ferry_rv_f32_div(uint32_t a, uint32_t b, unsigned rm, unsigned *flags);
uint32_t ferry_rv_f32_fma(uint32_t a, uint32_t b, uint32_t c, unsigned rm, unsigned *flags);

G_END_DECLS
