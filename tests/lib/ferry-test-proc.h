/* ferry-test-proc.h: run ferryctl (or any program) from a test, feed it
 * input, wait for what it prints, and collect its exit status. */
#pragma once

#include <glib.h>

typedef struct FerryTestProc FerryTestProc;

/* Starts argv with stdin, stdout and stderr on pipes (stderr kept apart). */
FerryTestProc *ferry_test_proc_spawn(const char *const *argv, GError **error);
/* Waits until text appears in stdout (from the start of the output, or after
 * the previous match when from_last), reading as it goes. FALSE on timeout or
 * exit without it. */
gboolean ferry_test_proc_expect(FerryTestProc *p, const char *text, guint timeout_ms);
/* The same for stderr (all of it so far). */
gboolean ferry_test_proc_expect_stderr(FerryTestProc *p, const char *text, guint timeout_ms);
void     ferry_test_proc_write(FerryTestProc *p, const char *text);
void     ferry_test_proc_close_stdin(FerryTestProc *p);
/* Waits for the exit; returns the exit code, 128+N for a signal, or -1 on
 * timeout (the process is killed then). */
int      ferry_test_proc_wait(FerryTestProc *p, guint timeout_ms);
void     ferry_test_proc_kill(FerryTestProc *p, int sig);
const char *ferry_test_proc_stdout(FerryTestProc *p);
const char *ferry_test_proc_stderr(FerryTestProc *p);
GPid     ferry_test_proc_pid(FerryTestProc *p);
void     ferry_test_proc_free(FerryTestProc *p);

/* Runs to the end: exit code as above, the outputs in *out / *err (may be NULL). */
int ferry_test_run(const char *const *argv, const char *input, guint timeout_ms,
                   char **out, char **err);

/* The built ferryctl ($FERRYCTL, set by meson). */
const char *ferry_test_ferryctl(void);
/* A file below the build tree's micro-guest folder, or NULL (test skips). */
char *ferry_test_micro_guest(const char *name);
/* Does this host's KVM work for micro-guests? NULL when it does, else why not. */
const char *ferry_test_kvm_unusable(void);
/* A software KVM (kvm_pvm) cannot run a stock Linux kernel. */
gboolean ferry_test_kvm_is_software(void);

/* The test guests built by tests/guests/build.sh ($FERRY_GUEST_DIR):
 * a file in it, or NULL after marking the test skipped (or failed under CI,
 * where the guests must be there). */
char *ferry_test_guest_file(const char *relpath);

/* A monitor client on a unix socket: sends a line, returns the reply up to
 * the next prompt (caller frees). NULL on timeout. */
typedef struct FerryTestMonitor FerryTestMonitor;
FerryTestMonitor *ferry_test_monitor_connect(const char *path, guint timeout_ms);
char             *ferry_test_monitor_cmd(FerryTestMonitor *m, const char *line, guint timeout_ms);
void              ferry_test_monitor_free(FerryTestMonitor *m);

/* For tests: spawn (asserting it started) and expect (asserting the text
 * came, else the test fails showing both outputs). */
FerryTestProc *ferry_test_spawn(const char *const *argv);
void           ferry_test_expect(FerryTestProc *p, const char *text, guint timeout_ms);
