/*
 * reset.S: the three ways to reset a Ferry "pc" VM, counted in CMOS NVRAM.
 *
 * CMOS 0x38 = boot number, 0x39 = boot number ^ 0xA5 (check byte); a bad
 * check byte or a number > 3 counts as garbage and restarts the count.
 *   boot 1: BOOT=1, reset through port 0xCF9 (0x06: hard reset)
 *   boot 2: BOOT=2, reset through the i8042 (command 0xFE to port 0x64)
 *   boot 3: BOOT=3, triple fault (empty IDT, then UD2)
 *   boot 4: BOOT=4, RESET-OK, clears the counter, MICRO-DONE, power off
 * From boot 2 on it also prints RAM_PRESERVED=yes|no: a word written to RAM
 * (0x7000) on the previous boot must survive the reset.
 * If a reset does not happen within ~200 ms: RESET-FAILED method=<m>, the
 * counter is cleared and the guest powers off.
 */
        .equ NV_COUNT, 0x38
        .equ NV_CHECK, 0x39
        .equ RAM_MARK, 0x7000
        .equ RAM_MAGIC, 0x46455252594D0000      /* "FERRYM" << 16 */

        .include "bios.inc"

        .section .text
        .code64
main:
        push    %rbx
        mov     $NV_COUNT, %al
        call    cmos_read
        mov     %eax, %ebx
        mov     $NV_CHECK, %al
        call    cmos_read
        xor     $0xA5, %eax
        cmp     %eax, %ebx
        jne     1f
        cmp     $3, %ebx
        jbe     2f
1:      xor     %ebx, %ebx              /* garbage: first boot */
2:      inc     %ebx
        mov     %bl, %ah
        mov     $NV_COUNT, %al
        call    cmos_write
        xor     $0xA5, %ah
        mov     $NV_CHECK, %al
        call    cmos_write

        PRINT   "BOOT="
        mov     %rbx, %rax
        call    put_dec
        call    newline

        mov     $RAM_MAGIC, %rcx
        cmp     $1, %ebx
        je      3f
        lea     -1(%rcx, %rbx), %rax    /* previous boot's mark */
        PRINT   "RAM_PRESERVED="
        cmp     %rax, RAM_MARK
        jne     21f
        PRINTLN "yes"
        jmp     3f
21:     PRINTLN "no"
3:      lea     (%rcx, %rbx), %rax
        mov     %rax, RAM_MARK
        call    serial_drain

        cmp     $1, %ebx
        je      boot1
        cmp     $2, %ebx
        je      boot2
        cmp     $3, %ebx
        je      boot3
        PRINTLN "RESET-OK"
        call    clear_counter
        pop     %rbx
        ret

boot1:  mov     $0x02, %al              /* RCR: SYS_RST, then + RST_CPU */
        mov     $0xCF9, %dx
        out     %al, %dx
        mov     $0x06, %al
        out     %al, %dx
        lea     m_cf9(%rip), %rbx
        jmp     reset_failed

boot2:  mov     $SPIN_CAP, %ecx         /* wait for the input buffer */
1:      in      $0x64, %al
        test    $0x02, %al
        jz      2f
        dec     %ecx
        jnz     1b
2:      mov     $0xFE, %al              /* pulse the reset line */
        out     %al, $0x64
        lea     m_kbd(%rip), %rbx
        jmp     reset_failed

boot3:  lidt    empty_idt(%rip)
        ud2                             /* #UD -> #GP -> #DF -> shutdown */
        lea     m_tf(%rip), %rbx
        jmp     reset_failed

/* reset_failed: %rbx = method name */
reset_failed:
        call    pit_start
        mov     $200 * PIT_TICKS_PER_MS, %edi
        call    pit_delay
        PRINT   "RESET-FAILED method="
        mov     %rbx, %rsi
        call    puts
        call    newline
        call    clear_counter
        jmp     micro_done

clear_counter:
        push    %rax
        mov     $NV_COUNT, %al
        xor     %ah, %ah
        call    cmos_write
        mov     $NV_CHECK, %al
        call    cmos_write
        pop     %rax
        ret

        .section .rodata
        .balign 8
empty_idt:
        .word   0
        .quad   0
m_cf9:  .asciz  "cf9"
m_kbd:  .asciz  "i8042"
m_tf:   .asciz  "triple-fault"
