/*
 * bzimage.S -> micro-bzImage: a minimal bzImage for the Linux x86 boot
 * protocol (Documentation/x86/boot.rst), header version 2.15.
 *
 * File layout: setup (boot sector + SETUP_SECTS sectors, linked at 0) then
 * the protected-mode payload (linked at 0x100000):
 *   payload + 0x000  32-bit entry (code32_start; %esi = boot_params): prints
 *                    ENTRY32, builds its own identity map and enters the
 *                    64-bit entry exactly as a 64-bit loader would
 *   payload + 0x200  64-bit entry (XLF_KERNEL_64; %rsi = boot_params, long
 *                    mode, loader's identity map): prints ENTRY=bzimage64,
 *                    BOOT_PARAMS_HDR=ok|bad (setup header copied into the
 *                    zero page), then the kernel.inc report
 *   setup + 0x200    16-bit entry (what QEMU -kernel uses): prints
 *                    REALMODE-ENTRY and powers off; built with
 *                    --defsym RM_CHAIN=1 it instead builds a zero page
 *                    (setup header + BIOS E820 map) and enters the 32-bit
 *                    entry, so the 32- and 64-bit paths run under QEMU too.
 */
        .ifndef RM_CHAIN
        .equ RM_CHAIN, 0
        .endif
        .equ PAYLOAD, 0x100000

        .include "kernel.inc"

/* ---------------------------------------------------------------- setup */
        .section .setup, "ax"
        .code16
setup_start:
        /* a loader never runs the boot sector; keep it inert */
        cli
1:      hlt
        jmp     1b

        .org    0x1F1
hdr:
        .byte   _setup_sects            /* 0x1F1 setup_sects */
        .word   0                       /* 0x1F2 root_flags */
        .long   _syssize                /* 0x1F4 syssize (16-byte units) */
        .word   0                       /* 0x1F8 ram_size */
        .word   0xFFFF                  /* 0x1FA vid_mode: normal */
        .word   0                       /* 0x1FC root_dev */
        .word   0xAA55                  /* 0x1FE boot_flag */
        .org    0x200
        .byte   0xEB, rm_entry - (setup_start + 0x202)  /* 0x200 jmp short */
        .org    0x202
        .ascii  "HdrS"                  /* 0x202 header */
        .word   0x020F                  /* 0x206 version 2.15 */
        .long   0                       /* 0x208 realmode_swtch */
        .word   0x1000                  /* 0x20C start_sys_seg */
        .word   kernel_version - 0x200  /* 0x20E kernel_version */
        .byte   0                       /* 0x210 type_of_loader */
        .byte   0x01                    /* 0x211 loadflags: LOADED_HIGH */
        .word   0x8000                  /* 0x212 setup_move_size */
        .long   PAYLOAD                 /* 0x214 code32_start */
        .long   0                       /* 0x218 ramdisk_image */
        .long   0                       /* 0x21C ramdisk_size */
        .long   0                       /* 0x220 bootsect_kludge */
        .word   0                       /* 0x224 heap_end_ptr */
        .byte   0                       /* 0x226 ext_loader_ver */
        .byte   0                       /* 0x227 ext_loader_type */
        .long   0                       /* 0x228 cmd_line_ptr */
        .long   0x7FFFFFFF              /* 0x22C initrd_addr_max */
        .long   0x100000                /* 0x230 kernel_alignment */
        .byte   0                       /* 0x234 relocatable_kernel */
        .byte   12                      /* 0x235 min_alignment (log2) */
        .word   0x0001                  /* 0x236 xloadflags: XLF_KERNEL_64 */
        .long   2047                    /* 0x238 cmdline_size */
        .long   0                       /* 0x23C hardware_subarch */
        .quad   0                       /* 0x240 hardware_subarch_data */
        .long   0                       /* 0x248 payload_offset */
        .long   0                       /* 0x24C payload_length */
        .quad   0                       /* 0x250 setup_data */
        .quad   PAYLOAD                 /* 0x258 pref_address */
        .long   _init_size              /* 0x260 init_size */
        .long   0                       /* 0x264 handover_offset */
        .long   kernel_info - PAYLOAD   /* 0x268 kernel_info_offset */
        .org    0x26C

/* 16-bit entry: CS = real-mode segment + 0x20, IP = 0 (file offset 0x200),
 * DS = ES = SS = real-mode segment. */
rm_entry:
        cli
        cld
        mov     %cs, %ax
        sub     $0x20, %ax
        mov     %ax, %ds
        mov     %ax, %es
        call    rm_serial_init
        mov     $rm_msg, %si
        call    rm_puts
        .if RM_CHAIN
        jmp     rm_chain
        .endif
rm_poweroff:
        mov     $PM1A_CNT_DEFAULT, %dx
        mov     $SLP_EN, %ax
        out     %ax, %dx
        /* ~110 ms (two PIT wraps) for an asynchronous power-off to win */
        mov     $0x34, %al
        out     %al, $0x43
        xor     %al, %al
        out     %al, $0x40
        out     %al, $0x40
        mov     $2, %bx                 /* wraps to wait for */
        mov     $0xFFFF, %si            /* previous count */
        mov     $0xFFFF, %cx            /* bound */
2:      xor     %al, %al
        out     %al, $0x43
        in      $0x40, %al
        mov     %al, %ah
        in      $0x40, %al
        xchg    %al, %ah                /* ax = count */
        cmp     %si, %ax
        mov     %ax, %si
        jbe     3f
        dec     %bx                     /* count went up: wrapped */
        jz      4f
3:      loop    2b
4:      mov     $DEBUG_EXIT_PORT, %dx
        xor     %al, %al
        out     %al, %dx
1:      hlt
        jmp     1b

rm_serial_init:
        mov     $COM1 + 1, %dx
        xor     %al, %al
        out     %al, %dx
        mov     $COM1 + 3, %dx
        mov     $0x80, %al
        out     %al, %dx
        mov     $COM1, %dx
        mov     $1, %al
        out     %al, %dx
        mov     $COM1 + 1, %dx
        xor     %al, %al
        out     %al, %dx
        mov     $COM1 + 3, %dx
        mov     $0x03, %al
        out     %al, %dx
        ret

/* rm_puts: %ds:%si = NUL-terminated string */
rm_puts:
        lodsb
        test    %al, %al
        jz      3f
        mov     %al, %ah
        mov     $COM1 + 5, %dx
        mov     $0xFFFF, %cx
1:      in      %dx, %al
        test    $0x20, %al
        jnz     2f
        loop    1b
2:      mov     %ah, %al
        mov     $COM1, %dx
        out     %al, %dx
        jmp     rm_puts
3:      ret

rm_msg: .asciz  "REALMODE-ENTRY\n"
kernel_version:
        .asciz  "ferry-micro 1.0 (micro-guest)"

        .if RM_CHAIN
/* Act as the real-mode half of a kernel: zero page at real-mode base +
 * 0x4000 with the setup header and an INT 15h/E820 map, then the 32-bit
 * boot protocol (flat __BOOT_CS 0x10 / __BOOT_DS 0x18, %esi = zero page). */
rm_chain:
        mov     %ds, %ax
        add     $0x400, %ax
        mov     %ax, %es
        xor     %di, %di
        mov     $2048, %cx
        xor     %ax, %ax
        rep stosw
        mov     $0x1F1, %si
        mov     %si, %di
        mov     $(0x290 - 0x1F1), %cx
        rep movsb
        xor     %ebx, %ebx
        mov     $0x2D0, %di
        xor     %bp, %bp
1:      mov     $0xE820, %eax
        mov     $20, %ecx
        mov     $0x534D4150, %edx       /* "SMAP" */
        int     $0x15
        jc      2f
        cmp     $0x534D4150, %eax
        jne     2f
        inc     %bp
        add     $20, %di
        test    %ebx, %ebx
        jz      2f
        cmp     $128, %bp
        jb      1b
2:      mov     %bp, %ax
        mov     %al, %es:0x1E8
        movl    $0, %es:0x070           /* acpi_rsdp_addr: let the guest scan */
        xor     %eax, %eax
        mov     %ds, %ax
        shl     $4, %eax
        mov     %eax, %esi
        add     $0x4000, %esi           /* zero page, linear */
        add     $rm_gdt, %eax
        mov     %eax, rm_gdt_desc + 2
        cli
        lgdtl   rm_gdt_desc
        mov     %cr0, %eax
        or      $1, %eax
        mov     %eax, %cr0
        mov     $0x18, %ax
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %ss
        mov     %ax, %fs
        mov     %ax, %gs
        ljmpl   $0x10, $PAYLOAD

        .balign 8
rm_gdt:
        .quad   0
        .quad   0
        .quad   0x00CF9B000000FFFF      /* 0x10 */
        .quad   0x00CF93000000FFFF      /* 0x18 */
rm_gdt_end:
rm_gdt_desc:
        .word   rm_gdt_end - rm_gdt - 1
        .long   0                       /* filled at run time */
        .endif

/* -------------------------------------------------------------- payload */
        .section .text.head, "ax"
        .code32
entry32:
        cli
        cld
        mov     $msg_entry32, %ebx
1:      movzbl  (%ebx), %eax
        test    %al, %al
        jz      3f
        mov     %al, %ah
        mov     $COM1 + 5, %dx
        mov     $100000, %ecx
2:      in      %dx, %al
        test    $0x20, %al
        jnz     21f
        dec     %ecx
        jnz     2b
21:     mov     %ah, %al
        mov     $COM1, %dx
        out     %al, %dx
        inc     %ebx
        jmp     1b
3:      mov     $entry64, %edi
        jmp     enter_long_mode32       /* %esi = boot_params */
msg_entry32:
        .asciz  "ENTRY32\n"

        .org    0x200
        .code64
        .globl  entry64
entry64:
        K64_PROLOGUE
        PRINTLN "ENTRY=bzimage64"
        mov     %r12, %rbx              /* boot_params */
        PRINT   "BOOT_PARAMS_HDR="
        cmpw    $0xAA55, 0x1FE(%rbx)
        jne     1f
        cmpl    $0x53726448, 0x202(%rbx)        /* "HdrS" */
        jne     1f
        PRINTLN "ok"
        jmp     2f
1:      PRINTLN "bad"
2:      mov     0x228(%rbx), %eax       /* cmd_line_ptr */
        mov     0x0C8(%rbx), %edx       /* ext_cmd_line_ptr */
        shl     $32, %rdx
        or      %rdx, %rax
        mov     %rax, k_cmdline(%rip)
        mov     0x218(%rbx), %eax       /* ramdisk_image */
        mov     0x0C0(%rbx), %edx       /* ext_ramdisk_image */
        shl     $32, %rdx
        or      %rdx, %rax
        mov     %rax, k_initrd(%rip)
        mov     0x21C(%rbx), %eax       /* ramdisk_size */
        mov     0x0C4(%rbx), %edx       /* ext_ramdisk_size */
        shl     $32, %rdx
        or      %rdx, %rax
        mov     %rax, k_initrd_size(%rip)
        mov     0x070(%rbx), %rax       /* acpi_rsdp_addr */
        mov     %rax, k_rsdp(%rip)
        lea     0x2D0(%rbx), %rax       /* e820_table */
        mov     %rax, k_e820(%rip)
        movzbl  0x1E8(%rbx), %eax       /* e820_entries */
        cmp     $128, %eax
        jbe     3f
        mov     $128, %eax
3:      mov     %rax, k_e820_n(%rip)
        movq    $20, k_e820_stride(%rip)
        jmp     kreport

        .section .rodata
        .balign 4
kernel_info:                            /* boot protocol 2.15 kernel_info */
        .ascii  "LToP"                  /* header */
        .long   16                      /* size of the fixed part */
        .long   16                      /* size_total */
        .long   0                       /* setup_type_max */
