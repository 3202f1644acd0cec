/* The tracer's start/stop and sinks, end to end (one process: one tracer).
 * Every trace written is checked with rtc_trace_check_file /
 * rtc_trace_check (framing, batches, generations, end marker; the state
 * machines are checked as the validator grows).
 *
 * - a trace to a path, with user events from attached and unattached
 *   threads, a world stop inside it, RTC_TRACE_ON and the macros;
 * - a second start is refused ("already enabled"); stop when not tracing
 *   succeeds; rtc_trace_enabled follows;
 * - a file descriptor sink (never closed by rtcore) and a callback sink; a
 *   failing callback makes stop return RTC_ERR_IO;
 * - concurrent starts from 8 threads: exactly one wins;
 * - start from a hook and from the thread holding the world stopped is
 *   refused with RTC_ERR_WOULD_DEADLOCK; bad configs are refused;
 * - the runtime's own events (a contended lock, a blocking region, a
 *   wake-up by another thread) are recorded and the validator accepts
 *   them. */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rtc_test.h"

static char dir[256];

static int check_file(const char *path, char *report, size_t len) {
    int s = rtc_trace_check_file(path, report, len);
    if (s != RTC_OK) fprintf(stderr, "trace %s: %s\n", path, report);
    return s;
}

static atomic_int worker_stop;
static void *attached_worker(void *arg) {
    (void)arg;
    rtc_thread_attach("traced-worker", NULL);
    int i = 0;
    while (!atomic_load(&worker_stop)) {
        RTC_REGION_BEGIN("work");
        RTC_COUNTER("iterations", i++);
        RTC_REGION_END();
        rtc_safepoint();
        usleep(200);
    }
    rtc_thread_detach();
    return NULL;
}

static void *unattached_logger(void *arg) {
    (void)arg;
    while (!atomic_load(&worker_stop)) {
        RTC_LOG("unattached", "hello from a thread outside the world");
        usleep(300);
    }
    return NULL;
}

static void test_path_sink_with_user_events(void) {
    char path[300], report[512];
    snprintf(path, sizeof path, "%s/basic.trace", dir);
    CHECK(!RTC_TRACE_ON());
    CHECK(rtc_trace_enabled() == 0);
    CHECK_STATUS(rtc_trace_stop(), RTC_OK); /* not tracing: fine */
    rtc_trace_config c = rtc_t_path_config(path);
    pthread_t w, u;
    atomic_store(&worker_stop, 0);
    pthread_create(&w, NULL, attached_worker, NULL);
    pthread_create(&u, NULL, unattached_logger, NULL);
    CHECK_STATUS(rtc_trace_start(&c), RTC_OK);
    CHECK(RTC_TRACE_ON());
    CHECK(rtc_trace_enabled() == 1);
    CHECK_STATUS(rtc_trace_start(&c), RTC_ERR_WRONG_STATE);
    CHECK_CONTAINS(rtc_t_last_error(), "already enabled");
    uint64_t task = 0;
    CHECK_STATUS(rtc_task_begin("request", &task), RTC_OK);
    CHECK(task != 0);
    CHECK_STATUS(rtc_log("main", "tracing"), RTC_OK);
    CHECK_STATUS(rtc_region_begin("outer"), RTC_OK);
    CHECK_STATUS(rtc_counter("depth", -3), RTC_OK);
    CHECK_STATUS(rtc_region_end(), RTC_OK);
    CHECK_STATUS(rtc_stop_the_world("inside a trace"), RTC_OK);
    CHECK_STATUS(rtc_start_the_world(), RTC_OK);
    usleep(20000);
    CHECK_STATUS(rtc_task_end(task), RTC_OK);
    CHECK_STATUS(rtc_trace_stop(), RTC_OK);
    CHECK(!RTC_TRACE_ON());
    CHECK_STATUS(rtc_trace_stop(), RTC_OK);
    atomic_store(&worker_stop, 1);
    pthread_join(w, NULL);
    pthread_join(u, NULL);
    CHECK_STATUS(check_file(path, report, sizeof report), RTC_OK);
    CHECK_CONTAINS(report, "consistent trace");
    /* A cut copy is rejected with the reason. */
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    if (!f) return;
    static unsigned char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    CHECK(n > 24 && memcmp(buf, "RTCTRACE", 8) == 0);
    CHECK_STATUS(rtc_trace_check(buf, n, report, sizeof report), RTC_OK);
    /* Cut short (its end marker torn): the complete generations stand. */
    CHECK_STATUS(rtc_trace_check(buf, n - 1, report, sizeof report), RTC_ERR_TRACE_CUT);
    CHECK_CONTAINS(report, "cut short after generation");
    /* Cut inside its only generation: nothing is known good. */
    CHECK_STATUS(rtc_trace_check(buf, 60, report, sizeof report), RTC_ERR_BAD_TRACE);
    buf[n / 2] ^= 0x40;
    CHECK_STATUS(rtc_trace_check(buf, n, report, sizeof report), RTC_ERR_BAD_TRACE);
    CHECK_STATUS(rtc_trace_check(NULL, 0, report, sizeof report), RTC_ERR_BAD_TRACE);
    CHECK_STATUS(rtc_trace_check(NULL, 5, report, sizeof report), RTC_ERR_NULL);
}

static void test_fd_sink_is_never_closed(void) {
    char path[300], report[512];
    snprintf(path, sizeof path, "%s/fd.trace", dir);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    CHECK(fd >= 0);
    rtc_trace_config c;
    memset(&c, 0, sizeof c);
    c.size = sizeof c;
    c.sink_kind = RTC_TRACE_SINK_FD;
    c.fd = fd;
    CHECK_STATUS(rtc_trace_start(&c), RTC_OK);
    RTC_LOG("fd", "sink");
    CHECK_STATUS(rtc_trace_stop(), RTC_OK);
    CHECK(fcntl(fd, F_GETFD) != -1); /* still open */
    close(fd);
    CHECK_STATUS(check_file(path, report, sizeof report), RTC_OK);
}

struct collected { unsigned char *data; size_t len, cap; int fail; };
static int collect(const uint8_t *data, size_t len, void *arg) {
    struct collected *c = arg;
    if (c->fail) return -1;
    if (c->len + len > c->cap) {
        size_t cap = (c->len + len) * 2;
        unsigned char *p = realloc(c->data, cap);
        if (!p) return -1;
        c->data = p;
        c->cap = cap;
    }
    memcpy(c->data + c->len, data, len);
    c->len += len;
    return 0;
}

static void test_callback_sinks(void) {
    char report[512];
    static struct collected ok;
    rtc_trace_config c;
    memset(&c, 0, sizeof c);
    c.size = sizeof c;
    c.sink_kind = RTC_TRACE_SINK_CALLBACK;
    c.write = collect;
    c.user_data = &ok;
    CHECK_STATUS(rtc_trace_start(&c), RTC_OK);
    RTC_LOG("callback", "sink");
    CHECK_STATUS(rtc_trace_stop(), RTC_OK);
    CHECK(ok.len > 24);
    CHECK_STATUS(rtc_trace_check(ok.data, ok.len, report, sizeof report), RTC_OK);
    free(ok.data);
    static struct collected bad = {NULL, 0, 0, 1};
    c.user_data = &bad;
    CHECK_STATUS(rtc_trace_start(&c), RTC_OK);
    RTC_LOG("callback", "failing");
    CHECK_STATUS(rtc_trace_stop(), RTC_ERR_IO);
    CHECK_CONTAINS(rtc_t_last_error(), "callback returned -1");
    /* Tracing works again afterwards. */
    ok.data = NULL; ok.len = ok.cap = 0;
    c.user_data = &ok;
    CHECK_STATUS(rtc_trace_start(&c), RTC_OK);
    CHECK_STATUS(rtc_trace_stop(), RTC_OK);
    CHECK_STATUS(rtc_trace_check(ok.data, ok.len, report, sizeof report), RTC_OK);
    free(ok.data);
}

static atomic_int racers_go, racers_won, racers_refused;
static char race_path[300];
static void *racer(void *arg) {
    /* Half the racers are attached: a loser waiting for the winner must give
     * up its P, or the winner's stop waits for it forever (it once did). */
    int attached = (int)(long)arg & 1;
    if (attached) rtc_thread_attach("racer", NULL);
    while (!atomic_load(&racers_go)) usleep(100);
    rtc_trace_config c = rtc_t_path_config(race_path);
    int s = rtc_trace_start(&c);
    if (s == RTC_OK) atomic_fetch_add(&racers_won, 1);
    else if (s == RTC_ERR_WRONG_STATE) atomic_fetch_add(&racers_refused, 1);
    if (attached) rtc_thread_detach();
    return NULL;
}

static void test_concurrent_starts(void) {
    char report[512];
    snprintf(race_path, sizeof race_path, "%s/race.trace", dir);
    pthread_t t[8];
    for (int i = 0; i < 8; i++) pthread_create(&t[i], NULL, racer, (void *)(long)i);
    atomic_store(&racers_go, 1);
    for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
    CHECK(atomic_load(&racers_won) == 1);
    CHECK(atomic_load(&racers_refused) == 7);
    CHECK_STATUS(rtc_trace_stop(), RTC_OK);
    CHECK_STATUS(check_file(race_path, report, sizeof report), RTC_OK);
}

static atomic_int hook_status = -1;
static void starting_hook(void *arg) {
    rtc_trace_config *c = arg;
    if (atomic_load(&hook_status) == -1) atomic_store(&hook_status, rtc_trace_start(c));
}

static void test_refusals(void) {
    char path[300];
    snprintf(path, sizeof path, "%s/refused.trace", dir);
    static rtc_trace_config c;
    c = rtc_t_path_config(path);
    uint64_t id = 0;
    CHECK_STATUS(rtc_sysmon_hook_add("starter", 1000000, starting_hook, &c, &id), RTC_OK);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (atomic_load(&hook_status) == -1 && rtc_t_ms_since(&t0) < rtc_t_bound_ms(2000)) usleep(1000);
    CHECK_STATUS(rtc_sysmon_hook_remove(id), RTC_OK);
    CHECK_STATUS(atomic_load(&hook_status), RTC_ERR_WOULD_DEADLOCK);
    CHECK_STATUS(rtc_stop_the_world("holding"), RTC_OK);
    CHECK_STATUS(rtc_trace_start(&c), RTC_ERR_WOULD_DEADLOCK);
    CHECK_CONTAINS(rtc_t_last_error(), "holding the world stopped");
    CHECK_STATUS(rtc_trace_stop(), RTC_ERR_WOULD_DEADLOCK);
    CHECK_STATUS(rtc_start_the_world(), RTC_OK);
    CHECK(rtc_trace_enabled() == 0);

    CHECK_STATUS(rtc_trace_start(NULL), RTC_ERR_NULL);
    rtc_trace_config bad = rtc_t_path_config(path);
    bad.size = 4;
    CHECK_STATUS(rtc_trace_start(&bad), RTC_ERR_INVALID_ARGUMENT);
    bad = rtc_t_path_config(path);
    bad.sink_kind = RTC_TRACE_SINK_NONE;
    CHECK_STATUS(rtc_trace_start(&bad), RTC_ERR_INVALID_ARGUMENT);
    CHECK_CONTAINS(rtc_t_last_error(), "RTC_TRACE_SINK_NONE");
    bad.sink_kind = 9;
    CHECK_STATUS(rtc_trace_start(&bad), RTC_ERR_INVALID_ARGUMENT);
    bad = rtc_t_path_config("/nonexistent-dir/x/y.trace");
    CHECK_STATUS(rtc_trace_start(&bad), RTC_ERR_IO);
    CHECK_CONTAINS(rtc_t_last_error(), "cannot open");
    bad = rtc_t_path_config(NULL);
    CHECK_STATUS(rtc_trace_start(&bad), RTC_ERR_NULL);
    bad.sink_kind = RTC_TRACE_SINK_FD;
    bad.fd = 987;
    CHECK_STATUS(rtc_trace_start(&bad), RTC_ERR_INVALID_ARGUMENT);
    CHECK_CONTAINS(rtc_t_last_error(), "not an open file descriptor");
    int rd = open("/dev/null", O_RDONLY);
    bad.fd = rd;
    CHECK_STATUS(rtc_trace_start(&bad), RTC_ERR_INVALID_ARGUMENT);
    close(rd);
    bad.sink_kind = RTC_TRACE_SINK_CALLBACK;
    bad.write = NULL;
    CHECK_STATUS(rtc_trace_start(&bad), RTC_ERR_NULL);
    CHECK(rtc_trace_enabled() == 0);
}

/* A thread that holds one of its own locks and starts a trace is
 * reported: start takes hooklock, which comes before every user rank (a
 * hook may need that lock while start waits for the hook). */
static rtc_mutex app_lock = RTC_MUTEX_INIT_RANKED("app-lock", "trace_app");
static void test_start_while_holding_a_user_lock_is_reported(void) {
    char path[300], report[512];
    snprintf(path, sizeof path, "%s/inversion.trace", dir);
    CHECK_STATUS(rtc_ranks_load("NONE < trace_app;", "trace-test.ranks"), RTC_OK);
    uint64_t before = 0, after = 0;
    CHECK_STATUS(rtc_lockrank_violations(&before), RTC_OK);
    CHECK_STATUS(RTC_MUTEX_LOCK(&app_lock), RTC_OK);
    rtc_trace_config c = rtc_t_path_config(path);
    CHECK_STATUS(rtc_trace_start(&c), RTC_OK); /* reported, not refused */
    CHECK_STATUS(rtc_mutex_unlock(&app_lock), RTC_OK);
    CHECK_STATUS(rtc_trace_stop(), RTC_OK);
    CHECK_STATUS(rtc_lockrank_violations(&after), RTC_OK);
    CHECK(after == before + 1);
    CHECK_CONTAINS(rtc_t_report(), "hooklock");
    CHECK_CONTAINS(rtc_t_report(), "app-lock");
    CHECK_STATUS(check_file(path, report, sizeof report), RTC_OK);
}

/* An fd sink whose reader went away fails the trace (RTC_ERR_IO at stop);
 * SIGPIPE does not kill the process. A 100 KiB message is cut to 64 KiB and
 * the trace stays valid. */
static void test_broken_pipe_and_huge_strings(void) {
    int p[2];
    CHECK(pipe(p) == 0);
    close(p[0]);
    rtc_trace_config c;
    memset(&c, 0, sizeof c);
    c.size = sizeof c;
    c.sink_kind = RTC_TRACE_SINK_FD;
    c.fd = p[1];
    CHECK_STATUS(rtc_trace_start(&c), RTC_OK);
    RTC_LOG("pipe", "nobody reads this");
    CHECK_STATUS(rtc_trace_stop(), RTC_ERR_IO);
    CHECK_CONTAINS(rtc_t_last_error(), "Broken pipe");
    close(p[1]);

    char path[300], report[512];
    snprintf(path, sizeof path, "%s/huge.trace", dir);
    rtc_trace_config f = rtc_t_path_config(path);
    static char huge[100 * 1024];
    memset(huge, 'x', sizeof huge - 1);
    CHECK_STATUS(rtc_trace_start(&f), RTC_OK);
    CHECK_STATUS(rtc_log("huge", huge), RTC_OK);
    CHECK_STATUS(rtc_trace_stop(), RTC_OK);
    CHECK_STATUS(check_file(path, report, sizeof report), RTC_OK);
    struct stat st;
    CHECK(stat(path, &st) == 0 && st.st_size > 64 * 1024 && st.st_size < 90 * 1024);
}

/* Threads attach, log, block and detach in a loop (and some exit attached)
 * while traces start and stop: every trace is valid (a thread attached at
 * a start has its status first; one attaching later begins with attach;
 * detach ends it; a thread detached may still log). */
static atomic_int churn_stop;
static void *churner(void *arg) {
    int i = (int)(long)arg;
    char name[32];
    snprintf(name, sizeof name, "churn-%d", i);
    int slow = getenv("RTC_TEST_SLOW") != NULL; /* valgrind: let others run */
    while (!atomic_load(&churn_stop)) {
        if (slow) usleep(2000);
        if (rtc_thread_attach(name, NULL) != RTC_OK) break;
        RTC_LOG("churn", "attached");
        rtc_enter_blocking("short");
        rtc_exit_blocking();
        rtc_safepoint();
        rtc_thread_detach();
        RTC_LOG("churn", "detached");
    }
    return NULL;
}
static void *exits_attached(void *arg) {
    (void)arg;
    rtc_thread_attach("exits-attached", NULL);
    RTC_LOG("exit", "bye");
    return NULL; /* detached by rtcore at thread exit */
}

static void test_start_stop_while_threads_attach_and_detach(void) {
    char path[300], report[512];
    pthread_t t[4];
    atomic_store(&churn_stop, 0);
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, churner, (void *)(long)i);
    int cycles = getenv("RTC_TEST_SLOW") ? 3 : 50, valid = 0;
    for (int c = 0; c < cycles; c++) {
        snprintf(path, sizeof path, "%s/churn-%d.trace", dir, c % 3);
        rtc_trace_config cfg = rtc_t_path_config(path);
        CHECK_STATUS(rtc_trace_start(&cfg), RTC_OK);
        pthread_t e;
        pthread_create(&e, NULL, exits_attached, NULL);
        pthread_join(e, NULL);
        usleep(1000);
        CHECK_STATUS(rtc_trace_stop(), RTC_OK);
        if (check_file(path, report, sizeof report) == RTC_OK) valid++;
    }
    atomic_store(&churn_stop, 1);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    CHECK(valid == cycles);
}

/* A worker contends for a mutex main holds (block, unblock by main, lock
 * contended/acquired), and passes through a blocking region. */
static rtc_mutex contended = RTC_MUTEX_INIT;
static atomic_int worker_waiting;
static void *contender(void *arg) {
    (void)arg;
    CHECK_STATUS(rtc_thread_attach("contender", NULL), RTC_OK);
    CHECK_STATUS(rtc_enter_blocking("a short sleep"), RTC_OK);
    usleep(1000);
    CHECK_STATUS(rtc_exit_blocking(), RTC_OK);
    atomic_store(&worker_waiting, 1);
    CHECK_STATUS(rtc_mutex_lock(&contended), RTC_OK);
    CHECK_STATUS(rtc_mutex_unlock(&contended), RTC_OK);
    CHECK_STATUS(rtc_thread_detach(), RTC_OK);
    return NULL;
}

static void test_runtime_events_are_recorded(void) {
    char path[300], report[2048];
    snprintf(path, sizeof path, "%s/runtime.trace", dir);
    rtc_trace_config cfg = rtc_t_path_config(path);
    /* One P: woken by main's unlock, the worker must then wait for main's
     * P, a second sleep; the trace must still name main as its waker. */
    uint32_t procs = 0;
    CHECK_STATUS(rtc_set_maxprocs(1, &procs), RTC_OK);
    CHECK_STATUS(rtc_trace_start(&cfg), RTC_OK);
    CHECK_STATUS(rtc_mutex_lock(&contended), RTC_OK);
    atomic_store(&worker_waiting, 0);
    pthread_t t;
    pthread_create(&t, NULL, contender, NULL);
    /* Waiting in a blocking region lets sysmon hand main's P over. */
    CHECK_STATUS(rtc_enter_blocking("wait for the contender"), RTC_OK);
    while (!atomic_load(&worker_waiting)) usleep(100);
    /* The worker parks on the mutex: WAITING (its P given up) first, then
     * asleep; give it time to fall asleep on a loaded machine. */
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        rtc_census c;
        memset(&c, 0, sizeof c);
        c.size = sizeof c;
        if (rtc_world_census(&c) != RTC_OK || c.threads_waiting >= 1 || rtc_t_ms_since(&t0) > 5000) break;
        usleep(1000);
    }
    usleep(20000);
    CHECK_STATUS(rtc_exit_blocking(), RTC_OK);
    CHECK_STATUS(rtc_mutex_unlock(&contended), RTC_OK);
    CHECK_STATUS(rtc_enter_blocking("join the contender"), RTC_OK);
    pthread_join(t, NULL);
    CHECK_STATUS(rtc_exit_blocking(), RTC_OK);
    CHECK_STATUS(rtc_set_maxprocs(procs, NULL), RTC_OK);
    CHECK_STATUS(rtc_trace_stop(), RTC_OK);
    CHECK_STATUS(check_file(path, report, sizeof report), RTC_OK);
    const char *kinds[] = {"attach ", "detach ", "P start ", "enter blocking ", ", block ",
                           "unblock ", "lock contended ", "lock acquired ", "thread status "};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) CHECK_CONTAINS(report, kinds[i]);
    /* The worker slept on the mutex and main's unlock woke it: its
     * acquisition names main as the releaser (the Perfetto export draws
     * the arrow from it). */
    uint64_t me = 0;
    CHECK_STATUS(rtc_thread_id(&me), RTC_OK);
    static char stats[1 << 16];
    size_t need = 0;
    CHECK_STATUS(rtc_trace_stats_json(path, stats, sizeof stats, &need), RTC_OK);
    CHECK(need <= sizeof stats);
    char woken[64];
    snprintf(woken, sizeof woken, "\"woken_by\":{\"%llu\":1}", (unsigned long long)me);
    CHECK_CONTAINS(stats, woken);
}

/* The same through an rwlock: a reader waits for main's write lock; the
 * trace holds an rwlock contended event (mode read, main as the writer)
 * and an acquisition woken by main's unlock. */
static rtc_rwlock rw_contended = RTC_RWLOCK_INIT_RANKED("traced table", NULL);
static atomic_int reader_waiting;
static void *rw_reader(void *arg) {
    (void)arg;
    CHECK_STATUS(rtc_thread_attach("reader", NULL), RTC_OK);
    atomic_store(&reader_waiting, 1);
    CHECK_STATUS(RTC_RWLOCK_RDLOCK(&rw_contended), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(&rw_contended), RTC_OK);
    CHECK_STATUS(rtc_thread_detach(), RTC_OK);
    return NULL;
}

static void test_rwlock_waits_are_recorded(void) {
    char path[300], report[2048];
    snprintf(path, sizeof path, "%s/rwlock.trace", dir);
    rtc_trace_config cfg = rtc_t_path_config(path);
    CHECK_STATUS(rtc_trace_start(&cfg), RTC_OK);
    CHECK_STATUS(RTC_RWLOCK_WRLOCK(&rw_contended), RTC_OK);
    atomic_store(&reader_waiting, 0);
    pthread_t t;
    pthread_create(&t, NULL, rw_reader, NULL);
    CHECK_STATUS(rtc_enter_blocking("wait for the reader"), RTC_OK);
    while (!atomic_load(&reader_waiting)) usleep(100);
    usleep(20000); /* the reader parks on the rwlock */
    CHECK_STATUS(rtc_exit_blocking(), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(&rw_contended), RTC_OK);
    CHECK_STATUS(rtc_enter_blocking("join the reader"), RTC_OK);
    pthread_join(t, NULL);
    CHECK_STATUS(rtc_exit_blocking(), RTC_OK);
    CHECK_STATUS(rtc_trace_stop(), RTC_OK);
    CHECK_STATUS(check_file(path, report, sizeof report), RTC_OK);
    CHECK_CONTAINS(report, "rwlock contended ");
    CHECK_CONTAINS(report, "lock acquired ");
    uint64_t me = 0;
    CHECK_STATUS(rtc_thread_id(&me), RTC_OK);
    static char stats[1 << 16];
    size_t need = 0;
    CHECK_STATUS(rtc_trace_stats_json(path, stats, sizeof stats, &need), RTC_OK);
    CHECK(need <= sizeof stats);
    char woken[64];
    snprintf(woken, sizeof woken, "\"woken_by\":{\"%llu\":1}", (unsigned long long)me);
    CHECK_CONTAINS(stats, woken);
    CHECK_CONTAINS(stats, "traced table");
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/rtcore-trace-test-%d", (int)getpid());
    mkdir(dir, 0700);
    CHECK_STATUS(rtc_thread_attach("main", NULL), RTC_OK);
    test_path_sink_with_user_events();
    test_fd_sink_is_never_closed();
    test_callback_sinks();
    test_refusals();
    test_start_while_holding_a_user_lock_is_reported();
    test_broken_pipe_and_huge_strings();
    test_runtime_events_are_recorded();
    test_rwlock_waits_are_recorded();
    CHECK_STATUS(rtc_thread_detach(), RTC_OK);
    test_concurrent_starts();
    test_start_stop_while_threads_attach_and_detach();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return rtc_t_finish();
}
