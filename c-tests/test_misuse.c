/* Misuse of every export: NULL, wrong handle, wrong state, wrong thread.
 * Each gets a status and a last-error message, never a crash. The table
 * below names every header function; tests/c_suite.rs checks that the table
 * covers the whole header. The shutdown case runs last. */
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include "rtc_test.h"

static rtc_mutex held_elsewhere = RTC_MUTEX_INIT_RANKED("elsewhere", "mu_r");

static void expect_message(const char *needle) { CHECK_CONTAINS(rtc_t_last_error(), needle); }

static void m_status_str(void) {
    CHECK(strcmp(rtc_status_str(RTC_OK), "success") == 0);
    CHECK(strcmp(rtc_status_str(-1), "unknown status") == 0);
    CHECK(strcmp(rtc_status_str(1000000), "unknown status") == 0);
    for (int s = 0; s <= RTC_ERR_BAD_TRACE; s++) CHECK(strcmp(rtc_status_str(s), "unknown status") != 0);
}

static void m_last_error_message(void) {
    CHECK_STATUS(rtc_mutex_lock(NULL), RTC_ERR_NULL);
    size_t need = rtc_last_error_message(NULL, 0);
    CHECK(need == strlen("rtc_mutex_lock: argument 'mutex' is NULL") + 1);
    char small[8];
    memset(small, 'x', sizeof small);
    CHECK(rtc_last_error_message(small, sizeof small) == need);
    CHECK(small[7] == '\0' && strncmp(small, "rtc_mut", 7) == 0); /* truncated, terminated */
    CHECK(rtc_last_error_message(NULL, 100) == need); /* NULL buffer: size only */
}

static void m_last_error_status(void) {
    CHECK_STATUS(rtc_mutex_unlock(NULL), RTC_ERR_NULL);
    CHECK_STATUS(rtc_last_error_status(), RTC_ERR_NULL);
}

static void m_last_error_clear(void) {
    CHECK_STATUS(rtc_mutex_unlock(NULL), RTC_ERR_NULL);
    rtc_last_error_clear();
    CHECK_STATUS(rtc_last_error_status(), RTC_OK);
    CHECK(rtc_last_error_message(NULL, 0) == 1);
}

static void m_version(void) {
    CHECK(strcmp(rtc_version(), RTC_VERSION_STRING) == 0);
    CHECK(rtc_version_number() == RTC_VERSION_NUMBER);
}

static void m_init(void) {
    rtc_config c = RTC_CONFIG_INIT;
    c.size = 4;
    CHECK_STATUS(rtc_init(&c), RTC_ERR_INVALID_ARGUMENT);
    expect_message("config->size is 4");
    rtc_config d = RTC_CONFIG_INIT;
    d.lockrank_mode = 42;
    CHECK_STATUS(rtc_init(&d), RTC_ERR_INVALID_ARGUMENT);
    expect_message("lock-rank mode 42");
    /* rtcore is in use by now: a valid init is too late. */
    CHECK_STATUS(rtc_init(NULL), RTC_ERR_TOO_LATE);
    expect_message("after rtcore was first used");
}

static void m_debug_panic(void) {
    CHECK_STATUS(rtc_debug_panic(), RTC_ERR_PANIC);
    expect_message("deliberate");
    /* rtcore still works after a caught panic. */
    rtc_mutex m = RTC_MUTEX_INIT;
    CHECK_STATUS(rtc_mutex_lock(&m), RTC_OK);
    CHECK_STATUS(rtc_mutex_unlock(&m), RTC_OK);
}

static void m_mutex_debug_panic(void) {
    CHECK_STATUS(rtc_mutex_debug_panic(NULL), RTC_ERR_NULL);
    rtc_mutex m = RTC_MUTEX_INIT_RANKED("victim", "mu_r");
    CHECK_STATUS(rtc_mutex_debug_panic(&m), RTC_ERR_PANIC);
    CHECK_STATUS(rtc_mutex_lock(&m), RTC_ERR_POISONED);
    expect_message("mutex 'victim' (rank mu_r) is poisoned");
    CHECK_STATUS(rtc_mutex_trylock(&m), RTC_ERR_POISONED);
    /* Re-initialising clears the poison. */
    CHECK_STATUS(rtc_mutex_init(&m, "victim", "mu_r"), RTC_OK);
    CHECK_STATUS(rtc_mutex_lock(&m), RTC_OK);
    CHECK_STATUS(rtc_mutex_unlock(&m), RTC_OK);
}

static void m_mutex_init(void) {
    rtc_mutex m;
    memset(&m, 0xAB, sizeof m); /* garbage before init is fine */
    CHECK_STATUS(rtc_mutex_init(NULL, "x", NULL), RTC_ERR_NULL);
    CHECK_STATUS(rtc_mutex_init(&m, "x", "no_such_rank"), RTC_ERR_UNKNOWN_RANK);
    expect_message("rank 'no_such_rank' is not declared");
    CHECK_STATUS(rtc_mutex_init(&m, "x", "MU_PSEUDO"), RTC_ERR_UNKNOWN_RANK);
    expect_message("pseudo-rank");
    /* Used without init, filled with 0xff: its flags say it is no mutex,
     * so its name pointer is never read (this crashed before). */
    memset(&m, 0xff, sizeof m);
    CHECK_STATUS(rtc_mutex_lock(&m), RTC_ERR_INVALID_ARGUMENT);
    expect_message("is not an initialised rtc_mutex");
    CHECK_STATUS(rtc_mutex_trylock(&m), RTC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(rtc_mutex_unlock(&m), RTC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(rtc_mutex_init(&m, "x", "mu_r"), RTC_OK);
    CHECK_STATUS(rtc_mutex_lock(&m), RTC_OK);
    CHECK_STATUS(rtc_mutex_init(&m, "x", "mu_r"), RTC_ERR_LOCKED);
    expect_message("init of mutex 'x' (rank mu_r) which this thread holds");
    CHECK_STATUS(rtc_mutex_unlock(&m), RTC_OK);
    char misaligned[sizeof(rtc_mutex) + 8];
    CHECK_STATUS(rtc_mutex_init((rtc_mutex *)(void *)(misaligned + 1), "x", NULL), RTC_ERR_INVALID_ARGUMENT);
    expect_message("not aligned");
}

static void m_mutex_lock(void) {
    CHECK_STATUS(rtc_mutex_lock(NULL), RTC_ERR_NULL);
    expect_message("rtc_mutex_lock: argument 'mutex' is NULL");
    rtc_mutex bad = RTC_MUTEX_INIT_RANKED("bad", "undeclared_rank");
    CHECK_STATUS(rtc_mutex_lock(&bad), RTC_ERR_UNKNOWN_RANK);
    expect_message("mutex 'bad' (rank undeclared_rank): rank 'undeclared_rank' is not declared");
    CHECK_STATUS(rtc_mutex_trylock(&bad), RTC_ERR_UNKNOWN_RANK); /* still not locked */
    CHECK_STATUS(rtc_mutex_unlock(&bad), RTC_ERR_NOT_OWNER);
    /* Declaring the rank later makes it usable. */
    CHECK_STATUS(rtc_ranks_load("NONE < undeclared_rank;", "late.ranks"), RTC_OK);
    CHECK_STATUS(rtc_mutex_lock(&bad), RTC_OK);
    CHECK_STATUS(rtc_mutex_lock(&bad), RTC_ERR_WOULD_DEADLOCK);
    CHECK_STATUS(rtc_mutex_unlock(&bad), RTC_OK);
    /* Moved after first use. */
    rtc_mutex *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    CHECK_STATUS(rtc_mutex_lock(a), RTC_OK);
    CHECK_STATUS(rtc_mutex_unlock(a), RTC_OK);
    memcpy(b, a, sizeof *a);
    CHECK_STATUS(rtc_mutex_lock(b), RTC_ERR_MOVED);
    expect_message("was moved");
    free(a); free(b);
}

static void m_mutex_lock_at(void) {
    CHECK_STATUS(rtc_mutex_lock_at(NULL, "f.c", 1), RTC_ERR_NULL);
    rtc_mutex m = RTC_MUTEX_INIT;
    CHECK_STATUS(rtc_mutex_lock_at(&m, NULL, 0), RTC_OK); /* a NULL site is allowed */
    CHECK_STATUS(rtc_mutex_lock_at(&m, "here.c", 7), RTC_ERR_WOULD_DEADLOCK);
    CHECK_STATUS(rtc_mutex_unlock(&m), RTC_OK);
    CHECK_STATUS(rtc_mutex_destroy(&m), RTC_OK);
    CHECK_STATUS(rtc_mutex_lock_at(&m, "here.c", 9), RTC_ERR_DESTROYED);
    expect_message("was destroyed");
}

static void *hold_elsewhere(void *arg) {
    (void)arg;
    rtc_mutex_lock(&held_elsewhere);
    return NULL; /* exits holding it */
}

static void m_mutex_trylock(void) {
    CHECK_STATUS(rtc_mutex_trylock(NULL), RTC_ERR_NULL);
    rtc_last_error_clear();
    CHECK_STATUS(rtc_mutex_trylock(&held_elsewhere), RTC_ERR_BUSY);
    CHECK_STATUS(rtc_last_error_status(), RTC_OK); /* BUSY stores no error */
}

static void m_mutex_trylock_at(void) {
    CHECK_STATUS(rtc_mutex_trylock_at(NULL, "f.c", 1), RTC_ERR_NULL);
    rtc_mutex m = RTC_MUTEX_INIT;
    CHECK_STATUS(rtc_mutex_trylock_at(&m, "f.c", 2), RTC_OK);
    CHECK_STATUS(rtc_mutex_trylock_at(&m, "f.c", 3), RTC_ERR_WOULD_DEADLOCK);
    expect_message("try-lock of mutex '(unnamed)' (unranked) which this thread already holds");
    CHECK_STATUS(rtc_mutex_unlock(&m), RTC_OK);
}

static void m_mutex_unlock(void) {
    CHECK_STATUS(rtc_mutex_unlock(NULL), RTC_ERR_NULL);
    CHECK_STATUS(rtc_mutex_unlock(&held_elsewhere), RTC_ERR_NOT_OWNER);
    expect_message("unlock of mutex 'elsewhere' (rank mu_r) which this thread does not hold (it is held by thread");
    rtc_mutex m = RTC_MUTEX_INIT;
    CHECK_STATUS(rtc_mutex_unlock(&m), RTC_ERR_NOT_OWNER);
    expect_message("it is not locked");
    rtc_mutex_destroy(&m);
    CHECK_STATUS(rtc_mutex_unlock(&m), RTC_ERR_DESTROYED);
}

static void m_mutex_destroy(void) {
    CHECK_STATUS(rtc_mutex_destroy(NULL), RTC_ERR_NULL);
    rtc_mutex zero;
    memset(&zero, 0, sizeof zero);
    CHECK_STATUS(rtc_mutex_destroy(&zero), RTC_OK); /* zeroed: allowed */
    CHECK_STATUS(rtc_mutex_destroy(&held_elsewhere), RTC_ERR_LOCKED);
    expect_message("destroy of mutex 'elsewhere' (rank mu_r) which is locked by thread");
    rtc_mutex m = RTC_MUTEX_INIT;
    rtc_mutex_lock(&m);
    CHECK_STATUS(rtc_mutex_destroy(&m), RTC_ERR_LOCKED);
    expect_message("locked by this thread");
    rtc_mutex_unlock(&m);
    CHECK_STATUS(rtc_mutex_destroy(&m), RTC_OK);
}

static rtc_cond ic = RTC_COND_INIT;
static rtc_mutex im = RTC_MUTEX_INIT;
static volatile int ic_waiting;
static void *wait_ic(void *arg) {
    (void)arg;
    rtc_mutex_lock(&im);
    ic_waiting = 1;
    while (ic_waiting == 1) rtc_cond_wait(&ic, &im);
    rtc_mutex_unlock(&im);
    return NULL;
}

static void m_cond_init(void) {
    CHECK_STATUS(rtc_cond_init(NULL), RTC_ERR_NULL);
    /* Re-initialising a condition with a waiter would strand it. */
    pthread_t t;
    pthread_create(&t, NULL, wait_ic, NULL);
    for (;;) {
        rtc_mutex_lock(&im);
        int w = ic_waiting;
        rtc_mutex_unlock(&im);
        if (w) break;
        usleep(1000);
    }
    rtc_mutex_lock(&im);
    CHECK_STATUS(rtc_cond_init(&ic), RTC_ERR_LOCKED);
    expect_message("waiting thread");
    ic_waiting = 2;
    rtc_cond_broadcast(&ic);
    rtc_mutex_unlock(&im);
    pthread_join(t, NULL);
    CHECK_STATUS(rtc_cond_init(&ic), RTC_OK);
    rtc_cond c;
    memset(&c, 0x5A, sizeof c);
    CHECK_STATUS(rtc_cond_init(&c), RTC_OK);
    CHECK_STATUS(rtc_cond_signal(&c), RTC_OK);
}

static void m_cond_wait(void) {
    rtc_cond c = RTC_COND_INIT;
    rtc_mutex m = RTC_MUTEX_INIT_RANKED("cw", "mu_r");
    CHECK_STATUS(rtc_cond_wait(NULL, &m), RTC_ERR_NULL);
    CHECK_STATUS(rtc_cond_wait(&c, NULL), RTC_ERR_NULL);
    CHECK_STATUS(rtc_cond_wait(&c, &m), RTC_ERR_NOT_OWNER);
    expect_message("wait on a condition with mutex 'cw' (rank mu_r) which this thread does not hold");
    CHECK_STATUS(rtc_cond_wait(&c, &held_elsewhere), RTC_ERR_NOT_OWNER);
}

static void m_cond_wait_at(void) {
    rtc_cond c = RTC_COND_INIT;
    rtc_mutex m = RTC_MUTEX_INIT;
    CHECK_STATUS(rtc_cond_wait_at(NULL, &m, "f.c", 1), RTC_ERR_NULL);
    CHECK_STATUS(rtc_cond_wait_at(&c, NULL, "f.c", 1), RTC_ERR_NULL);
    CHECK_STATUS(rtc_cond_wait_at(&c, &m, "wait_here.c", 12), RTC_ERR_NOT_OWNER);
    expect_message("wait_here.c:12");
}

static void m_cond_timedwait(void) {
    rtc_cond c = RTC_COND_INIT;
    rtc_mutex m = RTC_MUTEX_INIT;
    CHECK_STATUS(rtc_cond_timedwait(NULL, &m, 1000), RTC_ERR_NULL);
    CHECK_STATUS(rtc_cond_timedwait(&c, NULL, 1000), RTC_ERR_NULL);
    CHECK_STATUS(rtc_cond_timedwait(&c, &m, 1000), RTC_ERR_NOT_OWNER);
    rtc_mutex_lock(&m);
    CHECK_STATUS(rtc_cond_timedwait(&c, &m, 1000000), RTC_ERR_TIMED_OUT);
    CHECK_STATUS(rtc_mutex_unlock(&m), RTC_OK); /* retaken after the timeout */
    rtc_mutex_lock(&m);
    CHECK_STATUS(rtc_cond_timedwait(&c, &m, 0), RTC_ERR_TIMED_OUT);
    CHECK_STATUS(rtc_mutex_unlock(&m), RTC_OK);
}

static void m_cond_timedwait_at(void) {
    rtc_cond c = RTC_COND_INIT;
    rtc_mutex m = RTC_MUTEX_INIT;
    CHECK_STATUS(rtc_cond_timedwait_at(NULL, &m, 1000, "f.c", 1), RTC_ERR_NULL);
    CHECK_STATUS(rtc_cond_timedwait_at(&c, NULL, 1000, "f.c", 1), RTC_ERR_NULL);
    CHECK_STATUS(rtc_cond_timedwait_at(&c, &m, 1000, "timed_here.c", 44), RTC_ERR_NOT_OWNER);
    expect_message("timed_here.c:44");
    rtc_mutex_lock(&m);
    CHECK_STATUS(rtc_cond_timedwait_at(&c, &m, 1000, "timed_here.c", 47), RTC_ERR_TIMED_OUT);
    CHECK_STATUS(rtc_mutex_unlock(&m), RTC_OK);
}

static void m_cond_signal(void) {
    CHECK_STATUS(rtc_cond_signal(NULL), RTC_ERR_NULL);
    rtc_cond c = RTC_COND_INIT;
    CHECK_STATUS(rtc_cond_signal(&c), RTC_OK); /* no waiter: fine */
    rtc_cond_destroy(&c);
    CHECK_STATUS(rtc_cond_signal(&c), RTC_ERR_DESTROYED);
}

static void m_cond_broadcast(void) {
    CHECK_STATUS(rtc_cond_broadcast(NULL), RTC_ERR_NULL);
    rtc_cond c = RTC_COND_INIT;
    CHECK_STATUS(rtc_cond_broadcast(&c), RTC_OK);
    rtc_cond_destroy(&c);
    CHECK_STATUS(rtc_cond_broadcast(&c), RTC_ERR_DESTROYED);
}

static rtc_cond dc = RTC_COND_INIT;
static rtc_mutex dm = RTC_MUTEX_INIT;
static volatile int dc_waiting;
static void *wait_dc(void *arg) {
    (void)arg;
    rtc_mutex_lock(&dm);
    dc_waiting = 1;
    while (dc_waiting == 1) rtc_cond_wait(&dc, &dm);
    rtc_mutex_unlock(&dm);
    return NULL;
}

static void m_cond_destroy(void) {
    CHECK_STATUS(rtc_cond_destroy(NULL), RTC_ERR_NULL);
    pthread_t t;
    pthread_create(&t, NULL, wait_dc, NULL);
    for (;;) { /* until the waiter is parked (sleep: never spin on a lock) */
        rtc_mutex_lock(&dm);
        int w = dc_waiting;
        rtc_mutex_unlock(&dm);
        if (w) break;
        usleep(1000);
    }
    /* The waiter released dm inside its wait: now it is a waiter. */
    rtc_mutex_lock(&dm);
    CHECK_STATUS(rtc_cond_destroy(&dc), RTC_ERR_LOCKED);
    expect_message("waiting thread");
    dc_waiting = 2;
    rtc_cond_broadcast(&dc);
    rtc_mutex_unlock(&dm);
    pthread_join(t, NULL);
    CHECK_STATUS(rtc_cond_destroy(&dc), RTC_OK);
}

static void m_ranks_load(void) {
    CHECK_STATUS(rtc_ranks_load(NULL, "x"), RTC_ERR_NULL);
    CHECK_STATUS(rtc_ranks_load("a <", NULL), RTC_ERR_RANK_SYNTAX);
    expect_message("<string>:1:4: expected a rank name, found end of input");
    CHECK_STATUS(rtc_ranks_load("NONE < \xff;", "bin.ranks"), RTC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(rtc_ranks_load("NONE < mu_r;", "dup.ranks"), RTC_ERR_RANK_SYNTAX);
    expect_message("rank 'mu_r' is already defined at misuse.ranks:1:8");
}

static void m_ranks_load_file(void) {
    CHECK_STATUS(rtc_ranks_load_file(NULL), RTC_ERR_NULL);
    CHECK_STATUS(rtc_ranks_load_file("/nonexistent/ranks.txt"), RTC_ERR_IO);
    expect_message("cannot read rank file '/nonexistent/ranks.txt'");
}

static void m_rank_lookup(void) {
    uint32_t id = 12345;
    CHECK_STATUS(rtc_rank_lookup(NULL, &id), RTC_ERR_NULL);
    CHECK_STATUS(rtc_rank_lookup("mu_r", NULL), RTC_ERR_NULL);
    CHECK_STATUS(rtc_rank_lookup("nope", &id), RTC_ERR_UNKNOWN_RANK);
    CHECK(id == 12345); /* not written on failure */
    CHECK_STATUS(rtc_rank_lookup("mu_r", &id), RTC_OK);
    CHECK(id != 12345 && id != 0);
}

static void m_lockrank_set_mode(void) {
    CHECK_STATUS(rtc_lockrank_set_mode(-1), RTC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(rtc_lockrank_set_mode(4), RTC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(rtc_lockrank_set_mode(RTC_LOCKRANK_OFF), RTC_OK);
    CHECK_STATUS(rtc_lockrank_set_mode(RTC_LOCKRANK_REPORT), RTC_OK);
}

static void m_lockrank_get_mode(void) {
    CHECK_STATUS(rtc_lockrank_get_mode(NULL), RTC_ERR_NULL);
    int32_t m = -1;
    CHECK_STATUS(rtc_lockrank_get_mode(&m), RTC_OK);
    CHECK(m == RTC_LOCKRANK_REPORT);
}

static void m_lockrank_violations(void) {
    CHECK_STATUS(rtc_lockrank_violations(NULL), RTC_ERR_NULL);
}

static void m_lockrank_last_report(void) {
    char b[4];
    CHECK_STATUS(rtc_lockrank_last_report(NULL, 4, NULL), RTC_ERR_NULL);
    size_t need = 0;
    CHECK_STATUS(rtc_lockrank_last_report(NULL, 0, &need), RTC_OK);
    CHECK(need >= 1);
    CHECK_STATUS(rtc_lockrank_last_report(b, sizeof b, NULL), RTC_OK);
    CHECK(strlen(b) < sizeof b);
}

static void m_thread_attach(void) {
    CHECK_STATUS(rtc_thread_attach("\xff\xfe", NULL), RTC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(rtc_thread_attach(NULL, NULL), RTC_OK); /* NULL name: the OS name */
    CHECK_STATUS(rtc_thread_attach("twice", NULL), RTC_ERR_WRONG_STATE);
    CHECK_STATUS(rtc_thread_detach(), RTC_OK);
    /* The stopper may not attach: it would wait for a P. */
    CHECK_STATUS(rtc_stop_the_world("m"), RTC_OK);
    CHECK_STATUS(rtc_thread_attach("stopper", NULL), RTC_ERR_WOULD_DEADLOCK);
    CHECK_STATUS(rtc_start_the_world(), RTC_OK);
}

static void m_thread_detach(void) {
    CHECK_STATUS(rtc_thread_detach(), RTC_ERR_WRONG_STATE);
    expect_message("not attached");
}

static void m_thread_id(void) {
    CHECK_STATUS(rtc_thread_id(NULL), RTC_ERR_NULL);
    /* A misaligned out-parameter is refused, and nothing is written. */
    _Alignas(8) unsigned char buf[16];
    memset(buf, 0x5a, sizeof buf);
    CHECK_STATUS(rtc_thread_id((uint64_t *)(void *)(buf + 1)), RTC_ERR_INVALID_ARGUMENT);
    expect_message("'out_id'");
    expect_message("not aligned");
    CHECK(buf[1] == 0x5a && buf[8] == 0x5a);
}

static void m_thread_state(void) {
    CHECK_STATUS(rtc_thread_state(NULL), RTC_ERR_NULL);
}

static void m_safepoint(void) {
    CHECK_STATUS(rtc_safepoint(), RTC_OK); /* unattached: a no-op */
}

static void m_enter_blocking(void) {
    CHECK_STATUS(rtc_enter_blocking("x"), RTC_ERR_WRONG_STATE);
    rtc_thread_attach("eb", NULL);
    CHECK_STATUS(rtc_enter_blocking("\xff"), RTC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(rtc_enter_blocking(NULL), RTC_OK);
    CHECK_STATUS(rtc_enter_blocking(NULL), RTC_ERR_WRONG_STATE);
    rtc_exit_blocking();
    rtc_thread_detach();
}

static void m_exit_blocking(void) {
    CHECK_STATUS(rtc_exit_blocking(), RTC_ERR_WRONG_STATE);
    rtc_thread_attach("xb", NULL);
    CHECK_STATUS(rtc_exit_blocking(), RTC_ERR_WRONG_STATE);
    expect_message("not inside a blocking region");
    rtc_thread_detach();
}

static int stopped_by_other;
static void *stop_and_hold(void *arg) {
    (void)arg;
    rtc_stop_the_world("other");
    __atomic_store_n(&stopped_by_other, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&stopped_by_other, __ATOMIC_SEQ_CST) != 2) usleep(1000);
    rtc_start_the_world();
    return NULL;
}

static void m_stop_the_world(void) {
    CHECK_STATUS(rtc_stop_the_world("\xff"), RTC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(rtc_stop_the_world(NULL), RTC_OK);
    CHECK_STATUS(rtc_stop_the_world(NULL), RTC_ERR_WRONG_STATE);
    CHECK_STATUS(rtc_start_the_world(), RTC_OK);
}

static void m_start_the_world(void) {
    CHECK_STATUS(rtc_start_the_world(), RTC_ERR_WRONG_STATE);
    expect_message("not stopped");
    pthread_t t;
    pthread_create(&t, NULL, stop_and_hold, NULL);
    while (__atomic_load_n(&stopped_by_other, __ATOMIC_SEQ_CST) != 1) usleep(1000);
    CHECK_STATUS(rtc_start_the_world(), RTC_ERR_WRONG_STATE);
    expect_message("only the stopper may start it");
    CHECK_STATUS(rtc_assert_world_stopped(), RTC_ERR_WRONG_STATE);
    expect_message("not by this thread");
    __atomic_store_n(&stopped_by_other, 2, __ATOMIC_SEQ_CST);
    pthread_join(t, NULL);
}

static void m_assert_world_stopped(void) {
    CHECK_STATUS(rtc_assert_world_stopped(), RTC_ERR_WRONG_STATE);
    rtc_stop_the_world("assert");
    CHECK_STATUS(rtc_assert_world_stopped(), RTC_OK);
    rtc_start_the_world();
}

static void m_set_maxprocs(void) {
    uint32_t prev = 7;
    CHECK_STATUS(rtc_set_maxprocs(65537, &prev), RTC_ERR_INVALID_ARGUMENT);
    CHECK(prev == 7);
    CHECK_STATUS(rtc_set_maxprocs(0, NULL), RTC_OK);
}

static void m_get_maxprocs(void) {
    CHECK_STATUS(rtc_get_maxprocs(NULL), RTC_ERR_NULL);
    _Alignas(4) unsigned char buf[8];
    CHECK_STATUS(rtc_get_maxprocs((uint32_t *)(void *)(buf + 2)), RTC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(rtc_set_maxprocs(0, (uint32_t *)(void *)(buf + 1)), RTC_ERR_INVALID_ARGUMENT);
}

static void m_world_set_safepoint_threshold_ns(void) {
    CHECK_STATUS(rtc_world_set_safepoint_threshold_ns(100000000), RTC_OK);
}

static void m_world_census(void) {
    CHECK_STATUS(rtc_world_census(NULL), RTC_ERR_NULL);
    rtc_census c;
    memset(&c, 0, sizeof c);
    c.size = 3;
    CHECK_STATUS(rtc_world_census(&c), RTC_ERR_INVALID_ARGUMENT);
    expect_message("out->size is 3");
}

static void m_sysmon_get_stats(void) {
    CHECK_STATUS(rtc_sysmon_get_stats(NULL), RTC_ERR_NULL);
    rtc_sysmon_stats s;
    memset(&s, 0, sizeof s);
    s.size = 1;
    CHECK_STATUS(rtc_sysmon_get_stats(&s), RTC_ERR_INVALID_ARGUMENT);
    s.size = sizeof s;
    CHECK_STATUS(rtc_sysmon_get_stats(&s), RTC_OK);
}

static void m_sysmon_set_threshold(void) {
    CHECK_STATUS(rtc_sysmon_set_threshold(0, 1, NULL), RTC_ERR_INVALID_ARGUMENT);
    expect_message("0 is not an rtc_sysmon_setting");
    CHECK_STATUS(rtc_sysmon_set_threshold(5, 1, NULL), RTC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(rtc_sysmon_set_threshold(RTC_SYSMON_THREAD_STALL_NS, UINT64_MAX, NULL), RTC_ERR_INVALID_ARGUMENT);
    expect_message("above the limit");
    uint64_t old = 0, now = 0;
    CHECK_STATUS(rtc_sysmon_set_threshold(RTC_SYSMON_HOOK_BUDGET_NS, 123000000, &old), RTC_OK);
    CHECK(old == 100000000); /* the default budget */
    CHECK_STATUS(rtc_sysmon_get_threshold(RTC_SYSMON_HOOK_BUDGET_NS, &now), RTC_OK);
    CHECK(now == 123000000);
    CHECK_STATUS(rtc_sysmon_set_threshold(RTC_SYSMON_HOOK_BUDGET_NS, old, NULL), RTC_OK);
}

static void m_sysmon_get_threshold(void) {
    uint64_t v;
    CHECK_STATUS(rtc_sysmon_get_threshold(RTC_SYSMON_LOCK_STALL_NS, NULL), RTC_ERR_NULL);
    CHECK_STATUS(rtc_sysmon_get_threshold(99, &v), RTC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(rtc_sysmon_get_threshold(RTC_SYSMON_THREAD_STALL_NS, &v), RTC_OK);
    CHECK(v == 0); /* off by default */
    CHECK_STATUS(rtc_sysmon_get_threshold(RTC_SYSMON_LOCK_STALL_NS, &v), RTC_OK);
    CHECK(v == 1000000000);
}

static void m_sysmon_last_report(void) {
    /* NULL buffer: the size needed; a 1-byte buffer gets a NUL. */
    size_t need = rtc_sysmon_last_report(NULL, 0);
    CHECK(need >= 1);
    char one[1] = {'x'};
    CHECK(rtc_sysmon_last_report(one, 1) == need);
    CHECK(one[0] == 0);
}

static void noop_hook(void *arg) { (void)arg; }

static void m_sysmon_hook_add(void) {
    uint64_t id = 0;
    CHECK_STATUS(rtc_sysmon_hook_add(NULL, 1000000, noop_hook, NULL, &id), RTC_ERR_NULL);
    CHECK_STATUS(rtc_sysmon_hook_add("h", 1000000, NULL, NULL, &id), RTC_ERR_NULL);
    expect_message("'hook'");
    CHECK_STATUS(rtc_sysmon_hook_add("h", 1000000, noop_hook, NULL, NULL), RTC_ERR_NULL);
    CHECK_STATUS(rtc_sysmon_hook_add("h", 99999, noop_hook, NULL, &id), RTC_ERR_INVALID_ARGUMENT);
    expect_message("outside 100000 ns");
    CHECK_STATUS(rtc_sysmon_hook_add("h", UINT64_MAX, noop_hook, NULL, &id), RTC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(rtc_sysmon_hook_add("\xff\xfe", 1000000, noop_hook, NULL, &id), RTC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(rtc_sysmon_hook_add("h", 1000000, noop_hook, NULL, &id), RTC_OK);
    CHECK(id != 0);
    CHECK_STATUS(rtc_sysmon_hook_remove(id), RTC_OK);
}

static void m_sysmon_hook_remove(void) {
    CHECK_STATUS(rtc_sysmon_hook_remove(0), RTC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(rtc_sysmon_hook_remove(987654321), RTC_ERR_INVALID_ARGUMENT);
    expect_message("no hook with id 987654321");
    uint64_t id = 0;
    CHECK_STATUS(rtc_sysmon_hook_add("twice", 1000000, noop_hook, NULL, &id), RTC_OK);
    CHECK_STATUS(rtc_sysmon_hook_remove(id), RTC_OK);
    CHECK_STATUS(rtc_sysmon_hook_remove(id), RTC_ERR_INVALID_ARGUMENT);
    expect_message("already removed");
}

static void count_preempt(uint64_t n, void *arg) { (void)n; (void)arg; }

static void m_set_preempt_handler(void) {
    CHECK_STATUS(rtc_set_preempt_handler(count_preempt, NULL), RTC_OK);
    CHECK_STATUS(rtc_set_preempt_handler(NULL, NULL), RTC_OK);
}

static void m_trace_start(void) {
    CHECK_STATUS(rtc_trace_start(NULL), RTC_ERR_NULL);
    rtc_trace_config c;
    memset(&c, 0, sizeof c);
    c.size = 3;
    CHECK_STATUS(rtc_trace_start(&c), RTC_ERR_INVALID_ARGUMENT);
    expect_message("config->size is 3");
    c.size = sizeof c;
    CHECK_STATUS(rtc_trace_start(&c), RTC_ERR_INVALID_ARGUMENT); /* kind 0 */
    c.sink_kind = RTC_TRACE_SINK_FD;
    c.fd = -1;
    CHECK_STATUS(rtc_trace_start(&c), RTC_ERR_INVALID_ARGUMENT);
    CHECK(rtc_trace_enabled() == 0);
}

static void m_trace_stop(void) {
    CHECK_STATUS(rtc_trace_stop(), RTC_OK); /* not tracing */
}

static void m_trace_get_stats(void) {
    CHECK_STATUS(rtc_trace_get_stats(NULL), RTC_ERR_NULL);
    rtc_trace_stats st;
    memset(&st, 0, sizeof st);
    st.size = 7;
    CHECK_STATUS(rtc_trace_get_stats(&st), RTC_ERR_INVALID_ARGUMENT);
    expect_message("out->size is 7");
    st.size = sizeof st;
    CHECK_STATUS(rtc_trace_get_stats(&st), RTC_OK);
    CHECK(st.tracing == 0);
}

static void m_flight_recorder_start(void) {
    rtc_flight_recorder_config c;
    memset(&c, 0, sizeof c);
    c.size = 5;
    CHECK_STATUS(rtc_flight_recorder_start(&c), RTC_ERR_INVALID_ARGUMENT);
    expect_message("config->size is 5");
    c.size = sizeof c;
    c.triggers = 0x100;
    CHECK_STATUS(rtc_flight_recorder_start(&c), RTC_ERR_INVALID_ARGUMENT);
    c.triggers = 0;
    c.reserved = 1;
    CHECK_STATUS(rtc_flight_recorder_start(&c), RTC_ERR_INVALID_ARGUMENT);
    c.reserved = 0;
    c.dump_dir = "";
    CHECK_STATUS(rtc_flight_recorder_start(&c), RTC_ERR_INVALID_ARGUMENT);
    c.dump_dir = "/dev/null/not-a-directory";
    CHECK_STATUS(rtc_flight_recorder_start(&c), RTC_ERR_IO);
    CHECK(rtc_trace_enabled() == 0);
    /* NULL: the defaults (no dumps); started, then stopped. */
    CHECK_STATUS(rtc_flight_recorder_start(NULL), RTC_OK);
    CHECK_STATUS(rtc_flight_recorder_start(NULL), RTC_ERR_WRONG_STATE);
    CHECK_STATUS(rtc_flight_recorder_stop(), RTC_OK);
    CHECK(rtc_trace_enabled() == 0);
}

static void m_flight_recorder_write(void) {
    CHECK_STATUS(rtc_flight_recorder_write(NULL), RTC_ERR_NULL);
    rtc_trace_config c;
    memset(&c, 0, sizeof c);
    c.size = sizeof c;
    c.sink_kind = RTC_TRACE_SINK_FD;
    c.fd = -1;
    CHECK_STATUS(rtc_flight_recorder_write(&c), RTC_ERR_INVALID_ARGUMENT);
    c.fd = 1;
    CHECK_STATUS(rtc_flight_recorder_write(&c), RTC_ERR_WRONG_STATE); /* not recording */
    expect_message("not recording");
}

static void m_flight_recorder_stop(void) {
    CHECK_STATUS(rtc_flight_recorder_stop(), RTC_OK); /* not recording */
}

static void m_preload_lock_init(void) {
    static int lock;
    CHECK_STATUS(rtc_preload_lock_init(NULL, NULL), RTC_ERR_NULL);
    expect_message("lock is NULL");
    CHECK_STATUS(rtc_preload_lock_init(&lock, NULL), RTC_OK);
}

static void m_preload_lock_destroyed(void) {
    static int lock;
    CHECK_STATUS(rtc_preload_lock_destroyed(NULL), RTC_ERR_NULL);
    CHECK_STATUS(rtc_preload_lock_destroyed(&lock), RTC_OK); /* never seen: fine */
}

static void m_preload_lock_class(void) {
    static int lock;
    uint32_t c = 99, c2 = 98;
    CHECK_STATUS(rtc_preload_lock_class(NULL, NULL, &c), RTC_ERR_NULL);
    CHECK_STATUS(rtc_preload_lock_class(&lock, NULL, NULL), RTC_ERR_NULL);
    expect_message("lock_class");
    CHECK_STATUS(rtc_preload_lock_class(&lock, NULL, &c), RTC_OK);
    CHECK_STATUS(rtc_preload_lock_class(&lock, NULL, &c2), RTC_OK);
    CHECK(c == c2); /* the same lock, the same class */
}

static void m_preload_lock_check(void) {
    static int a, b;
    uint32_t ca = 0, cb = 0;
    CHECK_STATUS(rtc_preload_lock_class(&a, NULL, &ca), RTC_OK);
    CHECK_STATUS(rtc_preload_lock_class(&b, NULL, &cb), RTC_OK);
    rtc_preload_held held = {&a, NULL, 0, ca};
    rtc_preload_held want = {&b, NULL, 0, cb};
    CHECK_STATUS(rtc_preload_lock_check(NULL, 0, NULL), RTC_ERR_NULL);
    CHECK_STATUS(rtc_preload_lock_check(NULL, 1, &want), RTC_ERR_NULL);
    CHECK_STATUS(rtc_preload_lock_check(&held, 5000, &want), RTC_ERR_INVALID_ARGUMENT);
    expect_message("more than 4096");
    rtc_preload_held bad = want;
    bad.kind = 6;
    CHECK_STATUS(rtc_preload_lock_check(&held, 1, &bad), RTC_ERR_INVALID_ARGUMENT);
    expect_message("kind 6 is not a lock kind");
    bad = want;
    bad.lock_class = 0xfffffff0u;
    CHECK_STATUS(rtc_preload_lock_check(&held, 1, &bad), RTC_ERR_INVALID_ARGUMENT);
    expect_message("was not given by rtc_preload_lock_class");
    bad = want;
    bad.lock = NULL;
    CHECK_STATUS(rtc_preload_lock_check(&held, 1, &bad), RTC_ERR_NULL);
    CHECK_STATUS(rtc_preload_lock_check(NULL, 0, &want), RTC_OK);
    CHECK_STATUS(rtc_preload_lock_check(&held, 1, &want), RTC_OK);
}

static void m_preload_lock_waited(void) {
    static int lock;
    uint32_t c = 0;
    CHECK_STATUS(rtc_preload_lock_class(&lock, NULL, &c), RTC_OK);
    CHECK_STATUS(rtc_preload_lock_waited(c, 10, 4), RTC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(rtc_preload_lock_waited(c, 10, 3), RTC_ERR_INVALID_ARGUMENT); /* both at once */
    CHECK_STATUS(rtc_preload_lock_waited(0xfffffff0u, 10, 0), RTC_ERR_INVALID_ARGUMENT);
    expect_message("unknown flags");
    CHECK_STATUS(rtc_preload_lock_waited(c, 10, 0), RTC_OK);
    CHECK_STATUS(rtc_preload_lock_waited(c, 0, 1), RTC_OK);
    CHECK_STATUS(rtc_preload_lock_waited(c, 0, 2), RTC_OK); /* an owner died: flagged on stderr */
}

static void m_preload_unlock_not_held(void) {
    CHECK_STATUS(rtc_preload_unlock_not_held(NULL, NULL), RTC_ERR_NULL);
}

static void m_preload_epoch(void) {
    const uint64_t *e = rtc_preload_epoch();
    CHECK(e != NULL);
    static int lock;
    uint64_t before = __atomic_load_n(e, __ATOMIC_RELAXED);
    CHECK_STATUS(rtc_preload_lock_init(&lock, NULL), RTC_OK);
    CHECK_STATUS(rtc_preload_lock_destroyed(&lock), RTC_OK);
    CHECK(__atomic_load_n(e, __ATOMIC_RELAXED) != before); /* a destroyed lock moves it */
}

static void m_preload_summary(void) {
    size_t need = rtc_preload_summary(NULL, 0);
    CHECK(need > 1);
    char one[1] = {'x'};
    CHECK(rtc_preload_summary(one, 1) == need);
    CHECK(one[0] == 0);
}

static void m_preload_wait_begin(void) {
    static int a, b;
    uint32_t ca = 0, cb = 0;
    CHECK_STATUS(rtc_preload_lock_class(&a, NULL, &ca), RTC_OK);
    CHECK_STATUS(rtc_preload_lock_class(&b, NULL, &cb), RTC_OK);
    rtc_preload_held held = {&a, NULL, 0, ca};
    rtc_preload_held want = {&b, NULL, 0, cb};
    CHECK_STATUS(rtc_preload_wait_begin(NULL, 0, NULL), RTC_ERR_NULL);
    CHECK_STATUS(rtc_preload_wait_begin(NULL, 1, &want), RTC_ERR_NULL);
    CHECK_STATUS(rtc_preload_wait_begin(&held, 9999, &want), RTC_ERR_INVALID_ARGUMENT);
    rtc_preload_held bad = want;
    bad.kind = 77;
    CHECK_STATUS(rtc_preload_wait_begin(&held, 1, &bad), RTC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(rtc_preload_wait_begin(&held, 1, &want), RTC_OK);
    CHECK_STATUS(rtc_preload_wait_end(), RTC_OK);
}

static void m_preload_wait_end(void) {
    CHECK_STATUS(rtc_preload_wait_end(), RTC_OK); /* nothing announced: fine */
    CHECK_STATUS(rtc_preload_wait_end(), RTC_OK);
}

static void m_preload_cond_wait_begin(void) {
    static int cond;
    CHECK_STATUS(rtc_preload_cond_wait_begin(NULL), RTC_ERR_NULL);
    CHECK_STATUS(rtc_preload_cond_wait_begin(&cond), RTC_OK); /* not tracing: nothing recorded */
    CHECK_STATUS(rtc_preload_cond_wait_end(), RTC_OK);
}

static void m_preload_cond_wait_end(void) {
    CHECK_STATUS(rtc_preload_cond_wait_end(), RTC_OK); /* nothing announced: fine */
    CHECK_STATUS(rtc_preload_cond_wait_end(), RTC_OK);
}

static void m_preload_thread_exit(void) {
    static int l1;
    uint32_t c1 = 0;
    CHECK_STATUS(rtc_preload_lock_class(&l1, NULL, &c1), RTC_OK);
    rtc_preload_held held = {&l1, NULL, 0, c1};
    CHECK_STATUS(rtc_preload_thread_exit(NULL, 1), RTC_ERR_NULL);
    CHECK_STATUS(rtc_preload_thread_exit(&held, 0), RTC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(rtc_preload_thread_exit(&held, 99999), RTC_ERR_INVALID_ARGUMENT);
    rtc_preload_held bad = held;
    bad.kind = 77;
    CHECK_STATUS(rtc_preload_thread_exit(&bad, 1), RTC_ERR_INVALID_ARGUMENT);
    bad = held;
    bad.lock_class = 0xfffffff0u;
    CHECK_STATUS(rtc_preload_thread_exit(&bad, 1), RTC_ERR_INVALID_ARGUMENT);
}

static void m_preload_learned_ranks(void) {
    CHECK(rtc_preload_learned_ranks(NULL, NULL, 0) > 1); /* NULL program: "the program" */
    size_t need = rtc_preload_learned_ranks("prog", NULL, 0);
    char one[1] = {'x'};
    CHECK(rtc_preload_learned_ranks("prog", one, 1) == need);
    CHECK(one[0] == 0);
    char buf[4096];
    rtc_preload_learned_ranks("misuse-program", buf, sizeof buf);
    CHECK_CONTAINS(buf, "misuse-program");
}

static void m_trace_enabled(void) {
    CHECK(rtc_trace_enabled() == 0);
    CHECK(!RTC_TRACE_ON());
}

static void m_trace_check(void) {
    char r[64];
    CHECK_STATUS(rtc_trace_check(NULL, 1, r, sizeof r), RTC_ERR_NULL);
    CHECK_STATUS(rtc_trace_check((const uint8_t *)"RTCTRACE", 8, r, sizeof r), RTC_ERR_BAD_TRACE);
    CHECK_CONTAINS(r, "not an rtcore trace");
    CHECK_STATUS(rtc_trace_check((const uint8_t *)"x", 1, NULL, 0), RTC_ERR_BAD_TRACE);
}

static void m_trace_check_file(void) {
    char r[128];
    CHECK_STATUS(rtc_trace_check_file(NULL, r, sizeof r), RTC_ERR_NULL);
    CHECK_STATUS(rtc_trace_check_file("/nonexistent/trace", r, sizeof r), RTC_ERR_IO);
    CHECK_CONTAINS(r, "cannot read");
    CHECK_STATUS(rtc_trace_check_file("/dev/null", r, sizeof r), RTC_ERR_BAD_TRACE);
}

static void m_trace_stats_json(void) {
    char r[64];
    size_t need = 0;
    CHECK_STATUS(rtc_trace_stats_json(NULL, r, sizeof r, &need), RTC_ERR_NULL);
    CHECK_STATUS(rtc_trace_stats_json("/dev/null", NULL, 1, &need), RTC_ERR_NULL);
    CHECK_STATUS(rtc_trace_stats_json("/nonexistent/trace", r, sizeof r, &need), RTC_ERR_IO);
    CHECK_CONTAINS(rtc_t_last_error(), "cannot read");
    CHECK_STATUS(rtc_trace_stats_json("/dev/null", r, sizeof r, NULL), RTC_ERR_BAD_TRACE);
    CHECK_STATUS(rtc_trace_stats_json("\xff", r, sizeof r, NULL), RTC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(rtc_trace_stats_json("/dev/null", r, (size_t)-1, NULL), RTC_ERR_INVALID_ARGUMENT);
}

/* Text is checked only when it is recorded: while tracing (into
 * /dev/null). Not tracing, an event call reads none of its arguments. */
static void tracing_begin(void) {
    rtc_trace_config c = rtc_t_path_config("/dev/null");
    CHECK_STATUS(rtc_trace_start(&c), RTC_OK);
}

static void tracing_end(void) {
    CHECK_STATUS(rtc_trace_stop(), RTC_OK);
}

static void m_log(void) {
    CHECK_STATUS(rtc_log(NULL, NULL), RTC_OK);
    CHECK_STATUS(rtc_log("\xff", "x"), RTC_OK);
    tracing_begin();
    CHECK_STATUS(rtc_log(NULL, NULL), RTC_OK);
    CHECK_STATUS(rtc_log("\xff", "x"), RTC_ERR_INVALID_ARGUMENT);
    expect_message("not valid UTF-8");
    CHECK_STATUS(rtc_log("x", "\xc3"), RTC_ERR_INVALID_ARGUMENT);
    tracing_end();
}

static void m_region_begin(void) {
    CHECK_STATUS(rtc_region_begin(NULL), RTC_OK);
    CHECK_STATUS(rtc_region_begin("\xfe"), RTC_OK);
    tracing_begin();
    CHECK_STATUS(rtc_region_begin("\xfe"), RTC_ERR_INVALID_ARGUMENT);
    expect_message("not valid UTF-8");
    tracing_end();
}

static void m_region_end(void) {
    CHECK_STATUS(rtc_region_end(), RTC_OK);
}

static void m_task_begin(void) {
    CHECK_STATUS(rtc_task_begin("t", NULL), RTC_ERR_NULL);
    uint64_t id = 0;
    CHECK_STATUS(rtc_task_begin(NULL, &id), RTC_OK);
    CHECK(id != 0);
    CHECK_STATUS(rtc_task_end(id), RTC_OK);
    CHECK_STATUS(rtc_task_end(id), RTC_ERR_INVALID_ARGUMENT);
    expect_message("already ended");
}

static void m_task_end(void) {
    CHECK_STATUS(rtc_task_end(0), RTC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(rtc_task_end(UINT64_MAX), RTC_ERR_INVALID_ARGUMENT);
    expect_message("not a task id");
}

static void m_counter(void) {
    CHECK_STATUS(rtc_counter(NULL, 1), RTC_OK);
    CHECK_STATUS(rtc_counter("\xff", 1), RTC_OK);
    tracing_begin();
    CHECK_STATUS(rtc_counter("\xff", 1), RTC_ERR_INVALID_ARGUMENT);
    uint64_t id = 0;
    CHECK_STATUS(rtc_task_begin("\xff", &id), RTC_ERR_INVALID_ARGUMENT);
    CHECK(id == 0);
    tracing_end();
}

/* ---- Keyed locking, read/write locks and the report modes (issue 16) ---- */

/* Held by threads that exited holding them: one read-locked, one
 * write-locked (see main). */
static rtc_rwlock rw_read_elsewhere = RTC_RWLOCK_INIT_RANKED("rw_reader", "mu_r");
static rtc_rwlock rw_write_elsewhere = RTC_RWLOCK_INIT_RANKED("rw_writer", "mu_r");

static void *hold_rw_elsewhere(void *arg) {
    (void)arg;
    rtc_rwlock_rdlock(&rw_read_elsewhere);
    rtc_rwlock_wrlock(&rw_write_elsewhere);
    return NULL; /* exits holding both */
}

static void m_mutex_lock_keyed(void) {
    CHECK_STATUS(rtc_mutex_lock_keyed(NULL, 1), RTC_ERR_NULL);
    expect_message("rtc_mutex_lock_keyed: argument 'mutex' is NULL");
    rtc_mutex bad = RTC_MUTEX_INIT_RANKED("kbad", "undeclared_keyed_rank");
    CHECK_STATUS(rtc_mutex_lock_keyed(&bad, 1), RTC_ERR_UNKNOWN_RANK);
    expect_message("mutex 'kbad' (rank undeclared_keyed_rank): rank 'undeclared_keyed_rank' is not declared");
    CHECK_STATUS(rtc_mutex_unlock(&bad), RTC_ERR_NOT_OWNER); /* not locked */
    rtc_mutex m = RTC_MUTEX_INIT_RANKED("keyed", "mu_r");
    CHECK_STATUS(rtc_mutex_lock_keyed(&m, 5), RTC_OK);
    /* Held already: refused at once, whatever the key. */
    CHECK_STATUS(rtc_mutex_lock_keyed(&m, 6), RTC_ERR_WOULD_DEADLOCK);
    expect_message("lock of mutex 'keyed' (rank mu_r)");
    expect_message("which already holds it");
    CHECK_STATUS(rtc_mutex_lock(&m), RTC_ERR_WOULD_DEADLOCK);
    CHECK_STATUS(rtc_mutex_unlock(&m), RTC_OK);
    CHECK_STATUS(rtc_mutex_unlock(&m), RTC_ERR_NOT_OWNER);
    CHECK_STATUS(rtc_mutex_destroy(&m), RTC_OK);
    CHECK_STATUS(rtc_mutex_lock_keyed(&m, 1), RTC_ERR_DESTROYED);
    expect_message("mutex 'keyed' (rank mu_r) was destroyed");
    /* Moved after first use. */
    rtc_mutex *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    CHECK_STATUS(rtc_mutex_lock_keyed(a, 1), RTC_OK);
    CHECK_STATUS(rtc_mutex_unlock(a), RTC_OK);
    memcpy(b, a, sizeof *a);
    CHECK_STATUS(rtc_mutex_lock_keyed(b, 1), RTC_ERR_MOVED);
    expect_message("was moved");
    free(a); free(b);
}

static void m_mutex_lock_keyed_at(void) {
    CHECK_STATUS(rtc_mutex_lock_keyed_at(NULL, 1, "f.c", 1), RTC_ERR_NULL);
    expect_message("rtc_mutex_lock_keyed_at: argument 'mutex' is NULL");
    rtc_mutex m = RTC_MUTEX_INIT;
    CHECK_STATUS(rtc_mutex_lock_keyed_at(&m, 1, NULL, 0), RTC_OK); /* a NULL site is allowed */
    CHECK_STATUS(rtc_mutex_unlock(&m), RTC_OK);
    CHECK_STATUS(rtc_mutex_lock_keyed_at(&m, 1, "keyed_here.c", 4), RTC_OK);
    CHECK_STATUS(rtc_mutex_lock_keyed_at(&m, 2, "keyed_here.c", 5), RTC_ERR_WOULD_DEADLOCK);
    expect_message("lock of mutex '(unnamed)' (unranked) at keyed_here.c:5");
    expect_message("(locked at keyed_here.c:4)");
    CHECK_STATUS(rtc_mutex_unlock(&m), RTC_OK);
    rtc_mutex bad = RTC_MUTEX_INIT_RANKED("kbad_at", "undeclared_keyed_rank");
    CHECK_STATUS(rtc_mutex_lock_keyed_at(&bad, 1, "keyed_here.c", 9), RTC_ERR_UNKNOWN_RANK);
    expect_message("mutex 'kbad_at' (rank undeclared_keyed_rank)");
    CHECK_STATUS(rtc_mutex_destroy(&m), RTC_OK);
    CHECK_STATUS(rtc_mutex_lock_keyed_at(&m, 1, "keyed_here.c", 7), RTC_ERR_DESTROYED);
    expect_message("was destroyed");
}

static void m_rwlock_init(void) {
    rtc_rwlock l;
    CHECK_STATUS(rtc_rwlock_init(NULL, "x", NULL), RTC_ERR_NULL);
    expect_message("rtc_rwlock_init: argument 'rwlock' is NULL");
    memset(&l, 0xAB, sizeof l); /* garbage before init is fine */
    CHECK_STATUS(rtc_rwlock_init(&l, "rwx", "no_such_rank"), RTC_ERR_UNKNOWN_RANK);
    expect_message("init of rwlock 'rwx': rank 'no_such_rank' is not declared");
    CHECK(((unsigned char *)&l)[0] == 0xAB && l.flags == 0xABABABABu); /* left untouched */
    CHECK_STATUS(rtc_rwlock_init(&l, "rwx", "MU_PSEUDO"), RTC_ERR_UNKNOWN_RANK);
    expect_message("pseudo-rank");
    CHECK_STATUS(rtc_rwlock_init(&l, "rwx", "hooklock"), RTC_ERR_UNKNOWN_RANK);
    expect_message("one of rtcore's own ranks");
    /* Used without init, filled with 0xff: refused, its pointers unread. */
    memset(&l, 0xff, sizeof l);
    CHECK_STATUS(rtc_rwlock_rdlock(&l), RTC_ERR_INVALID_ARGUMENT);
    expect_message("is not an initialised rtc_rwlock");
    CHECK_STATUS(rtc_rwlock_wrlock(&l), RTC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(rtc_rwlock_tryrdlock(&l), RTC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(rtc_rwlock_trywrlock(&l), RTC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(rtc_rwlock_unlock(&l), RTC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(rtc_rwlock_init(&l, "rwx", "mu_r"), RTC_OK);
    CHECK_STATUS(rtc_rwlock_wrlock(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_init(&l, "rwx", "mu_r"), RTC_ERR_LOCKED);
    expect_message("init of rwlock 'rwx' (rank mu_r) which this thread holds");
    CHECK_STATUS(rtc_rwlock_unlock(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_rdlock(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_init(&l, "rwx", NULL), RTC_ERR_LOCKED);
    expect_message("which this thread holds");
    CHECK_STATUS(rtc_rwlock_unlock(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_init(&l, "rwx", NULL), RTC_OK);
    CHECK_STATUS(rtc_rwlock_destroy(&l), RTC_OK);
    char misaligned[sizeof(rtc_rwlock) + 8];
    CHECK_STATUS(rtc_rwlock_init((rtc_rwlock *)(void *)(misaligned + 1), "x", NULL), RTC_ERR_INVALID_ARGUMENT);
    expect_message("not aligned");
}

static void m_rwlock_rdlock(void) {
    CHECK_STATUS(rtc_rwlock_rdlock(NULL), RTC_ERR_NULL);
    expect_message("rtc_rwlock_rdlock: argument 'rwlock' is NULL");
    rtc_rwlock bad = RTC_RWLOCK_INIT_RANKED("rwbad", "undeclared_rw_rank");
    CHECK_STATUS(rtc_rwlock_rdlock(&bad), RTC_ERR_UNKNOWN_RANK);
    expect_message("rwlock 'rwbad' (rank undeclared_rw_rank): rank 'undeclared_rw_rank' is not declared");
    CHECK_STATUS(rtc_rwlock_tryrdlock(&bad), RTC_ERR_UNKNOWN_RANK); /* still not locked */
    CHECK_STATUS(rtc_rwlock_unlock(&bad), RTC_ERR_NOT_OWNER);
    rtc_rwlock l = RTC_RWLOCK_INIT_RANKED("rd", "mu_r");
    CHECK_STATUS(rtc_rwlock_rdlock(&l), RTC_OK);
    /* A recursive read: refused at once (a writer arriving between the two
     * reads would leave it waiting forever). */
    CHECK_STATUS(rtc_rwlock_rdlock(&l), RTC_ERR_WOULD_DEADLOCK);
    expect_message("read lock of rwlock 'rd' (rank mu_r)");
    expect_message("which already holds it for reading");
    expect_message("a recursive read waits forever");
    /* Write while reading. */
    CHECK_STATUS(rtc_rwlock_wrlock(&l), RTC_ERR_WOULD_DEADLOCK);
    expect_message("write lock of rwlock 'rd' (rank mu_r)");
    expect_message("which already holds it for reading");
    CHECK_STATUS(rtc_rwlock_unlock(&l), RTC_OK);
    /* Read while writing. */
    CHECK_STATUS(rtc_rwlock_wrlock(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_rdlock(&l), RTC_ERR_WOULD_DEADLOCK);
    expect_message("which already holds it for writing");
    CHECK_STATUS(rtc_rwlock_unlock(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(&l), RTC_ERR_NOT_OWNER);
    /* Another thread's read hold does not stop a reader. */
    CHECK_STATUS(rtc_rwlock_rdlock(&rw_read_elsewhere), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(&rw_read_elsewhere), RTC_OK);
    /* Destroyed, then moved after first use. */
    CHECK_STATUS(rtc_rwlock_destroy(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_rdlock(&l), RTC_ERR_DESTROYED);
    expect_message("rwlock 'rd' (rank mu_r) was destroyed (rtc_rwlock_init it again to reuse it)");
    rtc_rwlock *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    CHECK_STATUS(rtc_rwlock_rdlock(a), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(a), RTC_OK);
    memcpy(b, a, sizeof *a);
    CHECK_STATUS(rtc_rwlock_rdlock(b), RTC_ERR_MOVED);
    expect_message("was moved");
    CHECK_STATUS(rtc_rwlock_destroy(b), RTC_ERR_MOVED);
    free(a); free(b);
    /* Declaring the rank later makes it usable. */
    CHECK_STATUS(rtc_ranks_load("NONE < undeclared_rw_rank;", "late_rw.ranks"), RTC_OK);
    CHECK_STATUS(rtc_rwlock_rdlock(&bad), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(&bad), RTC_OK);
    /* The refused calls above left no reader in: a write lock is free to
     * take (the fast path takes the word before it finds the rank
     * unresolved, then gives it back). */
    CHECK_STATUS(rtc_rwlock_trywrlock(&bad), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(&bad), RTC_OK);
}

static void m_rwlock_rdlock_at(void) {
    CHECK_STATUS(rtc_rwlock_rdlock_at(NULL, "f.c", 1), RTC_ERR_NULL);
    expect_message("rtc_rwlock_rdlock_at: argument 'rwlock' is NULL");
    rtc_rwlock l = RTC_RWLOCK_INIT;
    CHECK_STATUS(rtc_rwlock_rdlock_at(&l, NULL, 0), RTC_OK); /* a NULL site is allowed */
    CHECK_STATUS(rtc_rwlock_unlock(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_rdlock_at(&l, "rd_here.c", 2), RTC_OK);
    CHECK_STATUS(rtc_rwlock_rdlock_at(&l, "rd_here.c", 3), RTC_ERR_WOULD_DEADLOCK);
    expect_message("read lock of rwlock '(unnamed)' (unranked) at rd_here.c:3");
    expect_message("(locked at rd_here.c:2)");
    CHECK_STATUS(rtc_rwlock_unlock(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_destroy(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_rdlock_at(&l, "rd_here.c", 9), RTC_ERR_DESTROYED);
    expect_message("was destroyed");
}

static void m_rwlock_rdlock_keyed_at(void) {
    CHECK_STATUS(rtc_rwlock_rdlock_keyed_at(NULL, 1, "f.c", 1), RTC_ERR_NULL);
    expect_message("rtc_rwlock_rdlock_keyed_at: argument 'rwlock' is NULL");
    rtc_rwlock bad = RTC_RWLOCK_INIT_RANKED("rkbad", "undeclared_rwk_rank");
    CHECK_STATUS(rtc_rwlock_rdlock_keyed_at(&bad, 1, "f.c", 2), RTC_ERR_UNKNOWN_RANK);
    expect_message("rwlock 'rkbad' (rank undeclared_rwk_rank): rank 'undeclared_rwk_rank' is not declared");
    rtc_rwlock l = RTC_RWLOCK_INIT_RANKED("rdk", "mu_r");
    CHECK_STATUS(rtc_rwlock_rdlock_keyed_at(&l, 7, "rdk_here.c", 1), RTC_OK);
    CHECK_STATUS(rtc_rwlock_rdlock_keyed_at(&l, 8, "rdk_here.c", 2), RTC_ERR_WOULD_DEADLOCK);
    expect_message("read lock of rwlock 'rdk' (rank mu_r) at rdk_here.c:2");
    expect_message("which already holds it for reading (locked at rdk_here.c:1)");
    CHECK_STATUS(rtc_rwlock_wrlock_keyed_at(&l, 9, "rdk_here.c", 3), RTC_ERR_WOULD_DEADLOCK);
    CHECK_STATUS(rtc_rwlock_unlock(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_destroy(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_rdlock_keyed_at(&l, 1, "rdk_here.c", 4), RTC_ERR_DESTROYED);
    expect_message("rwlock 'rdk' (rank mu_r) was destroyed");
}

static void m_rwlock_wrlock(void) {
    CHECK_STATUS(rtc_rwlock_wrlock(NULL), RTC_ERR_NULL);
    expect_message("rtc_rwlock_wrlock: argument 'rwlock' is NULL");
    rtc_rwlock bad = RTC_RWLOCK_INIT_RANKED("wbad", "undeclared_rww_rank");
    CHECK_STATUS(rtc_rwlock_wrlock(&bad), RTC_ERR_UNKNOWN_RANK);
    expect_message("rwlock 'wbad' (rank undeclared_rww_rank): rank 'undeclared_rww_rank' is not declared");
    CHECK_STATUS(rtc_rwlock_trywrlock(&bad), RTC_ERR_UNKNOWN_RANK);
    CHECK_STATUS(rtc_rwlock_unlock(&bad), RTC_ERR_NOT_OWNER);
    rtc_rwlock l = RTC_RWLOCK_INIT_RANKED("wr", "mu_r");
    CHECK_STATUS(rtc_rwlock_wrlock(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_wrlock(&l), RTC_ERR_WOULD_DEADLOCK);
    expect_message("write lock of rwlock 'wr' (rank mu_r)");
    expect_message("which already holds it for writing");
    expect_message("it would wait forever");
    CHECK_STATUS(rtc_rwlock_unlock(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_rdlock(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_wrlock(&l), RTC_ERR_WOULD_DEADLOCK); /* write while reading */
    expect_message("which already holds it for reading");
    CHECK_STATUS(rtc_rwlock_unlock(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_destroy(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_wrlock(&l), RTC_ERR_DESTROYED);
    expect_message("rwlock 'wr' (rank mu_r) was destroyed");
    /* Re-initialising after destroy makes it usable again. */
    CHECK_STATUS(rtc_rwlock_init(&l, "wr2", "mu_r"), RTC_OK);
    CHECK_STATUS(rtc_rwlock_wrlock(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(&l), RTC_OK);
    rtc_rwlock *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    CHECK_STATUS(rtc_rwlock_wrlock(a), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(a), RTC_OK);
    memcpy(b, a, sizeof *a);
    CHECK_STATUS(rtc_rwlock_wrlock(b), RTC_ERR_MOVED);
    expect_message("was moved");
    free(a); free(b);
}

static void m_rwlock_wrlock_at(void) {
    CHECK_STATUS(rtc_rwlock_wrlock_at(NULL, "f.c", 1), RTC_ERR_NULL);
    expect_message("rtc_rwlock_wrlock_at: argument 'rwlock' is NULL");
    rtc_rwlock l;
    memset(&l, 0, sizeof l); /* all zeroes: an unranked lock */
    CHECK_STATUS(rtc_rwlock_wrlock_at(&l, "wr_here.c", 1), RTC_OK);
    CHECK_STATUS(rtc_rwlock_wrlock_at(&l, "wr_here.c", 2), RTC_ERR_WOULD_DEADLOCK);
    expect_message("write lock of rwlock '(unnamed)' (unranked) at wr_here.c:2");
    expect_message("which already holds it for writing (locked at wr_here.c:1)");
    CHECK_STATUS(rtc_rwlock_rdlock_at(&l, "wr_here.c", 3), RTC_ERR_WOULD_DEADLOCK); /* read while writing */
    expect_message("read lock of rwlock '(unnamed)' (unranked) at wr_here.c:3");
    expect_message("which already holds it for writing (locked at wr_here.c:1)");
    CHECK_STATUS(rtc_rwlock_unlock(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_destroy(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_wrlock_at(&l, "wr_here.c", 4), RTC_ERR_DESTROYED);
}

static void m_rwlock_wrlock_keyed_at(void) {
    CHECK_STATUS(rtc_rwlock_wrlock_keyed_at(NULL, 1, "f.c", 1), RTC_ERR_NULL);
    expect_message("rtc_rwlock_wrlock_keyed_at: argument 'rwlock' is NULL");
    rtc_rwlock bad = RTC_RWLOCK_INIT_RANKED("wkbad", "undeclared_rwk_rank2");
    CHECK_STATUS(rtc_rwlock_wrlock_keyed_at(&bad, 1, "f.c", 2), RTC_ERR_UNKNOWN_RANK);
    expect_message("rwlock 'wkbad' (rank undeclared_rwk_rank2)");
    rtc_rwlock l = RTC_RWLOCK_INIT_RANKED("wrk", "mu_r");
    CHECK_STATUS(rtc_rwlock_wrlock_keyed_at(&l, 3, "wrk_here.c", 1), RTC_OK);
    CHECK_STATUS(rtc_rwlock_wrlock_keyed_at(&l, 4, "wrk_here.c", 2), RTC_ERR_WOULD_DEADLOCK);
    expect_message("write lock of rwlock 'wrk' (rank mu_r) at wrk_here.c:2");
    expect_message("(locked at wrk_here.c:1)");
    CHECK_STATUS(rtc_rwlock_rdlock_keyed_at(&l, 5, "wrk_here.c", 3), RTC_ERR_WOULD_DEADLOCK);
    expect_message("which already holds it for writing");
    CHECK_STATUS(rtc_rwlock_unlock(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_destroy(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_wrlock_keyed_at(&l, 1, "wrk_here.c", 4), RTC_ERR_DESTROYED);
}

static void m_rwlock_tryrdlock(void) {
    CHECK_STATUS(rtc_rwlock_tryrdlock(NULL), RTC_ERR_NULL);
    expect_message("rtc_rwlock_tryrdlock: argument 'rwlock' is NULL");
    rtc_last_error_clear();
    CHECK_STATUS(rtc_rwlock_tryrdlock(&rw_write_elsewhere), RTC_ERR_BUSY);
    CHECK_STATUS(rtc_last_error_status(), RTC_OK); /* BUSY stores no error */
    /* Shared with the other reader. */
    CHECK_STATUS(rtc_rwlock_tryrdlock(&rw_read_elsewhere), RTC_OK);
    CHECK_STATUS(rtc_rwlock_tryrdlock(&rw_read_elsewhere), RTC_ERR_WOULD_DEADLOCK);
    expect_message("try-read-lock of rwlock 'rw_reader' (rank mu_r)");
    expect_message("which already holds it for reading");
    CHECK_STATUS(rtc_rwlock_unlock(&rw_read_elsewhere), RTC_OK);
    rtc_rwlock l = RTC_RWLOCK_INIT;
    CHECK_STATUS(rtc_rwlock_wrlock(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_tryrdlock(&l), RTC_ERR_WOULD_DEADLOCK); /* not BUSY: it is ours */
    expect_message("which already holds it for writing");
    CHECK_STATUS(rtc_rwlock_unlock(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_destroy(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_tryrdlock(&l), RTC_ERR_DESTROYED);
}

static void m_rwlock_tryrdlock_at(void) {
    CHECK_STATUS(rtc_rwlock_tryrdlock_at(NULL, "f.c", 1), RTC_ERR_NULL);
    expect_message("rtc_rwlock_tryrdlock_at: argument 'rwlock' is NULL");
    rtc_rwlock l = RTC_RWLOCK_INIT_RANKED("trd", "mu_r");
    CHECK_STATUS(rtc_rwlock_tryrdlock_at(&l, "trd_here.c", 1), RTC_OK);
    CHECK_STATUS(rtc_rwlock_tryrdlock_at(&l, "trd_here.c", 2), RTC_ERR_WOULD_DEADLOCK);
    expect_message("try-read-lock of rwlock 'trd' (rank mu_r) at trd_here.c:2");
    expect_message("(locked at trd_here.c:1)");
    CHECK_STATUS(rtc_rwlock_unlock(&l), RTC_OK);
    rtc_last_error_clear();
    CHECK_STATUS(rtc_rwlock_tryrdlock_at(&rw_write_elsewhere, "trd_here.c", 3), RTC_ERR_BUSY);
    CHECK_STATUS(rtc_last_error_status(), RTC_OK);
}

static void m_rwlock_trywrlock(void) {
    CHECK_STATUS(rtc_rwlock_trywrlock(NULL), RTC_ERR_NULL);
    expect_message("rtc_rwlock_trywrlock: argument 'rwlock' is NULL");
    rtc_last_error_clear();
    CHECK_STATUS(rtc_rwlock_trywrlock(&rw_write_elsewhere), RTC_ERR_BUSY);
    CHECK_STATUS(rtc_rwlock_trywrlock(&rw_read_elsewhere), RTC_ERR_BUSY); /* a reader is in */
    CHECK_STATUS(rtc_last_error_status(), RTC_OK); /* BUSY stores no error */
    rtc_rwlock l = RTC_RWLOCK_INIT_RANKED("twr", "mu_r");
    CHECK_STATUS(rtc_rwlock_trywrlock(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_trywrlock(&l), RTC_ERR_WOULD_DEADLOCK);
    expect_message("try-write-lock of rwlock 'twr' (rank mu_r)");
    expect_message("which already holds it for writing");
    CHECK_STATUS(rtc_rwlock_unlock(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_rdlock(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_trywrlock(&l), RTC_ERR_WOULD_DEADLOCK); /* not BUSY: it is ours */
    expect_message("which already holds it for reading");
    CHECK_STATUS(rtc_rwlock_unlock(&l), RTC_OK);
}

static void m_rwlock_trywrlock_at(void) {
    CHECK_STATUS(rtc_rwlock_trywrlock_at(NULL, "f.c", 1), RTC_ERR_NULL);
    expect_message("rtc_rwlock_trywrlock_at: argument 'rwlock' is NULL");
    rtc_rwlock l = RTC_RWLOCK_INIT;
    CHECK_STATUS(rtc_rwlock_trywrlock_at(&l, "twr_here.c", 1), RTC_OK);
    CHECK_STATUS(rtc_rwlock_trywrlock_at(&l, "twr_here.c", 2), RTC_ERR_WOULD_DEADLOCK);
    expect_message("try-write-lock of rwlock '(unnamed)' (unranked) at twr_here.c:2");
    expect_message("(locked at twr_here.c:1)");
    CHECK_STATUS(rtc_rwlock_unlock(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_destroy(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_trywrlock_at(&l, "twr_here.c", 3), RTC_ERR_DESTROYED);
}

static void m_rwlock_unlock(void) {
    CHECK_STATUS(rtc_rwlock_unlock(NULL), RTC_ERR_NULL);
    expect_message("rtc_rwlock_unlock: argument 'rwlock' is NULL");
    CHECK_STATUS(rtc_rwlock_unlock(&rw_write_elsewhere), RTC_ERR_NOT_OWNER);
    expect_message("unlock of rwlock 'rw_writer' (rank mu_r) which this thread does not hold (it is write-locked by thread");
    CHECK_STATUS(rtc_rwlock_unlock(&rw_read_elsewhere), RTC_ERR_NOT_OWNER);
    expect_message("unlock of rwlock 'rw_reader' (rank mu_r) which this thread does not hold (it is read-locked by 1 other thread(s))");
    /* The refused unlock took nothing away from the real reader. */
    CHECK_STATUS(rtc_rwlock_trywrlock(&rw_read_elsewhere), RTC_ERR_BUSY);
    rtc_rwlock l = RTC_RWLOCK_INIT_RANKED("unl", "mu_r");
    CHECK_STATUS(rtc_rwlock_unlock(&l), RTC_ERR_NOT_OWNER);
    expect_message("unlock of rwlock 'unl' (rank mu_r) which this thread does not hold (it is not locked)");
    CHECK_STATUS(rtc_rwlock_rdlock(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(&l), RTC_ERR_NOT_OWNER); /* released once only */
    CHECK_STATUS(rtc_rwlock_wrlock(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(&l), RTC_ERR_NOT_OWNER);
    expect_message("it is not locked");
    CHECK_STATUS(rtc_rwlock_destroy(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(&l), RTC_ERR_DESTROYED);
    expect_message("unlock of rwlock 'unl' (rank mu_r) which was destroyed");
}

static void m_rwlock_destroy(void) {
    CHECK_STATUS(rtc_rwlock_destroy(NULL), RTC_ERR_NULL);
    expect_message("rtc_rwlock_destroy: argument 'rwlock' is NULL");
    rtc_rwlock zero;
    memset(&zero, 0, sizeof zero);
    CHECK_STATUS(rtc_rwlock_destroy(&zero), RTC_OK); /* zeroed: allowed */
    CHECK_STATUS(rtc_rwlock_destroy(&rw_write_elsewhere), RTC_ERR_LOCKED);
    expect_message("destroy of rwlock 'rw_writer' (rank mu_r) which is write-locked by thread");
    CHECK_STATUS(rtc_rwlock_destroy(&rw_read_elsewhere), RTC_ERR_LOCKED);
    expect_message("destroy of rwlock 'rw_reader' (rank mu_r) which is read-locked by 1 thread(s)");
    rtc_rwlock l = RTC_RWLOCK_INIT_RANKED("dst", "mu_r");
    CHECK_STATUS(rtc_rwlock_wrlock(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_destroy(&l), RTC_ERR_LOCKED);
    expect_message("destroy of rwlock 'dst' (rank mu_r) which is write-locked by thread");
    CHECK_STATUS(rtc_rwlock_unlock(&l), RTC_OK); /* nothing changed */
    CHECK_STATUS(rtc_rwlock_rdlock(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_destroy(&l), RTC_ERR_LOCKED);
    expect_message("read-locked by 1 thread(s)");
    CHECK_STATUS(rtc_rwlock_unlock(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_destroy(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_tryrdlock(&l), RTC_ERR_DESTROYED);
    expect_message("was destroyed");
}

struct cb_seen { int calls; uint64_t thread; };
static void count_report(const rtc_lockrank_report *r, void *user) {
    struct cb_seen *s = user;
    s->calls++;
    s->thread = r->thread_id;
}

static void m_lockrank_set_callback(void) {
    int32_t mode = -1;
    /* The callback mode needs a callback. */
    CHECK_STATUS(rtc_lockrank_set_mode(RTC_LOCKRANK_CALLBACK), RTC_ERR_INVALID_ARGUMENT);
    expect_message("rtc_lockrank_set_mode: lock-rank mode callback needs a callback");
    CHECK_STATUS(rtc_lockrank_get_mode(&mode), RTC_OK);
    CHECK(mode == RTC_LOCKRANK_REPORT); /* unchanged */
    CHECK_STATUS(rtc_lockrank_set_mode(6), RTC_ERR_INVALID_ARGUMENT);
    expect_message("lock-rank mode 6 is not an rtc_lockrank_mode");
    /* Clearing with none set: fine, and selects report. */
    CHECK_STATUS(rtc_lockrank_set_callback(NULL, NULL), RTC_OK);
    struct cb_seen seen = {0, 0};
    CHECK_STATUS(rtc_lockrank_set_callback(count_report, &seen), RTC_OK);
    CHECK_STATUS(rtc_lockrank_get_mode(&mode), RTC_OK);
    CHECK(mode == RTC_LOCKRANK_CALLBACK);
    /* With one set, the mode may be left and selected again. */
    CHECK_STATUS(rtc_lockrank_set_mode(RTC_LOCKRANK_REPORT), RTC_OK);
    CHECK_STATUS(rtc_lockrank_set_mode(RTC_LOCKRANK_CALLBACK), RTC_OK);
    /* A violation (a leaf under a leaf) reaches it, on this thread. */
    rtc_mutex l1 = RTC_MUTEX_INIT, l2 = RTC_MUTEX_INIT;
    CHECK_STATUS(rtc_mutex_lock(&l1), RTC_OK);
    CHECK_STATUS(rtc_mutex_lock(&l2), RTC_OK);
    rtc_mutex_unlock(&l2); rtc_mutex_unlock(&l1);
    uint64_t me = 0;
    rtc_thread_id(&me);
    CHECK(seen.calls == 1 && seen.thread == me);
    CHECK_STATUS(rtc_lockrank_set_callback(NULL, NULL), RTC_OK);
    CHECK_STATUS(rtc_lockrank_get_mode(&mode), RTC_OK);
    CHECK(mode == RTC_LOCKRANK_REPORT);
    /* Cleared: the callback mode is refused again. */
    CHECK_STATUS(rtc_lockrank_set_mode(RTC_LOCKRANK_CALLBACK), RTC_ERR_INVALID_ARGUMENT);
}

/* A queued report kept past rtc_shutdown (freed by m_shutdown). */
static rtc_lockrank_report *kept_report;

/* Queue one violation (a leaf under a leaf) in queue mode. */
static void queue_one_violation(void) {
    CHECK_STATUS(rtc_lockrank_set_mode(RTC_LOCKRANK_QUEUE), RTC_OK);
    rtc_mutex l1 = RTC_MUTEX_INIT, l2 = RTC_MUTEX_INIT;
    CHECK_STATUS(rtc_mutex_lock(&l1), RTC_OK);
    CHECK_STATUS(rtc_mutex_lock(&l2), RTC_OK);
    rtc_mutex_unlock(&l2); rtc_mutex_unlock(&l1);
    CHECK_STATUS(rtc_lockrank_set_mode(RTC_LOCKRANK_REPORT), RTC_OK);
}

static void m_lockrank_next_report(void) {
    CHECK_STATUS(rtc_lockrank_next_report(NULL), RTC_ERR_NULL);
    expect_message("rtc_lockrank_next_report: argument 'out' is NULL");
    _Alignas(8) unsigned char buf[2 * sizeof(void *)];
    memset(buf, 0x5a, sizeof buf);
    CHECK_STATUS(rtc_lockrank_next_report((rtc_lockrank_report **)(void *)(buf + 1)), RTC_ERR_INVALID_ARGUMENT);
    expect_message("not aligned");
    CHECK(buf[1] == 0x5a); /* nothing written */
    rtc_lockrank_report *r = (rtc_lockrank_report *)&r; /* not NULL */
    CHECK_STATUS(rtc_lockrank_next_report(&r), RTC_OK);
    CHECK(r == NULL); /* none pending */
    /* Reports stay queued after the mode changes. */
    queue_one_violation();
    CHECK_STATUS(rtc_lockrank_next_report(&r), RTC_OK);
    CHECK(r != NULL);
    if (r) {
        CHECK(r->reason == RTC_LOCKRANK_REASON_ORDER);
        CHECK(r->held_count == 1);
        CHECK_CONTAINS(r->text, "unranked locks are leaves");
    }
    rtc_lockrank_report_free(r);
    CHECK_STATUS(rtc_lockrank_next_report(&r), RTC_OK);
    CHECK(r == NULL);
}

static void m_lockrank_report_free(void) {
    rtc_last_error_clear();
    rtc_lockrank_report_free(NULL); /* a no-op */
    CHECK_STATUS(rtc_last_error_status(), RTC_OK);
    /* One report is kept to be freed after rtc_shutdown. */
    queue_one_violation();
    CHECK_STATUS(rtc_lockrank_next_report(&kept_report), RTC_OK);
    CHECK(kept_report != NULL);
}

static void m_lockrank_reports_dropped(void) {
    CHECK_STATUS(rtc_lockrank_reports_dropped(NULL), RTC_ERR_NULL);
    expect_message("rtc_lockrank_reports_dropped: argument 'out_count' is NULL");
    uint64_t n = 77;
    CHECK_STATUS(rtc_lockrank_reports_dropped(&n), RTC_OK);
    CHECK(n == 0); /* the queue never filled */
}

/* After shutdown every call answers with a status. */
static void m_shutdown(void) {
    /* Read/write locks held across shutdown can still be released. */
    static rtc_rwlock across_r = RTC_RWLOCK_INIT_RANKED("across_r", "mu_r");
    static rtc_rwlock across_w = RTC_RWLOCK_INIT;
    CHECK_STATUS(rtc_rwlock_rdlock(&across_r), RTC_OK);
    CHECK_STATUS(rtc_rwlock_wrlock(&across_w), RTC_OK);
    CHECK_STATUS(rtc_shutdown(), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(&across_r), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(&across_w), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(&across_w), RTC_ERR_NOT_OWNER);
    CHECK_STATUS(rtc_rwlock_destroy(&across_r), RTC_OK);
    CHECK_STATUS(rtc_rwlock_destroy(&across_w), RTC_OK);
    CHECK_STATUS(rtc_shutdown(), RTC_ERR_SHUT_DOWN);
    rtc_mutex m = RTC_MUTEX_INIT;
    rtc_cond c = RTC_COND_INIT;
    uint32_t id; int32_t mode; uint64_t n; size_t need;
    CHECK_STATUS(rtc_mutex_lock(&m), RTC_ERR_SHUT_DOWN);
    expect_message("shut down");
    CHECK_STATUS(rtc_mutex_lock_at(&m, "f", 1), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_mutex_trylock(&m), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_mutex_trylock_at(&m, "f", 1), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_mutex_unlock(&m), RTC_ERR_NOT_OWNER); /* releasing still works */
    CHECK_STATUS(rtc_mutex_init(&m, "x", NULL), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_mutex_destroy(&m), RTC_OK);
    CHECK_STATUS(rtc_mutex_lock_keyed(&m, 1), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_mutex_lock_keyed_at(&m, 1, "f", 1), RTC_ERR_SHUT_DOWN);
    rtc_rwlock rw = RTC_RWLOCK_INIT;
    CHECK_STATUS(rtc_rwlock_rdlock(&rw), RTC_ERR_SHUT_DOWN);
    expect_message("shut down");
    CHECK_STATUS(rtc_rwlock_rdlock_at(&rw, "f", 1), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_rwlock_rdlock_keyed_at(&rw, 1, "f", 1), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_rwlock_wrlock(&rw), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_rwlock_wrlock_at(&rw, "f", 1), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_rwlock_wrlock_keyed_at(&rw, 1, "f", 1), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_rwlock_tryrdlock(&rw), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_rwlock_tryrdlock_at(&rw, "f", 1), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_rwlock_trywrlock(&rw), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_rwlock_trywrlock_at(&rw, "f", 1), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_rwlock_unlock(&rw), RTC_ERR_NOT_OWNER); /* releasing still works */
    CHECK_STATUS(rtc_rwlock_init(&rw, "x", NULL), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_rwlock_destroy(&rw), RTC_OK);
    CHECK_STATUS(rtc_cond_init(&c), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_cond_wait(&c, &m), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_cond_wait_at(&c, &m, "f", 1), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_cond_timedwait(&c, &m, 1), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_cond_timedwait_at(&c, &m, 1, "f", 1), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_cond_signal(&c), RTC_OK);
    CHECK_STATUS(rtc_cond_broadcast(&c), RTC_OK);
    CHECK_STATUS(rtc_cond_destroy(&c), RTC_OK);
    CHECK_STATUS(rtc_ranks_load("NONE < z;", "z"), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_ranks_load_file("/nonexistent"), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_rank_lookup("mu_r", &id), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_lockrank_set_mode(1), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_lockrank_get_mode(&mode), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_lockrank_violations(&n), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_lockrank_last_report(NULL, 0, &need), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_lockrank_set_callback(count_report, NULL), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_lockrank_set_callback(NULL, NULL), RTC_ERR_SHUT_DOWN);
    rtc_lockrank_report *rep = (rtc_lockrank_report *)&rep;
    CHECK_STATUS(rtc_lockrank_next_report(&rep), RTC_ERR_SHUT_DOWN);
    CHECK(rep == (rtc_lockrank_report *)&rep); /* not written */
    CHECK_STATUS(rtc_lockrank_reports_dropped(&n), RTC_ERR_SHUT_DOWN);
    rtc_lockrank_report_free(NULL);
    CHECK(kept_report != NULL);
    rtc_lockrank_report_free(kept_report); /* works after shutdown */
    kept_report = NULL;
    CHECK_STATUS(rtc_init(NULL), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_thread_attach("late", NULL), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_thread_detach(), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_safepoint(), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_enter_blocking(NULL), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_exit_blocking(), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_stop_the_world(NULL), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_start_the_world(), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_assert_world_stopped(), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_set_maxprocs(1, NULL), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_get_maxprocs(&id), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_world_set_safepoint_threshold_ns(1), RTC_ERR_SHUT_DOWN);
    rtc_census cs; memset(&cs, 0, sizeof cs); cs.size = sizeof cs;
    CHECK_STATUS(rtc_world_census(&cs), RTC_ERR_SHUT_DOWN);
    rtc_sysmon_stats ss; memset(&ss, 0, sizeof ss); ss.size = sizeof ss;
    CHECK_STATUS(rtc_sysmon_get_stats(&ss), RTC_ERR_SHUT_DOWN);
    uint64_t hid = 0;
    CHECK_STATUS(rtc_sysmon_set_threshold(RTC_SYSMON_LOCK_STALL_NS, 1, NULL), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_sysmon_get_threshold(RTC_SYSMON_LOCK_STALL_NS, &n), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_sysmon_hook_add("late", 1000000, noop_hook, NULL, &hid), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_sysmon_hook_remove(1), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_set_preempt_handler(NULL, NULL), RTC_ERR_SHUT_DOWN);
    CHECK(rtc_sysmon_last_report(NULL, 0) >= 1); /* keeps answering */
    rtc_trace_config tc; memset(&tc, 0, sizeof tc); tc.size = sizeof tc;
    CHECK_STATUS(rtc_trace_start(&tc), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_trace_stop(), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_flight_recorder_start(NULL), RTC_ERR_SHUT_DOWN);
    rtc_trace_stats tst; memset(&tst, 0, sizeof tst); tst.size = sizeof tst;
    CHECK_STATUS(rtc_trace_get_stats(&tst), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_flight_recorder_write(&tc), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_flight_recorder_stop(), RTC_ERR_SHUT_DOWN);
    static int plock;
    uint32_t pclass = 0;
    CHECK_STATUS(rtc_preload_lock_class(&plock, NULL, &pclass), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_preload_unlock_not_held(&plock, NULL), RTC_ERR_SHUT_DOWN);
    CHECK(rtc_preload_epoch() != NULL); /* keeps answering */
    CHECK(rtc_preload_summary(NULL, 0) >= 1); /* keeps answering */
    CHECK(rtc_preload_learned_ranks(NULL, NULL, 0) >= 1);
    CHECK_STATUS(rtc_preload_wait_end(), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_preload_cond_wait_begin(&plock), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_preload_cond_wait_end(), RTC_ERR_SHUT_DOWN);
    {
        rtc_preload_held h = {&plock, NULL, 0, 0};
        CHECK_STATUS(rtc_preload_thread_exit(&h, 1), RTC_ERR_SHUT_DOWN);
    }
    CHECK(rtc_trace_enabled() == 0);
    CHECK_STATUS(rtc_log("a", "b"), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_region_begin("r"), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_region_end(), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_task_begin("t", &n), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_task_end(1), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_counter("c", 1), RTC_ERR_SHUT_DOWN);
    CHECK_STATUS(rtc_trace_check(NULL, 0, NULL, 0), RTC_ERR_BAD_TRACE); /* keeps answering */
    CHECK_STATUS(rtc_trace_check_file("/dev/null", NULL, 0), RTC_ERR_BAD_TRACE);
    CHECK_STATUS(rtc_trace_stats_json("/dev/null", NULL, 0, NULL), RTC_ERR_BAD_TRACE);
    /* These keep answering. */
    uint64_t tid = 0; int32_t st = -1;
    CHECK_STATUS(rtc_thread_id(&tid), RTC_OK);
    CHECK_STATUS(rtc_thread_state(&st), RTC_OK);
    CHECK(strcmp(rtc_status_str(RTC_ERR_SHUT_DOWN), "rtcore has been shut down") == 0);
    CHECK(strcmp(rtc_version(), RTC_VERSION_STRING) == 0);
}

struct misuse { const char *fn; void (*run)(void); };
#define MISUSE(name, f) { name, f }

static const struct misuse table[] = {
    MISUSE("rtc_status_str", m_status_str),
    MISUSE("rtc_last_error_message", m_last_error_message),
    MISUSE("rtc_last_error_status", m_last_error_status),
    MISUSE("rtc_last_error_clear", m_last_error_clear),
    MISUSE("rtc_version", m_version),
    MISUSE("rtc_version_number", m_version),
    MISUSE("rtc_init", m_init),
    MISUSE("rtc_debug_panic", m_debug_panic),
    MISUSE("rtc_mutex_debug_panic", m_mutex_debug_panic),
    MISUSE("rtc_mutex_init", m_mutex_init),
    MISUSE("rtc_mutex_lock", m_mutex_lock),
    MISUSE("rtc_mutex_lock_at", m_mutex_lock_at),
    MISUSE("rtc_mutex_trylock", m_mutex_trylock),
    MISUSE("rtc_mutex_trylock_at", m_mutex_trylock_at),
    MISUSE("rtc_mutex_unlock", m_mutex_unlock),
    MISUSE("rtc_mutex_destroy", m_mutex_destroy),
    MISUSE("rtc_cond_init", m_cond_init),
    MISUSE("rtc_cond_wait", m_cond_wait),
    MISUSE("rtc_cond_wait_at", m_cond_wait_at),
    MISUSE("rtc_cond_timedwait", m_cond_timedwait),
    MISUSE("rtc_cond_timedwait_at", m_cond_timedwait_at),
    MISUSE("rtc_cond_signal", m_cond_signal),
    MISUSE("rtc_cond_broadcast", m_cond_broadcast),
    MISUSE("rtc_cond_destroy", m_cond_destroy),
    MISUSE("rtc_ranks_load", m_ranks_load),
    MISUSE("rtc_ranks_load_file", m_ranks_load_file),
    MISUSE("rtc_rank_lookup", m_rank_lookup),
    MISUSE("rtc_lockrank_set_mode", m_lockrank_set_mode),
    MISUSE("rtc_lockrank_get_mode", m_lockrank_get_mode),
    MISUSE("rtc_lockrank_violations", m_lockrank_violations),
    MISUSE("rtc_lockrank_last_report", m_lockrank_last_report),
    MISUSE("rtc_thread_attach", m_thread_attach),
    MISUSE("rtc_thread_detach", m_thread_detach),
    MISUSE("rtc_thread_id", m_thread_id),
    MISUSE("rtc_thread_state", m_thread_state),
    MISUSE("rtc_safepoint", m_safepoint),
    MISUSE("rtc_enter_blocking", m_enter_blocking),
    MISUSE("rtc_exit_blocking", m_exit_blocking),
    MISUSE("rtc_stop_the_world", m_stop_the_world),
    MISUSE("rtc_start_the_world", m_start_the_world),
    MISUSE("rtc_assert_world_stopped", m_assert_world_stopped),
    MISUSE("rtc_set_maxprocs", m_set_maxprocs),
    MISUSE("rtc_get_maxprocs", m_get_maxprocs),
    MISUSE("rtc_world_set_safepoint_threshold_ns", m_world_set_safepoint_threshold_ns),
    MISUSE("rtc_world_census", m_world_census),
    MISUSE("rtc_sysmon_get_stats", m_sysmon_get_stats),
    MISUSE("rtc_sysmon_set_threshold", m_sysmon_set_threshold),
    MISUSE("rtc_sysmon_get_threshold", m_sysmon_get_threshold),
    MISUSE("rtc_sysmon_last_report", m_sysmon_last_report),
    MISUSE("rtc_sysmon_hook_add", m_sysmon_hook_add),
    MISUSE("rtc_sysmon_hook_remove", m_sysmon_hook_remove),
    MISUSE("rtc_set_preempt_handler", m_set_preempt_handler),
    MISUSE("rtc_trace_start", m_trace_start),
    MISUSE("rtc_trace_stop", m_trace_stop),
    MISUSE("rtc_trace_get_stats", m_trace_get_stats),
    MISUSE("rtc_flight_recorder_start", m_flight_recorder_start),
    MISUSE("rtc_flight_recorder_write", m_flight_recorder_write),
    MISUSE("rtc_flight_recorder_stop", m_flight_recorder_stop),
    MISUSE("rtc_trace_enabled", m_trace_enabled),
    MISUSE("rtc_preload_lock_init", m_preload_lock_init),
    MISUSE("rtc_preload_lock_destroyed", m_preload_lock_destroyed),
    MISUSE("rtc_preload_lock_class", m_preload_lock_class),
    MISUSE("rtc_preload_lock_check", m_preload_lock_check),
    MISUSE("rtc_preload_lock_waited", m_preload_lock_waited),
    MISUSE("rtc_preload_unlock_not_held", m_preload_unlock_not_held),
    MISUSE("rtc_preload_epoch", m_preload_epoch),
    MISUSE("rtc_preload_summary", m_preload_summary),
    MISUSE("rtc_preload_learned_ranks", m_preload_learned_ranks),
    MISUSE("rtc_preload_wait_begin", m_preload_wait_begin),
    MISUSE("rtc_preload_wait_end", m_preload_wait_end),
    MISUSE("rtc_preload_cond_wait_begin", m_preload_cond_wait_begin),
    MISUSE("rtc_preload_cond_wait_end", m_preload_cond_wait_end),
    MISUSE("rtc_preload_thread_exit", m_preload_thread_exit),
    MISUSE("rtc_trace_check", m_trace_check),
    MISUSE("rtc_trace_check_file", m_trace_check_file),
    MISUSE("rtc_trace_stats_json", m_trace_stats_json),
    MISUSE("rtc_log", m_log),
    MISUSE("rtc_region_begin", m_region_begin),
    MISUSE("rtc_region_end", m_region_end),
    MISUSE("rtc_task_begin", m_task_begin),
    MISUSE("rtc_task_end", m_task_end),
    MISUSE("rtc_counter", m_counter),
    MISUSE("rtc_mutex_lock_keyed", m_mutex_lock_keyed),
    MISUSE("rtc_mutex_lock_keyed_at", m_mutex_lock_keyed_at),
    MISUSE("rtc_rwlock_init", m_rwlock_init),
    MISUSE("rtc_rwlock_rdlock", m_rwlock_rdlock),
    MISUSE("rtc_rwlock_rdlock_at", m_rwlock_rdlock_at),
    MISUSE("rtc_rwlock_rdlock_keyed_at", m_rwlock_rdlock_keyed_at),
    MISUSE("rtc_rwlock_wrlock", m_rwlock_wrlock),
    MISUSE("rtc_rwlock_wrlock_at", m_rwlock_wrlock_at),
    MISUSE("rtc_rwlock_wrlock_keyed_at", m_rwlock_wrlock_keyed_at),
    MISUSE("rtc_rwlock_tryrdlock", m_rwlock_tryrdlock),
    MISUSE("rtc_rwlock_tryrdlock_at", m_rwlock_tryrdlock_at),
    MISUSE("rtc_rwlock_trywrlock", m_rwlock_trywrlock),
    MISUSE("rtc_rwlock_trywrlock_at", m_rwlock_trywrlock_at),
    MISUSE("rtc_rwlock_unlock", m_rwlock_unlock),
    MISUSE("rtc_rwlock_destroy", m_rwlock_destroy),
    MISUSE("rtc_lockrank_set_callback", m_lockrank_set_callback),
    MISUSE("rtc_lockrank_next_report", m_lockrank_next_report),
    MISUSE("rtc_lockrank_report_free", m_lockrank_report_free),
    MISUSE("rtc_lockrank_reports_dropped", m_lockrank_reports_dropped),
    MISUSE("rtc_shutdown", m_shutdown), /* last */
};

int main(void) {
    CHECK_STATUS(rtc_ranks_load("NONE < mu_r;\nmu_r < MU_PSEUDO;\n", "misuse.ranks"), RTC_OK);
    pthread_t t;
    pthread_create(&t, NULL, hold_elsewhere, NULL);
    pthread_join(t, NULL);
    pthread_create(&t, NULL, hold_rw_elsewhere, NULL);
    pthread_join(t, NULL);
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        int before = rtc_t_failed;
        table[i].run();
        if (rtc_t_failed != before) fprintf(stderr, "  ... in misuse case %s\n", table[i].fn);
    }
    printf("%d passed, %d failed\n", rtc_t_passed, rtc_t_failed);
    return rtc_t_failed ? 1 : 0;
}
