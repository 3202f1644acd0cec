/* Plain pthread programs, written with no knowledge of rtcore, for
 * `rtcore run` (tests/run_command.rs): each scenario is argv[1]. They are
 * run one after the other, so the orders they take are learned even when
 * no deadlock can happen in the run. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t a = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t b = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t c = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t d = PTHREAD_MUTEX_INITIALIZER;

static void pair(pthread_mutex_t *x, pthread_mutex_t *y) {
    pthread_mutex_lock(x);
    pthread_mutex_lock(y);
    pthread_mutex_unlock(y);
    pthread_mutex_unlock(x);
}

struct two { pthread_mutex_t *x, *y; };

static void *pair_thread(void *arg) {
    struct two *t = arg;
    pthread_setname_np(pthread_self(), "pairer");
    pair(t->x, t->y);
    return NULL;
}

static void in_thread(pthread_mutex_t *x, pthread_mutex_t *y) {
    struct two t = {x, y};
    pthread_t th;
    pthread_create(&th, NULL, pair_thread, &t);
    pthread_join(th, NULL);
}

/* a then b in one thread, b then a in another. */
static int abba_threads(void) {
    in_thread(&a, &b);
    in_thread(&b, &a);
    return 0;
}

/* a then b, later b then a, in the same thread. */
static int abba_one_thread(void) {
    pair(&a, &b);
    pair(&b, &a);
    return 0;
}

/* A cycle of three (four) classes, each edge taken by another thread. */
static int cycle(int n) {
    pthread_mutex_t *m[4] = {&a, &b, &c, &d};
    for (int i = 0; i < n; i++) in_thread(m[i], m[(i + 1) % n]);
    return 0;
}

/* The same order everywhere, many times, with contention: no report. */
static void *worker(void *arg) {
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        pthread_mutex_lock(&a);
        pthread_mutex_lock(&b);
        pthread_mutex_unlock(&b);
        pthread_mutex_unlock(&a);
        if (pthread_mutex_trylock(&c) == 0) pthread_mutex_unlock(&c);
    }
    return NULL;
}

static int clean(void) {
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    return 0;
}

/* A try-lock in the opposite order adds no edge: no report. */
static int trylock_reverse(void) {
    pair(&a, &b);
    pthread_mutex_lock(&b);
    if (pthread_mutex_trylock(&a) == 0) pthread_mutex_unlock(&a);
    pthread_mutex_unlock(&b);
    return 0;
}

/* Locks of one class (initialised in a loop, like memcached's item locks):
 * in address order everywhere, fine; `reverse` also takes two of them in
 * descending order. */
static int same_class(int reverse) {
    static pthread_mutex_t items[8];
    for (int i = 0; i < 8; i++) pthread_mutex_init(&items[i], NULL);
    for (int i = 0; i + 1 < 8; i++) pair(&items[i], &items[i + 1]);
    if (reverse) in_thread(&items[5], &items[2]);
    for (int i = 0; i < 8; i++) pthread_mutex_destroy(&items[i]);
    return 0;
}

/* A non-recursive mutex locked twice: reported, then the call would never
 * return (run with --mode abort). */
static int recursion(void) {
    pthread_mutex_lock(&a);
    pthread_mutex_lock(&a);
    return 0;
}

/* A recursive mutex locked twice: fine. */
static int recursive_ok(void) {
    pthread_mutex_t r;
    pthread_mutexattr_t at;
    pthread_mutexattr_init(&at);
    pthread_mutexattr_settype(&at, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&r, &at);
    pthread_mutex_lock(&r);
    pthread_mutex_lock(&r);
    pthread_mutex_lock(&b);
    pthread_mutex_unlock(&b);
    pthread_mutex_unlock(&r);
    pthread_mutex_unlock(&r);
    pthread_mutex_destroy(&r);
    return 0;
}

/* Unlock of an error-checking mutex this thread does not hold. */
static int unlock_not_held(void) {
    pthread_mutex_t e;
    pthread_mutexattr_t at;
    pthread_mutexattr_init(&at);
    pthread_mutexattr_settype(&at, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_init(&e, &at);
    int rc = pthread_mutex_unlock(&e);
    printf("unlock: %s\n", rc == EPERM ? "EPERM" : "?");
    return 0;
}

/* The child of a fork locks and exits; the parent reports its status. */
static int forked(void) {
    pthread_mutex_lock(&a);
    pid_t p = fork();
    if (p == 0) {
        pthread_mutex_unlock(&a);
        pair(&c, &d);
        exit(7); /* exit handlers run: the child's summary is written */
    }
    pthread_mutex_unlock(&a);
    int st = 0;
    waitpid(p, &st, 0);
    printf("child: %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    return 0;
}

/* A thread keeps librtcore busy (each new mutex's first lock goes into it)
 * while main forks 200 times; each child locks a new mutex (into librtcore
 * again) and exits. A child that inherited librtcore's state locked by
 * the busy thread would hang: SIGALRM ends it after 10 s. */
static volatile int churning = 1;

static void *churn(void *arg) {
    (void)arg;
    while (churning) {
        pthread_mutex_t *m = malloc(sizeof *m);
        pthread_mutex_init(m, NULL);
        pthread_mutex_lock(m);
        pthread_mutex_unlock(m);
        pthread_mutex_destroy(m);
        free(m);
    }
    return NULL;
}

static int fork_busy(void) {
    pthread_t t;
    pthread_create(&t, NULL, churn, NULL);
    int hung = 0;
    for (int i = 0; i < 200; i++) {
        pid_t p = fork();
        if (p == 0) {
            alarm(10);
            pthread_mutex_t m;
            pthread_mutex_init(&m, NULL);
            pthread_mutex_lock(&m);
            pthread_mutex_unlock(&m);
            pthread_mutex_destroy(&m);
            _exit(0);
        }
        /* Waited for 20 s at most (a child can hang in fork's own
         * handlers, before its alarm is set): then killed, and counted. */
        int st = 0, waited_ms = 0;
        while (waitpid(p, &st, WNOHANG) == 0) {
            if (waited_ms >= 20000) {
                kill(p, SIGKILL);
                waitpid(p, &st, 0);
                break;
            }
            usleep(1000);
            waited_ms++;
        }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) hung++;
    }
    churning = 0;
    pthread_join(t, NULL);
    printf("children that did not exit cleanly: %d\n", hung);
    return 0;
}

/* ---- threads that end holding locks ------------------------------------------ */

static pthread_mutex_t kept1 = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t kept2 = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t kept3 = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t holding;

static void *returns_holding(void *arg) {
    (void)arg;
    pthread_mutex_lock(&kept1);
    return NULL;
}

static void *exits_holding(void *arg) {
    (void)arg;
    pthread_mutex_lock(&kept2);
    pthread_exit(NULL);
}

static void *cancelled_holding(void *arg) {
    (void)arg;
    pthread_mutex_lock(&kept3);
    pthread_barrier_wait(&holding);
    for (;;) sleep(1); /* a cancellation point */
    return NULL;
}

static void *returns_clean(void *arg) {
    (void)arg;
    pair(&a, &b);
    return NULL;
}

/* Three threads end holding a lock (returning, by pthread_exit, and
 * cancelled), one ends holding none. */
static int exit_holding(void) {
    pthread_t t[4];
    pthread_barrier_init(&holding, NULL, 2);
    pthread_create(&t[0], NULL, returns_holding, NULL);
    pthread_create(&t[1], NULL, exits_holding, NULL);
    pthread_create(&t[2], NULL, cancelled_holding, NULL);
    pthread_create(&t[3], NULL, returns_clean, NULL);
    pthread_barrier_wait(&holding);
    pthread_cancel(t[2]);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    puts("joined");
    return 0;
}

/* A robust mutex whose owner thread ends holding it: the next lock call
 * returns EOWNERDEAD, holds it, and is flagged. */
static pthread_mutex_t robust;

static void *dies_holding(void *arg) {
    (void)arg;
    pthread_mutex_lock(&robust);
    return NULL;
}

static int robust_owner_died(void) {
    pthread_mutexattr_t at;
    pthread_mutexattr_init(&at);
    pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&robust, &at);
    pthread_t t;
    pthread_create(&t, NULL, dies_holding, NULL);
    pthread_join(t, NULL);
    int rc = pthread_mutex_lock(&robust);
    printf("lock: %s\n", rc == EOWNERDEAD ? "EOWNERDEAD" : "?");
    pthread_mutex_consistent(&robust);
    pthread_mutex_unlock(&robust);
    return 0;
}

/* ---- read/write locks -------------------------------------------------- */

static pthread_rwlock_t r1 = PTHREAD_RWLOCK_INITIALIZER;
static pthread_rwlock_t r2 = PTHREAD_RWLOCK_INITIALIZER;

static void *read_r1_r2(void *arg) {
    (void)arg;
    pthread_rwlock_rdlock(&r1);
    pthread_rwlock_rdlock(&r2);
    pthread_rwlock_unlock(&r2);
    pthread_rwlock_unlock(&r1);
    return NULL;
}

static void *read_r2_r1(void *arg) {
    (void)arg;
    pthread_rwlock_rdlock(&r2);
    pthread_rwlock_rdlock(&r1);
    pthread_rwlock_unlock(&r1);
    pthread_rwlock_unlock(&r2);
    return NULL;
}

static void run_thread(void *(*f)(void *)) {
    pthread_t t;
    pthread_create(&t, NULL, f, NULL);
    pthread_join(t, NULL);
}

/* Readers in both orders: readers do not wait for readers, no report. */
static int rw_read_read(void) {
    run_thread(read_r1_r2);
    run_thread(read_r2_r1);
    return 0;
}

static void *write_r1_then_a(void *arg) {
    (void)arg;
    pthread_rwlock_wrlock(&r1);
    pthread_mutex_lock(&a);
    pthread_mutex_unlock(&a);
    pthread_rwlock_unlock(&r1);
    return NULL;
}

static void *a_then_read_r1(void *arg) {
    (void)arg;
    pthread_mutex_lock(&a);
    pthread_rwlock_rdlock(&r1);
    pthread_rwlock_unlock(&r1);
    pthread_mutex_unlock(&a);
    return NULL;
}

/* r1 written then a; later a then r1 read: the reader waits for the
 * writer, so this is an inversion through a read lock across two threads. */
static int rw_inversion(void) {
    run_thread(write_r1_then_a);
    run_thread(a_then_read_r1);
    return 0;
}

/* Read, then write the same lock: the write waits for the thread's own
 * read forever (run with --mode abort). */
static int rw_read_then_write(void) {
    pthread_rwlock_rdlock(&r1);
    pthread_rwlock_wrlock(&r1);
    return 0;
}

/* ---- condition variables ----------------------------------------------- */

static pthread_cond_t ready = PTHREAD_COND_INITIALIZER;
static int queue_len, produced_all;

static void *consumer(void *arg) {
    (void)arg;
    int got = 0;
    pthread_mutex_lock(&a);
    for (;;) {
        while (queue_len == 0 && !produced_all) pthread_cond_wait(&ready, &a);
        if (queue_len == 0) break;
        queue_len--;
        got++;
        /* b under a, as the producer does. */
        pthread_mutex_lock(&b);
        pthread_mutex_unlock(&b);
    }
    pthread_mutex_unlock(&a);
    printf("consumed %d\n", got);
    return NULL;
}

/* A producer and a consumer on a mutex and a condition: the waits release
 * and re-take the mutex; no report. */
static int cond(void) {
    pthread_t t;
    pthread_create(&t, NULL, consumer, NULL);
    for (int i = 0; i < 1000; i++) {
        pthread_mutex_lock(&a);
        queue_len++;
        pthread_mutex_lock(&b);
        pthread_mutex_unlock(&b);
        pthread_cond_signal(&ready);
        pthread_mutex_unlock(&a);
        if (i % 100 == 0) usleep(1000);
    }
    pthread_mutex_lock(&a);
    produced_all = 1;
    pthread_cond_broadcast(&ready);
    pthread_mutex_unlock(&a);
    pthread_join(t, NULL);
    return 0;
}

/* ---- glibc 2.30's clock variants ----------------------------------------- */

static struct timespec soon(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += 1;
    return t;
}

/* a then b by pthread_mutex_clocklock, later b then a (and r1 read by
 * pthread_rwlock_clockrdlock under a, a condition waited on by
 * pthread_cond_clockwait until it times out): the inversion is reported
 * and the wait counted, so each clock variant went through the checker. */
static int clock_variants(void) {
    struct timespec t = soon();
    pthread_mutex_lock(&a);
    if (pthread_mutex_clocklock(&b, CLOCK_MONOTONIC, &t) == 0) pthread_mutex_unlock(&b);
    if (pthread_rwlock_clockrdlock(&r1, CLOCK_MONOTONIC, &t) == 0) pthread_rwlock_unlock(&r1);
    struct timespec brief;
    clock_gettime(CLOCK_MONOTONIC, &brief);
    brief.tv_nsec += 1000000;
    if (brief.tv_nsec >= 1000000000) {
        brief.tv_sec++;
        brief.tv_nsec -= 1000000000;
    }
    int rc = pthread_cond_clockwait(&ready, &a, CLOCK_MONOTONIC, &brief);
    pthread_mutex_unlock(&a);
    pthread_mutex_lock(&b);
    if (pthread_mutex_clocklock(&a, CLOCK_MONOTONIC, &t) == 0) pthread_mutex_unlock(&a);
    pthread_mutex_unlock(&b);
    printf("clockwait: %s\n", rc == ETIMEDOUT ? "timed out" : "?");
    return 0;
}

/* ---- a wait that surely happens --------------------------------------------- */

static void *take_a(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "waiter");
    pthread_mutex_lock(&a); /* waits for main */
    pthread_mutex_unlock(&a);
    return NULL;
}

/* main holds a for 50 ms while another thread wants it. */
static int contend(void) {
    pthread_mutex_lock(&a);
    pthread_t t;
    pthread_create(&t, NULL, take_a, NULL);
    usleep(50 * 1000);
    pthread_mutex_unlock(&a);
    pthread_join(t, NULL);
    return 0;
}

/* ---- waits across generations ---------------------------------------------- */

static pthread_cond_t tick = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t q = PTHREAD_MUTEX_INITIALIZER;
static volatile int waits_done;

static void *waits_worker(void *arg) {
    char name[16];
    snprintf(name, sizeof name, "sleeper-%d", (int)(long)arg);
    pthread_setname_np(pthread_self(), name);
    for (int i = 0; i < 60; i++) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 2 * 1000 * 1000;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&q);
        pthread_cond_timedwait(&tick, &q, &until);
        pthread_mutex_unlock(&q);
        pthread_mutex_lock(&a); /* main holds it now and then */
        pthread_mutex_unlock(&a);
    }
    return NULL;
}

/* Three named threads wait on a condition (timed, 2 ms) and contend for a
 * mutex main holds 1 ms at a time, for a few hundred milliseconds: traced
 * with short generations, their waits cross generation starts. */
static int waits(void) {
    pthread_t t[3];
    for (long i = 0; i < 3; i++) pthread_create(&t[i], NULL, waits_worker, (void *)i);
    for (int i = 0; i < 100; i++) {
        pthread_mutex_lock(&a);
        usleep(1000);
        pthread_mutex_unlock(&a);
        pthread_mutex_lock(&q);
        if (i % 3 == 0) pthread_cond_broadcast(&tick);
        pthread_mutex_unlock(&q);
        usleep(1000);
    }
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    puts("waited");
    return 0;
}

/* ---- a thread that never calls anything ------------------------------------- */

static volatile int spin_forever = 1;

static void *spinner(void *arg) {
    (void)arg;
    unsigned long n = 0;
    while (spin_forever) n++; /* no call at all */
    return (void *)n;
}

/* A thread spins with no call while main locks, waits and exits: the
 * trace's start (at load) and its stop (at exit) must not wait for it. */
static int spin(void) {
    pthread_t t;
    pthread_create(&t, NULL, spinner, NULL);
    for (int i = 0; i < 1000; i++) pair(&a, &b);
    usleep(300 * 1000);
    puts("exiting with the spinner spinning");
    return 0;
}

/* ---- a real deadlock ------------------------------------------------------ */

static pthread_barrier_t both;

static void *crosser(void *arg) {
    int first = arg != NULL;
    pthread_setname_np(pthread_self(), first ? "payer" : "payee");
    pthread_mutex_lock(first ? &a : &b);
    pthread_barrier_wait(&both);
    pthread_mutex_lock(first ? &b : &a); /* never returns */
    return NULL;
}

/* Two threads take a and b in opposite orders at once: deadlocked for
 * good. sysmon names the cycle; the test then ends the process. */
static int deadlock(void) {
    pthread_barrier_init(&both, NULL, 2);
    pthread_t t1, t2;
    pthread_create(&t1, NULL, crosser, (void *)1);
    pthread_create(&t2, NULL, crosser, NULL);
    puts("crossing");
    fflush(stdout);
    pthread_join(t1, NULL);
    return 0;
}

int main(int argc, char **argv) {
    const char *s = argc > 1 ? argv[1] : "";
    if (!strcmp(s, "abba-threads")) return abba_threads();
    if (!strcmp(s, "abba-one-thread")) return abba_one_thread();
    if (!strcmp(s, "b-then-a")) {
        pair(&b, &a); /* only this order: no cycle in this run */
        return 0;
    }
    if (!strcmp(s, "cycle3")) return cycle(3);
    if (!strcmp(s, "cycle4")) return cycle(4);
    if (!strcmp(s, "clean")) return clean();
    if (!strcmp(s, "trylock-reverse")) return trylock_reverse();
    if (!strcmp(s, "same-class")) return same_class(0);
    if (!strcmp(s, "same-class-reverse")) return same_class(1);
    if (!strcmp(s, "recursion")) return recursion();
    if (!strcmp(s, "recursive-ok")) return recursive_ok();
    if (!strcmp(s, "unlock-not-held")) return unlock_not_held();
    if (!strcmp(s, "fork")) return forked();
    if (!strcmp(s, "fork-busy")) return fork_busy();
    if (!strcmp(s, "exit-holding")) return exit_holding();
    if (!strcmp(s, "robust")) return robust_owner_died();
    if (!strcmp(s, "rw-read-read")) return rw_read_read();
    if (!strcmp(s, "rw-inversion")) return rw_inversion();
    if (!strcmp(s, "rw-read-then-write")) return rw_read_then_write();
    if (!strcmp(s, "cond")) return cond();
    if (!strcmp(s, "deadlock")) return deadlock();
    if (!strcmp(s, "clock")) return clock_variants();
    if (!strcmp(s, "contend")) return contend();
    if (!strcmp(s, "spin")) return spin();
    if (!strcmp(s, "waits")) return waits();
    if (!strcmp(s, "exit")) return atoi(argc > 2 ? argv[2] : "0");
    if (!strcmp(s, "pause")) {
        puts("pausing");
        fflush(stdout);
        for (;;) pause(); /* until a signal ends it */
    }
    fprintf(stderr, "unknown scenario '%s'\n", s);
    return 99;
}
