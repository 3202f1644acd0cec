//! sysmon's exports.

use std::ffi::c_void;
use std::os::raw::c_char;

use super::{boundary, boundary_value, copy_out, required_str};
use crate::lifecycle;
use crate::status::{Error, RTC_ERR_INVALID_ARGUMENT, rtc_status};
use crate::sysmon::hooks;
use crate::sysmon::settings::{self, Setting};

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
    /// Stall reports made (first reports and reminders).
    pub stall_reports: u64,
    /// Stalls that ended ("resolved after N ms" reports).
    pub stalls_resolved: u64,
    /// Hook runs completed.
    pub hook_runs: u64,
    /// Hook runs reported for overrunning the hook budget.
    pub hook_overruns: u64,
    /// Hooks registered now.
    pub hooks: u64,
    /// Deadlocks reported (cycles of threads parked on rtcore locks; each
    /// reported once). Added in 0.3: a caller built against an older
    /// header passes the older, smaller `size` and gets the fields before
    /// this one.
    pub deadlocks: u64,
}

/// `sizeof(rtc_sysmon_stats)` before `deadlocks` was added.
const SYSMON_STATS_V1: usize = std::mem::offset_of!(rtc_sysmon_stats, deadlocks);

/// Fill `*out` (whose `size` the caller sets to `sizeof(rtc_sysmon_stats)`)
/// with sysmon's counters. sysmon starts with the first attached thread.
///
/// Returns `RTC_OK`; `RTC_ERR_NULL`; `RTC_ERR_INVALID_ARGUMENT` for a wrong
/// `size`; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_sysmon_get_stats(out: *mut rtc_sysmon_stats) -> rtc_status {
    boundary("rtc_sysmon_get_stats", || {
        lifecycle::enter()?;
        super::checked_ptr(out, "out", "rtc_sysmon_get_stats")?;
        // SAFETY: non-NULL; `size` is read alone first.
        let size = unsafe { (*out).size } as usize;
        if size != size_of::<rtc_sysmon_stats>() && size != SYSMON_STATS_V1 {
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
            stall_reports: s.stall_reports.load(SeqCst),
            stalls_resolved: s.stalls_resolved.load(SeqCst),
            hook_runs: crate::sysmon::hooks::hooks().stats.runs.load(SeqCst),
            hook_overruns: s.hook_overruns.load(SeqCst),
            hooks: crate::sysmon::hooks::hooks().count() as u64,
            deadlocks: s.deadlocks.load(SeqCst),
        };
        // SAFETY: non-NULL, the caller's struct of `size` bytes (one of
        // the two sizes it has had; the older is a prefix of the newer).
        unsafe {
            std::ptr::copy_nonoverlapping(
                (&r as *const rtc_sysmon_stats).cast::<u8>(),
                out.cast::<u8>(),
                size,
            )
        };
        Ok(())
    })
}

/// sysmon's settings, for `rtc_sysmon_set_threshold`. All are durations in
/// nanoseconds; 0 switches the report off. `RTCORE_DEBUG` sets the same
/// (in milliseconds) at start: see docs/debug.md.
#[repr(u32)]
pub enum rtc_sysmon_setting {
    /// Report a thread BLOCKING or WAITING this long (default 0: off, since
    /// threads waiting for I/O or work are normal).
    RTC_SYSMON_THREAD_STALL_NS = 1,
    /// Report a mutex held this long by the same holder, with no new
    /// acquisition, while an attached thread waits for it (default 1 s).
    RTC_SYSMON_LOCK_STALL_NS = 2,
    /// Report a hook run longer than this (default 100 ms).
    RTC_SYSMON_HOOK_BUDGET_NS = 3,
    /// Print a schedtrace line on stderr this often (default 0: off).
    RTC_SYSMON_SCHEDTRACE_NS = 4,
}

fn setting(which: u32, func: &str) -> crate::status::Result<Setting> {
    Setting::from_u32(which).ok_or_else(|| {
        Error::new(
            RTC_ERR_INVALID_ARGUMENT,
            format!("{func}: {which} is not an rtc_sysmon_setting (1 to 4)"),
        )
    })
}

/// Set one of sysmon's thresholds (`which`: an `rtc_sysmon_setting`), in
/// nanoseconds; 0 switches that report off. The previous value is written
/// to `*old_ns` if `old_ns` is not NULL. Takes effect from sysmon's next
/// tick.
///
/// Returns `RTC_OK`; `RTC_ERR_INVALID_ARGUMENT` for an unknown `which` or
/// a value above 10^18 ns; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_sysmon_set_threshold(which: u32, ns: u64, old_ns: *mut u64) -> rtc_status {
    boundary("rtc_sysmon_set_threshold", || {
        let old_ns = super::opt_out(old_ns, "old_ns", "rtc_sysmon_set_threshold")?;
        lifecycle::enter()?;
        let s = setting(which, "rtc_sysmon_set_threshold")?;
        if ns > settings::MAX_NS {
            return Err(Error::new(
                RTC_ERR_INVALID_ARGUMENT,
                format!(
                    "rtc_sysmon_set_threshold: {ns} ns is above the limit of {} ns (about 31 years)",
                    settings::MAX_NS
                ),
            ));
        }
        let old = settings::set(s, ns);
        if let Some(old_ns) = old_ns {
            old_ns.set(old);
        }
        Ok(())
    })
}

/// Read one of sysmon's thresholds into `*out_ns`.
///
/// Returns `RTC_OK`; `RTC_ERR_NULL`; `RTC_ERR_INVALID_ARGUMENT` for an
/// unknown `which`; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_sysmon_get_threshold(which: u32, out_ns: *mut u64) -> rtc_status {
    boundary("rtc_sysmon_get_threshold", || {
        lifecycle::enter()?;
        let out_ns = super::out(out_ns, "out_ns", "rtc_sysmon_get_threshold")?;
        let s = setting(which, "rtc_sysmon_get_threshold")?;
        out_ns.set(settings::get(s));
        Ok(())
    })
}

/// Copy sysmon's most recent report (a stall, its resolution, a hook
/// overrun, or a deadlock; every report also goes to stderr) into `buf` (`len` bytes,
/// NUL-terminated, truncated to fit). Returns the size needed including the
/// NUL (1 if nothing was reported yet); `buf` may be NULL to ask the size.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_sysmon_last_report(buf: *mut c_char, len: usize) -> usize {
    boundary_value("rtc_sysmon_last_report", 0, || {
        copy_out(&crate::sysmon::monitor().last_report(), buf, len)
    })
}

/// A hook: called on rtcore's hook thread with the `user_data` given to
/// `rtc_sysmon_hook_add`.
pub type rtc_hook_fn = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// Run `fn(user_data)` every `period_ns` (at least 100 µs) on rtcore's hook
/// thread, and write the hook's id (never reused) to `*out_id`. `name`
/// (copied) names the hook in reports.
///
/// Hooks run one at a time, each run under `hooklock` (the first rank:
/// hooks may take any user lock). The hook thread is outside the world: a
/// hook may not attach or stop the world (nor, later, start or stop a
/// trace); those calls return an error status from a hook. Each run is
/// timed; sysmon reports a run longer than the hook budget
/// (`RTC_SYSMON_HOOK_BUDGET_NS`). A run that overruns its period is
/// followed by a full period of rest. `fn` must not unwind (C++ exceptions)
/// out of the hook. sysmon starts (if it has not) to watch the hook.
///
/// `fn` is called until `rtc_sysmon_hook_remove` returns: code that may be
/// unloaded (a plugin) removes its hooks before its `dlclose`. rtcore
/// itself is never unloaded (docs/sysmon.md, "Unloading").
///
/// Returns `RTC_OK`; `RTC_ERR_NULL` for a NULL `fn`, `name` or `out_id`;
/// `RTC_ERR_INVALID_ARGUMENT` for a period under 100 µs or over 10^18 ns,
/// or a non-UTF-8 name; `RTC_ERR_IO` if the hook thread cannot be started;
/// `RTC_ERR_WRONG_STATE` while the process exits; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_sysmon_hook_add(
    name: *const c_char,
    period_ns: u64,
    hook: rtc_hook_fn,
    user_data: *mut c_void,
    out_id: *mut u64,
) -> rtc_status {
    boundary("rtc_sysmon_hook_add", || {
        lifecycle::enter()?;
        let name = required_str(name, "name", "rtc_sysmon_hook_add")?;
        let out_id = super::out(out_id, "out_id", "rtc_sysmon_hook_add")?;
        let Some(f) = hook else {
            return Err(Error::new(
                crate::status::RTC_ERR_NULL,
                "rtc_sysmon_hook_add: argument 'hook' was NULL",
            ));
        };
        let id = hooks::add(name, period_ns, f, user_data)?;
        out_id.set(id);
        Ok(())
    })
}

/// Remove a hook. When this returns, the hook is not running and will not
/// run again (it waits for a run in progress, as a lock wait: an attached
/// caller gives up its P meanwhile). A hook may remove itself: that takes
/// effect when its run returns. Do not remove a running hook while holding
/// a lock that hook waits for: that wait would never end.
///
/// Returns `RTC_OK`; `RTC_ERR_INVALID_ARGUMENT` for an id that is not
/// registered (never added, or already removed); `RTC_ERR_WOULD_DEADLOCK`
/// if the hook is running and the caller holds the world stopped;
/// `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_sysmon_hook_remove(id: u64) -> rtc_status {
    boundary("rtc_sysmon_hook_remove", || {
        lifecycle::enter()?;
        hooks::remove(id)
    })
}
