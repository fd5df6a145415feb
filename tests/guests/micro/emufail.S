/*
 * emufail.S: executes code from an address where no RAM is (unassigned
 * MMIO). No hypervisor can run that: KVM stops with an internal error
 * (emulation failure), and Ferry must stop this VM with a clear message
 * and exit status 1, never crash.
 *
 * Output: EMUFAIL-JUMP, then nothing (the VM is stopped).
 */
        .include "bios.inc"

        .section .data
msg_jump: .asciz "EMUFAIL-JUMP\n"

        .section .text
        .code64
main:
        lea     msg_jump(%rip), %rsi
        call    puts
        mov     $0xFEB00000, %rax
        jmp     *%rax
