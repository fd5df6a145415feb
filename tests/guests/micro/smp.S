/*
 * smp.S: memory size from CMOS, AP enumeration with INIT-SIPI-SIPI.
 *
 * Output:
 *   MEM_MB=<n>  MEM_BELOW4G_MB=<n>  MEM_ABOVE4G_MB=<n>
 *   CPUS_CMOS=<CMOS[0x5F]+1>            (256 means "255 or more")
 *   APIC_MODE=xapic|x2apic
 *   BSP_APIC_ID=<n>
 *   CPUS=<n>                            (BSP + APs that checked in)
 *   APIC_IDS=<sorted ranges, e.g. 0-254 or 0-3,8>
 *   APIC_ID_DUPLICATES=<n>  APIC_ID_CPUID_MISMATCH=<n>
 *   SMP_WAIT_MS=<ms from first INIT to the end of the wait>
 *   MICRO-DONE
 *
 * APIC mode: xAPIC (MMIO at IA32_APIC_BASE) unless CPUID.1:ECX.x2APIC is set
 * and CMOS 0x5F = 255 (256 or more CPUs), where IDs past 254 exist and only
 * x2APIC can address them (255 CPUs, IDs 0-254, is the largest xAPIC case).  Keeping xAPIC for smaller machines exercises the LAPIC
 * MMIO path; --defsym FORCE_X2APIC=1 selects x2APIC whenever CPUID offers it
 * (needed under QEMU past 255 CPUs, whose CMOS 0x5F byte wraps).
 *
 * APs start in real mode at the 4 KiB-aligned trampoline in ROM (SIPI vector
 * 0xF1), switch to flat 32-bit protected mode, read their APIC ID from their
 * own LAPIC (MMIO ID register, or MSR 0x802 after enabling x2APIC when the
 * BSP did), compare it with CPUID (leaf 0xB in x2APIC mode, leaf 1 otherwise),
 * take a slot with LOCK XADD, store the ID, LOCK INC the done counter and halt.
 * They use no stack.
 *
 * Wait: PIT-timed.  With a known count (CMOS 0x5F < 255) it stops 20 ms after
 * exactly that many CPUs checked in; otherwise (count unknown, not reached,
 * or exceeded, i.e. the CMOS is wrong) when no AP has arrived for 300 ms
 * (2 s before the first one); never more than 10 s.
 */
        .ifndef FORCE_X2APIC
        .equ FORCE_X2APIC, 0
        .endif
        .equ MAX_CPUS, 8192

        .include "bios.inc"

        .section .bss
        .balign 8
ap_use_x2:      .long 0
ap_slot:        .long 0         /* next free slot - 1 (BSP owns slot 0) */
ap_done:        .long 0
ap_mismatch:    .long 0
apic_mmio:      .quad 0
cpus_expected:  .quad 0
        .balign 16
ap_ids:         .space 4 * MAX_CPUS

        .section .text
        .code64
main:
        push    %rbx
        push    %r12
        push    %r13
        push    %r14
        push    %r15
        call    report_memory

        /* expected count from CMOS 0x5F */
        mov     $0x5F, %al
        call    cmos_read
        lea     1(%rax), %r12           /* r12 = CMOS count (256 = >= 256) */
        PRINT   "CPUS_CMOS="
        mov     %r12, %rax
        call    put_dec
        call    newline
        xor     %eax, %eax
        cmp     $256, %r12
        jae     1f
        mov     %r12, %rax
1:      mov     %rax, cpus_expected(%rip)

        /* choose the APIC mode */
        mov     $1, %eax
        cpuid
        xor     %r13d, %r13d            /* r13 = use x2APIC */
        bt      $21, %ecx
        jnc     2f
        mov     $1, %r13d
        .if FORCE_X2APIC == 0
        cmp     $256, %r12              /* CMOS 0x5F = 255: 256 or more CPUs */
        jae     2f
        xor     %r13d, %r13d
        .endif
2:      mov     %r13d, ap_use_x2(%rip)

        mov     $0x1B, %ecx             /* IA32_APIC_BASE */
        rdmsr
        or      $0x800, %eax            /* global enable */
        test    %r13d, %r13d
        jz      3f
        or      $0x400, %eax            /* x2APIC */
3:      wrmsr
        and     $0xFFFFF000, %eax
        shl     $32, %rdx
        or      %rdx, %rax
        mov     %rax, apic_mmio(%rip)

        test    %r13d, %r13d
        jz      4f
        PRINTLN "APIC_MODE=x2apic"
        mov     $0x80F, %ecx            /* SVR: enable, spurious 0xFF */
        mov     $0x1FF, %eax
        xor     %edx, %edx
        wrmsr
        mov     $0x802, %ecx
        rdmsr
        mov     %eax, %ebx              /* BSP ID */
        mov     $0xB, %esi              /* CPUID leaf to compare with */
        jmp     5f
4:      PRINTLN "APIC_MODE=xapic"
        mov     apic_mmio(%rip), %rdi
        movl    $0x1FF, 0xF0(%rdi)
        mov     0x20(%rdi), %ebx
        shr     $24, %ebx
        mov     $1, %esi
5:      mov     %ebx, ap_ids(%rip)
        PRINT   "BSP_APIC_ID="
        mov     %rbx, %rax
        call    put_dec
        call    newline
        mov     %ebx, %edi
        call    check_cpuid_id          /* BSP checks itself too */

        /* INIT-SIPI-SIPI broadcast (all excluding self) */
        call    pit_start
        call    pit_now
        mov     %rax, %r14              /* r14 = start */
        mov     $0x000C4500, %eax       /* INIT, level assert, all-but-self */
        call    send_ipi
        mov     $10 * PIT_TICKS_PER_MS, %edi
        call    pit_delay
        mov     $ap_trampoline, %eax
        shr     $12, %eax
        or      $0x000C4600, %eax       /* STARTUP */
        mov     %eax, %r15d
        call    send_ipi
        mov     $(200 * PIT_TICKS_PER_MS / 1000), %edi
        call    pit_delay
        mov     %r15d, %eax
        call    send_ipi

        /* wait for the APs */
        call    pit_now
        mov     %rax, %rbx              /* rbx = time of last change */
        xor     %r15d, %r15d            /* r15 = last seen count */
        mov     $SPIN_CAP, %r13d
6:      mov     ap_done(%rip), %ecx
        call    pit_now
        cmp     %r15d, %ecx
        je      7f
        mov     %ecx, %r15d
        mov     %rax, %rbx
7:      mov     %rax, %rdx
        sub     %r14, %rdx
        cmp     $10000 * PIT_TICKS_PER_MS, %rdx
        jae     9f                      /* hard cap */
        mov     %rax, %rdx
        sub     %rbx, %rdx              /* rdx = quiet time */
        lea     1(%r15), %rcx           /* CPUs seen */
        mov     cpus_expected(%rip), %rdi
        test    %rdi, %rdi
        jz      8f
        cmp     %rdi, %rcx              /* more than CMOS said: don't trust it */
        jne     8f
        cmp     $20 * PIT_TICKS_PER_MS, %rdx
        jae     9f
        jmp     10f
8:      mov     $300 * PIT_TICKS_PER_MS, %edi
        test    %r15d, %r15d
        jnz     11f
        mov     $2000 * PIT_TICKS_PER_MS, %edi
11:     cmp     %rdi, %rdx
        jae     9f
10:     pause
        dec     %r13d
        jnz     6b
9:      sub     %r14, %rax
        xor     %edx, %edx
        mov     $PIT_TICKS_PER_MS, %ecx
        div     %rcx
        mov     %rax, %r14              /* wait ms */

        mov     ap_done(%rip), %eax
        lea     1(%rax), %rbx           /* rbx = CPUs */
        PRINT   "CPUS="
        mov     %rbx, %rax
        call    put_dec
        call    newline
        cmp     $MAX_CPUS, %rbx
        jbe     12f
        mov     $MAX_CPUS, %ebx
12:     mov     %rbx, %rcx
        call    print_apic_ids
        PRINT   "APIC_ID_CPUID_MISMATCH="
        mov     ap_mismatch(%rip), %eax
        call    put_dec
        call    newline
        PRINT   "SMP_WAIT_MS="
        mov     %r14, %rax
        call    put_dec
        call    newline
        pop     %r15
        pop     %r14
        pop     %r13
        pop     %r12
        pop     %rbx
        ret

/* send_ipi: %eax = ICR low (destination shorthand used, so ICR high = 0). */
send_ipi:
        push    %rcx
        push    %rdx
        push    %rdi
        cmpl    $0, ap_use_x2(%rip)
        je      1f
        mov     $0x830, %ecx
        xor     %edx, %edx
        wrmsr
        jmp     3f
1:      mov     apic_mmio(%rip), %rdi
        movl    $0, 0x310(%rdi)
        mov     %eax, 0x300(%rdi)
        mov     $1000000, %ecx
2:      testl   $0x1000, 0x300(%rdi)    /* delivery status */
        jz      3f
        pause
        dec     %ecx
        jnz     2b
3:      pop     %rdi
        pop     %rdx
        pop     %rcx
        ret

/* check_cpuid_id: %edi = APIC ID read from the LAPIC, %esi = 1 or 0xB. */
check_cpuid_id:
        push    %rax
        push    %rbx
        push    %rcx
        push    %rdx
        cmp     $1, %esi
        je      1f
        xor     %eax, %eax
        cpuid
        cmp     $0xB, %eax
        jb      3f
        mov     $0xB, %eax
        xor     %ecx, %ecx
        cpuid
        cmp     %edx, %edi
        je      3f
        jmp     2f
1:      mov     $1, %eax
        cpuid
        shr     $24, %ebx
        cmp     %ebx, %edi
        je      3f
2:      lock incl ap_mismatch(%rip)
3:      pop     %rdx
        pop     %rcx
        pop     %rbx
        pop     %rax
        ret

/* print_apic_ids: %rcx = number of entries in ap_ids; sorts them, prints
 * APIC_IDS=<ranges> and APIC_ID_DUPLICATES=<n>. */
print_apic_ids:
        push    %rax
        push    %rbx
        push    %rcx
        push    %rdx
        push    %rsi
        push    %rdi
        push    %r8
        lea     ap_ids(%rip), %rsi
        /* insertion sort */
        mov     $1, %ebx
1:      cmp     %rcx, %rbx
        jae     4f
        mov     (%rsi, %rbx, 4), %eax
        mov     %rbx, %rdi
2:      test    %rdi, %rdi
        jz      3f
        mov     -4(%rsi, %rdi, 4), %edx
        cmp     %eax, %edx
        jbe     3f
        mov     %edx, (%rsi, %rdi, 4)
        dec     %rdi
        jmp     2b
3:      mov     %eax, (%rsi, %rdi, 4)
        inc     %rbx
        jmp     1b
4:      PRINT   "APIC_IDS="
        xor     %r8d, %r8d              /* duplicates */
        xor     %ebx, %ebx              /* i */
5:      cmp     %rcx, %rbx
        jae     9f
        mov     (%rsi, %rbx, 4), %eax
        call    put_dec                 /* range start */
        mov     %rbx, %rdi              /* j */
6:      lea     1(%rdi), %rdx
        cmp     %rcx, %rdx
        jae     7f
        mov     (%rsi, %rdx, 4), %eax
        cmp     (%rsi, %rdi, 4), %eax
        jne     61f
        inc     %r8
        mov     %rdx, %rdi
        jmp     6b
61:     mov     (%rsi, %rdi, 4), %edx
        inc     %edx
        cmp     %edx, %eax
        jne     7f
        inc     %rdi
        jmp     6b
7:      mov     (%rsi, %rdi, 4), %eax
        cmp     (%rsi, %rbx, 4), %eax
        je      8f
        push    %rax
        mov     $'-', %al
        call    putc
        pop     %rax
        call    put_dec
8:      lea     1(%rdi), %rbx
        cmp     %rcx, %rbx
        jae     9f
        mov     $',', %al
        call    putc
        jmp     5b
9:      call    newline
        PRINT   "APIC_ID_DUPLICATES="
        mov     %r8, %rax
        call    put_dec
        call    newline
        pop     %r8
        pop     %rdi
        pop     %rsi
        pop     %rdx
        pop     %rcx
        pop     %rbx
        pop     %rax
        ret

/* report_memory: MEM_MB from the CMOS (bochs/QEMU layout). */
report_memory:
        push    %rbx
        push    %rcx
        mov     $0x35, %al
        call    cmos_read
        mov     %eax, %ebx
        shl     $8, %ebx
        mov     $0x34, %al
        call    cmos_read
        or      %eax, %ebx              /* 64 KiB units above 16 MiB */
        test    %ebx, %ebx
        jz      1f
        shl     $16, %rbx
        add     $16 << 20, %rbx
        jmp     2f
1:      mov     $0x31, %al
        call    cmos_read
        mov     %eax, %ebx
        shl     $8, %ebx
        mov     $0x30, %al
        call    cmos_read
        or      %eax, %ebx              /* KiB above 1 MiB */
        shl     $10, %rbx
        add     $1 << 20, %rbx
2:      mov     $0x5D, %al
        call    cmos_read
        mov     %eax, %ecx
        shl     $8, %ecx
        mov     $0x5C, %al
        call    cmos_read
        or      %eax, %ecx
        shl     $8, %ecx
        mov     $0x5B, %al
        call    cmos_read
        or      %eax, %ecx
        shl     $16, %rcx               /* bytes above 4 GiB */
        PRINT   "MEM_MB="
        lea     (%rbx, %rcx), %rax
        shr     $20, %rax
        call    put_dec
        call    newline
        PRINT   "MEM_BELOW4G_MB="
        mov     %rbx, %rax
        shr     $20, %rax
        call    put_dec
        call    newline
        PRINT   "MEM_ABOVE4G_MB="
        mov     %rcx, %rax
        shr     $20, %rax
        call    put_dec
        call    newline
        pop     %rcx
        pop     %rbx
        ret

/* ---------------------------------------------------------------------- */
/* AP trampoline: SIPI vector = ap_trampoline >> 12 (real mode, CS = vector<<8) */
        .section .text16, "ax"
        .code16
        .balign 4096
ap_trampoline:
        cli
        ljmp    $RMSEG, $(ap_real - RMBASE)
ap_real:
        lgdtl   %cs:(gdt_desc - RMBASE)
        mov     %cr0, %eax
        and     $0x9FFFFFFF, %eax
        or      $1, %eax
        mov     %eax, %cr0
        ljmpl   $SEL_CODE32, $ap_pm32

        .code32
ap_pm32:
        mov     $SEL_DATA, %eax
        mov     %eax, %ds
        mov     %eax, %es
        mov     %eax, %ss
        cmpl    $0, ap_use_x2
        je      1f
        mov     $0x1B, %ecx
        rdmsr
        or      $0xC00, %eax            /* enable + x2APIC */
        wrmsr
        mov     $0x802, %ecx
        rdmsr
        mov     %eax, %esi              /* esi = APIC ID */
        xor     %eax, %eax
        cpuid
        cmp     $0xB, %eax
        jb      3f
        mov     $0xB, %eax
        xor     %ecx, %ecx
        cpuid
        cmp     %edx, %esi
        je      3f
        jmp     2f
1:      mov     $0x1B, %ecx
        rdmsr
        and     $0xFFFFF000, %eax
        mov     0x20(%eax), %esi
        shr     $24, %esi
        mov     $1, %eax
        cpuid
        shr     $24, %ebx
        cmp     %ebx, %esi
        je      3f
2:      lock incl ap_mismatch
3:      mov     $1, %eax
        lock xadd %eax, ap_slot
        inc     %eax                    /* slot 0 is the BSP */
        cmp     $MAX_CPUS, %eax
        jae     4f
        mov     %esi, ap_ids(, %eax, 4)
4:      lock incl ap_done
5:      cli
        hlt
        jmp     5b
