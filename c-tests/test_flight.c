/* The flight recorder: switched on by RTCORE_FLIGHT_RECORDER alone, it
 * dumps itself when two threads deadlock (the dump checks consistent and
 * its statistics show both threads waiting on each other's lock), and on
 * abort() (with the generation in progress closed at the signal), and
 * on a crash inside a recording section (that thread skipped and named,
 * the generation in progress recorded as lost); from the API, snapshots while recording, a regular trace
 * refused meanwhile, dumps on a lock-order violation and a stall with a
 * rate limit, and a directory budget that removes only rtcore's own
 * oldest dumps. Children that deadlock or abort are separate processes
 * (this program run again with an argument). */
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rtc_test.h"

static char dir[200];

/* ---- the children ------------------------------------------------------ */

static rtc_mutex ma = RTC_MUTEX_INIT_RANKED("ledger", NULL);
static rtc_mutex mb = RTC_MUTEX_INIT_RANKED("journal", NULL);
static pthread_barrier_t both;

static void *crosser(void *arg) {
    int first = (int)(long)arg;
    rtc_thread_attach(first ? "payer" : "payee", NULL);
    /* Two seconds of ordinary work first. */
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (rtc_t_ms_since(&t0) < 2000) {
        rtc_mutex_lock(first ? &ma : &mb);
        RTC_LOG("work", first ? "payer" : "payee");
        rtc_mutex_unlock(first ? &ma : &mb);
        rtc_safepoint();
    }
    rtc_mutex_lock_at(first ? &ma : &mb, first ? "bank.c" : "audit.c", 10);
    pthread_barrier_wait(&both);
    rtc_mutex_lock_at(first ? &mb : &ma, first ? "bank.c" : "audit.c", 20); /* never returns */
    return NULL;
}

static int child_deadlock(void) {
    rtc_lockrank_set_mode(RTC_LOCKRANK_OFF);
    pthread_barrier_init(&both, NULL, 2);
    pthread_t a, b;
    pthread_create(&a, NULL, crosser, (void *)1L);
    pthread_create(&b, NULL, crosser, (void *)0L);
    for (;;) pause();
    return 0;
}

static rtc_mutex shared = RTC_MUTEX_INIT_RANKED("shared", NULL);

/* A helper thread that records until the process dies. */
static void *chatter(void *arg) {
    (void)arg;
    rtc_thread_attach("chatter", NULL);
    for (unsigned i = 0;; i++) {
        rtc_mutex_lock(&shared);
        RTC_LOG("work", "chatter");
        rtc_mutex_unlock(&shared);
        if (i % 8 == 0) usleep(200);
        rtc_safepoint();
    }
    return NULL;
}

static int child_abort(void) {
    rtc_thread_attach("doomed", NULL);
    /* Three more threads contend for a lock meanwhile: the generation in
     * progress is cut across all four at once. */
    for (int i = 0; i < 3; i++) {
        pthread_t c;
        pthread_create(&c, NULL, chatter, NULL);
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (unsigned i = 0; rtc_t_ms_since(&t0) < 1500; i++) {
        RTC_LOG("work", "before the crash");
        if (i % 8 == 0) usleep(200);
        rtc_safepoint();
    }
    /* Recorded in the generation in progress: the dump closes it where
     * the signal strikes, so these words are in it. */
    RTC_LOG("crash", "last words before abort");
    abort();
}

/* A crash inside a recording section: rtc_log reads its message inside
 * the thread's gate, and this one is not a valid pointer. The crashing
 * thread cannot leave its section, so the dump skips and names it, and
 * the generation in progress is recorded as lost; the complete ones are
 * written. */
static int child_segv_in_section(void) {
    rtc_thread_attach("crasher", NULL);
    pthread_t c;
    pthread_create(&c, NULL, chatter, NULL);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (rtc_t_ms_since(&t0) < 1500) {
        RTC_LOG("work", "before the crash");
        usleep(1000);
    }
    volatile uintptr_t bad = 16;
    rtc_log("crash", (const char *)bad);
    return 0;
}

/* ---- helpers ----------------------------------------------------------- */

/* Run this program again as `role` with RTCORE_FLIGHT_RECORDER set (and
 * its stderr into `errfile`); the child's pid. */
static pid_t spawn(const char *role, const char *errfile) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        char env[512];
        snprintf(env, sizeof env, "%s,max_mb=8", dir);
        setenv("RTCORE_FLIGHT_RECORDER", env, 1);
        if (!freopen(errfile, "w", stderr)) _exit(98);
        char self[512];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0) _exit(97);
        self[n] = 0;
        execl(self, self, role, (char *)NULL);
        _exit(96);
    }
    return pid;
}

/* The first file in `dir` whose name contains `part` (static buffer), or
 * NULL. */
static const char *find_dump(const char *part) {
    static char path[600];
    DIR *d = opendir(dir);
    if (!d) return NULL;
    const char *found = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strstr(e->d_name, part) && strstr(e->d_name, ".rtctrace")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            /* Complete only once the end marker is in: check it. */
            char report[256];
            if (rtc_trace_check_file(path, report, sizeof report) == RTC_OK) found = path;
            break;
        }
    }
    closedir(d);
    return found;
}

static const char *wait_for_dump(const char *part, long ms) {
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (rtc_t_ms_since(&t0) < ms) {
        const char *p = find_dump(part);
        if (p) return p;
        usleep(20 * 1000);
    }
    return NULL;
}

/* Does the file at `path` contain `needle` (binary-safe)? */
static int file_contains(const char *path, const char *needle) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    static char buf[64 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return memmem(buf, n, needle, strlen(needle)) != NULL;
}

static int count_files(void) {
    int n = 0;
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static void empty_dir(void) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -f '%s'/*", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not empty %s\n", dir);
}

/* ---- the scenarios ----------------------------------------------------- */

static void deadlock_dumps_through_the_environment(void) {
    char errfile[600];
    snprintf(errfile, sizeof errfile, "%s/../flight-deadlock.err", dir);
    pid_t pid = spawn("child-deadlock", errfile);
    /* 2 s of work, then the deadlock: reported and dumped within 2 s. */
    const char *dump = wait_for_dump("-deadlock", rtc_t_bound_ms(2000 + 2000 + 1500));
    CHECK(dump != NULL);
    kill(pid, SIGKILL);
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    const char *err = rtc_t_slurp(errfile);
    CHECK_CONTAINS(err, "deadlock:");
    CHECK_CONTAINS(err, "flight recorder: writing ");
    CHECK_CONTAINS(err, "flight recorder: wrote ");
    if (!dump) return;
    char report[2048];
    CHECK_STATUS(rtc_trace_check_file(dump, report, sizeof report), RTC_OK);
    /* Its statistics show both threads waiting on each other's lock,
     * with the owners. */
    static char json[1 << 16];
    size_t need = 0;
    CHECK_STATUS(rtc_trace_stats_json(dump, json, sizeof json, &need), RTC_OK);
    CHECK_CONTAINS(json, "\"payer\"");
    CHECK_CONTAINS(json, "\"payee\"");
    CHECK_CONTAINS(json, "\"waiting_at_end\":[{");
    CHECK_CONTAINS(json, "\"name\":\"ledger\"");
    CHECK_CONTAINS(json, "\"name\":\"journal\"");
    /* And in text, each waiting for the lock the other holds. */
    const char *bin = getenv("RTCORE_BIN");
    CHECK(bin != NULL);
    if (bin) {
        char cmd[1200], out[700];
        snprintf(out, sizeof out, "%s.stats", dump);
        snprintf(cmd, sizeof cmd, "'%s' stats '%s' > '%s'", bin, dump, out);
        CHECK(system(cmd) == 0);
        const char *text = rtc_t_slurp(out);
        CHECK_CONTAINS(text, "still waiting for a lock when the trace ends");
        CHECK_CONTAINS(text, "'payer' waits for 'journal'");
        CHECK_CONTAINS(text, "held by thread");
        CHECK_CONTAINS(text, "'payee' waits for 'ledger'");
        unlink(out);
    }
    printf("  deadlock dump: %s\n", strrchr(dump, '/') + 1);
}

static void abort_dumps(void) {
    char errfile[600];
    snprintf(errfile, sizeof errfile, "%s/../flight-abort.err", dir);
    pid_t pid = spawn("child-abort", errfile);
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    const char *dump = find_dump("-signal");
    CHECK(dump != NULL);
    const char *err = rtc_t_slurp(errfile);
    CHECK_CONTAINS(err, "flight recorder: fatal signal 6: wrote ");
    /* The four threads at least (sysmon records too when it acts). */
    const char *closed = strstr(err, "the last one closed where the signal struck: ");
    CHECK(closed != NULL);
    if (!closed) fprintf(stderr, "  the abort child said:\n%s\n", err);
    int threads = 0;
    if (closed) sscanf(closed + strlen("the last one closed where the signal struck: "), "%d", &threads);
    CHECK(threads >= 4);
    /* The event recorded just before abort() is in the dump. */
    CHECK(dump && file_contains(dump, "last words before abort"));
    if (dump) printf("  abort dump: %s\n", strrchr(dump, '/') + 1);
}

static void segv_in_section_dumps(void) {
    char errfile[600];
    snprintf(errfile, sizeof errfile, "%s/../flight-segv.err", dir);
    pid_t pid = spawn("child-segv-in-section", errfile);
    int st = 0;
    waitpid(pid, &st, 0);
#ifdef __SANITIZE_ADDRESS__
    /* The previous handler is ASan's: it reports the fault and exits. */
    CHECK((WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV) || (WIFEXITED(st) && WEXITSTATUS(st) != 0));
#else
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);
#endif
    const char *dump = find_dump("-signal");
    CHECK(dump != NULL);
    const char *err = rtc_t_slurp(errfile);
    CHECK_CONTAINS(err, "flight recorder: fatal signal 11: wrote ");
    CHECK_CONTAINS(err, "left out: the generation in progress, recorded as lost: threads were inside their sections");
    CHECK_CONTAINS(err, "skipped 1 thread(s) inside their sections (thread id ");
    if (dump) printf("  segv dump: %s\n", strrchr(dump, '/') + 1);
}

static void *sleeper(void *arg) {
    (void)arg;
    rtc_thread_attach("sleeper", NULL);
    rtc_enter_blocking("long read");
    usleep(400 * 1000);
    rtc_exit_blocking();
    rtc_thread_detach();
    return NULL;
}

static void the_api(void) {
    rtc_thread_attach("main", NULL);
    /* Misuse first. */
    rtc_flight_recorder_config c = RTC_FLIGHT_RECORDER_CONFIG_INIT;
    CHECK(c.size == sizeof c && c.max_mb == 0 && c.dump_dir == NULL);
    c.size = sizeof c - 1;
    CHECK_STATUS(rtc_flight_recorder_start(&c), RTC_ERR_INVALID_ARGUMENT);
    c.size = sizeof c;
    c.triggers = 1u << 9;
    CHECK_STATUS(rtc_flight_recorder_start(&c), RTC_ERR_INVALID_ARGUMENT);
    c.triggers = 0;
    c.dump_dir = "/proc/self/this-cannot-be-made";
    CHECK_STATUS(rtc_flight_recorder_start(&c), RTC_ERR_IO);
    rtc_trace_config snap;
    memset(&snap, 0, sizeof snap);
    snap.size = sizeof snap;
    snap.sink_kind = RTC_TRACE_SINK_PATH;
    char path[600];
    snprintf(path, sizeof path, "%s/../snapshot.rtctrace", dir);
    snap.path = path;
    CHECK_STATUS(rtc_flight_recorder_write(&snap), RTC_ERR_WRONG_STATE);
    CHECK_STATUS(rtc_flight_recorder_stop(), RTC_OK); /* not recording: fine */

    c.dump_dir = dir;
    c.max_mb = 4;
    c.min_age_ms = 200; /* generations of 50 ms */
    c.dir_max_dumps = 1;
    char notes[600];
    snprintf(notes, sizeof notes, "%s/notes.txt", dir);
    FILE *nf = fopen(notes, "w");
    if (nf) {
        fputs("the user's own file\n", nf);
        fclose(nf);
    }
    CHECK_STATUS(rtc_flight_recorder_start(&c), RTC_OK);
    CHECK_STATUS(rtc_flight_recorder_start(&c), RTC_ERR_WRONG_STATE);
    CHECK(rtc_trace_enabled());
    /* One trace at a time. */
    rtc_trace_config t = snap;
    CHECK_STATUS(rtc_trace_start(&t), RTC_ERR_WRONG_STATE);
    CHECK_CONTAINS(rtc_t_last_error(), "flight recorder is recording");
    CHECK_STATUS(rtc_trace_stop(), RTC_ERR_WRONG_STATE);
    for (int i = 0; i < 2000; i++) RTC_LOG("api", "event");
    usleep(150 * 1000);
    /* Snapshots while recording: complete, valid traces. */
    char report[2048];
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < 100; i++) RTC_LOG("api", "more");
        CHECK_STATUS(rtc_flight_recorder_write(&snap), RTC_OK);
        CHECK_STATUS(rtc_trace_check_file(path, report, sizeof report), RTC_OK);
    }
    CHECK_CONTAINS(report, "log ");
    /* A lock-order violation dumps, once per rate limit. */
    static rtc_mutex inner = RTC_MUTEX_INIT_RANKED("inner", NULL);
    static rtc_mutex outer = RTC_MUTEX_INIT_RANKED("outer", NULL);
    for (int k = 0; k < 3; k++) {
        rtc_mutex_lock(&inner);
        rtc_mutex_lock(&outer); /* unranked leaves nest: a violation */
        rtc_mutex_unlock(&outer);
        rtc_mutex_unlock(&inner);
    }
    CHECK(wait_for_dump("-lockorder", rtc_t_bound_ms(3000)) != NULL);
    /* A stall (a thread blocking past the threshold) dumps too. */
    rtc_sysmon_set_threshold(RTC_SYSMON_THREAD_STALL_NS, 50 * 1000 * 1000, NULL);
    pthread_t s;
    pthread_create(&s, NULL, sleeper, NULL);
    pthread_join(s, NULL);
    CHECK(wait_for_dump("-stall", rtc_t_bound_ms(3000)) != NULL);
    rtc_sysmon_set_threshold(RTC_SYSMON_THREAD_STALL_NS, 0, NULL);
    usleep(100 * 1000);
    /* One dump per cause (the rate limit), and the directory's budget of
     * one dump: the older (lock-order) dump went, the user's file stays. */
    int files = count_files();
    CHECK(files == 2);
    if (files != 2) fprintf(stderr, "%d files in %s\n", files, dir);
    CHECK(access(notes, F_OK) == 0);
    CHECK(find_dump("-lockorder") == NULL);
    CHECK(find_dump("-stall") != NULL);
    CHECK_STATUS(rtc_flight_recorder_stop(), RTC_OK);
    CHECK(!rtc_trace_enabled());
    CHECK_STATUS(rtc_flight_recorder_write(&snap), RTC_ERR_WRONG_STATE);
    /* A regular trace works again. */
    CHECK_STATUS(rtc_trace_start(&t), RTC_OK);
    CHECK_STATUS(rtc_flight_recorder_start(&c), RTC_ERR_WRONG_STATE);
    CHECK_STATUS(rtc_flight_recorder_stop(), RTC_OK); /* not recording: nothing */
    CHECK(rtc_trace_enabled());
    CHECK_STATUS(rtc_trace_stop(), RTC_OK);
    rtc_thread_detach();
}

/* ---- 2,000 recording threads under the default bound ----------------- */

static pthread_barrier_t crowd;

static void *crowd_member(void *arg) {
    (void)arg;
    for (int i = 0; i < 100; i++) RTC_LOG("crowd", "hello");
    pthread_barrier_wait(&crowd); /* all 2,000 record */
    pthread_barrier_wait(&crowd); /* main rolled the trace over */
    for (int i = 0; i < 100; i++) RTC_LOG("crowd", "again");
    pthread_barrier_wait(&crowd); /* everyone has a batch being filled */
    pthread_barrier_wait(&crowd); /* main has measured */
    return NULL;
}

static void many_threads_fit_the_bound(void) {
    /* Valgrind runs at most 500 threads: 300 there. */
    const int N = getenv("RTC_TEST_SLOW") ? 300 : 2000;
    CHECK_STATUS(rtc_flight_recorder_start(NULL), RTC_OK); /* 16 MiB */
    pthread_barrier_init(&crowd, NULL, N + 1);
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 64 * 1024);
    static pthread_t t[2000];
    int made = 0;
    for (; made < N; made++)
        if (pthread_create(&t[made], &a, crowd_member, NULL) != 0) break;
    CHECK(made == N);
    if (made != N) {
        fprintf(stderr, "only %d threads\n", made);
        abort(); /* the barrier would never open */
    }
    pthread_barrier_wait(&crowd);
    /* A snapshot rolls over: every batch being filled is handed over, and
     * the next ones are sized for 2,000 threads (the first threads began
     * when few recorded, with full-size batches). */
    rtc_trace_config null_sink;
    memset(&null_sink, 0, sizeof null_sink);
    null_sink.size = sizeof null_sink;
    null_sink.sink_kind = RTC_TRACE_SINK_PATH;
    null_sink.path = "/dev/null";
    CHECK_STATUS(rtc_flight_recorder_write(&null_sink), RTC_OK);
    pthread_barrier_wait(&crowd);
    pthread_barrier_wait(&crowd);
    rtc_trace_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    CHECK_STATUS(rtc_trace_get_stats(&st), RTC_OK);
    /* Buffer sizes adapt to the bound: a quarter of 16 MiB for 2,000
     * threads' batches (1 KiB each, two slots), not 2,000 x 16 KiB. */
    printf("  %d recording threads: %llu KiB in batches being filled, %llu KiB queued\n", N,
           (unsigned long long)(st.buffer_bytes >> 10), (unsigned long long)(st.queued_bytes >> 10));
    CHECK(st.buffer_bytes <= (4u << 20) + (1u << 20));
    CHECK(st.buffer_bytes + st.queued_bytes <= (16u << 20));
    pthread_barrier_wait(&crowd);
    for (int i = 0; i < made; i++) pthread_join(t[i], NULL);
    CHECK_STATUS(rtc_flight_recorder_stop(), RTC_OK);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "child-deadlock") == 0) return child_deadlock();
    if (argc > 1 && strcmp(argv[1], "child-abort") == 0) return child_abort();
    if (argc > 1 && strcmp(argv[1], "child-segv-in-section") == 0) return child_segv_in_section();
    char base[128];
    snprintf(base, sizeof base, "/tmp/rtcore-test-flight-XXXXXX");
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(dir, sizeof dir, "%s/dumps", base);
    mkdir(dir, 0755);

    deadlock_dumps_through_the_environment();
    empty_dir();
    abort_dumps();
    empty_dir();
    segv_in_section_dumps();
    empty_dir();
    the_api();
    many_threads_fit_the_bound();

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", base);
    return rtc_t_finish();
}
