//! `rtc_cond` exports.

use std::os::raw::c_char;
use std::time::Duration;

use super::{boundary_poisoning, checked_ptr};
use crate::lifecycle;
use crate::lock::cond::{CondRef, rtc_cond};
use crate::lock::mutex::{MutexRef, rtc_mutex};
use crate::status::{Result, rtc_status};

fn with_cond(c: *mut rtc_cond, func: &str, f: impl FnOnce(&CondRef) -> Result<()>) -> rtc_status {
    boundary_poisoning(
        func,
        || {
            checked_ptr(c, "cond", func)?;
            // SAFETY: non-NULL and aligned; caller promises a condition.
            f(&unsafe { CondRef::new(c) })
        },
        || {
            if checked_ptr(c, "cond", func).is_ok() {
                // SAFETY: as above.
                unsafe { CondRef::new(c) }.mark_poisoned();
            }
        },
    )
}

fn wait(
    c: *mut rtc_cond,
    m: *mut rtc_mutex,
    timeout: Option<Duration>,
    file: *const c_char,
    line: u32,
    func: &str,
) -> rtc_status {
    with_cond(c, func, |cond| {
        let mode = lifecycle::enter()?;
        checked_ptr(m, "mutex", func)?;
        // SAFETY: non-NULL and aligned; caller promises a mutex.
        let m = unsafe { MutexRef::new(m) };
        cond.wait(&m, mode, timeout, file, line)
    })
}

/// Initialise a condition variable at run time (all zeroes, or
/// `RTC_COND_INIT`, are equally valid). Must not race other use of it.
/// Returns `RTC_OK`; `RTC_ERR_NULL`; `RTC_ERR_LOCKED` if threads are waiting
/// on it; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cond_init(cond: *mut rtc_cond) -> rtc_status {
    with_cond(cond, "rtc_cond_init", |c| {
        lifecycle::enter()?;
        c.init()
    })
}

/// Wait on `cond`: atomically release `mutex` (which this thread must hold),
/// sleep until signalled, and retake `mutex` (order-checked like a lock)
/// before returning. Wake-ups may be spurious: wait in a loop on your
/// predicate.
///
/// Returns `RTC_OK`; `RTC_ERR_NULL`; `RTC_ERR_NOT_OWNER` if this thread does
/// not hold `mutex` (nothing waits); `RTC_ERR_DESTROYED`; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cond_wait(cond: *mut rtc_cond, mutex: *mut rtc_mutex) -> rtc_status {
    wait(cond, mutex, None, std::ptr::null(), 0, "rtc_cond_wait")
}

/// As `rtc_cond_wait`, recording the call site for reports.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cond_wait_at(
    cond: *mut rtc_cond,
    mutex: *mut rtc_mutex,
    file: *const c_char,
    line: u32,
) -> rtc_status {
    wait(cond, mutex, None, file, line, "rtc_cond_wait_at")
}

/// As `rtc_cond_wait`, giving up after `timeout_ns` nanoseconds:
/// `RTC_ERR_TIMED_OUT` (with `mutex` retaken; no last-error message is stored
/// for this expected outcome).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cond_timedwait(
    cond: *mut rtc_cond,
    mutex: *mut rtc_mutex,
    timeout_ns: u64,
) -> rtc_status {
    wait(
        cond,
        mutex,
        Some(Duration::from_nanos(timeout_ns)),
        std::ptr::null(),
        0,
        "rtc_cond_timedwait",
    )
}

/// As `rtc_cond_timedwait`, recording the call site for reports.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cond_timedwait_at(
    cond: *mut rtc_cond,
    mutex: *mut rtc_mutex,
    timeout_ns: u64,
    file: *const c_char,
    line: u32,
) -> rtc_status {
    wait(
        cond,
        mutex,
        Some(Duration::from_nanos(timeout_ns)),
        file,
        line,
        "rtc_cond_timedwait_at",
    )
}

/// Wake one thread waiting on `cond`, if any. Callable with or without the
/// mutex held, and after `rtc_shutdown`. Returns `RTC_OK`; `RTC_ERR_NULL`;
/// `RTC_ERR_DESTROYED`; `RTC_ERR_POISONED`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cond_signal(cond: *mut rtc_cond) -> rtc_status {
    // Works after rtc_shutdown: waking waiters is always safe.
    with_cond(cond, "rtc_cond_signal", |c| c.signal())
}

/// Wake every thread waiting on `cond`. Callable after `rtc_shutdown`.
/// Returns `RTC_OK`; `RTC_ERR_NULL`; `RTC_ERR_DESTROYED`; `RTC_ERR_POISONED`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cond_broadcast(cond: *mut rtc_cond) -> rtc_status {
    // Works after rtc_shutdown: waking waiters is always safe.
    with_cond(cond, "rtc_cond_broadcast", |c| c.broadcast())
}

/// Destroy `cond` (callable after `rtc_shutdown`). Returns `RTC_OK`;
/// `RTC_ERR_NULL`; `RTC_ERR_LOCKED` if threads are waiting on it.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cond_destroy(cond: *mut rtc_cond) -> rtc_status {
    with_cond(cond, "rtc_cond_destroy", |c| c.destroy())
}
