/* librtcore_preload.so: lock-order checking for programs nobody changed.
 *
 * Loaded with LD_PRELOAD (by `rtcore run`, or by hand), it interposes the
 * pthread mutex functions, calls the real ones (found with
 * dlsym(RTLD_NEXT)), and tells librtcore about each call through its
 * rtc_preload_* hooks, which learn the order of lock classes and report
 * what would deadlock before it does (docs/preload.md).
 *
 * The traps, each handled here:
 * - Start-up: calls that arrive before the constructor ran (another
 *   library's constructor) resolve the real function on the spot and go
 *   straight to it; librtcore is looked up once, in the constructor.
 * - Recursion: a hook may allocate, and an allocator may lock a pthread
 *   mutex; a per-thread guard sends any call made while a hook runs on
 *   this thread straight to the real function.
 * - Statically initialised mutexes (PTHREAD_MUTEX_INITIALIZER, no init
 *   call): librtcore classes them by the site of their first lock call.
 * - Teardown: after the destructor, calls go straight to the real
 *   functions.
 * - One process, one rtcore: librtcore is the copy already loaded if there
 *   is one (RTLD_NOLOAD), else the one beside this library.
 * - Versioned symbols: the condition waits exist in two versions in glibc
 *   (GLIBC_2.2.5, for binaries linked before 2.3.2, and GLIBC_2.3.2); both
 *   are defined here (rtcore_preload.map names the versions) and each
 *   calls its own real version. The mutex and read/write lock functions
 *   have one version each; defined without a version, they match it.
 * - A condition wait re-locks its mutex inside glibc, through its internal
 *   lock: the hooks are told of the release before and the re-take after.
 * glibc's own internal locks never go through these symbols: they are
 * invisible to any interposer. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))
#define TLS __thread __attribute__((tls_model("initial-exec")))

typedef int (*lock_fn)(pthread_mutex_t *);
typedef int (*timedlock_fn)(pthread_mutex_t *, const struct timespec *);
typedef int (*init_fn)(pthread_mutex_t *, const pthread_mutexattr_t *);
typedef int (*rw_fn)(pthread_rwlock_t *);
typedef int (*rw_timed_fn)(pthread_rwlock_t *, const struct timespec *);
typedef int (*rw_init_fn)(pthread_rwlock_t *, const pthread_rwlockattr_t *);
typedef int (*cond_wait_fn)(pthread_cond_t *, pthread_mutex_t *);
typedef int (*cond_timedwait_fn)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *);

static struct {
    init_fn init;
    lock_fn destroy, lock, trylock, unlock;
    timedlock_fn timedlock;
    rw_init_fn rw_init;
    rw_fn rw_destroy, rdlock, tryrdlock, wrlock, trywrlock, rw_unlock;
    rw_timed_fn timedrdlock, timedwrlock;
    /* Both versions of the condition functions that take a mutex: the
     * current one and the one binaries linked before glibc 2.3.2 use. */
    cond_wait_fn wait_new, wait_old;
    cond_timedwait_fn timedwait_new, timedwait_old;
} real;

/* Kinds the hooks take: a mutex's glibc type (0-3), or a read/write lock
 * taken for reading or writing. */
enum { KIND_READ = 4, KIND_WRITE = 5 };

/* librtcore's hooks (NULL until found: calls then just pass through). */
static struct {
    int (*init)(const void *, const void *);
    int (*destroyed)(const void *);
    int (*wanted)(const void *, const void *, uint32_t);
    int (*acquired)(const void *, const void *, uint32_t, uint32_t, uint64_t);
    int (*released)(const void *, const void *);
    size_t (*summary)(char *, size_t);
} hook;

static volatile int active; /* between the constructor and the destructor */
static TLS int in_hook;     /* a hook runs on this thread */

static void *next(const char *name) {
    void *f = dlsym(RTLD_NEXT, name);
    if (!f) {
        static const char msg[] = "rtcore preload: a pthread function is missing from the next library\n";
        fputs(msg, stderr);
        abort();
    }
    return f;
}

static void *next_version(const char *name, const char *version) {
    void *f = dlvsym(RTLD_NEXT, name, version);
    return f ? f : next(name);
}

static void resolve(void) {
    if (__atomic_load_n(&real.lock, __ATOMIC_ACQUIRE)) return;
    real.rw_init = (rw_init_fn)next("pthread_rwlock_init");
    real.rw_destroy = (rw_fn)next("pthread_rwlock_destroy");
    real.rdlock = (rw_fn)next("pthread_rwlock_rdlock");
    real.tryrdlock = (rw_fn)next("pthread_rwlock_tryrdlock");
    real.timedrdlock = (rw_timed_fn)next("pthread_rwlock_timedrdlock");
    real.wrlock = (rw_fn)next("pthread_rwlock_wrlock");
    real.trywrlock = (rw_fn)next("pthread_rwlock_trywrlock");
    real.timedwrlock = (rw_timed_fn)next("pthread_rwlock_timedwrlock");
    real.rw_unlock = (rw_fn)next("pthread_rwlock_unlock");
    real.wait_new = (cond_wait_fn)next_version("pthread_cond_wait", "GLIBC_2.3.2");
    real.wait_old = (cond_wait_fn)next_version("pthread_cond_wait", "GLIBC_2.2.5");
    real.timedwait_new = (cond_timedwait_fn)next_version("pthread_cond_timedwait", "GLIBC_2.3.2");
    real.timedwait_old = (cond_timedwait_fn)next_version("pthread_cond_timedwait", "GLIBC_2.2.5");
    real.init = (init_fn)next("pthread_mutex_init");
    real.destroy = (lock_fn)next("pthread_mutex_destroy");
    real.trylock = (lock_fn)next("pthread_mutex_trylock");
    real.unlock = (lock_fn)next("pthread_mutex_unlock");
    real.timedlock = (timedlock_fn)next("pthread_mutex_timedlock");
    __atomic_store_n(&real.lock, (lock_fn)next("pthread_mutex_lock"), __ATOMIC_RELEASE);
}

/* librtcore: the copy already loaded, else the one beside this library. */
static void *find_rtcore(void) {
    void *h = dlopen("librtcore.so.0", RTLD_NOW | RTLD_NOLOAD);
    if (h) return h;
    Dl_info me;
    if (dladdr((void *)find_rtcore, &me) && me.dli_fname) {
        char path[PATH_MAX];
        const char *slash = strrchr(me.dli_fname, '/');
        size_t dir = slash ? (size_t)(slash - me.dli_fname) : 0;
        if (dir + sizeof "/librtcore.so.0" < sizeof path) {
            memcpy(path, me.dli_fname, dir);
            strcpy(path + dir, slash ? "/librtcore.so.0" : "librtcore.so.0");
            h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
            if (h) return h;
        }
    }
    return dlopen("librtcore.so.0", RTLD_NOW | RTLD_GLOBAL);
}

__attribute__((constructor)) static void preload_start(void) {
    in_hook = 1;
    resolve();
    void *h = find_rtcore();
    if (!h) {
        fprintf(stderr, "rtcore preload: cannot load librtcore.so.0 (%s): the program runs unchecked\n", dlerror());
        in_hook = 0;
        return;
    }
    hook.init = (int (*)(const void *, const void *))dlsym(h, "rtc_preload_lock_init");
    hook.destroyed = (int (*)(const void *))dlsym(h, "rtc_preload_lock_destroyed");
    hook.wanted = (int (*)(const void *, const void *, uint32_t))dlsym(h, "rtc_preload_lock_wanted");
    hook.acquired = (int (*)(const void *, const void *, uint32_t, uint32_t, uint64_t))dlsym(h, "rtc_preload_lock_acquired");
    hook.released = (int (*)(const void *, const void *))dlsym(h, "rtc_preload_lock_released");
    hook.summary = (size_t (*)(char *, size_t))dlsym(h, "rtc_preload_summary");
    if (!hook.init || !hook.destroyed || !hook.wanted || !hook.acquired || !hook.released || !hook.summary) {
        fprintf(stderr, "rtcore preload: librtcore.so.0 lacks the rtc_preload_* hooks (an older librtcore?): the program runs unchecked\n");
        memset(&hook, 0, sizeof hook);
        in_hook = 0;
        return;
    }
    __atomic_store_n(&active, 1, __ATOMIC_RELEASE);
    in_hook = 0;
}

/* The summary, at exit: into DIR/summary-PID when RTCORE_PRELOAD_SUMMARY
 * names a directory DIR (`rtcore run`, which prints the program's), else
 * on stderr. Created exclusively: never written over another file. */
__attribute__((destructor)) static void preload_end(void) {
    if (!__atomic_load_n(&active, __ATOMIC_ACQUIRE)) return;
    in_hook = 1;
    __atomic_store_n(&active, 0, __ATOMIC_RELEASE);
    size_t need = hook.summary(NULL, 0);
    char *text = malloc(need);
    if (text) {
        hook.summary(text, need);
        const char *dir = getenv("RTCORE_PRELOAD_SUMMARY");
        FILE *f = NULL;
        if (dir && *dir) {
            char path[PATH_MAX];
            int n = snprintf(path, sizeof path, "%s/summary-%ld", dir, (long)getpid());
            if (n > 0 && (size_t)n < sizeof path) f = fopen(path, "wxe");
        }
        fputs(text, f ? f : stderr);
        if (f) fclose(f);
        free(text);
    }
    in_hook = 0;
}

/* Is this call to be checked? Sets the guard if so. */
static inline int enter(void) {
    if (in_hook || !__atomic_load_n(&active, __ATOMIC_ACQUIRE)) return 0;
    in_hook = 1;
    return 1;
}

static inline void leave(void) { in_hook = 0; }

/* glibc's mutex type (PTHREAD_MUTEX_NORMAL 0, RECURSIVE 1, ERRORCHECK 2,
 * ADAPTIVE 3), also for statically initialised mutexes. */
static inline uint32_t kind_of(pthread_mutex_t *m) { return (uint32_t)(m->__data.__kind & 3); }

static inline uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

EXPORT int pthread_mutex_init(pthread_mutex_t *m, const pthread_mutexattr_t *a) {
    resolve();
    int rc = real.init(m, a);
    if (rc == 0 && enter()) {
        hook.init(m, __builtin_return_address(0));
        leave();
    }
    return rc;
}

EXPORT int pthread_mutex_destroy(pthread_mutex_t *m) {
    resolve();
    int rc = real.destroy(m);
    if (rc == 0 && enter()) {
        hook.destroyed(m);
        leave();
    }
    return rc;
}

/* A blocking lock: checked before (so a deadlock is reported before it
 * happens), timed only when the lock is busy. */
static int lock_at(pthread_mutex_t *m, const void *site, const struct timespec *until) {
    if (!enter()) return until ? real.timedlock(m, until) : real.lock(m);
    hook.wanted(m, site, kind_of(m));
    leave();
    uint64_t waited = 0;
    int rc = real.trylock(m);
    if (rc == EBUSY) {
        uint64_t t0 = now_ns();
        rc = until ? real.timedlock(m, until) : real.lock(m);
        waited = now_ns() - t0;
        if (waited == 0) waited = 1;
    }
    /* EOWNERDEAD: a robust mutex whose owner died is held by this thread. */
    if ((rc == 0 || rc == EOWNERDEAD) && enter()) {
        hook.acquired(m, site, kind_of(m), 0, waited);
        leave();
    }
    return rc;
}

EXPORT int pthread_mutex_lock(pthread_mutex_t *m) {
    lock_fn f = __atomic_load_n(&real.lock, __ATOMIC_ACQUIRE);
    if (!f) {
        resolve();
        f = real.lock;
    }
    if (!__atomic_load_n(&active, __ATOMIC_ACQUIRE) || in_hook) return f(m);
    return lock_at(m, __builtin_return_address(0), NULL);
}

EXPORT int pthread_mutex_timedlock(pthread_mutex_t *m, const struct timespec *until) {
    resolve();
    return lock_at(m, __builtin_return_address(0), until);
}

EXPORT int pthread_mutex_trylock(pthread_mutex_t *m) {
    resolve();
    int rc = real.trylock(m);
    if ((rc == 0 || rc == EOWNERDEAD) && enter()) {
        hook.acquired(m, __builtin_return_address(0), kind_of(m), 1, 0);
        leave();
    }
    return rc;
}

EXPORT int pthread_mutex_unlock(pthread_mutex_t *m) {
    resolve();
    const void *site = __builtin_return_address(0);
    if (enter()) {
        /* Told before the real unlock: once it is released another thread
         * may take it, and this thread's record must not lag behind. */
        hook.released(m, site);
        leave();
    }
    return real.unlock(m);
}

/* ---- read/write locks -------------------------------------------------- */

EXPORT int pthread_rwlock_init(pthread_rwlock_t *l, const pthread_rwlockattr_t *a) {
    resolve();
    int rc = real.rw_init(l, a);
    if (rc == 0 && enter()) {
        hook.init(l, __builtin_return_address(0));
        leave();
    }
    return rc;
}

EXPORT int pthread_rwlock_destroy(pthread_rwlock_t *l) {
    resolve();
    int rc = real.rw_destroy(l);
    if (rc == 0 && enter()) {
        hook.destroyed(l);
        leave();
    }
    return rc;
}

/* A blocking read or write lock, checked before, timed only when busy. */
static int rw_at(pthread_rwlock_t *l, const void *site, uint32_t kind, const struct timespec *until) {
    rw_fn blocking = kind == KIND_READ ? real.rdlock : real.wrlock;
    rw_fn try = kind == KIND_READ ? real.tryrdlock : real.trywrlock;
    rw_timed_fn timed = kind == KIND_READ ? real.timedrdlock : real.timedwrlock;
    if (!enter()) return until ? timed(l, until) : blocking(l);
    hook.wanted(l, site, kind);
    leave();
    uint64_t waited = 0;
    int rc = try(l);
    if (rc == EBUSY) {
        uint64_t t0 = now_ns();
        rc = until ? timed(l, until) : blocking(l);
        waited = now_ns() - t0;
        if (waited == 0) waited = 1;
    }
    if (rc == 0 && enter()) {
        hook.acquired(l, site, kind, 0, waited);
        leave();
    }
    return rc;
}

EXPORT int pthread_rwlock_rdlock(pthread_rwlock_t *l) {
    resolve();
    return rw_at(l, __builtin_return_address(0), KIND_READ, NULL);
}

EXPORT int pthread_rwlock_wrlock(pthread_rwlock_t *l) {
    resolve();
    return rw_at(l, __builtin_return_address(0), KIND_WRITE, NULL);
}

EXPORT int pthread_rwlock_timedrdlock(pthread_rwlock_t *l, const struct timespec *until) {
    resolve();
    return rw_at(l, __builtin_return_address(0), KIND_READ, until);
}

EXPORT int pthread_rwlock_timedwrlock(pthread_rwlock_t *l, const struct timespec *until) {
    resolve();
    return rw_at(l, __builtin_return_address(0), KIND_WRITE, until);
}

static int rw_try(pthread_rwlock_t *l, const void *site, uint32_t kind) {
    int rc = kind == KIND_READ ? real.tryrdlock(l) : real.trywrlock(l);
    if (rc == 0 && enter()) {
        hook.acquired(l, site, kind, 1, 0);
        leave();
    }
    return rc;
}

EXPORT int pthread_rwlock_tryrdlock(pthread_rwlock_t *l) {
    resolve();
    return rw_try(l, __builtin_return_address(0), KIND_READ);
}

EXPORT int pthread_rwlock_trywrlock(pthread_rwlock_t *l) {
    resolve();
    return rw_try(l, __builtin_return_address(0), KIND_WRITE);
}

EXPORT int pthread_rwlock_unlock(pthread_rwlock_t *l) {
    resolve();
    if (enter()) {
        hook.released(l, __builtin_return_address(0));
        leave();
    }
    return real.rw_unlock(l);
}

/* ---- condition variables ----------------------------------------------- */
/* A wait releases its mutex and takes it again inside glibc (through its
 * internal lock, not the interposed symbol): the hooks are told both. The
 * functions are defined in both symbol versions glibc has (binaries linked
 * before glibc 2.3.2 use the old one, whose condition variables have
 * another layout); each calls the same version of the real one. */

static void before_wait(pthread_mutex_t *m, const void *site) {
    if (enter()) {
        hook.released(m, site);
        leave();
    }
}

static void after_wait(pthread_mutex_t *m, const void *site, int rc) {
    /* Every outcome but EINVAL-like misuse holds the mutex again (a time
     * out too; EOWNERDEAD for a robust one). */
    if ((rc == 0 || rc == ETIMEDOUT || rc == EOWNERDEAD) && enter()) {
        hook.wanted(m, site, kind_of(m));
        hook.acquired(m, site, kind_of(m), 2 /* after a wait */, 0);
        leave();
    }
}

#define COND_WAIT(name, fn)                                                       \
    EXPORT int name(pthread_cond_t *c, pthread_mutex_t *m) {                      \
        resolve();                                                                \
        const void *site = __builtin_return_address(0);                           \
        before_wait(m, site);                                                     \
        int rc = real.fn(c, m);                                                   \
        after_wait(m, site, rc);                                                  \
        return rc;                                                                \
    }
#define COND_TIMEDWAIT(name, fn)                                                  \
    EXPORT int name(pthread_cond_t *c, pthread_mutex_t *m, const struct timespec *t) { \
        resolve();                                                                \
        const void *site = __builtin_return_address(0);                           \
        before_wait(m, site);                                                     \
        int rc = real.fn(c, m, t);                                                \
        after_wait(m, site, rc);                                                  \
        return rc;                                                                \
    }

COND_WAIT(rtcore_cond_wait_new, wait_new)
COND_WAIT(rtcore_cond_wait_old, wait_old)
COND_TIMEDWAIT(rtcore_cond_timedwait_new, timedwait_new)
COND_TIMEDWAIT(rtcore_cond_timedwait_old, timedwait_old)
__asm__(".symver rtcore_cond_wait_new, pthread_cond_wait@@GLIBC_2.3.2");
__asm__(".symver rtcore_cond_wait_old, pthread_cond_wait@GLIBC_2.2.5");
__asm__(".symver rtcore_cond_timedwait_new, pthread_cond_timedwait@@GLIBC_2.3.2");
__asm__(".symver rtcore_cond_timedwait_old, pthread_cond_timedwait@GLIBC_2.2.5");
