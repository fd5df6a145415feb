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
