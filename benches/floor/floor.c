/* Uncontended lock+unlock pairs, side by side in one run, in two tables:
 *
 * - mutex: pthread_mutex, rtcore's rtc_mutex (checking on and off,
 *   nothing else held), and the C models of floor_lib.c (rtcore's path
 *   reduced to its least, finding the thread's record through rtcore's
 *   table or through initial-exec TLS; the table with nothing recorded;
 *   checking off as rtcore must do it);
 * - read lock: pthread_rwlock_rdlock+unlock, rtc_rwlock_rdlock+unlock
 *   (checking on), and floor_lib.c's read-lock models.
 *
 * Prints each variant's best sample and its ratio to pthread's in its
 * table.
 *
 * Environment: FLOOR_PAIRS (pairs per sample, default 10000000),
 * FLOOR_SAMPLES (samples per variant, round robin, default 9). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "rtcore.h"

struct floor_mutex {
	uint64_t word;
	uint64_t name, rank_name;
	uint32_t rank, magic;
	uint64_t self, count;
};
struct record;
int table_lock(struct floor_mutex *);
int table_unlock(struct floor_mutex *);
int bare_lock(struct floor_mutex *);
int bare_unlock(struct floor_mutex *);
int off_unlock(struct floor_mutex *);
int ie_lock(struct floor_mutex *);
int ie_unlock(struct floor_mutex *);
int rw_table_rdlock(struct floor_mutex *);
int rw_table_rdunlock(struct floor_mutex *);
int rw_ie_rdlock(struct floor_mutex *);
int rw_ie_rdunlock(struct floor_mutex *);
int rw_bare_rdlock(struct floor_mutex *);
int rw_bare_rdunlock(struct floor_mutex *);
void floor_register(struct record *, uint64_t);

static uint64_t record_words[1024] __attribute__((aligned(64)));
static struct floor_mutex model __attribute__((aligned(64)));
static struct floor_mutex rw_model __attribute__((aligned(64)));
static rtc_mutex rtc = RTC_MUTEX_INIT;
static rtc_rwlock rtc_rw = RTC_RWLOCK_INIT;
static pthread_mutex_t pt = PTHREAD_MUTEX_INITIALIZER;
static pthread_rwlock_t pt_rw = PTHREAD_RWLOCK_INITIALIZER;

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static long env_long(const char *name, long dflt)
{
	const char *v = getenv(name);
	if (!v || !*v)
		return dflt;
	char *end;
	long n = strtol(v, &end, 10);
	if (*end || n <= 0) {
		fprintf(stderr, "floor: %s must be a positive integer, not '%s'\n", name, v);
		exit(2);
	}
	return n;
}

static void must(rtc_status s, const char *what)
{
	if (s != RTC_OK) {
		fprintf(stderr, "floor: %s returned %d\n", what, (int)s);
		exit(1);
	}
}

/* Every variant: its table (0 mutex, 1 read lock) and its name. */
enum variant {
	PTHREAD_MUTEX,
	RTC_ON,
	RTC_OFF,
	M_TABLE,
	M_IE,
	M_BARE,
	M_OFF,
	PTHREAD_RD,
	RTC_RD,
	RW_TABLE,
	RW_IE,
	RW_BARE,
	NV
};

static const struct {
	int table;
	const char *name;
} variants[NV] = {
	[PTHREAD_MUTEX] = { 0, "pthread_mutex" },
	[RTC_ON] = { 0, "rtc_mutex, checking on" },
	[RTC_OFF] = { 0, "rtc_mutex, checking off" },
	[M_TABLE] = { 0, "model: rtcore's table lookup" },
	[M_IE] = { 0, "model: initial-exec TLS" },
	[M_BARE] = { 0, "model: table, nothing recorded" },
	[M_OFF] = { 0, "model: table, checking off as rtcore must" },
	[PTHREAD_RD] = { 1, "pthread_rwlock_rdlock" },
	[RTC_RD] = { 1, "rtc_rwlock_rdlock, checking on" },
	[RW_TABLE] = { 1, "model: rtcore's table lookup" },
	[RW_IE] = { 1, "model: initial-exec TLS" },
	[RW_BARE] = { 1, "model: table, nothing recorded" },
};

#define PAIRS(lock, unlock, arg)                                              \
	for (long i = 0; i < pairs; i++) {                                    \
		if (lock(arg))                                                \
			abort();                                              \
		if (unlock(arg))                                              \
			abort();                                              \
	}

/* One sample of `pairs` pairs of variant v, in ns per pair. */
static double sample(int v, long pairs)
{
	if (v == RTC_ON || v == RTC_OFF || v == RTC_RD)
		must(rtc_lockrank_set_mode(v == RTC_OFF ? RTC_LOCKRANK_OFF : RTC_LOCKRANK_REPORT),
		     "rtc_lockrank_set_mode");
	double t0 = now_ns();
	switch (v) {
	case PTHREAD_MUTEX:
		PAIRS(pthread_mutex_lock, pthread_mutex_unlock, &pt)
		break;
	case RTC_ON:
	case RTC_OFF:
		PAIRS(rtc_mutex_lock, rtc_mutex_unlock, &rtc)
		break;
	case M_TABLE:
		PAIRS(table_lock, table_unlock, &model)
		break;
	case M_IE:
		PAIRS(ie_lock, ie_unlock, &model)
		break;
	case M_BARE:
		PAIRS(bare_lock, bare_unlock, &model)
		break;
	case M_OFF:
		PAIRS(bare_lock, off_unlock, &model)
		break;
	case PTHREAD_RD:
		PAIRS(pthread_rwlock_rdlock, pthread_rwlock_unlock, &pt_rw)
		break;
	case RTC_RD:
		PAIRS(rtc_rwlock_rdlock, rtc_rwlock_unlock, &rtc_rw)
		break;
	case RW_TABLE:
		PAIRS(rw_table_rdlock, rw_table_rdunlock, &rw_model)
		break;
	case RW_IE:
		PAIRS(rw_ie_rdlock, rw_ie_rdunlock, &rw_model)
		break;
	case RW_BARE:
		PAIRS(rw_bare_rdlock, rw_bare_rdunlock, &rw_model)
		break;
	}
	return (now_ns() - t0) / pairs;
}

int main(void)
{
	long pairs = env_long("FLOOR_PAIRS", 10000000);
	long samples = env_long("FLOOR_SAMPLES", 9);
	double best[NV];
	for (int v = 0; v < NV; v++)
		best[v] = 1e30;

	must(rtc_init(NULL), "rtc_init");
	floor_register((struct record *)record_words, 7);
	model.magic = rw_model.magic = 1;
	model.self = (uint64_t)&model;
	rw_model.self = (uint64_t)&rw_model;
	model.rank = rw_model.rank = 5;

	for (long s = 0; s < samples; s++) {
		for (int v = 0; v < NV; v++) {
			double ns = sample(v, pairs);
			if (ns < best[v])
				best[v] = ns;
		}
	}
	/* The models ran at all: every model counts its acquisitions (four
	 * mutex variants, three read-lock variants), and every read lock left
	 * the word as it found it. */
	uint64_t want = (uint64_t)(4 * pairs * samples), rw_want = (uint64_t)(3 * pairs * samples);
	if (model.count != want || rw_model.count != rw_want || rw_model.word != 0) {
		fprintf(stderr,
			"floor: the mutex models counted %llu acquisitions (expected %llu), the read-lock models %llu (expected %llu), the read-lock word is %llu (expected 0)\n",
			(unsigned long long)model.count, (unsigned long long)want,
			(unsigned long long)rw_model.count, (unsigned long long)rw_want,
			(unsigned long long)rw_model.word);
		return 1;
	}
	printf("uncontended lock+unlock pair, best of %ld samples of %ld pairs, ns (ratio to the table's pthread)\n",
	       samples, pairs);
	for (int t = 0; t < 2; t++) {
		printf("%s\n", t == 0 ? " mutex" : " read lock");
		int base = t == 0 ? PTHREAD_MUTEX : PTHREAD_RD;
		for (int v = 0; v < NV; v++) {
			if (variants[v].table == t)
				printf("  %-42s %6.2f  %.3fx\n", variants[v].name, best[v],
				       best[v] / best[base]);
		}
	}
	must(rtc_shutdown(), "rtc_shutdown");
	return 0;
}
