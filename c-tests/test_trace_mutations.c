/* rtc_trace_check on damaged traces, through the C entry point: a real
 * trace (threads attaching, contending for a mutex, blocking, logging) is
 * recorded into memory, then mutated many times (bits flipped, bytes set,
 * inserted, deleted, the tail cut), and every copy is checked. Each check
 * must answer RTC_OK or RTC_ERR_BAD_TRACE with a report, never crash. Run
 * under valgrind by c-tests/run.sh (AddressSanitizer does not see into the
 * Rust side); iterations: 20 x RTC_TEST_SCALE, or 200 under valgrind. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#include "rtc_test.h"

static uint8_t *trace;
static size_t trace_len, trace_cap;

static int32_t collect(const uint8_t *data, size_t len, void *user) {
    (void)user;
    if (trace_len + len > trace_cap) {
        size_t cap = (trace_len + len) * 2;
        uint8_t *p = realloc(trace, cap);
        if (!p) return -1;
        trace = p;
        trace_cap = cap;
    }
    memcpy(trace + trace_len, data, len);
    trace_len += len;
    return 0;
}

static rtc_mutex shared = RTC_MUTEX_INIT;
static atomic_int stop;

static void *worker(void *arg) {
    char name[16];
    snprintf(name, sizeof name, "w%d", (int)(long)arg);
    CHECK_STATUS(rtc_thread_attach(name, NULL), RTC_OK);
    int n = 0;
    while (!atomic_load(&stop)) {
        RTC_REGION_BEGIN("iteration");
        CHECK_STATUS(rtc_mutex_lock(&shared), RTC_OK);
        usleep(50);
        CHECK_STATUS(rtc_mutex_unlock(&shared), RTC_OK);
        rtc_enter_blocking("sleep");
        usleep(100);
        rtc_exit_blocking();
        RTC_COUNTER("n", n++);
        RTC_LOG("worker", "tick");
        RTC_REGION_END();
        rtc_safepoint();
    }
    CHECK_STATUS(rtc_thread_detach(), RTC_OK);
    return NULL;
}

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

int main(void) {
    rtc_trace_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.size = sizeof cfg;
    cfg.sink_kind = RTC_TRACE_SINK_CALLBACK;
    cfg.write = collect;
    CHECK_STATUS(rtc_trace_start(&cfg), RTC_OK);
    pthread_t t[3];
    for (long i = 0; i < 3; i++) pthread_create(&t[i], NULL, worker, (void *)i);
    usleep(getenv("RTC_TEST_SLOW") ? 200000 : 20000);
    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    CHECK_STATUS(rtc_trace_stop(), RTC_OK);
    char report[1024];
    CHECK_STATUS(rtc_trace_check(trace, trace_len, report, sizeof report), RTC_OK);
    /* Runtime events to damage (a contended lock is likely but not certain
     * in so short a window under valgrind). */
    CHECK_CONTAINS(report, "consistent trace");
    CHECK_CONTAINS(report, "enter blocking");
    CHECK_CONTAINS(report, "region begin");

    /* Valgrind (RTC_TEST_SLOW) checks fewer copies, each much more slowly. */
    int rounds = getenv("RTC_TEST_SLOW") ? 200 : 20 * rtc_t_scale(), ok = 0, bad = 0, other = 0;
    uint8_t *copy = malloc(trace_len + 64);
    for (int r = 0; r < rounds; r++) {
        size_t len = trace_len;
        memcpy(copy, trace, len);
        int mutations = 1 + (int)(next() % 4);
        for (int m = 0; m < mutations && len > 0; m++) {
            size_t at = (size_t)(next() % len);
            switch (next() % 5) {
            case 0: copy[at] ^= (uint8_t)(1u << (next() % 8)); break;
            case 1: copy[at] = (uint8_t)next(); break;
            case 2: /* insert up to 16 bytes */
                if (len + 16 <= trace_len + 64) {
                    size_t n = 1 + (size_t)(next() % 16);
                    memmove(copy + at + n, copy + at, len - at);
                    for (size_t i = 0; i < n; i++) copy[at + i] = (uint8_t)next();
                    len += n;
                }
                break;
            case 3: { /* delete up to 16 bytes */
                size_t n = 1 + (size_t)(next() % 16);
                if (at + n > len) n = len - at;
                memmove(copy + at, copy + at + n, len - at - n);
                len -= n;
                break;
            }
            default: len = at; break; /* cut */
            }
        }
        report[0] = 0;
        rtc_status s = rtc_trace_check(copy, len, report, sizeof report);
        if (s == RTC_OK) ok++;
        else if ((s == RTC_ERR_BAD_TRACE || s == RTC_ERR_TRACE_CUT) && report[0] != 0) bad++;
        else other++;
    }
    free(copy);
    free(trace);
    printf("%d mutated traces: %d still valid, %d rejected (or cut) with a report, %d other\n",
           rounds, ok, bad, other);
    CHECK(other == 0);
    CHECK(bad > rounds / 2); /* most damage is caught */
    return rtc_t_finish();
}
