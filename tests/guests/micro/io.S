/*
 * io.S: port I/O and MMIO to addresses no device claims, plus an optional
 * exit-cost benchmark.
 *
 * Build-time knobs (as --defsym NAME=value):
 *   IO_ROUNDS   port rounds per access width (default 1000)
 *   MMIO_ROUNDS MMIO rounds per access width (default IO_ROUNDS)
 *   TEST_PORT   unassigned I/O port (default 0x0500)
 *   TEST_MMIO   unassigned MMIO address below 4 GiB (default 0xFEB00000)
 *   BENCH_ITERS iterations of each benchmark loop; 0 (default) = no benchmark
 *
 * Output (values are what the guest read; Ferry must give all ones):
 *   PORT_READ=0x..  PORT_READ16=0x....  PORT_READ32=0x........
 *   MMIO_READ=0x........  MMIO_READ8=0x..  MMIO_READ16=0x....
 *   MMIO_READ64=0x................
 *   IO_MISMATCH=<reads that differed from the first read of the same kind>
 *   IO_ROUNDS=<port rounds per width>  MMIO_ROUNDS=<MMIO rounds per width>
 * (each round: one write, then one read of the same width)
 * and with BENCH_ITERS > 0, after the functional part:
 *   BENCH-PIO-START / BENCH-PIO-END      (ITERS x (outb + inb) on TEST_PORT)
 *   BENCH-PIO-RESULT iters=<n> exits=<2n> ns=<total> ns_per_exit=<x>
 *   BENCH-MMIO-START / BENCH-MMIO-END    (ITERS x (32-bit store + load))
 *   BENCH-MMIO-RESULT iters=<n> exits=<2n> ns=<total> ns_per_exit=<x>
 * Guest times come from the TSC calibrated against the PIT; the host can
 * also time the marker lines.
 */
        .ifndef IO_ROUNDS
        .equ IO_ROUNDS, 1000
        .endif
        .ifndef MMIO_ROUNDS
        .equ MMIO_ROUNDS, IO_ROUNDS
        .endif
        .ifndef TEST_PORT
        .equ TEST_PORT, 0x0500
        .endif
        .ifndef TEST_MMIO
        .equ TEST_MMIO, 0xFEB00000
        .endif
        .ifndef BENCH_ITERS
        .equ BENCH_ITERS, 0
        .endif

        .include "bios.inc"

        .section .bss
        .balign 8
mismatch:       .quad 0

        .section .text
        .code64

/* note_value: %rax = value read, %rbx = first value (or -1 = none yet).
 * Updates %rbx and the mismatch counter. */
note_value:
        cmp     $-1, %rbx
        jne     1f
        mov     %rax, %rbx
        ret
1:      cmp     %rax, %rbx
        je      2f
        incq    mismatch(%rip)
2:      ret

main:
        push    %rbx
        push    %r12
        mov     $TEST_PORT, %dx

        /* 8-bit port round trips */
        mov     $-1, %rbx
        mov     $IO_ROUNDS, %r12d
1:      mov     %r12d, %eax
        out     %al, %dx
        xor     %eax, %eax
        in      %dx, %al
        call    note_value
        dec     %r12d
        jnz     1b
        PRINT   "PORT_READ="
        mov     %rbx, %rax
        mov     $2, %ecx
        call    put_hexw
        call    newline

        /* 16-bit */
        mov     $-1, %rbx
        mov     $IO_ROUNDS, %r12d
2:      mov     %r12d, %eax
        out     %ax, %dx
        xor     %eax, %eax
        in      %dx, %ax
        call    note_value
        dec     %r12d
        jnz     2b
        PRINT   "PORT_READ16="
        mov     %rbx, %rax
        mov     $4, %ecx
        call    put_hexw
        call    newline

        /* 32-bit */
        mov     $-1, %rbx
        mov     $IO_ROUNDS, %r12d
3:      mov     %r12d, %eax
        out     %eax, %dx
        in      %dx, %eax
        call    note_value
        dec     %r12d
        jnz     3b
        PRINT   "PORT_READ32="
        mov     %rbx, %rax
        mov     $8, %ecx
        call    put_hexw
        call    newline

        /* MMIO: 32-bit store then loads of every width */
        mov     $TEST_MMIO, %edi
        mov     $-1, %rbx
        mov     $MMIO_ROUNDS, %r12d
4:      mov     %r12d, (%rdi)
        mov     (%rdi), %eax
        call    note_value
        dec     %r12d
        jnz     4b
        PRINT   "MMIO_READ="
        mov     %rbx, %rax
        mov     $8, %ecx
        call    put_hexw
        call    newline

        mov     $-1, %rbx
        mov     $MMIO_ROUNDS, %r12d
5:      movb    %r12b, 1(%rdi)
        movzbl  1(%rdi), %eax
        call    note_value
        dec     %r12d
        jnz     5b
        PRINT   "MMIO_READ8="
        mov     %rbx, %rax
        mov     $2, %ecx
        call    put_hexw
        call    newline

        mov     $-1, %rbx
        mov     $MMIO_ROUNDS, %r12d
6:      movw    %r12w, 2(%rdi)
        movzwl  2(%rdi), %eax
        call    note_value
        dec     %r12d
        jnz     6b
        PRINT   "MMIO_READ16="
        mov     %rbx, %rax
        mov     $4, %ecx
        call    put_hexw
        call    newline

        /* 64-bit: the first read decides, so compare all reads with it
           (a -1 sentinel would collide with all ones) */
        mov     8(%rdi), %rbx
        mov     $MMIO_ROUNDS, %r12d
7:      mov     %r12, 8(%rdi)
        mov     8(%rdi), %rax
        cmp     %rax, %rbx
        je      71f
        incq    mismatch(%rip)
71:     dec     %r12d
        jnz     7b
        PRINT   "MMIO_READ64="
        mov     %rbx, %rax
        mov     $16, %ecx
        call    put_hexw
        call    newline

        PRINT   "IO_MISMATCH="
        mov     mismatch(%rip), %rax
        call    put_dec
        call    newline
        PRINT   "IO_ROUNDS="
        mov     $IO_ROUNDS, %eax
        call    put_dec
        call    newline
        PRINT   "MMIO_ROUNDS="
        mov     $MMIO_ROUNDS, %eax
        call    put_dec
        call    newline

        .if BENCH_ITERS > 0
        call    bench
        .endif
        pop     %r12
        pop     %rbx
        ret

        .if BENCH_ITERS > 0
/* print_result: %rax = TSC cycles for BENCH_ITERS iterations of 2 exits */
print_result:
        push    %rcx
        push    %rdx
        call    tsc_to_ns
        PRINT   " iters="
        push    %rax
        mov     $BENCH_ITERS, %eax
        call    put_dec
        PRINT   " exits="
        mov     $2 * BENCH_ITERS, %eax
        call    put_dec
        PRINT   " ns="
        pop     %rax
        call    put_dec
        PRINT   " ns_per_exit="
        xor     %edx, %edx
        mov     $2 * BENCH_ITERS, %ecx
        div     %rcx
        call    put_dec
        call    newline
        pop     %rdx
        pop     %rcx
        ret

bench:
        push    %rbx
        push    %r12
        call    tsc_calibrate
        PRINT   "BENCH-TSC-KHZ="
        call    put_dec
        call    newline

        PRINTLN "BENCH-PIO-START"
        call    serial_drain
        call    rdtsc64
        mov     %rax, %rbx
        mov     $TEST_PORT, %dx
        mov     $BENCH_ITERS, %r12d
1:      out     %al, %dx
        in      %dx, %al
        dec     %r12d
        jnz     1b
        call    rdtsc64
        sub     %rbx, %rax
        PRINTLN "BENCH-PIO-END"
        PRINT   "BENCH-PIO-RESULT"
        call    print_result

        PRINTLN "BENCH-MMIO-START"
        call    serial_drain
        mov     $TEST_MMIO, %edi
        call    rdtsc64
        mov     %rax, %rbx
        mov     $BENCH_ITERS, %r12d
2:      mov     %eax, (%rdi)
        mov     (%rdi), %eax
        dec     %r12d
        jnz     2b
        call    rdtsc64
        sub     %rbx, %rax
        PRINTLN "BENCH-MMIO-END"
        PRINT   "BENCH-MMIO-RESULT"
        call    print_result
        pop     %r12
        pop     %rbx
        ret
        .endif
