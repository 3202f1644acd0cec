/* Bounded memory, loss recorded: a sink callback that blocks for 10 s
 * while four threads log at full speed. The trace's records waiting for
 * the sink never take more than its max_mb: whole generations are dropped
 * (the recording threads never wait), the peak resident memory stays under
 * the bound plus 20 MiB, and the trace still checks, with a loss record
 * for each dropped generation, counted by rtc_trace_get_stats. */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "rtc_test.h"

static int out_fd = -1;
static atomic_int calls;
static atomic_int armed; /* the first call after arming blocks */
static long block_ms;

static int32_t slow_sink(const uint8_t *data, size_t len, void *user) {
    (void)user;
    if (atomic_load(&armed) && atomic_fetch_add(&calls, 1) == 0) usleep((useconds_t)block_ms * 1000);
    while (len > 0) {
        ssize_t n = write(out_fd, data, len);
        if (n <= 0) return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static atomic_int stop;
static atomic_ulong logged;

static void *logger(void *arg) {
    (void)arg;
    unsigned long n = 0;
    while (!atomic_load(&stop)) {
        RTC_LOG("flood", "a line that is logged as fast as it can be");
        n++;
    }
    atomic_fetch_add(&logged, n);
    return NULL;
}

/* Peak resident memory so far, in KiB (VmHWM). */
static long peak_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &v) == 1) break;
    fclose(f);
    return v;
}

int main(void) {
    block_ms = getenv("RTC_TEST_SLOW") ? 3000 : 10000;
    char dir[] = "/tmp/rtcore-test-loss-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char path[300];
    snprintf(path, sizeof path, "%s/slow.rtctrace", dir);
    out_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(out_fd >= 0);
    /* The old size of the config (no max_mb) is still accepted. */
    rtc_trace_config c;
    memset(&c, 0, sizeof c);
    c.size = (uint32_t)offsetof(rtc_trace_config, max_mb);
    c.sink_kind = RTC_TRACE_SINK_CALLBACK;
    c.write = slow_sink;
    c.max_mb = 999; /* beyond the old size: never read */
    CHECK_STATUS(rtc_trace_start(&c), RTC_OK);
    CHECK_STATUS(rtc_trace_stop(), RTC_OK);
    atomic_store(&calls, 0);
    if (ftruncate(out_fd, 0) != 0 || lseek(out_fd, 0, SEEK_SET) != 0) CHECK(0);

    /* Valgrind runs ~50x slower: a smaller bound still overflows. */
    const long bound_mb = getenv("RTC_TEST_SLOW") ? 1 : 16;
    long before = peak_kib();
    c.size = sizeof c;
    c.max_mb = (uint32_t)bound_mb;
    c.generation_ms = 200;
    atomic_store(&armed, 1);
    CHECK_STATUS(rtc_trace_start(&c), RTC_OK);
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, logger, NULL);
    usleep((useconds_t)(block_ms + 500) * 1000);
    atomic_store(&stop, 1);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    CHECK_STATUS(rtc_trace_stop(), RTC_OK);
    long after = peak_kib();
    long grew_mb = (after - before) / 1024;
    printf("  %lu events logged; peak resident memory grew by %ld MiB (bound %ld MiB + 20)\n",
           (unsigned long)atomic_load(&logged), grew_mb, bound_mb);
    CHECK(before > 0 && after > 0);
    /* Under ASan (a quarantine of up to 256 MiB of freed blocks, and every
     * dropped batch is freed, plus shadow memory) or valgrind the process's
     * memory is the tool's: the bound is checked in the plain build, which
     * `cargo test` runs. */
    if (getenv("ASAN_OPTIONS") || getenv("RTC_TEST_SLOW"))
        printf("  (the memory bound is not checked under a sanitizer or valgrind)\n");
    else
        CHECK(grew_mb <= bound_mb + 20);

    rtc_trace_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    CHECK_STATUS(rtc_trace_get_stats(&st), RTC_OK);
    printf("  batches %llu, events %llu, bytes %llu; lost: %llu generations, %llu batches, %llu events, %llu bytes\n",
           (unsigned long long)st.batches, (unsigned long long)st.events,
           (unsigned long long)st.bytes, (unsigned long long)st.lost_generations,
           (unsigned long long)st.lost_batches, (unsigned long long)st.lost_events,
           (unsigned long long)st.lost_bytes);
    CHECK(st.tracing == 0);
    /* Under valgrind (~50x slower, and slower still in CI) the loggers may
     * not outrun even a 1 MiB bound: there the loss is checked only if it
     * happened; the plain build always checks it. */
    int slow = getenv("RTC_TEST_SLOW") != NULL;
    if (!slow || st.lost_generations > 0) {
        CHECK(st.lost_generations >= 1 && st.lost_events > 0 && st.lost_bytes > 0);
        if (!slow) CHECK(st.events > st.lost_events);
    }
    st.size = 3;
    CHECK_STATUS(rtc_trace_get_stats(&st), RTC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(rtc_trace_get_stats(NULL), RTC_ERR_NULL);

    /* The trace checks, and says what was lost. */
    char report[2048];
    CHECK_STATUS(rtc_trace_check_file(path, report, sizeof report), RTC_OK);
    CHECK_CONTAINS(report, "lost: ");
    if (st.lost_generations > 0) CHECK(strstr(report, "lost: 0 generation") == NULL);
    printf("  %s\n", report);
    /* Threads that exit while their generation is open: the rollover after
     * must count the batches they handed over (it once dropped exited
     * threads first, and the generation's end did not list them). */
    if (ftruncate(out_fd, 0) != 0 || lseek(out_fd, 0, SEEK_SET) != 0) CHECK(0);
    atomic_store(&armed, 0);
    atomic_store(&stop, 0);
    c.max_mb = 0;
    c.generation_ms = 100;
    CHECK_STATUS(rtc_trace_start(&c), RTC_OK);
    for (int round = 0; round < 3; round++) {
        atomic_store(&stop, 0);
        for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, logger, NULL);
        usleep(30 * 1000);
        atomic_store(&stop, 1);
        for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
        usleep(250 * 1000); /* rollovers with the threads gone */
    }
    CHECK_STATUS(rtc_trace_stop(), RTC_OK);
    CHECK_STATUS(rtc_trace_check_file(path, report, sizeof report), RTC_OK);
    close(out_fd);
    unlink(path);
    rmdir(dir);
    return rtc_t_finish();
}
