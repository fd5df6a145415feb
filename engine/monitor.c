/* monitor.c: the text monitor, QEMU-style ("info status", "stop", "cont").
 *
 * Runs on the engine thread; the same commands serve the unix socket, the
 * API (ferry_vm_monitor_command) and `ferryctl run --monitor stdio`. Later
 * issues add their commands to the table. */
#include "vm-private.h"

#include <string.h>

typedef struct {
    const char *name;
    const char *args;
    const char *help;
    void (*run)(FerryVm *vm, char **argv, GString *out, gboolean *quit);
} Command;

static const Command commands[];

char **
ferry_monitor_split(const char *line)
{
    char **words = g_strsplit_set(line ? line : "", " \t\r\n", -1);
    GPtrArray *out = g_ptr_array_new();

    for (char **w = words; *w; w++)
        if (**w)
            g_ptr_array_add(out, g_strdup(*w));
    g_strfreev(words);
    if (out->len == 0) {
        g_ptr_array_free(out, TRUE);
        return NULL;
    }
    g_ptr_array_add(out, NULL);
    return (char **) g_ptr_array_free(out, FALSE);
}

static void
cmd_help(FerryVm *vm, char **argv, GString *out, gboolean *quit)
{
    for (const Command *c = commands; c->name; c++)
        g_string_append_printf(out, "%s%s%s -- %s\n", c->name, c->args[0] ? " " : "", c->args, c->help);
}

static void
cmd_info(FerryVm *vm, char **argv, GString *out, gboolean *quit)
{
    const char *what = argv[1];
    FerryVmState s = ferry_vm_state_locked_get(vm);

    if (!what) {
        g_string_append(out, "info status -- show the VM's run state\n"
                             "info cpus -- show the virtual CPUs\n"
                             "info registers -- show the CPU registers\n"
                             "info block -- show the hard disks and their snapshot overlays\n");
        return;
    }
    if (!strcmp(what, "status")) {
        const char *text = s == FERRY_VM_STATE_RUNNING ? "running"
                         : s == FERRY_VM_STATE_PAUSED ? "paused"
                         : s == FERRY_VM_STATE_STOPPED ? "shutdown" : "prelaunch";
        g_string_append_printf(out, "VM status: %s\n", text);
        return;
    }
    if (!strcmp(what, "block")) {
        ferry_vm_disks_info(vm, out);
        return;
    }
    if (!strcmp(what, "cpus") || !strcmp(what, "registers")) {
        if (!vm->accel || (s != FERRY_VM_STATE_RUNNING && s != FERRY_VM_STATE_PAUSED)) {
            g_string_append(out, "The VM is not running: no CPU state to show\n");
            return;
        }
        /* The vCPUs are stopped for the read and go on afterwards; the
         * guest sees only a short pause. */
        gboolean was_running = s == FERRY_VM_STATE_RUNNING;
        if (was_running)
            vm->accel_ops->pause(vm);
        if (!strcmp(what, "cpus"))
            vm->accel_ops->dump_cpus(vm, out);
        else
            vm->accel_ops->dump_registers(vm, out);
        if (was_running)
            vm->accel_ops->resume(vm);
        return;
    }
    g_string_append_printf(out, "info: unknown item '%s'; try 'info' for the list\n", what);
}

static void
cmd_stop(FerryVm *vm, char **argv, GString *out, gboolean *quit)
{
    ferry_vm_do_pause(vm);
}

static void
cmd_cont(FerryVm *vm, char **argv, GString *out, gboolean *quit)
{
    ferry_vm_do_resume(vm);
}

static void
cmd_powerdown(FerryVm *vm, char **argv, GString *out, gboolean *quit)
{
    if (ferry_vm_state_locked_get(vm) != FERRY_VM_STATE_RUNNING) {
        g_string_append(out, "The VM is not running: resume it with 'cont' first\n");
        return;
    }
    ferry_vm_do_power_button(vm);
}

static void
cmd_reset(FerryVm *vm, char **argv, GString *out, gboolean *quit)
{
    ferry_vm_do_reset(vm);
}

/* Snapshot mode: blocks the engine thread until the base images are
 * written; the guest's disk requests wait meanwhile, its CPUs do not. */
static void
cmd_commit(FerryVm *vm, char **argv, GString *out, gboolean *quit)
{
    ferry_vm_disks_commit_text(vm, argv[1], out);
}

static void
cmd_discard(FerryVm *vm, char **argv, GString *out, gboolean *quit)
{
    ferry_vm_disks_discard_text(vm, argv[1], out);
}

static void
cmd_quit(FerryVm *vm, char **argv, GString *out, gboolean *quit)
{
    *quit = TRUE;
}

static const Command commands[] = {
    { "help", "", "show this list", cmd_help },
    { "info", "status|cpus|registers|block", "show information about the VM", cmd_info },
    { "stop", "", "pause the VM", cmd_stop },
    { "cont", "", "resume the VM", cmd_cont },
    { "system_powerdown", "", "press the power button", cmd_powerdown },
    { "system_reset", "", "reset the VM", cmd_reset },
    { "commit", "[all|DRIVE]", "snapshot mode: write the changes into the disk images", cmd_commit },
    { "discard", "[all|DRIVE]", "snapshot mode: drop the changes made since the start or the last commit",
      cmd_discard },
    { "quit", "", "stop the VM at once and quit", cmd_quit },
    { NULL, NULL, NULL, NULL },
};

char *
ferry_monitor_execute(FerryVm *vm, const char *line, gboolean *quit)
{
    g_auto(GStrv) argv = ferry_monitor_split(line);
    GString *out = g_string_new(NULL);

    *quit = FALSE;
    if (!argv)
        return g_string_free(out, FALSE);
    const char *name = argv[0];
    if (!strcmp(name, "?") || !strcmp(name, "h"))
        name = "help";
    if (!strcmp(name, "c"))
        name = "cont";
    if (!strcmp(name, "q"))
        name = "quit";
    for (const Command *c = commands; c->name; c++) {
        if (!strcmp(c->name, name)) {
            c->run(vm, argv, out, quit);
            return g_string_free(out, FALSE);
        }
    }
    g_string_append_printf(out, "unknown command: '%s'; type 'help' for the list\n", argv[0]);
    return g_string_free(out, FALSE);
}
