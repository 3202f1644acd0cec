/*
 * rtcore.hpp: C++17 RAII types over rtcore's C API (include/rtcore.h).
 * Written by hand (rtcore.h is generated); header-only; link with -lrtcore.
 *
 *   rtcore::error                 a failing call: status() and what()
 *   rtcore::mutex                 a ranked mutex: std::lock_guard,
 *                                 std::unique_lock, std::scoped_lock,
 *                                 std::condition_variable_any
 *   rtcore::shared_mutex          a ranked read/write lock: std::shared_lock
 *                                 and std::unique_lock
 *   rtcore::condition_variable    waits on an rtcore::mutex (order-checked
 *                                 and traced as rtcore's own)
 *   rtcore::attached_thread       attach the calling thread for a scope
 *   rtcore::blocking              a blocking region for a scope
 *   rtcore::region, rtcore::task  trace spans for a scope
 *   rtcore::trace_session         a trace from construction to stop()
 *                                 or destruction
 *   rtcore::load_ranks, rtcore::load_ranks_file
 *
 * Errors: every call that fails throws rtcore::error, carrying the
 * rtc_status and rtcore's message for it, except in destructors (which
 * cannot throw: they ignore a failure, as std::mutex's do) and where the
 * standard asks for a bool (try_lock: false when another thread holds the
 * lock). unlock() throws for a lock this thread does not hold: through a
 * std::lock_guard that is std::terminate, the same misuse std::mutex
 * leaves undefined.
 *
 * Like their C counterparts, locks must not be moved or copied once used:
 * these types are neither copyable nor movable.
 */
#ifndef RTCORE_HPP
#define RTCORE_HPP

#include "rtcore.h"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

namespace rtcore {

/** The name of status `s` ("RTC_ERR_NOT_OWNER"); "RTC_STATUS_UNKNOWN"
 *  for a value this header does not know (a newer library's). */
inline const char *status_name(rtc_status s) noexcept {
    switch (s) {
    case RTC_OK: return "RTC_OK";
    case RTC_ERR_NULL: return "RTC_ERR_NULL";
    case RTC_ERR_INVALID_ARGUMENT: return "RTC_ERR_INVALID_ARGUMENT";
    case RTC_ERR_PANIC: return "RTC_ERR_PANIC";
    case RTC_ERR_POISONED: return "RTC_ERR_POISONED";
    case RTC_ERR_SHUT_DOWN: return "RTC_ERR_SHUT_DOWN";
    case RTC_ERR_ALREADY_INITIALIZED: return "RTC_ERR_ALREADY_INITIALIZED";
    case RTC_ERR_TOO_LATE: return "RTC_ERR_TOO_LATE";
    case RTC_ERR_RANK_SYNTAX: return "RTC_ERR_RANK_SYNTAX";
    case RTC_ERR_UNKNOWN_RANK: return "RTC_ERR_UNKNOWN_RANK";
    case RTC_ERR_RANK_TABLE_FULL: return "RTC_ERR_RANK_TABLE_FULL";
    case RTC_ERR_IO: return "RTC_ERR_IO";
    case RTC_ERR_WOULD_DEADLOCK: return "RTC_ERR_WOULD_DEADLOCK";
    case RTC_ERR_NOT_OWNER: return "RTC_ERR_NOT_OWNER";
    case RTC_ERR_BUSY: return "RTC_ERR_BUSY";
    case RTC_ERR_LOCKED: return "RTC_ERR_LOCKED";
    case RTC_ERR_DESTROYED: return "RTC_ERR_DESTROYED";
    case RTC_ERR_TIMED_OUT: return "RTC_ERR_TIMED_OUT";
    case RTC_ERR_MOVED: return "RTC_ERR_MOVED";
    case RTC_ERR_WRONG_STATE: return "RTC_ERR_WRONG_STATE";
    case RTC_ERR_BAD_TRACE: return "RTC_ERR_BAD_TRACE";
    case RTC_ERR_TRACE_CUT: return "RTC_ERR_TRACE_CUT";
    }
    return "RTC_STATUS_UNKNOWN";
}

/** A failing rtcore call: the status and rtcore's message. what() reads
 *  "RTC_ERR_NOT_OWNER: rtc_mutex_unlock: ..." (the status's name, the C
 *  call, then rtcore's message). */
class error : public std::runtime_error {
public:
    error(rtc_status status, const std::string &what)
        : std::runtime_error(what), status_(status) {}

    /** The rtc_status the call returned (never RTC_OK). */
    rtc_status status() const noexcept { return status_; }

    /** Its name, for example "RTC_ERR_NOT_OWNER". */
    const char *status_name() const noexcept { return rtcore::status_name(status_); }

private:
    rtc_status status_;
};

namespace detail {

/** The calling thread's last-error message (empty if none). */
inline std::string last_error_message() {
    size_t need = rtc_last_error_message(nullptr, 0);
    if (need <= 1)
        return std::string();
    std::string text(need, '\0');
    size_t got = rtc_last_error_message(&text[0], text.size());
    text.resize(got < need ? got : need - 1);
    return text;
}

/** Throw rtcore::error unless `s` is RTC_OK. `what` names the call. */
inline void check(rtc_status s, const char *what) {
    if (s == RTC_OK)
        return;
    // The stored message is this failure's only if its status is `s`: some
    // expected outcomes store none, and an older failure's stays until the
    // next one.
    std::string message;
    if (rtc_last_error_status() == s)
        message = last_error_message();
    if (message.empty())
        message = rtc_status_str(static_cast<int32_t>(s));
    std::string call = std::string(what) + ": ";
    if (message.compare(0, call.size(), call) != 0)
        message = call + message;
    throw error(s, std::string(status_name(s)) + ": " + message);
}

/** `d` in nanoseconds for rtcore: 0 for a past or zero duration, and
 *  saturated at nanoseconds::max() (about 292 years, "forever") instead
 *  of overflowing. */
template <class Rep, class Period>
inline uint64_t nanoseconds_of(const std::chrono::duration<Rep, Period> &d) {
    if (d <= d.zero())
        return 0;
    std::chrono::duration<long double, std::nano> wide = d;
    const long double most = static_cast<long double>(std::chrono::nanoseconds::max().count());
    if (wide.count() >= most)
        return static_cast<uint64_t>(std::chrono::nanoseconds::max().count());
    return static_cast<uint64_t>(wide.count());
}

} // namespace detail

/** Load rank declarations (docs/ranks.md); `source_name` names them in
 *  reports. */
inline void load_ranks(const char *text, const char *source_name) {
    detail::check(rtc_ranks_load(text, source_name), "rtc_ranks_load");
}

/** Load rank declarations from a file. */
inline void load_ranks_file(const char *path) {
    detail::check(rtc_ranks_load_file(path), "rtc_ranks_load_file");
}

/** A ranked mutex (rtc_mutex), for std::lock_guard, std::unique_lock,
 *  std::scoped_lock and std::condition_variable_any. It meets the
 *  standard's Lockable but for one point: unlock() throws on misuse (a
 *  mutex this thread does not hold), where the standard asks for no throw;
 *  inside a lock_guard's destructor that is std::terminate.
 *
 *  Order checking sees lock() (and lock_at, lock_keyed); try_lock() cannot
 *  block, so it is recorded but not checked. std::scoped_lock and std::lock
 *  with several mutexes take all but the first with try_lock, so a wrong
 *  order through them is not reported: take ranked mutexes one at a time,
 *  in rank order, to have the order checked. Locks taken through the
 *  standard wrappers are reported with "(call site not given)": C++17 has
 *  no source location; lock_at(__FILE__, __LINE__) gives one. */
class mutex {
public:
    /** An unranked mutex (never fails). */
    mutex() noexcept : m_() {}

    /** A named mutex of rank `rank` (NULL: unranked). Throws
     *  rtcore::error, for example RTC_ERR_UNKNOWN_RANK. */
    mutex(const char *name, const char *rank) : m_() {
        detail::check(rtc_mutex_init(&m_, name, rank), "rtc_mutex_init");
    }

    /** Destroys it; a mutex still locked is left as it is (the failure is
     *  ignored: a destructor cannot throw). */
    ~mutex() { (void)rtc_mutex_destroy(&m_); }

    mutex(const mutex &) = delete;
    mutex &operator=(const mutex &) = delete;

    /** Lock (order-checked). Throws for misuse: RTC_ERR_WOULD_DEADLOCK if
     *  this thread holds it already. */
    void lock() { detail::check(rtc_mutex_lock(&m_), "rtc_mutex_lock"); }

    /** Lock, recording the call site for reports:
     *  `m.lock_at(__FILE__, __LINE__)`. */
    void lock_at(const char *file, uint32_t line) {
        detail::check(rtc_mutex_lock_at(&m_, file, line), "rtc_mutex_lock_at");
    }

    /** Lock a mutex of a `nestable:` rank with a nesting key (locks of
     *  that rank must be taken in increasing key order). */
    void lock_keyed(uint64_t key) {
        detail::check(rtc_mutex_lock_keyed(&m_, key), "rtc_mutex_lock_keyed");
    }

    /** Try to lock: false if another thread holds it; throws for misuse
     *  (this thread holds it already). */
    bool try_lock() {
        rtc_status s = rtc_mutex_trylock(&m_);
        if (s == RTC_ERR_BUSY)
            return false;
        detail::check(s, "rtc_mutex_trylock");
        return true;
    }

    /** Unlock. Throws RTC_ERR_NOT_OWNER if this thread does not hold it. */
    void unlock() { detail::check(rtc_mutex_unlock(&m_), "rtc_mutex_unlock"); }

    /** The C mutex, for the C API and its macros (RTC_MUTEX_LOCK). */
    rtc_mutex *native_handle() noexcept { return &m_; }

private:
    rtc_mutex m_;
};

/** A ranked read/write lock (rtc_rwlock, writer-preferring), for
 *  std::shared_lock (read) and std::unique_lock or std::lock_guard (write).
 *  As rtcore::mutex, it meets SharedLockable but for unlock() and
 *  unlock_shared() throwing on misuse. Both release whatever this thread
 *  holds (rtc_rwlock_unlock does not tell the modes apart). */
class shared_mutex {
public:
    shared_mutex() noexcept : l_() {}

    shared_mutex(const char *name, const char *rank) : l_() {
        detail::check(rtc_rwlock_init(&l_, name, rank), "rtc_rwlock_init");
    }

    ~shared_mutex() { (void)rtc_rwlock_destroy(&l_); }

    shared_mutex(const shared_mutex &) = delete;
    shared_mutex &operator=(const shared_mutex &) = delete;

    /** Write-lock. */
    void lock() { detail::check(rtc_rwlock_wrlock(&l_), "rtc_rwlock_wrlock"); }

    bool try_lock() {
        rtc_status s = rtc_rwlock_trywrlock(&l_);
        if (s == RTC_ERR_BUSY)
            return false;
        detail::check(s, "rtc_rwlock_trywrlock");
        return true;
    }

    void unlock() { detail::check(rtc_rwlock_unlock(&l_), "rtc_rwlock_unlock"); }

    /** Read-lock. */
    void lock_shared() { detail::check(rtc_rwlock_rdlock(&l_), "rtc_rwlock_rdlock"); }

    bool try_lock_shared() {
        rtc_status s = rtc_rwlock_tryrdlock(&l_);
        if (s == RTC_ERR_BUSY)
            return false;
        detail::check(s, "rtc_rwlock_tryrdlock");
        return true;
    }

    void unlock_shared() { detail::check(rtc_rwlock_unlock(&l_), "rtc_rwlock_unlock"); }

    rtc_rwlock *native_handle() noexcept { return &l_; }

private:
    rtc_rwlock l_;
};

/** A condition variable for rtcore::mutex (rtc_cond): the wait releases
 *  and retakes the mutex as rtcore's own, so the order check and the
 *  trace see it. Its waits take any lock object whose mutex() is an
 *  rtcore::mutex (std::unique_lock<rtcore::mutex>). (std::
 *  condition_variable_any works with rtcore::mutex too, but waits on a
 *  mutex of its own.) */
class condition_variable {
public:
    condition_variable() noexcept : c_() {}
    ~condition_variable() { (void)rtc_cond_destroy(&c_); }

    condition_variable(const condition_variable &) = delete;
    condition_variable &operator=(const condition_variable &) = delete;

    /** Wait (`lock` must own its mutex). If retaking the mutex fails
     *  (a rtcore error, not a timeout), the error is thrown with the mutex
     *  not held; the lock object still believes it owns it, so its
     *  destructor's unlock throws too: std::terminate, as for a corrupted
     *  std::mutex. */
    template <class Lock> void wait(Lock &lock) {
        detail::check(rtc_cond_wait(&c_, lock.mutex()->native_handle()), "rtc_cond_wait");
    }

    template <class Lock, class Predicate> void wait(Lock &lock, Predicate ready) {
        while (!ready())
            wait(lock);
    }

    /** Wait at most `d` (a duration too long to count in nanoseconds
     *  waits about 292 years): std::cv_status::timeout if it passed. */
    template <class Lock, class Rep, class Period>
    std::cv_status wait_for(Lock &lock, const std::chrono::duration<Rep, Period> &d) {
        rtc_status s = rtc_cond_timedwait(&c_, lock.mutex()->native_handle(),
                                          detail::nanoseconds_of(d));
        if (s == RTC_ERR_TIMED_OUT)
            return std::cv_status::timeout;
        detail::check(s, "rtc_cond_timedwait");
        return std::cv_status::no_timeout;
    }

    /** Wait until `ready()` or `d` has passed: `ready()`'s last value. */
    template <class Lock, class Rep, class Period, class Predicate>
    bool wait_for(Lock &lock, const std::chrono::duration<Rep, Period> &d, Predicate ready) {
        const uint64_t total = detail::nanoseconds_of(d);
        const auto start = std::chrono::steady_clock::now();
        while (!ready()) {
            auto spent = std::chrono::duration_cast<std::chrono::nanoseconds>(
                std::chrono::steady_clock::now() - start);
            uint64_t used = static_cast<uint64_t>(spent.count());
            if (used >= total)
                return ready();
            wait_for(lock, std::chrono::nanoseconds(static_cast<int64_t>(total - used)));
        }
        return true;
    }

    void notify_one() { detail::check(rtc_cond_signal(&c_), "rtc_cond_signal"); }
    void notify_all() { detail::check(rtc_cond_broadcast(&c_), "rtc_cond_broadcast"); }

    rtc_cond *native_handle() noexcept { return &c_; }

private:
    rtc_cond c_;
};

/** Attach the calling thread to the world for this object's lifetime. */
class attached_thread {
public:
    explicit attached_thread(const char *name) {
        detail::check(rtc_thread_attach(name, &id_), "rtc_thread_attach");
    }
    ~attached_thread() { (void)rtc_thread_detach(); }

    attached_thread(const attached_thread &) = delete;
    attached_thread &operator=(const attached_thread &) = delete;

    /** The thread's rtcore id. */
    uint64_t id() const noexcept { return id_; }

private:
    uint64_t id_ = 0;
};

/** A blocking region (the thread gives up its processor) for this
 *  object's lifetime: wrap a system call that may block. */
class blocking {
public:
    explicit blocking(const char *reason) {
        detail::check(rtc_enter_blocking(reason), "rtc_enter_blocking");
    }
    ~blocking() { (void)rtc_exit_blocking(); }

    blocking(const blocking &) = delete;
    blocking &operator=(const blocking &) = delete;
};

/** A region of the calling thread's trace for this object's lifetime. When
 *  not tracing it costs one load and records nothing. */
class region {
public:
    explicit region(const char *name) {
        if (RTC_TRACE_ON()) {
            detail::check(rtc_region_begin(name), "rtc_region_begin");
            begun_ = true;
        }
    }
    ~region() {
        if (begun_)
            (void)rtc_region_end();
    }

    region(const region &) = delete;
    region &operator=(const region &) = delete;

private:
    bool begun_ = false;
};

/** A task (a unit of work that may move between threads) for this
 *  object's lifetime; its id is handed out whether or not tracing. */
class task {
public:
    explicit task(const char *name) {
        detail::check(rtc_task_begin(name, &id_), "rtc_task_begin");
    }
    ~task() { (void)rtc_task_end(id_); }

    task(const task &) = delete;
    task &operator=(const task &) = delete;

    uint64_t id() const noexcept { return id_; }

private:
    uint64_t id_ = 0;
};

/** A trace from construction until stop() or destruction. Throws
 *  rtcore::error if it cannot start (RTC_ERR_WRONG_STATE while another
 *  trace runs, RTC_ERR_IO for a path that cannot be written). */
class trace_session {
public:
    /** Trace into the file at `path`, rolling to a new generation every
     *  `generation_ms` (0: the default, 1000). */
    explicit trace_session(const char *path, uint32_t generation_ms = 0) {
        rtc_trace_config c = RTC_TRACE_CONFIG_INIT;
        c.sink_kind = RTC_TRACE_SINK_PATH;
        c.path = path;
        c.generation_ms = generation_ms;
        start(c);
    }

    /** Trace with a configuration of your own (RTC_TRACE_CONFIG_INIT, then
     *  the sink). */
    explicit trace_session(const rtc_trace_config &config) { start(config); }

    /** Stops the trace if stop() was not called (a failure is ignored). */
    ~trace_session() {
        if (running_)
            (void)rtc_trace_stop();
    }

    trace_session(const trace_session &) = delete;
    trace_session &operator=(const trace_session &) = delete;

    /** Stop now, and throw if the trace could not be finished (for
     *  example RTC_ERR_IO: its sink failed). Once only. */
    void stop() {
        if (!running_)
            throw error(RTC_ERR_WRONG_STATE, "rtcore::trace_session::stop: already stopped");
        running_ = false;
        detail::check(rtc_trace_stop(), "rtc_trace_stop");
    }

private:
    void start(const rtc_trace_config &config) {
        detail::check(rtc_trace_start(&config), "rtc_trace_start");
        running_ = true;
    }

    bool running_ = false;
};

} // namespace rtcore

#endif /* RTCORE_HPP */
