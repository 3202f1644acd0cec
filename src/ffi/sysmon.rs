//! sysmon's exports.

use super::{boundary, nonnull};
use crate::lifecycle;
use crate::status::{Error, RTC_ERR_INVALID_ARGUMENT, rtc_status};

/// sysmon's counters, as `rtc_sysmon_get_stats` reports them.
#[repr(C)]
pub struct rtc_sysmon_stats {
    /// `sizeof(rtc_sysmon_stats)`; set it before the call.
    pub size: u32,
    /// 1 while the sysmon thread runs.
    pub running: u32,
    /// Ticks run (each under sysmonlock).
    pub ticks: u64,
    /// The current delay between ticks, in nanoseconds.
    pub delay_ns: u64,
    /// Deep sleeps entered (nothing to watch, or a stop in force).
    pub deep_sleeps: u64,
    /// Ps retaken from threads in blocking regions.
    pub retakes: u64,
    /// Preemption requests sent to threads running without a safepoint.
    pub preempt_requests: u64,
}

/// Fill `*out` (whose `size` the caller sets to `sizeof(rtc_sysmon_stats)`)
/// with sysmon's counters. sysmon starts with the first attached thread.
///
/// Returns `RTC_OK`; `RTC_ERR_NULL`; `RTC_ERR_INVALID_ARGUMENT` for a wrong
/// `size`; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_sysmon_get_stats(out: *mut rtc_sysmon_stats) -> rtc_status {
    boundary("rtc_sysmon_get_stats", || {
        lifecycle::enter()?;
        nonnull(out, "out", "rtc_sysmon_get_stats")?;
        // SAFETY: non-NULL; `size` is read alone first.
        let size = unsafe { (*out).size } as usize;
        if size != size_of::<rtc_sysmon_stats>() {
            return Err(Error::new(
                RTC_ERR_INVALID_ARGUMENT,
                format!(
                    "rtc_sysmon_get_stats: out->size is {size}, expected sizeof(rtc_sysmon_stats) = {}",
                    size_of::<rtc_sysmon_stats>()
                ),
            ));
        }
        let m = crate::sysmon::monitor();
        let s = &m.stats;
        use std::sync::atomic::Ordering::SeqCst;
        let r = rtc_sysmon_stats {
            size: size as u32,
            running: m.is_running() as u32,
            ticks: s.ticks.load(SeqCst),
            delay_ns: s.delay_ns.load(SeqCst),
            deep_sleeps: s.deep_sleeps.load(SeqCst),
            retakes: s.retakes.load(SeqCst),
            preempt_requests: s.preempt_requests.load(SeqCst),
        };
        // SAFETY: non-NULL, the caller's struct of the right size.
        unsafe { out.write(r) };
        Ok(())
    })
}
