/*
 * blk.S: a polled virtio-blk driver for the "pc" machine's first hard disk
 * (virtio-mmio version 2, virtio 1.2 §4.2.2 transport, §2.7 split
 * virtqueue, §5.2 block device), booted with --bios and --hda IMAGE.
 *
 * Output, in this order (hex values as "0x" + digits):
 *   BLK_MAGIC=0x74726976        MagicValue of hda at 0xD0000000 ("virt")
 *   BLK_VERSION=<n>             Version (2: modern layout)
 *   BLK_DEVICE_ID=0x<n>         DeviceID (0x2: block)
 *   BLK1_DEVICE_ID=0x<n>        DeviceID of the hdb slot at 0xD0001000, as
 *                               read: an empty slot is unmapped MMIO, which
 *                               reads all ones on Ferry
 *   BLK_CAPACITY=<sectors>      config capacity, 512-byte sectors
 *   BLK_FEATURES=0x<n>          the 64 feature bits the device offers
 *   BLK_QUEUE_NUM_MAX=<n>       size limit of queue 0 (the guest uses 8)
 *   BLK_STATUS=0x<n>            device status after DRIVER_OK (0xf)
 *   BLK_READ0=<32 hex digits>   first 16 bytes of sector 0, or "fail"
 *   BLK_USED_LEN=<n>            used-ring length of that read (513: data
 *                               and status byte)
 *   BLK_ISR=0x<n>               InterruptStatus after that completion (bit
 *                               0: used buffer), waited for up to 100 ms
 *   BLK_ISR_ACKED=0x<n>         InterruptStatus after InterruptACK (0x0)
 *   BLK_WRITE=ok|fail           sector 1 := bytes (i * 7 + 3) & 0xff
 *   BLK_FLUSH=ok|fail
 *   BLK_READBACK=ok|fail        sector 1 read again equals the pattern
 *   BLK_OOR_STATUS=<n>          status of a read at sector = capacity (1:
 *                               IOERR)
 *   BLK_SERIAL=<text>           GET_ID, up to 20 bytes, NUL-terminated or
 *                               not (non-printable bytes shown as '?')
 *   BLK_REQUESTS=<n>            used ring index at the end (6)
 *   MICRO-DONE
 * A step that cannot go on prints BLK_ERROR=<what> (no-device, features,
 * queue-size, queue-ready, needs-reset) or, when a request is not completed
 * within TIMEOUT_MS, BLK_TIMEOUT=<stage>; the guest then skips to
 * MICRO-DONE.
 *
 * Completions are polled from the used ring: the guest keeps IF = 0, so the
 * device's interrupt line (GSI 5) is raised and acknowledged but never taken.
 */
        .equ VIRTIO_BASE,       0xD0000000      /* hda; hdb at + 0x1000 */
        .equ VIRTIO_STRIDE,     0x1000
        .equ VIRTIO_MAGIC,      0x74726976      /* "virt", little-endian */
        .equ VIRTIO_ID_BLOCK,   2

        /* virtio-mmio registers (§4.2.2) */
        .equ R_MAGIC,           0x000
        .equ R_VERSION,         0x004
        .equ R_DEVICE_ID,       0x008
        .equ R_DEV_FEATURES,    0x010
        .equ R_DEV_FEATURES_SEL, 0x014
        .equ R_DRV_FEATURES,    0x020
        .equ R_DRV_FEATURES_SEL, 0x024
        .equ R_QUEUE_SEL,       0x030
        .equ R_QUEUE_NUM_MAX,   0x034
        .equ R_QUEUE_NUM,       0x038
        .equ R_QUEUE_READY,     0x044
        .equ R_QUEUE_NOTIFY,    0x050
        .equ R_INT_STATUS,      0x060
        .equ R_INT_ACK,         0x064
        .equ R_STATUS,          0x070
        .equ R_QUEUE_DESC_LO,   0x080
        .equ R_QUEUE_DESC_HI,   0x084
        .equ R_QUEUE_DRIVER_LO, 0x090
        .equ R_QUEUE_DRIVER_HI, 0x094
        .equ R_QUEUE_DEVICE_LO, 0x0a0
        .equ R_QUEUE_DEVICE_HI, 0x0a4
        .equ R_CONFIG,          0x100           /* capacity: u64 */

        /* device status bits (§2.1) */
        .equ S_ACKNOWLEDGE,     1
        .equ S_DRIVER,          2
        .equ S_DRIVER_OK,       4
        .equ S_FEATURES_OK,     8
        .equ S_NEEDS_RESET,     0x40

        .equ F_BLK_FLUSH,       (1 << 9)        /* feature bit 9 */
        .equ F_VERSION_1_HI,    1               /* feature bit 32 */

        /* split virtqueue (§2.7) */
        .equ QSIZE,             8               /* a power of 2 */
        .equ D_NEXT,            1
        .equ D_WRITE,           2               /* device writes the buffer */

        /* virtio-blk requests (§5.2.6) */
        .equ T_IN,              0
        .equ T_OUT,             1
        .equ T_FLUSH,           4
        .equ T_GET_ID,          8
        .equ ID_BYTES,          20
        .equ SECTOR,            512

        .equ TIMEOUT_MS,        1000            /* per request */
        .equ ISR_WAIT_MS,       100

        .include "bios.inc"

        .section .bss
        /* The rings: descriptor table 16-aligned, driver (avail) area
         * 2-aligned, device (used) area 4-aligned (§2.7). */
        .balign 4096
vq_desc:        .space 16 * QSIZE
vq_avail:       .space 6 + 2 * QSIZE    /* flags, idx, ring[], used_event */
        .balign 4
vq_used:        .space 6 + 8 * QSIZE    /* flags, idx, {id, len}[], avail_event */
        .balign 16
req_hdr:        .space 16               /* type u32, reserved u32, sector u64 */
req_status:     .space 1
        .balign 512
data_buf:       .space SECTOR
        .balign 8
capacity:       .quad 0
used_len:       .quad 0                 /* len of the last used element */
isr_seen:       .quad 0                 /* InterruptStatus at the last completion */
isr_acked:      .quad 0                 /* and after acknowledging it */

/* REQ type, sector, len, devwrites, stage: one request through blk_req;
 * %eax = its status. On a timeout prints BLK_TIMEOUT=stage and goes to
 * `out` in main. `sector` is an operand ($n or memory). */
        .macro REQ type, sector, len, devwrites, stage
        mov     $\type, %edi
        mov     \sector, %rsi
        mov     $\len, %edx
        mov     $\devwrites, %ecx
        call    blk_req
        cmp     $-1, %eax
        jne     .Lreq\@
        PRINTLN "BLK_TIMEOUT=\stage"
        jmp     out
.Lreq\@:
        .endm

/* FAIL what: prints BLK_ERROR=what and goes to `out` in main. */
        .macro FAIL what
        PRINTLN "BLK_ERROR=\what"
        jmp     out
        .endm

        .section .text
        .code64

/* put_byte: %al as two hex digits, no prefix. */
put_byte:
        push    %rax
        push    %rcx
        push    %rdx
        movzbl  %al, %edx
        lea     hexdigits(%rip), %rcx
        mov     %edx, %eax
        shr     $4, %eax
        mov     (%rcx, %rax), %al
        call    putc
        mov     %edx, %eax
        and     $15, %eax
        mov     (%rcx, %rax), %al
        call    putc
        pop     %rdx
        pop     %rcx
        pop     %rax
        ret

/* put_okfail: "ok" when %eax is 0, else "fail"; then a newline. */
put_okfail:
        test    %eax, %eax
        jnz     1f
        PRINTLN "ok"
        ret
1:      PRINTLN "fail"
        ret

/* pattern_fill: data_buf[i] := (i * 7 + 3) & 0xff. */
pattern_fill:
        push    %rax
        push    %rcx
        xor     %ecx, %ecx
1:      lea     (, %rcx, 8), %eax
        sub     %ecx, %eax
        add     $3, %eax
        mov     %al, data_buf(%rcx)
        inc     %ecx
        cmp     $SECTOR, %ecx
        jb      1b
        pop     %rcx
        pop     %rax
        ret

/* pattern_check: %eax = 0 when data_buf holds the pattern, else 1. */
pattern_check:
        push    %rcx
        push    %rdx
        xor     %ecx, %ecx
1:      lea     (, %rcx, 8), %eax
        sub     %ecx, %eax
        add     $3, %eax
        cmp     %al, data_buf(%rcx)
        jne     2f
        inc     %ecx
        cmp     $SECTOR, %ecx
        jb      1b
        xor     %eax, %eax
        jmp     3f
2:      mov     $1, %eax
3:      pop     %rdx
        pop     %rcx
        ret

/* buf_clear: data_buf := 0, so a read that writes nothing shows. */
buf_clear:
        push    %rax
        push    %rcx
        push    %rdi
        lea     data_buf(%rip), %rdi
        mov     $SECTOR, %ecx
        xor     %eax, %eax
        rep stosb
        pop     %rdi
        pop     %rcx
        pop     %rax
        ret

/* isr_take: waits (up to ISR_WAIT_MS) for InterruptStatus bit 0, stores
 * what it read in isr_seen, acknowledges it and stores the value after
 * that in isr_acked. The device publishes the used index before it raises
 * the interrupt, so right after a completion the bit may not be set yet.
 * %rbx = transport base. */
isr_take:
        push    %rax
        push    %rcx
        push    %rdx
        mov     $ISR_WAIT_MS, %eax
        call    ms_to_tsc
        mov     %rax, %rdx
        call    rdtsc64
        add     %rax, %rdx              /* deadline */
        mov     $SPIN_CAP, %ecx
1:      mov     R_INT_STATUS(%rbx), %eax
        test    $1, %eax
        jnz     2f
        pause
        push    %rax
        call    rdtsc64
        cmp     %rdx, %rax
        pop     %rax
        jae     2f
        dec     %ecx
        jnz     1b
2:      mov     %rax, isr_seen(%rip)
        mov     %eax, R_INT_ACK(%rbx)
        mov     R_INT_STATUS(%rbx), %eax
        mov     %rax, isr_acked(%rip)
        pop     %rdx
        pop     %rcx
        pop     %rax
        ret

/* blk_req: one request, always descriptor chain 0 -> 1 (-> 2):
 *   header (device reads) [, data_buf (device reads or writes)], status.
 * %edi = type, %rsi = sector, %edx = data bytes (0: no data descriptor),
 * %ecx = 1 when the device writes the data (IN, GET_ID).
 * Returns %eax = status byte, or -1 when the used index did not move within
 * TIMEOUT_MS. %rbx = transport base. One request in flight at a time, so
 * the head is always descriptor 0. */
blk_req:
        push    %rcx
        push    %rdx
        push    %rsi
        push    %rdi
        push    %r8
        push    %r9
        push    %r10
        mov     %edi, req_hdr(%rip)
        movl    $0, req_hdr + 4(%rip)
        mov     %rsi, req_hdr + 8(%rip)
        /* Not a status the device uses: shows whether it wrote one. */
        movb    $0xFF, req_status(%rip)

        lea     vq_desc(%rip), %r8
        lea     req_hdr(%rip), %rax
        mov     %rax, 0(%r8)
        movl    $16, 8(%r8)
        movw    $D_NEXT, 12(%r8)
        movw    $1, 14(%r8)
        add     $16, %r8
        test    %edx, %edx
        jz      1f
        lea     data_buf(%rip), %rax
        mov     %rax, 0(%r8)
        mov     %edx, 8(%r8)
        mov     $D_NEXT, %eax
        test    %ecx, %ecx
        jz      2f
        or      $D_WRITE, %eax
2:      mov     %ax, 12(%r8)
        movw    $2, 14(%r8)
        add     $16, %r8
1:      lea     req_status(%rip), %rax
        mov     %rax, 0(%r8)
        movl    $1, 8(%r8)
        movw    $D_WRITE, 12(%r8)
        movw    $0, 14(%r8)

        /* Head 0 into the next avail slot, then the new index. x86 does
         * not reorder stores, so the device never sees the index before
         * the slot and the descriptors. */
        movzwl  vq_avail + 2(%rip), %eax
        mov     %eax, %ecx
        and     $(QSIZE - 1), %ecx
        movw    $0, vq_avail + 4(, %rcx, 2)
        inc     %eax
        mov     %ax, vq_avail + 2(%rip)
        mov     %eax, %r10d             /* used index once done */
        mfence
        movl    $0, R_QUEUE_NOTIFY(%rbx)

        /* The completion may come from a block worker thread after the
         * notify returns: poll the used index, bounded by time and by a
         * spin count in case the TSC does not run. */
        mov     $TIMEOUT_MS, %eax
        call    ms_to_tsc
        mov     %rax, %r9
        call    rdtsc64
        add     %rax, %r9               /* deadline */
        mov     $SPIN_CAP, %ecx
3:      movzwl  vq_used + 2(%rip), %eax
        cmp     %r10w, %ax
        je      4f
        pause
        call    rdtsc64
        cmp     %r9, %rax
        jae     5f
        dec     %ecx
        jnz     3b
5:      mov     $-1, %eax
        jmp     9f

4:      lea     -1(%r10), %ecx          /* the element just used */
        and     $(QSIZE - 1), %ecx
        mov     vq_used + 4 + 4(, %rcx, 8), %eax
        mov     %rax, used_len(%rip)
        call    isr_take
        movzbl  req_status(%rip), %eax
9:      pop     %r10
        pop     %r9
        pop     %r8
        pop     %rdi
        pop     %rsi
        pop     %rdx
        pop     %rcx
        ret

main:
        push    %rbx
        push    %r12
        push    %r13
        call    tsc_calibrate           /* for the timeouts */
        mov     $VIRTIO_BASE, %ebx

        /* ---- identify (§4.2.3.1.1) ---- */
        PRINT   "BLK_MAGIC="
        mov     R_MAGIC(%rbx), %eax
        mov     %eax, %r12d
        mov     $8, %ecx
        call    put_hexw
        call    newline
        PRINT   "BLK_VERSION="
        mov     R_VERSION(%rbx), %eax
        call    put_dec
        call    newline
        PRINT   "BLK_DEVICE_ID="
        mov     R_DEVICE_ID(%rbx), %eax
        mov     %eax, %r13d
        call    put_hex
        call    newline
        PRINT   "BLK1_DEVICE_ID="
        mov     VIRTIO_STRIDE + R_DEVICE_ID(%rbx), %eax
        call    put_hex
        call    newline
        cmp     $VIRTIO_MAGIC, %r12d
        jne     no_device
        cmp     $VIRTIO_ID_BLOCK, %r13d
        jne     no_device

        /* Config space takes any access size; two 32-bit reads keep to
         * what every transport allows. */
        PRINT   "BLK_CAPACITY="
        mov     R_CONFIG + 4(%rbx), %eax
        shl     $32, %rax
        mov     R_CONFIG(%rbx), %ecx
        or      %rcx, %rax
        mov     %rax, capacity(%rip)
        call    put_dec
        call    newline

        /* ---- initialize (§3.1.1) ---- */
        movl    $0, R_STATUS(%rbx)      /* reset */
        movl    $S_ACKNOWLEDGE, R_STATUS(%rbx)
        movl    $(S_ACKNOWLEDGE | S_DRIVER), R_STATUS(%rbx)
        movl    $1, R_DEV_FEATURES_SEL(%rbx)
        mov     R_DEV_FEATURES(%rbx), %eax
        shl     $32, %rax
        movl    $0, R_DEV_FEATURES_SEL(%rbx)
        mov     R_DEV_FEATURES(%rbx), %ecx
        or      %rcx, %rax
        mov     %rax, %r12              /* offered */
        PRINT   "BLK_FEATURES="
        call    put_hex
        call    newline
        /* Take VERSION_1 and, when offered, FLUSH: nothing else. */
        movl    $1, R_DRV_FEATURES_SEL(%rbx)
        movl    $F_VERSION_1_HI, R_DRV_FEATURES(%rbx)
        movl    $0, R_DRV_FEATURES_SEL(%rbx)
        mov     %r12d, %eax
        and     $F_BLK_FLUSH, %eax
        mov     %eax, R_DRV_FEATURES(%rbx)
        movl    $(S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK), R_STATUS(%rbx)
        mov     R_STATUS(%rbx), %eax    /* the device may refuse */
        test    $S_FEATURES_OK, %eax
        jnz     1f
        FAIL    features

1:      movl    $0, R_QUEUE_SEL(%rbx)
        PRINT   "BLK_QUEUE_NUM_MAX="
        mov     R_QUEUE_NUM_MAX(%rbx), %eax
        call    put_dec
        call    newline
        cmp     $QSIZE, %eax
        jae     2f
        FAIL    queue-size
2:      movl    $QSIZE, R_QUEUE_NUM(%rbx)
        /* Everything is below 4 GiB: the high halves are 0. */
        lea     vq_desc(%rip), %rax
        mov     %eax, R_QUEUE_DESC_LO(%rbx)
        movl    $0, R_QUEUE_DESC_HI(%rbx)
        lea     vq_avail(%rip), %rax
        mov     %eax, R_QUEUE_DRIVER_LO(%rbx)
        movl    $0, R_QUEUE_DRIVER_HI(%rbx)
        lea     vq_used(%rip), %rax
        mov     %eax, R_QUEUE_DEVICE_LO(%rbx)
        movl    $0, R_QUEUE_DEVICE_HI(%rbx)
        movl    $1, R_QUEUE_READY(%rbx)
        mov     R_QUEUE_READY(%rbx), %eax   /* 0: the rings were refused */
        test    $1, %eax
        jnz     3f
        FAIL    queue-ready
3:      movl    $(S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK), R_STATUS(%rbx)
        PRINT   "BLK_STATUS="
        mov     R_STATUS(%rbx), %eax
        call    put_hex
        call    newline
        test    $S_NEEDS_RESET, %eax
        jz      4f
        FAIL    needs-reset

        /* ---- sector 0: what the host put there ---- */
4:      call    buf_clear
        REQ     T_IN, $0, SECTOR, 1, read0
        PRINT   "BLK_READ0="
        test    %eax, %eax
        jz      5f
        PRINTLN "fail"
        jmp     6f
5:      xor     %ecx, %ecx
51:     mov     data_buf(%rcx), %al
        call    put_byte
        inc     %ecx
        cmp     $16, %ecx
        jb      51b
        call    newline
6:      PRINT   "BLK_USED_LEN="
        mov     used_len(%rip), %rax
        call    put_dec
        call    newline
        PRINT   "BLK_ISR="
        mov     isr_seen(%rip), %rax
        call    put_hex
        call    newline
        PRINT   "BLK_ISR_ACKED="
        mov     isr_acked(%rip), %rax
        call    put_hex
        call    newline

        /* ---- sector 1: write, flush, read back ---- */
        call    pattern_fill
        REQ     T_OUT, $1, SECTOR, 0, write1
        PRINT   "BLK_WRITE="
        call    put_okfail
        REQ     T_FLUSH, $0, 0, 0, flush
        PRINT   "BLK_FLUSH="
        call    put_okfail
        call    buf_clear
        REQ     T_IN, $1, SECTOR, 1, readback
        test    %eax, %eax
        jnz     7f
        call    pattern_check
7:      PRINT   "BLK_READBACK="
        call    put_okfail

        /* ---- one sector past the end ---- */
        REQ     T_IN, capacity(%rip), SECTOR, 1, oor
        PRINT   "BLK_OOR_STATUS="
        call    put_dec
        call    newline

        /* ---- serial number ---- */
        call    buf_clear
        REQ     T_GET_ID, $0, ID_BYTES, 1, getid
        PRINT   "BLK_SERIAL="
        test    %eax, %eax
        jnz     82f
        xor     %ecx, %ecx
8:      movzbl  data_buf(%rcx), %eax
        test    %eax, %eax
        jz      82f
        cmp     $0x20, %al
        jb      81f
        cmp     $0x7e, %al
        jbe     80f
81:     mov     $'?', %al
80:     call    putc
        inc     %ecx
        cmp     $ID_BYTES, %ecx
        jb      8b
82:     call    newline

        PRINT   "BLK_REQUESTS="
        movzwl  vq_used + 2(%rip), %eax
        call    put_dec
        call    newline
        movl    $0, R_STATUS(%rbx)      /* reset: the device lets go of the rings */
        jmp     out

no_device:
        FAIL    no-device
out:
        pop     %r13
        pop     %r12
        pop     %rbx
        ret
