/* Differential test: every RV64C instruction, written explicitly (c.*), with the
 * register file printed by rt_dump after each group. */
    .data
    .balign 16
regsave: .zero 528
buf:
    .dword 0x0123456789abcdef, 0xfedcba9876543210, 0x8000000080000000, 0x3ff8000000000000
    .dword 0x00000000ffffffff, 0x7fffffff7fffffff, 0xdeadbeefcafef00d, 0x4000000000000000
    .zero 64

    .text
dump:                            /* saves x1..x31 (not sp/gp/tp), f0..f31, fcsr; prints */
    addi sp, sp, -16
    sd t6, 0(sp)
    la t6, regsave
    .irp r, 1,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30
    sd x\r, \r*8(t6)
    .endr
    ld t5, 0(sp)
    sd t5, 31*8(t6)
    .irp r, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    fsd f\r, 256+\r*8(t6)
    .endr
    frcsr t5
    sd t5, 512(t6)
    mv a0, t6
    call rt_dump
    la t6, regsave
    .irp r, 1,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30
    ld x\r, \r*8(t6)
    .endr
    ld t6, 31*8(t6)
    addi sp, sp, 16
    ret

    .globl main
main:
    addi sp, sp, -256
    la s0, buf
    li s1, 0x1234
    li a0, -5
    li a1, 77
    li a2, 0x7fffffff
    li a3, -1
    li a4, 0x80000000
    li a5, 3
    .option push
    .option rvc
    c.addi4spn s1, sp, 16
    c.addi4spn a0, sp, 1020
    .option pop
    sub s1, s1, sp
    sub a0, a0, sp
    .option push
    .option rvc
    c.ld a1, 8(s0)
    c.lw a2, 16(s0)
    c.lw a3, 20(s0)
    c.fld fa0, 24(s0)
    c.fld fa1, 0(s0)
    c.sd a1, 64(s0)
    c.sw a3, 72(s0)
    c.fsd fa0, 80(s0)
    c.ld a4, 64(s0)
    c.ld a5, 72(s0)
    c.nop
    .option pop
    call dump
    .option push
    .option rvc
    c.li t0, -32
    c.li t1, 31
    c.addi t0, 17
    c.addi t1, -1
    c.addiw a2, 1
    c.addiw t1, -32
    c.lui t2, 0x1f
    c.lui s1, 0xfffe0
    c.srli a2, 1
    c.srli a3, 63
    c.srai a4, 4
    c.srai a5, 33
    c.andi a0, -7
    c.andi a1, 15
    c.sub a0, a1
    c.xor a2, a3
    c.or a4, a5
    c.and s1, a0
    c.subw a3, a2
    c.addw a5, a4
    c.slli t0, 1
    c.slli t1, 63
    c.mv t3, t0
    c.add t3, t1
    .option pop
    call dump
    .option push
    .option rvc
    c.addi16sp sp, -64
    c.addi16sp sp, 32
    c.addi16sp sp, 32
    c.sdsp a0, 0(sp)
    c.swsp a2, 8(sp)
    c.fsdsp fa0, 16(sp)
    c.ldsp t4, 0(sp)
    c.lwsp t5, 8(sp)
    c.fldsp fa2, 16(sp)
    c.sdsp t1, 504(sp)
    c.ldsp a1, 504(sp)
    c.swsp a3, 236(sp)
    c.lwsp a4, 236(sp)
    li a0, 0
    li a1, 5
1:  c.addi a0, 3
    c.addi a1, -1
    c.bnez a1, 1b
    c.beqz a1, 2f
    c.li a0, 0
2:  c.j 3f
    c.li a0, 1
3:  la t0, 4f
    c.jr t0
    c.li a0, 2
4:  la t0, 5f
    c.jalr t0
5:  c.mv a2, ra
    la t0, 5b
    sub a2, a2, t0
    .option pop
    call dump
    call rt_flush_all
    li a0, 0
    call rt_exit
