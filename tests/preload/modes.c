/* A program linked with librtcore, run under `rtcore run`
 * (tests/run_command.rs): the problems found in its pthread lock calls
 * go through the lock-rank mode it selects, as rtcore's own reports do.
 * argv[1] is "queue" or "callback". It takes a then b, then b then a (an
 * order cycle), and unlocks an error-checking mutex it does not hold;
 * then prints one line per report: reason, the wanted lock's kind, how
 * many locks are held and how many of them conflict. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "rtcore.h"

static pthread_mutex_t a = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t b = PTHREAD_MUTEX_INITIALIZER;

static void show(const struct rtc_lockrank_report *r, const char *how) {
    size_t conflicting = 0;
    for (size_t i = 0; i < r->held_count; i++) conflicting += (r->held[i].flags & RTC_LOCKRANK_HELD_CONFLICTS) != 0;
    printf("%s: reason %u, wanted kind %u at %s, held %zu, conflicting %zu, text %s\n", how, r->reason,
           r->wanted.kind, r->wanted.file[0] ? "a site" : "no site", r->held_count, conflicting,
           strstr(r->text, "rtcore: ") == r->text ? "ok" : "missing");
}

static void on_report(const struct rtc_lockrank_report *r, void *user) {
    (void)user;
    show(r, "callback");
}

int main(int argc, char **argv) {
    int queue = argc > 1 && !strcmp(argv[1], "queue");
    rtc_status st = queue ? rtc_lockrank_set_mode(RTC_LOCKRANK_QUEUE) : rtc_lockrank_set_callback(on_report, NULL);
    if (st != RTC_OK) {
        printf("mode not set: %d\n", (int)st);
        return 1;
    }
    pthread_mutex_lock(&a);
    pthread_mutex_lock(&b);
    pthread_mutex_unlock(&b);
    pthread_mutex_unlock(&a);
    pthread_mutex_lock(&b);
    pthread_mutex_lock(&a); /* closes the cycle: reported */
    pthread_mutex_unlock(&a);
    pthread_mutex_unlock(&b);
    pthread_mutexattr_t at;
    pthread_mutexattr_init(&at);
    pthread_mutexattr_settype(&at, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_t e;
    pthread_mutex_init(&e, &at);
    pthread_mutex_unlock(&e); /* not held: reported (EPERM) */
    if (queue) {
        struct rtc_lockrank_report *r = NULL;
        while (rtc_lockrank_next_report(&r) == RTC_OK && r) {
            show(r, "queued");
            rtc_lockrank_report_free(r);
        }
    }
    puts("done");
    return 0;
}
