/* Mutexes and conditions under contention: no lost updates, no lost
 * wake-ups, timeouts racing signals wake each waiter once. Iterations scale
 * with RTC_TEST_SCALE. */
#include <pthread.h>
#include <sched.h>

#include "rtc_test.h"

#define THREADS 4

static rtc_mutex counter_lock = RTC_MUTEX_INIT_RANKED("counter", "st_counter");
static long counter;
static int iters;

static void *bump(void *arg) {
    (void)arg;
    for (int i = 0; i < iters; i++) {
        if (rtc_mutex_lock(&counter_lock) != RTC_OK) abort();
        long v = counter;
        counter = v + 1;
        if (rtc_mutex_unlock(&counter_lock) != RTC_OK) abort();
    }
    return NULL;
}

static void *try_bump(void *arg) {
    (void)arg;
    int done = 0;
    while (done < iters) {
        int s = rtc_mutex_trylock(&counter_lock);
        if (s == RTC_ERR_BUSY) {
            /* Let the holder run: under valgrind threads are serialised and a
             * bare spin starved it (the program once ran past 400 s). */
            sched_yield();
            continue;
        }
        if (s != RTC_OK) abort();
        counter++;
        done++;
        rtc_mutex_unlock(&counter_lock);
    }
    return NULL;
}

/* A bounded queue: producers and consumers with two conditions. */
#define QCAP 8
static rtc_mutex qlock = RTC_MUTEX_INIT_RANKED("queue", "st_queue");
static rtc_cond not_empty = RTC_COND_INIT, not_full = RTC_COND_INIT;
static int queue[QCAP], qhead, qlen;
static long consumed_sum, consumed_count;

static void *producer(void *arg) {
    int base = *(int *)arg;
    for (int i = 0; i < iters; i++) {
        rtc_mutex_lock(&qlock);
        while (qlen == QCAP) RTC_COND_WAIT(&not_full, &qlock);
        queue[(qhead + qlen) % QCAP] = base + i;
        qlen++;
        rtc_cond_signal(&not_empty);
        rtc_mutex_unlock(&qlock);
    }
    return NULL;
}

static void *consumer(void *arg) {
    int n = *(int *)arg;
    for (int i = 0; i < n; i++) {
        rtc_mutex_lock(&qlock);
        while (qlen == 0) {
            /* Timed waits racing signals: a timeout just retries. */
            int s = rtc_cond_timedwait(&not_empty, &qlock, 200000);
            if (s != RTC_OK && s != RTC_ERR_TIMED_OUT) abort();
        }
        consumed_sum += queue[qhead];
        consumed_count++;
        qhead = (qhead + 1) % QCAP;
        qlen--;
        rtc_cond_signal(&not_full);
        rtc_mutex_unlock(&qlock);
    }
    return NULL;
}

int main(void) {
    CHECK_STATUS(rtc_ranks_load("NONE < st_queue, st_counter;\n", "stress.ranks"), RTC_OK);
    iters = 1000 * rtc_t_scale();
    pthread_t t[THREADS];

    for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, i % 2 ? bump : try_bump, NULL);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    CHECK(counter == (long)iters * THREADS);

    int bases[2] = {0, 1000000};
    int per_consumer = iters; /* 2 producers x iters items, 2 consumers */
    pthread_t p[2], c[2];
    for (int i = 0; i < 2; i++) pthread_create(&c[i], NULL, consumer, &per_consumer);
    for (int i = 0; i < 2; i++) pthread_create(&p[i], NULL, producer, &bases[i]);
    for (int i = 0; i < 2; i++) pthread_join(p[i], NULL);
    for (int i = 0; i < 2; i++) pthread_join(c[i], NULL);
    long expect = 0;
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < iters; i++) expect += bases[b] + i;
    CHECK(consumed_count == 2L * iters);
    CHECK(consumed_sum == expect);
    CHECK(qlen == 0);
    CHECK(rtc_t_violations() == 0);

    CHECK_STATUS(rtc_cond_destroy(&not_empty), RTC_OK);
    CHECK_STATUS(rtc_cond_destroy(&not_full), RTC_OK);
    CHECK_STATUS(rtc_mutex_destroy(&qlock), RTC_OK);
    CHECK_STATUS(rtc_mutex_destroy(&counter_lock), RTC_OK);
    return rtc_t_finish();
}
