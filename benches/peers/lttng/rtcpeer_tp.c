/* The probes of rtcpeer_tp.h, and the tracepoint definitions, linked
 * statically into the benchmark. */
#define LTTNG_UST_TRACEPOINT_CREATE_PROBES
#define LTTNG_UST_TRACEPOINT_DEFINE
#include "rtcpeer_tp.h"
