/* CPU-bound integer loop for the MIPS figure: 200M iterations of a 5-instruction body
 * (1000M instructions).  Prints nothing; exit code is the low byte of the checksum. */
    .text
    .globl _start
_start:
    li t0, 200000000
    li t1, 0
    li t2, 12345
1:  add t1, t1, t2
    xor t2, t2, t1
    slli t3, t1, 3
    addi t0, t0, -1
    bnez t0, 1b
    andi a0, t1, 0
    li a7, 93
    ecall
