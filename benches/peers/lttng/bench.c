/*
 * Peer benchmark: rtcore's user events against LTTng-UST tracepoints, in
 * one process and one run. Run it through run.sh, which builds it and runs
 * it inside a started LTTng session with rtcpeer:ints and rtcpeer:strs
 * enabled (rtcpeer:idle is left disabled).
 *
 * rtcore is linked (-lrtcore) and used through include/rtcore.h: RTC_LOG is
 * the header's macro (a relaxed atomic load of rtc_trace_on, then rtc_log
 * while tracing).
 *
 * Every variant is one non-inlined loop `for (i = 0; i < n; i++) {
 * KEEP(i); body }`; a sample times one loop with CLOCK_MONOTONIC and divides
 * by n. Samples are taken round robin: each round visits every variant
 * once, starting one further along each round, and takes SAMPLES
 * consecutive samples of it, after one short warm-up sample of each. The
 * figure reported is the median over all samples.
 *
 * Environment: PEER_ROUNDS (default 7, at least 3), PEER_SAMPLES (default
 * 3), PEER_OFF_ITERS (iterations per sample of the untraced variants,
 * default 2000000), PEER_ON_ITERS (of the traced rtcore variants and the
 * enabled LTTng tracepoints, default 500000), PEER_LTTNG_PAUSE_MS (sleep
 * after each enabled-LTTng sample so the consumer daemon can drain the
 * buffers before the next one, default 30), PEER_VERBOSE=1 (every sample
 * on stderr).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include <lttng/ust-version.h>

#include "rtcore.h"
#include "rtcpeer_tp.h"

#if !defined(__x86_64__)
#error "the floor variant reads the TSC: this benchmark is for x86_64"
#endif

/* Keep a value alive (the loop counter) without other cost. */
#define KEEP(x) __asm__ volatile("" : : "r"(x))

static const char CATEGORY[] = "bench";
static const char MESSAGE[] = "request done";
static const char REGION[] = "bench region";

/* ------------------------------------------------------------------------ */
/* Failure. */

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2), cold));

static void die(const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	fputs("error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	_exit(1);
}

static void __attribute__((noinline, cold)) rtc_fail(const char *what, rtc_status s)
{
	char buf[1024];
	rtc_last_error_message(buf, sizeof buf);
	die("%s returned %d (%s): %s", what, (int)s, rtc_status_str(s), buf);
}

#define RTC_CHECK(what, call) do { rtc_status s_ = (call); if (s_ != RTC_OK) rtc_fail((what), s_); } while (0)

/* ------------------------------------------------------------------------ */
/* rtcore tracing into /dev/null. */

static int devnull = -1;

static void trace_start(void)
{
	rtc_trace_config cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.size = (uint32_t)sizeof cfg;
	cfg.sink_kind = RTC_TRACE_SINK_FD;
	cfg.fd = devnull;
	RTC_CHECK("rtc_trace_start", rtc_trace_start(&cfg));
	if (rtc_trace_enabled() != 1 || !RTC_TRACE_ON())
		die("tracing is not on after rtc_trace_start returned RTC_OK");
	/* One checked call: RTC_LOG discards rtc_log's status. */
	RTC_CHECK("rtc_log", rtc_log(CATEGORY, MESSAGE));
}

static void trace_stop(void)
{
	RTC_CHECK("rtc_log", rtc_log(CATEGORY, MESSAGE));
	RTC_CHECK("rtc_trace_stop", rtc_trace_stop());
	if (rtc_trace_enabled() != 0 || RTC_TRACE_ON())
		die("tracing still on after rtc_trace_stop");
}

/* ------------------------------------------------------------------------ */
/* The floor: rdtsc and a 16-byte record (tsc, sequence number) into a
 * thread-local ring of 256 records (4 KiB) that wraps, through a call that is
 * never inlined (noipa: no interprocedural shortcuts either). */

#define RING_RECS 256
struct floor_rec { uint64_t tsc, seq; };
struct floor_ring {
	struct floor_rec rec[RING_RECS];
	uint64_t pos, seq;
};
static __thread struct floor_ring ring __attribute__((aligned(64)));

__attribute__((noipa)) void floor_event(void)
{
	uint64_t tsc = __rdtsc();
	uint64_t i = ring.pos & (RING_RECS - 1);
	ring.rec[i].tsc = tsc;
	ring.rec[i].seq = ring.seq++;
	ring.pos = i + 1;
}

/* ------------------------------------------------------------------------ */
/* The variants. */

enum v {
	V_EMPTY,
	V_FLOOR,
	V_CLOCK,
	V_RTC_MACRO_OFF,
	V_RTC_LOG_OFF,
	V_RTC_MACRO_ON,
	V_RTC_REGION_ON,
	V_LTTNG_INTS,
	V_LTTNG_STRS,
	V_LTTNG_IDLE,
	V_COUNT
};

static const char *const LABEL[V_COUNT] = {
	"(0) empty loop",
	"(1) FLOOR rdtsc+16B TLS ring, noinline",
	"(2) clock_gettime(CLOCK_MONOTONIC)",
	"(3) rtcore RTC_LOG, off (load+branch)",
	"(4) rtcore rtc_log() called, off",
	"(5) rtcore RTC_LOG, ON",
	"(6) rtcore region begin+end, ON (pair)",
	"(7) LTTng tracepoint, 2 ints, enabled",
	"(8) LTTng tracepoint, 2 strings, enabled",
	"(9) LTTng tracepoint, disabled",
};

static int traced(enum v v) { return v == V_RTC_MACRO_ON || v == V_RTC_REGION_ON; }
static int lttng_on(enum v v) { return v == V_LTTNG_INTS || v == V_LTTNG_STRS; }
static int on(enum v v) { return traced(v) || lttng_on(v); }

static __attribute__((noinline)) void loop_empty(uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		KEEP(i);
}

static __attribute__((noinline)) void loop_floor(uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		KEEP(i);
		floor_event();
	}
}

static __attribute__((noinline)) void loop_clock(uint64_t n)
{
	struct timespec ts;
	for (uint64_t i = 0; i < n; i++) {
		KEEP(i);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		__asm__ volatile("" : : "r"(&ts) : "memory");
	}
}

/* The header's RTC_LOG, as a C program writes it. */
static __attribute__((noinline)) void loop_rtc_macro(uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		KEEP(i);
		RTC_LOG("bench", "request done");
	}
}

static __attribute__((noinline)) void loop_rtc_log(uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		KEEP(i);
		rtc_status s = rtc_log(CATEGORY, MESSAGE);
		if (s != RTC_OK)
			rtc_fail("rtc_log", s);
	}
}

static __attribute__((noinline)) void loop_rtc_region(uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		KEEP(i);
		rtc_status s = rtc_region_begin(REGION);
		if (s != RTC_OK)
			rtc_fail("rtc_region_begin", s);
		s = rtc_region_end();
		if (s != RTC_OK)
			rtc_fail("rtc_region_end", s);
	}
}

static __attribute__((noinline)) void loop_lttng_ints(uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		KEEP(i);
		lttng_ust_tracepoint(rtcpeer, ints, i, 42);
	}
}

static __attribute__((noinline)) void loop_lttng_strs(uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		KEEP(i);
		lttng_ust_tracepoint(rtcpeer, strs, "bench", "request done");
	}
}

static __attribute__((noinline)) void loop_lttng_idle(uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		KEEP(i);
		lttng_ust_tracepoint(rtcpeer, idle, i);
	}
}

static void run(enum v v, uint64_t n)
{
	switch (v) {
	case V_EMPTY: loop_empty(n); break;
	case V_FLOOR: loop_floor(n); break;
	case V_CLOCK: loop_clock(n); break;
	case V_RTC_MACRO_OFF:
	case V_RTC_MACRO_ON: loop_rtc_macro(n); break;
	case V_RTC_LOG_OFF: loop_rtc_log(n); break;
	case V_RTC_REGION_ON: loop_rtc_region(n); break;
	case V_LTTNG_INTS: loop_lttng_ints(n); break;
	case V_LTTNG_STRS: loop_lttng_strs(n); break;
	case V_LTTNG_IDLE: loop_lttng_idle(n); break;
	default: die("bad variant %d", (int)v);
	}
}

/* ------------------------------------------------------------------------ */
/* Samples and statistics. */

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static uint64_t minflt(void)
{
	struct rusage ru;
	getrusage(RUSAGE_THREAD, &ru);
	return (uint64_t)ru.ru_minflt;
}

static double rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long size = 0, res = 0;
	if (f) {
		if (fscanf(f, "%lu %lu", &size, &res) != 2)
			res = 0;
		fclose(f);
	}
	return (double)res * (double)sysconf(_SC_PAGESIZE);
}

struct sample { double ns, flt_k, rss_b; };

static struct sample sample(enum v v, uint64_t n)
{
	if ((RTC_TRACE_ON() != 0) != (traced(v) != 0))
		die("%s: rtc_trace_on is %d before the sample", LABEL[v], (int)RTC_TRACE_ON());
	double m0 = rss_bytes();
	uint64_t f0 = minflt();
	double t0 = now_ns();
	run(v, n);
	double t1 = now_ns();
	uint64_t f1 = minflt();
	double m1 = rss_bytes();
	struct sample s = {
		.ns = (t1 - t0) / (double)n,
		.flt_k = (double)(f1 - f0) * 1000.0 / (double)n,
		.rss_b = (m1 - m0) / (double)n,
	};
	return s;
}

struct stats { double median, min, max; };

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static struct stats stats_of(const double *xs, size_t k)
{
	double *v = malloc(k * sizeof *v);
	if (!v)
		die("out of memory");
	memcpy(v, xs, k * sizeof *v);
	qsort(v, k, sizeof *v, cmp_double);
	struct stats s = {
		.median = k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2,
		.min = v[0],
		.max = v[k - 1],
	};
	free(v);
	return s;
}

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *s = getenv(name);
	if (!s || !*s)
		return def;
	char *end;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 10);
	if (errno || *end)
		die("%s=%s: not a number", name, s);
	return (uint64_t)x;
}

/* ------------------------------------------------------------------------ */
/* Machine. */

static void read_line(const char *path, char *buf, size_t len)
{
	snprintf(buf, len, "?");
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	if (fgets(buf, (int)len, f))
		buf[strcspn(buf, "\n")] = 0;
	fclose(f);
}

static void print_machine(void)
{
	char model[256] = "unknown", line[512];
	int cpus = 0;
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (f) {
		while (fgets(line, sizeof line, f)) {
			if (!strncmp(line, "processor", 9))
				cpus++;
			if (!strncmp(line, "model name", 10) && !strcmp(model, "unknown")) {
				char *c = strchr(line, ':');
				if (c) {
					c++;
					while (*c == ' ' || *c == '\t')
						c++;
					snprintf(model, sizeof model, "%s", c);
					model[strcspn(model, "\n")] = 0;
				}
			}
		}
		fclose(f);
	}
	char cs[128], kernel[128], load[256];
	read_line("/sys/devices/system/clocksource/clocksource0/current_clocksource", cs, sizeof cs);
	read_line("/proc/sys/kernel/osrelease", kernel, sizeof kernel);
	read_line("/proc/loadavg", load, sizeof load);
	cpu_set_t set;
	int nproc = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : -1;
	printf("nproc: %d (online %ld, %d in /proc/cpuinfo)\n", nproc,
	       sysconf(_SC_NPROCESSORS_ONLN), cpus);
	printf("CPU model: %s\n", model);
	printf("clocksource: %s\n", cs);
	printf("kernel: %s\n", kernel);
	printf("load average at start: %s\n", load);
}

/* ------------------------------------------------------------------------ */

int main(void)
{
	uint64_t rounds_env = env_u64("PEER_ROUNDS", 7), samples_env = env_u64("PEER_SAMPLES", 3);
	const int rounds = rounds_env < 3 ? 3 : (int)rounds_env;
	const int samples = samples_env < 1 ? 1 : (int)samples_env;
	uint64_t off_iters = env_u64("PEER_OFF_ITERS", 2000000);
	uint64_t on_iters = env_u64("PEER_ON_ITERS", 500000);
	const uint64_t pause_ms = env_u64("PEER_LTTNG_PAUSE_MS", 30);
	const int verbose = env_u64("PEER_VERBOSE", 0) != 0;
	if (off_iters < 10)
		off_iters = 10;
	if (on_iters < 10)
		on_iters = 10;
#define ITERS(v) (on(v) ? on_iters : off_iters)

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("rtcore vs LTTng-UST: user-event cost, one process, one run\n");
	print_machine();
	if (strcmp(rtc_version(), RTC_VERSION_STRING) != 0)
		die("librtcore %s does not match include/rtcore.h %s", rtc_version(), RTC_VERSION_STRING);
	printf("rtcore: %s (header %s), linked with -lrtcore\n", rtc_version(), RTC_VERSION_STRING);

	/* The session must be live with ints and strs enabled, idle not. The
	 * application registers with the session daemon in a constructor that
	 * waits (LTTNG_UST_REGISTER_TIMEOUT, 3 s by default) for the enabled
	 * events; wait a little more before giving up. */
	for (int k = 0; k < 200 && !(lttng_ust_tracepoint_enabled(rtcpeer, ints) &&
				     lttng_ust_tracepoint_enabled(rtcpeer, strs)); k++)
		usleep(10000);
	if (!lttng_ust_tracepoint_enabled(rtcpeer, ints) || !lttng_ust_tracepoint_enabled(rtcpeer, strs))
		die("the LTTng tracepoints rtcpeer:ints and rtcpeer:strs are not enabled: run through "
		    "run.sh (a started session with both events enabled)");
	if (lttng_ust_tracepoint_enabled(rtcpeer, idle))
		die("rtcpeer:idle is enabled: it must stay disabled (the disabled-tracepoint variant)");
	printf("LTTng-UST: %s (headers), rtcpeer:ints and rtcpeer:strs enabled in a "
	       "started session, rtcpeer:idle disabled\n", LTTNG_UST_VERSION);
	printf("\nMethod:\n");
	printf("  every variant is one non-inlined loop `for (i = 0; i < n; i++) { KEEP(i); body }` "
	       "(gcc -O2); a sample times one loop with CLOCK_MONOTONIC and divides by n (n = %llu for "
	       "(0)-(4) and (9), %llu for (5)-(8));\n",
	       (unsigned long long)off_iters, (unsigned long long)on_iters);
	printf("  %d rounds; each round visits every variant once (the first one rotating by one each "
	       "round) and takes %d consecutive samples of it; one warm-up sample (n/10) of each "
	       "first; figures are medians over the %d samples per variant;\n",
	       rounds, samples, rounds * samples);
	printf("  FLOOR: a noipa function doing rdtsc and storing a 16-byte record (tsc, sequence "
	       "number) into a __thread ring of 256 records (4 KiB, wraps);\n");
	printf("  rtcore: RTC_LOG(\"bench\", \"request done\") is the header's macro (its status "
	       "discarded, as the macro does; a checked rtc_log call opens and closes each traced "
	       "block); region = rtc_region_begin(\"bench region\") + rtc_region_end(), each status "
	       "checked; (5)(6) run while a trace is recorded (rtc_trace_start, FD sink on /dev/null: "
	       "the writer runs, the kernel discards the bytes), started before a variant's samples "
	       "in a round and stopped after them; (3)(4) with no trace;\n");
	printf("  LTTng: lttng_ust_tracepoint(rtcpeer, ints, i, 42) (two uint64 fields) and "
	       "lttng_ust_tracepoint(rtcpeer, strs, \"bench\", \"request done\") (two string fields), "
	       "both enabled in a started session whose consumer daemon writes the trace to disk "
	       "(run.sh: one userspace channel, --subbuf-size=4M --num-subbuf=8, discard mode); after "
	       "each of their samples, a %llu ms pause (not timed) lets the consumer drain; (9) a "
	       "tracepoint whose event is not enabled;\n", (unsigned long long)pause_ms);
	printf("  ratios: / FLOOR and / clock = a variant's median over the floor's and "
	       "clock_gettime's medians; per event = per pair / 2.\n\n");

	devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (devnull < 0)
		die("open /dev/null: %s", strerror(errno));
	trace_start();
	RTC_CHECK("rtc_region_begin", rtc_region_begin(REGION));
	RTC_CHECK("rtc_region_end", rtc_region_end());
	trace_stop();

	const int per = rounds * samples;
	struct sample *res = calloc((size_t)V_COUNT * (size_t)per, sizeof *res);
	int cnt[V_COUNT] = { 0 };
	uint64_t lttng_events = 0;
	if (!res)
		die("out of memory");
	double t_all = now_ns();
	for (int v = 0; v < V_COUNT; v++) {
		if (traced(v))
			trace_start();
		uint64_t n = ITERS(v) / 10;
		sample(v, n);
		if (lttng_on(v)) {
			lttng_events += n;
			usleep(pause_ms * 1000);
		}
		if (traced(v))
			trace_stop();
	}
	for (int r = 0; r < rounds; r++) {
		for (int j = 0; j < V_COUNT; j++) {
			enum v v = (enum v)((r + j) % V_COUNT);
			if (traced(v))
				trace_start();
			for (int s = 0; s < samples; s++) {
				struct sample x = sample(v, ITERS(v));
				if (lttng_on(v)) {
					lttng_events += ITERS(v);
					usleep(pause_ms * 1000);
				}
				if (verbose)
					fprintf(stderr, "    round %d %-40s %8.2f ns  minflt/1k %6.2f\n",
						r + 1, LABEL[v], x.ns, x.flt_k);
				res[v * per + cnt[v]++] = x;
			}
			if (traced(v))
				trace_stop();
		}
		fprintf(stderr, "  round %d/%d done (%.1f s)\n", r + 1, rounds,
			(now_ns() - t_all) / 1e9);
	}
	double elapsed = (now_ns() - t_all) / 1e9;

	struct stats st[V_COUNT];
	double med[V_COUNT], flt[V_COUNT], rssb[V_COUNT];
	double *tmp = malloc((size_t)per * sizeof *tmp);
	if (!tmp)
		die("out of memory");
	for (int v = 0; v < V_COUNT; v++) {
		for (int k = 0; k < per; k++)
			tmp[k] = res[v * per + k].ns;
		st[v] = stats_of(tmp, (size_t)per);
		med[v] = st[v].median;
		for (int k = 0; k < per; k++)
			tmp[k] = res[v * per + k].flt_k;
		flt[v] = stats_of(tmp, (size_t)per).median;
		for (int k = 0; k < per; k++)
			tmp[k] = res[v * per + k].rss_b;
		rssb[v] = stats_of(tmp, (size_t)per).median;
	}
	const double floor_ns = med[V_FLOOR], clock_ns = med[V_CLOCK];

	printf("Results: ns per iteration (per begin+end pair for (6)), %d samples per variant\n", per);
	printf("%-40s %9s %8s %8s %7s %8s %8s %10s %9s\n", "variant", "median", "min", "max",
	       "spread", "/ FLOOR", "/ clock", "minflt/1k", "RSS B/it");
	for (int v = 0; v < V_COUNT; v++)
		printf("%-40s %9.2f %8.2f %8.2f %6.1f%% %7.2fx %7.2fx %10.2f %9.1f\n", LABEL[v],
		       st[v].median, st[v].min, st[v].max,
		       (st[v].max - st[v].min) / st[v].median * 100.0, st[v].median / floor_ns,
		       st[v].median / clock_ns, flt[v], rssb[v]);
	printf("\nPer event (medians):\n");
#define ROW(name, ns) printf("  %-46s %8.2f ns  %6.2fx FLOOR  %6.2fx clock\n", (name), (ns), \
			     (ns) / floor_ns, (ns) / clock_ns)
	ROW("FLOOR (rdtsc + 16 B record)", floor_ns);
	ROW("clock_gettime(CLOCK_MONOTONIC)", clock_ns);
	ROW("rtcore RTC_LOG ON", med[V_RTC_MACRO_ON]);
	ROW("rtcore region, per event (pair / 2)", med[V_RTC_REGION_ON] / 2);
	ROW("rtcore region, per pair", med[V_RTC_REGION_ON]);
	ROW("LTTng tracepoint, 2 ints", med[V_LTTNG_INTS]);
	ROW("LTTng tracepoint, 2 strings", med[V_LTTNG_STRS]);
	ROW("rtcore RTC_LOG off (load + branch)", med[V_RTC_MACRO_OFF]);
	ROW("rtcore rtc_log() called off", med[V_RTC_LOG_OFF]);
	ROW("LTTng tracepoint, disabled", med[V_LTTNG_IDLE]);
	ROW("empty loop", med[V_EMPTY]);
	printf("\nrtcore vs LTTng (below 1: rtcore cheaper):\n");
#define CMP(a, x, b, y) printf("  %-24s / %-30s %7.2f / %7.2f ns = %.2fx\n", (a), (b), (x), (y), \
			       (x) / (y))
	CMP("RTC_LOG ON", med[V_RTC_MACRO_ON], "LTTng tracepoint 2 ints", med[V_LTTNG_INTS]);
	CMP("RTC_LOG ON", med[V_RTC_MACRO_ON], "LTTng tracepoint 2 strings", med[V_LTTNG_STRS]);
	CMP("region per event", med[V_RTC_REGION_ON] / 2, "LTTng tracepoint 2 ints",
	    med[V_LTTNG_INTS]);
	CMP("RTC_LOG off", med[V_RTC_MACRO_OFF], "LTTng tracepoint disabled", med[V_LTTNG_IDLE]);

	uint64_t recs = ring.seq, sum = 0;
	for (int k = 0; k < RING_RECS; k++)
		sum += ring.rec[k].tsc ^ ring.rec[k].seq;
	printf("\nLTTng events emitted while enabled: %llu (ints and strs, warm-up included); "
	       "run.sh compares them with the session's discarded-event count\n",
	       (unsigned long long)lttng_events);
	printf("floor records written: %llu (ring checksum %#llx); timed part (with pauses) %.1f s\n",
	       (unsigned long long)recs, (unsigned long long)sum, elapsed);
	printf("SUMMARY lttng floor=%.2f clock=%.2f empty=%.2f rtc_log_on=%.2f region_pair=%.2f "
	       "region_event=%.2f rtc_log_off_call=%.2f rtc_macro_off=%.2f lttng_ints=%.2f "
	       "lttng_strs=%.2f lttng_disabled=%.2f lttng_events=%llu\n",
	       floor_ns, clock_ns, med[V_EMPTY], med[V_RTC_MACRO_ON], med[V_RTC_REGION_ON],
	       med[V_RTC_REGION_ON] / 2, med[V_RTC_LOG_OFF], med[V_RTC_MACRO_OFF],
	       med[V_LTTNG_INTS], med[V_LTTNG_STRS], med[V_LTTNG_IDLE],
	       (unsigned long long)lttng_events);
	free(tmp);
	free(res);
	close(devnull);
	return 0;
}
