/* The classic lock-order scenarios (named as in Linux's locking selftests),
 * each with ranks declared, each caught with a report whose contents are
 * checked: thread, lock names, ranks, call sites and the declaration line.
 * Threads run one after the other, so nothing really deadlocks. */
#include <pthread.h>

#include "rtc_test.h"

static char site_buf[64];
/* "test_scenarios.c:LINE" */
static const char *site(int line) {
    snprintf(site_buf, sizeof site_buf, "test_scenarios.c:%d", line);
    return site_buf;
}

#define LOCK(m, linevar) ((linevar) = __LINE__, RTC_MUTEX_LOCK(m))

static void init_mutex(rtc_mutex *m, const char *name, const char *rank) {
    CHECK_STATUS(rtc_mutex_init(m, name, rank), RTC_OK);
}

/* Check the latest report names every string in `needles` (NULL-ended). */
static void check_report(const char *const *needles) {
    const char *r = rtc_t_report();
    for (; *needles; needles++) CHECK_CONTAINS(r, *needles);
}

/* AA and ABA: re-locking a held lock is a certain self-deadlock. It is
 * refused at once with RTC_ERR_WOULD_DEADLOCK and a message naming the
 * thread, the lock, its rank and both call sites (never an order report:
 * it must answer with a status even in abort mode). */
static void test_AA(void) {
    CHECK_STATUS(rtc_ranks_load("NONE < aa_r;\n", "aa.ranks"), RTC_OK);
    rtc_mutex a; init_mutex(&a, "aa_lock", "aa_r");
    int l1, l2;
    unsigned long long v0 = rtc_t_violations();
    CHECK_STATUS(LOCK(&a, l1), RTC_OK);
    CHECK_STATUS(LOCK(&a, l2), RTC_ERR_WOULD_DEADLOCK);
    const char *e = rtc_t_last_error();
    CHECK_CONTAINS(e, "lock of mutex 'aa_lock' (rank aa_r) at");
    CHECK_CONTAINS(e, site(l2));
    CHECK_CONTAINS(e, "'scenarios-main'");
    CHECK_CONTAINS(e, "which already holds it (locked at");
    CHECK_CONTAINS(e, site(l1));
    CHECK(rtc_t_violations() == v0);
    CHECK_STATUS(rtc_mutex_unlock(&a), RTC_OK);
    CHECK_STATUS(rtc_mutex_destroy(&a), RTC_OK);
}

static void test_ABA(void) {
    CHECK_STATUS(rtc_ranks_load("NONE < aba_a;\naba_a < aba_b;\n", "aba.ranks"), RTC_OK);
    rtc_mutex a, b; init_mutex(&a, "aba_A", "aba_a"); init_mutex(&b, "aba_B", "aba_b");
    int la, lb, la2;
    unsigned long long v0 = rtc_t_violations();
    CHECK_STATUS(LOCK(&a, la), RTC_OK);
    CHECK_STATUS(LOCK(&b, lb), RTC_OK);
    CHECK_STATUS(LOCK(&a, la2), RTC_ERR_WOULD_DEADLOCK);
    CHECK_CONTAINS(rtc_t_last_error(), "lock of mutex 'aba_A' (rank aba_a)");
    CHECK_CONTAINS(rtc_t_last_error(), site(la2));
    CHECK_CONTAINS(rtc_t_last_error(), site(la));
    CHECK(rtc_t_violations() == v0);
    (void)lb;
    CHECK_STATUS(rtc_mutex_unlock(&a), RTC_OK);
    CHECK_STATUS(rtc_mutex_unlock(&b), RTC_OK);
    /* The B-then-A half of ABA is an inversion, reported as such. */
    CHECK_STATUS(RTC_MUTEX_LOCK(&b), RTC_OK);
    CHECK_STATUS(RTC_MUTEX_LOCK(&a), RTC_OK);
    CHECK(rtc_t_violations() == v0 + 1);
    CHECK_CONTAINS(rtc_t_report(), "while holding mutex 'aba_B' (rank aba_b) locked at");
    CHECK_CONTAINS(rtc_t_report(), "aba.ranks:2: aba_a < aba_b");
    CHECK_STATUS(rtc_mutex_unlock(&a), RTC_OK);
    CHECK_STATUS(rtc_mutex_unlock(&b), RTC_OK);
}

/* ---- ABBA in one thread ---- */
static void test_ABBA_one_thread(void) {
    CHECK_STATUS(rtc_ranks_load("# ABBA\nNONE < ab1_a;\nab1_a < ab1_b;\n", "abba1.ranks"), RTC_OK);
    rtc_mutex a, b; init_mutex(&a, "ab1_A", "ab1_a"); init_mutex(&b, "ab1_B", "ab1_b");
    int l1, l2, l3, l4;
    unsigned long long v0 = rtc_t_violations();
    CHECK_STATUS(LOCK(&a, l1), RTC_OK);
    CHECK_STATUS(LOCK(&b, l2), RTC_OK);
    rtc_mutex_unlock(&b); rtc_mutex_unlock(&a);
    CHECK(rtc_t_violations() == v0);
    CHECK_STATUS(LOCK(&b, l3), RTC_OK);
    CHECK_STATUS(LOCK(&a, l4), RTC_OK); /* report mode: reported, then taken */
    CHECK(rtc_t_violations() == v0 + 1);
    char s3[64], s4[64];
    snprintf(s3, sizeof s3, "%s", site(l3)); snprintf(s4, sizeof s4, "%s", site(l4));
    const char *n[] = {"thread 1 'scenarios-main' (tid ", "wants mutex 'ab1_A' (rank ab1_a) at", s4,
                       "while holding mutex 'ab1_B' (rank ab1_b) locked at", s3,
                       "forbidden by abba1.ranks:3: ab1_a < ab1_b", NULL};
    check_report(n);
    /* Locks taken and released earlier are not "held": never in a report. */
    CHECK(strstr(rtc_t_report(), site(l1)) == NULL);
    CHECK(strstr(rtc_t_report(), site(l2)) == NULL);
    rtc_mutex_unlock(&a); rtc_mutex_unlock(&b);

    /* The same pair again: counted, not printed again. */
    char before[8192]; snprintf(before, sizeof before, "%s", rtc_t_report());
    CHECK_STATUS(RTC_MUTEX_LOCK(&b), RTC_OK);
    CHECK_STATUS(RTC_MUTEX_LOCK(&a), RTC_OK);
    rtc_mutex_unlock(&a); rtc_mutex_unlock(&b);
    CHECK(rtc_t_violations() == v0 + 2);
    CHECK(strcmp(before, rtc_t_report()) == 0);
}

/* ---- ABBA across two threads, one after the other ---- */
struct pair { rtc_mutex *first, *second; const char *name; int l1, l2; int s1, s2; };

static void *lock_pair(void *arg) {
    struct pair *p = arg;
    pthread_setname_np(pthread_self(), p->name);
    p->s1 = LOCK(p->first, p->l1);
    p->s2 = LOCK(p->second, p->l2);
    rtc_mutex_unlock(p->second);
    rtc_mutex_unlock(p->first);
    return NULL;
}

static void run_pair(rtc_mutex *first, rtc_mutex *second, const char *name, struct pair *p) {
    pthread_t t;
    p->first = first; p->second = second; p->name = name;
    pthread_create(&t, NULL, lock_pair, p);
    pthread_join(t, NULL);
    CHECK_STATUS(p->s1, RTC_OK);
    CHECK_STATUS(p->s2, RTC_OK);
}

static void test_ABBA_two_threads(void) {
    CHECK_STATUS(rtc_ranks_load("NONE < ab2_a;\nab2_a < ab2_b;\n", "abba2.ranks"), RTC_OK);
    rtc_mutex a, b; init_mutex(&a, "ab2_A", "ab2_a"); init_mutex(&b, "ab2_B", "ab2_b");
    unsigned long long v0 = rtc_t_violations();
    struct pair p1, p2;
    run_pair(&a, &b, "abba-t1", &p1);
    CHECK(rtc_t_violations() == v0);
    run_pair(&b, &a, "abba-t2", &p2);
    CHECK(rtc_t_violations() == v0 + 1);
    char s1[64], s2[64];
    snprintf(s1, sizeof s1, "%s", site(p2.l1)); snprintf(s2, sizeof s2, "%s", site(p2.l2));
    const char *n[] = {"'abba-t2'", "wants mutex 'ab2_A' (rank ab2_a) at", s2,
                       "while holding mutex 'ab2_B' (rank ab2_b) locked at", s1,
                       "abba2.ranks:2: ab2_a < ab2_b", NULL};
    check_report(n);
}

/* A chain of threads each taking two locks in turn; the last step closes a
 * cycle and must be the one reported, with the declaration path. */
static void chain(const char *ranks, const char *file, rtc_mutex *m, const char *const *names,
                  const int (*steps)[2], int nsteps, int bad_step, const char *const *expect) {
    CHECK_STATUS(rtc_ranks_load(ranks, file), RTC_OK);
    for (int i = 0; names[i]; i++) {
        char rank[32];
        snprintf(rank, sizeof rank, "%s_r", names[i]);
        init_mutex(&m[i], names[i], rank);
    }
    unsigned long long v0 = rtc_t_violations();
    for (int s = 0; s < nsteps; s++) {
        struct pair p;
        char tname[24];
        snprintf(tname, sizeof tname, "chain-%d", s);
        run_pair(&m[steps[s][0]], &m[steps[s][1]], tname, &p);
        CHECK(rtc_t_violations() == v0 + (s >= bad_step ? 1 : 0));
        if (s == bad_step) {
            char tn[32];
            snprintf(tn, sizeof tn, "'%s'", tname);
            CHECK_CONTAINS(rtc_t_report(), tn);
            char s1[64], s2[64];
            snprintf(s1, sizeof s1, "%s", site(p.l1)); snprintf(s2, sizeof s2, "%s", site(p.l2));
            CHECK_CONTAINS(rtc_t_report(), s1);
            CHECK_CONTAINS(rtc_t_report(), s2);
            for (const char *const *e = expect; *e; e++) CHECK_CONTAINS(rtc_t_report(), *e);
            v0 = rtc_t_violations() - 1;
        }
    }
}

static void test_cycles(void) {
    static rtc_mutex m3[3], m4a[4], m4b[4], m4c[4], m3b[3];
    const int (*st)[2];
    {   /* ABBCCA: AB, BC, CA */
        const char *names[] = {"c3_A", "c3_B", "c3_C", NULL};
        static const int s[][2] = {{0, 1}, {1, 2}, {2, 0}};
        const char *e[] = {"wants mutex 'c3_A' (rank c3_A_r)", "while holding mutex 'c3_C' (rank c3_C_r)",
                           "abbcca.ranks:1: c3_A_r < c3_B_r; abbcca.ranks:2: c3_B_r < c3_C_r", NULL};
        st = s;
        chain("NONE < c3_A_r;c3_A_r < c3_B_r;\nc3_B_r < c3_C_r;\n", "abbcca.ranks", m3, names, st, 3, 2, e);
    }
    {   /* ABCABC: AB, CA, BC (the CA step is the inversion) */
        const char *names[] = {"c3b_A", "c3b_B", "c3b_C", NULL};
        static const int s[][2] = {{0, 1}, {2, 0}, {1, 2}};
        const char *e[] = {"wants mutex 'c3b_A'", "while holding mutex 'c3b_C'",
                           "abcabc.ranks:1: c3b_A_r < c3b_B_r; abcabc.ranks:1: c3b_B_r < c3b_C_r", NULL};
        chain("NONE < c3b_A_r < c3b_B_r < c3b_C_r;\n", "abcabc.ranks", m3b, names, s, 3, 1, e);
    }
    {   /* ABBCCDDA: AB, BC, CD, DA */
        const char *names[] = {"c4_A", "c4_B", "c4_C", "c4_D", NULL};
        static const int s[][2] = {{0, 1}, {1, 2}, {2, 3}, {3, 0}};
        const char *e[] = {"wants mutex 'c4_A'", "while holding mutex 'c4_D' (rank c4_D_r)",
                           "abbccdda.ranks:4: c4_C_r < c4_D_r", NULL};
        chain("NONE < c4_A_r;\nc4_A_r < c4_B_r;\nc4_B_r < c4_C_r;\nc4_C_r < c4_D_r;\n", "abbccdda.ranks",
              m4a, names, s, 4, 3, e);
    }
    {   /* ABCDBCDA: AB, CD, BC, DA */
        const char *names[] = {"c4b_A", "c4b_B", "c4b_C", "c4b_D", NULL};
        static const int s[][2] = {{0, 1}, {2, 3}, {1, 2}, {3, 0}};
        const char *e[] = {"wants mutex 'c4b_A'", "while holding mutex 'c4b_D'",
                           "abcdbcda.ranks:2: c4b_A_r < c4b_B_r", NULL};
        chain("NONE < c4b_A_r;\nc4b_A_r < c4b_B_r < c4b_C_r < c4b_D_r;\n", "abcdbcda.ranks",
              m4b, names, s, 4, 3, e);
    }
    {   /* ABCDBDDA: AB, CD, BD, DA */
        const char *names[] = {"c4c_A", "c4c_B", "c4c_C", "c4c_D", NULL};
        static const int s[][2] = {{0, 1}, {2, 3}, {1, 3}, {3, 0}};
        const char *e[] = {"wants mutex 'c4c_A'", "while holding mutex 'c4c_D'",
                           "abcdbdda.ranks:3: c4c_B_r, c4c_C_r < c4c_D_r", NULL};
        (void)e;
        const char *e2[] = {"wants mutex 'c4c_A'", "while holding mutex 'c4c_D'",
                            "abcdbdda.ranks:2: c4c_A_r < c4c_B_r; abcdbdda.ranks:3: c4c_B_r < c4c_D_r", NULL};
        chain("NONE < c4c_A_r, c4c_C_r;\nc4c_A_r < c4c_B_r;\nc4c_B_r, c4c_C_r < c4c_D_r;\n", "abcdbdda.ranks",
              m4c, names, s, 4, 3, e2);
    }
}

static void *unlock_other(void *arg) {
    int *st = arg;
    extern rtc_mutex ub_m;
    *st = rtc_mutex_unlock(&ub_m);
    return NULL;
}
rtc_mutex ub_m = RTC_MUTEX_INIT_RANKED("ub_lock", "ub_r");

static void test_unlock_balance(void) {
    CHECK_STATUS(rtc_ranks_load("NONE < ub_r;", "ub.ranks"), RTC_OK);
    CHECK_STATUS(rtc_mutex_unlock(&ub_m), RTC_ERR_NOT_OWNER);
    CHECK_CONTAINS(rtc_t_last_error(), "unlock of mutex 'ub_lock' (rank ub_r) which this thread does not hold");
    CHECK_STATUS(RTC_MUTEX_LOCK(&ub_m), RTC_OK);
    pthread_t t; int st = -1;
    pthread_create(&t, NULL, unlock_other, &st);
    pthread_join(t, NULL);
    CHECK_STATUS(st, RTC_ERR_NOT_OWNER);
    CHECK_STATUS(rtc_mutex_unlock(&ub_m), RTC_OK);
    CHECK_STATUS(rtc_mutex_unlock(&ub_m), RTC_ERR_NOT_OWNER);
    CHECK_CONTAINS(rtc_t_last_error(), "it is not locked");
}

/* A violation against an older held lock is found under a try-locked newer
 * one (a top-of-stack check would miss it); the try-lock itself is not
 * order-checked. */
static void test_trylock_under(void) {
    CHECK_STATUS(rtc_ranks_load("NONE < tl_y;\ntl_y < tl_z;\ntl_z < tl_x;\n", "try.ranks"), RTC_OK);
    rtc_mutex x, y, z; init_mutex(&x, "tl_X", "tl_x"); init_mutex(&y, "tl_Y", "tl_y"); init_mutex(&z, "tl_Z", "tl_z");
    unsigned long long v0 = rtc_t_violations();
    CHECK_STATUS(RTC_MUTEX_LOCK(&x), RTC_OK);
    CHECK_STATUS(RTC_MUTEX_TRYLOCK(&y), RTC_OK); /* out of order, but a try-lock */
    CHECK(rtc_t_violations() == v0);
    CHECK_STATUS(RTC_MUTEX_LOCK(&z), RTC_OK);
    CHECK(rtc_t_violations() == v0 + 1);
    CHECK_CONTAINS(rtc_t_report(), "while holding mutex 'tl_X' (rank tl_x) locked at");
    CHECK_CONTAINS(rtc_t_report(), "try.ranks:3: tl_z < tl_x");
    /* tl_Y does not conflict (tl_y < tl_z): listed with the rest of the held
     * stack, not as a conflicting lock. */
    CHECK(strstr(rtc_t_report(), "while holding mutex 'tl_Y'") == NULL);
    CHECK_CONTAINS(rtc_t_report(), "also holding mutex 'tl_Y' (rank tl_y) try-locked at");
    /* Out-of-order release. */
    CHECK_STATUS(rtc_mutex_unlock(&x), RTC_OK);
    CHECK_STATUS(rtc_mutex_unlock(&z), RTC_OK);
    CHECK_STATUS(rtc_mutex_unlock(&y), RTC_OK);
}

/* Unranked locks are leaves: nothing may be taken while one is held. */
static void test_leaf(void) {
    rtc_mutex l1 = RTC_MUTEX_INIT, l2;
    memset(&l2, 0, sizeof l2);
    unsigned long long v0 = rtc_t_violations();
    CHECK_STATUS(RTC_MUTEX_LOCK(&l1), RTC_OK);
    CHECK_STATUS(RTC_MUTEX_LOCK(&l2), RTC_OK);
    CHECK(rtc_t_violations() == v0 + 1);
    CHECK_CONTAINS(rtc_t_report(), "unranked locks are leaves");
    rtc_mutex_unlock(&l2); rtc_mutex_unlock(&l1);
}

int main(void) {
    /* A fixed name (valgrind would otherwise show its own). */
    pthread_setname_np(pthread_self(), "scenarios-main");
    test_AA();
    test_ABA();
    test_ABBA_one_thread();
    test_ABBA_two_threads();
    test_cycles();
    test_unlock_balance();
    test_trylock_under();
    test_leaf();
    return rtc_t_finish();
}
