//! Statuses, the last-error API, versions and the lifecycle.

use std::os::raw::c_char;

use super::{boundary, boundary_value, clear_last_error, copy_out, last_error};
use crate::lifecycle;
use crate::lock::order::Mode;
use crate::status::{Error, RTC_ERR_INVALID_ARGUMENT, rtc_status};

/// Options for `rtc_init`. Initialise with `RTC_CONFIG_INIT` so `size` is
/// right and every other field takes its default; fields may be added at the
/// end in later versions (rtcore reads only the first `size` bytes).
#[repr(C)]
pub struct rtc_config {
    /// `sizeof(rtc_config)` as compiled by the caller.
    pub size: u32,
    /// An `rtc_lockrank_mode`; `RTC_LOCKRANK_DEFAULT` (0) means report.
    /// `RTCORE_DEBUG=lockrank=...` overrides it.
    pub lockrank_mode: i32,
    /// Path of a rank file to load at init (read up to 16 MiB), or NULL.
    pub ranks_file: *const c_char,
    /// How many attached threads may run at once (0: unlimited, the
    /// default); `rtc_set_maxprocs` changes it later.
    pub maxprocs: u32,
    /// Reserved: zero.
    pub reserved: u32,
}

/// What the lock-order checker does on a violation.
#[repr(i32)]
#[allow(non_camel_case_types)]
pub enum rtc_lockrank_mode {
    /// The default (report).
    RTC_LOCKRANK_DEFAULT = 0,
    /// No order checks. Misuse (unlocking a lock not held, ...) is still checked.
    RTC_LOCKRANK_OFF = 1,
    /// Print a report on stderr once per (held rank, wanted rank) pair, count
    /// every occurrence, and let the acquisition proceed.
    RTC_LOCKRANK_REPORT = 2,
    /// Print the report and abort the process.
    RTC_LOCKRANK_ABORT = 3,
    /// Pass every violation to the callback set with
    /// `rtc_lockrank_set_callback` (which selects this mode), on the
    /// violating thread, before it blocks; nothing is printed. Selecting it
    /// with no callback set is refused.
    RTC_LOCKRANK_CALLBACK = 4,
    /// Queue every violation (at most 256 pending; later ones are dropped
    /// and counted) for `rtc_lockrank_next_report`; nothing is printed.
    RTC_LOCKRANK_QUEUE = 5,
}

/// `rtc_lockrank_lock.kind`: what kind of lock it is.
#[repr(u32)]
#[allow(non_camel_case_types, clippy::enum_variant_names)]
pub enum rtc_lock_kind {
    /// An `rtc_mutex`.
    RTC_LOCK_KIND_MUTEX = 1,
    /// An `rtc_rwlock`.
    RTC_LOCK_KIND_RWLOCK = 2,
    /// One of rtcore's own locks (`hooklock`).
    RTC_LOCK_KIND_RTCORE = 3,
}

/// `rtc_lockrank_lock.mode`: how it is held (or wanted).
#[repr(u32)]
#[allow(non_camel_case_types)]
pub enum rtc_lock_mode {
    /// A mutex, or an rwlock held for writing.
    RTC_LOCK_EXCLUSIVE = 1,
    /// An rwlock held for reading.
    RTC_LOCK_SHARED = 2,
}

/// `rtc_lockrank_lock.flags` bits.
#[repr(u32)]
#[allow(non_camel_case_types)]
pub enum rtc_lockrank_held_flag {
    /// Taken by a try-lock.
    RTC_LOCKRANK_HELD_TRIED = 1,
    /// A held lock the wanted one may not follow.
    RTC_LOCKRANK_HELD_CONFLICTS = 2,
}

/// `rtc_lockrank_report.reason`.
#[repr(u32)]
#[allow(non_camel_case_types)]
pub enum rtc_lockrank_reason {
    /// A held rank may not be held when the wanted one is acquired.
    RTC_LOCKRANK_REASON_ORDER = 1,
    /// Locks of a nestable rank taken out of increasing key order.
    RTC_LOCKRANK_REASON_KEY_ORDER = 2,
    /// A lock interposed by `rtcore run` taken again by the thread that
    /// holds it: the call would never return (`held` lists the holder's
    /// locks, the wanted one among them).
    RTC_LOCKRANK_REASON_RECURSION = 3,
    /// A lock interposed by `rtcore run` unlocked by a thread that does
    /// not hold it (`wanted` is the lock unlocked; `held` is empty).
    RTC_LOCKRANK_REASON_UNLOCK_NOT_HELD = 4,
    /// A thread created under `rtcore run` ended (returned, called
    /// `pthread_exit`, or was cancelled) holding interposed locks: nobody
    /// can unlock them (`held` lists them; `wanted` is the last taken).
    RTC_LOCKRANK_REASON_EXIT_HOLDING = 5,
}

pub(crate) fn mode_from_i32(v: i32, func: &str) -> crate::status::Result<Option<Mode>> {
    match v {
        // The default: the caller decides (the environment, then report).
        0 => Ok(None),
        _ => match Mode::from_c(v) {
            Some(Mode::Callback) if !crate::lock::report::has_callback() => Err(Error::new(
                RTC_ERR_INVALID_ARGUMENT,
                format!(
                    "{func}: lock-rank mode callback needs a callback: set one with rtc_lockrank_set_callback (which also selects the mode)"
                ),
            )),
            Some(m) => Ok(Some(m)),
            None => Err(Error::new(
                RTC_ERR_INVALID_ARGUMENT,
                format!("{func}: lock-rank mode {v} is not an rtc_lockrank_mode (0..=5)"),
            )),
        },
    }
}

/// A static, NUL-terminated description of a status. Unknown values give
/// "unknown status". Never fails; safe from any thread.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_status_str(status: i32) -> *const c_char {
    boundary_value(
        "rtc_status_str",
        c"unknown status".as_ptr(),
        || match rtc_status::from_i32(status) {
            Some(s) => s.describe().as_ptr() as *const c_char,
            None => c"unknown status".as_ptr(),
        },
    )
}

/// Copy the calling thread's last error message into `buf` (at most `len`
/// bytes, always NUL-terminated when `len > 0`, truncated if needed) and
/// return the size needed including the NUL. `buf` may be NULL when `len`
/// is 0, to ask for the size. The message describes the most recent failed
/// call on this thread; successful calls do not clear it. Never fails.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_last_error_message(buf: *mut c_char, len: usize) -> usize {
    boundary_value("rtc_last_error_message", 0, || {
        copy_out(&last_error().1, buf, len)
    })
}

/// The status of the calling thread's most recent failed call (`RTC_OK` if
/// none, or after `rtc_last_error_clear`).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_last_error_status() -> rtc_status {
    boundary_value("rtc_last_error_status", rtc_status::RTC_ERR_PANIC, || {
        last_error().0
    })
}

/// Forget the calling thread's last error.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_last_error_clear() {
    boundary_value("rtc_last_error_clear", (), clear_last_error)
}

/// The library's version string ("MAJOR.MINOR.PATCH"), static. Compare with
/// `RTC_VERSION_STRING` to detect a header/library mismatch.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}

/// The library's version as `MAJOR << 16 | MINOR << 8 | PATCH` (the same
/// packing as `RTC_VERSION_NUMBER`).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_version_number() -> u32 {
    crate::VERSION_NUMBER
}

/// Initialise rtcore with options. Optional: without it, defaults apply on
/// first use. Call at most once, before any other rtcore call except the
/// status, last-error and version functions. `config` may be NULL (defaults).
///
/// Returns `RTC_OK`; `RTC_ERR_ALREADY_INITIALIZED` on a second call;
/// `RTC_ERR_TOO_LATE` after first use; `RTC_ERR_SHUT_DOWN` after
/// `rtc_shutdown`; `RTC_ERR_INVALID_ARGUMENT` for a bad `size` or mode;
/// the rank loader's statuses for a bad `ranks_file` (nothing is
/// initialised then, and `rtc_init` may be called again).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_init(config: *const rtc_config) -> rtc_status {
    super::install_panic_hook();
    boundary("rtc_init", || {
        let mut opts = lifecycle::Options::default();
        if !config.is_null() {
            // SAFETY: non-NULL; `size` is the first field, read alone first.
            let size = unsafe { (*config).size } as usize;
            let min = std::mem::offset_of!(rtc_config, ranks_file);
            if size < min {
                return Err(Error::new(
                    RTC_ERR_INVALID_ARGUMENT,
                    format!(
                        "rtc_init: config->size is {size}, less than the smallest rtc_config ({min}); initialise it with RTC_CONFIG_INIT"
                    ),
                ));
            }
            // SAFETY: the caller's struct is at least `min` bytes.
            let mode = unsafe { (*config).lockrank_mode };
            opts.lockrank = mode_from_i32(mode, "rtc_init")?;
            if size >= std::mem::offset_of!(rtc_config, maxprocs) + size_of::<u32>() {
                // SAFETY: within the caller's `size`.
                let n = unsafe { (*config).maxprocs };
                if n as usize > crate::world::MAX_PROCS {
                    return Err(Error::new(
                        RTC_ERR_INVALID_ARGUMENT,
                        format!(
                            "rtc_init: config->maxprocs is {n}, above the limit of {}",
                            crate::world::MAX_PROCS
                        ),
                    ));
                }
                opts.maxprocs = Some(n as usize);
            }
            if size >= std::mem::offset_of!(rtc_config, ranks_file) + size_of::<*const c_char>() {
                // SAFETY: within the caller's `size`.
                let p = unsafe { (*config).ranks_file };
                if !p.is_null() {
                    opts.ranks_file =
                        Some(super::required_str(p, "config->ranks_file", "rtc_init")?.to_string());
                }
            }
        }
        lifecycle::init(&opts)
    })
}

/// Shut rtcore down: stop a trace in progress (its end marker written),
/// remove every hook, join rtcore's threads. The calling thread is
/// detached if attached (and restarts a world it holds stopped). Later
/// calls (other than status, last-error and version functions) return
/// `RTC_ERR_SHUT_DOWN`.
///
/// Returns `RTC_OK`; `RTC_ERR_SHUT_DOWN` if already shut down;
/// `RTC_ERR_WRONG_STATE` while other threads are attached or another
/// shutdown is in progress; `RTC_ERR_WOULD_DEADLOCK` from a hook, the trace
/// writer or a trace sink callback; `RTC_ERR_TIMED_OUT`, with a last-error
/// message naming the hook, when a hook run in progress does not return
/// within 2 seconds. On every error nothing was shut down: rtcore runs on
/// and `rtc_shutdown` may be called again (a world the caller held stopped
/// has been restarted, which shutdown does first).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_shutdown() -> rtc_status {
    boundary("rtc_shutdown", || {
        // Unlike a timed wait's expected timeout, this one says why.
        lifecycle::shutdown().inspect_err(|e| {
            if e.status == crate::status::RTC_ERR_TIMED_OUT {
                super::set_last_error(e);
            }
        })
    })
}

/// Diagnostic: panics inside rtcore's C boundary, to prove the boundary
/// holds. Always returns `RTC_ERR_PANIC`, with the panic's message as the last
/// error. Safe to call at any time.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_debug_panic() -> rtc_status {
    super::install_panic_hook();
    boundary("rtc_debug_panic", || {
        panic!("rtc_debug_panic was called: this panic is deliberate")
    })
}

#[cfg(test)]
mod tests {
    use super::rtc_lockrank_mode::*;
    use crate::format::LockRankMode;

    /// The C enum and the one encoding of the modes agree.
    #[test]
    fn c_modes_are_the_format_codes() {
        assert_eq!(RTC_LOCKRANK_OFF as i32, LockRankMode::Off as i32);
        assert_eq!(RTC_LOCKRANK_REPORT as i32, LockRankMode::Report as i32);
        assert_eq!(RTC_LOCKRANK_ABORT as i32, LockRankMode::Abort as i32);
        assert_eq!(RTC_LOCKRANK_CALLBACK as i32, LockRankMode::Callback as i32);
        assert_eq!(RTC_LOCKRANK_QUEUE as i32, LockRankMode::Queue as i32);
        use super::{rtc_lock_kind, rtc_lockrank_reason};
        use crate::lock::order::LockKind;
        use crate::lock::report::Reason;
        assert_eq!(
            rtc_lock_kind::RTC_LOCK_KIND_MUTEX as u32,
            LockKind::Mutex as u32
        );
        assert_eq!(
            rtc_lock_kind::RTC_LOCK_KIND_RWLOCK as u32,
            LockKind::RwLock as u32
        );
        assert_eq!(
            rtc_lock_kind::RTC_LOCK_KIND_RTCORE as u32,
            LockKind::Rtcore as u32
        );
        assert_eq!(
            rtc_lockrank_reason::RTC_LOCKRANK_REASON_ORDER as u32,
            Reason::Order as u32
        );
        assert_eq!(
            rtc_lockrank_reason::RTC_LOCKRANK_REASON_KEY_ORDER as u32,
            Reason::KeyOrder as u32
        );
        assert_eq!(
            rtc_lockrank_reason::RTC_LOCKRANK_REASON_RECURSION as u32,
            Reason::Recursion as u32
        );
        assert_eq!(
            rtc_lockrank_reason::RTC_LOCKRANK_REASON_UNLOCK_NOT_HELD as u32,
            Reason::UnlockNotHeld as u32
        );
        assert_eq!(
            rtc_lockrank_reason::RTC_LOCKRANK_REASON_EXIT_HOLDING as u32,
            Reason::ExitHolding as u32
        );
        assert_eq!(
            LockRankMode::from_c(RTC_LOCKRANK_DEFAULT as i32),
            Some(LockRankMode::Report)
        );
    }
}
