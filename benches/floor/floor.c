/* Uncontended lock+unlock pairs, side by side in one run: pthread_mutex,
 * rtcore's rtc_mutex (checking on and off, nothing else held), and the C
 * models of floor_lib.c (rtcore's path reduced to its least, finding the
 * thread's record through rtcore's table or through initial-exec TLS, and
 * the table with nothing recorded).
 * Prints each variant's best sample and its ratio to pthread's.
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
int ie_lock(struct floor_mutex *);
int ie_unlock(struct floor_mutex *);
void floor_register(struct record *, uint64_t);

static uint64_t record_words[1024] __attribute__((aligned(64)));
static struct floor_mutex model __attribute__((aligned(64)));
static rtc_mutex rtc = RTC_MUTEX_INIT;
static pthread_mutex_t pt = PTHREAD_MUTEX_INITIALIZER;

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

int main(void)
{
	long pairs = env_long("FLOOR_PAIRS", 10000000);
	long samples = env_long("FLOOR_SAMPLES", 9);
	enum { NV = 6 };
	const char *names[NV] = {
		"pthread_mutex",
		"rtc_mutex, checking on",
		"rtc_mutex, checking off",
		"model: rtcore's table lookup",
		"model: initial-exec TLS",
		"model: table, nothing recorded",
	};
	double best[NV];
	for (int v = 0; v < NV; v++)
		best[v] = 1e30;

	must(rtc_init(NULL), "rtc_init");
	must(rtc_lockrank_set_mode(RTC_LOCKRANK_REPORT), "rtc_lockrank_set_mode");
	floor_register((struct record *)record_words, 7);
	model.magic = 1;
	model.self = (uint64_t)&model;
	model.rank = 5;

	for (long s = 0; s < samples; s++) {
		for (int v = 0; v < NV; v++) {
			double t0 = now_ns();
			switch (v) {
			case 0:
				for (long i = 0; i < pairs; i++) {
					if (pthread_mutex_lock(&pt) || pthread_mutex_unlock(&pt))
						abort();
				}
				break;
			case 1:
			case 2:
				must(rtc_lockrank_set_mode(v == 1 ? RTC_LOCKRANK_REPORT : RTC_LOCKRANK_OFF),
				     "rtc_lockrank_set_mode");
				t0 = now_ns();
				for (long i = 0; i < pairs; i++) {
					if (rtc_mutex_lock(&rtc) | rtc_mutex_unlock(&rtc))
						abort();
				}
				break;
			case 3:
				for (long i = 0; i < pairs; i++) {
					if (table_lock(&model) | table_unlock(&model))
						abort();
				}
				break;
			case 4:
				for (long i = 0; i < pairs; i++) {
					if (ie_lock(&model) | ie_unlock(&model))
						abort();
				}
				break;
			case 5:
				for (long i = 0; i < pairs; i++) {
					if (bare_lock(&model) | bare_unlock(&model))
						abort();
				}
				break;
			}
			double ns = (now_ns() - t0) / pairs;
			if (ns < best[v])
				best[v] = ns;
		}
	}
	if (model.count != (uint64_t)(3 * pairs * samples)) {
		fprintf(stderr, "floor: the models counted %llu acquisitions, expected %llu\n",
			(unsigned long long)model.count, (unsigned long long)(3 * pairs * samples));
		return 1;
	}
	printf("uncontended lock+unlock pair, best of %ld samples of %ld pairs, ns (ratio to pthread)\n",
	       samples, pairs);
	for (int v = 0; v < NV; v++)
		printf("  %-32s %6.2f  %.3fx\n", names[v], best[v], best[v] / best[0]);
	must(rtc_shutdown(), "rtc_shutdown");
	return 0;
}
