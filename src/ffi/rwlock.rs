//! `rtc_rwlock` exports.

use std::os::raw::c_char;

use super::{boundary_poisoning, checked_ptr};
use crate::lifecycle;
use crate::lock::mutex::Fast;
use crate::lock::order::Mode;
use crate::lock::rwlock::{RwLockRef, UnlockFast, rtc_rwlock};
use crate::status::{Result, rtc_status};

/// Run an rwlock method at the boundary; a panic poisons the lock.
#[inline]
fn with_rwlock(
    l: *mut rtc_rwlock,
    func: &str,
    f: impl FnOnce(&RwLockRef) -> Result<()>,
) -> rtc_status {
    let view = |func: &str| -> Result<RwLockRef> {
        checked_ptr(l, "rwlock", func)?;
        // SAFETY: non-NULL, aligned; the caller promises an rwlock.
        Ok(unsafe { RwLockRef::new(l) })
    };
    boundary_poisoning(
        func,
        || f(&view(func)?),
        || {
            if let Ok(r) = view(func) {
                r.mark_poisoned();
            }
        },
    )
}

fn name(base: &'static str, at: &'static str, file: *const c_char) -> &'static str {
    if file.is_null() { base } else { at }
}

/// Every blocking lock export: the uncontended path inline, with no call
/// in it (it runs outside the boundary: it cannot panic); everything else
/// in `lock_cold`, reached with every argument in a register (as the
/// mutex's).
#[inline(always)]
fn lock_at(
    l: *mut rtc_rwlock,
    shared: bool,
    key: Option<u64>,
    file: *const c_char,
    line: u32,
    export: u32,
) -> rtc_status {
    let mut fast = Fast::No;
    if let Some(mode) = lifecycle::running_mode() {
        if !l.is_null() && (l as usize) % align_of::<rtc_rwlock>() == 0 {
            // SAFETY: non-NULL and aligned; the caller promises an rwlock.
            fast = unsafe { RwLockRef::new(l) }.lock_fast(
                shared,
                mode,
                key.unwrap_or(l as u64),
                file,
                line,
            );
            if fast == Fast::Taken {
                return rtc_status::RTC_OK;
            }
        }
    }
    let how = export | (u32::from(shared) << 4) | (u32::from(key.is_some()) << 5);
    lock_cold(l, fast.bits(), key.unwrap_or(0), file, line, how)
}

/// The exports, by number (`how`'s low bits).
const EXPORTS: [&str; 6] = [
    "rtc_rwlock_rdlock",
    "rtc_rwlock_rdlock_at",
    "rtc_rwlock_wrlock",
    "rtc_rwlock_wrlock_at",
    "rtc_rwlock_rdlock_keyed_at",
    "rtc_rwlock_wrlock_keyed_at",
];

/// The rest of a lock call (`how`: the export's number in bits 0-3, read
/// in bit 4, a key given in bit 5).
#[cold]
#[inline(never)]
extern "C" fn lock_cold(
    l: *mut rtc_rwlock,
    fast: u64,
    key: u64,
    file: *const c_char,
    line: u32,
    how: u32,
) -> rtc_status {
    let func = EXPORTS[(how & 0xf) as usize % EXPORTS.len()];
    let shared = how & 0x10 != 0;
    let key = (how & 0x20 != 0).then_some(key);
    match (Fast::from_bits(fast), lifecycle::running_mode()) {
        (Fast::Taken, _) => rtc_status::RTC_OK,
        // Taken; after a shut down before the check (mode None): kept,
        // recorded (the unlock tells a read hold from the record) but not
        // checked.
        (taken @ (Fast::TakenUnchecked(rank) | Fast::TakenBiasedUnchecked(rank)), mode) => {
            let biased = matches!(taken, Fast::TakenBiasedUnchecked(_));
            // SAFETY: the fast path checked the pointer.
            let r = unsafe { RwLockRef::new(l) };
            super::boundary(func, || {
                r.record_checked(
                    shared,
                    biased,
                    mode.unwrap_or(Mode::Off),
                    rank,
                    key.unwrap_or(l as u64),
                    file,
                    line,
                );
                Ok(())
            })
        }
        // Taken by the fast path's first compare-and-swap, then found not
        // ready or the record full: released, then the full path says why.
        (Fast::GiveBack, _) => {
            // SAFETY: the fast path checked the pointer.
            let r = unsafe { RwLockRef::new(l) };
            match super::boundary(func, || {
                r.give_back(shared);
                Ok(())
            }) {
                rtc_status::RTC_OK => lock_slow(l, shared, key, file, line, func),
                failed => failed,
            }
        }
        (Fast::No, _) => lock_slow(l, shared, key, file, line, func),
    }
}

#[cold]
#[inline(never)]
fn lock_slow(
    l: *mut rtc_rwlock,
    shared: bool,
    key: Option<u64>,
    file: *const c_char,
    line: u32,
    func: &str,
) -> rtc_status {
    with_rwlock(l, func, |r| {
        let mode = lifecycle::enter()?;
        r.lock(shared, mode, key, file, line)
    })
}

/// Initialise `rwlock` at run time with a name (copied; may be NULL) and a
/// rank name (resolved now; NULL makes an unranked leaf). The memory may
/// hold anything before the call. Must not race other use of the lock.
///
/// Returns `RTC_OK`; `RTC_ERR_NULL`; `RTC_ERR_UNKNOWN_RANK` (the lock is
/// left untouched); `RTC_ERR_LOCKED` if this thread holds it.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_rwlock_init(
    rwlock: *mut rtc_rwlock,
    name: *const c_char,
    rank_name: *const c_char,
) -> rtc_status {
    with_rwlock(rwlock, "rtc_rwlock_init", |l| {
        lifecycle::enter()?;
        l.init(name, rank_name)
    })
}

/// Lock `rwlock` for reading, with no call site recorded. See
/// `rtc_rwlock_rdlock_at`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_rwlock_rdlock(rwlock: *mut rtc_rwlock) -> rtc_status {
    // Its own copy of the path, not a jump to the exported `_at` function
    // (an indirect jump through the GOT).
    lock_at(rwlock, true, None, std::ptr::null(), 0, 0)
}

/// Lock `rwlock` for reading (shared with other readers), recording the
/// call site for reports (`RTC_RWLOCK_RDLOCK(l)` passes it). The lock's
/// rank is checked before blocking against every lock this thread holds,
/// as for a mutex; it is held in read mode in the record.
///
/// Readers that meet on a lock turn on reader bias: later reads do not
/// write the lock's memory but a slot of their own thread in a table, so
/// readers on different CPUs do not slow each other down; a writer turns
/// it off as it takes the lock and then waits for the readers still in
/// (docs/ranks.md, "Reader bias").
///
/// The policy prefers writers: a reader waits while a writer holds the
/// lock or is waiting for it. So a thread may not read-lock a lock it
/// already holds (in any mode): a writer arriving between the two reads
/// would make it wait forever. That is refused at once.
///
/// Returns `RTC_OK`; `RTC_ERR_NULL`; `RTC_ERR_WOULD_DEADLOCK` if this
/// thread already holds it (read or write); `RTC_ERR_UNKNOWN_RANK`;
/// `RTC_ERR_DESTROYED`; `RTC_ERR_MOVED`; `RTC_ERR_POISONED`;
/// `RTC_ERR_WRONG_STATE` if the thread already holds 64 locks;
/// `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_rwlock_rdlock_at(
    rwlock: *mut rtc_rwlock,
    file: *const c_char,
    line: u32,
) -> rtc_status {
    lock_at(rwlock, true, None, file, line, u32::from(!file.is_null()))
}

/// Lock `rwlock` for writing (exclusive), with no call site recorded. See
/// `rtc_rwlock_wrlock_at`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_rwlock_wrlock(rwlock: *mut rtc_rwlock) -> rtc_status {
    // As `rtc_rwlock_rdlock`.
    lock_at(rwlock, false, None, std::ptr::null(), 0, 2)
}

/// Lock `rwlock` for writing (exclusive), recording the call site
/// (`RTC_RWLOCK_WRLOCK(l)` passes it). Order-checked before blocking like a
/// mutex. A waiting writer stops new readers, so it waits only for the
/// readers already in.
///
/// Returns as `rtc_rwlock_rdlock_at`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_rwlock_wrlock_at(
    rwlock: *mut rtc_rwlock,
    file: *const c_char,
    line: u32,
) -> rtc_status {
    lock_at(
        rwlock,
        false,
        None,
        file,
        line,
        2 + u32::from(!file.is_null()),
    )
}

/// Read-lock `rwlock` as `rtc_rwlock_rdlock_at` does, ordered among locks
/// of its rank by `key` (see `rtc_mutex_lock_keyed_at`).
///
/// Returns as `rtc_rwlock_rdlock_at`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_rwlock_rdlock_keyed_at(
    rwlock: *mut rtc_rwlock,
    key: u64,
    file: *const c_char,
    line: u32,
) -> rtc_status {
    lock_at(rwlock, true, Some(key), file, line, 4)
}

/// Write-lock `rwlock` as `rtc_rwlock_wrlock_at` does, ordered among locks
/// of its rank by `key` (see `rtc_mutex_lock_keyed_at`).
///
/// Returns as `rtc_rwlock_rdlock_at`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_rwlock_wrlock_keyed_at(
    rwlock: *mut rtc_rwlock,
    key: u64,
    file: *const c_char,
    line: u32,
) -> rtc_status {
    lock_at(rwlock, false, Some(key), file, line, 5)
}

/// Try to read-lock `rwlock` without blocking. See `rtc_rwlock_tryrdlock_at`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_rwlock_tryrdlock(rwlock: *mut rtc_rwlock) -> rtc_status {
    rtc_rwlock_tryrdlock_at(rwlock, std::ptr::null(), 0)
}

/// Try to read-lock `rwlock` without blocking, recording the call site.
/// Recorded in the held set, never order-checked (it cannot block).
///
/// Returns `RTC_OK`; `RTC_ERR_BUSY` if a writer holds it or waits for it
/// (no last-error message is stored for this expected outcome);
/// `RTC_ERR_WOULD_DEADLOCK` if this thread holds it; otherwise as
/// `rtc_rwlock_rdlock_at`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_rwlock_tryrdlock_at(
    rwlock: *mut rtc_rwlock,
    file: *const c_char,
    line: u32,
) -> rtc_status {
    let func = name("rtc_rwlock_tryrdlock", "rtc_rwlock_tryrdlock_at", file);
    with_rwlock(rwlock, func, |l| {
        lifecycle::enter()?;
        l.try_lock(true, file, line)
    })
}

/// Try to write-lock `rwlock` without blocking. See
/// `rtc_rwlock_trywrlock_at`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_rwlock_trywrlock(rwlock: *mut rtc_rwlock) -> rtc_status {
    rtc_rwlock_trywrlock_at(rwlock, std::ptr::null(), 0)
}

/// Try to write-lock `rwlock` without blocking, recording the call site.
///
/// Returns `RTC_OK`; `RTC_ERR_BUSY` if any thread holds it (no last-error
/// message); `RTC_ERR_WOULD_DEADLOCK` if this thread holds it; otherwise
/// as `rtc_rwlock_rdlock_at`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_rwlock_trywrlock_at(
    rwlock: *mut rtc_rwlock,
    file: *const c_char,
    line: u32,
) -> rtc_status {
    let func = name("rtc_rwlock_trywrlock", "rtc_rwlock_trywrlock_at", file);
    with_rwlock(rwlock, func, |l| {
        lifecycle::enter()?;
        l.try_lock(false, file, line)
    })
}

/// Release this thread's hold on `rwlock`, read or write. Locks may be
/// released in any order.
///
/// Keeps working after `rtc_shutdown`. Returns `RTC_OK`; `RTC_ERR_NULL`;
/// `RTC_ERR_NOT_OWNER` if this thread holds it in neither mode;
/// `RTC_ERR_DESTROYED`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_rwlock_unlock(rwlock: *mut rtc_rwlock) -> rtc_status {
    let fast = if lifecycle::running_mode().is_some()
        && !rwlock.is_null()
        && (rwlock as usize) % align_of::<rtc_rwlock>() == 0
    {
        // SAFETY: as in `lock_at`; `unlock_fast` cannot panic.
        unsafe { RwLockRef::new(rwlock) }.unlock_fast()
    } else {
        UnlockFast::No
    };
    // Every other way out a tail call (the fast path then saves no
    // register: a store before the next locked instruction).
    match fast {
        UnlockFast::Done => rtc_status::RTC_OK,
        UnlockFast::DoneWakeWriter => wake_writer(rwlock),
        UnlockFast::Forget(wake) => unlock_forget(rwlock, wake),
        UnlockFast::No => unlock_slow(rwlock),
    }
}

#[cold]
#[inline(never)]
extern "C" fn wake_writer(rwlock: *mut rtc_rwlock) -> rtc_status {
    // SAFETY: checked by the fast path.
    unsafe { RwLockRef::new(rwlock) }.wake_writer();
    // Opaque, so that the caller jumps here rather than calls (see the
    // mutex's `unlock_forget`).
    std::hint::black_box(rtc_status::RTC_OK)
}

/// Released out of order: drop the entry, then wake the parked writer if
/// the fast path said so.
#[cold]
#[inline(never)]
extern "C" fn unlock_forget(rwlock: *mut rtc_rwlock, wake: bool) -> rtc_status {
    // SAFETY: checked by the fast path.
    let r = unsafe { RwLockRef::new(rwlock) };
    r.forget();
    if wake {
        r.wake_writer();
    }
    std::hint::black_box(rtc_status::RTC_OK)
}

#[cold]
#[inline(never)]
extern "C" fn unlock_slow(rwlock: *mut rtc_rwlock) -> rtc_status {
    // No lifecycle check: releasing keeps working after rtc_shutdown.
    with_rwlock(rwlock, "rtc_rwlock_unlock", |l| l.unlock())
}

/// Destroy `rwlock`. Later use returns `RTC_ERR_DESTROYED` until it is
/// initialised again. Destroying an all-zero lock is allowed.
///
/// Keeps working after `rtc_shutdown`. Returns `RTC_OK`; `RTC_ERR_NULL`;
/// `RTC_ERR_LOCKED` if any thread holds it or waits for it (nothing
/// changes); `RTC_ERR_MOVED`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_rwlock_destroy(rwlock: *mut rtc_rwlock) -> rtc_status {
    with_rwlock(rwlock, "rtc_rwlock_destroy", |l| l.destroy())
}
