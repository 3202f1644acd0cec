//! The one clock: CLOCK_MONOTONIC in nanoseconds (`monotonic_ns`), and
//! the same clock counted from rtcore's first look at it (`now_ns`, what
//! sysmon and the hook thread compare deadlines with). The tracer's own
//! origin is taken from `monotonic_ns` at each trace start.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// CLOCK_MONOTONIC in nanoseconds.
#[inline]
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// `monotonic_ns` at the first call of `now_ns` (0: not yet read).
static EPOCH: AtomicU64 = AtomicU64::new(0);

/// Nanoseconds since the first call (sysmon's and the hooks' clock).
pub fn now_ns() -> u64 {
    let now = monotonic_ns();
    let e = EPOCH.load(Relaxed);
    if e != 0 {
        return now.saturating_sub(e);
    }
    // First caller wins; the others read its epoch.
    match EPOCH.compare_exchange(0, now, Relaxed, Relaxed) {
        Ok(_) => 0,
        Err(e) => now.saturating_sub(e),
    }
}
