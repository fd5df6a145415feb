/*
 * pwrbtn.S: the ACPI fixed-feature power button. Enables PWRBTN_EN in
 * PM1_EN (port 0x602), prints PWRBTN_WAIT and polls PM1_STS (port 0x600)
 * until the host presses the button (monitor `system_powerdown`), then
 * acknowledges it (write 1 to clear) and checks the bit cleared.
 *
 * Output: PWRBTN_WAIT, then PWRBTN=pressed and PWRBTN_CLEARED=yes|no.
 */
        .include "bios.inc"

        .equ PM1_STS, 0x600
        .equ PM1_EN,  0x602
        .equ PWRBTN,  0x0100

        .section .data
msg_wait:    .asciz "PWRBTN_WAIT\n"
msg_pressed: .asciz "PWRBTN=pressed\n"
msg_clr_yes: .asciz "PWRBTN_CLEARED=yes\n"
msg_clr_no:  .asciz "PWRBTN_CLEARED=no\n"

        .section .text
        .code64
main:
        mov     $PM1_EN, %dx
        mov     $PWRBTN, %ax
        out     %ax, %dx
        lea     msg_wait(%rip), %rsi
        call    puts
        mov     $PM1_STS, %dx
1:      in      %dx, %ax
        test    $PWRBTN, %ax
        jnz     2f
        pause
        jmp     1b
2:      lea     msg_pressed(%rip), %rsi
        call    puts
        mov     $PWRBTN, %ax
        out     %ax, %dx                /* write 1 to clear */
        in      %dx, %ax
        lea     msg_clr_yes(%rip), %rsi
        test    $PWRBTN, %ax
        jz      3f
        lea     msg_clr_no(%rip), %rsi
3:      call    puts
        ret
