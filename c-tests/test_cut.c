/* Traces that survive a kill: a trace rolls to a new generation every
 * generation_ms and hands each finished one to the sink, so a program
 * killed (SIGKILL) or aborted while tracing to a file leaves a trace whose
 * complete generations check consistent (RTC_ERR_TRACE_CUT, "cut short
 * after generation N"), and `rtcore check` exits 3 on it. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rtc_test.h"

static char dir[256];
static atomic_int stop_workers;

static void *worker(void *arg) {
    char name[32];
    snprintf(name, sizeof name, "worker-%d", (int)(long)arg);
    rtc_thread_attach(name, NULL);
    static rtc_mutex m = RTC_MUTEX_INIT_RANKED("shared", NULL);
    for (unsigned long i = 0; !atomic_load(&stop_workers); i++) {
        rtc_mutex_lock(&m);
        RTC_LOG("work", "item");
        rtc_mutex_unlock(&m);
        if (i % 64 == 0) {
            rtc_enter_blocking("nap");
            usleep(200);
            rtc_exit_blocking();
        }
        rtc_safepoint();
    }
    rtc_thread_detach();
    return NULL;
}

/* The child: trace into `path` with generations of `gen_ms`, two workers
 * busy, then (after `ms`) abort() if asked, else wait to be killed. */
static void traced_child(const char *path, uint32_t gen_ms, long ms, int do_abort) {
    rtc_thread_attach("main", NULL);
    rtc_trace_config c;
    memset(&c, 0, sizeof c);
    c.size = sizeof c;
    c.sink_kind = RTC_TRACE_SINK_PATH;
    c.path = path;
    c.generation_ms = gen_ms;
    if (rtc_trace_start(&c) != RTC_OK) _exit(20);
    pthread_t t[2];
    for (long i = 0; i < 2; i++) pthread_create(&t[i], NULL, worker, (void *)i);
    rtc_enter_blocking("sleep");
    usleep((useconds_t)ms * 1000);
    rtc_exit_blocking();
    if (do_abort) abort();
    for (;;) pause();
}

/* Run the child, SIGKILL it after `ms` (unless it aborts itself); return
 * its wait status. */
static int run_child(const char *path, uint32_t gen_ms, long ms, int do_abort) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        traced_child(path, gen_ms, ms, do_abort);
        _exit(0);
    }
    int st = 0;
    if (!do_abort) {
        usleep((useconds_t)(ms + 300) * 1000);
        kill(pid, SIGKILL);
    }
    waitpid(pid, &st, 0);
    return st;
}

/* The number after "after generation " in `report` (0 if none). */
static long generations_in(const char *report) {
    const char *p = strstr(report, "after generation ");
    return p ? strtol(p + strlen("after generation "), NULL, 10) : 0;
}

static void check_cut(const char *path, long at_least) {
    char report[2048];
    CHECK_STATUS(rtc_trace_check_file(path, report, sizeof report), RTC_ERR_TRACE_CUT);
    CHECK_CONTAINS(report, "cut short after generation");
    CHECK_CONTAINS(report, "complete generation(s) are consistent");
    long g = generations_in(report);
    /* Under valgrind everything is ~50x slower: one whole generation is
     * all a slow run can promise. */
    if (getenv("RTC_TEST_SLOW")) at_least = 1;
    CHECK(g >= at_least);
    if (g < at_least) fprintf(stderr, "report: %s\n", report);
    printf("  %s: %s\n", strrchr(path, '/') + 1, report);
    /* `rtcore check` says the same with exit status 3. */
    const char *bin = getenv("RTCORE_BIN");
    CHECK(bin != NULL); /* run.sh sets it (the command next to the library) */
    if (bin) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "'%s' check '%s' >/dev/null", bin, path);
        int st = system(cmd);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 3);
    }
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/rtcore-test-cut-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char path[512];

    /* Killed after 3 s of tracing, default generations (1 s): the first
     * two are whole. */
    snprintf(path, sizeof path, "%s/killed.rtctrace", dir);
    int st = run_child(path, 0, 3000, 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    check_cut(path, 2);

    /* Killed after 1 s with generations of 100 ms. */
    snprintf(path, sizeof path, "%s/killed-fast.rtctrace", dir);
    st = run_child(path, 100, 1000, 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    check_cut(path, 5);

    /* abort() after 1 s (no exit handler runs). */
    snprintf(path, sizeof path, "%s/aborted.rtctrace", dir);
    st = run_child(path, 100, 1000, 1);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    check_cut(path, 5);

    /* A complete trace is still RTC_OK, with several generations. */
    snprintf(path, sizeof path, "%s/complete.rtctrace", dir);
    rtc_thread_attach("main", NULL);
    rtc_trace_config c;
    memset(&c, 0, sizeof c);
    c.size = sizeof c;
    c.sink_kind = RTC_TRACE_SINK_PATH;
    c.path = path;
    c.generation_ms = 50;
    CHECK_STATUS(rtc_trace_start(&c), RTC_OK);
    rtc_enter_blocking("sleep");
    usleep(400 * 1000);
    rtc_exit_blocking();
    CHECK_STATUS(rtc_trace_stop(), RTC_OK);
    char report[2048];
    CHECK_STATUS(rtc_trace_check_file(path, report, sizeof report), RTC_OK);
    const char *gens = strstr(report, "events, ");
    long want = getenv("RTC_TEST_SLOW") ? 2 : 4;
    CHECK(gens && strtol(gens + strlen("events, "), NULL, 10) >= want);
    if (!gens || strtol(gens + strlen("events, "), NULL, 10) < want) fprintf(stderr, "report: %s\n", report);
    rtc_thread_detach();

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return rtc_t_finish();
}
