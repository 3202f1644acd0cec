//! The process-wide state the lock fast path reads in one relaxed load:
//! rtcore's lifecycle state in the low byte, the lock-rank mode's bits
//! above it. `lifecycle` makes every transition (under its own lock);
//! lower modules only read, through `running_mode_bits`.
//!
//! Invariant: the state only moves forward, UNINIT -> RUNNING -> SHUT_DOWN.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

pub const UNINIT: u32 = 0;
pub const RUNNING: u32 = 1;
pub const SHUT_DOWN: u32 = 2;
pub const STATE_MASK: u32 = 0xff;
pub const MODE_SHIFT: u32 = 8;

/// State and mode (written by `lifecycle` only).
pub static GATE: AtomicU32 = AtomicU32::new(UNINIT);

/// Set while an `rtc_shutdown` is between its checks and its end.
pub static CLOSING: AtomicBool = AtomicBool::new(false);

/// The lock-rank mode's bits when running, else None (the caller then takes
/// its full path, which reports the state). One relaxed load.
#[inline(always)]
pub fn running_mode_bits() -> Option<u32> {
    let g = GATE.load(Ordering::Relaxed);
    if g & STATE_MASK == RUNNING {
        Some(g >> MODE_SHIFT)
    } else {
        None
    }
}

/// Is an `rtc_shutdown` in progress?
pub fn closing() -> bool {
    CLOSING.load(Ordering::Acquire)
}

/// The error every call returns once rtcore is shut down.
pub fn shut_down_error() -> crate::status::Error {
    crate::status::Error::new(
        crate::status::RTC_ERR_SHUT_DOWN,
        "rtcore has been shut down (rtc_shutdown); no further calls are accepted",
    )
}

thread_local! {
    /// True on the hook thread while a hook runs (`sysmon::hooks` sets it):
    /// the hook thread is outside the world, so the world refuses to let it
    /// attach or stop the world, and the tracer to start or stop.
    static IN_HOOK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Is the calling thread running a hook?
pub fn in_hook() -> bool {
    IN_HOOK.try_with(|c| c.get()).unwrap_or(false)
}

/// Mark the calling thread as running a hook, or no longer.
pub fn set_in_hook(v: bool) {
    let _ = IN_HOOK.try_with(|c| c.set(v));
}
