/* ferry-vm-session.c: see ferry-vm-session.h. */
#include "ferry-vm-session.h"

#include <glib/gi18n.h>

struct _FerryVmSession {
    GObject parent_instance;
    char *name;
    FerryVmConfig *config;
    FerryVm *vm;
    FerryVmState state;
    char *error;
    guint64 pending;
    gboolean refreshing;        /* a look at the pending size is under way */
    guint refresh_gen;          /* bumped when the VM goes: late answers are ignored */
};

G_DEFINE_FINAL_TYPE(FerryVmSession, ferry_vm_session, G_TYPE_OBJECT)

enum { PROP_0, PROP_NAME, PROP_STATE, PROP_ERROR, PROP_PENDING, N_PROPS };
static GParamSpec *properties[N_PROPS];

enum { SIGNAL_SERIAL_OUTPUT, SIGNAL_FAILED, SIGNAL_GUEST_RESET, N_SIGNALS };
static guint signals[N_SIGNALS];

static void
set_state(FerryVmSession *self, FerryVmState state)
{
    if (self->state == state)
        return;
    self->state = state;
    g_object_notify_by_pspec(G_OBJECT(self), properties[PROP_STATE]);
}

static void
on_state(FerryVm *vm, FerryVmState state, gpointer user_data)
{
    set_state(FERRY_VM_SESSION(user_data), state);
}

static void
on_serial(FerryVm *vm, guint port, GBytes *data, gpointer user_data)
{
    g_signal_emit(user_data, signals[SIGNAL_SERIAL_OUTPUT], 0, data);
}

static void
set_error(FerryVmSession *self, const char *message)
{
    g_free(self->error);
    self->error = g_strdup(message);
    g_object_notify_by_pspec(G_OBJECT(self), properties[PROP_ERROR]);
}

static void
on_failed(FerryVm *vm, const GError *error, gpointer user_data)
{
    FerryVmSession *self = user_data;
    set_error(self, error->message);
    g_signal_emit(self, signals[SIGNAL_FAILED], 0, error->message);
}

static void
on_guest_reset(FerryVm *vm, gpointer user_data)
{
    g_signal_emit(user_data, signals[SIGNAL_GUEST_RESET], 0);
}

static void forget_looks(FerryVmSession *self);

static const FerryVmEvents events = {
    .state_changed = on_state,
    .serial_output = on_serial,
    .failed = on_failed,
    .guest_reset = on_guest_reset,
};

gboolean
ferry_vm_session_start(FerryVmSession *self, GError **error)
{
    g_return_val_if_fail(FERRY_IS_VM_SESSION(self), FALSE);

    if (self->vm && self->state != FERRY_VM_STATE_STOPPED) {
        g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_STATE,
                    _("“%s” is already running"), self->name);
        return FALSE;
    }
    g_clear_pointer(&self->vm, ferry_vm_free);
    forget_looks(self);
    set_error(self, NULL);
    self->vm = ferry_vm_new(self->config, NULL, &events, self, error);
    if (!self->vm || !ferry_vm_start(self->vm, error)) {
        g_clear_pointer(&self->vm, ferry_vm_free);
        set_error(self, error && *error ? (*error)->message : NULL);
        return FALSE;
    }
    return TRUE;
}

static void
send(FerryVmSession *self, FerryVmCommandKind kind)
{
    if (self->vm)
        ferry_vm_send_simple(self->vm, kind);
}

void ferry_vm_session_pause(FerryVmSession *self) { send(self, FERRY_VM_CMD_PAUSE); }
void ferry_vm_session_resume(FerryVmSession *self) { send(self, FERRY_VM_CMD_RESUME); }
void ferry_vm_session_power_button(FerryVmSession *self) { send(self, FERRY_VM_CMD_POWER_BUTTON); }
void ferry_vm_session_reset(FerryVmSession *self) { send(self, FERRY_VM_CMD_RESET); }
void ferry_vm_session_force_off(FerryVmSession *self) { send(self, FERRY_VM_CMD_STOP); }

void
ferry_vm_session_release(FerryVmSession *self)
{
    if (self->vm && self->state == FERRY_VM_STATE_STOPPED) {
        g_clear_pointer(&self->vm, ferry_vm_free);
        /* A query to the freed VM gets no reply: stop waiting for it. */
        forget_looks(self);
    }
}

void
ferry_vm_session_send_serial(FerryVmSession *self, const guint8 *data, gsize len)
{
    if (self->vm && self->state == FERRY_VM_STATE_RUNNING)
        ferry_vm_serial_input(self->vm, data, len);
}

typedef struct {
    FerryVmSession *self;
    FerryVmSessionReply reply;
    gpointer user_data;
} MonitorCall;

static void
on_monitor_reply(FerryVm *vm, const char *reply, gboolean quit, gpointer user_data)
{
    MonitorCall *c = user_data;
    c->reply(c->self, reply, c->user_data);
    g_object_unref(c->self);
    g_free(c);
}

void
ferry_vm_session_monitor(FerryVmSession *self, const char *line,
                         FerryVmSessionReply reply, gpointer user_data)
{
    if (!self->vm) {
        reply(self, _("The virtual machine is not running.\n"), user_data);
        return;
    }
    MonitorCall *c = g_new0(MonitorCall, 1);
    c->self = g_object_ref(self);
    c->reply = reply;
    c->user_data = user_data;
    ferry_vm_monitor_command(self->vm, line, on_monitor_reply, c);
}

void
ferry_vm_session_set_config(FerryVmSession *self, const char *name, const FerryVmConfig *config)
{
    ferry_vm_config_free(self->config);
    self->config = ferry_vm_config_copy(config);
    if (g_strcmp0(self->name, name) != 0) {
        g_free(self->name);
        self->name = g_strdup(name);
        g_object_notify_by_pspec(G_OBJECT(self), properties[PROP_NAME]);
    }
}

/* ---- snapshot mode ---------------------------------------------------------- */

gboolean
ferry_vm_session_get_snapshot_mode(FerryVmSession *self)
{
    return self->config->snapshot;
}

guint64
ferry_vm_session_get_pending(FerryVmSession *self)
{
    return self->pending;
}

static void
set_pending(FerryVmSession *self, guint64 pending)
{
    if (self->pending == pending)
        return;
    self->pending = pending;
    g_object_notify_by_pspec(G_OBJECT(self), properties[PROP_PENDING]);
}

static gboolean
vm_has_disks(FerryVmSession *self)
{
    return self->vm && ferry_vm_get_state(self->vm) != FERRY_VM_STATE_CREATED;
}

typedef struct {
    FerryVmSession *self;
    guint gen;
} Look;

static gboolean
look_done(Look *look)
{
    FerryVmSession *self = look->self;
    if (look->gen != self->refresh_gen)
        return FALSE;               /* about a VM that is gone */
    self->refreshing = FALSE;
    return TRUE;
}

static void
on_drives(FerryVm *vm, GPtrArray *drives, const GError *error, gpointer user_data)
{
    Look *look = user_data;
    guint64 total = 0;
    for (guint i = 0; drives && i < drives->len; i++)
        total += ((FerryVmDriveInfo *) drives->pdata[i])->pending_bytes;
    if (look_done(look) && drives)
        set_pending(look->self, total);
    g_object_unref(look->self);
    g_free(look);
}

static void
forget_looks(FerryVmSession *self)
{
    self->refresh_gen++;
    self->refreshing = FALSE;
}

/* Leftovers of earlier runs: file work, so on a worker thread. */
static void
leftovers_thread(GTask *task, gpointer source, gpointer data, GCancellable *cancellable)
{
    GError *error = NULL;
    GPtrArray *list = ferry_vm_config_list_leftovers(data, &error);
    guint64 total = 0;
    if (!list) {
        g_task_return_error(task, error);
        return;
    }
    for (guint i = 0; i < list->len; i++)
        total += ((FerryVmLeftover *) list->pdata[i])->pending_bytes;
    g_ptr_array_unref(list);
    g_task_return_pointer(task, g_memdup2(&total, sizeof(total)), g_free);
}

static void
on_leftovers(GObject *source, GAsyncResult *result, gpointer user_data)
{
    Look *look = user_data;
    g_autofree guint64 *total = g_task_propagate_pointer(G_TASK(result), NULL);
    if (look_done(look) && total && !vm_has_disks(look->self))
        set_pending(look->self, *total);
    g_free(look);
}

void
ferry_vm_session_refresh_pending(FerryVmSession *self)
{
    if (!self->config->snapshot && !self->pending) {
        /* Not in snapshot mode now, but an earlier run may have left changes. */
    }
    if (self->refreshing)
        return;
    self->refreshing = TRUE;
    Look *look = g_new0(Look, 1);
    look->self = self;
    look->gen = self->refresh_gen;
    if (vm_has_disks(self)) {
        g_object_ref(self);
        ferry_vm_query_drives(self->vm, on_drives, look);
        return;
    }
    GTask *task = g_task_new(self, NULL, on_leftovers, look);
    g_task_set_task_data(task, ferry_vm_config_copy(self->config), (GDestroyNotify) ferry_vm_config_free);
    g_task_run_in_thread(task, leftovers_thread);
    g_object_unref(task);
}

typedef struct {
    FerryVmSession *self;
    FerryVmSessionDone done;
    gpointer user_data;
    gboolean commit;
} DiskJob;

static void
finish_job(DiskJob *job, const GError *error)
{
    job->done(job->self, error, job->user_data);
    ferry_vm_session_refresh_pending(job->self);
    g_object_unref(job->self);
    g_free(job);
}

static void
on_disk_job(FerryVm *vm, const GError *error, gpointer user_data)
{
    finish_job(user_data, error);
}

static void
leftover_job_thread(GTask *task, gpointer source, gpointer data, GCancellable *cancellable)
{
    DiskJob *job = g_object_get_data(G_OBJECT(task), "ferry-job");
    GError *error = NULL;
    gboolean ok = job->commit ? ferry_vm_config_commit_leftover(data, NULL, &error)
                              : ferry_vm_config_discard_leftover(data, NULL, &error);
    if (ok)
        g_task_return_boolean(task, TRUE);
    else
        g_task_return_error(task, error);
}

static void
on_leftover_job(GObject *source, GAsyncResult *result, gpointer user_data)
{
    g_autoptr(GError) error = NULL;
    g_task_propagate_boolean(G_TASK(result), &error);
    finish_job(user_data, error);
}

static void
disk_job(FerryVmSession *self, gboolean commit, FerryVmSessionDone done, gpointer user_data)
{
    DiskJob *job = g_new0(DiskJob, 1);
    job->self = g_object_ref(self);
    job->done = done;
    job->user_data = user_data;
    job->commit = commit;
    if (vm_has_disks(self)) {
        if (commit)
            ferry_vm_commit_drive(self->vm, NULL, on_disk_job, job);
        else
            ferry_vm_discard_drive(self->vm, NULL, on_disk_job, job);
        return;
    }
    GTask *task = g_task_new(NULL, NULL, on_leftover_job, job);
    g_object_set_data(G_OBJECT(task), "ferry-job", job);
    g_task_set_task_data(task, ferry_vm_config_copy(self->config), (GDestroyNotify) ferry_vm_config_free);
    g_task_run_in_thread(task, leftover_job_thread);
    g_object_unref(task);
}

void
ferry_vm_session_commit(FerryVmSession *self, FerryVmSessionDone done, gpointer user_data)
{
    disk_job(self, TRUE, done, user_data);
}

void
ferry_vm_session_discard(FerryVmSession *self, FerryVmSessionDone done, gpointer user_data)
{
    disk_job(self, FALSE, done, user_data);
}

const FerryVmConfig *
ferry_vm_session_get_config(FerryVmSession *self)
{
    return self->config;
}

const char *
ferry_vm_session_get_name(FerryVmSession *self)
{
    return self->name;
}

FerryVmState
ferry_vm_session_get_state(FerryVmSession *self)
{
    return self->state;
}

const char *
ferry_vm_session_get_state_label(FerryVmSession *self)
{
    switch (self->state) {
    case FERRY_VM_STATE_RUNNING: return _("Running");
    case FERRY_VM_STATE_PAUSED: return _("Paused");
    case FERRY_VM_STATE_CREATED: return _("Starting");
    case FERRY_VM_STATE_STOPPED: break;
    }
    return self->error ? _("Stopped by an error") : _("Off");
}

const char *
ferry_vm_session_get_error(FerryVmSession *self)
{
    return self->error;
}

FerryVmSession *
ferry_vm_session_new(const char *name, const FerryVmConfig *config)
{
    FerryVmSession *self = g_object_new(FERRY_TYPE_VM_SESSION, "name", name, NULL);
    self->config = ferry_vm_config_copy(config);
    return self;
}

static void
ferry_vm_session_finalize(GObject *object)
{
    FerryVmSession *self = FERRY_VM_SESSION(object);
    g_clear_pointer(&self->vm, ferry_vm_free);
    ferry_vm_config_free(self->config);
    g_free(self->name);
    g_free(self->error);
    G_OBJECT_CLASS(ferry_vm_session_parent_class)->finalize(object);
}

static void
ferry_vm_session_get_property(GObject *object, guint id, GValue *value, GParamSpec *pspec)
{
    FerryVmSession *self = FERRY_VM_SESSION(object);
    switch (id) {
    case PROP_NAME: g_value_set_string(value, self->name); break;
    case PROP_STATE: g_value_set_int(value, self->state); break;
    case PROP_ERROR: g_value_set_string(value, self->error); break;
    case PROP_PENDING: g_value_set_uint64(value, self->pending); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
    }
}

static void
ferry_vm_session_set_property(GObject *object, guint id, const GValue *value, GParamSpec *pspec)
{
    FerryVmSession *self = FERRY_VM_SESSION(object);
    switch (id) {
    case PROP_NAME:
        g_free(self->name);
        self->name = g_value_dup_string(value);
        break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
    }
}

static void
ferry_vm_session_class_init(FerryVmSessionClass *klass)
{
    GObjectClass *object_class = G_OBJECT_CLASS(klass);

    object_class->finalize = ferry_vm_session_finalize;
    object_class->get_property = ferry_vm_session_get_property;
    object_class->set_property = ferry_vm_session_set_property;

    properties[PROP_NAME] = g_param_spec_string("name", NULL, NULL, NULL,
        G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
    properties[PROP_STATE] = g_param_spec_int("state", NULL, NULL, 0, FERRY_VM_STATE_STOPPED,
        FERRY_VM_STATE_STOPPED, G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
    properties[PROP_ERROR] = g_param_spec_string("error", NULL, NULL, NULL,
        G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
    properties[PROP_PENDING] = g_param_spec_uint64("pending", NULL, NULL, 0, G_MAXUINT64, 0,
        G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
    g_object_class_install_properties(object_class, N_PROPS, properties);

    signals[SIGNAL_SERIAL_OUTPUT] = g_signal_new("serial-output", G_TYPE_FROM_CLASS(klass),
        G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_BYTES);
    signals[SIGNAL_FAILED] = g_signal_new("failed", G_TYPE_FROM_CLASS(klass),
        G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_STRING);
    signals[SIGNAL_GUEST_RESET] = g_signal_new("guest-reset", G_TYPE_FROM_CLASS(klass),
        G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 0);
}

static void
ferry_vm_session_init(FerryVmSession *self)
{
    self->state = FERRY_VM_STATE_STOPPED;
}
