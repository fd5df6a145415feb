/* ferryctl-run.h: run a VM in the foreground, as `ferryctl run` does. */
#pragma once

#include <ferry/vm.h>

/* Exit statuses of ferryctl (the foundation issue's conventions). */
#define FERRYCTL_EXIT_OK          0   /* the guest powered off, or quit */
#define FERRYCTL_EXIT_GUEST_ERROR 1   /* the engine stopped the VM with an error */
#define FERRYCTL_EXIT_USAGE       2   /* bad command line, file or host: nothing ran */

/* Starts config (serial as events when serial_on_stdio), wires stdin/stdout
 * (Ctrl-A x quits, Ctrl-A c toggles the monitor when both are on stdio),
 * runs until the VM stops and returns the exit status: 0, 1, 2 (with the
 * error printed), or 128+N after signal N. */
int ferryctl_run_vm(const FerryVmConfig *config, gboolean serial_on_stdio, gboolean monitor_on_stdio);
