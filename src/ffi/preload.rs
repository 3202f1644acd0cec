//! The hooks `librtcore_preload.so` calls (`rtcore run`, docs/preload.md).
//! The preload library interposes the pthread lock functions and keeps
//! each thread's held locks and caches itself; it calls these only to
//! class a lock it has not seen, to check a chain of classes it has not
//! checked, and to record what the summary counts. A program written for
//! rtcore has no reason to call them; they are exported so the preload
//! library, loaded before librtcore, finds them with `dlsym`.
//!
//! Every hook is safe to call with any arguments: a NULL pointer is
//! refused with `RTC_ERR_NULL`, an unknown kind or class with
//! `RTC_ERR_INVALID_ARGUMENT`, and after `rtc_shutdown` they return
//! `RTC_ERR_SHUT_DOWN` doing nothing.

use std::ffi::{c_char, c_void};

use super::{boundary, copy_out};
use crate::interpose::{self, LockKind};
use crate::lifecycle;
use crate::status::{Error, Result, rtc_status};

/// A lock in a chain given to `rtc_preload_lock_check`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct rtc_preload_held {
    /// The lock's address.
    pub lock: *const c_void,
    /// Where it was (or is to be) taken: the return address of the lock
    /// call.
    pub site: *const c_void,
    /// 0-3: a mutex of glibc's type (normal, recursive, error-checking,
    /// adaptive); 4: a read/write lock taken for reading; 5: for writing.
    pub kind: u32,
    /// Its class, as `rtc_preload_lock_class` gave it.
    pub lock_class: u32,
}

/// `rtc_preload_lock_waited`'s flags: a condition wait took its mutex again
/// (counted; `ns` is ignored); a robust mutex was taken with `EOWNERDEAD`
/// (flagged on stderr and counted; `ns` is ignored).
const COND_WAIT: u32 = 1;
const OWNER_DIED: u32 = 2;

fn nonnull<T>(p: *const T, arg: &str, func: &str) -> Result<usize> {
    if p.is_null() {
        return Err(Error::new(
            rtc_status::RTC_ERR_NULL,
            format!("{func}: {arg} is NULL"),
        ));
    }
    Ok(p as usize)
}

fn lock_of(h: &rtc_preload_held, func: &str) -> Result<interpose::Lock> {
    let addr = nonnull(h.lock, "a lock", func)?;
    let kind = LockKind::from_bits(h.kind).ok_or_else(|| {
        Error::new(
            rtc_status::RTC_ERR_INVALID_ARGUMENT,
            format!("{func}: kind {} is not a lock kind (0 normal, 1 recursive, 2 error-checking, 3 adaptive mutex; 4 read, 5 write lock of a read/write lock)", h.kind),
        )
    })?;
    if !interpose::class_exists(h.lock_class) {
        return Err(Error::new(
            rtc_status::RTC_ERR_INVALID_ARGUMENT,
            format!(
                "{func}: class {} was not given by rtc_preload_lock_class",
                h.lock_class
            ),
        ));
    }
    Ok(interpose::Lock {
        addr,
        site: h.site as usize,
        kind,
        class: h.lock_class,
    })
}

/// A chain's arguments, checked: `wanted`, and `n` held locks at `held`.
fn chain_args(
    held: *const rtc_preload_held,
    n: usize,
    wanted: *const rtc_preload_held,
    func: &str,
) -> Result<(Vec<interpose::Lock>, interpose::Lock)> {
    nonnull(wanted, "wanted", func)?;
    let held = held_args(held, n, func)?;
    // SAFETY: non-NULL (checked); the caller promises one entry.
    let wanted = lock_of(unsafe { &*wanted }, func)?;
    Ok((held, wanted))
}

/// `n` entries of `held` (NULL allowed when `n` is 0), checked.
fn held_args(held: *const rtc_preload_held, n: usize, func: &str) -> Result<Vec<interpose::Lock>> {
    if n > 0 {
        nonnull(held, "held", func)?;
    }
    if n > 4096 {
        return Err(Error::new(
            rtc_status::RTC_ERR_INVALID_ARGUMENT,
            format!("{func}: n is {n}, more than 4096 held locks"),
        ));
    }
    // SAFETY: non-NULL (checked); the caller promises n readable entries.
    let held: &[rtc_preload_held] = if n == 0 {
        &[]
    } else {
        unsafe { std::slice::from_raw_parts(held, n) }
    };
    held.iter().map(|h| lock_of(h, func)).collect()
}

/// The lock at `lock` was initialised by the code that returns to `site`
/// (`pthread_mutex_init`'s or `pthread_rwlock_init`'s caller): its class
/// is that site's.
///
/// Returns `RTC_OK`; `RTC_ERR_NULL`; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_preload_lock_init(lock: *const c_void, site: *const c_void) -> rtc_status {
    boundary("rtc_preload_lock_init", || {
        let addr = nonnull(lock, "lock", "rtc_preload_lock_init")?;
        lifecycle::enter()?;
        interpose::init(addr, site as usize);
        Ok(())
    })
}

/// The lock at `lock` was destroyed (its address may next hold a lock of
/// another class: `rtc_preload_epoch` moves).
///
/// Returns `RTC_OK`; `RTC_ERR_NULL`; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_preload_lock_destroyed(lock: *const c_void) -> rtc_status {
    boundary("rtc_preload_lock_destroyed", || {
        let addr = nonnull(lock, "lock", "rtc_preload_lock_destroyed")?;
        lifecycle::enter()?;
        interpose::destroyed(addr);
        Ok(())
    })
}

/// The class of the lock at `lock` into `*lock_class`: the class of the
/// site that initialised it, or, for a lock never initialised by a call
/// (`PTHREAD_MUTEX_INITIALIZER`), a class of its own, first seen at `site`.
/// Valid until `rtc_preload_epoch`'s word moves.
///
/// Returns `RTC_OK`; `RTC_ERR_NULL`; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_preload_lock_class(
    lock: *const c_void,
    site: *const c_void,
    lock_class: *mut u32,
) -> rtc_status {
    boundary("rtc_preload_lock_class", || {
        let addr = nonnull(lock, "lock", "rtc_preload_lock_class")?;
        let out = super::out(lock_class, "lock_class", "rtc_preload_lock_class")?;
        lifecycle::enter()?;
        out.set(interpose::class_of(addr, site as usize));
        Ok(())
    })
}

/// Check an acquisition before it blocks: `wanted` while the `n` locks of
/// `held` are held (oldest first). Reports, as the lock-rank mode says, a
/// lock taken again that would never return (a non-recursive mutex, a
/// read/write lock written while held) and an acquisition whose class
/// order closes a cycle with the order learned so far (a read lock wanted
/// while a read lock is held adds no order), before the call can deadlock;
/// learns the new order otherwise. Each chain is learned once.
///
/// Returns `RTC_OK` (also when something was reported); `RTC_ERR_NULL`
/// (`held` may be NULL only when `n` is 0); `RTC_ERR_INVALID_ARGUMENT` for
/// an unknown kind or class, or `n` over 4096; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_preload_lock_check(
    held: *const rtc_preload_held,
    n: usize,
    wanted: *const rtc_preload_held,
) -> rtc_status {
    const F: &str = "rtc_preload_lock_check";
    boundary(F, || {
        let (held, wanted) = chain_args(held, n, wanted, F)?;
        let mode = lifecycle::enter()?;
        interpose::check(&held, wanted, mode);
        Ok(())
    })
}

/// The calling thread is about to block in a lock call on `wanted` (its
/// lock looked busy) while holding the `n` locks of `held`: published for
/// sysmon's deadlock search until `rtc_preload_wait_end`. A cycle of such
/// waits (and of rtcore's own locks') is reported within about a second,
/// as for rtcore's locks (docs/sysmon.md, "Deadlocks").
///
/// Returns `RTC_OK`; the argument statuses of `rtc_preload_lock_check`;
/// `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_preload_wait_begin(
    held: *const rtc_preload_held,
    n: usize,
    wanted: *const rtc_preload_held,
) -> rtc_status {
    const F: &str = "rtc_preload_wait_begin";
    boundary(F, || {
        let (held, wanted) = chain_args(held, n, wanted, F)?;
        lifecycle::enter()?;
        interpose::wait_begin(&held, wanted);
        Ok(())
    })
}

/// The lock call announced by `rtc_preload_wait_begin` returned.
///
/// Returns `RTC_OK` (also when nothing was announced); `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_preload_wait_end() -> rtc_status {
    boundary("rtc_preload_wait_end", || {
        lifecycle::enter()?;
        interpose::wait_end();
        Ok(())
    })
}

/// The calling thread is about to wait on the condition variable `cond`
/// (`pthread_cond_wait` and its variants). While tracing, a thread not
/// attached to the world records it (`outside wait`): its state in the
/// trace is WAITING until `rtc_preload_cond_wait_end`. An attached
/// thread's state is the world's: nothing is recorded for it.
///
/// Returns `RTC_OK` (also when not tracing); `RTC_ERR_NULL` for a NULL
/// `cond`; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_preload_cond_wait_begin(cond: *const c_void) -> rtc_status {
    const F: &str = "rtc_preload_cond_wait_begin";
    boundary(F, || {
        let cond = nonnull(cond, "cond", F)?;
        lifecycle::enter()?;
        interpose::outside_wait(crate::format::BlockReason::Cond, cond);
        Ok(())
    })
}

/// The condition wait announced by `rtc_preload_cond_wait_begin` returned
/// (`outside resume` in the trace).
///
/// Returns `RTC_OK` (also when nothing was announced); `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_preload_cond_wait_end() -> rtc_status {
    boundary("rtc_preload_cond_wait_end", || {
        lifecycle::enter()?;
        interpose::outside_resume();
        Ok(())
    })
}

/// The calling thread ends (its start routine returned, it called
/// `pthread_exit`, or it was cancelled) holding the `n` locks of `held`
/// (oldest first): reported as the lock-rank mode says (nobody can unlock
/// them now), and counted in the summary. `n` is at least 1.
///
/// Returns `RTC_OK`; `RTC_ERR_NULL` for a NULL `held`;
/// `RTC_ERR_INVALID_ARGUMENT` for `n` 0 or above 4096, or an entry as
/// `rtc_preload_lock_check` refuses it; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_preload_thread_exit(held: *const rtc_preload_held, n: usize) -> rtc_status {
    const F: &str = "rtc_preload_thread_exit";
    boundary(F, || {
        if n == 0 {
            return Err(Error::new(
                rtc_status::RTC_ERR_INVALID_ARGUMENT,
                format!("{F}: n is 0 (a thread that holds no lock has nothing to report)"),
            ));
        }
        let held = held_args(held, n, F)?;
        let mode = lifecycle::enter()?;
        interpose::thread_exit(&held, mode);
        Ok(())
    })
}

/// A lock call on a lock of class `lock_class` blocked `ns` nanoseconds
/// (the summary's most contended classes); with `flags` 1, a condition
/// wait took its mutex again instead (counted); with `flags` 2, a robust
/// mutex of that class was taken from an owner that died holding it
/// (`EOWNERDEAD`: flagged on stderr, counted).
///
/// Returns `RTC_OK`; `RTC_ERR_INVALID_ARGUMENT` for an unknown class or
/// flags; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_preload_lock_waited(lock_class: u32, ns: u64, flags: u32) -> rtc_status {
    const F: &str = "rtc_preload_lock_waited";
    boundary(F, || {
        if flags & !(COND_WAIT | OWNER_DIED) != 0
            || flags == COND_WAIT | OWNER_DIED
            || !interpose::class_exists(lock_class)
        {
            return Err(Error::new(
                rtc_status::RTC_ERR_INVALID_ARGUMENT,
                format!("{F}: unknown flags {flags:#x} or class {lock_class}"),
            ));
        }
        lifecycle::enter()?;
        if flags & OWNER_DIED != 0 {
            interpose::owner_died(lock_class);
        } else {
            interpose::waited(lock_class, ns, flags & COND_WAIT != 0);
        }
        Ok(())
    })
}

/// The calling thread unlocks, at `site`, the lock at `lock`, which it does
/// not hold: reported as the lock-rank mode says.
///
/// Returns `RTC_OK`; `RTC_ERR_NULL`; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_preload_unlock_not_held(
    lock: *const c_void,
    site: *const c_void,
) -> rtc_status {
    boundary("rtc_preload_unlock_not_held", || {
        let addr = nonnull(lock, "lock", "rtc_preload_unlock_not_held")?;
        let mode = lifecycle::enter()?;
        interpose::unlock_not_held(addr, site as usize, mode);
        Ok(())
    })
}

/// The word lock classes are valid for: a class given by
/// `rtc_preload_lock_class` may be cached while this word keeps the value
/// it had then (read it with a relaxed atomic load). Never NULL; valid for
/// the process's life.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_preload_epoch() -> *const u64 {
    interpose::epoch().as_ptr()
}

/// Write the interposition's summary (threads, lock classes, learned order
/// edges, condition waits, problems found, the five most contended
/// classes) into `buf` (`len` bytes, NUL-terminated, cut if short; NULL or
/// 0 to ask the size).
///
/// Returns the summary's length plus one (the size `buf` needs).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_preload_summary(buf: *mut c_char, len: usize) -> usize {
    super::boundary_value("rtc_preload_summary", 0, || {
        copy_out(&interpose::summary(), buf, len)
    })
}

/// Write the order learned so far as a rank file (docs/ranks.md's
/// language; `rtcore run --learn-ranks`) into `buf` (`len` bytes,
/// NUL-terminated, cut if short; NULL or 0 to ask the size). `program`
/// (NUL-terminated, or NULL) is named in its heading comment.
///
/// Returns the text's length plus one (the size `buf` needs).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_preload_learned_ranks(
    program: *const c_char,
    buf: *mut c_char,
    len: usize,
) -> usize {
    super::boundary_value("rtc_preload_learned_ranks", 0, || {
        let program = if program.is_null() {
            "the program".to_string()
        } else {
            // SAFETY: non-NULL; the caller promises a NUL-terminated string.
            unsafe { std::ffi::CStr::from_ptr(program) }
                .to_string_lossy()
                .into_owned()
        };
        copy_out(&interpose::learned_ranks(&program), buf, len)
    })
}
