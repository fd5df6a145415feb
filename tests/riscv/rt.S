/* Minimal runtime for the differential test programs: _start, write, exit.
 * The same ELF runs under qemu-riscv64 (Linux syscalls) and tests/riscv/rv-run. */
    .text
    .globl _start
_start:
    .option push
    .option norelax
    la gp, __global_pointer$
    .option pop
    andi sp, sp, -16
    call main
    li a7, 93
    ecall
1:  j 1b

    .globl rt_write
rt_write:               /* long rt_write(int fd, const void *buf, unsigned long len) */
    li a7, 64
    ecall
    ret

    .globl rt_exit
rt_exit:
    li a7, 93
    ecall
    j rt_exit
