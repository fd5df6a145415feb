/* ferryctl-vm.h: the subcommands that manage the VM library (create, list,
 * show, edit, clone, delete, run NAME, export, import).
 *
 * Exit status: 0 done; 1 the library refused (no such VM, name taken, another
 * program changed the VM, a value out of range, a damaged library; or you
 * answered no); 2 bad command line, or `delete` without a terminal or --yes
 * (nothing changed). `run NAME` keeps `ferryctl run`'s statuses
 * (ferryctl-run.h): 2 also when the VM is already running elsewhere. */
#pragma once

#include <glib.h>

int ferryctl_vm_create(int argc, char **argv);
int ferryctl_vm_list(int argc, char **argv);
int ferryctl_vm_show(int argc, char **argv);
int ferryctl_vm_edit(int argc, char **argv);
int ferryctl_vm_clone(int argc, char **argv);
int ferryctl_vm_delete(int argc, char **argv);
int ferryctl_vm_export(int argc, char **argv);
int ferryctl_vm_import(int argc, char **argv);

/* `ferryctl run NAME [--serial DEV] [--monitor DEV] [--no-reboot] [--library PATH]`. */
int ferryctl_vm_run(int argc, char **argv);
/* Does `ferryctl run` argv name a stored VM (a word that is no option's value)? */
gboolean ferryctl_vm_run_names_vm(int argc, char **argv);
