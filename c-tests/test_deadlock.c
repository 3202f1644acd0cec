/* Deadlocks named: sysmon finds cycles of threads parked on rtcore locks
 * (mutexes and read/write locks, attached threads or not), reports each
 * once within about a second, and stays quiet about long waits that are
 * not cycles. Each scenario runs in a forked child, since its deadlocked
 * threads never return; the child exits when its checks are done. */
#include <pthread.h>
#include <unistd.h>

#include "rtc_test.h"

static rtc_mutex ma = RTC_MUTEX_INIT_RANKED("alpha", NULL);
static rtc_mutex mb = RTC_MUTEX_INIT_RANKED("beta", NULL);
static rtc_rwlock rw = RTC_RWLOCK_INIT_RANKED("table", NULL);
static pthread_barrier_t both;

/* Wait (up to `ms`) for sysmon's deadlock count to reach `n`; the time
 * taken in ms, or -1. */
static long wait_for_deadlocks(uint64_t n, long ms) {
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (rtc_t_ms_since(&t0) < ms) {
        if (rtc_t_sysmon_stats().deadlocks >= n) return rtc_t_ms_since(&t0);
        usleep(10 * 1000);
    }
    return -1;
}

static const char *last_sysmon_report(void) {
    static char buf[8192];
    rtc_sysmon_last_report(buf, sizeof buf);
    return buf;
}

/* ---- two mutexes taken in opposite orders ------------------------------ */

static void *first(void *arg) {
    (void)arg;
    if (getenv("DL_ATTACH")) rtc_thread_attach("worker-1", NULL);
    else pthread_setname_np(pthread_self(), "worker-1");
    rtc_mutex_lock_at(&ma, "dl.c", 10);
    pthread_barrier_wait(&both);
    rtc_mutex_lock_at(&mb, "dl.c", 11); /* never returns */
    return NULL;
}

static void *second(void *arg) {
    (void)arg;
    if (getenv("DL_ATTACH")) rtc_thread_attach("compactor", NULL);
    else pthread_setname_np(pthread_self(), "compactor");
    rtc_mutex_lock_at(&mb, "dl.c", 20);
    pthread_barrier_wait(&both);
    rtc_mutex_lock_at(&ma, "dl.c", 21); /* never returns */
    return NULL;
}

static void crossed_mutexes(void) {
    /* Ranks would catch this order; this test is about the cycle. */
    rtc_lockrank_set_mode(RTC_LOCKRANK_OFF);
    pthread_barrier_init(&both, NULL, 2);
    pthread_t a, b;
    pthread_create(&a, NULL, first, NULL);
    pthread_create(&b, NULL, second, NULL);
    long took = wait_for_deadlocks(1, rtc_t_bound_ms(2000));
    CHECK(took >= 0);
    const char *r = last_sysmon_report();
    CHECK_CONTAINS(r, "deadlock:");
    CHECK_CONTAINS(r, "'worker-1'");
    CHECK_CONTAINS(r, "'compactor'");
    CHECK_CONTAINS(r, "mutex 'alpha'");
    CHECK_CONTAINS(r, "mutex 'beta'");
    /* Where each lock is wanted and where its holder took it. */
    CHECK_CONTAINS(r, "at dl.c:11");
    CHECK_CONTAINS(r, "at dl.c:21");
    CHECK_CONTAINS(r, "locked at dl.c:10");
    CHECK_CONTAINS(r, "locked at dl.c:20");
    /* Once: a second later, still one report. */
    usleep(1000 * 1000);
    CHECK(rtc_t_sysmon_stats().deadlocks == 1);
    printf("crossed mutexes (%s): reported after %ld ms\n",
           getenv("DL_ATTACH") ? "attached" : "unattached", took);
    fflush(stdout);
}

static void crossed_mutexes_attached(void) {
    setenv("DL_ATTACH", "1", 1);
    crossed_mutexes();
}

/* ---- an inversion through a read lock ---------------------------------- */

static void *reader(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "reader");
    rtc_rwlock_rdlock_at(&rw, "rw.c", 30);
    pthread_barrier_wait(&both);
    rtc_mutex_lock_at(&ma, "rw.c", 31); /* never returns */
    return NULL;
}

static void *writer(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "writer");
    rtc_mutex_lock_at(&ma, "rw.c", 40);
    pthread_barrier_wait(&both);
    rtc_rwlock_wrlock_at(&rw, "rw.c", 41); /* never returns */
    return NULL;
}

static void read_lock_inversion(void) {
    rtc_lockrank_set_mode(RTC_LOCKRANK_OFF);
    pthread_barrier_init(&both, NULL, 2);
    pthread_t a, b;
    pthread_create(&a, NULL, reader, NULL);
    pthread_create(&b, NULL, writer, NULL);
    CHECK(wait_for_deadlocks(1, rtc_t_bound_ms(2000)) >= 0);
    const char *r = last_sysmon_report();
    CHECK_CONTAINS(r, "waits to write rwlock 'table'");
    CHECK_CONTAINS(r, "read-held by thread");
    CHECK_CONTAINS(r, "'reader' (locked at rw.c:30)");
    CHECK_CONTAINS(r, "mutex 'alpha'");
}

/* The same with the reader's hold biased (two readers met on the lock
 * first): the writer then waits for a reader the lock's word does not
 * count, and must still be seen waiting. */
static void *hold_read_meanwhile(void *arg) {
    (void)arg;
    int locked = rtc_rwlock_rdlock(&rw) == RTC_OK;
    pthread_barrier_wait(&both);
    pthread_barrier_wait(&both);
    if (locked) rtc_rwlock_unlock(&rw);
    return NULL;
}

static void read_lock_inversion_biased(void) {
    /* A first read gives this thread its id (the fast path needs one). */
    CHECK_STATUS(rtc_rwlock_rdlock(&rw), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(&rw), RTC_OK);
    pthread_barrier_init(&both, NULL, 2);
    pthread_t t;
    pthread_create(&t, NULL, hold_read_meanwhile, NULL);
    pthread_barrier_wait(&both);
    CHECK_STATUS(rtc_rwlock_rdlock(&rw), RTC_OK); /* joins: turns the bias on */
    CHECK_STATUS(rtc_rwlock_unlock(&rw), RTC_OK);
    pthread_barrier_wait(&both);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&both);
    CHECK(__atomic_load_n(&rw.state, __ATOMIC_SEQ_CST) == 8u); /* RBIAS, src/lock/rwword.rs */
    read_lock_inversion();
    CHECK(__atomic_load_n(&rw.state, __ATOMIC_SEQ_CST) >> 4 != 0); /* the writer's id */
}

/* ---- a long wait that ends is not a deadlock --------------------------- */

static void *holder(void *arg) {
    (void)arg;
    rtc_mutex_lock(&ma);
    pthread_barrier_wait(&both);
    usleep(1500 * 1000);
    rtc_mutex_unlock(&ma);
    return NULL;
}

static void *chained(void *arg) {
    (void)arg;
    rtc_mutex_lock(&mb);
    pthread_barrier_wait(&both);
    rtc_mutex_lock(&ma); /* waits 1.5 s behind `holder` */
    rtc_mutex_unlock(&ma);
    rtc_mutex_unlock(&mb);
    return NULL;
}

static void long_wait_is_not_a_deadlock(void) {
    rtc_lockrank_set_mode(RTC_LOCKRANK_OFF);
    pthread_barrier_init(&both, NULL, 3);
    pthread_t a, b;
    pthread_create(&a, NULL, holder, NULL);
    pthread_create(&b, NULL, chained, NULL);
    pthread_barrier_wait(&both);
    /* And a third thread parked behind the second, for a chain. */
    rtc_mutex_lock(&mb);
    rtc_mutex_unlock(&mb);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    CHECK(rtc_t_sysmon_stats().deadlocks == 0);
    CHECK(rtc_t_sysmon_stats().running == 1); /* a parked thread started it */
}

int main(void) {
    /* The fields before `deadlocks` are the older struct: still accepted. */
    rtc_sysmon_stats old;
    memset(&old, 0, sizeof old);
    old.size = (uint32_t)offsetof(rtc_sysmon_stats, deadlocks);
    old.deadlocks = 77;
    CHECK_STATUS(rtc_sysmon_get_stats(&old), RTC_OK);
    CHECK(old.deadlocks == 77); /* not written */
    old.size = (uint32_t)offsetof(rtc_sysmon_stats, deadlocks) + 4;
    CHECK_STATUS(rtc_sysmon_get_stats(&old), RTC_ERR_INVALID_ARGUMENT);

    struct {
        const char *name;
        void (*fn)(void);
    } scenarios[] = {
        {"crossed mutexes, unattached", crossed_mutexes},
        {"crossed mutexes, attached", crossed_mutexes_attached},
        {"inversion through a read lock", read_lock_inversion},
        {"inversion through a biased read lock", read_lock_inversion_biased},
        {"long wait, no cycle", long_wait_is_not_a_deadlock},
    };
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
        int st = rtc_t_in_child(scenarios[i].fn, NULL, NULL);
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
            rtc_t_passed++;
        } else {
            rtc_t_failed++;
            fprintf(stderr, "FAIL scenario '%s': child status %d\n", scenarios[i].name, st);
        }
    }
    return rtc_t_finish();
}
