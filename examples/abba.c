/* A plain pthread program, written with no knowledge of rtcore, with a
 * lock-order inversion that deadlocks only when the two threads interleave
 * badly (here they never do: the second starts after the first ends).
 * `rtcore run` reports it anyway (README, "Check and trace a program you
 * didn't write"):
 *
 *     gcc -g -pthread examples/abba.c -o /tmp/abba
 *     target/debug/rtcore run -- /tmp/abba
 */
#include <pthread.h>
#include <stdio.h>

static pthread_mutex_t accounts = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t audit_log = PTHREAD_MUTEX_INITIALIZER;

static void *transfer(void *arg) {
    (void)arg;
    pthread_mutex_lock(&accounts);
    pthread_mutex_lock(&audit_log); /* accounts, then audit_log */
    pthread_mutex_unlock(&audit_log);
    pthread_mutex_unlock(&accounts);
    return NULL;
}

static void *audit(void *arg) {
    (void)arg;
    pthread_mutex_lock(&audit_log);
    pthread_mutex_lock(&accounts); /* audit_log, then accounts: inverted */
    pthread_mutex_unlock(&accounts);
    pthread_mutex_unlock(&audit_log);
    return NULL;
}

int main(void) {
    pthread_t t;
    pthread_create(&t, NULL, transfer, NULL);
    pthread_join(t, NULL);
    pthread_create(&t, NULL, audit, NULL);
    pthread_join(t, NULL);
    puts("abba: finished (this run was lucky)");
    return 0;
}
