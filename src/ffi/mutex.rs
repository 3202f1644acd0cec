//! `rtc_mutex` exports.

use std::os::raw::c_char;

use super::{boundary_poisoning, checked_ptr};
use crate::lifecycle;
use crate::lock::mutex::{Fast, MutexRef, UnlockFast, rtc_mutex};
use crate::status::{Result, rtc_status};

/// Check the pointer and build a view of it.
#[inline]
fn mutex_ref(m: *mut rtc_mutex, func: &str) -> Result<MutexRef> {
    checked_ptr(m, "mutex", func)?;
    // SAFETY: non-NULL, aligned; the caller promises it points to a mutex.
    Ok(unsafe { MutexRef::new(m) })
}

/// Run a mutex method at the boundary; a panic poisons the mutex.
#[inline]
fn with_mutex(
    m: *mut rtc_mutex,
    func: &str,
    f: impl FnOnce(&MutexRef) -> Result<()>,
) -> rtc_status {
    boundary_poisoning(
        func,
        || {
            let r = mutex_ref(m, func)?;
            f(&r)
        },
        || {
            if let Ok(r) = mutex_ref(m, func) {
                r.mark_poisoned();
            }
        },
    )
}

/// Initialise `mutex` at run time with a name (copied; may be NULL) and a
/// rank name (resolved now; NULL makes an unranked leaf). The memory may hold
/// anything before the call. Must not race other use of the same mutex.
///
/// Returns `RTC_OK`; `RTC_ERR_NULL`; `RTC_ERR_UNKNOWN_RANK` (the mutex is left
/// untouched); `RTC_ERR_LOCKED` if this thread holds it (detected through
/// the held record, so not for locks taken while the lock-rank mode is off).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_mutex_init(
    mutex: *mut rtc_mutex,
    name: *const c_char,
    rank_name: *const c_char,
) -> rtc_status {
    with_mutex(mutex, "rtc_mutex_init", |m| {
        lifecycle::enter()?;
        m.init(name, rank_name)
    })
}

/// Lock `mutex`, with no call site recorded. See `rtc_mutex_lock_at`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_mutex_lock(mutex: *mut rtc_mutex) -> rtc_status {
    // Its own copy of the path, not a jump to the exported
    // `rtc_mutex_lock_at` (an indirect jump through the GOT).
    lock_at(mutex, None, std::ptr::null(), 0, false)
}

/// Lock `mutex`, recording the call site (`file`, NUL-terminated and static,
/// or NULL; `line`) for reports. `RTC_MUTEX_LOCK(m)` passes `__FILE__` and
/// `__LINE__`. Before blocking, the mutex's rank is checked against every
/// lock this thread holds; a violation is handled as the lock-rank mode says
/// (report: printed once per pair, and the lock is still taken).
///
/// Returns `RTC_OK`; `RTC_ERR_NULL`; `RTC_ERR_WOULD_DEADLOCK` at once if this
/// thread already holds it; `RTC_ERR_UNKNOWN_RANK` if a static initialiser
/// named an undeclared rank (the mutex is not locked); `RTC_ERR_DESTROYED`;
/// `RTC_ERR_MOVED`; `RTC_ERR_POISONED`; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_mutex_lock_at(
    mutex: *mut rtc_mutex,
    file: *const c_char,
    line: u32,
) -> rtc_status {
    lock_at(mutex, None, file, line, false)
}

/// Every lock export: the uncontended path inline, with no call in it, so
/// it saves no registers (stores before the locked instruction, which x86
/// makes wait); everything else in `lock_cold`, reached by a tail call
/// with every argument in a register.
#[inline(always)]
fn lock_at(
    mutex: *mut rtc_mutex,
    key: Option<u64>,
    file: *const c_char,
    line: u32,
    keyed_export: bool,
) -> rtc_status {
    let mut fast = Fast::No;
    if let Some(mode) = lifecycle::running_mode() {
        if !mutex.is_null() && (mutex as usize) % align_of::<rtc_mutex>() == 0 {
            // SAFETY: non-NULL and aligned; the caller promises a mutex.
            // `lock_fast` cannot panic, so it may run outside the boundary.
            fast = unsafe { MutexRef::new(mutex) }.lock_fast(
                mode,
                key.unwrap_or(mutex as u64),
                file,
                line,
            );
            if fast == Fast::Taken {
                return rtc_status::RTC_OK;
            }
        }
    }
    let how = u32::from(keyed_export) | (u32::from(key.is_some()) << 1);
    lock_cold(mutex, fast.bits(), key.unwrap_or(0), file, line, how)
}

/// The rest of a lock call (`how`: bit 0, a keyed export; bit 1, `key`
/// given): finish a fast acquisition the order check has something to say
/// about, give back one the fast path may not keep, or spin and retry the
/// fast path when the mutex is held; else the full path.
#[cold]
#[inline(never)]
extern "C" fn lock_cold(
    mutex: *mut rtc_mutex,
    fast: u64,
    key: u64,
    file: *const c_char,
    line: u32,
    how: u32,
) -> rtc_status {
    let func = match (how & 1 != 0, file.is_null()) {
        (false, true) => "rtc_mutex_lock",
        (false, false) => "rtc_mutex_lock_at",
        (true, true) => "rtc_mutex_lock_keyed",
        (true, false) => "rtc_mutex_lock_keyed_at",
    };
    let key = (how & 2 != 0).then_some(key);
    let k = key.unwrap_or(mutex as u64);
    let usable = !mutex.is_null() && (mutex as usize) % align_of::<rtc_mutex>() == 0;
    let mut fast = Fast::from_bits(fast);
    if fast == Fast::GiveBack && usable {
        // SAFETY: usable (checked above); the caller promises a mutex.
        unsafe { MutexRef::new(mutex) }.give_back();
        fast = Fast::No;
    }
    if let (Fast::No, Some(mode), true) = (fast, lifecycle::running_mode(), usable) {
        // SAFETY: as above.
        fast = unsafe { MutexRef::new(mutex) }.lock_fast_spinning(mode, k, file, line);
    }
    match (fast, lifecycle::running_mode()) {
        (Fast::Taken, _) => rtc_status::RTC_OK,
        // (A mutex's fast path never says "biased": that is an rwlock's.)
        (Fast::TakenUnchecked(rank) | Fast::TakenBiasedUnchecked(rank), Some(mode)) => {
            record_checked(mutex, mode, rank, k, file, line)
        }
        // Taken, then shut down before the check: kept, unchecked.
        (Fast::TakenUnchecked(_) | Fast::TakenBiasedUnchecked(_), None) => rtc_status::RTC_OK,
        // Given back above (or the pointer was never usable).
        (Fast::GiveBack | Fast::No, _) => lock_slow(mutex, key, file, line, func),
    }
}

/// Finish a fast acquisition the order check has something to say about.
/// The report may run a user callback: inside the boundary.
#[cold]
#[inline(never)]
fn record_checked(
    mutex: *mut rtc_mutex,
    mode: crate::lock::order::Mode,
    rank: u32,
    key: u64,
    file: *const c_char,
    line: u32,
) -> rtc_status {
    super::boundary("rtc_mutex_lock_at", || {
        // SAFETY: checked by the caller's fast path (non-NULL, aligned).
        unsafe { MutexRef::new(mutex) }.record_checked(mode, rank, key, file, line);
        Ok(())
    })
}

#[cold]
#[inline(never)]
fn lock_slow(
    mutex: *mut rtc_mutex,
    key: Option<u64>,
    file: *const c_char,
    line: u32,
    func: &str,
) -> rtc_status {
    with_mutex(mutex, func, |m| {
        let mode = lifecycle::enter()?;
        m.lock(mode, key, file, line)
    })
}

/// Lock `mutex` with a nesting key, with no call site recorded. See
/// `rtc_mutex_lock_keyed_at`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_mutex_lock_keyed(mutex: *mut rtc_mutex, key: u64) -> rtc_status {
    lock_at(mutex, Some(key), std::ptr::null(), 0, true)
}

/// Lock `mutex` as `rtc_mutex_lock_at` does, ordering it among locks of its
/// rank by `key` instead of its address. A thread may hold several locks of
/// a rank declared `nestable:` only if it takes them in strictly increasing
/// key order (a row's id, say); taking one whose key is not above every
/// held key of that rank is a violation, handled as the lock-rank mode
/// says. Plain lock calls use the lock's address as its key, so mix keyed
/// and plain locking of one rank only if the keys are addresses too.
/// `RTC_MUTEX_LOCK_KEYED(m, key)` passes the call site.
///
/// Returns as `rtc_mutex_lock_at`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_mutex_lock_keyed_at(
    mutex: *mut rtc_mutex,
    key: u64,
    file: *const c_char,
    line: u32,
) -> rtc_status {
    lock_at(mutex, Some(key), file, line, true)
}

/// Try to lock `mutex` without blocking. See `rtc_mutex_trylock_at`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_mutex_trylock(mutex: *mut rtc_mutex) -> rtc_status {
    rtc_mutex_trylock_at(mutex, std::ptr::null(), 0)
}

/// Try to lock `mutex` without blocking, recording the call site. A try-lock
/// is recorded in the held set but not order-checked (it cannot block).
///
/// Returns `RTC_OK`; `RTC_ERR_BUSY` if another thread holds it (no last-error
/// message is stored for this expected outcome); `RTC_ERR_WOULD_DEADLOCK` if
/// this thread holds it; otherwise as `rtc_mutex_lock_at`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_mutex_trylock_at(
    mutex: *mut rtc_mutex,
    file: *const c_char,
    line: u32,
) -> rtc_status {
    let func = if file.is_null() {
        "rtc_mutex_trylock"
    } else {
        "rtc_mutex_trylock_at"
    };
    with_mutex(mutex, func, |m| {
        lifecycle::enter()?;
        m.try_lock(file, line)
    })
}

/// Unlock `mutex`. Locks may be released in any order.
///
/// Keeps working after `rtc_shutdown`, so a lock held across it can still be
/// released. Returns `RTC_OK`; `RTC_ERR_NULL`; `RTC_ERR_NOT_OWNER` if this
/// thread does not hold it (not locked, or held by another thread);
/// `RTC_ERR_DESTROYED`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_mutex_unlock(mutex: *mut rtc_mutex) -> rtc_status {
    let fast = if lifecycle::running_mode().is_some()
        && !mutex.is_null()
        && (mutex as usize) % align_of::<rtc_mutex>() == 0
    {
        // SAFETY: as in rtc_mutex_lock_at; `unlock_fast` cannot panic.
        unsafe { MutexRef::new(mutex) }.unlock_fast()
    } else {
        UnlockFast::No
    };
    // Every other way out a tail call (the fast path then saves no
    // register: a store before the next locked instruction).
    match fast {
        UnlockFast::Done => rtc_status::RTC_OK,
        UnlockFast::Forget => unlock_forget(mutex),
        UnlockFast::No => unlock_slow(mutex),
    }
}

/// Released out of order: drop the entry, out of line (and a tail call,
/// so the fast path saves no register for it).
#[cold]
#[inline(never)]
extern "C" fn unlock_forget(mutex: *mut rtc_mutex) -> rtc_status {
    // Cannot panic (a bounded removal from this thread's record).
    // SAFETY: checked by the caller's fast path (non-NULL, aligned).
    unsafe { MutexRef::new(mutex) }.forget();
    // Opaque, so that the caller does not fold the constant and call this
    // (saving a register for the call) instead of jumping to it.
    std::hint::black_box(rtc_status::RTC_OK)
}

#[cold]
#[inline(never)]
extern "C" fn unlock_slow(mutex: *mut rtc_mutex) -> rtc_status {
    // No lifecycle check: releasing keeps working after rtc_shutdown, so
    // a lock held across it can still be released and its waiters woken.
    with_mutex(mutex, "rtc_mutex_unlock", |m| m.unlock())
}

/// Destroy `mutex`. Later use returns `RTC_ERR_DESTROYED` until it is
/// initialised again. Destroying an all-zero mutex is allowed.
///
/// Keeps working after `rtc_shutdown`. Returns `RTC_OK`; `RTC_ERR_NULL`;
/// `RTC_ERR_LOCKED` if any thread holds it (nothing changes);
/// `RTC_ERR_MOVED`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_mutex_destroy(mutex: *mut rtc_mutex) -> rtc_status {
    // Works after rtc_shutdown too (releasing resources is always safe).
    with_mutex(mutex, "rtc_mutex_destroy", |m| m.destroy())
}

/// Diagnostic: panics inside a method of `mutex`, which poisons it: later
/// calls on it return `RTC_ERR_POISONED`. Returns `RTC_ERR_PANIC` (or
/// `RTC_ERR_NULL`). For tests of the panic boundary.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_mutex_debug_panic(mutex: *mut rtc_mutex) -> rtc_status {
    crate::ffi::install_panic_hook();
    with_mutex(mutex, "rtc_mutex_debug_panic", |m| {
        panic!(
            "rtc_mutex_debug_panic on {}: this panic is deliberate",
            m.describe()
        )
    })
}
