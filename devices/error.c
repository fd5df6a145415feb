/* error.c: the error domain quarks (the lowest library owns them). */
#include <ferry/error.h>

G_DEFINE_QUARK(ferry-engine-error-quark, ferry_engine_error)
