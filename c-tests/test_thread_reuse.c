/* A thread's id and held record are found through a table keyed by its
 * thread pointer (src/lock/slots.rs), and glibc gives a new thread the
 * stack and TCB (so the thread pointer) of one that ended, as a forked
 * child does those of the parent's other threads. A new thread must never
 * be taken for the old one:
 *
 * - a thread locks a mutex and ends holding it; each later thread (most
 *   get its thread pointer: counted, and required at least once) may not
 *   unlock it (RTC_ERR_NOT_OWNER), finds it busy on a try-lock
 *   (RTC_ERR_BUSY, not RTC_ERR_WOULD_DEADLOCK), and locks, re-locks
 *   (refused) and unlocks a mutex of its own;
 * - in a forked child, whose parent's other threads hold mutexes at the
 *   fork, new threads (reusing those threads' TCBs) find them held by
 *   someone else in the same ways. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rtc_test.h"

#define LATER 40
#define HOLDERS 4

static rtc_mutex leaked = RTC_MUTEX_INIT_RANKED("leaked", NULL);
static rtc_mutex own = RTC_MUTEX_INIT_RANKED("own", NULL);
static rtc_mutex at_fork[HOLDERS];

static void *lock_and_end(void *arg) {
    (void)arg;
    CHECK_STATUS(rtc_mutex_lock(&leaked), RTC_OK);
    return NULL; /* ends holding it */
}

/* Checks `held` is another thread's, and this thread's own lock works. */
static void *stranger(void *arg) {
    rtc_mutex *held = arg;
    CHECK_STATUS(rtc_mutex_unlock(held), RTC_ERR_NOT_OWNER);
    CHECK_STATUS(rtc_mutex_trylock(held), RTC_ERR_BUSY);
    CHECK_STATUS(rtc_mutex_lock(&own), RTC_OK);
    CHECK_STATUS(rtc_mutex_lock(&own), RTC_ERR_WOULD_DEADLOCK);
    CHECK_STATUS(rtc_mutex_unlock(&own), RTC_OK);
    CHECK_STATUS(rtc_mutex_unlock(&own), RTC_ERR_NOT_OWNER);
    return NULL;
}

static int reused(pthread_t t, const pthread_t *old, int n) {
    for (int i = 0; i < n; i++)
        if (pthread_equal(t, old[i])) return 1;
    return 0;
}

static void test_ended_holder(void) {
    pthread_t first;
    pthread_create(&first, NULL, lock_and_end, NULL);
    pthread_join(first, NULL);
    int same = 0;
    for (int i = 0; i < LATER; i++) {
        pthread_t t;
        pthread_create(&t, NULL, stranger, &leaked);
        same += reused(t, &first, 1);
        pthread_join(t, NULL);
    }
    printf("  %d of %d later threads had the ended holder's thread pointer\n", same, LATER);
    CHECK(same > 0);
}

static int gate[2];
static atomic_int holding;

static void *hold_across_fork(void *arg) {
    rtc_mutex *m = arg;
    CHECK_STATUS(rtc_mutex_lock(m), RTC_OK);
    atomic_fetch_add(&holding, 1);
    char b;
    ssize_t n = read(gate[0], &b, 1); /* until the parent is done forking */
    (void)n;
    CHECK_STATUS(rtc_mutex_unlock(m), RTC_OK);
    return NULL;
}

static void test_fork_child(void) {
    CHECK(pipe(gate) == 0);
    pthread_t holders[HOLDERS];
    for (int i = 0; i < HOLDERS; i++) {
        CHECK_STATUS(rtc_mutex_init(&at_fork[i], "held at fork", NULL), RTC_OK);
        pthread_create(&holders[i], NULL, hold_across_fork, &at_fork[i]);
    }
    while (atomic_load(&holding) < HOLDERS) usleep(1000);
    int result[2];
    CHECK(pipe(result) == 0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int same = 0;
        for (int round = 0; round < 4; round++) {
            for (int i = 0; i < HOLDERS; i++) {
                pthread_t t;
                pthread_create(&t, NULL, stranger, &at_fork[i]);
                same += reused(t, holders, HOLDERS);
                pthread_join(t, NULL);
            }
        }
        printf("  child: %d of %d new threads had a parent thread's pointer\n", same,
               4 * HOLDERS);
        CHECK(same > 0);
        fflush(stdout);
        /* The result goes through the pipe and the child ends with SIGKILL
         * rather than exit: under valgrind an exit runs the leak check,
         * which counts the parent threads' thread-local data (as in
         * test_fork.c). */
        int failed = rtc_t_failed;
        ssize_t w = write(result[1], &failed, sizeof failed);
        (void)w;
        kill(getpid(), SIGKILL);
        _exit(99);
    }
    CHECK(pid > 0);
    close(result[1]);
    int failed = -1;
    CHECK(read(result[0], &failed, sizeof failed) == (ssize_t)sizeof failed);
    close(result[0]);
    CHECK(failed == 0);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    for (int i = 0; i < HOLDERS; i++) {
        ssize_t n = write(gate[1], "x", 1);
        (void)n;
    }
    for (int i = 0; i < HOLDERS; i++) pthread_join(holders[i], NULL);
}

int main(void) {
    test_ended_holder();
    test_fork_child();
    return rtc_t_finish();
}
