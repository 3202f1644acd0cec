//! The hooks `librtcore_preload.so` calls around the interposed
//! `pthread_mutex_*` functions (`rtcore run`, docs/preload.md). A program
//! written for rtcore has no reason to call them; they are exported so the
//! preload library, loaded before librtcore, finds them with `dlsym`.
//!
//! Every hook is safe to call with any arguments: a NULL lock is refused
//! with `RTC_ERR_NULL`, an unknown kind with `RTC_ERR_INVALID_ARGUMENT`, and
//! after `rtc_shutdown` they return `RTC_ERR_SHUT_DOWN` doing nothing.

use std::ffi::{c_char, c_void};

use super::{boundary, copy_out};
use crate::interpose::{self, LockKind};
use crate::lifecycle;
use crate::status::{Error, Result, rtc_status};

/// `rtc_preload_lock_acquired`'s flag bit 0 (1): the lock was taken by a
/// try-lock (it adds no edge to the learned order).
const TRIED: u32 = 1;
/// Bit 1 (2): a condition wait re-took the mutex (counted in the summary).
const AFTER_WAIT: u32 = 2;

fn lock_arg(lock: *const c_void, func: &str) -> Result<usize> {
    if lock.is_null() {
        return Err(Error::new(
            rtc_status::RTC_ERR_NULL,
            format!("{func}: lock is NULL"),
        ));
    }
    Ok(lock as usize)
}

fn kind_arg(kind: u32, func: &str) -> Result<LockKind> {
    LockKind::from_bits(kind).ok_or_else(|| {
        Error::new(
            rtc_status::RTC_ERR_INVALID_ARGUMENT,
            format!("{func}: kind {kind} is not a lock kind (0 normal, 1 recursive, 2 error-checking, 3 adaptive mutex; 4 read, 5 write lock of a read/write lock)"),
        )
    })
}

/// The lock at `lock` was initialised by the code that returns to `site`
/// (`pthread_mutex_init`'s caller): its class is that site.
///
/// Returns `RTC_OK`; `RTC_ERR_NULL`; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_preload_lock_init(lock: *const c_void, site: *const c_void) -> rtc_status {
    boundary("rtc_preload_lock_init", || {
        let addr = lock_arg(lock, "rtc_preload_lock_init")?;
        lifecycle::enter()?;
        interpose::init(addr, site as usize);
        Ok(())
    })
}

/// The lock at `lock` was destroyed (its address may be reused by a lock of
/// another class).
///
/// Returns `RTC_OK`; `RTC_ERR_NULL`; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_preload_lock_destroyed(lock: *const c_void) -> rtc_status {
    boundary("rtc_preload_lock_destroyed", || {
        let addr = lock_arg(lock, "rtc_preload_lock_destroyed")?;
        lifecycle::enter()?;
        interpose::destroyed(addr);
        Ok(())
    })
}

/// Before a blocking lock call on `lock` made at `site`; `kind`: a mutex
/// of glibc's type 0 normal, 1 recursive, 2 error-checking, 3 adaptive, or
/// a read/write lock taken 4 for reading or 5 for writing. Reports, as the
/// lock-rank mode says, a lock taken again that would never return (a
/// non-recursive mutex, a read/write lock written while held) and an
/// acquisition whose class order closes a cycle with the order learned so
/// far (a read lock wanted while holding a read lock adds no order),
/// before the call can deadlock. A lock not initialised by an
/// interposed call is its own class, first seen here.
///
/// Returns `RTC_OK` (also when something was reported); `RTC_ERR_NULL`;
/// `RTC_ERR_INVALID_ARGUMENT` for an unknown `kind`; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_preload_lock_wanted(
    lock: *const c_void,
    site: *const c_void,
    kind: u32,
) -> rtc_status {
    boundary("rtc_preload_lock_wanted", || {
        let addr = lock_arg(lock, "rtc_preload_lock_wanted")?;
        let kind = kind_arg(kind, "rtc_preload_lock_wanted")?;
        let mode = lifecycle::enter()?;
        interpose::wanted(addr, site as usize, kind, mode);
        Ok(())
    })
}

/// After a lock call on `lock` made at `site` succeeded: the calling
/// thread holds it (`kind` as for `rtc_preload_lock_wanted`; `flags`: 1
/// for a try-lock, which adds no edge to the learned order, 2 for a mutex
/// a condition wait took again; `waited_ns`:
/// how long the call blocked, 0 if it did not, for the contention
/// summary).
///
/// Returns `RTC_OK`; `RTC_ERR_NULL`; `RTC_ERR_INVALID_ARGUMENT` for an
/// unknown `kind` or flags; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_preload_lock_acquired(
    lock: *const c_void,
    site: *const c_void,
    kind: u32,
    flags: u32,
    waited_ns: u64,
) -> rtc_status {
    boundary("rtc_preload_lock_acquired", || {
        let addr = lock_arg(lock, "rtc_preload_lock_acquired")?;
        let kind = kind_arg(kind, "rtc_preload_lock_acquired")?;
        if flags & !(TRIED | AFTER_WAIT) != 0 {
            return Err(Error::new(
                rtc_status::RTC_ERR_INVALID_ARGUMENT,
                format!("rtc_preload_lock_acquired: unknown flags {flags:#x}"),
            ));
        }
        lifecycle::enter()?;
        interpose::acquired(
            addr,
            site as usize,
            kind,
            flags & TRIED != 0,
            flags & AFTER_WAIT != 0,
            waited_ns,
        );
        Ok(())
    })
}

/// After an unlock call on `lock` made at `site`: the calling thread no
/// longer holds it (once per lock of a recursive mutex). An unlock of a
/// mutex the thread does not hold is reported as the lock-rank mode says.
///
/// Returns `RTC_OK`; `RTC_ERR_NULL`; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_preload_lock_released(
    lock: *const c_void,
    site: *const c_void,
) -> rtc_status {
    boundary("rtc_preload_lock_released", || {
        let addr = lock_arg(lock, "rtc_preload_lock_released")?;
        let mode = lifecycle::enter()?;
        interpose::released(addr, site as usize, mode);
        Ok(())
    })
}

/// Write the interposition's summary (threads, lock classes, learned order
/// edges, violations, the five most contended classes) into `buf` (`len`
/// bytes, NUL-terminated, cut if short; NULL or 0 to ask the size).
///
/// Returns the summary's length plus one (the size `buf` needs).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_preload_summary(buf: *mut c_char, len: usize) -> usize {
    super::boundary_value("rtc_preload_summary", 0, || {
        copy_out(&interpose::summary(), buf, len)
    })
}
