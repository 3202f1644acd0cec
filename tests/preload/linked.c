/* A program linked with librtcore, run under `rtcore run`
 * (tests/run_command.rs): the preload library must use this librtcore,
 * not load a second one (one process, one rtcore). Prints how many
 * distinct librtcore files are mapped, and takes an rtcore mutex and a
 * pthread mutex. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "rtcore.h"

static rtc_mutex m = RTC_MUTEX_INIT_RANKED("ledger", NULL);
static pthread_mutex_t p = PTHREAD_MUTEX_INITIALIZER;

int main(void) {
    rtc_mutex_lock(&m);
    pthread_mutex_lock(&p);
    pthread_mutex_unlock(&p);
    rtc_mutex_unlock(&m);
    char seen[4][512];
    int n = 0;
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[1024];
    while (maps && fgets(line, sizeof line, maps)) {
        char *path = strchr(line, '/');
        if (!path || !strstr(path, "librtcore.so")) continue;
        path[strcspn(path, "\n")] = 0;
        int known = 0;
        for (int i = 0; i < n; i++) known |= strcmp(seen[i], path) == 0;
        if (!known && n < 4) snprintf(seen[n++], sizeof seen[0], "%s", path);
    }
    if (maps) fclose(maps);
    printf("librtcore copies: %d\n", n);
    return 0;
}
