/*
 * irq.S: interrupt delivery through the in-kernel irqchip and PIT.
 *
 * Phase 1, 8259 PIC (master vectors 0x20-0x27, slave 0x28-0x2F), the BSP's
 * LAPIC enabled with LINT0 = ExtINT as a BIOS leaves it:
 *   TIMER_IRQ=ok ticks=<n>      IRQ0 ticks counted in a 100 ms TSC window
 *                               with the PIT at 1 kHz (ok when n > 0)
 *   HLT_WAKE=ok                 STI;HLT returned through a timer tick (x5)
 *   UART_RX_WAIT                the host should now send one byte to COM1
 *   UART_RX_IRQ=ok byte=0x..    IRQ4 from the 16550 receive interrupt (IER
 *                               bit 0); "timeout" after UART_RX_TIMEOUT_MS
 * Phase 2, IOAPIC (PIC fully masked, LINT0 masked):
 *   IOAPIC_TIMER_IRQ=ok ticks=<n> pin=<0|2|0+2>   PIT through IOAPIC pin 0
 *                               and/or 2 (ISA IRQ0 override) in 100 ms
 *   IOAPIC_UART_IRQ=ok iir=0x.. 16550 THR-empty interrupt (IER bit 1) on
 *                               IOAPIC pin 4
 *   MICRO-DONE
 * An unexpected vector prints "UNEXPECTED-VECTOR vec=<n> rip=0x.." and the
 * guest powers off.
 */
        .ifndef UART_RX_TIMEOUT_MS
        .equ UART_RX_TIMEOUT_MS, 30000
        .endif
        .equ IOAPIC_BASE, 0xFEC00000
        .equ PIT_RELOAD_1KHZ, 1193

        .include "bios.inc"

        .section .bss
        .balign 16
idt:            .space 256 * 16
ticks:          .quad 0
io_ticks0:      .quad 0
io_ticks2:      .quad 0
lapic:          .quad 0
uart_got:       .byte 0
uart_byte:      .byte 0
uart_iir:       .byte 0
io_uart_got:    .byte 0
io_uart_iir:    .byte 0

        .section .text
        .code64

/* set_gate: %eax = vector, %rdx = handler */
set_gate:
        push    %rax
        push    %rdi
        shl     $4, %eax
        lea     idt(%rip), %rdi
        add     %rax, %rdi
        mov     %dx, (%rdi)
        movw    $SEL_CODE64, 2(%rdi)
        movw    $0x8E00, 4(%rdi)        /* present, DPL0, 64-bit interrupt gate */
        mov     %rdx, %rax
        shr     $16, %rax
        mov     %ax, 6(%rdi)
        shr     $16, %rax
        mov     %eax, 8(%rdi)
        movl    $0, 12(%rdi)
        pop     %rdi
        pop     %rax
        ret

        .macro GATE vec, handler
        mov     $\vec, %eax
        lea     \handler(%rip), %rdx
        call    set_gate
        .endm

/* lapic_write: %ecx = register offset, %eax = value */
lapic_write:
        push    %rdi
        mov     lapic(%rip), %rdi
        mov     %eax, (%rdi, %rcx)
        pop     %rdi
        ret

/* ioapic_write: %ecx = register index, %eax = value */
ioapic_write:
        push    %rdi
        mov     $IOAPIC_BASE, %edi
        mov     %ecx, (%rdi)
        mov     %eax, 0x10(%rdi)
        pop     %rdi
        ret

/* wait_ms_tsc: %rax = ms; busy-waits with interrupts as they are. */
wait_ms_tsc:
        push    %rax
        push    %rbx
        push    %rcx
        call    ms_to_tsc
        mov     %rax, %rbx
        call    rdtsc64
        add     %rax, %rbx
        mov     $SPIN_CAP, %ecx
1:      call    rdtsc64
        cmp     %rbx, %rax
        jae     2f
        pause
        dec     %ecx
        jnz     1b
2:      pop     %rcx
        pop     %rbx
        pop     %rax
        ret

main:
        push    %rbx
        push    %r12
        /* IDT: every vector to its stub first */
        xor     %ebx, %ebx
1:      mov     %ebx, %eax
        lea     vector_stubs(%rip), %rdx
        mov     %rbx, %rcx
        shl     $4, %rcx
        add     %rcx, %rdx
        call    set_gate
        inc     %ebx
        cmp     $256, %ebx
        jb      1b
        GATE    0x20, pic_timer_isr
        GATE    0x24, pic_uart_isr
        GATE    0x27, spurious_isr
        GATE    0x2F, pic_slave_spurious_isr
        GATE    0x30, io_timer0_isr
        GATE    0x32, io_timer2_isr
        GATE    0x34, io_uart_isr
        GATE    0xFF, spurious_isr
        lidt    idt_desc(%rip)

        call    tsc_calibrate           /* uses the PIT polled, IRQs off */

        /* LAPIC: software-enable, LINT0 = ExtINT, LINT1 = NMI */
        mov     $0x1B, %ecx
        rdmsr
        and     $0xFFFFF000, %eax
        shl     $32, %rdx
        or      %rdx, %rax
        mov     %rax, lapic(%rip)
        mov     $0xF0, %ecx
        mov     $0x1FF, %eax
        call    lapic_write
        mov     $0x350, %ecx
        mov     $0x700, %eax
        call    lapic_write
        mov     $0x360, %ecx
        mov     $0x400, %eax
        call    lapic_write

        /* 8259 pair: ICW1..ICW4, then mask everything */
        mov     $0x11, %al
        out     %al, $0x20
        out     %al, $0xA0
        mov     $0x20, %al
        out     %al, $0x21
        mov     $0x28, %al
        out     %al, $0xA1
        mov     $0x04, %al
        out     %al, $0x21
        mov     $0x02, %al
        out     %al, $0xA1
        mov     $0x01, %al
        out     %al, $0x21
        out     %al, $0xA1
        mov     $0xFF, %al
        out     %al, $0x21
        out     %al, $0xA1

        /* PIT channel 0: rate generator at 1 kHz */
        mov     $0x34, %al
        out     %al, $0x43
        mov     $(PIT_RELOAD_1KHZ & 0xFF), %al
        out     %al, $0x40
        mov     $(PIT_RELOAD_1KHZ >> 8), %al
        out     %al, $0x40

        /* ---- timer through the PIC ---- */
        mov     $0xFE, %al              /* unmask IRQ0 */
        out     %al, $0x21
        movq    $0, ticks(%rip)
        sti
        mov     $100, %eax
        call    wait_ms_tsc
        cli
        mov     ticks(%rip), %rbx
        PRINT   "TIMER_IRQ="
        test    %rbx, %rbx
        jz      2f
        PRINT   "ok"
        jmp     3f
2:      PRINT   "fail"
3:      PRINT   " ticks="
        mov     %rbx, %rax
        call    put_dec
        call    newline

        /* ---- HLT wakes on the timer ---- */
        mov     $5, %r12d
        xor     %ebx, %ebx              /* wakes that saw a new tick */
4:      mov     ticks(%rip), %rcx
        sti
        hlt
        cli
        cmp     ticks(%rip), %rcx
        je      5f
        inc     %ebx
5:      dec     %r12d
        jnz     4b
        PRINT   "HLT_WAKE="
        cmp     $5, %ebx
        jne     6f
        PRINTLN "ok"
        jmp     7f
6:      PRINT   "fail wakes="
        mov     %rbx, %rax
        call    put_dec
        call    newline
7:
        /* ---- UART receive interrupt through the PIC ---- */
        mov     $COM1 + 4, %dx
        mov     $0x0B, %al              /* DTR RTS OUT2 (IRQ gate on a PC) */
        out     %al, %dx
        mov     $COM1 + 2, %dx
        in      %dx, %al                /* clear a stale THRE indication */
        mov     $COM1 + 1, %dx
        mov     $0x01, %al              /* IER: received data available */
        out     %al, %dx
        mov     $0xEE, %al              /* unmask IRQ0 + IRQ4 */
        out     %al, $0x21
        PRINTLN "UART_RX_WAIT"
        call    rdtsc64
        mov     %rax, %rbx
        mov     $UART_RX_TIMEOUT_MS, %eax
        call    ms_to_tsc
        add     %rax, %rbx              /* deadline */
        mov     $SPIN_CAP, %r12d
8:      sti
        hlt                             /* the 1 kHz tick bounds each sleep */
        cli
        cmpb    $0, uart_got(%rip)
        jne     9f
        call    rdtsc64
        cmp     %rbx, %rax
        jae     9f
        dec     %r12d
        jnz     8b
9:      mov     $COM1 + 1, %dx
        xor     %al, %al
        out     %al, %dx                /* IER = 0 */
        PRINT   "UART_RX_IRQ="
        cmpb    $0, uart_got(%rip)
        je      10f
        PRINT   "ok byte="
        movzbl  uart_byte(%rip), %eax
        mov     $2, %ecx
        call    put_hexw
        call    newline
        jmp     11f
10:     PRINTLN "timeout"
11:
        /* ---- phase 2: IOAPIC ---- */
        mov     $0xFF, %al
        out     %al, $0x21              /* PIC: all masked */
        out     %al, $0xA1
        mov     $0x350, %ecx
        mov     $0x10700, %eax          /* LINT0 masked */
        call    lapic_write
        mov     lapic(%rip), %rdi       /* BSP's APIC ID -> destination */
        mov     0x20(%rdi), %ebx
        and     $0xFF000000, %ebx
        mov     $0x10 + 2 * 0, %ecx     /* pin 0 -> 0x30, edge, high, fixed */
        mov     $0x30, %eax
        call    ioapic_write
        inc     %ecx
        mov     %ebx, %eax
        call    ioapic_write
        mov     $0x10 + 2 * 2, %ecx     /* pin 2 -> 0x32 */
        mov     $0x32, %eax
        call    ioapic_write
        inc     %ecx
        mov     %ebx, %eax
        call    ioapic_write
        mov     $0x10 + 2 * 4, %ecx     /* pin 4 -> 0x34 */
        mov     $0x34, %eax
        call    ioapic_write
        inc     %ecx
        mov     %ebx, %eax
        call    ioapic_write

        sti
        mov     $100, %eax
        call    wait_ms_tsc
        cli
        mov     io_ticks0(%rip), %rbx
        add     io_ticks2(%rip), %rbx
        PRINT   "IOAPIC_TIMER_IRQ="
        test    %rbx, %rbx
        jz      12f
        PRINT   "ok"
        jmp     13f
12:     PRINT   "fail"
13:     PRINT   " ticks="
        mov     %rbx, %rax
        call    put_dec
        PRINT   " pin="
        cmpq    $0, io_ticks0(%rip)
        je      14f
        PRINT   "0"
        cmpq    $0, io_ticks2(%rip)
        je      15f
        PRINT   "+"
14:     cmpq    $0, io_ticks2(%rip)
        je      15f
        PRINT   "2"
15:     call    newline

        /* UART THR-empty interrupt on pin 4 */
        mov     $0x10 + 2 * 0, %ecx     /* quiet the timer pins */
        mov     $0x10030, %eax
        call    ioapic_write
        mov     $0x10 + 2 * 2, %ecx
        mov     $0x10032, %eax
        call    ioapic_write
        call    serial_drain
        mov     $COM1 + 1, %dx
        mov     $0x02, %al              /* IER: THR empty */
        out     %al, %dx
        sti
        mov     $100, %eax
        call    wait_ms_tsc
        cli
        mov     $COM1 + 1, %dx
        xor     %al, %al
        out     %al, %dx
        PRINT   "IOAPIC_UART_IRQ="
        cmpb    $0, io_uart_got(%rip)
        je      16f
        PRINT   "ok iir="
        movzbl  io_uart_iir(%rip), %eax
        mov     $2, %ecx
        call    put_hexw
        call    newline
        jmp     17f
16:     PRINTLN "fail"
17:     mov     $0x10 + 2 * 4, %ecx
        mov     $0x10034, %eax
        call    ioapic_write
        pop     %r12
        pop     %rbx
        ret

/* ---- interrupt handlers ---- */
pic_timer_isr:
        push    %rax
        incq    ticks(%rip)
        mov     $0x20, %al
        out     %al, $0x20
        pop     %rax
        iretq

pic_uart_isr:
        push    %rax
        push    %rdx
        mov     $COM1 + 2, %dx
        in      %dx, %al
        mov     %al, uart_iir(%rip)
        mov     $COM1 + 5, %dx
        in      %dx, %al
        test    $1, %al
        jz      1f
        mov     $COM1, %dx
        in      %dx, %al
        mov     %al, uart_byte(%rip)
        movb    $1, uart_got(%rip)
1:      mov     $0x20, %al
        out     %al, $0x20
        pop     %rdx
        pop     %rax
        iretq

pic_slave_spurious_isr:
        push    %rax
        mov     $0x20, %al              /* the master saw IRQ2 for real */
        out     %al, $0x20
        pop     %rax
spurious_isr:
        iretq

lapic_eoi:
        push    %rdi
        mov     lapic(%rip), %rdi
        movl    $0, 0xB0(%rdi)
        pop     %rdi
        ret

io_timer0_isr:
        incq    io_ticks0(%rip)
        call    lapic_eoi
        iretq

io_timer2_isr:
        incq    io_ticks2(%rip)
        call    lapic_eoi
        iretq

io_uart_isr:
        push    %rax
        push    %rdx
        mov     $COM1 + 2, %dx
        in      %dx, %al
        mov     %al, io_uart_iir(%rip)
        movb    $1, io_uart_got(%rip)
        mov     $COM1 + 1, %dx
        xor     %al, %al
        out     %al, %dx                /* no more THRE interrupts */
        call    lapic_eoi
        pop     %rdx
        pop     %rax
        iretq

/* 256 stubs of 16 bytes: push the vector, report, power off */
        .balign 16
vector_stubs:
        .set vec, 0
        .rept 256
        .balign 16
        push    $vec
        jmp     unexpected_vector
        .set vec, vec + 1
        .endr

unexpected_vector:
        pop     %rbx                    /* vector */
        cmp     $8, %rbx                /* exceptions with an error code */
        je      1f
        cmp     $10, %rbx
        jb      2f
        cmp     $14, %rbx
        jbe     1f
        cmp     $17, %rbx
        je      1f
        cmp     $21, %rbx
        jne     2f
1:      add     $8, %rsp
2:      PRINT   "UNEXPECTED-VECTOR vec="
        mov     %rbx, %rax
        call    put_dec
        PRINT   " rip="
        mov     (%rsp), %rax
        call    put_hex
        call    newline
        jmp     poweroff

        .section .rodata
        .balign 8
idt_desc:
        .word   256 * 16 - 1
        .quad   idt
