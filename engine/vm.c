/* vm.c: the VM handle, its engine thread and the events back to the caller.
 *
 * The caller's thread only queues work onto the engine thread's GMainContext
 * (g_main_context_invoke_full) and never waits for the guest. The engine
 * thread owns the run state; vCPU threads ask it to act through the
 * ferry_vm_request_* functions. */
#include "vm-private.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib/gi18n-lib.h>

/* ---- config ---------------------------------------------------------------- */

void
ferry_vm_config_init(FerryVmConfig *config)
{
    memset(config, 0, sizeof(*config));
    config->arch = FERRY_ARCH_X86_64;
    config->memory_bytes = 128ULL << 20;
    config->n_cpus = 1;
    config->serial = FERRY_SERIAL_EVENT;
}

static void
drive_copy(FerryDriveConfig *to, const FerryDriveConfig *from)
{
    to->path = g_strdup(from->path);
    to->format = g_strdup(from->format);
    to->readonly = from->readonly;
}

static void
drive_clear(FerryDriveConfig *d)
{
    g_clear_pointer(&d->path, g_free);
    g_clear_pointer(&d->format, g_free);
}

FerryVmConfig *
ferry_vm_config_copy(const FerryVmConfig *c)
{
    FerryVmConfig *n = g_memdup2(c, sizeof(*c));
    n->bios_path = g_strdup(c->bios_path);
    n->kernel_path = g_strdup(c->kernel_path);
    n->initrd_path = g_strdup(c->initrd_path);
    n->cmdline = g_strdup(c->cmdline);
    n->serial_path = g_strdup(c->serial_path);
    n->monitor_path = g_strdup(c->monitor_path);
    n->kvm_device = g_strdup(c->kvm_device);
    n->data_dir = g_strdup(c->data_dir);
    for (guint i = 0; i < FERRY_MAX_DISKS; i++)
        drive_copy(&n->disks[i], &c->disks[i]);
    for (guint i = 0; i < FERRY_MAX_FLOPPIES; i++)
        drive_copy(&n->floppies[i], &c->floppies[i]);
    drive_copy(&n->cdrom, &c->cdrom);
    return n;
}

void
ferry_vm_config_clear(FerryVmConfig *c)
{
    g_clear_pointer(&c->bios_path, g_free);
    g_clear_pointer(&c->kernel_path, g_free);
    g_clear_pointer(&c->initrd_path, g_free);
    g_clear_pointer(&c->cmdline, g_free);
    g_clear_pointer(&c->serial_path, g_free);
    g_clear_pointer(&c->monitor_path, g_free);
    g_clear_pointer(&c->kvm_device, g_free);
    g_clear_pointer(&c->data_dir, g_free);
    for (guint i = 0; i < FERRY_MAX_DISKS; i++)
        drive_clear(&c->disks[i]);
    for (guint i = 0; i < FERRY_MAX_FLOPPIES; i++)
        drive_clear(&c->floppies[i]);
    drive_clear(&c->cdrom);
}

void
ferry_vm_config_free(FerryVmConfig *c)
{
    if (!c)
        return;
    ferry_vm_config_clear(c);
    g_free(c);
}

const char *
ferry_arch_to_string(FerryArch arch)
{
    switch (arch) {
    case FERRY_ARCH_X86_64: return "x86_64";
    case FERRY_ARCH_RISCV64: return "riscv64";
    }
    return "unknown";
}

gboolean
ferry_arch_from_string(const char *s, FerryArch *out)
{
    if (!g_strcmp0(s, "x86_64") || !g_strcmp0(s, "x86-64") || !g_strcmp0(s, "amd64")) {
        *out = FERRY_ARCH_X86_64;
        return TRUE;
    }
    if (!g_strcmp0(s, "riscv64") || !g_strcmp0(s, "rv64")) {
        *out = FERRY_ARCH_RISCV64;
        return TRUE;
    }
    return FALSE;
}

gboolean
ferry_parse_memory_size(const char *s, guint64 *bytes)
{
    char *end = NULL;
    guint64 v, shift = 20;

    if (!s || !g_ascii_isdigit(*s))
        return FALSE;
    errno = 0;
    v = g_ascii_strtoull(s, &end, 10);
    if (errno || end == s)
        return FALSE;
    switch (g_ascii_toupper(*end)) {
    case '\0': shift = 20; break;
    case 'K': shift = 10; end++; break;
    case 'M': shift = 20; end++; break;
    case 'G': shift = 30; end++; break;
    case 'T': shift = 40; end++; break;
    default: return FALSE;
    }
    if (*end == 'i' || *end == 'I')
        end++;
    if ((*end == 'B' || *end == 'b'))
        end++;
    if (*end != '\0' || v == 0 || v > (G_MAXUINT64 >> shift))
        return FALSE;
    *bytes = v << shift;
    return TRUE;
}

const char *
ferry_vm_state_to_string(FerryVmState state)
{
    switch (state) {
    case FERRY_VM_STATE_CREATED: return "created";
    case FERRY_VM_STATE_RUNNING: return "running";
    case FERRY_VM_STATE_PAUSED: return "paused";
    case FERRY_VM_STATE_STOPPED: return "stopped";
    }
    return "unknown";
}

/* ---- references and caller-side events ------------------------------------ */

static FerryVm *
vm_ref(FerryVm *vm)
{
    g_atomic_int_inc(&vm->ref);
    return vm;
}

static void vm_unref(gpointer data);

FerryVm *
ferry_vm_ref(FerryVm *vm)
{
    return vm_ref(vm);
}

void
ferry_vm_unref(gpointer vm)
{
    vm_unref(vm);
}

/* Frees what the VM holds outside this struct (RAM, devices, sockets).
 * Called once no engine or vCPU thread runs: from ferry_vm_free(), so a
 * socket path is gone when it returns, or from the last unref. */
static void
teardown(FerryVm *vm)
{
    if (vm->accel_ops && vm->accel) {
        ferry_vm_disks_drain(vm);
        vm->accel_ops->destroy(vm);
        vm->accel = NULL;
    }
    if (vm->machine_ops && vm->machine_ops->destroy)
        vm->machine_ops->destroy(vm);
    ferry_vm_disks_close(vm);
    g_clear_pointer(&vm->serial_chr, ferry_chardev_free);
    g_clear_pointer(&vm->monitor_chr, ferry_chardev_free);
    g_clear_pointer(&vm->io_bus, ferry_bus_free);
    g_clear_pointer(&vm->mmio_bus, ferry_bus_free);
}

static void
vm_unref(gpointer data)
{
    FerryVm *vm = data;

    if (!g_atomic_int_dec_and_test(&vm->ref))
        return;
    teardown(vm);
    if (vm->monitor_line)
        g_string_free(vm->monitor_line, TRUE);
    g_byte_array_unref(vm->serial_pending);
    g_mutex_clear(&vm->state_lock);
    g_mutex_clear(&vm->serial_lock);
    g_mutex_clear(&vm->disk_jobs_lock);
    if (vm->ctx)
        g_main_context_unref(vm->ctx);
    if (vm->loop)
        g_main_loop_unref(vm->loop);
    g_main_context_unref(vm->caller_ctx);
    ferry_vm_config_free(vm->config);
    g_free(vm);
}

typedef enum { EV_STATE, EV_FAILED, EV_RESET, EV_MONITOR } EventKind;

typedef struct {
    FerryVm *vm;
    EventKind kind;
    FerryVmState state;
    GError *error;
    char *text;
    gboolean quit;
    FerryMonitorReply reply;
    gpointer reply_data;
} Event;

static gboolean
dispatch_event(gpointer data)
{
    Event *ev = data;
    FerryVm *vm = ev->vm;

    if (!vm->alive)
        return G_SOURCE_REMOVE;
    switch (ev->kind) {
    case EV_STATE:
        if (vm->events.state_changed)
            vm->events.state_changed(vm, ev->state, vm->user_data);
        break;
    case EV_FAILED:
        if (vm->events.failed)
            vm->events.failed(vm, ev->error, vm->user_data);
        break;
    case EV_RESET:
        if (vm->events.guest_reset)
            vm->events.guest_reset(vm, vm->user_data);
        break;
    case EV_MONITOR:
        if (ev->reply)
            ev->reply(vm, ev->text, ev->quit, ev->reply_data);
        break;
    }
    return G_SOURCE_REMOVE;
}

static void
free_event(gpointer data)
{
    Event *ev = data;
    if (ev->error)
        g_error_free(ev->error);
    g_free(ev->text);
    vm_unref(ev->vm);
    g_free(ev);
}

/* Queues func on ctx. Unlike g_main_context_invoke_full() it never runs
 * func at once on the calling thread: a vCPU thread must not run the
 * caller's callbacks when ctx happens to be the global default context. */
static void
post_idle(GMainContext *ctx, GSourceFunc func, gpointer data, GDestroyNotify notify)
{
    GSource *src = g_idle_source_new();
    g_source_set_priority(src, G_PRIORITY_DEFAULT);
    g_source_set_callback(src, func, data, notify);
    g_source_attach(src, ctx);
    g_source_unref(src);
}

static void
post_event(FerryVm *vm, Event *ev)
{
    ev->vm = vm_ref(vm);
    post_idle(vm->caller_ctx, dispatch_event, ev, free_event);
}

static void
set_state(FerryVm *vm, FerryVmState state)
{
    g_mutex_lock(&vm->state_lock);
    gboolean changed = vm->state != state;
    vm->state = state;
    g_mutex_unlock(&vm->state_lock);
    if (changed) {
        Event *ev = g_new0(Event, 1);
        ev->kind = EV_STATE;
        ev->state = state;
        post_event(vm, ev);
    }
}

FerryVmState
ferry_vm_state_locked_get(FerryVm *vm)
{
    g_mutex_lock(&vm->state_lock);
    FerryVmState s = vm->state;
    g_mutex_unlock(&vm->state_lock);
    return s;
}

FerryVmState
ferry_vm_get_state(FerryVm *vm)
{
    return ferry_vm_state_locked_get(vm);
}

FerryVmStopReason
ferry_vm_get_stop_reason(FerryVm *vm)
{
    g_mutex_lock(&vm->state_lock);
    FerryVmStopReason r = vm->stop_reason;
    g_mutex_unlock(&vm->state_lock);
    return r;
}

const FerryVmConfig *
ferry_vm_get_config(FerryVm *vm)
{
    return vm->config;
}

const char *
ferry_vm_get_serial_path(FerryVm *vm)
{
    return vm->serial_chr ? ferry_chardev_get_path(vm->serial_chr) : NULL;
}

/* ---- serial output, batched ------------------------------------------------ */

static gboolean
flush_serial(gpointer data)
{
    FerryVm *vm = data;
    GBytes *bytes = NULL;

    g_mutex_lock(&vm->serial_lock);
    vm->serial_flush_scheduled = FALSE;
    if (vm->serial_pending->len) {
        bytes = g_bytes_new(vm->serial_pending->data, vm->serial_pending->len);
        g_byte_array_set_size(vm->serial_pending, 0);
    }
    g_mutex_unlock(&vm->serial_lock);
    if (bytes && vm->alive && vm->events.serial_output)
        vm->events.serial_output(vm, 0, bytes, vm->user_data);
    if (bytes)
        g_bytes_unref(bytes);
    return G_SOURCE_REMOVE;
}

/* vCPU thread, under the UART's lock: one event per batch, not per byte. */
static void
serial_to_caller(const guint8 *data, gsize len, gpointer user_data)
{
    FerryVm *vm = user_data;
    gboolean schedule;

    g_mutex_lock(&vm->serial_lock);
    /* A caller that stops reading must not make us grow without bound. */
    if (vm->serial_pending->len < (4u << 20))
        g_byte_array_append(vm->serial_pending, data, len);
    schedule = !vm->serial_flush_scheduled;
    vm->serial_flush_scheduled = TRUE;
    g_mutex_unlock(&vm->serial_lock);
    if (schedule)
        post_idle(vm->caller_ctx, flush_serial, vm_ref(vm), vm_unref);
}

void
ferry_vm_serial_input(FerryVm *vm, const guint8 *data, gsize len)
{
    if (vm->serial_chr)
        ferry_chardev_input(vm->serial_chr, data, len);
}

/* ---- run-state changes, on the engine thread ---------------------------- */

static void
fail_locked_reason(FerryVm *vm, FerryVmStopReason reason)
{
    g_mutex_lock(&vm->state_lock);
    if (vm->stop_reason == FERRY_VM_STOP_NONE)
        vm->stop_reason = reason;
    g_mutex_unlock(&vm->state_lock);
}

void
ferry_vm_do_stop(FerryVm *vm, FerryVmStopReason reason)
{
    FerryVmState s = ferry_vm_state_locked_get(vm);

    if (s == FERRY_VM_STATE_STOPPED) {
        /* Stopped already (maybe before the engine thread got going): the
         * engine loop must still end, or ferry_vm_free() waits forever. */
        if (vm->loop)
            g_main_loop_quit(vm->loop);
        return;
    }
    fail_locked_reason(vm, reason);
    if (vm->accel_ops && vm->accel) {
        /* Disk requests complete on block workers and raise interrupts
         * through the accelerator: stop the vCPUs, let what they started
         * finish, then take the accelerator away. */
        vm->accel_ops->pause(vm);
        ferry_vm_disks_drain(vm);
        vm->accel_ops->destroy(vm);
    }
    vm->accel = NULL;
    if (vm->serial_chr)
        ferry_chardev_detach(vm->serial_chr);
    set_state(vm, FERRY_VM_STATE_STOPPED);
    g_main_loop_quit(vm->loop);
}

void
ferry_vm_do_pause(FerryVm *vm)
{
    if (ferry_vm_state_locked_get(vm) != FERRY_VM_STATE_RUNNING)
        return;
    vm->accel_ops->pause(vm);
    set_state(vm, FERRY_VM_STATE_PAUSED);
}

void
ferry_vm_do_resume(FerryVm *vm)
{
    if (ferry_vm_state_locked_get(vm) != FERRY_VM_STATE_PAUSED)
        return;
    set_state(vm, FERRY_VM_STATE_RUNNING);
    vm->accel_ops->resume(vm);
}

static void
stop_with_error(FerryVm *vm, GError *error)
{
    Event *ev = g_new0(Event, 1);
    ev->kind = EV_FAILED;
    ev->error = error;
    fail_locked_reason(vm, FERRY_VM_STOP_ERROR);
    post_event(vm, ev);
    ferry_vm_do_stop(vm, FERRY_VM_STOP_ERROR);
}

void
ferry_vm_do_reset(FerryVm *vm)
{
    FerryVmState s = ferry_vm_state_locked_get(vm);
    GError *error = NULL;

    if (s != FERRY_VM_STATE_RUNNING && s != FERRY_VM_STATE_PAUSED)
        return;
    if (s == FERRY_VM_STATE_RUNNING)
        vm->accel_ops->pause(vm);
    if (vm->machine_ops->reset_devices)
        vm->machine_ops->reset_devices(vm);
    /* Load first: the accelerator's reset applies the boot state it finds. */
    if (!vm->machine_ops->load(vm, &error) || !vm->accel_ops->reset(vm, &error)) {
        stop_with_error(vm, error);
        return;
    }
    vm->resets++;
    Event *ev = g_new0(Event, 1);
    ev->kind = EV_RESET;
    post_event(vm, ev);
    if (s == FERRY_VM_STATE_RUNNING)
        vm->accel_ops->resume(vm);
}

void
ferry_vm_do_power_button(FerryVm *vm)
{
    if (ferry_vm_state_locked_get(vm) == FERRY_VM_STATE_RUNNING && vm->machine_ops->power_button)
        vm->machine_ops->power_button(vm);
}

/* ---- requests from any thread ------------------------------------------- */

typedef struct {
    FerryVm *vm;
    int what;                 /* 0 poweroff, 1 reset, 2 error, 3 command */
    FerryVmCommandKind cmd;
    char *text;
} Request;

static gboolean
run_request(gpointer data)
{
    Request *r = data;
    FerryVm *vm = r->vm;

    if (r->what == 0)
        g_atomic_int_set(&vm->poweroff_pending, 0);
    else if (r->what == 1)
        g_atomic_int_set(&vm->reset_pending, 0);
    switch (r->what) {
    case 0:
        g_debug("%s", r->text);
        ferry_vm_do_stop(vm, FERRY_VM_STOP_POWEROFF);
        break;
    case 1:
        if (vm->config->no_reboot) {
            g_debug("%s (no-reboot: stopping)", r->text);
            ferry_vm_do_stop(vm, FERRY_VM_STOP_RESET);
        } else {
            ferry_vm_do_reset(vm);
        }
        break;
    case 2:
        stop_with_error(vm, g_error_new_literal(FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_GUEST, r->text));
        break;
    case 3:
        switch (r->cmd) {
        case FERRY_VM_CMD_PAUSE: ferry_vm_do_pause(vm); break;
        case FERRY_VM_CMD_RESUME: ferry_vm_do_resume(vm); break;
        case FERRY_VM_CMD_POWER_BUTTON: ferry_vm_do_power_button(vm); break;
        case FERRY_VM_CMD_RESET: ferry_vm_do_reset(vm); break;
        case FERRY_VM_CMD_STOP: ferry_vm_do_stop(vm, FERRY_VM_STOP_QUIT); break;
        }
        break;
    }
    return G_SOURCE_REMOVE;
}

static void
free_request(gpointer data)
{
    Request *r = data;
    g_free(r->text);
    vm_unref(r->vm);
    g_free(r);
}

static void
post_request(FerryVm *vm, int what, FerryVmCommandKind cmd, const char *text)
{
    Request *r = g_new0(Request, 1);
    r->vm = vm_ref(vm);
    r->what = what;
    r->cmd = cmd;
    r->text = g_strdup(text);
    g_main_context_invoke_full(vm->ctx, G_PRIORITY_DEFAULT, run_request, r, free_request);
}

/* A guest that hammers a reset or power-off register queues one request,
 * not thousands: the flag drops when the engine thread takes it. */
void
ferry_vm_request_poweroff(FerryVm *vm, const char *why)
{
    if (g_atomic_int_compare_and_exchange(&vm->poweroff_pending, 0, 1))
        post_request(vm, 0, 0, why);
}

void
ferry_vm_request_reset(FerryVm *vm, const char *why)
{
    if (g_atomic_int_compare_and_exchange(&vm->reset_pending, 0, 1))
        post_request(vm, 1, 0, why);
}

void
ferry_vm_request_error(FerryVm *vm, const char *message)
{
    post_request(vm, 2, 0, message);
}

void
ferry_vm_send(FerryVm *vm, const FerryVmCommand *cmd)
{
    g_return_if_fail(vm != NULL && cmd != NULL);
    /* Not started: nothing runs, a stop is just a state. Once started (even
     * before the engine thread has set Running) every command goes there. */
    if (!vm->engine_thread && ferry_vm_state_locked_get(vm) == FERRY_VM_STATE_CREATED) {
        if (cmd->kind == FERRY_VM_CMD_STOP) {
            g_mutex_lock(&vm->state_lock);
            vm->stop_reason = FERRY_VM_STOP_QUIT;
            g_mutex_unlock(&vm->state_lock);
            set_state(vm, FERRY_VM_STATE_STOPPED);
        }
        return;
    }
    post_request(vm, 3, cmd->kind, NULL);
}

void
ferry_vm_send_simple(FerryVm *vm, FerryVmCommandKind kind)
{
    FerryVmCommand cmd = { .kind = kind };
    ferry_vm_send(vm, &cmd);
}

static void
platform_request(void *opaque, FerryPlatformRequest req, const char *why)
{
    FerryVm *vm = opaque;
    if (req == FERRY_PLATFORM_POWEROFF)
        ferry_vm_request_poweroff(vm, why);
    else
        ferry_vm_request_reset(vm, why);
}

/* ---- the monitor over the API and over a socket --------------------------- */

typedef struct {
    FerryVm *vm;
    char *line;
    FerryMonitorReply reply;
    gpointer reply_data;
} MonitorCall;

static gboolean
run_monitor_call(gpointer data)
{
    MonitorCall *c = data;
    gboolean quit = FALSE;
    char *text = ferry_monitor_execute(c->vm, c->line, &quit);
    Event *ev = g_new0(Event, 1);
    ev->kind = EV_MONITOR;
    ev->text = text;
    ev->quit = quit;
    ev->reply = c->reply;
    ev->reply_data = c->reply_data;
    post_event(c->vm, ev);
    if (quit) {
        if (c->vm->loop)
            ferry_vm_do_stop(c->vm, FERRY_VM_STOP_QUIT);
        else
            ferry_vm_send_simple(c->vm, FERRY_VM_CMD_STOP);     /* never started */
    }
    return G_SOURCE_REMOVE;
}

static void
free_monitor_call(gpointer data)
{
    MonitorCall *c = data;
    g_free(c->line);
    vm_unref(c->vm);
    g_free(c);
}

void
ferry_vm_monitor_command(FerryVm *vm, const char *line, FerryMonitorReply reply, gpointer user_data)
{
    MonitorCall *c = g_new0(MonitorCall, 1);
    c->vm = vm_ref(vm);
    c->line = g_strdup(line);
    c->reply = reply;
    c->reply_data = user_data;
    if (!vm->ctx) {
        /* Not started, so no engine thread: answer from here. */
        run_monitor_call(c);
        free_monitor_call(c);
        return;
    }
    g_main_context_invoke_full(vm->ctx, G_PRIORITY_DEFAULT, run_monitor_call, c, free_monitor_call);
}

#define MONITOR_PROMPT "(ferry) "

static void
monitor_connected(gboolean connected, gpointer user_data)
{
    FerryVm *vm = user_data;
    static const char banner[] = "Ferry monitor - type 'help' for more information\n" MONITOR_PROMPT;

    g_string_truncate(vm->monitor_line, 0);
    if (connected)
        ferry_chardev_write(vm->monitor_chr, (const guint8 *) banner, sizeof(banner) - 1);
}

static void
monitor_receive(const guint8 *data, gsize len, gpointer user_data)
{
    FerryVm *vm = user_data;

    for (gsize i = 0; i < len; i++) {
        if (data[i] == '\r')
            continue;
        if (data[i] != '\n') {
            if (vm->monitor_line->len < 4096)
                g_string_append_c(vm->monitor_line, data[i]);
            continue;
        }
        gboolean quit = FALSE;
        char *reply = ferry_monitor_execute(vm, vm->monitor_line->str, &quit);
        g_string_truncate(vm->monitor_line, 0);
        ferry_chardev_write(vm->monitor_chr, (const guint8 *) reply, strlen(reply));
        g_free(reply);
        if (quit) {
            ferry_vm_do_stop(vm, FERRY_VM_STOP_QUIT);
            return;
        }
        ferry_chardev_write(vm->monitor_chr, (const guint8 *) MONITOR_PROMPT, strlen(MONITOR_PROMPT));
    }
}

/* ---- helpers for the machines ----------------------------------------------- */

GBytes *
ferry_machine_read_file(const char *what, const char *path, GError **error)
{
    GError *local = NULL;
    char *data;
    gsize len;

    if (!g_file_get_contents(path, &data, &len, &local)) {
        g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                    _("Cannot read %s %s: %s"), what, path, local->message);
        g_error_free(local);
        return NULL;
    }
    return g_bytes_new_take(data, len);
}

gboolean
ferry_machine_map_device(FerryBus *bus, guint64 base, guint64 size, FerryDevice *dev, GError **error)
{
    if (ferry_bus_map(bus, base, size, dev))
        return TRUE;
    g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                "Device %s at 0x%" G_GINT64_MODIFIER "x overlaps another device", dev->id, base);
    return FALSE;
}

#define HUGE_PAGE (2u << 20)

guint8 *
ferry_machine_alloc_ram(guint64 size, GError **error)
{
    /* MAP_NORESERVE: a guest that never touches its RAM costs nothing.
     * One huge page more than asked, so that the RAM can start on a huge
     * page boundary. */
    gsize len = size + HUGE_PAGE;
    guint8 *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_HOST,
                    "Cannot allocate %" G_GUINT64_FORMAT " MiB of guest memory: %s; choose less memory",
                    size >> 20, g_strerror(errno));
        return NULL;
    }
    guint8 *ram = (guint8 *) (((guintptr) p + HUGE_PAGE - 1) & ~(guintptr) (HUGE_PAGE - 1));
    if (ram > p)
        munmap(p, ram - p);
    if (p + len > ram + size)
        munmap(ram + size, p + len - (ram + size));
    /* Huge pages even where the host's transparent huge pages are
     * "madvise" only (Debian's default): with 4 KiB pages every guest
     * access that misses the host's TLB walks four levels, and a guest
     * kernel touches its whole memory map (struct pages, page tables).
     * The RISC-V interpreter's guest loads were a fifth of its time in the
     * disk benchmark. KVM's shadow or nested paging gains the same way. */
    madvise(ram, size, MADV_HUGEPAGE);
    return ram;
}

/* ---- lifecycle ------------------------------------------------------------ */

static guint64
host_memory_bytes(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
    return pages > 0 && size > 0 ? (guint64) pages * (guint64) size : G_MAXUINT64;
}

static gboolean
check_file(const char *what, const char *path, GError **error)
{
    struct stat st;

    if (!path)
        return TRUE;
    if (stat(path, &st) < 0) {
        g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                    _("Cannot open %s %s: %s"), what, path, g_strerror(errno));
        return FALSE;
    }
    if (!S_ISREG(st.st_mode)) {
        g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                    _("%s %s is not a regular file"), what, path);
        return FALSE;
    }
    if (access(path, R_OK) < 0) {
        g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                    _("Cannot read %s %s: %s"), what, path, g_strerror(errno));
        return FALSE;
    }
    return TRUE;
}

static gboolean
validate(const FerryVmConfig *c, GError **error)
{
    guint64 host = host_memory_bytes();

    if (c->memory_bytes < FERRY_MIN_MEMORY) {
        g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                    "Memory size %" G_GUINT64_FORMAT " bytes is too small: give the VM at least 2 MiB",
                    c->memory_bytes);
        return FALSE;
    }
    if (c->memory_bytes > host) {
        g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                    "Memory size %" G_GUINT64_FORMAT " MiB is more than this host has (%" G_GUINT64_FORMAT
                    " MiB): choose less memory", c->memory_bytes >> 20, host >> 20);
        return FALSE;
    }
    if (c->n_cpus < 1 || c->n_cpus > FERRY_MAX_CPUS) {
        g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                    _("%u vCPUs is out of range: choose 1 to %u"), c->n_cpus, FERRY_MAX_CPUS);
        return FALSE;
    }
    if (c->initrd_path && !c->kernel_path) {
        g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                    _("An initrd needs a kernel: add --kernel"));
        return FALSE;
    }
    if (c->arch == FERRY_ARCH_X86_64 && !c->kernel_path && !c->bios_path) {
        g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                    _("Nothing to boot: give a kernel (--kernel) or a firmware image (--bios)"));
        return FALSE;
    }
    if (c->serial == FERRY_SERIAL_UNIX && !c->serial_path) {
        g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                    _("A unix socket serial port needs a path"));
        return FALSE;
    }
    for (guint i = 0; i < FERRY_MAX_FLOPPIES; i++) {
        if (c->floppies[i].path) {
            g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                        _("Floppy drives are not emulated by this version of Ferry yet: remove %s"),
                        c->floppies[i].path);
            return FALSE;
        }
    }
    if (c->cdrom.path) {
        g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                    _("CD-ROM drives are not emulated by this version of Ferry yet: remove %s"), c->cdrom.path);
        return FALSE;
    }
    for (guint i = 0; i < FERRY_MAX_DISKS; i++) {
        const FerryDriveConfig *d = &c->disks[i];
        if (!d->path)
            continue;
        if (d->format && strcmp(d->format, "raw") && strcmp(d->format, "qcow2")) {
            g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                        _("Hard disk hd%c %s: unknown format '%s': choose raw or qcow2"),
                        'a' + i, d->path, d->format);
            return FALSE;
        }
        for (guint j = 0; j < i; j++) {
            if (c->disks[j].path && !strcmp(c->disks[j].path, d->path)) {
                g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                            _("%s is given as hd%c and as hd%c: a disk image can be one drive only"),
                            d->path, 'a' + j, 'a' + i);
                return FALSE;
            }
        }
    }
    return check_file("firmware", c->bios_path, error) &&
           check_file("kernel", c->kernel_path, error) &&
           check_file("initrd", c->initrd_path, error);
}

FerryVm *
ferry_vm_new(const FerryVmConfig *config, GMainContext *context,
             const FerryVmEvents *events, gpointer user_data, GError **error)
{
    g_return_val_if_fail(config != NULL, NULL);

    if (!validate(config, error))
        return NULL;
    const FerryMachineOps *machine_ops;
    const FerryAccelOps *accel_ops;
    if (config->arch == FERRY_ARCH_X86_64) {
        if (config->accel == FERRY_ACCEL_SOFTCPU) {
            g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                        _("x86_64 guests run on KVM only: choose the KVM accelerator"));
            return NULL;
        }
        machine_ops = &ferry_machine_pc;
        accel_ops = &ferry_accel_kvm;
    } else {
        if (config->accel == FERRY_ACCEL_KVM) {
            g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                        _("riscv64 guests run on Ferry's software CPU: KVM runs only guests "
                        "of this host's own architecture"));
            return NULL;
        }
        machine_ops = &ferry_machine_riscv_virt;
        accel_ops = &ferry_accel_soft;
    }

    FerryVm *vm = g_new0(FerryVm, 1);
    vm->ref = 1;
    vm->alive = TRUE;
    vm->config = ferry_vm_config_copy(config);
    vm->caller_ctx = g_main_context_ref(context ? context : g_main_context_default());
    if (events)
        vm->events = *events;
    vm->user_data = user_data;
    g_mutex_init(&vm->state_lock);
    g_mutex_init(&vm->serial_lock);
    g_mutex_init(&vm->disk_jobs_lock);
    vm->serial_pending = g_byte_array_new();
    vm->monitor_line = g_string_new(NULL);
    vm->machine_ops = machine_ops;
    vm->accel_ops = accel_ops;
    vm->platform.request = platform_request;
    vm->platform.opaque = vm;
    return vm;
}

static gpointer
engine_thread(gpointer data)
{
    FerryVm *vm = data;

    g_main_context_push_thread_default(vm->ctx);
    if (vm->serial_chr)
        ferry_chardev_attach(vm->serial_chr, vm->ctx);
    if (vm->monitor_chr)
        ferry_chardev_attach(vm->monitor_chr, vm->ctx);
    g_main_loop_run(vm->loop);
    if (vm->monitor_chr)
        ferry_chardev_detach(vm->monitor_chr);
    if (vm->serial_chr)
        ferry_chardev_detach(vm->serial_chr);
    g_main_context_pop_thread_default(vm->ctx);
    return NULL;
}

static gboolean
start_vcpus(gpointer data)
{
    FerryVm *vm = data;
    GError *error = NULL;

    if (ferry_vm_state_locked_get(vm) != FERRY_VM_STATE_CREATED)
        return G_SOURCE_REMOVE;
    set_state(vm, FERRY_VM_STATE_RUNNING);
    if (!vm->accel_ops->start(vm, &error))
        stop_with_error(vm, error);
    return G_SOURCE_REMOVE;
}

gboolean
ferry_vm_start(FerryVm *vm, GError **error)
{
    g_return_val_if_fail(vm != NULL, FALSE);

    if (vm->engine_thread || ferry_vm_state_locked_get(vm) != FERRY_VM_STATE_CREATED) {
        g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_STATE,
                    _("This VM was already started; create a new one to run it again"));
        return FALSE;
    }
    switch (vm->config->serial) {
    case FERRY_SERIAL_EVENT:
        vm->serial_chr = ferry_chardev_new_callback(serial_to_caller, vm);
        break;
    case FERRY_SERIAL_NONE:
        vm->serial_chr = ferry_chardev_new_none();
        break;
    case FERRY_SERIAL_PTY:
        vm->serial_chr = ferry_chardev_new_pty(error);
        break;
    case FERRY_SERIAL_UNIX:
        vm->serial_chr = ferry_chardev_new_unix(vm->config->serial_path, error);
        break;
    }
    if (!vm->serial_chr)
        return FALSE;
    if (vm->config->monitor_path) {
        vm->monitor_chr = ferry_chardev_new_unix(vm->config->monitor_path, error);
        if (!vm->monitor_chr)
            return FALSE;
        ferry_chardev_set_frontend(vm->monitor_chr, monitor_receive, monitor_connected, vm);
    }

    vm->io_bus = ferry_bus_new("io");
    vm->mmio_bus = ferry_bus_new("mmio");
    if (!vm->machine_ops->build(vm, error))
        return FALSE;
    if (!vm->accel_ops->init(vm, error))
        return FALSE;
    if (!vm->machine_ops->load(vm, error)) {
        vm->accel_ops->destroy(vm);
        vm->accel = NULL;
        return FALSE;
    }

    vm->ctx = g_main_context_new();
    vm->loop = g_main_loop_new(vm->ctx, FALSE);
    g_main_context_invoke_full(vm->ctx, G_PRIORITY_DEFAULT, start_vcpus, vm_ref(vm), vm_unref);
    vm->engine_thread = g_thread_new("ferry-engine", engine_thread, vm_ref(vm));
    return TRUE;
}

static gboolean
stop_from_free(gpointer data)
{
    ferry_vm_do_stop(data, FERRY_VM_STOP_QUIT);
    return G_SOURCE_REMOVE;
}

void
ferry_vm_free(FerryVm *vm)
{
    if (!vm)
        return;
    vm->alive = FALSE;
    if (vm->engine_thread) {
        g_main_context_invoke_full(vm->ctx, G_PRIORITY_HIGH, stop_from_free, vm_ref(vm), vm_unref);
        g_thread_join(vm->engine_thread);
        vm->engine_thread = NULL;
        vm_unref(vm);       /* the engine thread's reference */
        /* Nothing runs the engine context any more: drop it now, with the
         * requests still queued on it (their references to vm go too). */
        g_clear_pointer(&vm->loop, g_main_loop_unref);
        g_clear_pointer(&vm->ctx, g_main_context_unref);
    }
    teardown(vm);
    vm_unref(vm);
}
