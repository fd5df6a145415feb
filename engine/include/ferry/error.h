/* ferry/error.h: error domains shared by every layer (engine, devices, block).
 * A message names the object, the problem and the fix. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define FERRY_ENGINE_ERROR (ferry_engine_error_quark())
GQuark ferry_engine_error_quark(void);

typedef enum {
    FERRY_ENGINE_ERROR_INVALID = 1,   /* bad configuration or file: nothing ran */
    FERRY_ENGINE_ERROR_HOST,          /* the host cannot do it (no /dev/kvm, no memory) */
    FERRY_ENGINE_ERROR_GUEST,         /* the guest stopped the VM (internal error) */
    FERRY_ENGINE_ERROR_STATE,         /* command not legal in this state */
    FERRY_ENGINE_ERROR_CANCELLED,     /* the user backed out: no dialog */
} FerryEngineError;

G_END_DECLS
