/* accel-soft.c: the software-CPU accelerator: RISC-V harts (cpu-riscv.c)
 * interpreted on one host thread each.
 *
 * A hart runs in bounded slices (SLICE instructions, about a millisecond)
 * and between slices looks at the pause/quit flags and its CLINT timer, so
 * pause, monitor commands and timer interrupts stay prompt. A hart in WFI
 * sleeps on its condition variable until its timer is due or an interrupt
 * line changes. Device accesses go to the machine's MMIO bus; an address
 * with no device raises an access fault in the guest. */
#include "vm-private.h"
#include "machine-riscv-virt-private.h"
#include "cpu-riscv-private.h"
#include "../devices/busy-poll.h"

#include <string.h>

#define SLICE 200000

typedef struct Soft Soft;

typedef struct {
    Soft *soft;
    guint index;
    FerryRvHart *hart;
    GThread *thread;
    GMutex wake_lock;
    GCond wake_cond;
    gboolean wake;               /* atomic: an interrupt line changed or a kick */
    gboolean sleeping;           /* atomic: on wake_cond, set under wake_lock */
    gint64 poll_us;              /* halt-polling window, see wait_for_interrupt */
} Hart;

struct Soft {
    FerryVm *vm;
    Hart *harts;
    guint n;
    GMutex lock;
    GCond cond;
    gboolean pause_req, quit_req;
    guint parked, live_threads;
};

static gboolean
bus_read(void *opaque, uint64_t paddr, unsigned size, uint64_t *value)
{
    FerryVm *vm = opaque;
    return ferry_bus_read(vm->mmio_bus, paddr, size, value);
}

static gboolean
bus_write(void *opaque, uint64_t paddr, unsigned size, uint64_t value)
{
    FerryVm *vm = opaque;
    return ferry_bus_write(vm->mmio_bus, paddr, size, value);
}

static uint64_t
bus_time(void *opaque)
{
    return ferry_machine_riscv_virt_mtime(opaque);
}

/* Only a sleeping hart needs the lock and the futex: a running or polling
 * one sees `wake` (or the interrupt line itself) on its own. The hart sets
 * `sleeping` and then reads `wake`; this sets `wake` and then reads
 * `sleeping` (both sequentially consistent), so one of the two sees the
 * other and no wake-up is lost. */
static void
wake_hart(Hart *h)
{
    __atomic_store_n(&h->wake, TRUE, __ATOMIC_SEQ_CST);
    if (!__atomic_load_n(&h->sleeping, __ATOMIC_SEQ_CST))
        return;
    g_mutex_lock(&h->wake_lock);
    g_cond_signal(&h->wake_cond);
    g_mutex_unlock(&h->wake_lock);
}

static gboolean
stop_requested(Soft *s)
{
    return __atomic_load_n(&s->pause_req, __ATOMIC_RELAXED) ||
           __atomic_load_n(&s->quit_req, __ATOMIC_RELAXED);
}

/* Halt polling (devices/busy-poll.h): a hart in WFI first spins for up to
 * poll_us watching its interrupt lines and sleeps only if nothing came, so
 * a guest waiting on its disk does not spend each request asleep. */
static gboolean
wfi_done(Hart *h)
{
    return ferry_rv_hart_wfi_wakeup(h->hart) || stop_requested(h->soft) ||
           __atomic_load_n(&h->wake, __ATOMIC_ACQUIRE);
}

/* Spins until wfi_done, the deadline or the window ends; TRUE if woken.
 * While it spins, the hart runs disk requests that wait in a queue for an
 * I/O thread (ferry_vm_disks_help): usually the very request it waits for. */
static gboolean
halt_poll(Hart *h, gint64 start, gint64 deadline)
{
    gint64 until = MIN(start + h->poll_us, deadline), last_yield = start;
    for (;;) {
        if (wfi_done(h))
            return TRUE;
        if (ferry_vm_disks_help(h->soft->vm))
            continue;
        gint64 now = g_get_monotonic_time();
        if (now >= until)
            return FALSE;
        ferry_poll_pause(now, &last_yield);
    }
}

/* WFI: poll, then sleep until an enabled interrupt is pending, the timer is
 * due, or the engine wants the hart. */
static void
wait_for_interrupt(Hart *h)
{
    Soft *s = h->soft;
    gint64 start = g_get_monotonic_time();

    for (;;) {
        gint64 deadline = ferry_machine_riscv_virt_poll_timer(s->vm, h->index);
        __atomic_store_n(&h->wake, FALSE, __ATOMIC_SEQ_CST);
        if (ferry_rv_hart_wfi_wakeup(h->hart) || stop_requested(s))
            break;
        if (h->poll_us && g_get_monotonic_time() < start + h->poll_us) {
            if (halt_poll(h, start, deadline))
                continue;
            if (g_get_monotonic_time() >= deadline)
                continue;                       /* the timer: poll_timer raises it */
        }
        g_mutex_lock(&h->wake_lock);
        __atomic_store_n(&h->sleeping, TRUE, __ATOMIC_SEQ_CST);
        if (!wfi_done(h)) {
            if (deadline == G_MAXINT64)
                deadline = g_get_monotonic_time() + 100 * G_TIME_SPAN_MILLISECOND;
            g_cond_wait_until(&h->wake_cond, &h->wake_lock, deadline);
        }
        __atomic_store_n(&h->sleeping, FALSE, __ATOMIC_SEQ_CST);
        g_mutex_unlock(&h->wake_lock);
    }
    ferry_poll_adapt(&h->poll_us, g_get_monotonic_time() - start);
}

static gpointer
hart_thread(gpointer data)
{
    Hart *h = data;
    Soft *s = h->soft;

    g_mutex_lock(&s->lock);
    for (;;) {
        if (s->quit_req)
            break;
        if (s->pause_req) {
            s->parked++;
            g_cond_broadcast(&s->cond);
            while (s->pause_req && !s->quit_req)
                g_cond_wait(&s->cond, &s->lock);
            s->parked--;
            continue;
        }
        g_mutex_unlock(&s->lock);

        FerryRvRunResult r = ferry_rv_hart_run(h->hart, SLICE);
        ferry_machine_riscv_virt_poll_timer(s->vm, h->index);
        if (r == FERRY_RV_RUN_WFI)
            wait_for_interrupt(h);

        g_mutex_lock(&s->lock);
    }
    s->live_threads--;
    g_cond_broadcast(&s->cond);
    g_mutex_unlock(&s->lock);
    return NULL;
}

static void
kick_all(Soft *s)
{
    for (guint i = 0; i < s->n; i++) {
        ferry_rv_hart_kick(s->harts[i].hart);
        wake_hart(&s->harts[i]);
    }
}

static void
reset_harts(Soft *s)
{
    FerryVm *vm = s->vm;
    for (guint i = 0; i < s->n; i++) {
        FerryRvHart *hart = s->harts[i].hart;
        ferry_rv_hart_reset(hart, vm->rv_entry);
        ferry_rv_hart_set_reg(hart, 10, i);               /* a0: hartid */
        ferry_rv_hart_set_reg(hart, 11, vm->rv_fdt);      /* a1: device tree */
        ferry_rv_hart_set_reg(hart, 12, vm->rv_dyninfo);  /* a2: fw_dynamic_info */
    }
}

static gboolean
spawn_threads(Soft *s, GError **error)
{
    for (guint i = 0; i < s->n; i++) {
        char name[16];
        g_snprintf(name, sizeof(name), "hart%u", i);
        g_mutex_lock(&s->lock);
        s->live_threads++;
        g_mutex_unlock(&s->lock);
        s->harts[i].thread = g_thread_try_new(name, hart_thread, &s->harts[i], error);
        if (!s->harts[i].thread) {
            g_mutex_lock(&s->lock);
            s->live_threads--;
            g_mutex_unlock(&s->lock);
            return FALSE;
        }
    }
    return TRUE;
}

static gboolean
soft_init(FerryVm *vm, GError **error)
{
    Soft *s = g_new0(Soft, 1);
    const FerryRamRegion *ram = &vm->mem.regions[0];
    FerryRvBus bus = {
        .ram = ram->host, .ram_base = ram->gpa, .ram_size = ram->size,
        .opaque = vm, .mmio_read = bus_read, .mmio_write = bus_write, .read_time = bus_time,
    };

    s->vm = vm;
    s->n = vm->config->n_cpus;
    g_mutex_init(&s->lock);
    g_cond_init(&s->cond);
    s->harts = g_new0(Hart, s->n);
    for (guint i = 0; i < s->n; i++) {
        Hart *h = &s->harts[i];
        h->soft = s;
        h->index = i;
        h->hart = ferry_rv_hart_new(&bus, i);
        g_mutex_init(&h->wake_lock);
        g_cond_init(&h->wake_cond);
    }
    vm->accel = s;
    return TRUE;
}

static gboolean
soft_start(FerryVm *vm, GError **error)
{
    Soft *s = vm->accel;
    reset_harts(s);
    return spawn_threads(s, error);
}

static void
soft_pause(FerryVm *vm)
{
    Soft *s = vm->accel;

    g_mutex_lock(&s->lock);
    __atomic_store_n(&s->pause_req, TRUE, __ATOMIC_RELAXED);
    g_mutex_unlock(&s->lock);
    kick_all(s);
    g_mutex_lock(&s->lock);
    while (s->parked < s->live_threads) {
        gint64 deadline = g_get_monotonic_time() + 20 * G_TIME_SPAN_MILLISECOND;
        if (!g_cond_wait_until(&s->cond, &s->lock, deadline)) {
            g_mutex_unlock(&s->lock);
            kick_all(s);
            g_mutex_lock(&s->lock);
        }
    }
    g_mutex_unlock(&s->lock);
}

static void
soft_resume(FerryVm *vm)
{
    Soft *s = vm->accel;
    g_mutex_lock(&s->lock);
    __atomic_store_n(&s->pause_req, FALSE, __ATOMIC_RELAXED);
    g_cond_broadcast(&s->cond);
    g_mutex_unlock(&s->lock);
}

static gboolean
soft_reset(FerryVm *vm, GError **error)
{
    /* Called paused: the threads are parked and the harts idle. */
    reset_harts(vm->accel);
    return TRUE;
}

static void
soft_set_irq(FerryVm *vm, guint line, gboolean level)
{
    Soft *s = vm->accel;
    if (!s)
        return;
    guint hart = line / FERRY_RV_LINES_PER_HART, bit = line % FERRY_RV_LINES_PER_HART;
    if (hart >= s->n)
        return;
    ferry_rv_hart_set_irq(s->harts[hart].hart, bit, level);
    if (level)
        wake_hart(&s->harts[hart]);
}

static void
soft_dump_cpus(FerryVm *vm, GString *out)
{
    Soft *s = vm->accel;
    static const char *const priv[] = { "U", "S", "?", "M" };
    for (guint i = 0; i < s->n; i++) {
        FerryRvHart *h = s->harts[i].hart;
        g_string_append_printf(out, "%c CPU #%u: pc=0x%016" G_GINT64_MODIFIER "x mode=%s instret=%" G_GUINT64_FORMAT "\n",
                               i == 0 ? '*' : ' ', i, ferry_rv_hart_get_pc(h),
                               priv[ferry_rv_hart_get_priv(h) & 3], ferry_rv_hart_get_instret(h));
    }
}

static void
soft_dump_registers(FerryVm *vm, GString *out)
{
    Soft *s = vm->accel;
    for (guint i = 0; i < s->n; i++) {
        g_string_append_printf(out, "CPU#%u\n", i);
        ferry_rv_hart_dump(s->harts[i].hart, out);
    }
}

static void
soft_destroy(FerryVm *vm)
{
    Soft *s = vm->accel;
    if (!s)
        return;
    g_mutex_lock(&s->lock);
    __atomic_store_n(&s->quit_req, TRUE, __ATOMIC_RELAXED);
    g_cond_broadcast(&s->cond);
    g_mutex_unlock(&s->lock);
    for (;;) {
        kick_all(s);
        g_mutex_lock(&s->lock);
        guint live = s->live_threads;
        g_mutex_unlock(&s->lock);
        if (!live)
            break;
        g_usleep(1000);
    }
    for (guint i = 0; i < s->n; i++) {
        if (s->harts[i].thread)
            g_thread_join(s->harts[i].thread);
        ferry_rv_hart_free(s->harts[i].hart);
        g_mutex_clear(&s->harts[i].wake_lock);
        g_cond_clear(&s->harts[i].wake_cond);
    }
    g_free(s->harts);
    g_mutex_clear(&s->lock);
    g_cond_clear(&s->cond);
    g_free(s);
    vm->accel = NULL;
}

const FerryAccelOps ferry_accel_soft = {
    .name = "soft",
    .init = soft_init,
    .start = soft_start,
    .pause = soft_pause,
    .resume = soft_resume,
    .reset = soft_reset,
    .dump_registers = soft_dump_registers,
    .dump_cpus = soft_dump_cpus,
    .set_irq = soft_set_irq,
    .destroy = soft_destroy,
};
