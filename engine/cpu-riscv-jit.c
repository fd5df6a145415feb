/* cpu-riscv-jit.c: translates straight runs of RV64 integer instructions into
 * x86-64 code for the software hart (cpu-riscv.c).
 *
 * A block starts where the interpreter first decodes an instruction and
 * runs to the first branch or jump (included), or up to, not including, an
 * instruction it does not translate (CSRs, atomics, FP, division, traps...),
 * the end of the 4 KiB page, or MAX_INSNS. The interpreter calls it as
 *     RvJitExit fn(FerryRvHart *h, uint64_t pc)
 * and carries on at exit.pc, exit.count instructions later. pc is where the
 * block starts this time: one physical page may be mapped at several virtual
 * addresses (and is, by Linux: before and after it turns paging on), so the
 * code holds no absolute pc.
 *
 * What keeps it exact:
 *  - guest registers live in h->x, as in the interpreter: every translated
 *    instruction reads its sources from there and writes its result back, so
 *    the state is complete at every exit;
 *  - loads and stores take the data TLB's fast path inline (the same tag
 *    compare and addend, and for stores the LR/SC watch check); anything
 *    else (a miss, MMIO, misalignment, a watched page, a fault) leaves
 *    through a side exit: pc of that instruction, count of those before it
 *    and RV_JIT_SIDE, and the interpreter runs that one instruction itself,
 *    faults and all. Stores to pages holding decoded code never have a fast
 *    entry, so guest code that writes code always leaves first;
 *  - no block crosses its page, and a block is found through the page's
 *    decoded slot: whatever drops the slots (a store to the page, FENCE.I,
 *    a full code buffer) drops the block.
 * A block ends by going straight into the block at its successor when that
 * is in the same page and translated (the successor's slot is read each
 * time, so nothing needs unlinking when a page's slots go), after checking
 * the budget the interpreter passed and the hart's exit requests (kicks,
 * interrupt lines); else it returns to the interpreter. So a slice stays
 * bounded and an interrupt is seen within one block, as in the interpreter;
 * a block is at most MAX_INSNS long. Returns (JALR) and jumps to other pages
 * go back through the interpreter.
 *
 * x86-64 hosts only; elsewhere (or with FERRY_RV_JIT=0, or where the host
 * refuses executable memory) the hart interprets everything. */
#include "cpu-riscv-private.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__x86_64__)

#define CODE_SIZE (32u << 20)
/* Upper bound of the bytes one guest instruction becomes, side exit included. */
#define MAX_BYTES_PER_INSN 192
/* Every block starts with  xor r8d, r8d; mov r9, rdx  (instructions so far, the
 * budget); a chained jump enters after it. */
#define BODY_OFFSET 6

struct RvJit {
    uint8_t *code;
    size_t used;
    RvJitLayout lay;
};

RvJit *
ferry_rv_jit_new(const RvJitLayout *layout)
{
    const char *env = getenv("FERRY_RV_JIT");
    if (env && strcmp(env, "0") == 0)
        return NULL;
    void *code = mmap(NULL, CODE_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (code == MAP_FAILED) {
        g_debug("riscv: no executable memory for translated code (%s); interpreting only",
                g_strerror(errno));
        return NULL;
    }
    RvJit *j = g_new0(RvJit, 1);
    j->code = code;
    j->lay = *layout;
    return j;
}

void
ferry_rv_jit_free(RvJit *j)
{
    if (!j)
        return;
    munmap(j->code, CODE_SIZE);
    g_free(j);
}

void
ferry_rv_jit_reset(RvJit *j)
{
    if (j)
        j->used = 0;
}

gboolean
ferry_rv_jit_full(RvJit *j)
{
    return j->used + MAX_INSNS * MAX_BYTES_PER_INSN + 512 > CODE_SIZE;
}

/* ---- x86-64 encoding ---------------------------------------------------------
 * Host registers: rdi = h (and h->x at offset 0), rsi = the block's pc,
 * r8 = instructions retired by the blocks run so far in this call, r9 = the
 * budget, rax/rcx/rdx scratch. */

enum { RAX = 0, RCX = 1, RDX = 2, RSI = 6, RDI = 7 };

typedef struct {
    uint8_t *p;
} Emit;

static void
b(Emit *e, uint8_t v)
{
    *e->p++ = v;
}

static void
d32(Emit *e, int32_t v)
{
    memcpy(e->p, &v, 4);
    e->p += 4;
}

static void
d64(Emit *e, uint64_t v)
{
    memcpy(e->p, &v, 8);
    e->p += 8;
}

/* ModRM for [rdi + disp] with register field `reg`. */
static void
m_rdi(Emit *e, unsigned reg, int32_t disp)
{
    if (disp >= -128 && disp < 128) {
        b(e, 0x40 | (reg << 3) | RDI);
        b(e, (uint8_t) disp);
    } else {
        b(e, 0x80 | (reg << 3) | RDI);
        d32(e, disp);
    }
}

/* guest register r as a memory operand */
#define XR(r) ((int32_t) (8 * (r)))

/* op reg, [rdi + disp] (or [rdi + disp], reg) with optional REX.W */
static void
op_mem(Emit *e, gboolean w, uint8_t opcode, unsigned reg, int32_t disp)
{
    if (w)
        b(e, 0x48);
    b(e, opcode);
    m_rdi(e, reg, disp);
}

static void
load_x(Emit *e, unsigned reg, unsigned r)
{
    op_mem(e, TRUE, 0x8b, reg, XR(r));
}

static void
load_x32(Emit *e, unsigned reg, unsigned r)
{
    op_mem(e, FALSE, 0x8b, reg, XR(r));
}

static void
store_x(Emit *e, unsigned reg, unsigned r)
{
    op_mem(e, TRUE, 0x89, reg, XR(r));
}

static void
mov_imm64(Emit *e, unsigned reg, uint64_t v)
{
    b(e, 0x48);
    b(e, 0xb8 + reg);
    d64(e, v);
}

/* [REX.W] opcode /digit with rax as the register operand (the immediate follows) */
static void
group_rax(Emit *e, gboolean w, uint8_t opcode, unsigned digit)
{
    if (w)
        b(e, 0x48);
    b(e, opcode);
    b(e, 0xc0 | (digit << 3) | RAX);
}

/* /digit op on rax with a sign-extended imm32: add 0, or 1, and 4, sub 5, xor 6, cmp 7 */
static void
alu_imm(Emit *e, gboolean w, unsigned digit, int32_t imm)
{
    group_rax(e, w, 0x81, digit);
    d32(e, imm);
}

/* shift rax by an immediate (shl 4, shr 5, sar 7) */
static void
shift_imm(Emit *e, gboolean w, unsigned digit, unsigned count)
{
    group_rax(e, w, 0xc1, digit);
    b(e, (uint8_t) count);
}

/* shift rax by cl */
static void
shift_cl(Emit *e, gboolean w, unsigned digit)
{
    group_rax(e, w, 0xd3, digit);
}

static void
movsxd_rax_eax(Emit *e)
{
    b(e, 0x48);
    b(e, 0x63);
    b(e, 0xc0);
}

/* setcc al; movzx eax, al */
static void
setcc_rax(Emit *e, uint8_t cc)
{
    b(e, 0x0f);
    b(e, 0x90 | cc);
    b(e, 0xc0);
    b(e, 0x0f);
    b(e, 0xb6);
    b(e, 0xc0);
}

enum { CC_B = 0x2, CC_AE = 0x3, CC_E = 0x4, CC_NE = 0x5, CC_L = 0xc, CC_GE = 0xd };

/* jne rel32 to a side exit; returns where to patch the displacement */
static uint8_t *
jne_fwd(Emit *e)
{
    b(e, 0x0f);
    b(e, 0x85);
    uint8_t *at = e->p;
    d32(e, 0);
    return at;
}

/* reg = the block's pc (rsi) + rel: no pc is a constant (see the top) */
static void
lea_pc(Emit *e, unsigned reg, int64_t rel)
{
    g_assert(rel >= INT32_MIN && rel <= INT32_MAX);
    b(e, 0x48);
    b(e, 0x8d);
    b(e, 0x80 | (reg << 3) | RSI);
    d32(e, (int32_t) rel);
}

/* return (pc + rel, r8 + count [| RV_JIT_SIDE]) in rax:rdx */
static void
exit_to(Emit *e, int64_t rel, unsigned count, gboolean side)
{
    lea_pc(e, RAX, rel);
    b(e, 0x49); b(e, 0x8d); b(e, 0x50); b(e, (uint8_t) count);  /* lea rdx, [r8 + count] */
    if (side) {
        b(e, 0x48); b(e, 0x0f); b(e, 0xba); b(e, 0xea); b(e, 32);  /* bts rdx, 32 */
    }
    b(e, 0xc3);
}

/* Goes on at the block's pc + rel, `count` instructions (of this block) later:
 * straight into the block there if the target is in this page and translated
 * and the budget and the hart's exit requests allow, else back to the
 * interpreter. The target's slot is looked at each time, so a block dropped
 * with its page's slots is never entered (and a block is never entered from
 * another page: those can go separately). */
static void
emit_goto(Emit *e, RvJit *j, const RvJitPlace *at, int64_t rel, unsigned count)
{
    b(e, 0x49); b(e, 0x83); b(e, 0xc0); b(e, (uint8_t) count);  /* add r8, count */
    int64_t off = (int64_t) at->page_offset + rel;
    if (off >= 0 && off < 4096) {
        uint8_t *out[3];
        b(e, 0x4d); b(e, 0x39); b(e, 0xc8);                     /* cmp r8, r9 */
        b(e, 0x0f); b(e, 0x83); out[0] = e->p; d32(e, 0);       /* jae out */
        b(e, 0x83); b(e, 0xbf); d32(e, (int32_t) j->lay.exit_req_offset); b(e, 0);  /* cmp dword [rdi + exit_req], 0 */
        out[1] = jne_fwd(e);
        mov_imm64(e, RCX, (uintptr_t) at->slots + (uint64_t) (off >> 1) * 16);
        mov_imm64(e, RDX, (uintptr_t) at->lbl_jit);
        b(e, 0x48); b(e, 0x39); b(e, 0x11);                     /* cmp [rcx], rdx */
        out[2] = jne_fwd(e);
        b(e, 0x48); b(e, 0x8d); b(e, 0xb6); d32(e, (int32_t) rel);  /* lea rsi, [rsi + rel] */
        b(e, 0x48); b(e, 0x8b); b(e, 0x49); b(e, 8);            /* mov rcx, [rcx + 8] */
        b(e, 0x48); b(e, 0x83); b(e, 0xc1); b(e, BODY_OFFSET);  /* add rcx, BODY_OFFSET */
        b(e, 0xff); b(e, 0xe1);                                 /* jmp rcx */
        for (unsigned i = 0; i < 3; i++) {
            int32_t d = (int32_t) (e->p - (out[i] + 4));
            memcpy(out[i], &d, 4);
        }
    }
    exit_to(e, rel, 0, FALSE);
}

/* ---- translation ---------------------------------------------------------------- */


typedef struct {
    uint8_t *patch;             /* jne displacement of the side exit */
    int64_t rel;                /* its pc - the block's */
    unsigned count;             /* instructions done before it */
} Side;

/* rax = guest address; on a TLB hit rax = host address, else side exit. */
static void
tlb_lookup(Emit *e, RvJit *j, const Decoded *d, unsigned size, gboolean store, Side *side)
{
    int32_t base = store ? (int32_t) j->lay.tlb_w_offset : 0;

    load_x(e, RAX, d->rs1);
    if (d->imm)
        alu_imm(e, TRUE, 0, d->imm);
    /* rcx = index * entry size */
    b(e, 0x48); b(e, 0x89); b(e, 0xc1);                     /* mov rcx, rax */
    b(e, 0x48); b(e, 0xc1); b(e, 0xe9); b(e, 12);           /* shr rcx, 12 */
    b(e, 0x81); b(e, 0xe1); d32(e, (int32_t) (j->lay.tlb_n - 1));   /* and ecx, n-1 */
    b(e, 0xc1); b(e, 0xe1); b(e, 4);                        /* shl ecx, 4 */
    op_mem(e, TRUE, 0x8b, RDX, (int32_t) j->lay.dtlb_offset);        /* mov rdx, h->dtlb */
    b(e, 0x48); b(e, 0x01); b(e, 0xca);                     /* add rdx, rcx */
    b(e, 0x48); b(e, 0x89); b(e, 0xc1);                     /* mov rcx, rax */
    b(e, 0x48); b(e, 0x81); b(e, 0xe1); d32(e, (int32_t) (0xfffff000u | (size - 1)));  /* and rcx, tag mask */
    b(e, 0x48); b(e, 0x3b); b(e, 0x8a); d32(e, base);       /* cmp rcx, [rdx + base] */
    side->patch = jne_fwd(e);
    b(e, 0x48); b(e, 0x03); b(e, 0x82); d32(e, base + 8);   /* add rax, [rdx + base + 8] */
}

static gboolean
emit_load(Emit *e, RvJit *j, const Decoded *d, Side *side)
{
    static const uint8_t size_of[] = {
        [OP_LB] = 1, [OP_LH] = 2, [OP_LW] = 4, [OP_LD] = 8, [OP_LBU] = 1, [OP_LHU] = 2, [OP_LWU] = 4,
    };
    tlb_lookup(e, j, d, size_of[d->op], FALSE, side);
    switch (d->op) {
    case OP_LB:  b(e, 0x48); b(e, 0x0f); b(e, 0xbe); b(e, 0x00); break;   /* movsx rax, byte [rax] */
    case OP_LBU: b(e, 0x0f); b(e, 0xb6); b(e, 0x00); break;               /* movzx eax, byte [rax] */
    case OP_LH:  b(e, 0x48); b(e, 0x0f); b(e, 0xbf); b(e, 0x00); break;   /* movsx rax, word [rax] */
    case OP_LHU: b(e, 0x0f); b(e, 0xb7); b(e, 0x00); break;               /* movzx eax, word [rax] */
    case OP_LW:  b(e, 0x48); b(e, 0x63); b(e, 0x00); break;               /* movsxd rax, [rax] */
    case OP_LWU: b(e, 0x8b); b(e, 0x00); break;                           /* mov eax, [rax] */
    case OP_LD:  b(e, 0x48); b(e, 0x8b); b(e, 0x00); break;               /* mov rax, [rax] */
    default: return FALSE;
    }
    store_x(e, RAX, d->rd);
    return TRUE;
}

static gboolean
emit_store(Emit *e, RvJit *j, const Decoded *d, Side *side, Side *side2)
{
    static const uint8_t size_of[] = { [OP_SB] = 1, [OP_SH] = 2, [OP_SW] = 4, [OP_SD] = 8 };
    tlb_lookup(e, j, d, size_of[d->op], TRUE, side);
    /* a page with an LR reservation on it: the interpreter's locked path */
    b(e, 0x48); b(e, 0x89); b(e, 0xc1);                     /* mov rcx, rax */
    b(e, 0x48); b(e, 0xc1); b(e, 0xe9); b(e, 12);           /* shr rcx, 12 */
    op_mem(e, TRUE, 0x03, RCX, (int32_t) j->lay.watch_adj_offset);   /* add rcx, h->watch_adj */
    b(e, 0x80); b(e, 0x39); b(e, 0x00);                     /* cmp byte [rcx], 0 */
    side2->patch = jne_fwd(e);
    load_x(e, RDX, d->rs2);
    switch (d->op) {
    case OP_SB: b(e, 0x88); b(e, 0x10); break;               /* mov [rax], dl */
    case OP_SH: b(e, 0x66); b(e, 0x89); b(e, 0x10); break;   /* mov [rax], dx */
    case OP_SW: b(e, 0x89); b(e, 0x10); break;               /* mov [rax], edx */
    case OP_SD: b(e, 0x48); b(e, 0x89); b(e, 0x10); break;   /* mov [rax], rdx */
    default: return FALSE;
    }
    return TRUE;
}

/* rax = rs1, whole or its low 32 bits (W forms) */
static void
load_rs1(Emit *e, gboolean w, const Decoded *d)
{
    if (w)
        load_x(e, RAX, d->rs1);
    else
        load_x32(e, RAX, d->rs1);
}

/* rd = rax, or its low 32 bits sign-extended (W forms) */
static void
store_rd(Emit *e, gboolean w, const Decoded *d)
{
    if (!w)
        movsxd_rax_eax(e);
    store_x(e, RAX, d->rd);
}

/* rax = rs1 op rs2 (64 or 32 bits), result to rd */
static void
emit_rr(Emit *e, gboolean w, uint8_t opcode, const Decoded *d)
{
    load_rs1(e, w, d);
    op_mem(e, w, opcode, RAX, XR(d->rs2));
    store_rd(e, w, d);
}

static void
emit_shift_reg(Emit *e, gboolean w, unsigned digit, const Decoded *d)
{
    load_x32(e, RCX, d->rs2);
    load_rs1(e, w, d);
    shift_cl(e, w, digit);
    store_rd(e, w, d);
}

static void
emit_shift_imm(Emit *e, gboolean w, unsigned digit, const Decoded *d)
{
    load_rs1(e, w, d);
    shift_imm(e, w, digit, (unsigned) d->imm);
    store_rd(e, w, d);
}

static void
emit_alu_imm(Emit *e, gboolean w, unsigned digit, const Decoded *d)
{
    load_rs1(e, w, d);
    alu_imm(e, w, digit, d->imm);
    store_rd(e, w, d);
}

static void
emit_set(Emit *e, gboolean imm, uint8_t cc, const Decoded *d)
{
    load_x(e, RAX, d->rs1);
    if (imm)
        alu_imm(e, TRUE, 7, d->imm);
    else
        op_mem(e, TRUE, 0x3b, RAX, XR(d->rs2));
    setcc_rax(e, cc);
    store_x(e, RAX, d->rd);
}

/* One body instruction (not a branch or jump); FALSE if not translated. */
static gboolean
emit_body(Emit *e, RvJit *j, const Decoded *d, int64_t rel, Side *side, Side *side2)
{
    switch (d->op) {
    case OP_NOP:
        return TRUE;
    case OP_LUI:
    case OP_LI:
        op_mem(e, TRUE, 0xc7, 0, XR(d->rd));                 /* mov qword [x], imm32 */
        d32(e, d->imm);
        return TRUE;
    case OP_AUIPC:
        lea_pc(e, RAX, rel + d->imm);
        store_x(e, RAX, d->rd);
        return TRUE;
    case OP_MV:
        load_x(e, RAX, d->rs1);
        store_x(e, RAX, d->rd);
        return TRUE;
    case OP_ADDI:  emit_alu_imm(e, TRUE, 0, d); return TRUE;
    case OP_XORI:  emit_alu_imm(e, TRUE, 6, d); return TRUE;
    case OP_ORI:   emit_alu_imm(e, TRUE, 1, d); return TRUE;
    case OP_ANDI:  emit_alu_imm(e, TRUE, 4, d); return TRUE;
    case OP_ADDIW: emit_alu_imm(e, FALSE, 0, d); return TRUE;
    case OP_SLTI:  emit_set(e, TRUE, CC_L, d); return TRUE;
    case OP_SLTIU: emit_set(e, TRUE, CC_B, d); return TRUE;
    case OP_SLT:   emit_set(e, FALSE, CC_L, d); return TRUE;
    case OP_SLTU:  emit_set(e, FALSE, CC_B, d); return TRUE;
    case OP_SLLI:  emit_shift_imm(e, TRUE, 4, d); return TRUE;
    case OP_SRLI:  emit_shift_imm(e, TRUE, 5, d); return TRUE;
    case OP_SRAI:  emit_shift_imm(e, TRUE, 7, d); return TRUE;
    case OP_SLLIW: emit_shift_imm(e, FALSE, 4, d); return TRUE;
    case OP_SRLIW: emit_shift_imm(e, FALSE, 5, d); return TRUE;
    case OP_SRAIW: emit_shift_imm(e, FALSE, 7, d); return TRUE;
    case OP_SLL:   emit_shift_reg(e, TRUE, 4, d); return TRUE;
    case OP_SRL:   emit_shift_reg(e, TRUE, 5, d); return TRUE;
    case OP_SRA:   emit_shift_reg(e, TRUE, 7, d); return TRUE;
    case OP_SLLW:  emit_shift_reg(e, FALSE, 4, d); return TRUE;
    case OP_SRLW:  emit_shift_reg(e, FALSE, 5, d); return TRUE;
    case OP_SRAW:  emit_shift_reg(e, FALSE, 7, d); return TRUE;
    case OP_ADD:   emit_rr(e, TRUE, 0x03, d); return TRUE;
    case OP_SUB:   emit_rr(e, TRUE, 0x2b, d); return TRUE;
    case OP_XOR:   emit_rr(e, TRUE, 0x33, d); return TRUE;
    case OP_OR:    emit_rr(e, TRUE, 0x0b, d); return TRUE;
    case OP_AND:   emit_rr(e, TRUE, 0x23, d); return TRUE;
    case OP_ADDW:  emit_rr(e, FALSE, 0x03, d); return TRUE;
    case OP_SUBW:  emit_rr(e, FALSE, 0x2b, d); return TRUE;
    case OP_MUL:
    case OP_MULW: {
        gboolean w = d->op == OP_MUL;
        load_rs1(e, w, d);
        if (w)
            b(e, 0x48);
        b(e, 0x0f);
        b(e, 0xaf);
        m_rdi(e, RAX, XR(d->rs2));                         /* imul rax, [x] */
        store_rd(e, w, d);
        return TRUE;
    }
    case OP_LB: case OP_LH: case OP_LW: case OP_LD: case OP_LBU: case OP_LHU: case OP_LWU:
        return emit_load(e, j, d, side);
    case OP_SB: case OP_SH: case OP_SW: case OP_SD:
        return emit_store(e, j, d, side, side2);
    default:
        return FALSE;
    }
}

unsigned
ferry_rv_jit_op_kind(unsigned op)
{
    switch (op) {
    case OP_NOP: case OP_LUI: case OP_LI: case OP_AUIPC: case OP_MV:
    case OP_ADDI: case OP_XORI: case OP_ORI: case OP_ANDI: case OP_ADDIW:
    case OP_SLTI: case OP_SLTIU: case OP_SLT: case OP_SLTU:
    case OP_SLLI: case OP_SRLI: case OP_SRAI: case OP_SLLIW: case OP_SRLIW: case OP_SRAIW:
    case OP_SLL: case OP_SRL: case OP_SRA: case OP_SLLW: case OP_SRLW: case OP_SRAW:
    case OP_ADD: case OP_SUB: case OP_XOR: case OP_OR: case OP_AND: case OP_ADDW: case OP_SUBW:
    case OP_MUL: case OP_MULW:
    case OP_LB: case OP_LH: case OP_LW: case OP_LD: case OP_LBU: case OP_LHU: case OP_LWU:
    case OP_SB: case OP_SH: case OP_SW: case OP_SD:
        return RV_JIT_BODY;
    case OP_BEQ: case OP_BNE: case OP_BLT: case OP_BGE: case OP_BLTU: case OP_BGEU:
    case OP_JAL: case OP_JALR:
        return RV_JIT_END;
    default:
        return RV_JIT_NONE;
    }
}

unsigned
ferry_rv_jit_block_length(const Decoded *d, unsigned n)
{
    unsigned k = 0;
    while (k < n && k < MAX_INSNS) {
        unsigned kind = ferry_rv_jit_op_kind(d[k].op);
        if (kind == RV_JIT_END)
            return k + 1;
        if (kind == RV_JIT_NONE)
            return k;
        k++;
    }
    return k;
}

/* The branch or jump that ends a block, instruction k at the block's pc + rel. */
static void
emit_end(Emit *e, RvJit *j, const RvJitPlace *place, const Decoded *d, int64_t rel, unsigned len,
         unsigned k)
{
    int64_t next = rel + len, target = rel + d->imm;
    uint8_t cc;

    switch (d->op) {
    case OP_JAL:
        lea_pc(e, RAX, next);
        store_x(e, RAX, d->rd);
        emit_goto(e, j, place, target, k + 1);
        return;
    case OP_JALR:
        load_x(e, RAX, d->rs1);
        if (d->imm)
            alu_imm(e, TRUE, 0, d->imm);
        b(e, 0x48); b(e, 0x83); b(e, 0xe0); b(e, 0xfe);     /* and rax, -2 */
        lea_pc(e, RCX, next);
        op_mem(e, TRUE, 0x89, RCX, XR(d->rd));              /* after reading rs1: rd may be rs1 */
        b(e, 0x49); b(e, 0x8d); b(e, 0x50); b(e, (uint8_t) (k + 1));  /* lea rdx, [r8 + k + 1] */
        b(e, 0xc3);
        return;
    case OP_BEQ:  cc = CC_E; break;
    case OP_BNE:  cc = CC_NE; break;
    case OP_BLT:  cc = CC_L; break;
    case OP_BGE:  cc = CC_GE; break;
    case OP_BLTU: cc = CC_B; break;
    default:      cc = CC_AE; break;                        /* BGEU */
    }
    load_x(e, RAX, d->rs1);
    op_mem(e, TRUE, 0x3b, RAX, XR(d->rs2));                 /* cmp rax, [rs2] */
    b(e, 0x0f); b(e, 0x80 | cc);                            /* jcc taken */
    uint8_t *taken = e->p;
    d32(e, 0);
    emit_goto(e, j, place, next, k + 1);
    int32_t dist = (int32_t) (e->p - (taken + 4));
    memcpy(taken, &dist, 4);
    emit_goto(e, j, place, target, k + 1);
}

void *
ferry_rv_jit_compile(RvJit *j, const Decoded *d, const uint8_t *lens, unsigned n,
                     const RvJitPlace *place)
{
    g_assert(n > 0 && n <= MAX_INSNS && !ferry_rv_jit_full(j));
    uint8_t *start = j->code + j->used;
    Emit e = { start };
    b(&e, 0x45); b(&e, 0x31); b(&e, 0xc0);                  /* xor r8d, r8d */
    b(&e, 0x49); b(&e, 0x89); b(&e, 0xd1);                  /* mov r9, rdx */
    g_assert(e.p - start == BODY_OFFSET);
    Side sides[2 * MAX_INSNS];
    unsigned nsides = 0;
    int64_t at = 0;
    gboolean ended = FALSE;

    for (unsigned k = 0; k < n; k++) {
        if (ferry_rv_jit_op_kind(d[k].op) == RV_JIT_END) {
            emit_end(&e, j, place, &d[k], at, lens[k], k);
            ended = TRUE;
            break;
        }
        Side *s1 = &sides[nsides], *s2 = &sides[nsides + 1];
        s1->patch = s2->patch = NULL;
        gboolean ok = emit_body(&e, j, &d[k], at, s1, s2);
        g_assert(ok);
        for (Side *s = s1; s <= s2; s++) {
            if (s->patch) {
                s->rel = at;
                s->count = k;
                nsides++;
            }
        }
        at += lens[k];
    }
    if (!ended)
        emit_goto(&e, j, place, at, n);                      /* fell off the end */
    for (unsigned i = 0; i < nsides; i++) {
        int32_t rel = (int32_t) (e.p - (sides[i].patch + 4));
        memcpy(sides[i].patch, &rel, 4);
        exit_to(&e, sides[i].rel, sides[i].count, TRUE);
    }
    g_assert((size_t) (e.p - start) <= (size_t) n * MAX_BYTES_PER_INSN + 256);
    j->used += (size_t) (e.p - start);
    j->used = (j->used + 15) & ~(size_t) 15;
    return start;
}

#else

RvJit *ferry_rv_jit_new(const RvJitLayout *layout) { return NULL; }
void ferry_rv_jit_free(RvJit *j) { }
void ferry_rv_jit_reset(RvJit *j) { }
gboolean ferry_rv_jit_full(RvJit *j) { return TRUE; }
unsigned ferry_rv_jit_block_length(const Decoded *d, unsigned n) { return 0; }
unsigned ferry_rv_jit_op_kind(unsigned op) { return RV_JIT_NONE; }
void *ferry_rv_jit_compile(RvJit *j, const Decoded *d, const uint8_t *lens, unsigned n,
                           const RvJitPlace *place)
{
    return NULL;
}

#endif
