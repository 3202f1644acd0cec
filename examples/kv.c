/* rtcore's demo in C: a small key-value service, traced.
 *
 * Clients send requests over socket pairs; workers read them inside blocking
 * regions and serve them under ranked locks (index, then a shard, then the
 * stats; examples/kv.ranks), each request a task with regions. A hook
 * samples the queue depths as counters. In a quiet window a compactor takes
 * a shard and then the index: the inversion is reported the first time. The
 * run is traced in a few start/stop cycles into kv-trace-N.rtctrace, and
 * each trace is checked.
 *
 * Build and run from the repository root after `cargo build --release`:
 *   gcc -O2 -Iinclude examples/kv.c -Ltarget/release -lrtcore -Wl,-rpath,$PWD/target/release -lpthread -o kv && ./kv
 * Then: target/release/rtcore export kv-trace-1.rtctrace --format json -o kv-trace-1.json
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "rtcore.h"

#define WORKERS 4
#define SHARDS 8
#define PIPELINE 8
#define TRACES 3

static rtc_mutex index_lock = RTC_MUTEX_INIT_RANKED("index", "index");
static rtc_mutex stats_lock = RTC_MUTEX_INIT_RANKED("stats", "stats");
static rtc_mutex shard_lock[SHARDS];
static uint64_t shard_data[SHARDS][1024]; /* guarded by shard_lock[i] */
static uint64_t served;                   /* guarded by stats_lock */
static atomic_long depth[WORKERS];        /* requests in flight per worker */
static atomic_int paused, stopping;

static void check(rtc_status s, const char *what) {
    if (s != RTC_OK) {
        char msg[512];
        rtc_last_error_message(msg, sizeof msg);
        fprintf(stderr, "kv: %s: %s (%s)\n", what, rtc_status_str(s), msg);
        exit(2);
    }
}

/* Read or write exactly len bytes; 0 at end of file or on error. */
static int io_all(int fd, void *buf, size_t len, int write_it) {
    size_t done = 0;
    while (done < len) {
        ssize_t n = write_it ? write(fd, (char *)buf + done, len - done)
                             : read(fd, (char *)buf + done, len - done);
        if (n <= 0) return 0;
        done += (size_t)n;
    }
    return 1;
}

struct peer {
    int id, fd;
};

static void *worker(void *arg) {
    struct peer *p = arg;
    char name[32];
    snprintf(name, sizeof name, "kv-worker-%d", p->id);
    check(rtc_thread_attach(name, NULL), "attach");
    uint64_t req[2];
    for (;;) {
        rtc_enter_blocking("read request");
        int ok = io_all(p->fd, req, sizeof req, 0);
        rtc_exit_blocking();
        if (!ok) break;
        uint64_t task = 0;
        check(rtc_task_begin(req[0] ? "put" : "get", &task), "task");
        RTC_REGION_BEGIN("lookup");
        unsigned shard = (unsigned)(req[1] % SHARDS);
        check(RTC_MUTEX_LOCK(&index_lock), "lock index");
        check(RTC_MUTEX_LOCK(&shard_lock[shard]), "lock shard");
        check(rtc_mutex_unlock(&index_lock), "unlock index");
        RTC_REGION_END();
        RTC_REGION_BEGIN("apply");
        uint64_t *slot = &shard_data[shard][req[1] % 1024];
        uint64_t value = req[0] ? ++*slot : *slot;
        check(RTC_MUTEX_LOCK(&stats_lock), "lock stats");
        served++;
        check(rtc_mutex_unlock(&stats_lock), "unlock stats");
        check(rtc_mutex_unlock(&shard_lock[shard]), "unlock shard");
        RTC_REGION_END();
        check(rtc_task_end(task), "task end");
        rtc_enter_blocking("write reply");
        io_all(p->fd, &value, sizeof value, 1);
        rtc_exit_blocking();
        atomic_fetch_sub(&depth[p->id], 1);
        rtc_safepoint();
    }
    check(rtc_thread_detach(), "detach");
    return NULL;
}

static void *client(void *arg) {
    struct peer *p = arg;
    char name[32];
    snprintf(name, sizeof name, "kv-client-%d", p->id);
    check(rtc_thread_attach(name, NULL), "attach");
    uint64_t in_flight = 0, n = 0, rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)p->id;
    for (;;) {
        int stop = atomic_load(&stopping), pause = atomic_load(&paused);
        if (!stop && !pause && in_flight < PIPELINE) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            uint64_t req[2] = {n++ % 4 == 0, rng % 10000};
            atomic_fetch_add(&depth[p->id], 1);
            rtc_enter_blocking("send request");
            io_all(p->fd, req, sizeof req, 1);
            rtc_exit_blocking();
            in_flight++;
            continue;
        }
        if (in_flight == 0) {
            if (stop) break;
            rtc_enter_blocking("maintenance window");
            usleep(1000);
            rtc_exit_blocking();
            continue;
        }
        uint64_t reply;
        rtc_enter_blocking("read reply");
        io_all(p->fd, &reply, sizeof reply, 0);
        rtc_exit_blocking();
        in_flight--;
        rtc_safepoint();
    }
    shutdown(p->fd, SHUT_WR);
    check(rtc_thread_detach(), "detach");
    return NULL;
}

/* The bug on purpose: a shard, then the index (index < shard is declared).
 * Run in a quiet window; reported on first use all the same. */
static void *compactor(void *arg) {
    (void)arg;
    check(rtc_thread_attach("kv-compactor", NULL), "attach");
    for (int i = 0; i < SHARDS; i++) {
        check(RTC_MUTEX_LOCK(&shard_lock[i]), "lock shard");
        check(RTC_MUTEX_LOCK(&index_lock), "lock index");
        check(rtc_mutex_unlock(&index_lock), "unlock index");
        check(rtc_mutex_unlock(&shard_lock[i]), "unlock shard");
    }
    check(rtc_thread_detach(), "detach");
    return NULL;
}

/* The hook: queue depths as counters, only while tracing. */
static void sample_depths(void *user) {
    (void)user;
    if (!RTC_TRACE_ON()) return;
    char name[40];
    for (int i = 0; i < WORKERS; i++) {
        snprintf(name, sizeof name, "queue depth kv-worker-%d", i);
        RTC_COUNTER(name, atomic_load(&depth[i]));
    }
}

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

int main(int argc, char **argv) {
    /* The rank file itself, so a report cites its real lines. Run from the
     * checkout's top directory, or pass the file's path. */
    const char *ranks = argc > 1 ? argv[1] : "examples/kv.ranks";
    check(rtc_ranks_load_file(ranks), "load the rank file (run from the checkout, or pass its path)");
    check(rtc_set_maxprocs(2, NULL), "maxprocs");
    for (int i = 0; i < SHARDS; i++) {
        char name[16];
        snprintf(name, sizeof name, "shard-%d", i);
        check(rtc_mutex_init(&shard_lock[i], name, "shard"), "mutex init");
    }
    uint64_t hook;
    check(rtc_sysmon_hook_add("sample queue depths", 2000000, sample_depths, NULL, &hook), "hook");

    pthread_t threads[2 * WORKERS];
    struct peer peers[2 * WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        int fds[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) {
            perror("socketpair");
            return 2;
        }
        peers[2 * i] = (struct peer){i, fds[0]};
        peers[2 * i + 1] = (struct peer){i, fds[1]};
        pthread_create(&threads[2 * i], NULL, worker, &peers[2 * i]);
        pthread_create(&threads[2 * i + 1], NULL, client, &peers[2 * i + 1]);
    }

    int consistent = 0;
    for (int t = 1; t <= TRACES; t++) {
        char path[64], report[1024];
        snprintf(path, sizeof path, "kv-trace-%d.rtctrace", t);
        rtc_trace_config cfg = RTC_TRACE_CONFIG_INIT;
        cfg.sink_kind = RTC_TRACE_SINK_PATH;
        cfg.path = path;
        check(rtc_trace_start(&cfg), "trace start");
        if (t == 2) {
            /* The maintenance window: clients pause, workers drain. */
            sleep_ms(50);
            atomic_store(&paused, 1);
            for (int i = 0; i < WORKERS; i++)
                while (atomic_load(&depth[i]) > 0) sleep_ms(1);
            pthread_t c;
            pthread_create(&c, NULL, compactor, NULL);
            pthread_join(c, NULL);
            atomic_store(&paused, 0);
        }
        sleep_ms(250);
        check(rtc_trace_stop(), "trace stop");
        rtc_status s = rtc_trace_check_file(path, report, sizeof report);
        char *by_kind = strstr(report, "; by kind");
        if (by_kind) *by_kind = 0; /* the summary's start is enough here */
        printf("%s: %s\n", path, report);
        consistent += s == RTC_OK;
        sleep_ms(150);
    }
    atomic_store(&stopping, 1);
    for (int i = 0; i < 2 * WORKERS; i++) pthread_join(threads[i], NULL);
    check(rtc_sysmon_hook_remove(hook), "hook remove");

    uint64_t violations = 0;
    rtc_lockrank_violations(&violations);
    rtc_sysmon_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    check(rtc_sysmon_get_stats(&st), "sysmon stats");
    printf("requests served %llu; %d of %d traces consistent; %llu order violations; "
           "sysmon retook %llu processors\n",
           (unsigned long long)served, consistent, TRACES, (unsigned long long)violations,
           (unsigned long long)st.retakes);
    printf("open one: target/release/rtcore export kv-trace-2.rtctrace --format json -o kv-trace-2.json,\n"
           "then https://ui.perfetto.dev, \"Open trace file\"\n");
    return consistent == TRACES && violations == SHARDS && rtc_shutdown() == RTC_OK ? 0 : 1;
}
