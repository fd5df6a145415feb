/* accel-kvm.c: the KVM accelerator (Linux KVM API, Documentation/virt/kvm/api.rst).
 *
 * One thread per vCPU loops on KVM_RUN and dispatches port and MMIO exits to
 * the machine's buses. The in-kernel irqchip (PIC, IOAPIC, LAPICs) and PIT
 * are used, so HLT, timers and IPIs (INIT-SIPI-SIPI) never leave the kernel.
 * To stop vCPUs (pause, reset, quit) the engine thread sets a flag and sends
 * SIG_KICK; the handler sets kvm_run->immediate_exit, so a kick that lands
 * just before KVM_RUN is not lost. A reset rebuilds the KVM VM around the
 * same guest RAM: every piece of in-kernel state starts at power-on. */
#include "vm-private.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/kvm.h>
#include <glib/gi18n-lib.h>

#define SIG_KICK          SIGUSR1
#define TSS_ADDR          0xFEFFD000u
#define IDENTITY_MAP_ADDR 0xFEFFC000u

typedef struct Kvm Kvm;

typedef struct {
    Kvm *kvm;
    guint index;
    int fd;
    struct kvm_run *run;
    GThread *thread;
    pthread_t tid;
    gboolean tid_valid;
    guint64 exits;
} Vcpu;

struct Kvm {
    FerryVm *vm;
    int kvm_fd, vm_fd;
    int run_size;
    guint max_vcpus;
    gboolean readonly_mem;
    struct kvm_cpuid2 *cpuid;          /* what KVM supports, patched per vCPU */
    Vcpu *vcpus;
    guint n;

    GMutex lock;
    GCond cond;
    gboolean pause_req;
    gboolean quit_req;
    guint parked;
    guint live_threads;
};

static __thread struct kvm_run *current_run;

static void
kick_handler(int sig)
{
    if (current_run)
        current_run->immediate_exit = 1;
}

static void
install_kick_handler(void)
{
    static gsize once = 0;
    if (g_once_init_enter(&once)) {
        struct sigaction sa = { .sa_handler = kick_handler };
        sigemptyset(&sa.sa_mask);
        sigaction(SIG_KICK, &sa, NULL);     /* no SA_RESTART: KVM_RUN must return */
        g_once_init_leave(&once, 1);
    }
}

/* ---- errors -------------------------------------------------------------- */

static gboolean
set_kvm_error(GError **error, const char *what)
{
    g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_HOST,
                _("KVM refused to %s: %s"), what, g_strerror(errno));
    return FALSE;
}

static gboolean
open_kvm(Kvm *kvm, const char *path, GError **error)
{
    kvm->kvm_fd = open(path, O_RDWR | O_CLOEXEC);
    if (kvm->kvm_fd < 0) {
        int err = errno;
        if (err == ENOENT)
            g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_HOST,
                        _("Cannot open %s: no such device. KVM is not available on this host: "
                        "enable virtualization (VT-x/AMD-V) in the firmware settings and load "
                        "the kvm_intel or kvm_amd module"), path);
        else if (err == EACCES || err == EPERM)
            g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_HOST,
                        _("Cannot open %s: permission denied. Add your user to the 'kvm' group "
                        "(sudo adduser $USER kvm) and log in again"), path);
        else
            g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_HOST,
                        _("Cannot open %s: %s"), path, g_strerror(err));
        return FALSE;
    }
    int version = ioctl(kvm->kvm_fd, KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION) {
        g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_HOST,
                    _("%s speaks KVM API version %d, Ferry needs %d"), path, version, KVM_API_VERSION);
        return FALSE;
    }
    static const struct { int cap; const char *name; } needed[] = {
        { KVM_CAP_IRQCHIP, "an in-kernel interrupt controller" },
        { KVM_CAP_PIT2, "an in-kernel PIT" },
        { KVM_CAP_USER_MEMORY, "user memory" },
        { KVM_CAP_IMMEDIATE_EXIT, "immediate exit" },
        { KVM_CAP_EXT_CPUID, "KVM_GET_SUPPORTED_CPUID" },
    };
    for (guint i = 0; i < G_N_ELEMENTS(needed); i++) {
        if (ioctl(kvm->kvm_fd, KVM_CHECK_EXTENSION, needed[i].cap) <= 0) {
            g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_HOST,
                        _("This host's KVM lacks %s; Ferry needs Linux 5.0 or newer"), needed[i].name);
            return FALSE;
        }
    }
    int max = ioctl(kvm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    if (max <= 0)
        max = ioctl(kvm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
    int max_id = ioctl(kvm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPU_ID);
    if (max_id > 0 && max_id < max)
        max = max_id;
    kvm->max_vcpus = max > 0 ? (guint) max : 1;
    kvm->readonly_mem = ioctl(kvm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM) > 0;
    kvm->run_size = ioctl(kvm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (kvm->run_size <= 0)
        return set_kvm_error(error, "report its vCPU area size");
    return TRUE;
}

static gboolean
load_supported_cpuid(Kvm *kvm, GError **error)
{
    for (guint nent = 128; nent <= 4096; nent *= 2) {
        struct kvm_cpuid2 *c = g_malloc0(sizeof(*c) + nent * sizeof(struct kvm_cpuid_entry2));
        c->nent = nent;
        if (ioctl(kvm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
            kvm->cpuid = c;
            return TRUE;
        }
        g_free(c);
        if (errno != E2BIG)
            return set_kvm_error(error, "report its CPUID");
    }
    return set_kvm_error(error, "report its CPUID (too many entries)");
}

/* ---- VM and vCPU creation --------------------------------------------------- */

static gboolean
add_slot(Kvm *kvm, guint slot, guint64 gpa, guint64 size, void *host, gboolean readonly, GError **error)
{
    struct kvm_userspace_memory_region r = {
        .slot = slot,
        .flags = (readonly && kvm->readonly_mem) ? KVM_MEM_READONLY : 0,
        .guest_phys_addr = gpa,
        .memory_size = size,
        .userspace_addr = (guint64) (uintptr_t) host,
    };
    if (ioctl(kvm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
        return set_kvm_error(error, "map guest memory");
    return TRUE;
}

static void
patch_cpuid(Kvm *kvm, struct kvm_cpuid2 *c, guint index)
{
    guint32 apic_id = index;
    guint n = kvm->n;
    guint shift = 0;

    while ((1u << shift) < n)
        shift++;
    for (guint i = 0; i < c->nent; i++) {
        struct kvm_cpuid_entry2 *e = &c->entries[i];
        switch (e->function) {
        case 1:
            /* Initial APIC ID and the logical count; the hypervisor bit. */
            e->ebx = (e->ebx & 0x0000FFFF) | (MIN(n, 255u) << 16) | ((apic_id & 0xFF) << 24);
            e->ecx |= 1u << 31;
            if (n > 1)
                e->edx |= 1u << 28;
            break;
        case 0xB:
        case 0x1F:
            /* Extended topology: one thread per core, n cores per package. */
            if (e->index == 0) {
                e->eax = 0;
                e->ebx = 1;
                e->ecx = (1u << 8) | 0;
            } else if (e->index == 1) {
                e->eax = shift;
                e->ebx = n;
                e->ecx = (2u << 8) | 1;
            } else {
                e->eax = e->ebx = 0;
                e->ecx = e->index;
            }
            e->edx = apic_id;
            break;
        }
    }
}

static gboolean
ensure_topology_leaves(Kvm *kvm)
{
    /* KVM lists leaf 0xB with index 0 only; add indexes 1 and 2 so a guest
     * sees a core level. Done once on the shared template. */
    gboolean have[3] = { FALSE, FALSE, FALSE };
    for (guint i = 0; i < kvm->cpuid->nent; i++)
        if (kvm->cpuid->entries[i].function == 0xB && kvm->cpuid->entries[i].index < 3)
            have[kvm->cpuid->entries[i].index] = TRUE;
    if (!have[0])
        return TRUE;        /* no leaf 0xB on this host: leave it so */
    guint add = !have[1] + !have[2];
    if (!add)
        return TRUE;
    guint old = kvm->cpuid->nent;
    kvm->cpuid = g_realloc(kvm->cpuid, sizeof(struct kvm_cpuid2) + (old + add) * sizeof(struct kvm_cpuid_entry2));
    for (guint idx = 1; idx < 3; idx++) {
        if (have[idx])
            continue;
        struct kvm_cpuid_entry2 *e = &kvm->cpuid->entries[kvm->cpuid->nent++];
        memset(e, 0, sizeof(*e));
        e->function = 0xB;
        e->index = idx;
        e->flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
    }
    return TRUE;
}

static gboolean
create_vcpu(Kvm *kvm, Vcpu *v, guint index, GError **error)
{
    v->kvm = kvm;
    v->index = index;
    v->fd = ioctl(kvm->vm_fd, KVM_CREATE_VCPU, (unsigned long) index);
    if (v->fd < 0)
        return set_kvm_error(error, "create a vCPU");
    fcntl(v->fd, F_SETFD, FD_CLOEXEC);
    v->run = mmap(NULL, kvm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
    if (v->run == MAP_FAILED) {
        v->run = NULL;
        return set_kvm_error(error, "map a vCPU's run area");
    }
    gsize sz = sizeof(struct kvm_cpuid2) + kvm->cpuid->nent * sizeof(struct kvm_cpuid_entry2);
    g_autofree struct kvm_cpuid2 *c = g_memdup2(kvm->cpuid, sz);
    patch_cpuid(kvm, c, index);
    if (ioctl(v->fd, KVM_SET_CPUID2, c) < 0)
        return set_kvm_error(error, "accept the vCPU's CPUID");
    return TRUE;
}

static void
destroy_vcpus_and_vm(Kvm *kvm)
{
    for (guint i = 0; i < kvm->n; i++) {
        Vcpu *v = &kvm->vcpus[i];
        if (v->run)
            munmap(v->run, kvm->run_size);
        if (v->fd >= 0)
            close(v->fd);
        v->run = NULL;
        v->fd = -1;
    }
    if (kvm->vm_fd >= 0)
        close(kvm->vm_fd);
    kvm->vm_fd = -1;
}

static gboolean apply_entry_state(Kvm *kvm, GError **error);

static gboolean
create_machine(Kvm *kvm, GError **error)
{
    FerryVm *vm = kvm->vm;

    kvm->vm_fd = ioctl(kvm->kvm_fd, KVM_CREATE_VM, 0);
    if (kvm->vm_fd < 0)
        return set_kvm_error(error, "create a VM");
    fcntl(kvm->vm_fd, F_SETFD, FD_CLOEXEC);
    if (ioctl(kvm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long) TSS_ADDR) < 0)
        return set_kvm_error(error, "place its TSS");
    guint64 idmap = IDENTITY_MAP_ADDR;
    if (ioctl(kvm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0 && errno != EINVAL)
        return set_kvm_error(error, "place its identity map");
    for (guint i = 0; i < vm->mem.n_regions; i++) {
        const FerryRamRegion *r = &vm->mem.regions[i];
        if (!add_slot(kvm, i, r->gpa, r->size, r->host, FALSE, error))
            return FALSE;
    }
    gsize bios_size = 0;
    const guint8 *bios = ferry_machine_pc_get_bios(vm, &bios_size);
    if (bios && !add_slot(kvm, vm->mem.n_regions, (4ULL << 30) - bios_size, bios_size,
                          (void *) bios, TRUE, error))
        return FALSE;
    if (ioctl(kvm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
        return set_kvm_error(error, "create the in-kernel interrupt controller");
    struct kvm_pit_config pit = { .flags = 0 };
    if (ioctl(kvm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
        return set_kvm_error(error, "create the in-kernel PIT");
    if (kvm->n > 255) {
        /* Past 255 CPUs the APIC IDs need 32 bits (x2APIC). */
        struct kvm_enable_cap cap = {
            .cap = KVM_CAP_X2APIC_API,
            .args[0] = KVM_X2APIC_API_USE_32BIT_IDS | KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK,
        };
        if (ioctl(kvm->vm_fd, KVM_ENABLE_CAP, &cap) < 0)
            return set_kvm_error(error, "enable 32-bit x2APIC IDs for more than 255 vCPUs");
    }
    for (guint i = 0; i < kvm->n; i++)
        if (!create_vcpu(kvm, &kvm->vcpus[i], i, error))
            return FALSE;
    return TRUE;
}

/* ---- boot state ------------------------------------------------------------- */

static void
flat_segment(struct kvm_segment *s, guint16 sel, gboolean code, gboolean long_mode)
{
    memset(s, 0, sizeof(*s));
    s->base = 0;
    s->limit = 0xFFFFFFFF;
    s->selector = sel;
    s->type = code ? 0xB : 0x3;        /* execute/read accessed, read/write accessed */
    s->present = 1;
    s->s = 1;
    s->g = 1;
    s->l = code && long_mode;
    s->db = !(code && long_mode);
}

static gboolean
apply_entry_state(Kvm *kvm, GError **error)
{
    FerryVm *vm = kvm->vm;
    const FerryX86EntryState *e = &vm->x86_entry;
    Vcpu *bsp = &kvm->vcpus[0];
    struct kvm_sregs sregs;
    struct kvm_regs regs;

    if (!vm->have_x86_entry)
        return TRUE;            /* firmware boot: KVM's reset state is the reset vector */
    if (ioctl(bsp->fd, KVM_GET_SREGS, &sregs) < 0)
        return set_kvm_error(error, "report the boot CPU's state");
    flat_segment(&sregs.cs, e->cs_sel, TRUE, e->long_mode);
    flat_segment(&sregs.ds, e->ds_sel, FALSE, e->long_mode);
    sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
    sregs.gdt.base = e->gdt_base;
    sregs.gdt.limit = e->gdt_limit;
    sregs.idt.base = 0;
    sregs.idt.limit = 0;
    sregs.cr0 = e->cr0;
    sregs.cr3 = e->cr3;
    sregs.cr4 = e->cr4;
    sregs.efer = e->efer;
    /* A usable TR is required to enter the guest on VMX. */
    memset(&sregs.tr, 0, sizeof(sregs.tr));
    sregs.tr.type = 0xB;
    sregs.tr.present = 1;
    sregs.tr.limit = 0xFFFF;
    memset(&sregs.ldt, 0, sizeof(sregs.ldt));
    sregs.ldt.type = 0x2;
    sregs.ldt.present = 1;
    sregs.ldt.limit = 0xFFFF;
    if (ioctl(bsp->fd, KVM_SET_SREGS, &sregs) < 0)
        return set_kvm_error(error, "set the boot CPU's segments");
    memset(&regs, 0, sizeof(regs));
    regs.rip = e->rip;
    regs.rsp = e->rsp;
    regs.rsi = e->rsi;
    regs.rbx = e->rbx;
    regs.rflags = 0x2;
    if (ioctl(bsp->fd, KVM_SET_REGS, &regs) < 0)
        return set_kvm_error(error, "set the boot CPU's registers");
    return TRUE;
}

/* ---- the vCPU thread -------------------------------------------------------- */

static void
park_for_error(Kvm *kvm)
{
    /* Nothing more to run on this vCPU until the engine acts. */
    g_mutex_lock(&kvm->lock);
    kvm->pause_req = TRUE;
    g_mutex_unlock(&kvm->lock);
}

static void
report_internal_error(Vcpu *v)
{
    struct kvm_regs regs = { 0 };
    const char *kind;

    ioctl(v->fd, KVM_GET_REGS, &regs);
    switch (v->run->internal.suberror) {
    case KVM_INTERNAL_ERROR_EMULATION: kind = "emulation failure"; break;
    case KVM_INTERNAL_ERROR_SIMUL_EX: kind = "exception during exception delivery"; break;
    case KVM_INTERNAL_ERROR_DELIVERY_EV: kind = "event delivery failure"; break;
    default: kind = "unexpected exit"; break;
    }
    g_autofree char *msg = g_strdup_printf(
        "KVM internal error (%s) at RIP 0x%" G_GINT64_MODIFIER "x on vCPU %u: "
        "this host's KVM cannot run this guest", kind, (guint64) regs.rip, v->index);
    park_for_error(v->kvm);
    ferry_vm_request_error(v->kvm->vm, msg);
}

static void
handle_io(Vcpu *v)
{
    struct kvm_run *run = v->run;
    guint8 *p = (guint8 *) run + run->io.data_offset;
    FerryBus *bus = v->kvm->vm->io_bus;
    unsigned size = run->io.size;

    for (guint i = 0; i < run->io.count; i++, p += size) {
        if (run->io.direction == KVM_EXIT_IO_OUT) {
            guint64 val = 0;
            memcpy(&val, p, size);
            ferry_bus_write(bus, run->io.port, size, val);
        } else {
            guint64 val = 0;
            ferry_bus_read(bus, run->io.port, size, &val);
            memcpy(p, &val, size);
        }
    }
}

static void
handle_mmio(Vcpu *v)
{
    struct kvm_run *run = v->run;
    FerryBus *bus = v->kvm->vm->mmio_bus;
    unsigned len = MIN(run->mmio.len, 8u);
    guint64 val = 0;

    if (run->mmio.is_write) {
        memcpy(&val, run->mmio.data, len);
        ferry_bus_write(bus, run->mmio.phys_addr, len, val);
    } else {
        ferry_bus_read(bus, run->mmio.phys_addr, len, &val);
        memcpy(run->mmio.data, &val, len);
    }
}

/* Returns FALSE when the vCPU must stop running (the engine was told). */
static gboolean
handle_exit(Vcpu *v)
{
    struct kvm_run *run = v->run;
    Kvm *kvm = v->kvm;

    v->exits++;
    switch (run->exit_reason) {
    case KVM_EXIT_IO:
        handle_io(v);
        return TRUE;
    case KVM_EXIT_MMIO:
        handle_mmio(v);
        return TRUE;
    case KVM_EXIT_HLT:
        return TRUE;
    case KVM_EXIT_SHUTDOWN:
        /* A triple fault: a PC resets. */
        park_for_error(kvm);
        ferry_vm_request_reset(kvm->vm, "triple fault");
        return FALSE;
    case KVM_EXIT_SYSTEM_EVENT:
        park_for_error(kvm);
        if (run->system_event.type == KVM_SYSTEM_EVENT_RESET)
            ferry_vm_request_reset(kvm->vm, "system event: reset");
        else if (run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN)
            ferry_vm_request_poweroff(kvm->vm, "system event: shutdown");
        else
            ferry_vm_request_error(kvm->vm, "The guest crashed (KVM system event)");
        return FALSE;
    case KVM_EXIT_INTERNAL_ERROR:
        report_internal_error(v);
        return FALSE;
    case KVM_EXIT_FAIL_ENTRY: {
        g_autofree char *msg = g_strdup_printf(
            "KVM could not enter the guest on vCPU %u (hardware entry failure reason 0x%"
            G_GINT64_MODIFIER "x): this host's KVM cannot run this guest",
            v->index, (guint64) run->fail_entry.hardware_entry_failure_reason);
        park_for_error(kvm);
        ferry_vm_request_error(kvm->vm, msg);
        return FALSE;
    }
    default: {
        struct kvm_regs regs = { 0 };
        ioctl(v->fd, KVM_GET_REGS, &regs);
        g_autofree char *msg = g_strdup_printf(
            "Unhandled KVM exit (reason %u) at RIP 0x%" G_GINT64_MODIFIER "x on vCPU %u: "
            "stopping the VM", run->exit_reason, (guint64) regs.rip, v->index);
        park_for_error(kvm);
        ferry_vm_request_error(kvm->vm, msg);
        return FALSE;
    }
    }
}

static gpointer
vcpu_thread(gpointer data)
{
    Vcpu *v = data;
    Kvm *kvm = v->kvm;

    sigset_t kick;
    sigemptyset(&kick);
    sigaddset(&kick, SIG_KICK);
    /* The thread inherits the mask of whoever started the VM: the kick must
     * get through even if that thread blocks it. */
    pthread_sigmask(SIG_UNBLOCK, &kick, NULL);
    current_run = v->run;
    g_mutex_lock(&kvm->lock);
    v->tid = pthread_self();
    v->tid_valid = TRUE;
    for (;;) {
        if (kvm->quit_req)
            break;
        if (kvm->pause_req) {
            kvm->parked++;
            g_cond_broadcast(&kvm->cond);
            while (kvm->pause_req && !kvm->quit_req)
                g_cond_wait(&kvm->cond, &kvm->lock);
            kvm->parked--;
            continue;
        }
        g_mutex_unlock(&kvm->lock);

        int r = ioctl(v->fd, KVM_RUN, 0);
        gboolean go_on = TRUE;
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                v->run->immediate_exit = 0;
            } else {
                g_autofree char *msg = g_strdup_printf("KVM_RUN failed on vCPU %u: %s",
                                                       v->index, g_strerror(errno));
                park_for_error(kvm);
                ferry_vm_request_error(kvm->vm, msg);
                go_on = FALSE;
            }
        } else {
            go_on = handle_exit(v);
        }
        g_mutex_lock(&kvm->lock);
        (void) go_on;   /* a stopping vCPU parks through pause_req, set above */
    }
    v->tid_valid = FALSE;
    kvm->live_threads--;
    g_cond_broadcast(&kvm->cond);
    g_mutex_unlock(&kvm->lock);
    current_run = NULL;
    return NULL;
}

/* Not with kvm->lock held. */
static void
kick_all(Kvm *kvm)
{
    g_mutex_lock(&kvm->lock);
    for (guint i = 0; i < kvm->n; i++) {
        Vcpu *v = &kvm->vcpus[i];
        if (v->tid_valid)
            pthread_kill(v->tid, SIG_KICK);
    }
    g_mutex_unlock(&kvm->lock);
}

static gboolean
spawn_threads(Kvm *kvm, GError **error)
{
    g_mutex_lock(&kvm->lock);
    kvm->quit_req = FALSE;
    g_mutex_unlock(&kvm->lock);
    for (guint i = 0; i < kvm->n; i++) {
        Vcpu *v = &kvm->vcpus[i];
        char name[16];
        g_snprintf(name, sizeof(name), "vcpu%u", i);
        g_mutex_lock(&kvm->lock);
        kvm->live_threads++;
        g_mutex_unlock(&kvm->lock);
        v->thread = g_thread_try_new(name, vcpu_thread, v, error);
        if (!v->thread) {
            g_mutex_lock(&kvm->lock);
            kvm->live_threads--;
            g_mutex_unlock(&kvm->lock);
            return FALSE;
        }
    }
    return TRUE;
}

static void
join_threads(Kvm *kvm)
{
    g_mutex_lock(&kvm->lock);
    kvm->quit_req = TRUE;
    g_cond_broadcast(&kvm->cond);
    g_mutex_unlock(&kvm->lock);
    /* Kick until every thread is out: one may be entering KVM_RUN. */
    for (;;) {
        g_mutex_lock(&kvm->lock);
        guint live = kvm->live_threads;
        g_mutex_unlock(&kvm->lock);
        if (!live)
            break;
        kick_all(kvm);
        g_usleep(1000);
    }
    for (guint i = 0; i < kvm->n; i++) {
        if (kvm->vcpus[i].thread)
            g_thread_join(kvm->vcpus[i].thread);
        kvm->vcpus[i].thread = NULL;
    }
}

/* ---- the FerryAccelOps ---------------------------------------------------- */

static gboolean
kvm_init(FerryVm *vm, GError **error)
{
    Kvm *kvm = g_new0(Kvm, 1);
    const char *path = vm->config->kvm_device ? vm->config->kvm_device : "/dev/kvm";

    kvm->vm = vm;
    kvm->kvm_fd = kvm->vm_fd = -1;
    g_mutex_init(&kvm->lock);
    g_cond_init(&kvm->cond);
    vm->accel = kvm;
    install_kick_handler();
    if (!open_kvm(kvm, path, error) || !load_supported_cpuid(kvm, error))
        goto fail;
    ensure_topology_leaves(kvm);
    if (vm->config->n_cpus > kvm->max_vcpus) {
        g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                    _("%u vCPUs is more than this host's KVM allows (%u): choose at most %u"),
                    vm->config->n_cpus, kvm->max_vcpus, kvm->max_vcpus);
        goto fail;
    }
    kvm->n = vm->config->n_cpus;
    kvm->vcpus = g_new0(Vcpu, kvm->n);
    for (guint i = 0; i < kvm->n; i++)
        kvm->vcpus[i].fd = -1;
    if (!create_machine(kvm, error))
        goto fail;
    return TRUE;

fail:
    vm->accel_ops->destroy(vm);
    vm->accel = NULL;
    return FALSE;
}

static gboolean
kvm_start(FerryVm *vm, GError **error)
{
    Kvm *kvm = vm->accel;
    /* load() has placed the boot state by now. */
    if (!apply_entry_state(kvm, error))
        return FALSE;
    return spawn_threads(kvm, error);
}

static void
kvm_pause(FerryVm *vm)
{
    Kvm *kvm = vm->accel;

    g_mutex_lock(&kvm->lock);
    kvm->pause_req = TRUE;
    g_mutex_unlock(&kvm->lock);
    kick_all(kvm);
    g_mutex_lock(&kvm->lock);
    while (kvm->parked < kvm->live_threads) {
        gint64 deadline = g_get_monotonic_time() + 20 * G_TIME_SPAN_MILLISECOND;
        if (!g_cond_wait_until(&kvm->cond, &kvm->lock, deadline)) {
            /* A vCPU between its check and KVM_RUN when the kick came:
             * the handler set immediate_exit, but kick again to be sure. */
            g_mutex_unlock(&kvm->lock);
            kick_all(kvm);
            g_mutex_lock(&kvm->lock);
        }
    }
    g_mutex_unlock(&kvm->lock);
}

static void
kvm_resume(FerryVm *vm)
{
    Kvm *kvm = vm->accel;
    g_mutex_lock(&kvm->lock);
    kvm->pause_req = FALSE;
    g_cond_broadcast(&kvm->cond);
    g_mutex_unlock(&kvm->lock);
}

static gboolean
kvm_reset(FerryVm *vm, GError **error)
{
    Kvm *kvm = vm->accel;

    /* Called paused: threads are parked; end them, rebuild, park new ones. */
    join_threads(kvm);
    destroy_vcpus_and_vm(kvm);
    g_mutex_lock(&kvm->lock);
    kvm->pause_req = TRUE;
    g_mutex_unlock(&kvm->lock);
    if (!create_machine(kvm, error) || !apply_entry_state(kvm, error) || !spawn_threads(kvm, error))
        return FALSE;
    kvm_pause(vm);      /* wait for the new threads to park */
    return TRUE;
}

static void
kvm_set_irq(FerryVm *vm, guint gsi, gboolean level)
{
    Kvm *kvm = vm->accel;
    if (!kvm || kvm->vm_fd < 0)
        return;
    struct kvm_irq_level l = { .irq = gsi, .level = level ? 1 : 0 };
    ioctl(kvm->vm_fd, KVM_IRQ_LINE, &l);
}

static const char *
mp_state_name(guint32 s)
{
    switch (s) {
    case KVM_MP_STATE_RUNNABLE: return "running";
    case KVM_MP_STATE_UNINITIALIZED: return "waiting for INIT";
    case KVM_MP_STATE_INIT_RECEIVED: return "waiting for SIPI";
    case KVM_MP_STATE_HALTED: return "halted";
    case KVM_MP_STATE_SIPI_RECEIVED: return "SIPI received";
    default: return "unknown";
    }
}

static void
kvm_dump_cpus(FerryVm *vm, GString *out)
{
    Kvm *kvm = vm->accel;
    for (guint i = 0; i < kvm->n; i++) {
        Vcpu *v = &kvm->vcpus[i];
        struct kvm_regs regs = { 0 };
        struct kvm_mp_state mp = { 0 };
        ioctl(v->fd, KVM_GET_REGS, &regs);
        ioctl(v->fd, KVM_GET_MP_STATE, &mp);
        g_string_append_printf(out, "%c CPU #%u: pc=0x%016" G_GINT64_MODIFIER "x (%s) exits=%" G_GUINT64_FORMAT "\n",
                               i == 0 ? '*' : ' ', i, (guint64) regs.rip, mp_state_name(mp.mp_state), v->exits);
    }
}

static void
dump_seg(GString *out, const char *name, const struct kvm_segment *s)
{
    g_string_append_printf(out, "%-3s =%04x %016" G_GINT64_MODIFIER "x %08x type=%x dpl=%u l=%u db=%u p=%u\n",
                           name, s->selector, (guint64) s->base, s->limit, s->type, s->dpl, s->l, s->db, s->present);
}

static void
kvm_dump_registers(FerryVm *vm, GString *out)
{
    Kvm *kvm = vm->accel;
    for (guint i = 0; i < kvm->n; i++) {
        Vcpu *v = &kvm->vcpus[i];
        struct kvm_regs r = { 0 };
        struct kvm_sregs s = { 0 };
        if (ioctl(v->fd, KVM_GET_REGS, &r) < 0 || ioctl(v->fd, KVM_GET_SREGS, &s) < 0) {
            g_string_append_printf(out, "CPU#%u: registers unavailable: %s\n", i, g_strerror(errno));
            continue;
        }
        g_string_append_printf(out, "CPU#%u\n", i);
        g_string_append_printf(out,
            "RAX=%016llx RBX=%016llx RCX=%016llx RDX=%016llx\n"
            "RSI=%016llx RDI=%016llx RBP=%016llx RSP=%016llx\n"
            "R8 =%016llx R9 =%016llx R10=%016llx R11=%016llx\n"
            "R12=%016llx R13=%016llx R14=%016llx R15=%016llx\n"
            "RIP=%016llx RFL=%08llx\n",
            r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp,
            r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rip, r.rflags);
        dump_seg(out, "ES", &s.es);
        dump_seg(out, "CS", &s.cs);
        dump_seg(out, "SS", &s.ss);
        dump_seg(out, "DS", &s.ds);
        dump_seg(out, "FS", &s.fs);
        dump_seg(out, "GS", &s.gs);
        dump_seg(out, "TR", &s.tr);
        g_string_append_printf(out, "GDT=     %016llx %08x\nIDT=     %016llx %08x\n",
                               s.gdt.base, s.gdt.limit, s.idt.base, s.idt.limit);
        g_string_append_printf(out, "CR0=%08llx CR2=%016llx CR3=%016llx CR4=%08llx EFER=%016llx\n",
                               s.cr0, s.cr2, s.cr3, s.cr4, s.efer);
    }
}

static void
kvm_destroy(FerryVm *vm)
{
    Kvm *kvm = vm->accel;
    if (!kvm)
        return;
    if (kvm->vcpus)
        join_threads(kvm);
    destroy_vcpus_and_vm(kvm);
    if (kvm->kvm_fd >= 0)
        close(kvm->kvm_fd);
    g_free(kvm->vcpus);
    g_free(kvm->cpuid);
    g_mutex_clear(&kvm->lock);
    g_cond_clear(&kvm->cond);
    g_free(kvm);
    vm->accel = NULL;
}

const FerryAccelOps ferry_accel_kvm = {
    .name = "kvm",
    .init = kvm_init,
    .start = kvm_start,
    .pause = kvm_pause,
    .resume = kvm_resume,
    .reset = kvm_reset,
    .dump_registers = kvm_dump_registers,
    .dump_cpus = kvm_dump_cpus,
    .set_irq = kvm_set_irq,
    .destroy = kvm_destroy,
};
