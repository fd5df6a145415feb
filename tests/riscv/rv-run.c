/* rv-run: runs a static riscv64 ELF (linked for user mode, no libc needed) on Ferry's
 * software hart, emulating the write/exit system calls, so its output can be compared
 * with qemu-riscv64's.  Usage:
 *   rv-run [-p u|s|m] [-v bare|sv39|sv48] [-n max-instructions] [-b] program.elf
 * -p: privilege the program runs in (default u); -v: paging (identity map, default bare);
 * -b: print instructions retired and MIPS on stderr when done. */
#include "cpu-riscv-private.h"

#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RAM_BASE 0ULL
#define RAM_SIZE (512ULL << 20)
#define TRAMP    (RAM_SIZE - 0x1000)   /* mret; wfi; mret */
#define PT_BASE  (RAM_SIZE - 0x100000) /* page tables */
#define STACK_TOP (RAM_SIZE - 0x200000)

static uint64_t read_time(void *opaque)
{
    (void)opaque;
    return (uint64_t)(g_get_monotonic_time() * 10);
}

static void put32(uint8_t *ram, uint64_t addr, uint32_t v)
{
    memcpy(ram + addr - RAM_BASE, &v, 4);
}

static void put64(uint8_t *ram, uint64_t addr, uint64_t v)
{
    memcpy(ram + addr - RAM_BASE, &v, 8);
}

static gboolean load_elf(uint8_t *ram, const char *path, uint64_t *entry)
{
    gchar *data;
    gsize len;
    GError *error = NULL;
    if (!g_file_get_contents(path, &data, &len, &error)) {
        fprintf(stderr, "rv-run: %s\n", error->message);
        g_error_free(error);
        return FALSE;
    }
    Elf64_Ehdr *eh = (Elf64_Ehdr *)data;
    if (len < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
        eh->e_machine != EM_RISCV) {
        fprintf(stderr, "rv-run: %s is not a riscv64 ELF file\n", path);
        g_free(data);
        return FALSE;
    }
    for (unsigned i = 0; i < eh->e_phnum; i++) {
        Elf64_Phdr *ph = (Elf64_Phdr *)(data + eh->e_phoff + (gsize)i * eh->e_phentsize);
        if ((gsize)((char *)(ph + 1) - data) > len)
            break;
        if (ph->p_type != PT_LOAD)
            continue;
        if (ph->p_vaddr < RAM_BASE || ph->p_vaddr + ph->p_memsz > PT_BASE ||
            ph->p_offset + ph->p_filesz > len || ph->p_filesz > ph->p_memsz) {
            fprintf(stderr, "rv-run: %s: segment %u does not fit in guest RAM\n", path, i);
            g_free(data);
            return FALSE;
        }
        memcpy(ram + ph->p_vaddr - RAM_BASE, data + ph->p_offset, ph->p_filesz);
        memset(ram + ph->p_vaddr - RAM_BASE + ph->p_filesz, 0, ph->p_memsz - ph->p_filesz);
    }
    *entry = eh->e_entry;
    g_free(data);
    return TRUE;
}

/* Identity map of RAM: 4 KiB pages for the first 2 MiB, 2 MiB pages after.
 * A and D are left clear so the hart has to set them. Returns satp. */
static uint64_t build_page_tables(uint8_t *ram, int levels, gboolean user)
{
    uint64_t flags = 1 /* V */ | 2 | 4 | 8 | (user ? 16 : 0);
    uint64_t root = PT_BASE, l2 = PT_BASE + 0x1000, l1 = PT_BASE + 0x2000, l0 = PT_BASE + 0x3000;
    uint64_t top = levels == 4 ? root : l2;
    if (levels == 4)
        put64(ram, root, ((l2 >> 12) << 10) | 1);
    put64(ram, l2, ((l1 >> 12) << 10) | 1);
    put64(ram, l1, ((l0 >> 12) << 10) | 1);
    for (uint64_t i = 0; i < 512; i++)
        put64(ram, l0 + i * 8, ((i) << 10) | flags);
    for (uint64_t i = 1; i < RAM_SIZE >> 21; i++)
        put64(ram, l1 + i * 8, ((i << 9) << 10) | flags);
    return ((levels == 4 ? 9ULL : 8ULL) << 60) | (top >> 12);
}

int main(int argc, char **argv)
{
    const char *priv_name = "u", *vm = "bare";
    uint64_t max_insns = 20000000000ULL;
    gboolean bench = FALSE;
    int opt;
    while ((opt = getopt(argc, argv, "p:v:n:b")) != -1) {
        switch (opt) {
        case 'p': priv_name = optarg; break;
        case 'v': vm = optarg; break;
        case 'n': max_insns = g_ascii_strtoull(optarg, NULL, 0); break;
        case 'b': bench = TRUE; break;
        default:
            fprintf(stderr, "usage: rv-run [-p u|s|m] [-v bare|sv39|sv48] [-n max] [-b] prog.elf\n");
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "usage: rv-run [-p u|s|m] [-v bare|sv39|sv48] [-n max] [-b] prog.elf\n");
        return 2;
    }
    unsigned priv = priv_name[0] == 'm' ? 3 : priv_name[0] == 's' ? 1 : 0;

    uint8_t *ram = g_malloc0(RAM_SIZE);
    uint64_t entry;
    if (!load_elf(ram, argv[optind], &entry))
        return 2;
    put32(ram, TRAMP, 0x30200073);       /* mret */
    put32(ram, TRAMP + 4, 0x10500073);   /* wfi: trap vector, hands the trap to us */
    put32(ram, TRAMP + 8, 0x30200073);   /* mret */

    FerryRvBus bus = { .ram = ram, .ram_base = RAM_BASE, .ram_size = RAM_SIZE, .read_time = read_time };
    FerryRvHart *h = ferry_rv_hart_new(&bus, 0);
    ferry_rv_hart_reset(h, TRAMP);
    ferry_rv_hart_set_reg(h, 2, STACK_TOP);
    uint64_t mstatus;
    ferry_rv_hart_read_csr(h, 0x300, &mstatus);
    mstatus = (mstatus & ~(3ULL << 11)) | ((uint64_t)priv << 11) | (1ULL << 13); /* MPP, FS=Initial */
    ferry_rv_hart_write_csr(h, 0x300, mstatus);
    ferry_rv_hart_write_csr(h, 0x341, entry);
    ferry_rv_hart_write_csr(h, 0x305, TRAMP + 4);
    ferry_rv_hart_write_csr(h, 0x306, ~0ULL);   /* mcounteren */
    ferry_rv_hart_write_csr(h, 0x106, ~0ULL);   /* scounteren */
    if (priv != 3 && strcmp(vm, "bare") != 0)
        ferry_rv_hart_write_csr(h, 0x180, build_page_tables(ram, strcmp(vm, "sv48") == 0 ? 4 : 3, priv == 0));

    gint64 t0 = g_get_monotonic_time();
    int status = -1;
    while (status < 0) {
        FerryRvRunResult r = ferry_rv_hart_run(h, 1 << 22);
        if (ferry_rv_hart_get_instret(h) > max_insns) {
            fprintf(stderr, "rv-run: instruction limit reached at pc %#" G_GINT64_MODIFIER "x\n",
                    ferry_rv_hart_get_pc(h));
            status = 3;
            break;
        }
        if (r != FERRY_RV_RUN_WFI)
            continue;
        uint64_t cause, tval, epc;
        ferry_rv_hart_read_csr(h, 0x342, &cause);
        ferry_rv_hart_read_csr(h, 0x343, &tval);
        ferry_rv_hart_read_csr(h, 0x341, &epc);
        if (cause != 8 && cause != 9 && cause != 11) {
            GString *s = g_string_new(NULL);
            ferry_rv_hart_dump(h, s);
            fprintf(stderr, "rv-run: trap cause %" G_GUINT64_FORMAT " tval %#" G_GINT64_MODIFIER
                    "x at pc %#" G_GINT64_MODIFIER "x\n%s", cause, tval, epc, s->str);
            g_string_free(s, TRUE);
            status = 4;
            break;
        }
        uint64_t nr = ferry_rv_hart_get_reg(h, 17), a0 = ferry_rv_hart_get_reg(h, 10);
        uint64_t a1 = ferry_rv_hart_get_reg(h, 11), a2 = ferry_rv_hart_get_reg(h, 12);
        int64_t ret;
        if (nr == 64) {   /* write */
            if ((a0 != 1 && a0 != 2) || a1 >= RAM_SIZE || a2 > RAM_SIZE - a1) {
                ret = -EINVAL;
            } else {
                fflush(stdout);
                ret = write((int)a0, ram + a1, a2);
            }
        } else if (nr == 93 || nr == 94) {   /* exit, exit_group */
            status = (int)(a0 & 255);
            break;
        } else {
            ret = -ENOSYS;
        }
        ferry_rv_hart_set_reg(h, 10, (uint64_t)ret);
        ferry_rv_hart_write_csr(h, 0x341, epc + 4);
    }
    if (bench) {
        double secs = (g_get_monotonic_time() - t0) / 1e6;
        uint64_t n = ferry_rv_hart_get_instret(h);
        fprintf(stderr, "rv-run: %" G_GUINT64_FORMAT " instructions in %.3f s: %.1f MIPS\n",
                n, secs, n / secs / 1e6);
    }
    ferry_rv_hart_free(h);
    g_free(ram);
    return status;
}
