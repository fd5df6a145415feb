/*
 * pvh.S -> micro-pvh.elf: an ELF64 image with a Xen PVH entry note
 * (XEN_ELFNOTE_PHYS32_ENTRY = 18, name "Xen"), loaded at 0x100000.
 *
 * Entry: 32-bit protected mode, paging off, flat segments, %ebx = physical
 * address of struct hvm_start_info.  It builds an identity map, enters long
 * mode and prints ENTRY=pvh, PVH_START_INFO=ok|bad (magic 0x336ec578) and
 * PVH_VERSION=<n>, then the kernel.inc report (module 0 = initrd; memory map
 * from memmap_paddr/memmap_entries, version >= 1).
 */
        .equ XEN_HVM_START_MAGIC, 0x336EC578

        .include "kernel.inc"

        .section .note.Xen, "a"
        .balign 4
        .long   4                       /* namesz */
        .long   8                       /* descsz */
        .long   18                      /* XEN_ELFNOTE_PHYS32_ENTRY */
        .asciz  "Xen"
        .balign 4
        .quad   pvh_entry32             /* 32-bit physical entry */

        .section .text.head, "ax"
        .code32
        .globl  pvh_entry32
pvh_entry32:
        cli
        cld
        mov     %ebx, %esi
        mov     $pvh_entry64, %edi
        jmp     enter_long_mode32

        .code64
pvh_entry64:
        K64_PROLOGUE
        PRINTLN "ENTRY=pvh"
        mov     %r12, %rbx              /* hvm_start_info */
        PRINT   "PVH_START_INFO="
        cmpl    $XEN_HVM_START_MAGIC, (%rbx)
        je      1f
        PRINTLN "bad"
        jmp     kreport
1:      PRINTLN "ok"
        PRINT   "PVH_VERSION="
        mov     4(%rbx), %eax
        call    put_dec
        call    newline
        mov     24(%rbx), %rax          /* cmdline_paddr */
        mov     %rax, k_cmdline(%rip)
        mov     32(%rbx), %rax          /* rsdp_paddr */
        mov     %rax, k_rsdp(%rip)
        cmpl    $0, 12(%rbx)            /* nr_modules */
        je      2f
        mov     16(%rbx), %rsi          /* modlist_paddr */
        mov     %rsi, %rax
        mov     $32, %ecx
        call    k_addr_ok
        jc      2f
        mov     0(%rsi), %rax           /* hvm_modlist_entry.paddr */
        mov     %rax, k_initrd(%rip)
        mov     8(%rsi), %rax           /* .size */
        mov     %rax, k_initrd_size(%rip)
2:      cmpl    $1, 4(%rbx)             /* memmap needs version >= 1 */
        jb      3f
        mov     40(%rbx), %rax          /* memmap_paddr */
        mov     %rax, k_e820(%rip)
        mov     48(%rbx), %eax          /* memmap_entries */
        mov     %rax, k_e820_n(%rip)
        movq    $24, k_e820_stride(%rip)
3:      jmp     kreport
