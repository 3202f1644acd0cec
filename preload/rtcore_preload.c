/* librtcore_preload.so: lock-order checking for programs nobody changed.
 *
 * Loaded with LD_PRELOAD (by `rtcore run`, or by hand), it interposes the
 * pthread mutex, read/write lock and condition-wait functions, calls the
 * real ones (found with dlsym(RTLD_NEXT)), and keeps each thread's held
 * locks; librtcore's rtc_preload_* hooks class the locks, learn the order
 * of the classes and report what would deadlock before it does
 * (docs/preload.md).
 *
 * The fast path (docs/preload.md, "Cost"): each thread keeps, in its own
 * initial-exec thread-local block, the locks it holds, a cache of lock
 * classes by address, and the set of chains (the held classes, then the
 * wanted one) librtcore has already checked. A lock whose class is cached
 * and whose chain was checked costs a few loads and stores and no call
 * into librtcore; anything else takes the slow path (rtc_preload_lock_class
 * and rtc_preload_lock_check), once per chain and thread.
 *
 * Invariants:
 * - `held[0..depth]` are the locks this thread holds, oldest first, each
 *   once (a recursive mutex or a read lock taken again counts up);
 *   `held[i].chain` is the chain hash of classes 0..=i (SEED before the
 *   first).
 * - A class cache entry is used only if its epoch is librtcore's current
 *   one (a destroyed lock moves it: an address may then hold a lock of
 *   another class).
 * - A key in `checked` was sent to rtc_preload_lock_check by this thread;
 *   librtcore learns each chain once, so skipping it again changes nothing
 *   but the cost.
 * - The hooks never call back into these functions: the per-thread `busy`
 *   flag sends any pthread call made while a hook runs (an allocator's
 *   lock) straight to the real function.
 *
 * The traps, each handled here:
 * - Start-up: calls that arrive before the constructor ran (another
 *   library's constructor) resolve the real function on the spot and go
 *   straight to it; librtcore is looked up once, in the constructor.
 * - Statically initialised locks (PTHREAD_MUTEX_INITIALIZER, no init
 *   call): librtcore makes each its own class at its first lock call; a
 *   mutex's type is read from the mutex itself.
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
 *   lock: the held record drops it before and takes it back after.
 * - fork: the child's only thread is the one that forked; its
 *   thread-local record is a copy of the parent's, which is right.
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
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#define COLD __attribute__((noinline, cold))
#define HOT static inline __attribute__((always_inline))

typedef int (*lock_fn)(pthread_mutex_t *);
typedef int (*timedlock_fn)(pthread_mutex_t *, const struct timespec *);
typedef int (*clocklock_fn)(pthread_mutex_t *, clockid_t, const struct timespec *);
typedef int (*rw_clock_fn)(pthread_rwlock_t *, clockid_t, const struct timespec *);
typedef int (*cond_clockwait_fn)(pthread_cond_t *, pthread_mutex_t *, clockid_t, const struct timespec *);

/* How a blocking call is made: plainly, with a deadline (timed), or with a
 * deadline on a given clock (glibc 2.30's clock variants). */
struct deadline {
    const struct timespec *until; /* NULL: no deadline */
    int clocked;
    clockid_t clock;
};
static const struct deadline NO_DEADLINE = {NULL, 0, 0};
typedef int (*init_fn)(pthread_mutex_t *, const pthread_mutexattr_t *);
typedef int (*rw_fn)(pthread_rwlock_t *);
typedef int (*rw_timed_fn)(pthread_rwlock_t *, const struct timespec *);
typedef int (*rw_init_fn)(pthread_rwlock_t *, const pthread_rwlockattr_t *);
typedef int (*cond_wait_fn)(pthread_cond_t *, pthread_mutex_t *);
typedef int (*cond_timedwait_fn)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *);
typedef int (*create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

static struct {
    init_fn init;
    lock_fn destroy, lock, trylock, unlock;
    timedlock_fn timedlock;
    /* The clock variants: NULL where glibc has none (before 2.30); they
     * are called only by programs that found them. */
    clocklock_fn clocklock;
    rw_clock_fn clockrdlock, clockwrlock;
    cond_clockwait_fn clockwait;
    rw_init_fn rw_init;
    rw_fn rw_destroy, rdlock, tryrdlock, wrlock, trywrlock, rw_unlock;
    rw_timed_fn timedrdlock, timedwrlock;
    /* Both versions of the condition waits: the current one and the one
     * binaries linked before glibc 2.3.2 use. */
    cond_wait_fn wait_new, wait_old;
    cond_timedwait_fn timedwait_new, timedwait_old;
    create_fn create;
} real;

/* What a lock call takes: a mutex of glibc's type (0-3), or a read/write
 * lock for reading or writing (the kinds of rtc_preload_lock_check). */
enum { KIND_RECURSIVE = 1, KIND_READ = 4, KIND_WRITE = 5 };

/* A held lock: four words, written once when it is taken (every store
 * before the next locked instruction costs; docs/preload.md, "Cost"). */
struct held {
    const void *lock;
    const void *site;
    uint64_t info;  /* class (low 32 bits), kind (8 bits), times taken (24 bits) */
    uint64_t chain; /* the chain hash up to and including this lock */
};
#define INFO(cls, kind) ((uint64_t)(cls) | ((uint64_t)(kind) << 32) | (1ULL << 40))
#define CLS(info) ((uint32_t)(info))
#define KIND(info) ((uint32_t)((info) >> 32) & 0xff)
#define COUNT(info) ((uint32_t)((info) >> 40))
#define ONE_MORE (1ULL << 40)

/* The hooks librtcore exports (rtcore.h, "rtcore run"). */
typedef struct {
    const void *lock;
    const void *site;
    uint32_t kind;
    uint32_t lock_class;
} rtc_preload_held;

static struct {
    int (*init)(const void *, const void *);
    int (*destroyed)(const void *);
    int (*lock_class)(const void *, const void *, uint32_t *);
    int (*check)(const rtc_preload_held *, size_t, const rtc_preload_held *);
    int (*waited)(uint32_t, uint64_t, uint32_t);
    int (*not_held)(const void *, const void *);
    const volatile uint64_t *(*epoch)(void);
    size_t (*summary)(char *, size_t);
    size_t (*learned)(const char *, char *, size_t);
    int (*wait_begin)(const rtc_preload_held *, size_t, const rtc_preload_held *);
    int (*wait_end)(void);
    int (*cond_begin)(const void *);
    int (*cond_end)(void);
    int (*thread_exit)(const rtc_preload_held *, size_t);
} hook;

/* librtcore's "is a trace being recorded" word (rtcore.h's rtc_trace_on):
 * a condition wait is announced (its thread's state in the trace) only
 * while it is non-zero. */
static const volatile uint32_t *trace_on;

static const volatile uint64_t *epoch_word;
static volatile int active; /* between the constructor and the destructor */
/* The real lock and unlock while `active` (NULL otherwise): the fast paths
 * read one word for both "is checking on" and "where to go". */
static struct {
    lock_fn lock, unlock;
} fast;

#define MAX_HELD 64
#define CLASS_SLOTS 512
#define CHECKED_SLOTS 2048
#define SEED 0x9e3779b97f4a7c15ULL

static TLS struct {
    int busy; /* a hook runs on this thread */
    uint32_t depth;
    struct held held[MAX_HELD];
    struct {
        const void *lock;
        uint64_t epoch;
        uint32_t cls;
    } classes[CLASS_SLOTS];
    uint64_t checked[CHECKED_SLOTS];
    /* Per depth: the last lock taken there on the fast path with no lock
     * of its class held, the chain below it, the epoch and its class, and
     * the chain with it (see `memo_ok`). */
    struct {
        const void *lock;
        uint64_t below, epoch, chain;
        uint32_t cls;
    } memo[MAX_HELD];
} me;

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

static void resolve_all(void) {
    real.init = (init_fn)next("pthread_mutex_init");
    real.destroy = (lock_fn)next("pthread_mutex_destroy");
    real.trylock = (lock_fn)next("pthread_mutex_trylock");
    real.unlock = (lock_fn)next("pthread_mutex_unlock");
    real.timedlock = (timedlock_fn)next("pthread_mutex_timedlock");
    real.clocklock = (clocklock_fn)dlsym(RTLD_NEXT, "pthread_mutex_clocklock");
    real.clockrdlock = (rw_clock_fn)dlsym(RTLD_NEXT, "pthread_rwlock_clockrdlock");
    real.clockwrlock = (rw_clock_fn)dlsym(RTLD_NEXT, "pthread_rwlock_clockwrlock");
    real.clockwait = (cond_clockwait_fn)dlsym(RTLD_NEXT, "pthread_cond_clockwait");
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
    real.create = (create_fn)next("pthread_create");
    __atomic_store_n(&real.lock, (lock_fn)next("pthread_mutex_lock"), __ATOMIC_RELEASE);
}

static inline void resolve(void) {
    if (UNLIKELY(!__atomic_load_n(&real.lock, __ATOMIC_ACQUIRE))) resolve_all();
}

/* librtcore: the copy already loaded, else the one beside this library. */
static void *find_rtcore(void) {
    void *h = dlopen("librtcore.so.0", RTLD_NOW | RTLD_NOLOAD);
    if (h) return h;
    Dl_info self;
    if (dladdr((void *)find_rtcore, &self) && self.dli_fname) {
        char path[PATH_MAX];
        const char *slash = strrchr(self.dli_fname, '/');
        size_t dir = slash ? (size_t)(slash - self.dli_fname) : 0;
        if (dir + sizeof "/librtcore.so.0" < sizeof path) {
            memcpy(path, self.dli_fname, dir);
            strcpy(path + dir, slash ? "/librtcore.so.0" : "librtcore.so.0");
            h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
            if (h) return h;
        }
    }
    return dlopen("librtcore.so.0", RTLD_NOW | RTLD_GLOBAL);
}

__attribute__((constructor)) static void preload_start(void) {
    me.busy = 1;
    resolve();
    void *h = find_rtcore();
    if (!h) {
        fprintf(stderr, "rtcore preload: cannot load librtcore.so.0 (%s): the program runs unchecked\n", dlerror());
        me.busy = 0;
        return;
    }
    hook.init = (int (*)(const void *, const void *))dlsym(h, "rtc_preload_lock_init");
    hook.destroyed = (int (*)(const void *))dlsym(h, "rtc_preload_lock_destroyed");
    hook.lock_class = (int (*)(const void *, const void *, uint32_t *))dlsym(h, "rtc_preload_lock_class");
    hook.check = (int (*)(const rtc_preload_held *, size_t, const rtc_preload_held *))dlsym(h, "rtc_preload_lock_check");
    hook.waited = (int (*)(uint32_t, uint64_t, uint32_t))dlsym(h, "rtc_preload_lock_waited");
    hook.not_held = (int (*)(const void *, const void *))dlsym(h, "rtc_preload_unlock_not_held");
    hook.epoch = (const volatile uint64_t *(*)(void))dlsym(h, "rtc_preload_epoch");
    hook.summary = (size_t (*)(char *, size_t))dlsym(h, "rtc_preload_summary");
    hook.learned = (size_t (*)(const char *, char *, size_t))dlsym(h, "rtc_preload_learned_ranks");
    hook.wait_begin = (int (*)(const rtc_preload_held *, size_t, const rtc_preload_held *))dlsym(h, "rtc_preload_wait_begin");
    hook.wait_end = (int (*)(void))dlsym(h, "rtc_preload_wait_end");
    hook.cond_begin = (int (*)(const void *))dlsym(h, "rtc_preload_cond_wait_begin");
    hook.cond_end = (int (*)(void))dlsym(h, "rtc_preload_cond_wait_end");
    hook.thread_exit = (int (*)(const rtc_preload_held *, size_t))dlsym(h, "rtc_preload_thread_exit");
    trace_on = (const volatile uint32_t *)dlsym(h, "rtc_trace_on");
    if (!hook.thread_exit || !hook.cond_begin || !hook.cond_end || !trace_on || !hook.wait_begin || !hook.wait_end || !hook.learned || !hook.init || !hook.destroyed || !hook.lock_class || !hook.check || !hook.waited || !hook.not_held ||
        !hook.epoch || !hook.summary || !(epoch_word = hook.epoch())) {
        fprintf(stderr, "rtcore preload: librtcore.so.0 lacks the rtc_preload_* hooks (another version?): the program runs unchecked\n");
        memset(&hook, 0, sizeof hook);
        me.busy = 0;
        return;
    }
    __atomic_store_n(&active, 1, __ATOMIC_RELEASE);
    __atomic_store_n(&fast.unlock, real.unlock, __ATOMIC_RELEASE);
    __atomic_store_n(&fast.lock, real.lock, __ATOMIC_RELEASE);
    me.busy = 0;
}

/* Write `size(NULL, 0)` bytes of text made by `fill` into DIR/NAME-PID
 * (created exclusively: never written over another file), or on stderr
 * when there is no DIR and `or_stderr`. */
static void write_out(const char *dir, const char *name, int or_stderr,
                      size_t (*size)(char *, size_t), size_t (*learned)(const char *, char *, size_t),
                      const char *program) {
    size_t need = size ? size(NULL, 0) : learned(program, NULL, 0);
    char *text = malloc(need);
    if (!text) return;
    if (size)
        size(text, need);
    else
        learned(program, text, need);
    FILE *f = NULL;
    if (dir && *dir) {
        char path[PATH_MAX];
        int n = snprintf(path, sizeof path, "%s/%s-%ld", dir, name, (long)getpid());
        if (n > 0 && (size_t)n < sizeof path) f = fopen(path, "wxe");
    }
    if (f || or_stderr) fputs(text, f ? f : stderr);
    if (f) fclose(f);
    free(text);
}

/* At exit: the summary into DIR/summary-PID when RTCORE_PRELOAD_SUMMARY
 * names a directory DIR (`rtcore run`, which prints the program's), else
 * on stderr; and with RTCORE_PRELOAD_LEARN set, the learned order as a
 * rank file into DIR/ranks-PID (`rtcore run --learn-ranks`). */
__attribute__((destructor)) static void preload_end(void) {
    if (!__atomic_load_n(&active, __ATOMIC_ACQUIRE)) return;
    me.busy = 1;
    __atomic_store_n(&fast.lock, NULL, __ATOMIC_RELEASE);
    __atomic_store_n(&fast.unlock, NULL, __ATOMIC_RELEASE);
    __atomic_store_n(&active, 0, __ATOMIC_RELEASE);
    const char *dir = getenv("RTCORE_PRELOAD_SUMMARY");
    write_out(dir, "summary", 1, hook.summary, NULL, NULL);
    const char *learn = getenv("RTCORE_PRELOAD_LEARN");
    if (learn && *learn && dir && *dir) {
        char program[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", program, sizeof program - 1);
        program[n > 0 ? n : 0] = 0;
        write_out(dir, "ranks", 0, NULL, hook.learned, n > 0 ? program : NULL);
    }
    me.busy = 0;
}

/* ---- the held record ----------------------------------------------------- */

HOT int checking(void) {
    return LIKELY(__atomic_load_n(&active, __ATOMIC_RELAXED)) && !me.busy;
}

HOT uint64_t mix(uint64_t h, uint64_t v) {
    h ^= v;
    h *= 0x100000001b3ULL;
    return h ^ (h >> 29);
}

HOT uint64_t step(uint64_t chain, uint32_t cls, uint32_t kind) {
    return mix(chain, ((uint64_t)cls << 1) | (kind == KIND_READ));
}

static COLD int class_miss(const void *lock, const void *site, uint32_t *cls, size_t i, uint64_t epoch);

/* The class of `lock` (cached; librtcore classes it on a miss). */
HOT int class_of(const void *lock, const void *site, uint32_t *cls) {
    uint64_t epoch = *epoch_word;
    size_t i = ((uintptr_t)lock >> 4) & (CLASS_SLOTS - 1);
    if (LIKELY(me.classes[i].lock == lock && me.classes[i].epoch == epoch)) {
        *cls = me.classes[i].cls;
        return 0;
    }
    return class_miss(lock, site, cls, i, epoch);
}

static COLD int class_miss(const void *lock, const void *site, uint32_t *cls, size_t i, uint64_t epoch) {
    me.busy = 1;
    int rc = hook.lock_class(lock, site, cls);
    me.busy = 0;
    if (rc == 0) {
        me.classes[i].lock = lock;
        me.classes[i].epoch = epoch;
        me.classes[i].cls = *cls;
    }
    return rc;
}

/* The held record as the hooks take it, with `lock` as the wanted one;
 * calls `f` (check, or announce a wait). */
/* This thread's held record as the hooks take it. */
static void held_as_hooks_take_it(rtc_preload_held held[MAX_HELD]) {
    for (uint32_t i = 0; i < me.depth; i++) {
        held[i].lock = me.held[i].lock;
        held[i].site = me.held[i].site;
        held[i].kind = KIND(me.held[i].info);
        held[i].lock_class = CLS(me.held[i].info);
    }
}

static COLD void with_chain(int (*f)(const rtc_preload_held *, size_t, const rtc_preload_held *),
                            const void *lock, const void *site, uint32_t kind, uint32_t cls) {
    rtc_preload_held held[MAX_HELD];
    held_as_hooks_take_it(held);
    rtc_preload_held w = {lock, site, kind, cls};
    me.busy = 1;
    f(held, me.depth, &w);
    me.busy = 0;
}

static COLD void slow_check(const void *lock, const void *site, uint32_t kind, uint32_t cls) {
    with_chain(hook.check, lock, site, kind, cls);
}

/* A lock call that looked busy is about to block: announced for sysmon's
 * deadlock search (published with this thread's held locks), withdrawn
 * when it returns. */
static COLD void wait_begin(const void *lock, const void *site, uint32_t kind, uint32_t cls) {
    if (cls != UINT32_MAX) with_chain(hook.wait_begin, lock, site, kind, cls);
}

static COLD void wait_end(uint32_t cls) {
    if (cls == UINT32_MAX) return;
    me.busy = 1;
    hook.wait_end();
    me.busy = 0;
}

HOT uint64_t top_chain(void) { return me.depth ? me.held[me.depth - 1].chain : SEED; }

/* Before a blocking acquisition: check it unless this thread checked the
 * same chain before. Sets *cls to the class (UINT32_MAX: unknown, not
 * recorded) and returns the index of the lock if this thread holds it
 * already, else -1. Only loads on the fast path: no store before the
 * locked instruction of the real lock call. */
HOT int before_lock(const void *lock, const void *site, uint32_t kind, uint32_t *cls) {
    if (UNLIKELY(class_of(lock, site, cls) != 0)) {
        *cls = UINT32_MAX;
        return -1;
    }
    uint64_t order = 0;
    for (uint32_t i = 0; i < me.depth; i++) {
        const struct held *h = &me.held[i];
        if (h->lock == lock) {
            /* Taken again: fine for a recursive mutex and for reading a
             * lock read; anything else is reported (it never returns). */
            int fine = (kind == KIND_RECURSIVE) || (kind == KIND_READ && KIND(h->info) == KIND_READ);
            if (!fine) slow_check(lock, site, kind, *cls);
            return (int)i;
        }
        if (CLS(h->info) == *cls) order |= (uintptr_t)h->lock < (uintptr_t)lock ? 1 : 2;
    }
    uint64_t key = mix(step(top_chain(), *cls, kind), order);
    if (key == 0) key = 1;
    uint64_t *slot = &me.checked[key & (CHECKED_SLOTS - 1)];
    if (LIKELY(*slot == key)) return -1;
    if (me.depth < MAX_HELD) {
        slow_check(lock, site, kind, *cls);
        *slot = key;
    }
    return -1;
}

/* After a successful acquisition: push it, or count it again (`again`:
 * its index, from before_lock). */
HOT void after_lock(const void *lock, const void *site, uint32_t kind, uint32_t cls, int again) {
    if (again >= 0) {
        me.held[again].info += ONE_MORE;
        return;
    }
    uint32_t d = me.depth;
    if (UNLIKELY(d >= MAX_HELD || cls == UINT32_MAX)) return;
    struct held *h = &me.held[d];
    h->lock = lock;
    h->site = site;
    h->info = INFO(cls, kind);
    h->chain = step(d ? me.held[d - 1].chain : SEED, cls, kind);
    me.depth = d + 1;
}

/* A try-lock that succeeded: held, with no order learned. */
static inline void after_trylock(const void *lock, const void *site, uint32_t kind) {
    uint32_t cls;
    if (class_of(lock, site, &cls) != 0) return;
    for (uint32_t i = 0; i < me.depth; i++) {
        if (me.held[i].lock == lock) {
            after_lock(lock, site, kind, cls, (int)i);
            return;
        }
    }
    after_lock(lock, site, kind, cls, -1);
}

/* Before an unlock: drop it (the top, usually). Returns 0 if this thread
 * did not hold it. */
HOT int on_unlock(const void *lock) {
    uint32_t d = me.depth;
    if (LIKELY(d > 0 && me.held[d - 1].lock == lock)) {
        if (LIKELY(COUNT(me.held[d - 1].info) == 1))
            me.depth = d - 1;
        else
            me.held[d - 1].info -= ONE_MORE;
        return 1;
    }
    for (uint32_t i = d; i-- > 0;) {
        if (me.held[i].lock != lock) continue;
        if (COUNT(me.held[i].info) > 1) {
            me.held[i].info -= ONE_MORE;
            return 1;
        }
        memmove(&me.held[i], &me.held[i + 1], (d - i - 1) * sizeof me.held[0]);
        me.depth = d - 1;
        uint64_t c = i > 0 ? me.held[i - 1].chain : SEED;
        for (uint32_t k = i; k < me.depth; k++)
            c = me.held[k].chain = step(c, CLS(me.held[k].info), KIND(me.held[k].info));
        return 1;
    }
    return 0;
}

static COLD void unlock_not_held(const void *lock, const void *site) {
    me.busy = 1;
    hook.not_held(lock, site);
    me.busy = 0;
}

static inline uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static COLD void waited(uint32_t cls, uint64_t ns, uint32_t flags) {
    if (cls == UINT32_MAX) return;
    me.busy = 1;
    hook.waited(cls, ns ? ns : 1, flags);
    me.busy = 0;
}

/* ---- mutexes -------------------------------------------------------------- */

/* glibc's mutex type (PTHREAD_MUTEX_NORMAL 0, RECURSIVE 1, ERRORCHECK 2,
 * ADAPTIVE 3), also for statically initialised mutexes. */
static inline uint32_t kind_of(pthread_mutex_t *m) { return (uint32_t)(m->__data.__kind & 3); }

EXPORT int pthread_mutex_init(pthread_mutex_t *m, const pthread_mutexattr_t *a) {
    resolve();
    int rc = real.init(m, a);
    if (rc == 0 && checking()) {
        me.busy = 1;
        hook.init(m, __builtin_return_address(0));
        me.busy = 0;
    }
    return rc;
}

EXPORT int pthread_mutex_destroy(pthread_mutex_t *m) {
    resolve();
    int rc = real.destroy(m);
    if (rc == 0 && checking()) {
        me.busy = 1;
        hook.destroyed(m);
        me.busy = 0;
    }
    return rc;
}

/* A blocking lock: checked before (a deadlock is reported before it
 * happens), timed only when the lock looks busy (its lock word is not
 * 0: a plain load of the line the call is about to take anyway; glibc's
 * trylock costs more than its lock). */
static inline int mutex_call(pthread_mutex_t *m, struct deadline d) {
    if (!d.until) return real.lock(m);
    return d.clocked ? real.clocklock(m, d.clock, d.until) : real.timedlock(m, d.until);
}

static __attribute__((noinline)) int lock_at(pthread_mutex_t *m, const void *site, struct deadline d) {
    uint32_t kind = kind_of(m), cls;
    int again = before_lock(m, site, kind, &cls);
    int rc;
    if (LIKELY(__atomic_load_n(&m->__data.__lock, __ATOMIC_RELAXED) == 0)) {
        rc = mutex_call(m, d);
    } else {
        uint64_t t0 = now_ns();
        wait_begin(m, site, kind, cls);
        rc = mutex_call(m, d);
        wait_end(cls);
        if (rc == 0 || rc == EOWNERDEAD) waited(cls, now_ns() - t0, 0);
    }
    /* EOWNERDEAD: a robust mutex whose owner died is held by this thread
     * (and flagged: what it protects may be half-updated). */
    if (LIKELY(rc == 0 || rc == EOWNERDEAD)) after_lock(m, site, kind, cls, again);
    if (UNLIKELY(rc == EOWNERDEAD) && cls != UINT32_MAX) waited(cls, 0, 2 /* its owner died */);
    return rc;
}

/* Everything but the common case of pthread_mutex_lock. */
static __attribute__((noinline)) int mutex_lock_slow(pthread_mutex_t *m, const void *site) {
    resolve();
    if (!checking()) return real.lock(m);
    return lock_at(m, site, NO_DEADLINE);
}

/* The quickest test: the lock taken last at this depth, on the same chain
 * of classes, in the same epoch. Then no lock of its class is held now
 * either (the chain is the same classes, and none was of its class then),
 * so this thread does not hold it, and its chain was checked. */
HOT int memo_ok(const void *lock, uint32_t *cls, uint64_t *chain) {
    uint32_t d = me.depth;
    if (UNLIKELY(d >= MAX_HELD)) return 0;
    if (LIKELY(me.memo[d].lock == lock && me.memo[d].below == top_chain() && me.memo[d].epoch == *epoch_word)) {
        *cls = me.memo[d].cls;
        *chain = me.memo[d].chain;
        return 1;
    }
    return 0;
}

/* The fast path's test, loads only (no call, no store): the class of
 * `lock` is cached, this thread does not hold it, and the chain it makes
 * was checked. Remembered at this depth when no lock of its class is
 * held (`memo_ok`). */
HOT int fast_ok(const void *lock, uint32_t kind, uint32_t *cls) {
    size_t i = ((uintptr_t)lock >> 4) & (CLASS_SLOTS - 1);
    if (UNLIKELY(me.classes[i].lock != lock || me.classes[i].epoch != *epoch_word)) return 0;
    uint32_t c = me.classes[i].cls;
    uint64_t order = 0;
    for (uint32_t k = 0; k < me.depth; k++) {
        const struct held *h = &me.held[k];
        if (UNLIKELY(h->lock == lock)) return 0;
        if (CLS(h->info) == c) order |= (uintptr_t)h->lock < (uintptr_t)lock ? 1 : 2;
    }
    if (UNLIKELY(me.depth >= MAX_HELD)) return 0;
    uint64_t key = mix(step(top_chain(), c, kind), order);
    if (key == 0) key = 1;
    if (UNLIKELY(me.checked[key & (CHECKED_SLOTS - 1)] != key)) return 0;
    *cls = c;
    if (order == 0) {
        uint32_t d = me.depth;
        me.memo[d].lock = lock;
        me.memo[d].below = top_chain();
        me.memo[d].epoch = me.classes[i].epoch;
        me.memo[d].cls = c;
        me.memo[d].chain = step(top_chain(), c, kind);
    }
    return 1;
}

HOT int push_and_lock(pthread_mutex_t *m, const void *site, int k, uint32_t cls, uint64_t chain, lock_fn lock) {
    uint32_t d = me.depth;
    struct held *h = &me.held[d];
    h->lock = m;
    h->site = site;
    h->info = INFO(cls, k);
    h->chain = chain;
    me.depth = d + 1;
    return lock(m);
}

/* The second fast test (the class cache and the checked chains), out of
 * line so that the first keeps its few registers. */
static __attribute__((noinline)) int mutex_lock_cached(pthread_mutex_t *m, const void *site, int k, lock_fn lock) {
    uint32_t cls;
    if (fast_ok(m, (uint32_t)k, &cls)) return push_and_lock(m, site, k, cls, step(top_chain(), cls, (uint32_t)k), lock);
    return mutex_lock_slow(m, site);
}

EXPORT int pthread_mutex_lock(pthread_mutex_t *m) {
    const void *site = __builtin_return_address(0);
    lock_fn lock = __atomic_load_n(&fast.lock, __ATOMIC_ACQUIRE);
    /* The common case: checking, a normal or adaptive mutex (no robust,
     * priority or error-checking behaviour: its lock call cannot fail)
     * that looks free, taken last at this depth on the same chain. It is
     * recorded first and the real call is a tail call, so nothing is saved
     * on the stack around it (docs/preload.md, "Cost"). */
    int k = m->__data.__kind;
    if (LIKELY(lock && !me.busy && (k == 0 || k == 3) &&
               __atomic_load_n(&m->__data.__lock, __ATOMIC_RELAXED) == 0)) {
        uint32_t cls;
        uint64_t chain;
        if (LIKELY(memo_ok(m, &cls, &chain))) return push_and_lock(m, site, k, cls, chain, lock);
        return mutex_lock_cached(m, site, k, lock);
    }
    return mutex_lock_slow(m, site);
}

EXPORT int pthread_mutex_timedlock(pthread_mutex_t *m, const struct timespec *until) {
    resolve();
    if (!checking()) return real.timedlock(m, until);
    struct deadline d = {until, 0, 0};
    return lock_at(m, __builtin_return_address(0), d);
}

EXPORT int pthread_mutex_clocklock(pthread_mutex_t *m, clockid_t clock, const struct timespec *until) {
    resolve();
    if (!real.clocklock) return ENOSYS;
    if (!checking()) return real.clocklock(m, clock, until);
    struct deadline d = {until, 1, clock};
    return lock_at(m, __builtin_return_address(0), d);
}

EXPORT int pthread_mutex_trylock(pthread_mutex_t *m) {
    resolve();
    int rc = real.trylock(m);
    if ((rc == 0 || rc == EOWNERDEAD) && checking()) {
        after_trylock(m, __builtin_return_address(0), kind_of(m));
        uint32_t cls;
        if (rc == EOWNERDEAD && class_of(m, __builtin_return_address(0), &cls) == 0) waited(cls, 0, 2 /* its owner died */);
    }
    return rc;
}

static __attribute__((noinline)) int mutex_unlock_slow(pthread_mutex_t *m, const void *site) {
    resolve();
    if (checking() && !on_unlock(m)) unlock_not_held(m, site);
    return real.unlock(m);
}

EXPORT int pthread_mutex_unlock(pthread_mutex_t *m) {
    /* Dropped before the real unlock: once it is released another thread
     * may take it, and this thread's record must not lag behind. The
     * common case (the top of the record, taken once) is a few loads, one
     * store and a tail call. */
    lock_fn unlock = __atomic_load_n(&fast.unlock, __ATOMIC_ACQUIRE);
    uint32_t d = me.depth;
    if (LIKELY(unlock && !me.busy && d > 0 && me.held[d - 1].lock == m && COUNT(me.held[d - 1].info) == 1)) {
        me.depth = d - 1;
        return unlock(m);
    }
    return mutex_unlock_slow(m, __builtin_return_address(0));
}

/* ---- read/write locks ------------------------------------------------------ */

EXPORT int pthread_rwlock_init(pthread_rwlock_t *l, const pthread_rwlockattr_t *a) {
    resolve();
    int rc = real.rw_init(l, a);
    if (rc == 0 && checking()) {
        me.busy = 1;
        hook.init(l, __builtin_return_address(0));
        me.busy = 0;
    }
    return rc;
}

EXPORT int pthread_rwlock_destroy(pthread_rwlock_t *l) {
    resolve();
    int rc = real.rw_destroy(l);
    if (rc == 0 && checking()) {
        me.busy = 1;
        hook.destroyed(l);
        me.busy = 0;
    }
    return rc;
}

static int rw_call(pthread_rwlock_t *l, uint32_t kind, struct deadline d) {
    int r = kind == KIND_READ;
    if (!d.until) return r ? real.rdlock(l) : real.wrlock(l);
    if (d.clocked) return r ? real.clockrdlock(l, d.clock, d.until) : real.clockwrlock(l, d.clock, d.until);
    return r ? real.timedrdlock(l, d.until) : real.timedwrlock(l, d.until);
}

static int rw_at(pthread_rwlock_t *l, const void *site, uint32_t kind, struct deadline d) {
    rw_fn try = kind == KIND_READ ? real.tryrdlock : real.trywrlock;
    if (!checking()) return rw_call(l, kind, d);
    uint32_t cls;
    int again = before_lock(l, site, kind, &cls);
    int rc = try(l);
    if (rc == EBUSY) {
        uint64_t t0 = now_ns();
        wait_begin(l, site, kind, cls);
        rc = rw_call(l, kind, d);
        wait_end(cls);
        if (rc == 0) waited(cls, now_ns() - t0, 0);
    }
    if (rc == 0) after_lock(l, site, kind, cls, again);
    return rc;
}

EXPORT int pthread_rwlock_rdlock(pthread_rwlock_t *l) {
    resolve();
    return rw_at(l, __builtin_return_address(0), KIND_READ, NO_DEADLINE);
}

EXPORT int pthread_rwlock_wrlock(pthread_rwlock_t *l) {
    resolve();
    return rw_at(l, __builtin_return_address(0), KIND_WRITE, NO_DEADLINE);
}

EXPORT int pthread_rwlock_timedrdlock(pthread_rwlock_t *l, const struct timespec *until) {
    resolve();
    struct deadline d = {until, 0, 0};
    return rw_at(l, __builtin_return_address(0), KIND_READ, d);
}

EXPORT int pthread_rwlock_timedwrlock(pthread_rwlock_t *l, const struct timespec *until) {
    resolve();
    struct deadline d = {until, 0, 0};
    return rw_at(l, __builtin_return_address(0), KIND_WRITE, d);
}

EXPORT int pthread_rwlock_clockrdlock(pthread_rwlock_t *l, clockid_t clock, const struct timespec *until) {
    resolve();
    if (!real.clockrdlock) return ENOSYS;
    struct deadline d = {until, 1, clock};
    return rw_at(l, __builtin_return_address(0), KIND_READ, d);
}

EXPORT int pthread_rwlock_clockwrlock(pthread_rwlock_t *l, clockid_t clock, const struct timespec *until) {
    resolve();
    if (!real.clockwrlock) return ENOSYS;
    struct deadline d = {until, 1, clock};
    return rw_at(l, __builtin_return_address(0), KIND_WRITE, d);
}

static int rw_try(pthread_rwlock_t *l, const void *site, uint32_t kind) {
    int rc = kind == KIND_READ ? real.tryrdlock(l) : real.trywrlock(l);
    if (rc == 0 && checking()) {
            after_trylock(l, site, kind);
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
    if (checking() && UNLIKELY(!on_unlock(l))) unlock_not_held(l, __builtin_return_address(0));
    return real.rw_unlock(l);
}

/* ---- condition variables --------------------------------------------------- */
/* A wait releases its mutex and takes it again inside glibc (through its
 * internal lock, not the interposed symbol): the record drops it before
 * and takes it back after, checked as any acquisition. The functions are
 * defined in both symbol versions glibc has (binaries linked before glibc
 * 2.3.2 use the old one, whose condition variables have another layout);
 * each calls the same version of the real one. */

/* Returns 1 if checked, plus 2 if the wait was announced to the tracer
 * (the thread's state in the trace: waiting on the condition). */
static int before_wait(pthread_cond_t *c, pthread_mutex_t *m, const void *site) {
    if (!checking()) return 0;
    if (UNLIKELY(!on_unlock(m))) unlock_not_held(m, site);
    if (UNLIKELY(__atomic_load_n(trace_on, __ATOMIC_RELAXED) != 0)) {
        me.busy = 1;
        hook.cond_begin(c);
        me.busy = 0;
        return 3;
    }
    return 1;
}

static void after_wait(pthread_mutex_t *m, const void *site, int rc, int checked) {
    if (checked & 2) {
        me.busy = 1;
        hook.cond_end();
        me.busy = 0;
    }
    /* The mutex is held again after a wake-up, a time-out, or EOWNERDEAD. */
    if (!checked || !(rc == 0 || rc == ETIMEDOUT || rc == EOWNERDEAD) || !checking()) return;
    uint32_t kind = kind_of(m), cls;
    int again = before_lock(m, site, kind, &cls);
    after_lock(m, site, kind, cls, again);
    waited(cls, 0, 1 /* a condition wait */);
    if (UNLIKELY(rc == EOWNERDEAD)) waited(cls, 0, 2 /* its owner died */);
}

#define COND_WAIT(name, fn)                                                            \
    EXPORT int name(pthread_cond_t *c, pthread_mutex_t *m) {                           \
        resolve();                                                                     \
        const void *site = __builtin_return_address(0);                                \
        int checked = before_wait(c, m, site);                                            \
        int rc = real.fn(c, m);                                                        \
        after_wait(m, site, rc, checked);                                              \
        return rc;                                                                     \
    }
#define COND_TIMEDWAIT(name, fn)                                                       \
    EXPORT int name(pthread_cond_t *c, pthread_mutex_t *m, const struct timespec *t) { \
        resolve();                                                                     \
        const void *site = __builtin_return_address(0);                                \
        int checked = before_wait(c, m, site);                                            \
        int rc = real.fn(c, m, t);                                                     \
        after_wait(m, site, rc, checked);                                              \
        return rc;                                                                     \
    }

/* glibc 2.30's clock variant (one version). */
EXPORT int pthread_cond_clockwait(pthread_cond_t *c, pthread_mutex_t *m, clockid_t clock, const struct timespec *t) {
    resolve();
    if (!real.clockwait) return ENOSYS;
    const void *site = __builtin_return_address(0);
    int checked = before_wait(c, m, site);
    int rc = real.clockwait(c, m, clock, t);
    after_wait(m, site, rc, checked);
    return rc;
}

COND_WAIT(rtcore_cond_wait_new, wait_new)
COND_WAIT(rtcore_cond_wait_old, wait_old)
COND_TIMEDWAIT(rtcore_cond_timedwait_new, timedwait_new)
COND_TIMEDWAIT(rtcore_cond_timedwait_old, timedwait_old)
__asm__(".symver rtcore_cond_wait_new, pthread_cond_wait@@GLIBC_2.3.2");
__asm__(".symver rtcore_cond_wait_old, pthread_cond_wait@GLIBC_2.2.5");
__asm__(".symver rtcore_cond_timedwait_new, pthread_cond_timedwait@@GLIBC_2.3.2");
__asm__(".symver rtcore_cond_timedwait_old, pthread_cond_timedwait@GLIBC_2.2.5");

/* ---- threads ---------------------------------------------------------------- */
/* Each thread the program creates starts in `started`, which runs its start
 * routine and, however the thread ends (returning, pthread_exit, or
 * cancellation: a cleanup handler runs in all three), reports the locks it
 * still holds: nobody can unlock them now, and whoever next wants one
 * waits for good. */

struct start {
    void *(*fn)(void *);
    void *arg;
};

static void at_thread_exit(void *unused) {
    (void)unused;
    if (!checking() || me.depth == 0) return;
    rtc_preload_held held[MAX_HELD];
    held_as_hooks_take_it(held);
    me.busy = 1;
    hook.thread_exit(held, me.depth);
    me.busy = 0;
}

static void *started(void *p) {
    struct start s = *(struct start *)p;
    free(p);
    void *ret;
    pthread_cleanup_push(at_thread_exit, NULL);
    ret = s.fn(s.arg);
    pthread_cleanup_pop(1);
    return ret;
}

EXPORT int pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg) {
    resolve();
    struct start *s = checking() ? malloc(sizeof *s) : NULL;
    if (!s) return real.create(t, a, fn, arg);
    s->fn = fn;
    s->arg = arg;
    int rc = real.create(t, a, started, s);
    if (rc != 0) free(s);
    return rc;
}
