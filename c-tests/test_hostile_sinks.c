/* Trace sinks under hostile conditions (issue 13), one process: one tracer.
 *
 * - row 4: a path naming a FIFO with no reader is refused at once with
 *   RTC_ERR_IO (it used to block in open() inside the start, with the world
 *   being stopped); the world still stops and starts afterwards;
 * - row 8: a FIFO with a reader is written into, not truncated: start and
 *   stop succeed and the reader receives a consistent trace;
 * - row 12: an O_NONBLOCK descriptor whose reader is slow: the writer waits
 *   for it (EAGAIN is not a failure) and the trace is complete;
 * - row 14: a refused start (already tracing; from a hook) creates,
 *   truncates and writes nothing.
 * Everything is written inside this program's own temporary directory. An
 * alarm turns a hang into a failure. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rtc_test.h"

static char dir[256];

/* A reader of a descriptor into a growing buffer, `delay_us` between
 * reads of at most `chunk` bytes. */
struct reader {
    int fd;
    const char *path; /* opened here (blocking) when fd < 0 */
    size_t chunk;
    int delay_us;
    uint8_t *buf;
    size_t len, cap;
};

static void *read_all(void *arg) {
    struct reader *r = arg;
    if (r->fd < 0) r->fd = open(r->path, O_RDONLY);
    if (r->fd < 0) return NULL;
    for (;;) {
        if (r->cap - r->len < r->chunk) {
            r->cap = (r->cap + r->chunk) * 2;
            r->buf = realloc(r->buf, r->cap);
        }
        ssize_t n = read(r->fd, r->buf + r->len, r->chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        r->len += (size_t)n;
        if (r->delay_us) usleep((useconds_t)r->delay_us);
    }
    close(r->fd);
    return NULL;
}

static int check_bytes(const uint8_t *data, size_t len) {
    char report[512];
    int s = rtc_trace_check(data, len, report, sizeof report);
    if (s != RTC_OK) fprintf(stderr, "trace of %zu bytes: %s\n", len, report);
    return s;
}

static void test_fifo_without_reader_is_refused_at_once(void) {
    char path[300];
    snprintf(path, sizeof path, "%s/noreader.fifo", dir);
    CHECK(mkfifo(path, 0600) == 0);
    rtc_trace_config c = rtc_t_path_config(path);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_STATUS(rtc_trace_start(&c), RTC_ERR_IO);
    CHECK_CONTAINS(rtc_t_last_error(), "no process has it open for reading");
    CHECK(rtc_t_ms_since(&t0) < rtc_t_bound_ms(2000));
    CHECK(rtc_trace_enabled() == 0);
    /* The world is not left stopped or stuck. */
    CHECK_STATUS(rtc_stop_the_world("after a refused start"), RTC_OK);
    CHECK_STATUS(rtc_start_the_world(), RTC_OK);
    unlink(path);
}

static void test_fifo_with_reader_is_written_not_truncated(void) {
    char path[300];
    snprintf(path, sizeof path, "%s/reader.fifo", dir);
    CHECK(mkfifo(path, 0600) == 0);
    struct reader r = {.fd = -1, .path = path, .chunk = 65536};
    pthread_t t;
    pthread_create(&t, NULL, read_all, &r);
    rtc_trace_config c = rtc_t_path_config(path);
    /* The reader may not have opened its end yet: retry a refused start. */
    int s = RTC_ERR_IO;
    for (int i = 0; i < 2000 && s == RTC_ERR_IO; i++) {
        s = rtc_trace_start(&c);
        if (s == RTC_ERR_IO) usleep(1000);
    }
    CHECK_STATUS(s, RTC_OK);
    for (int i = 0; i < 100; i++) RTC_LOG("fifo", "into a FIFO with a reader");
    CHECK_STATUS(rtc_trace_stop(), RTC_OK);
    pthread_join(t, NULL);
    CHECK(r.len > 0);
    CHECK_STATUS(check_bytes(r.buf, r.len), RTC_OK);
    struct stat st;
    CHECK(stat(path, &st) == 0 && S_ISFIFO(st.st_mode));
    free(r.buf);
    unlink(path);
}

static void test_nonblocking_fd_with_a_slow_reader(void) {
    int p[2];
    CHECK(pipe(p) == 0);
    CHECK(fcntl(p[1], F_SETFL, fcntl(p[1], F_GETFL) | O_NONBLOCK) == 0);
    struct reader r = {.fd = p[0], .chunk = 4096, .delay_us = 200};
    pthread_t t;
    pthread_create(&t, NULL, read_all, &r);
    rtc_trace_config c;
    memset(&c, 0, sizeof c);
    c.size = sizeof c;
    c.sink_kind = RTC_TRACE_SINK_FD;
    c.fd = p[1];
    CHECK_STATUS(rtc_trace_start(&c), RTC_OK);
    /* About 2 MB of events: far more than a pipe holds (64 KiB). */
    char msg[120];
    memset(msg, 'x', sizeof msg - 1);
    msg[sizeof msg - 1] = 0;
    for (int i = 0; i < 20000; i++) {
        msg[i % 100] = (char)('a' + i % 26); /* new strings now and then */
        RTC_LOG("nonblocking", msg);
    }
    CHECK_STATUS(rtc_trace_stop(), RTC_OK);
    close(p[1]);
    pthread_join(t, NULL);
    CHECK(r.len > 65536);
    CHECK_STATUS(check_bytes(r.buf, r.len), RTC_OK);
    free(r.buf);
}

static atomic_int hook_status = -1;
static void starting_hook(void *arg) {
    rtc_trace_config *c = arg;
    if (atomic_load(&hook_status) == -1) atomic_store(&hook_status, rtc_trace_start(c));
}

static void test_refused_starts_touch_nothing(void) {
    char tracing[300], fresh[300], kept[300], from_hook[300];
    snprintf(tracing, sizeof tracing, "%s/tracing.trace", dir);
    snprintf(fresh, sizeof fresh, "%s/fresh.trace", dir);
    snprintf(kept, sizeof kept, "%s/kept.txt", dir);
    snprintf(from_hook, sizeof from_hook, "%s/from-hook.trace", dir);
    FILE *f = fopen(kept, "w");
    fputs("the user's data", f);
    fclose(f);

    rtc_trace_config c = rtc_t_path_config(tracing);
    CHECK_STATUS(rtc_trace_start(&c), RTC_OK);
    rtc_trace_config c2 = rtc_t_path_config(fresh);
    CHECK_STATUS(rtc_trace_start(&c2), RTC_ERR_WRONG_STATE);
    CHECK(access(fresh, F_OK) != 0); /* not created */
    rtc_trace_config c3 = rtc_t_path_config(kept);
    CHECK_STATUS(rtc_trace_start(&c3), RTC_ERR_WRONG_STATE);
    CHECK_STATUS(rtc_trace_stop(), RTC_OK);
    struct stat st;
    CHECK(stat(kept, &st) == 0 && st.st_size == (off_t)strlen("the user's data"));

    /* From a hook: refused before anything is opened. */
    static rtc_trace_config hc;
    hc = rtc_t_path_config(from_hook);
    uint64_t id = 0;
    CHECK_STATUS(rtc_sysmon_hook_add("starter", 1000000, starting_hook, &hc, &id), RTC_OK);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (atomic_load(&hook_status) == -1 && rtc_t_ms_since(&t0) < rtc_t_bound_ms(5000)) usleep(1000);
    CHECK_STATUS(rtc_sysmon_hook_remove(id), RTC_OK);
    CHECK_STATUS(atomic_load(&hook_status), RTC_ERR_WOULD_DEADLOCK);
    CHECK(access(from_hook, F_OK) != 0);

    /* A start that fails after creating its file removes it again: a
     * directory is refused at open, before anything is created. */
    rtc_trace_config cd = rtc_t_path_config(dir);
    CHECK_STATUS(rtc_trace_start(&cd), RTC_ERR_IO);
}

int main(void) {
    alarm(60); /* a hang is a failure, not a stuck CI */
    snprintf(dir, sizeof dir, "/tmp/rtcore-hostile-sinks-%d", (int)getpid());
    mkdir(dir, 0700);
    CHECK_STATUS(rtc_thread_attach("main", NULL), RTC_OK);
    test_fifo_with_reader_is_written_not_truncated();
    test_nonblocking_fd_with_a_slow_reader();
    test_refused_starts_touch_nothing();
    CHECK_STATUS(rtc_thread_detach(), RTC_OK);
    test_fifo_without_reader_is_refused_at_once(); /* last: it hung before */
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return rtc_t_finish();
}
