/*
 * LTTng-UST tracepoint provider of the rtcore peer benchmark (bench.c).
 *
 *   rtcpeer:ints  two 64-bit integers (the peer of the floor's 16-byte record)
 *   rtcpeer:strs  two strings, category and message (the peer of rtc_log)
 *   rtcpeer:idle  one integer, never enabled by run.sh (a disabled tracepoint)
 *
 * The probes are built by rtcpeer_tp.c and linked into the program.
 */
#undef LTTNG_UST_TRACEPOINT_PROVIDER
#define LTTNG_UST_TRACEPOINT_PROVIDER rtcpeer

#undef LTTNG_UST_TRACEPOINT_INCLUDE
#define LTTNG_UST_TRACEPOINT_INCLUDE "./rtcpeer_tp.h"

#if !defined(RTCPEER_TP_H) || defined(LTTNG_UST_TRACEPOINT_HEADER_MULTI_READ)
#define RTCPEER_TP_H

#include <stdint.h>
#include <lttng/tracepoint.h>

LTTNG_UST_TRACEPOINT_EVENT(rtcpeer, ints,
	LTTNG_UST_TP_ARGS(uint64_t, a, uint64_t, b),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer(uint64_t, a, a)
		lttng_ust_field_integer(uint64_t, b, b)
	)
)

LTTNG_UST_TRACEPOINT_EVENT(rtcpeer, strs,
	LTTNG_UST_TP_ARGS(const char *, category, const char *, message),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_string(category, category)
		lttng_ust_field_string(message, message)
	)
)

LTTNG_UST_TRACEPOINT_EVENT(rtcpeer, idle,
	LTTNG_UST_TP_ARGS(uint64_t, a),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer(uint64_t, a, a)
	)
)

#endif /* RTCPEER_TP_H */

#include <lttng/tracepoint-event.h>
