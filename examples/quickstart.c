/* rtcore quick start: declare lock ranks, take two ranked mutexes in the
 * wrong order, and read the report rtcore prints (once) for it.
 *
 * Build and run from the repository root after `cargo build --release`:
 *   gcc -Iinclude examples/quickstart.c -Ltarget/release -lrtcore -Wl,-rpath,$PWD/target/release -o quickstart && ./quickstart
 */
#include <stdio.h>

#include "rtcore.h"

/* Statically initialised: the rank names are resolved on first lock. */
static rtc_mutex accounts = RTC_MUTEX_INIT_RANKED("accounts", "accounts");
static rtc_mutex audit_log = RTC_MUTEX_INIT_RANKED("audit-log", "audit");

static int check(rtc_status s, const char *what) {
    if (s != RTC_OK) {
        char msg[512];
        rtc_last_error_message(msg, sizeof msg);
        fprintf(stderr, "%s: %s (%s)\n", what, rtc_status_str(s), msg);
    }
    return s;
}

int main(void) {
    /* accounts may be held when audit-log is taken, not the other way. */
    if (check(rtc_ranks_load("NONE < accounts;\naccounts < audit;\n", "bank.ranks"), "load ranks")) return 1;

    /* The right order: no report. */
    check(RTC_MUTEX_LOCK(&accounts), "lock accounts");
    check(RTC_MUTEX_LOCK(&audit_log), "lock audit-log");
    check(rtc_mutex_unlock(&audit_log), "unlock");
    check(rtc_mutex_unlock(&accounts), "unlock");

    /* The wrong order: reported on stderr the first time, then allowed. */
    check(RTC_MUTEX_LOCK(&audit_log), "lock audit-log");
    check(RTC_MUTEX_LOCK(&accounts), "lock accounts");
    check(rtc_mutex_unlock(&accounts), "unlock");
    check(rtc_mutex_unlock(&audit_log), "unlock");

    /* Misuse answers with a status and a message, never a crash. */
    rtc_status s = rtc_mutex_unlock(&accounts);
    char msg[512];
    rtc_last_error_message(msg, sizeof msg);
    printf("unlocking a mutex not held: %s: %s\n", rtc_status_str(s), msg);

    uint64_t violations = 0;
    rtc_lockrank_violations(&violations);
    printf("order violations seen: %llu\n", (unsigned long long)violations);
    return rtc_shutdown() == RTC_OK && violations == 1 ? 0 : 1;
}
