/* rtc_rwlock, keyed nesting and the lock-rank report modes (issue 16):
 * - basic: shared readers, exclusive writers under stress, try-locks,
 *   the static initialisers;
 * - writer preference: a waiting writer stops new readers;
 * - lock order through read/write locks, with report contents checked;
 * - keyed nesting of a `nestable:` rank (caller keys and addresses);
 * - callback mode and queue mode, with the report structs checked, and
 *   violations from several threads at once in each;
 * - modes off (misuse still refused) and abort (in a child), and the
 *   64-lock limit;
 * - the mutex's starvation bound (a waiter is not starved by a barging
 *   thread in a tight loop).
 * Every scenario loads its own ranks (names unique per load) and leaves
 * the lock-rank mode at report. Nothing here deadlocks: every wait on
 * another thread is bounded. */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "rtc_test.h"

#define AT(linevar, call) ((linevar) = __LINE__, (call))

static void expect_message(const char *needle) { CHECK_CONTAINS(rtc_t_last_error(), needle); }

static void set_mode(int32_t mode) { CHECK_STATUS(rtc_lockrank_set_mode(mode), RTC_OK); }

static int32_t get_mode(void) {
    int32_t m = -1;
    CHECK_STATUS(rtc_lockrank_get_mode(&m), RTC_OK);
    return m;
}

static uint64_t my_id(void) {
    uint64_t id = 0;
    CHECK_STATUS(rtc_thread_id(&id), RTC_OK);
    return id;
}

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_SEQ_CST)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_SEQ_CST)
#define INC(x) __atomic_add_fetch(&(x), 1, __ATOMIC_SEQ_CST)
#define DEC(x) __atomic_sub_fetch(&(x), 1, __ATOMIC_SEQ_CST)

/* Wait (sleeping) until *flag >= want, at most ms milliseconds. */
static int wait_for(int *flag, int want, long ms) {
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (LOAD(*flag) < want) {
        if (rtc_t_ms_since(&t0) > ms) return 0;
        usleep(200);
    }
    return 1;
}

static void sleep_ms(long ms) { usleep((useconds_t)(ms * 1000)); }

/* "FILE:LINE" as the call-site macros record it (FILE: this file's
 * __FILE__, the path the compiler was given). */
static const char *site(int line) {
    static char buf[4][512];
    static int n;
    char *b = buf[n++ % 4];
    snprintf(b, 512, "%s:%d", __FILE__, line);
    return b;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = s ? strlen(s) : 0, b = strlen(suffix);
    return s && a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Drain the report queue; returns how many were pending. */
static int drain_queue(void) {
    int n = 0;
    for (;;) {
        rtc_lockrank_report *r = NULL;
        if (rtc_lockrank_next_report(&r) != RTC_OK || !r) break;
        rtc_lockrank_report_free(r);
        n++;
    }
    return n;
}

static rtc_lockrank_report *next_report(void) {
    rtc_lockrank_report *r = (rtc_lockrank_report *)&r;
    CHECK_STATUS(rtc_lockrank_next_report(&r), RTC_OK);
    if (r == (rtc_lockrank_report *)&r) r = NULL;
    return r;
}

/* True if no report is pending (one that is, is freed). */
static int no_report(void) {
    rtc_lockrank_report *r = next_report();
    if (!r) return 1;
    fprintf(stderr, "unexpected report:\n%s", r->text);
    rtc_lockrank_report_free(r);
    return 0;
}

/* ---- basic ------------------------------------------------------------ */

static rtc_rwlock shared_l = RTC_RWLOCK_INIT;
static int readers_in, readers_saw_both;

static void *hold_read_together(void *arg) {
    (void)arg;
    if (rtc_rwlock_rdlock(&shared_l) != RTC_OK) return NULL;
    INC(readers_in);
    /* Both readers are inside at once: neither leaves before the other
     * came in (bounded: a lock that excluded readers fails, not hangs). */
    if (wait_for(&readers_in, 2, rtc_t_bound_ms(5000))) INC(readers_saw_both);
    rtc_rwlock_unlock(&shared_l);
    return NULL;
}

static void test_shared_readers(void) {
    pthread_t t[2];
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, hold_read_together, NULL);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    CHECK(LOAD(readers_in) == 2);
    CHECK(LOAD(readers_saw_both) == 2);
    /* Released: a writer gets in at once. */
    CHECK_STATUS(rtc_rwlock_trywrlock(&shared_l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(&shared_l), RTC_OK);
}

/* ---- reader bias ------------------------------------------------------ */

/* The word's reader-bias bit and reader count (src/lock/rwword.rs): private,
 * read here only to see which way a read went. */
#define RBIAS_BIT 8u
#define WORD_READERS(s) ((s) >> 4)

static rtc_rwlock bias_l = RTC_RWLOCK_INIT;
static int bias_reader_in, bias_reader_release, bias_writer_in;

static void *bias_hold_read(void *arg) {
    (void)arg;
    if (rtc_rwlock_rdlock(&bias_l) != RTC_OK) return NULL;
    INC(bias_reader_in);
    wait_for(&bias_reader_release, 1, rtc_t_bound_ms(5000));
    rtc_rwlock_unlock(&bias_l);
    return NULL;
}

static void *bias_writer(void *arg) {
    (void)arg;
    if (rtc_rwlock_wrlock(&bias_l) != RTC_OK) return NULL;
    INC(bias_writer_in);
    rtc_rwlock_unlock(&bias_l);
    return NULL;
}

static void *bias_read_and_exit(void *arg) {
    (void)arg;
    rtc_rwlock_rdlock(&bias_l); /* never unlocked: the thread ends holding it */
    return NULL;
}

enum bias_op { BIAS_TRYWR, BIAS_DESTROY, BIAS_UNLOCK, BIAS_INIT };
struct bias_call { enum bias_op op; int status; char message[4096]; };

static void *bias_other(void *arg) {
    struct bias_call *c = arg;
    switch (c->op) {
    case BIAS_TRYWR:
        c->status = rtc_rwlock_trywrlock(&bias_l);
        if (c->status == RTC_OK) rtc_rwlock_unlock(&bias_l);
        break;
    case BIAS_DESTROY: c->status = rtc_rwlock_destroy(&bias_l); break;
    case BIAS_UNLOCK: c->status = rtc_rwlock_unlock(&bias_l); break;
    case BIAS_INIT: c->status = rtc_rwlock_init(&bias_l, "bias_l", NULL); break;
    }
    snprintf(c->message, sizeof c->message, "%s", rtc_t_last_error());
    return NULL;
}

static struct bias_call bias_from_other_thread(enum bias_op op) {
    struct bias_call c = {op, -1, ""};
    pthread_t th;
    pthread_create(&th, NULL, bias_other, &c);
    pthread_join(th, NULL);
    return c;
}

/* Two readers that meet turn the bias on; a biased read is not counted in
 * the word (nor in `acquisitions`); it still excludes writers (a blocking
 * one waits, a try-write is busy and leaves the bias on), refuses destroy
 * and another thread's unlock; the writer clears the bias. */
/* Another thread and this one meet as readers of bias_l: the bias goes on. */
static void bias_readers_meet(void) {
    pthread_t r;
    STORE(bias_reader_in, 0);
    STORE(bias_reader_release, 0);
    pthread_create(&r, NULL, bias_hold_read, NULL);
    CHECK(wait_for(&bias_reader_in, 1, rtc_t_bound_ms(5000)));
    CHECK(!(LOAD(bias_l.state) & RBIAS_BIT));
    CHECK_STATUS(rtc_rwlock_rdlock(&bias_l), RTC_OK); /* joins: sets the bias */
    CHECK(LOAD(bias_l.state) & RBIAS_BIT);
    CHECK(WORD_READERS(LOAD(bias_l.state)) == 2);
    CHECK_STATUS(rtc_rwlock_unlock(&bias_l), RTC_OK);
    STORE(bias_reader_release, 1);
    pthread_join(r, NULL);
    CHECK(LOAD(bias_l.state) == RBIAS_BIT);
}

static void test_reader_bias(void) {
    pthread_t r, w;
    bias_readers_meet();

    uint64_t counted = LOAD(bias_l.acquisitions);
    CHECK_STATUS(rtc_rwlock_rdlock(&bias_l), RTC_OK); /* biased */
    CHECK(LOAD(bias_l.state) == RBIAS_BIT);
    CHECK(LOAD(bias_l.acquisitions) == counted);
    /* Held here, so refused again here, biased or not. */
    CHECK_STATUS(rtc_rwlock_rdlock(&bias_l), RTC_ERR_WOULD_DEADLOCK);

    struct bias_call c = bias_from_other_thread(BIAS_TRYWR);
    CHECK_STATUS(c.status, RTC_ERR_BUSY);
    CHECK(LOAD(bias_l.state) == RBIAS_BIT); /* given back with the bias */
    c = bias_from_other_thread(BIAS_DESTROY);
    CHECK_STATUS(c.status, RTC_ERR_LOCKED);
    CHECK_CONTAINS(c.message, "read-locked by 1 thread");
    c = bias_from_other_thread(BIAS_UNLOCK);
    CHECK_STATUS(c.status, RTC_ERR_NOT_OWNER);
    CHECK_CONTAINS(c.message, "read-locked by 1 other thread");

    pthread_create(&w, NULL, bias_writer, NULL);
    sleep_ms(50);
    CHECK(LOAD(bias_writer_in) == 0); /* waits for the biased reader */
    CHECK(!(LOAD(bias_l.state) & RBIAS_BIT)); /* revoked by the writer */
    CHECK_STATUS(rtc_rwlock_unlock(&bias_l), RTC_OK);
    pthread_join(w, NULL);
    CHECK(LOAD(bias_writer_in) == 1);
    CHECK(LOAD(bias_l.state) == 0);
    CHECK_STATUS(rtc_rwlock_destroy(&bias_l), RTC_OK);

    /* A thread that ends holding a biased read (misuse) leaves its hold
     * in the table; rtc_rwlock_init, during which nobody may hold the
     * lock, forgets it, so reused memory is a free lock. */
    CHECK_STATUS(rtc_rwlock_init(&bias_l, "bias_l", NULL), RTC_OK);
    bias_readers_meet();
    pthread_create(&r, NULL, bias_read_and_exit, NULL);
    pthread_join(r, NULL);
    CHECK(LOAD(bias_l.state) == RBIAS_BIT); /* the ghost's read was biased */
    c = bias_from_other_thread(BIAS_TRYWR);
    CHECK_STATUS(c.status, RTC_ERR_BUSY);
    CHECK_STATUS(rtc_rwlock_init(&bias_l, "bias_l", NULL), RTC_OK);
    c = bias_from_other_thread(BIAS_TRYWR);
    CHECK_STATUS(c.status, RTC_OK);

    /* Re-initialised by another thread while this one holds a biased read
     * (which init's contract forbids): the hold is gone, and its unlock is
     * refused rather than clearing a slot that may be another's by now. */
    bias_readers_meet();
    CHECK_STATUS(rtc_rwlock_rdlock(&bias_l), RTC_OK); /* biased */
    CHECK(LOAD(bias_l.state) == RBIAS_BIT);
    c = bias_from_other_thread(BIAS_INIT);
    CHECK_STATUS(c.status, RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(&bias_l), RTC_ERR_NOT_OWNER);
    expect_message("re-initialised while held");
    CHECK_STATUS(rtc_rwlock_destroy(&bias_l), RTC_OK);
}

static rtc_rwlock stress_l = RTC_RWLOCK_INIT_RANKED("rw_stress", "rwb_stress");
static long stress_counter;
static int stress_writers_in, stress_readers_in, stress_bad, stress_iters;
static long stress_reads;
static int stress_biased_seen;

#define RW_STRESS_MAX_READERS 70

static void *stress_writer(void *arg) {
    int use_try = *(int *)arg;
    for (int i = 0; i < stress_iters;) {
        int s;
        if (use_try && (i & 1)) {
            s = rtc_rwlock_trywrlock(&stress_l);
            if (s == RTC_ERR_BUSY) { sched_yield(); continue; }
        } else {
            s = (i & 2) ? RTC_RWLOCK_WRLOCK(&stress_l) : rtc_rwlock_wrlock(&stress_l);
        }
        if (s != RTC_OK) { INC(stress_bad); return NULL; }
        if (INC(stress_writers_in) != 1 || LOAD(stress_readers_in) != 0) INC(stress_bad);
        long v = stress_counter;
        if ((i & 63) == 0) sched_yield(); /* a longer critical section now and then */
        stress_counter = v + 1;
        DEC(stress_writers_in);
        if (rtc_rwlock_unlock(&stress_l) != RTC_OK) INC(stress_bad);
        i++;
    }
    return NULL;
}

static void *stress_reader(void *arg) {
    int use_try = *(int *)arg;
    for (int i = 0; i < stress_iters;) {
        int s;
        if (use_try && (i & 1)) {
            s = rtc_rwlock_tryrdlock(&stress_l);
            if (s == RTC_ERR_BUSY) { sched_yield(); continue; }
        } else {
            s = RTC_RWLOCK_RDLOCK(&stress_l);
        }
        if (s != RTC_OK) { INC(stress_bad); return NULL; }
        INC(stress_readers_in);
        if (LOAD(stress_writers_in) != 0) INC(stress_bad);
        if (LOAD(stress_l.state) & RBIAS_BIT) INC(stress_biased_seen);
        long a = stress_counter;
        long b = stress_counter;
        if (a != b) INC(stress_bad);
        __atomic_add_fetch(&stress_reads, 1, __ATOMIC_RELAXED);
        DEC(stress_readers_in);
        if (rtc_rwlock_unlock(&stress_l) != RTC_OK) INC(stress_bad);
        i++;
    }
    return NULL;
}

/* 2 writers (one also trying) and `readers` readers (every other one also
 * trying), `iters` acquisitions each, on stress_l. */
static void exclusion_stress(int readers, int iters) {
    static int plain = 0, tried = 1;
    pthread_t w[2], r[RW_STRESS_MAX_READERS];
    stress_iters = iters;
    STORE(stress_bad, 0);
    STORE(stress_biased_seen, 0);
    stress_counter = 0;
    __atomic_store_n(&stress_reads, 0, __ATOMIC_SEQ_CST);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_create(&w[0], NULL, stress_writer, &plain);
    pthread_create(&w[1], NULL, stress_writer, &tried);
    for (int i = 0; i < readers; i++) pthread_create(&r[i], NULL, stress_reader, (i & 1) ? &tried : &plain);
    for (int i = 0; i < 2; i++) pthread_join(w[i], NULL);
    for (int i = 0; i < readers; i++) pthread_join(r[i], NULL);
    CHECK(LOAD(stress_bad) == 0);
    CHECK(stress_counter == 2L * iters);
    CHECK(__atomic_load_n(&stress_reads, __ATOMIC_SEQ_CST) == (long)readers * iters);
    fprintf(stderr, "rwlock stress: 2 writers, %d readers x %d iterations in %ld ms (%d reads saw the bias)\n",
            readers, iters, rtc_t_ms_since(&t0), LOAD(stress_biased_seen));
}

static void test_exclusion_stress(void) {
    CHECK_STATUS(rtc_ranks_load("NONE < rwb_stress;\n", "rwb_stress.ranks"), RTC_OK);
    exclusion_stress(2, 200 * rtc_t_scale()); /* 20,000 per thread by default */
    /* More readers than the bias table has lines (64): threads share lines,
     * and readers whose ids are equal modulo 64 collide on one slot (the
     * later one counts itself in the word). The bias must have been on
     * (except under valgrind, scale 1, which runs one thread at a time:
     * readers may never meet there). */
    exclusion_stress(RW_STRESS_MAX_READERS, 20 * rtc_t_scale());
    if (rtc_t_scale() > 1) CHECK(LOAD(stress_biased_seen) > 0);
}

struct try_result { rtc_rwlock *l; int rd, wr, rd_unlock; };

static void *try_both(void *arg) {
    struct try_result *t = arg;
    t->rd = rtc_rwlock_tryrdlock(t->l);
    if (t->rd == RTC_OK) t->rd_unlock = rtc_rwlock_unlock(t->l);
    t->wr = RTC_RWLOCK_TRYWRLOCK(t->l);
    if (t->wr == RTC_OK) rtc_rwlock_unlock(t->l);
    return NULL;
}

static struct try_result try_from_other_thread(rtc_rwlock *l) {
    struct try_result t = {l, -1, -1, -1};
    pthread_t th;
    pthread_create(&th, NULL, try_both, &t);
    pthread_join(th, NULL);
    return t;
}

static void test_try(void) {
    rtc_rwlock l = RTC_RWLOCK_INIT;
    /* Free: both succeed. */
    struct try_result t = try_from_other_thread(&l);
    CHECK_STATUS(t.rd, RTC_OK);
    CHECK_STATUS(t.rd_unlock, RTC_OK);
    CHECK_STATUS(t.wr, RTC_OK);
    /* Write-locked here: both busy elsewhere. */
    CHECK_STATUS(rtc_rwlock_wrlock(&l), RTC_OK);
    t = try_from_other_thread(&l);
    CHECK_STATUS(t.rd, RTC_ERR_BUSY);
    CHECK_STATUS(t.wr, RTC_ERR_BUSY);
    CHECK_STATUS(rtc_rwlock_unlock(&l), RTC_OK);
    /* Read-locked here: a reader shares it, a writer is busy. */
    CHECK_STATUS(RTC_RWLOCK_TRYRDLOCK(&l), RTC_OK);
    t = try_from_other_thread(&l);
    CHECK_STATUS(t.rd, RTC_OK);
    CHECK_STATUS(t.rd_unlock, RTC_OK);
    CHECK_STATUS(t.wr, RTC_ERR_BUSY);
    CHECK_STATUS(rtc_rwlock_unlock(&l), RTC_OK);
    /* BUSY stores no last error. */
    CHECK_STATUS(rtc_rwlock_wrlock(&l), RTC_OK);
    rtc_last_error_clear();
    t = try_from_other_thread(&l);
    CHECK_STATUS(rtc_last_error_status(), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(&l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_destroy(&l), RTC_OK);
}

static rtc_rwlock static_ranked = RTC_RWLOCK_INIT_RANKED("rws_static", "rws_b");

static void test_initialisers(void) {
    CHECK_STATUS(rtc_ranks_load("NONE < rws_a;\nrws_a < rws_b;\n", "rws.ranks"), RTC_OK);
    /* Static, ranked: resolved on first lock. */
    CHECK_STATUS(rtc_rwlock_rdlock(&static_ranked), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(&static_ranked), RTC_OK);
    CHECK_STATUS(rtc_rwlock_wrlock(&static_ranked), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(&static_ranked), RTC_OK);
    /* Its name and rank appear in reports. */
    rtc_mutex a = RTC_MUTEX_INIT_RANKED("rws_A", "rws_a");
    unsigned long long v0 = rtc_t_violations();
    int l1;
    CHECK_STATUS(AT(l1, RTC_RWLOCK_RDLOCK(&static_ranked)), RTC_OK);
    CHECK_STATUS(RTC_MUTEX_LOCK(&a), RTC_OK);
    CHECK(rtc_t_violations() == v0 + 1);
    CHECK_CONTAINS(rtc_t_report(), "wants mutex 'rws_A' (rank rws_a) at");
    CHECK_CONTAINS(rtc_t_report(), "while holding rwlock 'rws_static' (rank rws_b) read-locked at");
    CHECK_CONTAINS(rtc_t_report(), site(l1));
    CHECK_CONTAINS(rtc_t_report(), "forbidden by rws.ranks:2: rws_a < rws_b");
    CHECK_STATUS(rtc_mutex_unlock(&a), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(&static_ranked), RTC_OK);
    /* RTC_RWLOCK_INIT and all zeroes: unranked, usable at once. */
    rtc_rwlock init = RTC_RWLOCK_INIT, zero;
    memset(&zero, 0, sizeof zero);
    CHECK_STATUS(rtc_rwlock_rdlock(&init), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(&init), RTC_OK);
    CHECK_STATUS(rtc_rwlock_wrlock(&zero), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(&zero), RTC_OK);
    CHECK_STATUS(rtc_rwlock_rdlock(&zero), RTC_OK);
    /* An unranked lock is a leaf: nothing may be taken under it. */
    v0 = rtc_t_violations();
    CHECK_STATUS(rtc_rwlock_rdlock(&init), RTC_OK);
    CHECK(rtc_t_violations() == v0 + 1);
    CHECK_CONTAINS(rtc_t_report(), "rwlock '(unnamed)' (unranked) read-locked at");
    CHECK_CONTAINS(rtc_t_report(), "unranked locks are leaves");
    CHECK_STATUS(rtc_rwlock_unlock(&init), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(&zero), RTC_OK);
    /* Run-time initialisation. */
    rtc_rwlock rt;
    memset(&rt, 0x77, sizeof rt);
    CHECK_STATUS(rtc_rwlock_init(&rt, "rws_rt", "rws_a"), RTC_OK);
    CHECK_STATUS(rtc_rwlock_wrlock(&rt), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(&rt), RTC_OK);
    CHECK_STATUS(rtc_rwlock_destroy(&rt), RTC_OK);
    CHECK(get_mode() == RTC_LOCKRANK_REPORT);
}

/* ---- writer preference ------------------------------------------------ */

static rtc_rwlock pref_l = RTC_RWLOCK_INIT;
static int pref_r1_in, pref_r1_release, pref_w_in, pref_w_done, pref_r2_start, pref_r2_in,
    pref_r2_after_writer;

static void *pref_reader1(void *arg) {
    (void)arg;
    if (rtc_rwlock_rdlock(&pref_l) != RTC_OK) return NULL;
    STORE(pref_r1_in, 1);
    wait_for(&pref_r1_release, 1, rtc_t_bound_ms(10000));
    rtc_rwlock_unlock(&pref_l);
    return NULL;
}

static void *pref_writer(void *arg) {
    (void)arg;
    if (rtc_rwlock_wrlock(&pref_l) != RTC_OK) return NULL;
    STORE(pref_w_in, 1);
    sleep_ms(5);
    STORE(pref_w_done, 1);
    rtc_rwlock_unlock(&pref_l);
    return NULL;
}

static void *pref_reader2(void *arg) {
    (void)arg;
    STORE(pref_r2_start, 1);
    if (rtc_rwlock_rdlock(&pref_l) != RTC_OK) return NULL;
    STORE(pref_r2_after_writer, LOAD(pref_w_done));
    STORE(pref_r2_in, 1);
    rtc_rwlock_unlock(&pref_l);
    return NULL;
}

static void test_writer_preference(void) {
    pthread_t r1, w, r2;
    pthread_create(&r1, NULL, pref_reader1, NULL);
    CHECK(wait_for(&pref_r1_in, 1, rtc_t_bound_ms(5000)));
    pthread_create(&w, NULL, pref_writer, NULL);
    /* The writer waits for the reader; let it park. */
    sleep_ms(rtc_t_bound_ms(50));
    CHECK(LOAD(pref_w_in) == 0);
    /* A waiting writer stops new readers: a try-read is busy (no message)... */
    rtc_last_error_clear();
    int s = rtc_rwlock_tryrdlock(&pref_l);
    CHECK_STATUS(s, RTC_ERR_BUSY);
    if (s == RTC_OK) rtc_rwlock_unlock(&pref_l);
    CHECK_STATUS(rtc_last_error_status(), RTC_OK);
    /* ...and a blocking reader waits for the writer's turn. */
    pthread_create(&r2, NULL, pref_reader2, NULL);
    CHECK(wait_for(&pref_r2_start, 1, rtc_t_bound_ms(5000)));
    sleep_ms(rtc_t_bound_ms(50));
    CHECK(LOAD(pref_r2_in) == 0);
    /* Still only the first reader holds it: a write attempt is busy too. */
    CHECK_STATUS(rtc_rwlock_trywrlock(&pref_l), RTC_ERR_BUSY);
    STORE(pref_r1_release, 1);
    pthread_join(r1, NULL);
    pthread_join(w, NULL);
    pthread_join(r2, NULL);
    CHECK(LOAD(pref_w_in) == 1);
    CHECK(LOAD(pref_r2_in) == 1);
    CHECK(LOAD(pref_r2_after_writer) == 1); /* the writer went first */
    CHECK_STATUS(rtc_rwlock_trywrlock(&pref_l), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(&pref_l), RTC_OK);
}

/* ---- lock order through read/write locks ------------------------------ */

static void test_two_writers_wrong_order(void) {
    CHECK_STATUS(rtc_ranks_load("NONE < rwo_a;\nrwo_a < rwo_b;\n", "rwo.ranks"), RTC_OK);
    rtc_rwlock a, b;
    CHECK_STATUS(rtc_rwlock_init(&a, "rwo_A", "rwo_a"), RTC_OK);
    CHECK_STATUS(rtc_rwlock_init(&b, "rwo_B", "rwo_b"), RTC_OK);
    unsigned long long v0 = rtc_t_violations();
    /* The right order: nothing to report. */
    CHECK_STATUS(RTC_RWLOCK_WRLOCK(&a), RTC_OK);
    CHECK_STATUS(RTC_RWLOCK_WRLOCK(&b), RTC_OK);
    rtc_rwlock_unlock(&b); rtc_rwlock_unlock(&a);
    CHECK(rtc_t_violations() == v0);
    int lb, la;
    CHECK_STATUS(AT(lb, RTC_RWLOCK_WRLOCK(&b)), RTC_OK);
    CHECK_STATUS(AT(la, RTC_RWLOCK_WRLOCK(&a)), RTC_OK); /* report mode: reported, then taken */
    CHECK(rtc_t_violations() == v0 + 1);
    const char *r = rtc_t_report();
    CHECK_CONTAINS(r, "rtcore: lock order violation (lock-rank mode report)");
    char who[64];
    snprintf(who, sizeof who, "thread %llu 'rwlock-main' (tid ", (unsigned long long)my_id());
    CHECK_CONTAINS(r, who);
    CHECK_CONTAINS(r, "wants rwlock 'rwo_A' (rank rwo_a) at");
    CHECK_CONTAINS(r, site(la));
    CHECK_CONTAINS(r, "while holding rwlock 'rwo_B' (rank rwo_b) write-locked at");
    CHECK_CONTAINS(r, site(lb));
    CHECK_CONTAINS(r, "forbidden by rwo.ranks:2: rwo_a < rwo_b");
    CHECK(strstr(r, "for reading") == NULL); /* a write lock is wanted */
    CHECK_STATUS(rtc_rwlock_unlock(&a), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(&b), RTC_OK);
    /* Read-then-write of one lock: refused at once, not an order report. */
    v0 = rtc_t_violations();
    int lr, lw;
    CHECK_STATUS(AT(lr, RTC_RWLOCK_RDLOCK(&a)), RTC_OK);
    CHECK_STATUS(AT(lw, RTC_RWLOCK_WRLOCK(&a)), RTC_ERR_WOULD_DEADLOCK);
    expect_message("write lock of rwlock 'rwo_A' (rank rwo_a) at");
    expect_message(site(lw));
    expect_message("which already holds it for reading (locked at");
    expect_message(site(lr));
    CHECK(rtc_t_violations() == v0);
    /* Read-after-read (the recursive read) too. */
    CHECK_STATUS(RTC_RWLOCK_RDLOCK(&a), RTC_ERR_WOULD_DEADLOCK);
    CHECK(rtc_t_violations() == v0);
    CHECK_STATUS(rtc_rwlock_unlock(&a), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(&a), RTC_ERR_NOT_OWNER); /* the refusals took nothing */
    CHECK_STATUS(rtc_rwlock_destroy(&a), RTC_OK);
    CHECK_STATUS(rtc_rwlock_destroy(&b), RTC_OK);
}

/* Thread 1 read-locks A then locks mutex B; thread 2 locks B then
 * read-locks A: the second order is the inversion (run one after the
 * other, so it does not deadlock). */
static rtc_rwlock inv_a;
static rtc_mutex inv_b;
struct inv_run { const char *name; int b_first; int l1, l2; int s1, s2; };

static void *inv_thread(void *arg) {
    struct inv_run *p = arg;
    pthread_setname_np(pthread_self(), p->name);
    if (p->b_first) {
        p->s1 = AT(p->l1, RTC_MUTEX_LOCK(&inv_b));
        p->s2 = AT(p->l2, RTC_RWLOCK_RDLOCK(&inv_a));
    } else {
        p->s1 = AT(p->l1, RTC_RWLOCK_RDLOCK(&inv_a));
        p->s2 = AT(p->l2, RTC_MUTEX_LOCK(&inv_b));
    }
    rtc_mutex_unlock(&inv_b);
    rtc_rwlock_unlock(&inv_a);
    return NULL;
}

static void test_read_inversion_two_threads(void) {
    CHECK_STATUS(rtc_ranks_load("NONE < rwi_a;\nrwi_a < rwi_b;\n", "rwi.ranks"), RTC_OK);
    CHECK_STATUS(rtc_rwlock_init(&inv_a, "rwi_A", "rwi_a"), RTC_OK);
    CHECK_STATUS(rtc_mutex_init(&inv_b, "rwi_B", "rwi_b"), RTC_OK);
    unsigned long long v0 = rtc_t_violations();
    struct inv_run p1 = {"rwinv-t1", 0, 0, 0, -1, -1}, p2 = {"rwinv-t2", 1, 0, 0, -1, -1};
    pthread_t t;
    pthread_create(&t, NULL, inv_thread, &p1);
    pthread_join(t, NULL);
    CHECK_STATUS(p1.s1, RTC_OK);
    CHECK_STATUS(p1.s2, RTC_OK);
    CHECK(rtc_t_violations() == v0);
    pthread_create(&t, NULL, inv_thread, &p2);
    pthread_join(t, NULL);
    CHECK_STATUS(p2.s1, RTC_OK);
    CHECK_STATUS(p2.s2, RTC_OK);
    CHECK(rtc_t_violations() == v0 + 1);
    const char *r = rtc_t_report();
    CHECK_CONTAINS(r, "'rwinv-t2'");
    CHECK_CONTAINS(r, "wants rwlock 'rwi_A' (rank rwi_a) for reading at");
    CHECK_CONTAINS(r, site(p2.l2));
    CHECK_CONTAINS(r, "while holding mutex 'rwi_B' (rank rwi_b) locked at");
    CHECK_CONTAINS(r, site(p2.l1));
    CHECK_CONTAINS(r, "forbidden by rwi.ranks:2: rwi_a < rwi_b");
    CHECK(strstr(r, "rwinv-t1") == NULL);
}

/* A held read lock is "read-locked" in the report; a try-read-locked one
 * "try-locked", and a write-locked one "write-locked". */
static void test_report_read_locked(void) {
    CHECK_STATUS(rtc_ranks_load("NONE < rwr_a;\nrwr_a < rwr_b;\nrwr_b < rwr_c;\nrwr_c < rwr_d;\n", "rwr.ranks"), RTC_OK);
    rtc_rwlock c = RTC_RWLOCK_INIT_RANKED("rwr_C", "rwr_b");
    rtc_rwlock t = RTC_RWLOCK_INIT_RANKED("rwr_T", "rwr_c");
    rtc_rwlock w = RTC_RWLOCK_INIT_RANKED("rwr_W", "rwr_d");
    rtc_mutex d = RTC_MUTEX_INIT_RANKED("rwr_D", "rwr_a");
    unsigned long long v0 = rtc_t_violations();
    int lc, lt, lw, ld;
    CHECK_STATUS(AT(lc, RTC_RWLOCK_RDLOCK(&c)), RTC_OK);
    CHECK_STATUS(AT(lt, RTC_RWLOCK_TRYRDLOCK(&t)), RTC_OK);
    CHECK_STATUS(AT(lw, RTC_RWLOCK_WRLOCK(&w)), RTC_OK);
    CHECK(rtc_t_violations() == v0);
    CHECK_STATUS(AT(ld, RTC_MUTEX_LOCK(&d)), RTC_OK);
    CHECK(rtc_t_violations() == v0 + 1);
    const char *r = rtc_t_report();
    char want[768];
    snprintf(want, sizeof want, "while holding rwlock 'rwr_C' (rank rwr_b) read-locked at %s", site(lc));
    CHECK_CONTAINS(r, want);
    snprintf(want, sizeof want, "while holding rwlock 'rwr_T' (rank rwr_c) try-locked at %s", site(lt));
    CHECK_CONTAINS(r, want);
    snprintf(want, sizeof want, "while holding rwlock 'rwr_W' (rank rwr_d) write-locked at %s", site(lw));
    CHECK_CONTAINS(r, want);
    snprintf(want, sizeof want, "wants mutex 'rwr_D' (rank rwr_a) at %s", site(ld));
    CHECK_CONTAINS(r, want);
    rtc_mutex_unlock(&d);
    rtc_rwlock_unlock(&c);
    rtc_rwlock_unlock(&w);
    rtc_rwlock_unlock(&t);
}

/* ---- keyed nesting ---------------------------------------------------- */

static rtc_mutex kn_rows[4];
static rtc_mutex kn_plain[2]; /* address order: kn_plain[0] < kn_plain[1] */

static void test_keyed_nesting(void) {
    CHECK_STATUS(rtc_ranks_load("NONE < kn_row;\nkn_row < kn_after;\nnestable: kn_row;\n", "kn.ranks"), RTC_OK);
    for (int i = 0; i < 4; i++) {
        char name[24];
        snprintf(name, sizeof name, "row%d", i);
        CHECK_STATUS(rtc_mutex_init(&kn_rows[i], name, "kn_row"), RTC_OK);
    }
    for (int i = 0; i < 2; i++) {
        char name[24];
        snprintf(name, sizeof name, "plain%d", i);
        CHECK_STATUS(rtc_mutex_init(&kn_plain[i], name, "kn_row"), RTC_OK);
    }
    CHECK(drain_queue() == 0);
    set_mode(RTC_LOCKRANK_QUEUE);
    unsigned long long v0 = rtc_t_violations();

    /* Increasing keys (whatever the addresses): fine. */
    CHECK_STATUS(rtc_mutex_lock_keyed(&kn_rows[2], 10), RTC_OK);
    CHECK_STATUS(RTC_MUTEX_LOCK_KEYED(&kn_rows[0], 20), RTC_OK);
    CHECK_STATUS(rtc_mutex_lock_keyed_at(&kn_rows[1], 30, __FILE__, __LINE__), RTC_OK);
    /* A lock of a rank after it may follow. */
    rtc_mutex after = RTC_MUTEX_INIT_RANKED("kn_after_lock", "kn_after");
    CHECK_STATUS(rtc_mutex_lock(&after), RTC_OK);
    CHECK(rtc_t_violations() == v0);
    CHECK(no_report());
    rtc_mutex_unlock(&after);
    /* Released in any order. */
    rtc_mutex_unlock(&kn_rows[0]); rtc_mutex_unlock(&kn_rows[2]); rtc_mutex_unlock(&kn_rows[1]);

    /* Out of order: 20, 30, then 25. */
    int l0, l1, l2;
    CHECK_STATUS(AT(l0, RTC_MUTEX_LOCK_KEYED(&kn_rows[0], 20)), RTC_OK);
    CHECK_STATUS(AT(l1, RTC_MUTEX_LOCK_KEYED(&kn_rows[1], 30)), RTC_OK);
    CHECK_STATUS(AT(l2, RTC_MUTEX_LOCK_KEYED(&kn_rows[2], 25)), RTC_OK); /* reported, then taken */
    CHECK(rtc_t_violations() == v0 + 1);
    rtc_lockrank_report *r = next_report();
    CHECK(r != NULL);
    if (r) {
        CHECK(r->reason == RTC_LOCKRANK_REASON_KEY_ORDER);
        CHECK(r->wanted.key == 25);
        CHECK(r->wanted.addr == (size_t)&kn_rows[2]);
        CHECK(strcmp(r->wanted.name, "row2") == 0);
        CHECK(strcmp(r->wanted.rank, "kn_row") == 0);
        CHECK(r->wanted.kind == RTC_LOCK_KIND_MUTEX);
        CHECK(r->wanted.mode == RTC_LOCK_EXCLUSIVE);
        CHECK(r->wanted.flags == 0);
        CHECK(ends_with(r->wanted.file, "test_rwlock.c") && r->wanted.line == (uint32_t)l2);
        CHECK(r->held_count == 2);
        if (r->held_count == 2) {
            CHECK(r->held[0].key == 20 && r->held[1].key == 30);
            CHECK(strcmp(r->held[0].name, "row0") == 0 && strcmp(r->held[1].name, "row1") == 0);
            CHECK(r->held[0].addr == (size_t)&kn_rows[0] && r->held[1].addr == (size_t)&kn_rows[1]);
            CHECK((r->held[0].flags & RTC_LOCKRANK_HELD_CONFLICTS) == 0); /* 20 < 25 */
            CHECK((r->held[1].flags & RTC_LOCKRANK_HELD_CONFLICTS) != 0); /* 30 >= 25 */
            CHECK(r->held[0].line == (uint32_t)l0 && r->held[1].line == (uint32_t)l1);
        }
        CHECK_CONTAINS(r->text, "rtcore: lock key order violation (lock-rank mode queue)");
        CHECK_CONTAINS(r->text, "wants mutex 'row2' (rank kn_row, key 0x19)");
        CHECK_CONTAINS(r->text, "while holding mutex 'row1' (rank kn_row, key 0x1e) locked at");
        CHECK_CONTAINS(r->text, "rank kn_row is nestable: its locks must be taken in increasing key order");
        CHECK_CONTAINS(r->text, "also holding mutex 'row0' (rank kn_row) locked at");
        rtc_lockrank_report_free(r);
    }
    /* An equal key is out of order too (strictly increasing). */
    CHECK_STATUS(rtc_mutex_lock_keyed(&kn_rows[3], 30), RTC_OK);
    CHECK(rtc_t_violations() == v0 + 2);
    r = next_report();
    CHECK(r != NULL);
    if (r) {
        CHECK(r->reason == RTC_LOCKRANK_REASON_KEY_ORDER);
        CHECK(r->wanted.key == 30);
        CHECK(r->held_count == 3);
        if (r->held_count == 3) {
            /* Only the held key 30 is not below the wanted 30 (20 and 25
             * are). */
            CHECK((r->held[0].flags & RTC_LOCKRANK_HELD_CONFLICTS) == 0);
            CHECK((r->held[1].flags & RTC_LOCKRANK_HELD_CONFLICTS) != 0);
            CHECK((r->held[2].flags & RTC_LOCKRANK_HELD_CONFLICTS) == 0);
            CHECK(r->held[2].key == 25);
        }
        rtc_lockrank_report_free(r);
    }
    for (int i = 0; i < 4; i++) CHECK_STATUS(rtc_mutex_unlock(&kn_rows[i]), RTC_OK);
    CHECK(no_report());

    /* The default key is the address: increasing addresses are fine... */
    v0 = rtc_t_violations();
    CHECK_STATUS(rtc_mutex_lock(&kn_plain[0]), RTC_OK);
    CHECK_STATUS(rtc_mutex_lock(&kn_plain[1]), RTC_OK);
    rtc_mutex_unlock(&kn_plain[1]); rtc_mutex_unlock(&kn_plain[0]);
    CHECK(rtc_t_violations() == v0);
    CHECK(no_report());
    /* ...decreasing ones are reported. */
    CHECK_STATUS(rtc_mutex_lock(&kn_plain[1]), RTC_OK);
    CHECK_STATUS(rtc_mutex_lock(&kn_plain[0]), RTC_OK);
    CHECK(rtc_t_violations() == v0 + 1);
    r = next_report();
    CHECK(r != NULL);
    if (r) {
        CHECK(r->reason == RTC_LOCKRANK_REASON_KEY_ORDER);
        CHECK(r->wanted.key == (uint64_t)(uintptr_t)&kn_plain[0]);
        CHECK(r->held_count == 1 && r->held[0].key == (uint64_t)(uintptr_t)&kn_plain[1]);
        CHECK(r->held_count == 1 && (r->held[0].flags & RTC_LOCKRANK_HELD_CONFLICTS));
        CHECK(strcmp(r->wanted.file, "") == 0 && r->wanted.line == 0); /* no site given */
        rtc_lockrank_report_free(r);
    }
    rtc_mutex_unlock(&kn_plain[0]); rtc_mutex_unlock(&kn_plain[1]);

    /* Read/write locks of a nestable rank, keyed: a read hold counts. */
    rtc_rwlock rw1 = RTC_RWLOCK_INIT_RANKED("rwrow1", "kn_row"), rw2 = RTC_RWLOCK_INIT_RANKED("rwrow2", "kn_row");
    v0 = rtc_t_violations();
    CHECK_STATUS(rtc_rwlock_rdlock_keyed_at(&rw1, 100, __FILE__, __LINE__), RTC_OK);
    CHECK_STATUS(rtc_rwlock_wrlock_keyed_at(&rw2, 200, __FILE__, __LINE__), RTC_OK);
    rtc_rwlock_unlock(&rw2); rtc_rwlock_unlock(&rw1);
    CHECK(rtc_t_violations() == v0);
    CHECK_STATUS(rtc_rwlock_rdlock_keyed_at(&rw1, 100, __FILE__, __LINE__), RTC_OK);
    CHECK_STATUS(rtc_rwlock_wrlock_keyed_at(&rw2, 50, __FILE__, __LINE__), RTC_OK);
    CHECK(rtc_t_violations() == v0 + 1);
    r = next_report();
    CHECK(r != NULL);
    if (r) {
        CHECK(r->reason == RTC_LOCKRANK_REASON_KEY_ORDER);
        CHECK(r->wanted.key == 50 && r->wanted.kind == RTC_LOCK_KIND_RWLOCK && r->wanted.mode == RTC_LOCK_EXCLUSIVE);
        CHECK(r->held_count == 1);
        if (r->held_count == 1) {
            CHECK(r->held[0].key == 100);
            CHECK(r->held[0].kind == RTC_LOCK_KIND_RWLOCK && r->held[0].mode == RTC_LOCK_SHARED);
            CHECK(r->held[0].flags == RTC_LOCKRANK_HELD_CONFLICTS);
        }
        CHECK_CONTAINS(r->text, "while holding rwlock 'rwrow1' (rank kn_row, key 0x64) read-locked at");
        rtc_lockrank_report_free(r);
    }
    rtc_rwlock_unlock(&rw2); rtc_rwlock_unlock(&rw1);
    /* A read lock wanted out of key order. */
    int lrw;
    CHECK_STATUS(rtc_rwlock_wrlock_keyed_at(&rw2, 200, __FILE__, __LINE__), RTC_OK);
    CHECK_STATUS(AT(lrw, rtc_rwlock_rdlock_keyed_at(&rw1, 100, __FILE__, __LINE__)), RTC_OK);
    r = next_report();
    CHECK(r != NULL);
    if (r) {
        CHECK(r->reason == RTC_LOCKRANK_REASON_KEY_ORDER);
        CHECK(r->wanted.key == 100 && r->wanted.mode == RTC_LOCK_SHARED && r->wanted.line == (uint32_t)lrw);
        CHECK(r->held_count == 1 && r->held[0].mode == RTC_LOCK_EXCLUSIVE && r->held[0].key == 200);
        CHECK_CONTAINS(r->text, "wants rwlock 'rwrow1' (rank kn_row, key 0x64) for reading at");
        CHECK_CONTAINS(r->text, "while holding rwlock 'rwrow2' (rank kn_row, key 0xc8) write-locked at");
        rtc_lockrank_report_free(r);
    }
    rtc_rwlock_unlock(&rw1); rtc_rwlock_unlock(&rw2);

    /* A rank not declared nestable: a second lock of it is an order
     * violation, whatever the keys. */
    CHECK_STATUS(rtc_ranks_load("NONE < kn_flat;\n", "kn_flat.ranks"), RTC_OK);
    rtc_mutex f1 = RTC_MUTEX_INIT_RANKED("flat1", "kn_flat"), f2 = RTC_MUTEX_INIT_RANKED("flat2", "kn_flat");
    CHECK_STATUS(rtc_mutex_lock_keyed(&f1, 1), RTC_OK);
    CHECK_STATUS(rtc_mutex_lock_keyed(&f2, 2), RTC_OK);
    r = next_report();
    CHECK(r != NULL);
    if (r) {
        CHECK(r->reason == RTC_LOCKRANK_REASON_ORDER);
        CHECK_CONTAINS(r->text, "does not nest with itself");
        rtc_lockrank_report_free(r);
    }
    rtc_mutex_unlock(&f2); rtc_mutex_unlock(&f1);
    CHECK(no_report());
    set_mode(RTC_LOCKRANK_REPORT);
}

/* ---- callback mode ---------------------------------------------------- */

#define CB_MAX_HELD 8
struct cb_lock { size_t addr; char name[32], rank[32], file[512]; uint32_t kind, mode, line, flags; uint64_t key; };
struct cb_state {
    int calls;
    void *user_seen;
    pthread_t thread;
    uint64_t thread_id;
    char thread_name[32];
    uint32_t reason;
    struct cb_lock wanted;
    struct cb_lock held[CB_MAX_HELD];
    size_t held_count;
    char text[2048];
    /* What the callback does besides recording. */
    int take_unranked, take_ranked, nested_violation, call_rtcore;
    int rtcore_status[5];
    int queued_seen;
    rtc_mutex *ranked, *nested;
    int inner_status[3];
    int *signal_flag; /* set while inside the callback (the contended case) */
};

static rtc_mutex cb_unranked = RTC_MUTEX_INIT;

static void copy_lock(struct cb_lock *d, const rtc_lockrank_lock *s) {
    d->addr = s->addr;
    snprintf(d->name, sizeof d->name, "%s", s->name ? s->name : "(null)");
    snprintf(d->rank, sizeof d->rank, "%s", s->rank ? s->rank : "(null)");
    snprintf(d->file, sizeof d->file, "%s", s->file ? s->file : "(null)");
    d->kind = s->kind; d->mode = s->mode; d->line = s->line; d->flags = s->flags; d->key = s->key;
}

static void on_violation(const rtc_lockrank_report *r, void *user) {
    struct cb_state *s = user;
    s->calls++;
    s->user_seen = user;
    s->thread = pthread_self();
    s->thread_id = r->thread_id;
    snprintf(s->thread_name, sizeof s->thread_name, "%s", r->thread_name ? r->thread_name : "(null)");
    s->reason = r->reason;
    copy_lock(&s->wanted, &r->wanted);
    s->held_count = r->held_count;
    for (size_t i = 0; i < r->held_count && i < CB_MAX_HELD; i++) copy_lock(&s->held[i], &r->held[i]);
    snprintf(s->text, sizeof s->text, "%s", r->text ? r->text : "");
    /* The callback may take rtcore locks itself. */
    if (s->take_unranked) {
        s->inner_status[0] = rtc_mutex_lock(&cb_unranked);
        if (s->inner_status[0] == RTC_OK) rtc_mutex_unlock(&cb_unranked);
    }
    if (s->take_ranked) {
        s->inner_status[1] = rtc_mutex_lock(s->ranked);
        if (s->inner_status[1] == RTC_OK) rtc_mutex_unlock(s->ranked);
    }
    if (s->nested_violation) {
        /* A violation made here is printed, not passed back to us. */
        s->inner_status[2] = RTC_MUTEX_LOCK(s->nested);
        if (s->inner_status[2] == RTC_OK) rtc_mutex_unlock(s->nested);
    }
    if (s->call_rtcore) {
        /* No inner lock is held: the report machinery and the rank table
         * answer from inside the callback. */
        uint64_t n = 0;
        char buf[64];
        rtc_lockrank_report *q = (rtc_lockrank_report *)&q;
        uint32_t id = 0;
        s->rtcore_status[0] = rtc_lockrank_violations(&n);
        s->rtcore_status[1] = rtc_lockrank_last_report(buf, sizeof buf, NULL);
        s->rtcore_status[2] = rtc_lockrank_next_report(&q);
        s->queued_seen = q != NULL && q != (rtc_lockrank_report *)&q;
        if (s->queued_seen) rtc_lockrank_report_free(q);
        s->rtcore_status[3] = rtc_ranks_load("NONE < cbk_loaded_in_callback;\n", "cbk_in_cb.ranks");
        s->rtcore_status[4] = rtc_rank_lookup("cbk_a", &id);
    }
    if (s->signal_flag) STORE(*s->signal_flag, 1);
}

static void check_callback_stack(struct cb_state *s, int lm, int lr, int lw, const char *tname) {
    CHECK(s->reason == RTC_LOCKRANK_REASON_ORDER);
    CHECK(strcmp(s->thread_name, tname) == 0);
    /* wanted: cbk_B for writing */
    CHECK(strcmp(s->wanted.name, "cbk_B") == 0 && strcmp(s->wanted.rank, "cbk_b") == 0);
    CHECK(s->wanted.kind == RTC_LOCK_KIND_RWLOCK && s->wanted.mode == RTC_LOCK_EXCLUSIVE);
    CHECK(s->wanted.flags == 0);
    CHECK(ends_with(s->wanted.file, "test_rwlock.c") && s->wanted.line == (uint32_t)lw);
    CHECK(s->held_count == 2);
    if (s->held_count != 2) return;
    /* held[0]: mutex cbk_M (rank cbk_a), locked: no conflict */
    CHECK(strcmp(s->held[0].name, "cbk_M") == 0 && strcmp(s->held[0].rank, "cbk_a") == 0);
    CHECK(s->held[0].kind == RTC_LOCK_KIND_MUTEX && s->held[0].mode == RTC_LOCK_EXCLUSIVE);
    CHECK(s->held[0].flags == 0);
    CHECK(ends_with(s->held[0].file, "test_rwlock.c") && s->held[0].line == (uint32_t)lm);
    /* held[1]: rwlock cbk_C (rank cbk_c), read-locked: the conflict */
    CHECK(strcmp(s->held[1].name, "cbk_C") == 0 && strcmp(s->held[1].rank, "cbk_c") == 0);
    CHECK(s->held[1].kind == RTC_LOCK_KIND_RWLOCK && s->held[1].mode == RTC_LOCK_SHARED);
    CHECK(s->held[1].flags == RTC_LOCKRANK_HELD_CONFLICTS);
    CHECK(ends_with(s->held[1].file, "test_rwlock.c") && s->held[1].line == (uint32_t)lr);
    CHECK(strlen(s->text) > 0);
    CHECK_CONTAINS(s->text, "(lock-rank mode callback)");
    CHECK_CONTAINS(s->text, "wants rwlock 'cbk_B' (rank cbk_b) at");
    CHECK_CONTAINS(s->text, "while holding rwlock 'cbk_C' (rank cbk_c) read-locked at");
    CHECK_CONTAINS(s->text, "also holding mutex 'cbk_M' (rank cbk_a) locked at");
}

static rtc_mutex cbk_m;
static rtc_rwlock cbk_b, cbk_c;

/* M (a), then C (c) for reading, then B (b) for writing: B may not follow C. */
struct cb_run { const char *name; int lm, lr, lw; int s; uint64_t id; pthread_t self; };
static void *cb_violate(void *arg) {
    struct cb_run *p = arg;
    if (p->name) pthread_setname_np(pthread_self(), p->name);
    p->self = pthread_self();
    rtc_thread_id(&p->id);
    AT(p->lm, RTC_MUTEX_LOCK(&cbk_m));
    AT(p->lr, RTC_RWLOCK_RDLOCK(&cbk_c));
    p->s = AT(p->lw, RTC_RWLOCK_WRLOCK(&cbk_b));
    rtc_rwlock_unlock(&cbk_b);
    rtc_rwlock_unlock(&cbk_c);
    rtc_mutex_unlock(&cbk_m);
    return NULL;
}

/* Holds cbk_b for writing until the callback runs (bounded). */
static int cb_holder_in, cb_in_callback, cb_holder_timed_out;
static void *cb_holder(void *arg) {
    (void)arg;
    rtc_rwlock_wrlock(&cbk_b);
    STORE(cb_holder_in, 1);
    if (!wait_for(&cb_in_callback, 1, rtc_t_bound_ms(5000))) STORE(cb_holder_timed_out, 1);
    rtc_rwlock_unlock(&cbk_b);
    return NULL;
}

static void test_callback_mode(void) {
    CHECK_STATUS(rtc_ranks_load("NONE < cbk_a;\ncbk_a < cbk_b;\ncbk_b < cbk_c;\ncbk_c < cbk_inner;\n", "cbk.ranks"),
                 RTC_OK);
    CHECK_STATUS(rtc_mutex_init(&cbk_m, "cbk_M", "cbk_a"), RTC_OK);
    CHECK_STATUS(rtc_rwlock_init(&cbk_b, "cbk_B", "cbk_b"), RTC_OK);
    CHECK_STATUS(rtc_rwlock_init(&cbk_c, "cbk_C", "cbk_c"), RTC_OK);
    rtc_mutex inner = RTC_MUTEX_INIT_RANKED("cbk_inner_lock", "cbk_inner");
    rtc_mutex nested = RTC_MUTEX_INIT_RANKED("cbk_nested", "cbk_a");

    static struct cb_state st;
    memset(&st, 0, sizeof st);
    CHECK_STATUS(rtc_lockrank_set_callback(on_violation, &st), RTC_OK);
    CHECK(get_mode() == RTC_LOCKRANK_CALLBACK);

    /* 1. On this thread: the report, the whole held stack, user passed
     *    through; the callback takes an unranked and a ranked mutex. */
    st.take_unranked = 1;
    st.take_ranked = 1;
    st.call_rtcore = 1;
    for (int i = 0; i < 5; i++) st.rtcore_status[i] = -1;
    st.ranked = &inner;
    st.inner_status[0] = st.inner_status[1] = -1;
    unsigned long long v0 = rtc_t_violations();
    struct cb_run me = {NULL, 0, 0, 0, -1, 0, pthread_self()};
    cb_violate(&me);
    CHECK_STATUS(me.s, RTC_OK); /* the lock is still taken, as in report mode */
    CHECK(st.calls == 1);
    CHECK(st.user_seen == &st);
    CHECK(pthread_equal(st.thread, pthread_self()));
    CHECK(st.thread_id == my_id());
    check_callback_stack(&st, me.lm, me.lr, me.lw, "rwlock-main");
    CHECK_STATUS(st.inner_status[0], RTC_OK);
    CHECK_STATUS(st.inner_status[1], RTC_OK);
    CHECK(rtc_t_violations() == v0 + 1); /* the callback's own locks were in order */
    for (int i = 0; i < 5; i++) CHECK_STATUS(st.rtcore_status[i], RTC_OK);
    CHECK(st.queued_seen == 0); /* callback mode queues nothing */
    uint32_t cb_rank = 0;
    CHECK_STATUS(rtc_rank_lookup("cbk_loaded_in_callback", &cb_rank), RTC_OK);

    /* 2. On another thread: called there, with that thread's id. */
    memset(&st, 0, sizeof st);
    struct cb_run other = {"rw-cb-thread", 0, 0, 0, -1, 0, pthread_self()};
    pthread_t t;
    pthread_create(&t, NULL, cb_violate, &other);
    pthread_join(t, NULL);
    CHECK_STATUS(other.s, RTC_OK);
    CHECK(st.calls == 1);
    CHECK(pthread_equal(st.thread, other.self));
    CHECK(st.thread_id == other.id && other.id != my_id());
    check_callback_stack(&st, other.lm, other.lr, other.lw, "rw-cb-thread");

    /* 3. Before blocking: B is write-held by another thread that lets it
     *    go only once the callback has run. */
    memset(&st, 0, sizeof st);
    st.signal_flag = &cb_in_callback;
    pthread_t h;
    pthread_create(&h, NULL, cb_holder, NULL);
    CHECK(wait_for(&cb_holder_in, 1, rtc_t_bound_ms(5000)));
    struct cb_run blocked = {NULL, 0, 0, 0, -1, 0, pthread_self()};
    cb_violate(&blocked);
    pthread_join(h, NULL);
    CHECK_STATUS(blocked.s, RTC_OK);
    CHECK(st.calls == 1);
    CHECK(LOAD(cb_holder_timed_out) == 0); /* the callback ran before the wait */
    check_callback_stack(&st, blocked.lm, blocked.lr, blocked.lw, "rwlock-main");

    /* 4. A violation inside the callback is printed (report mode), not
     *    passed to the callback again. */
    memset(&st, 0, sizeof st);
    st.nested_violation = 1;
    st.nested = &nested;
    st.inner_status[2] = -1;
    v0 = rtc_t_violations();
    struct cb_run again = {NULL, 0, 0, 0, -1, 0, pthread_self()};
    cb_violate(&again);
    CHECK_STATUS(again.s, RTC_OK);
    CHECK(st.calls == 1);
    CHECK_STATUS(st.inner_status[2], RTC_OK);
    CHECK(rtc_t_violations() == v0 + 2);
    const char *rep = rtc_t_report();
    CHECK_CONTAINS(rep, "(lock-rank mode report)");
    CHECK_CONTAINS(rep, "wants mutex 'cbk_nested' (rank cbk_a) at");
    CHECK_CONTAINS(rep, "while holding rwlock 'cbk_C' (rank cbk_c) read-locked at");
    CHECK(get_mode() == RTC_LOCKRANK_CALLBACK); /* still */

    /* 5. Cleared: report mode again, and the callback is not called. */
    CHECK_STATUS(rtc_lockrank_set_callback(NULL, NULL), RTC_OK);
    CHECK(get_mode() == RTC_LOCKRANK_REPORT);
    memset(&st, 0, sizeof st);
    v0 = rtc_t_violations();
    struct cb_run after = {NULL, 0, 0, 0, -1, 0, pthread_self()};
    cb_violate(&after);
    CHECK(rtc_t_violations() == v0 + 1);
    CHECK(st.calls == 0);
    CHECK_STATUS(rtc_lockrank_set_mode(RTC_LOCKRANK_CALLBACK), RTC_ERR_INVALID_ARGUMENT);
    CHECK(get_mode() == RTC_LOCKRANK_REPORT);
}

/* ---- queue mode ------------------------------------------------------- */

struct poll_result { int got; uint64_t thread_id, poller_id; };
static void *poll_other_thread(void *arg) {
    struct poll_result *p = arg;
    rtc_thread_id(&p->poller_id);
    for (;;) {
        rtc_lockrank_report *r = NULL;
        if (rtc_lockrank_next_report(&r) != RTC_OK || !r) break;
        p->thread_id = r->thread_id;
        p->got++;
        rtc_lockrank_report_free(r);
    }
    return NULL;
}

static void test_queue_mode(void) {
    CHECK_STATUS(rtc_ranks_load("NONE < q_a;\nq_a < q_b;\n", "q.ranks"), RTC_OK);
    rtc_mutex a = RTC_MUTEX_INIT_RANKED("q_A", "q_a");
    rtc_rwlock b = RTC_RWLOCK_INIT_RANKED("q_B", "q_b");
    CHECK(drain_queue() == 0);
    uint64_t dropped0 = 0, dropped = 0;
    CHECK_STATUS(rtc_lockrank_reports_dropped(&dropped0), RTC_OK);
    set_mode(RTC_LOCKRANK_QUEUE);
    CHECK(get_mode() == RTC_LOCKRANK_QUEUE);
    unsigned long long v0 = rtc_t_violations();
    /* rtc_lockrank_last_report gives "the most recently printed violation
     * report" (rtcore.h); queue mode prints nothing, so it stays as it was. */
    char printed_before[8192];
    snprintf(printed_before, sizeof printed_before, "%s", rtc_t_report());
    /* Three violations, each queued (not only the first of the pair); the
     * third under a try-locked read hold. */
    int lines[3];
    for (int i = 0; i < 3; i++) {
        CHECK_STATUS(i == 2 ? RTC_RWLOCK_TRYRDLOCK(&b) : RTC_RWLOCK_RDLOCK(&b), RTC_OK);
        CHECK_STATUS(AT(lines[i], RTC_MUTEX_LOCK(&a)), RTC_OK);
        rtc_mutex_unlock(&a);
        rtc_rwlock_unlock(&b);
    }
    CHECK(rtc_t_violations() == v0 + 3);
    uint64_t last_seq = 0;
    for (int i = 0; i < 3; i++) {
        rtc_lockrank_report *r = next_report();
        CHECK(r != NULL);
        if (!r) break;
        CHECK(r->sequence > last_seq);
        last_seq = r->sequence;
        CHECK(r->reason == RTC_LOCKRANK_REASON_ORDER);
        CHECK(r->thread_id == my_id());
        CHECK(strcmp(r->thread_name, "rwlock-main") == 0);
        CHECK(strcmp(r->wanted.name, "q_A") == 0 && r->wanted.line == (uint32_t)lines[i]); /* in order */
        CHECK(r->held_count == 1);
        if (r->held_count == 1) {
            CHECK(strcmp(r->held[0].name, "q_B") == 0);
            CHECK(r->held[0].mode == RTC_LOCK_SHARED && r->held[0].kind == RTC_LOCK_KIND_RWLOCK);
            CHECK(r->held[0].flags == (i == 2 ? RTC_LOCKRANK_HELD_TRIED | RTC_LOCKRANK_HELD_CONFLICTS
                                              : RTC_LOCKRANK_HELD_CONFLICTS));
        }
        CHECK_CONTAINS(r->text, "(lock-rank mode queue)");
        CHECK_CONTAINS(r->text, i == 2 ? "while holding rwlock 'q_B' (rank q_b) try-locked at"
                                       : "while holding rwlock 'q_B' (rank q_b) read-locked at");
        rtc_lockrank_report_free(r);
    }
    CHECK(no_report());
    CHECK(no_report());
    /* rtc_lockrank_last_report gives the most recent report made, printed
     * or not (the header): here the last queued one. */
    CHECK(strcmp(printed_before, rtc_t_report()) != 0);
    CHECK_CONTAINS(rtc_t_report(), "(lock-rank mode queue)");
    /* Past the bound: 256 kept (the oldest), the rest dropped and counted. */
    for (int i = 0; i < 300; i++) {
        rtc_rwlock_rdlock(&b);
        rtc_mutex_lock(&a);
        rtc_mutex_unlock(&a);
        rtc_rwlock_unlock(&b);
    }
    CHECK(rtc_t_violations() == v0 + 303);
    CHECK_STATUS(rtc_lockrank_reports_dropped(&dropped), RTC_OK);
    CHECK(dropped == dropped0 + 44);
    /* Reports stay queued after the mode changes. */
    set_mode(RTC_LOCKRANK_REPORT);
    int pending = 0, in_order = 1;
    for (;;) {
        rtc_lockrank_report *r = next_report();
        if (!r) break;
        if (r->sequence <= last_seq) in_order = 0;
        last_seq = r->sequence;
        pending++;
        rtc_lockrank_report_free(r);
    }
    CHECK(pending == 256);
    CHECK(in_order);
    CHECK(no_report());
    /* Room again: a new violation is queued, the dropped count unchanged. */
    set_mode(RTC_LOCKRANK_QUEUE);
    rtc_rwlock_rdlock(&b);
    rtc_mutex_lock(&a);
    rtc_mutex_unlock(&a);
    rtc_rwlock_unlock(&b);
    rtc_lockrank_report *r = next_report();
    CHECK(r != NULL);
    if (r) CHECK(r->sequence > last_seq);
    rtc_lockrank_report_free(r);
    CHECK_STATUS(rtc_lockrank_reports_dropped(&dropped), RTC_OK);
    CHECK(dropped == dropped0 + 44);
    /* Any thread may poll. */
    rtc_rwlock_rdlock(&b);
    rtc_mutex_lock(&a);
    rtc_mutex_unlock(&a);
    rtc_rwlock_unlock(&b);
    set_mode(RTC_LOCKRANK_REPORT);
    struct poll_result pr = {0, 0, 0};
    pthread_t t;
    pthread_create(&t, NULL, poll_other_thread, &pr);
    pthread_join(t, NULL);
    CHECK(pr.got == 1);
    CHECK(pr.thread_id == my_id()); /* the violating thread's, not the poller's */
    CHECK(pr.poller_id != my_id());
}

/* Violations from several threads at once: in queue mode every one is
 * queued or counted as dropped while another thread polls; in callback
 * mode every one reaches the callback, on its own thread. */
static rtc_mutex cc_a = RTC_MUTEX_INIT_RANKED("cc_A", "cc_a");
static rtc_rwlock cc_b = RTC_RWLOCK_INIT_RANKED("cc_B", "cc_b");
static int cc_stop_polling, cc_polled, cc_bad_report, cc_calls, cc_wrong_thread;
#define CC_EACH 300

static void *cc_violator(void *arg) {
    (void)arg;
    for (int i = 0; i < CC_EACH; i++) {
        if (rtc_rwlock_rdlock(&cc_b) != RTC_OK) { INC(cc_bad_report); break; }
        if (rtc_mutex_lock(&cc_a) != RTC_OK) { INC(cc_bad_report); rtc_rwlock_unlock(&cc_b); break; }
        rtc_mutex_unlock(&cc_a);
        rtc_rwlock_unlock(&cc_b);
        if ((i & 15) == 0) sched_yield();
    }
    return NULL;
}

static void cc_poll_once(uint64_t *last_seq) {
    rtc_lockrank_report *r = NULL;
    while (rtc_lockrank_next_report(&r) == RTC_OK && r) {
        if (r->sequence <= *last_seq || r->held_count != 1 || strcmp(r->wanted.name, "cc_A") != 0)
            INC(cc_bad_report);
        *last_seq = r->sequence;
        INC(cc_polled);
        rtc_lockrank_report_free(r);
        r = NULL;
    }
}

static void *cc_poller(void *arg) {
    (void)arg;
    uint64_t last_seq = 0;
    while (!LOAD(cc_stop_polling)) {
        cc_poll_once(&last_seq);
        usleep(100);
    }
    cc_poll_once(&last_seq);
    return NULL;
}

static void cc_callback(const rtc_lockrank_report *r, void *user) {
    (void)user;
    uint64_t id = 0;
    rtc_thread_id(&id);
    if (r->thread_id != id) INC(cc_wrong_thread);
    INC(cc_calls);
}

static void test_concurrent_violations(void) {
    CHECK_STATUS(rtc_ranks_load("NONE < cc_a;\ncc_a < cc_b;\n", "cc.ranks"), RTC_OK);
    uint64_t d0 = 0, d1 = 0;
    CHECK_STATUS(rtc_lockrank_reports_dropped(&d0), RTC_OK);
    unsigned long long v0 = rtc_t_violations();
    set_mode(RTC_LOCKRANK_QUEUE);
    pthread_t v[2], p;
    pthread_create(&p, NULL, cc_poller, NULL);
    for (int i = 0; i < 2; i++) pthread_create(&v[i], NULL, cc_violator, NULL);
    for (int i = 0; i < 2; i++) pthread_join(v[i], NULL);
    STORE(cc_stop_polling, 1);
    pthread_join(p, NULL);
    set_mode(RTC_LOCKRANK_REPORT);
    CHECK_STATUS(rtc_lockrank_reports_dropped(&d1), RTC_OK);
    CHECK(rtc_t_violations() == v0 + 2 * CC_EACH);
    CHECK(LOAD(cc_polled) + (long)(d1 - d0) == 2 * CC_EACH);
    CHECK(LOAD(cc_bad_report) == 0);
    fprintf(stderr, "concurrent queue: %d polled, %llu dropped\n", LOAD(cc_polled), (unsigned long long)(d1 - d0));

    v0 = rtc_t_violations();
    CHECK_STATUS(rtc_lockrank_set_callback(cc_callback, NULL), RTC_OK);
    for (int i = 0; i < 2; i++) pthread_create(&v[i], NULL, cc_violator, NULL);
    for (int i = 0; i < 2; i++) pthread_join(v[i], NULL);
    CHECK_STATUS(rtc_lockrank_set_callback(NULL, NULL), RTC_OK);
    CHECK(rtc_t_violations() == v0 + 2 * CC_EACH);
    CHECK(LOAD(cc_calls) == 2 * CC_EACH);
    CHECK(LOAD(cc_wrong_thread) == 0);
    CHECK(LOAD(cc_bad_report) == 0);
}

/* Changing the callback while callbacks run. Two threads inside the
 * callback both clear it: neither waits for the other (no hang). And a
 * callback replaced while violations keep coming returns once the calls
 * of the old one are over, whatever the new one's calls do. */
static atomic_int cs_inside, cs_cleared, cs_old_calls, cs_new_calls, cs_stop;
static void cs_clearing_callback(const rtc_lockrank_report *r, void *user) {
    (void)r;
    (void)user;
    atomic_fetch_add(&cs_inside, 1);
    /* Wait (bounded) until both violators are inside the callback. */
    for (int i = 0; i < 2000 && atomic_load(&cs_inside) < 2; i++) usleep(1000);
    if (rtc_lockrank_set_callback(NULL, NULL) == RTC_OK) atomic_fetch_add(&cs_cleared, 1);
}
static void cs_old(const rtc_lockrank_report *r, void *user) {
    (void)r;
    (void)user;
    usleep(1000);
    atomic_fetch_add(&cs_old_calls, 1);
}
static void cs_new(const rtc_lockrank_report *r, void *user) {
    (void)r;
    (void)user;
    usleep(1000);
    atomic_fetch_add(&cs_new_calls, 1);
}
static void *cs_violate_once(void *arg) {
    (void)arg;
    rtc_rwlock_rdlock(&cc_b);
    rtc_mutex_lock(&cc_a);
    rtc_mutex_unlock(&cc_a);
    rtc_rwlock_unlock(&cc_b);
    return NULL;
}
static void *cs_violate_until_stopped(void *arg) {
    (void)arg;
    while (!atomic_load(&cs_stop)) cs_violate_once(NULL);
    return NULL;
}
static void *cs_toggle_set(void *arg) {
    (void)arg;
    for (int i = 0; i < 20; i++) rtc_lockrank_set_callback(cs_new, NULL);
    return NULL;
}
static void *cs_toggle_clear(void *arg) {
    (void)arg;
    for (int i = 0; i < 20; i++) rtc_lockrank_set_callback(NULL, NULL);
    return NULL;
}
static void test_changing_the_callback(void) {
    /* (cc_a < cc_b were loaded by test_concurrent_violations.) */
    CHECK_STATUS(rtc_lockrank_set_callback(cs_clearing_callback, NULL), RTC_OK);
    pthread_t v[4];
    for (int i = 0; i < 2; i++) pthread_create(&v[i], NULL, cs_violate_once, NULL);
    for (int i = 0; i < 2; i++) pthread_join(v[i], NULL);
    CHECK(atomic_load(&cs_cleared) == 2);
    CHECK(get_mode() == RTC_LOCKRANK_REPORT);

    CHECK_STATUS(rtc_lockrank_set_callback(cs_old, NULL), RTC_OK);
    for (int i = 0; i < 4; i++) pthread_create(&v[i], NULL, cs_violate_until_stopped, NULL);
    while (atomic_load(&cs_old_calls) < 8) usleep(1000);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_STATUS(rtc_lockrank_set_callback(cs_new, NULL), RTC_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int old_at_return = atomic_load(&cs_old_calls);
    double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
    fprintf(stderr, "replacing the callback under steady violations took %.1f ms\n", ms);
    CHECK(ms < 2000);
    usleep(20000);
    /* No call of the old callback ran after the replacement returned. */
    CHECK(atomic_load(&cs_old_calls) == old_at_return);
    CHECK(atomic_load(&cs_new_calls) > 0);
    atomic_store(&cs_stop, 1);
    for (int i = 0; i < 4; i++) pthread_join(v[i], NULL);
    CHECK_STATUS(rtc_lockrank_set_callback(NULL, NULL), RTC_OK);

    /* Setting and clearing race: the mode and the callback change
     * together, so whoever finishes last leaves a consistent pair (checked
     * through a violation: in callback mode it must reach a callback). */
    int inconsistent = 0;
    for (int round = 0; round < 200; round++) {
        pthread_t a, b;
        pthread_create(&a, NULL, cs_toggle_set, NULL);
        pthread_create(&b, NULL, cs_toggle_clear, NULL);
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        if (get_mode() == RTC_LOCKRANK_CALLBACK) {
            int before = atomic_load(&cs_new_calls);
            cs_violate_once(NULL);
            if (atomic_load(&cs_new_calls) != before + 1) inconsistent++;
        }
        CHECK_STATUS(rtc_lockrank_set_callback(NULL, NULL), RTC_OK);
    }
    CHECK(inconsistent == 0);
}

/* ---- modes off and abort; the held-lock limit ------------------------- */

/* With checking off, misuse is still refused: a read/write lock's holds
 * are always recorded. */
static void test_mode_off(void) {
    CHECK_STATUS(rtc_ranks_load("NONE < off_a;\noff_a < off_b;\n", "off.ranks"), RTC_OK);
    rtc_rwlock a = RTC_RWLOCK_INIT_RANKED("off_A", "off_a"), b = RTC_RWLOCK_INIT_RANKED("off_B", "off_b");
    set_mode(RTC_LOCKRANK_OFF);
    unsigned long long v0 = rtc_t_violations();
    CHECK_STATUS(rtc_rwlock_rdlock(&a), RTC_OK);
    CHECK_STATUS(rtc_rwlock_rdlock(&a), RTC_ERR_WOULD_DEADLOCK);
    expect_message("which already holds it for reading");
    CHECK_STATUS(rtc_rwlock_wrlock(&a), RTC_ERR_WOULD_DEADLOCK);
    CHECK_STATUS(rtc_rwlock_tryrdlock(&a), RTC_ERR_WOULD_DEADLOCK);
    CHECK_STATUS(rtc_rwlock_init(&a, "off_A", "off_a"), RTC_ERR_LOCKED);
    CHECK_STATUS(rtc_rwlock_unlock(&a), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(&a), RTC_ERR_NOT_OWNER);
    /* No order checks. */
    CHECK_STATUS(rtc_rwlock_wrlock(&b), RTC_OK);
    CHECK_STATUS(rtc_rwlock_rdlock(&a), RTC_OK);
    CHECK(rtc_t_violations() == v0);
    /* Switching modes with locks held leaves no stale record. */
    set_mode(RTC_LOCKRANK_REPORT);
    CHECK_STATUS(rtc_rwlock_unlock(&a), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(&b), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(&b), RTC_ERR_NOT_OWNER);
    CHECK_STATUS(rtc_rwlock_rdlock(&a), RTC_OK);
    CHECK_STATUS(rtc_rwlock_wrlock(&b), RTC_OK);
    CHECK(rtc_t_violations() == v0); /* in order */
    rtc_rwlock_unlock(&b);
    rtc_rwlock_unlock(&a);
}

static rtc_rwlock ab_a, ab_b;

/* In a child, mode abort: a self-deadlock is still answered with a status;
 * an order violation prints its report and aborts. */
static void child_abort_mode(void) {
    CHECK_STATUS(rtc_lockrank_set_mode(RTC_LOCKRANK_ABORT), RTC_OK);
    CHECK_STATUS(rtc_rwlock_rdlock(&ab_a), RTC_OK);
    CHECK_STATUS(rtc_rwlock_rdlock(&ab_a), RTC_ERR_WOULD_DEADLOCK);
    CHECK_STATUS(rtc_rwlock_wrlock(&ab_a), RTC_ERR_WOULD_DEADLOCK);
    CHECK_STATUS(rtc_rwlock_unlock(&ab_a), RTC_OK);
    CHECK_STATUS(RTC_RWLOCK_WRLOCK(&ab_a), RTC_OK); /* in order */
    CHECK_STATUS(RTC_RWLOCK_RDLOCK(&ab_b), RTC_OK);
    rtc_rwlock_unlock(&ab_b);
    rtc_rwlock_unlock(&ab_a);
    if (rtc_t_failed) _exit(1);
    RTC_RWLOCK_WRLOCK(&ab_b);
    RTC_RWLOCK_RDLOCK(&ab_a); /* aborts */
    _exit(4);
}

static void test_abort_mode(void) {
    CHECK_STATUS(rtc_ranks_load("NONE < abt_a;\nabt_a < abt_b;\n", "abt.ranks"), RTC_OK);
    CHECK_STATUS(rtc_rwlock_init(&ab_a, "abt_A", "abt_a"), RTC_OK);
    CHECK_STATUS(rtc_rwlock_init(&ab_b, "abt_B", "abt_b"), RTC_OK);
    char errfile[128];
    snprintf(errfile, sizeof errfile, "/tmp/rtcore-test-rwlock-%d.stderr", (int)getpid());
    int st = rtc_t_in_child(child_abort_mode, NULL, errfile);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT))
        fprintf(stderr, "child status %#x; its stderr:\n%s\n", st, rtc_t_slurp(errfile));
    const char *e = rtc_t_slurp(errfile);
    CHECK_CONTAINS(e, "rtcore: lock order violation (lock-rank mode abort)");
    CHECK_CONTAINS(e, "wants rwlock 'abt_A' (rank abt_a) for reading at");
    CHECK_CONTAINS(e, "while holding rwlock 'abt_B' (rank abt_b) write-locked at");
    CHECK_CONTAINS(e, "rtcore: aborting (lock-rank mode abort)");
    unlink(errfile);
    CHECK(get_mode() == RTC_LOCKRANK_REPORT); /* the parent's mode is its own */
}

/* A thread may hold at most 64 locks: one more is refused, whatever the
 * kind of lock or call. */
static rtc_rwlock hl_locks[65];
static rtc_mutex hl_mutex = RTC_MUTEX_INIT_RANKED("hl_mutex", "hl_row");

static void test_held_limit(void) {
    CHECK_STATUS(rtc_ranks_load("NONE < hl_row;\nnestable: hl_row;\n", "hl.ranks"), RTC_OK);
    for (int i = 0; i < 65; i++) CHECK_STATUS(rtc_rwlock_init(&hl_locks[i], "hl", "hl_row"), RTC_OK);
    unsigned long long v0 = rtc_t_violations();
    int ok = 1;
    for (int i = 0; i < 64; i++) ok &= rtc_rwlock_rdlock(&hl_locks[i]) == RTC_OK; /* increasing addresses */
    CHECK(ok);
    CHECK(rtc_t_violations() == v0);
    CHECK_STATUS(rtc_rwlock_rdlock(&hl_locks[64]), RTC_ERR_WRONG_STATE);
    expect_message("read lock of rwlock 'hl' (rank hl_row) refused: this thread already holds 64 locks");
    CHECK_STATUS(rtc_rwlock_wrlock(&hl_locks[64]), RTC_ERR_WRONG_STATE);
    CHECK_STATUS(rtc_rwlock_tryrdlock(&hl_locks[64]), RTC_ERR_WRONG_STATE);
    CHECK_STATUS(rtc_rwlock_trywrlock(&hl_locks[64]), RTC_ERR_WRONG_STATE);
    CHECK_STATUS(rtc_mutex_lock(&hl_mutex), RTC_ERR_WRONG_STATE);
    /* Nothing was taken: another thread may write-lock it. */
    struct try_result t = try_from_other_thread(&hl_locks[64]);
    CHECK_STATUS(t.wr, RTC_OK);
    for (int i = 0; i < 64; i++) ok &= rtc_rwlock_unlock(&hl_locks[i]) == RTC_OK;
    CHECK(ok);
    CHECK_STATUS(rtc_rwlock_wrlock(&hl_locks[64]), RTC_OK);
    CHECK_STATUS(rtc_rwlock_unlock(&hl_locks[64]), RTC_OK);
}

/* A lock-order callback may take locks and return holding them. If it
 * fills the thread's record while the read lock that reported waits for
 * a writer, that read lock is refused once it could be taken (and given
 * back), rather than held unrecorded or written past the record. */
static rtc_rwlock cf_a, cf_b;
static rtc_mutex cf_fill[63];
static int cf_taken;
static int cf_writer_in;

static void cf_callback(const rtc_lockrank_report *r, void *user) {
    (void)r; (void)user;
    for (int i = 0; i < 63; i++) cf_taken += rtc_mutex_lock(&cf_fill[i]) == RTC_OK;
}

static void *cf_writer(void *arg) {
    (void)arg;
    CHECK_STATUS(rtc_rwlock_wrlock(&cf_a), RTC_OK);
    STORE(cf_writer_in, 1);
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL); /* long enough for the reader to wait */
    CHECK_STATUS(rtc_rwlock_unlock(&cf_a), RTC_OK);
    return NULL;
}

static void test_callback_fills_the_record_while_waiting(void) {
    CHECK_STATUS(rtc_ranks_load("NONE < cf_a;\ncf_a < cf_b;\ncf_b < cf_row;\nnestable: cf_row;\n", "cf.ranks"), RTC_OK);
    CHECK_STATUS(rtc_rwlock_init(&cf_a, "cf_a", "cf_a"), RTC_OK);
    CHECK_STATUS(rtc_rwlock_init(&cf_b, "cf_b", "cf_b"), RTC_OK);
    for (int i = 0; i < 63; i++) CHECK_STATUS(rtc_mutex_init(&cf_fill[i], "cf_fill", "cf_row"), RTC_OK);
    pthread_t w;
    pthread_create(&w, NULL, cf_writer, NULL);
    while (!LOAD(cf_writer_in)) sched_yield();
    CHECK_STATUS(rtc_lockrank_set_callback(cf_callback, NULL), RTC_OK);
    CHECK_STATUS(rtc_rwlock_wrlock(&cf_b), RTC_OK);
    /* cf_a after cf_b is reported (to the callback, which fills the
     * record: cf_b and 63 mutexes), then waits for the writer. */
    CHECK_STATUS(rtc_rwlock_rdlock(&cf_a), RTC_ERR_WRONG_STATE);
    expect_message("read lock of rwlock 'cf_a' (rank cf_a) refused: this thread already holds 64 locks");
    CHECK_STATUS(rtc_lockrank_set_callback(NULL, NULL), RTC_OK);
    CHECK(cf_taken == 63);
    pthread_join(w, NULL);
    /* Given back: another thread may write-lock it. */
    struct try_result t = try_from_other_thread(&cf_a);
    CHECK_STATUS(t.wr, RTC_OK);
    int ok = 1;
    for (int i = 62; i >= 0; i--) ok &= rtc_mutex_unlock(&cf_fill[i]) == RTC_OK;
    CHECK(ok);
    CHECK_STATUS(rtc_rwlock_unlock(&cf_b), RTC_OK);
    /* Not held by this thread either. */
    CHECK_STATUS(rtc_rwlock_unlock(&cf_a), RTC_ERR_NOT_OWNER);
}

/* ---- the mutex's starvation bound ------------------------------------- */

static rtc_mutex fair_m = RTC_MUTEX_INIT;
static int fair_stop, fair_started;
static long fair_spins;

static void *fair_spinner(void *arg) {
    (void)arg;
    STORE(fair_started, 1);
    while (!LOAD(fair_stop)) {
        if (rtc_mutex_lock(&fair_m) != RTC_OK) abort();
        fair_spins++;
        if (rtc_mutex_unlock(&fair_m) != RTC_OK) abort();
    }
    return NULL;
}

static void test_starvation_bound(void) {
    pthread_t t;
    pthread_create(&t, NULL, fair_spinner, NULL);
    CHECK(wait_for(&fair_started, 1, rtc_t_bound_ms(5000)));
    /* Under valgrind (RTC_TEST_SLOW) threads are serialised by valgrind's
     * own unfair lock: a spinner that makes no system call keeps it for
     * seconds whatever rtcore does, so the bound is only measured there. */
    int slow = getenv("RTC_TEST_SLOW") != NULL;
    int rounds = slow ? 10 : 50;
    long worst_us = 0, total_us = 0;
    for (int i = 0; i < rounds; i++) {
        sleep_ms(1);
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        CHECK_STATUS(rtc_mutex_lock(&fair_m), RTC_OK);
        clock_gettime(CLOCK_MONOTONIC, &b);
        CHECK_STATUS(rtc_mutex_unlock(&fair_m), RTC_OK);
        long us = (b.tv_sec - a.tv_sec) * 1000000L + (b.tv_nsec - a.tv_nsec) / 1000;
        total_us += us;
        if (us > worst_us) worst_us = us;
    }
    STORE(fair_stop, 1);
    pthread_join(t, NULL);
    fprintf(stderr, "starvation bound: longest wait %ld us, mean %ld us over %d locks (spinner: %ld locks)\n",
            worst_us, total_us / rounds, rounds, fair_spins);
    printf("starvation bound: longest wait %ld us%s\n", worst_us, slow ? " (not checked: RTC_TEST_SLOW)" : "");
    CHECK(fair_spins > 0);
    if (!slow) CHECK(worst_us < 200 * 1000);
}

int main(void) {
    /* A fixed name (valgrind would otherwise show its own). */
    pthread_setname_np(pthread_self(), "rwlock-main");
    struct { const char *name; void (*fn)(void); } tests[] = {
        {"shared_readers", test_shared_readers},
        {"reader_bias", test_reader_bias},
        {"exclusion_stress", test_exclusion_stress},
        {"try", test_try},
        {"initialisers", test_initialisers},
        {"writer_preference", test_writer_preference},
        {"two_writers_wrong_order", test_two_writers_wrong_order},
        {"read_inversion_two_threads", test_read_inversion_two_threads},
        {"report_read_locked", test_report_read_locked},
        {"keyed_nesting", test_keyed_nesting},
        {"callback_mode", test_callback_mode},
        {"queue_mode", test_queue_mode},
        {"concurrent_violations", test_concurrent_violations},
        {"changing_the_callback", test_changing_the_callback},
        {"mode_off", test_mode_off},
        {"abort_mode", test_abort_mode},
        {"held_limit", test_held_limit},
        {"callback_fills_the_record_while_waiting", test_callback_fills_the_record_while_waiting},
        {"starvation_bound", test_starvation_bound},
    };
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        int before = rtc_t_failed;
        tests[i].fn();
        if (rtc_t_failed != before) fprintf(stderr, "  ... in scenario %s\n", tests[i].name);
        /* Every scenario leaves the mode at report and the queue empty. */
        if (get_mode() != RTC_LOCKRANK_REPORT) {
            fprintf(stderr, "FAIL scenario %s left the lock-rank mode at %d\n", tests[i].name, (int)get_mode());
            rtc_t_failed++;
            rtc_lockrank_set_callback(NULL, NULL);
        }
        int left = drain_queue();
        if (left) {
            fprintf(stderr, "FAIL scenario %s left %d queued reports\n", tests[i].name, left);
            rtc_t_failed++;
        }
    }
    return rtc_t_finish();
}
