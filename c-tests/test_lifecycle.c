/* rtc_init with options (rank file, mode), once; the environment knob
 * overrides; abort mode really aborts. Child processes get fresh state. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rtc_test.h"

static char rank_file[] = "/tmp/rtc-lifecycle-XXXXXX";

static void child_init_with_file(void) {
    rtc_config c = RTC_CONFIG_INIT;
    c.ranks_file = rank_file;
    c.lockrank_mode = RTC_LOCKRANK_OFF;
    c.maxprocs = 3;
    CHECK_STATUS(rtc_init(&c), RTC_OK);
    uint32_t mp = 0;
    CHECK_STATUS(rtc_get_maxprocs(&mp), RTC_OK);
    CHECK(mp == 3);
    CHECK_STATUS(rtc_init(&c), RTC_ERR_ALREADY_INITIALIZED);
    CHECK_CONTAINS(rtc_t_last_error(), "already called");
    uint32_t id = 0;
    CHECK_STATUS(rtc_rank_lookup("lf_b", &id), RTC_OK);
    int32_t mode = 0;
    CHECK_STATUS(rtc_lockrank_get_mode(&mode), RTC_OK);
    CHECK(mode == RTC_LOCKRANK_OFF);
    /* Off: an inversion is not counted... */
    rtc_mutex a = RTC_MUTEX_INIT_RANKED("A", "lf_a"), b = RTC_MUTEX_INIT_RANKED("B", "lf_b");
    rtc_mutex_lock(&b); rtc_mutex_lock(&a);
    rtc_mutex_unlock(&a); rtc_mutex_unlock(&b);
    CHECK(rtc_t_violations() == 0);
    /* ...but misuse still is. */
    CHECK_STATUS(rtc_mutex_unlock(&a), RTC_ERR_NOT_OWNER);
    CHECK_STATUS(rtc_shutdown(), RTC_OK);
}

static void child_bad_maxprocs(void) {
    rtc_config c = RTC_CONFIG_INIT;
    c.maxprocs = 70000;
    CHECK_STATUS(rtc_init(&c), RTC_ERR_INVALID_ARGUMENT);
    CHECK_CONTAINS(rtc_t_last_error(), "config->maxprocs is 70000");
    /* An old, smaller config (without maxprocs) is still accepted. */
    c.size = (uint32_t)offsetof(rtc_config, maxprocs);
    CHECK_STATUS(rtc_init(&c), RTC_OK);
    rtc_shutdown();
}

/* A thread that runs past the threshold without a safepoint is named by
 * the stop that waits for it; the stop still completes. */
static atomic_int tts_go;

static void *no_safepoints(void *arg) {
    (void)arg;
    rtc_thread_attach("slowpoke", NULL);
    atomic_store(&tts_go, 1);
    /* Run without a safepoint until the stop has been waiting for us for
     * 500 ms (ten times the threshold; slow hosts such as valgrind need the
     * margin). rtc_world_census takes no safepoint. */
    rtc_census c;
    for (;;) { /* poll gently: a tight loop on the census lock could starve the stopper */
        memset(&c, 0, sizeof c);
        c.size = sizeof c;
        rtc_world_census(&c);
        if (c.stopped) break;
        usleep(1000); /* not a safepoint */
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (rtc_t_ms_since(&t0) < 500) usleep(1000); /* sleeping is not a safepoint */
    rtc_safepoint();
    rtc_thread_detach();
    return NULL;
}

static void child_time_to_safepoint(void) {
    CHECK_STATUS(rtc_world_set_safepoint_threshold_ns(50000000), RTC_OK);
    pthread_t t;
    pthread_create(&t, NULL, no_safepoints, NULL);
    while (!atomic_load(&tts_go)) usleep(1000);
    CHECK_STATUS(rtc_stop_the_world("tts test"), RTC_OK);
    CHECK_STATUS(rtc_start_the_world(), RTC_OK);
    pthread_join(t, NULL);
    rtc_shutdown();
}

/* The thread holding the world stopped blocks on a user lock: reported
 * (a stopped thread may hold it); here an unattached thread holds it and
 * lets go, so the stopper gets it. A try-lock is not reported. */
static rtc_mutex sb_lock = RTC_MUTEX_INIT_RANKED("stopper-wants", NULL);
static atomic_int sb_held, sb_tried;
static void *hold_briefly(void *arg) {
    (void)arg;
    rtc_mutex_lock(&sb_lock);
    atomic_store(&sb_held, 1);
    /* Held until the stopper has tried, then long enough that its lock call
     * waits (stretched under valgrind, where the stop itself is slow). */
    while (!atomic_load(&sb_tried)) usleep(1000);
    usleep(rtc_t_bound_ms(100) * 1000);
    rtc_mutex_unlock(&sb_lock);
    return NULL;
}

static void child_stopper_blocks_on_lock(void) {
    CHECK_STATUS(rtc_thread_attach("the-stopper", NULL), RTC_OK);
    pthread_t t;
    pthread_create(&t, NULL, hold_briefly, NULL);
    while (!atomic_load(&sb_held)) usleep(1000);
    CHECK_STATUS(rtc_stop_the_world("blocks"), RTC_OK);
    CHECK_STATUS(rtc_mutex_trylock(&sb_lock), RTC_ERR_BUSY);
    atomic_store(&sb_tried, 1);
    CHECK_STATUS(rtc_mutex_lock(&sb_lock), RTC_OK); /* waits ~100 ms, reported */
    CHECK_STATUS(rtc_mutex_unlock(&sb_lock), RTC_OK);
    CHECK_STATUS(rtc_start_the_world(), RTC_OK);
    pthread_join(t, NULL);
    rtc_shutdown();
}

static void child_bad_rank_file_then_retry(void) {
    rtc_config c = RTC_CONFIG_INIT;
    c.ranks_file = "/nonexistent/file.ranks";
    CHECK_STATUS(rtc_init(&c), RTC_ERR_IO);
    c.ranks_file = NULL;
    CHECK_STATUS(rtc_init(&c), RTC_OK); /* a failed init leaves rtcore uninitialised */
    rtc_shutdown();
}

static void child_env_overrides_config(void) {
    rtc_config c = RTC_CONFIG_INIT;
    c.lockrank_mode = RTC_LOCKRANK_ABORT;
    CHECK_STATUS(rtc_init(&c), RTC_OK);
    int32_t mode = 0;
    rtc_lockrank_get_mode(&mode);
    CHECK(mode == RTC_LOCKRANK_REPORT); /* RTCORE_DEBUG=lockrank=report wins */
    rtc_shutdown();
}

static void child_default_is_report(void) {
    int32_t mode = 0;
    CHECK_STATUS(rtc_lockrank_get_mode(&mode), RTC_OK); /* first use, no init */
    CHECK(mode == RTC_LOCKRANK_REPORT);
    CHECK_STATUS(rtc_init(NULL), RTC_ERR_TOO_LATE);
    rtc_shutdown();
}

static void child_abort(void) {
    rtc_ranks_load("NONE < ab_a;\nab_a < ab_b;\n", "abort.ranks");
    rtc_mutex a = RTC_MUTEX_INIT_RANKED("A", "ab_a"), b = RTC_MUTEX_INIT_RANKED("B", "ab_b");
    rtc_mutex_lock(&b);
    rtc_mutex_lock(&a); /* aborts here */
    _exit(0);
}

/* Abort mode aborts on order violations only: re-locking a held lock is a
 * status, never an abort. */
static void child_abort_mode_self_lock_is_a_status(void) {
    rtc_mutex m = RTC_MUTEX_INIT;
    CHECK_STATUS(rtc_mutex_lock(&m), RTC_OK);
    CHECK_STATUS(rtc_mutex_lock(&m), RTC_ERR_WOULD_DEADLOCK);
    CHECK_STATUS(rtc_mutex_unlock(&m), RTC_OK);
    rtc_shutdown();
}

/* A report printed to an unwritable stderr (a full disk; a closed pipe with
 * SIGPIPE ignored, as under Python) must not abort, on the fast path or the
 * slow one. */
static void child_unwritable_stderr(void) {
    if (!freopen("/dev/full", "w", stderr)) _exit(98);
    rtc_ranks_load("NONE < uw_a;\nuw_a < uw_b;\n", "uw.ranks");
    rtc_mutex a = RTC_MUTEX_INIT_RANKED("A", "uw_a"), b = RTC_MUTEX_INIT_RANKED("B", "uw_b");
    CHECK_STATUS(rtc_mutex_lock(&b), RTC_OK);
    CHECK_STATUS(rtc_mutex_lock(&a), RTC_OK); /* first lock of a: slow path report */
    rtc_mutex_unlock(&a); rtc_mutex_unlock(&b);
    rtc_ranks_load("NONE < uw_c;\nuw_c < uw_d;\n", "uw2.ranks");
    rtc_mutex c2 = RTC_MUTEX_INIT_RANKED("C", "uw_c"), d = RTC_MUTEX_INIT_RANKED("D", "uw_d");
    rtc_mutex_lock(&c2); rtc_mutex_unlock(&c2); /* resolved: the next lock is fast */
    CHECK_STATUS(rtc_mutex_lock(&d), RTC_OK);
    CHECK_STATUS(rtc_mutex_lock(&c2), RTC_OK); /* fast-path report */
    rtc_mutex_unlock(&c2); rtc_mutex_unlock(&d);
    CHECK(rtc_t_violations() == 2);
    rtc_shutdown();
}

static void child_unknown_knob(void) {
    int32_t mode = 0;
    rtc_lockrank_get_mode(&mode);
    CHECK(mode == RTC_LOCKRANK_REPORT);
    rtc_shutdown();
}

int main(void) {
    int fd = mkstemp(rank_file);
    const char *decl = "# lifecycle test\nNONE < lf_a;\nlf_a < lf_b;\n";
    CHECK(fd >= 0 && write(fd, decl, strlen(decl)) == (ssize_t)strlen(decl));
    close(fd);
    char errfile[] = "/tmp/rtc-lifecycle-err-XXXXXX";
    int efd = mkstemp(errfile);
    close(efd);

    int st = rtc_t_in_child(child_init_with_file, NULL, NULL);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    st = rtc_t_in_child(child_bad_maxprocs, NULL, NULL);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    st = rtc_t_in_child(child_time_to_safepoint, NULL, errfile);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK_CONTAINS(rtc_t_slurp(errfile), "stop-the-world (tts test) is waiting");
    CHECK_CONTAINS(rtc_t_slurp(errfile), "'slowpoke'");
    CHECK_CONTAINS(rtc_t_slurp(errfile), "is RUNNING and has passed no safepoint");
    st = rtc_t_in_child(child_stopper_blocks_on_lock, NULL, errfile);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK_CONTAINS(rtc_t_slurp(errfile), "'the-stopper'");
    CHECK_CONTAINS(rtc_t_slurp(errfile), "holds the world stopped and is blocking on a lock");
    st = rtc_t_in_child(child_bad_rank_file_then_retry, NULL, NULL);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    st = rtc_t_in_child(child_env_overrides_config, "lockrank=report", NULL);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    st = rtc_t_in_child(child_default_is_report, NULL, NULL);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    st = rtc_t_in_child(child_abort, "lockrank=abort", errfile);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    CHECK_CONTAINS(rtc_t_slurp(errfile), "lock order violation (lock-rank mode abort)");
    CHECK_CONTAINS(rtc_t_slurp(errfile), "abort.ranks:2: ab_a < ab_b");

    st = rtc_t_in_child(child_abort_mode_self_lock_is_a_status, "lockrank=abort", NULL);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    st = rtc_t_in_child(child_unwritable_stderr, NULL, NULL);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    st = rtc_t_in_child(child_unknown_knob, "bogus=1,lockrank=loud", errfile);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK_CONTAINS(rtc_t_slurp(errfile), "unknown setting 'bogus'");
    CHECK_CONTAINS(rtc_t_slurp(errfile), "lockrank=\"loud\" is not one of off, report, abort");

    unlink(rank_file);
    unlink(errfile);
    return rtc_t_finish();
}
