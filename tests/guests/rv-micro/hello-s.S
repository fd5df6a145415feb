/*
 * hello-s.S: a bare S-mode program for the riscv64 virt machine, started by
 * OpenSBI like a kernel (raw binary at RAM + 2 MiB, or as an ELF). It prints
 * through the SBI debug console (legacy putchar, EID 0x01), reports the
 * hart id and device-tree address OpenSBI handed over (a0, a1), then shuts
 * the machine down through SBI SRST (EID 0x53525354).
 *
 * Output: "RV-S-MODE hart=<hex> fdt=<hex>" then power-off.
 */
        .section .text.entry, "ax"
        .globl _start
_start:
        la      sp, stack_top           /* OpenSBI hands over no stack */
        mv      s0, a0                  /* hart id */
        mv      s1, a1                  /* device tree */
        la      a0, msg
        call    puts
        mv      a0, s0
        call    puthex
        la      a0, msg_fdt
        call    puts
        mv      a0, s1
        call    puthex
        li      a0, '\n'
        call    putc
        /* SBI SRST: shutdown (type 0), no reason (0). */
        li      a7, 0x53525354
        li      a6, 0
        li      a0, 0
        li      a1, 0
        ecall
1:      wfi
        j       1b

putc:                                   /* a0 = character */
        li      a7, 1
        ecall
        ret

puts:                                   /* a0 = string */
        addi    sp, sp, -16
        sd      ra, 8(sp)
        sd      s2, 0(sp)
        mv      s2, a0
2:      lbu     a0, 0(s2)
        beqz    a0, 3f
        call    putc
        addi    s2, s2, 1
        j       2b
3:      ld      s2, 0(sp)
        ld      ra, 8(sp)
        addi    sp, sp, 16
        ret

puthex:                                 /* a0 = value, printed as 0x%x */
        addi    sp, sp, -32
        sd      ra, 24(sp)
        sd      s2, 16(sp)
        sd      s3, 8(sp)
        mv      s2, a0
        li      a0, '0'
        call    putc
        li      a0, 'x'
        call    putc
        li      s3, 60
4:      srl     a0, s2, s3
        andi    a0, a0, 15
        la      t0, hexdigits
        add     t0, t0, a0
        lbu     a0, 0(t0)
        call    putc
        addi    s3, s3, -4
        bgez    s3, 4b
        ld      s3, 8(sp)
        ld      s2, 16(sp)
        ld      ra, 24(sp)
        addi    sp, sp, 32
        ret

        .section .bss
        .balign 16
        .space  4096
stack_top:

        .section .rodata
msg:       .asciz "RV-S-MODE hart="
msg_fdt:   .asciz " fdt="
hexdigits: .ascii "0123456789abcdef"
