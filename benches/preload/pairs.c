/* The interposition benchmark's workload (benches/preload.rs): uncontended
 * pthread_mutex_lock/unlock pairs on one mutex, with `held` other mutexes
 * (of other classes) held meanwhile, `n` pairs per sample; prints the
 * nanoseconds per pair of each of `samples` samples. Run plain and under
 * librtcore_preload.so by the harness, in turns. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t h[3] = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
                               PTHREAD_MUTEX_INITIALIZER};

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: pairs HELD N SAMPLES\n");
        return 2;
    }
    int held = atoi(argv[1]);
    long n = atol(argv[2]);
    int samples = atoi(argv[3]);
    if (held < 0 || held > 3 || n <= 0 || samples <= 0) return 2;
    for (int i = 0; i < held; i++) pthread_mutex_lock(&h[i]);
    /* Warm up: the first pairs learn the chain. */
    for (long i = 0; i < 1000; i++) {
        pthread_mutex_lock(&m);
        pthread_mutex_unlock(&m);
    }
    for (int s = 0; s < samples; s++) {
        double t0 = now();
        for (long i = 0; i < n; i++) {
            pthread_mutex_lock(&m);
            pthread_mutex_unlock(&m);
        }
        printf("%.3f\n", (now() - t0) / (double)n * 1e9);
    }
    for (int i = held - 1; i >= 0; i--) pthread_mutex_unlock(&h[i]);
    return 0;
}
