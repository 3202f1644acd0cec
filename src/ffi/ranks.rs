//! Rank declarations and the lock-order checker's controls.

use std::os::raw::c_char;

use super::general::mode_from_i32;
use super::{boundary, copy_out, required_str};
use crate::lifecycle;
use crate::lock::order::{self, Mode};
use crate::status::{Error, RTC_ERR_INVALID_ARGUMENT, rtc_status};

/// Load rank declarations from `text` (the rank language of docs/ranks.md)
/// into the process-wide rank table. `source_name` names the text in error
/// messages and reports (for example a file name); NULL means "<string>".
///
/// Loading only adds ranks: existing ranks keep their ids and orders, and a
/// name already defined cannot be defined again. On any error nothing is
/// added. Thread-safe.
///
/// Returns `RTC_OK`; `RTC_ERR_NULL` if `text` is NULL; `RTC_ERR_RANK_SYNTAX`
/// with "name:line:column: what" as the last error; `RTC_ERR_RANK_TABLE_FULL`;
/// `RTC_ERR_INVALID_ARGUMENT` for non-UTF-8 text; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_ranks_load(text: *const c_char, source_name: *const c_char) -> rtc_status {
    boundary("rtc_ranks_load", || {
        lifecycle::enter()?;
        let text = required_str(text, "text", "rtc_ranks_load")?;
        let name = if source_name.is_null() {
            "<string>"
        } else {
            required_str(source_name, "source_name", "rtc_ranks_load")?
        };
        crate::ranks::global().load(text, name).map(|_| ())
    })
}

/// Load rank declarations from the file at `path` (see `rtc_ranks_load`);
/// the path names the declarations in messages and reports.
///
/// At most 16 MiB are read, whatever the file is (a FIFO or a device has no
/// size to check first): a larger file is refused.
///
/// Returns as `rtc_ranks_load`; `RTC_ERR_IO` when the file cannot be read;
/// `RTC_ERR_INVALID_ARGUMENT` when it is larger than 16 MiB.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_ranks_load_file(path: *const c_char) -> rtc_status {
    boundary("rtc_ranks_load_file", || {
        lifecycle::enter()?;
        let path = required_str(path, "path", "rtc_ranks_load_file")?;
        crate::ranks::load_file(crate::ranks::global(), path).map(|_| ())
    })
}

/// Look a rank up by name and write its id (stable for the life of the
/// process) to `*out_id`.
///
/// Returns `RTC_OK`; `RTC_ERR_NULL`; `RTC_ERR_UNKNOWN_RANK` for an undeclared
/// name or a pseudo-rank (all capitals).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_rank_lookup(name: *const c_char, out_id: *mut u32) -> rtc_status {
    boundary("rtc_rank_lookup", || {
        lifecycle::enter()?;
        let name = required_str(name, "name", "rtc_rank_lookup")?;
        let out_id = super::out(out_id, "out_id", "rtc_rank_lookup")?;
        let id = crate::ranks::global().lookup(name)?;
        out_id.set(id);
        Ok(())
    })
}

/// Set what the checker does on an order violation (an `rtc_lockrank_mode`;
/// `RTC_LOCKRANK_DEFAULT` selects report). Takes effect for acquisitions that
/// start after the call. Thread-safe.
///
/// Returns `RTC_OK`; `RTC_ERR_INVALID_ARGUMENT` for an unknown mode;
/// `RTC_ERR_SHUT_DOWN`. Like every call other than the status, last-error
/// and version functions, this counts as first use (a later `rtc_init`
/// returns `RTC_ERR_TOO_LATE`).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_lockrank_set_mode(mode: i32) -> rtc_status {
    boundary("rtc_lockrank_set_mode", || {
        let m = mode_from_i32(mode, "rtc_lockrank_set_mode")?.unwrap_or(Mode::Report);
        // Callback mode needs a callback, checked in the same transition
        // as the change (a concurrent clear cannot slip between).
        lifecycle::set_mode_with(m, || {
            if m == Mode::Callback && !crate::lock::report::has_callback() {
                return Err(crate::status::Error::new(
                    RTC_ERR_INVALID_ARGUMENT,
                    "rtc_lockrank_set_mode: lock-rank mode callback needs a callback: set one with rtc_lockrank_set_callback (which also selects the mode)",
                ));
            }
            Ok(())
        })
    })
}

/// Write the current `rtc_lockrank_mode` to `*out_mode`.
///
/// Returns `RTC_OK`; `RTC_ERR_NULL`; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_lockrank_get_mode(out_mode: *mut i32) -> rtc_status {
    boundary("rtc_lockrank_get_mode", || {
        let m = lifecycle::enter()?;
        let out_mode = super::out(out_mode, "out_mode", "rtc_lockrank_get_mode")?;
        out_mode.set(m.bits() as i32);
        Ok(())
    })
}

/// Write the number of order violations seen so far (every occurrence,
/// including those whose report was not printed again) to `*out_count`.
///
/// Returns `RTC_OK`; `RTC_ERR_NULL`; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_lockrank_violations(out_count: *mut u64) -> rtc_status {
    boundary("rtc_lockrank_violations", || {
        lifecycle::enter()?;
        let out_count = super::out(out_count, "out_count", "rtc_lockrank_violations")?;
        out_count.set(order::violation_count());
        Ok(())
    })
}

/// Copy the most recent violation report (printed, passed to the callback
/// or queued; in report mode only the first of each pair is made) into `buf` (at most `len`
/// bytes, NUL-terminated, truncated if needed) and write the size needed,
/// including the NUL, to `*out_needed` (which may be NULL). With no report
/// yet, copies the empty string. `buf` may be NULL when `len` is 0.
///
/// Returns `RTC_OK`; `RTC_ERR_NULL` if `buf` is NULL with `len > 0`;
/// `RTC_ERR_INVALID_ARGUMENT` if `len` exceeds `PTRDIFF_MAX`;
/// `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_lockrank_last_report(
    buf: *mut c_char,
    len: usize,
    out_needed: *mut usize,
) -> rtc_status {
    boundary("rtc_lockrank_last_report", || {
        let out_needed = super::opt_out(out_needed, "out_needed", "rtc_lockrank_last_report")?;
        lifecycle::enter()?;
        if buf.is_null() && len > 0 {
            return Err(Error::new(
                crate::status::RTC_ERR_NULL,
                "rtc_lockrank_last_report: argument 'buf' is NULL but 'len' is not 0",
            ));
        }
        if len > isize::MAX as usize {
            return Err(Error::new(
                RTC_ERR_INVALID_ARGUMENT,
                "rtc_lockrank_last_report: 'len' is larger than any buffer",
            ));
        }
        let text = order::last_report().unwrap_or_default();
        let needed = copy_out(&text, buf, len);
        if let Some(out_needed) = out_needed {
            out_needed.set(needed);
        }
        Ok(())
    })
}

/// Pass every order violation to `callback` from now on (this selects
/// `RTC_LOCKRANK_CALLBACK`); `callback` NULL clears it and selects
/// `RTC_LOCKRANK_REPORT`.
///
/// The callback runs on the violating thread, before the acquisition that
/// violated blocks (the lock is then still taken, as in report mode), with
/// every lock the thread holds still held and none of rtcore's inner locks.
/// It may take locks itself; a violation it makes is printed (report
/// mode), not passed to it again. When this function returns `RTC_OK`, no
/// call of a callback set before it is still running or about to start,
/// so `user` may then be freed (it waits for such calls, giving its P
/// back; calls of the new callback do not hold it up). Do not call it
/// while holding a lock a running callback may wait for. Called from
/// inside a callback it changes the callback without waiting. Called by
/// a thread holding the world stopped while a call is still running, it
/// changes the callback and returns `RTC_ERR_WOULD_DEADLOCK` instead of
/// waiting (the running call may be stopped). `report` and everything it points to are
/// valid only during the call: copy what you keep, and never pass it to
/// `rtc_lockrank_report_free`. `user` is passed through. The callback must
/// not unwind (no C++ exception or `longjmp` out of it).
///
/// Returns `RTC_OK`; `RTC_ERR_WOULD_DEADLOCK` (see above);
/// `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_lockrank_set_callback(
    callback: crate::lock::report::rtc_lockrank_callback,
    user: *mut std::ffi::c_void,
) -> rtc_status {
    boundary("rtc_lockrank_set_callback", || {
        lifecycle::enter()?;
        use crate::lock::report::{swap_callback, wait_for_earlier_calls};
        // The callback and the mode change together (one transition), so
        // concurrent setters never leave the callback mode with no callback.
        let cb = callback.map(|f| (f, user as usize));
        let mode = if cb.is_some() {
            Mode::Callback
        } else {
            Mode::Report
        };
        let mut generation = 0;
        lifecycle::set_mode_with(mode, || {
            generation = swap_callback(cb);
            Ok(())
        })?;
        wait_for_earlier_calls(generation)
    })
}

/// Take the oldest report queued in `RTC_LOCKRANK_QUEUE` mode: `*out` is
/// set to it (free it with `rtc_lockrank_report_free`), or to NULL when
/// none is pending. Reports stay queued after the mode changes. Any
/// thread may poll.
///
/// Returns `RTC_OK`; `RTC_ERR_NULL`; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_lockrank_next_report(
    out: *mut *mut crate::lock::report::rtc_lockrank_report,
) -> rtc_status {
    boundary("rtc_lockrank_next_report", || {
        lifecycle::enter()?;
        let out = super::out(out, "out", "rtc_lockrank_next_report")?;
        out.set(crate::lock::report::next().unwrap_or(std::ptr::null_mut()));
        Ok(())
    })
}

/// Free a report returned by `rtc_lockrank_next_report`. NULL is a no-op.
/// Never pass the report a callback received. Works after `rtc_shutdown`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_lockrank_report_free(report: *mut crate::lock::report::rtc_lockrank_report) {
    if report.is_null() {
        return;
    }
    let _ = boundary("rtc_lockrank_report_free", || {
        // SAFETY: by contract, returned by rtc_lockrank_next_report and not
        // freed before.
        unsafe { crate::lock::report::free(report) };
        Ok(())
    });
}

/// Write the number of reports dropped because the queue already held 256
/// to `*out_count`.
///
/// Returns `RTC_OK`; `RTC_ERR_NULL`; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_lockrank_reports_dropped(out_count: *mut u64) -> rtc_status {
    boundary("rtc_lockrank_reports_dropped", || {
        lifecycle::enter()?;
        let out_count = super::out(out_count, "out_count", "rtc_lockrank_reports_dropped")?;
        out_count.set(crate::lock::report::dropped());
        Ok(())
    })
}
