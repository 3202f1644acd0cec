//! The flight recorder's exports (docs/tracing.md, "The flight recorder").

use std::os::raw::c_char;

use super::{boundary, required_str};
use crate::flight::{self, Config};
use crate::lifecycle;
use crate::status::{Error, RTC_ERR_INVALID_ARGUMENT, rtc_status};

use super::trace::rtc_trace_config;

/// Which incidents make the flight recorder dump itself into its
/// directory (`rtc_flight_recorder_config.triggers`; 0 means all).
#[repr(u32)]
pub enum rtc_flight_trigger {
    /// sysmon opens a stall episode (a thread blocking or waiting too
    /// long, a lock held too long while others wait, a hook over budget).
    RTC_FLIGHT_ON_STALL = 1,
    /// sysmon finds threads deadlocked on rtcore locks.
    RTC_FLIGHT_ON_DEADLOCK = 2,
    /// A lock-order violation is reported.
    RTC_FLIGHT_ON_LOCK_ORDER = 4,
    /// SIGSEGV, SIGBUS, SIGILL, SIGFPE or SIGABRT (best effort; the
    /// previous handler runs after).
    RTC_FLIGHT_ON_FATAL_SIGNAL = 8,
}

/// How the flight recorder runs. Initialise with
/// `RTC_FLIGHT_RECORDER_CONFIG_INIT` (every field at its default), then set
/// what differs.
#[repr(C)]
pub struct rtc_flight_recorder_config {
    /// `sizeof(rtc_flight_recorder_config)`.
    pub size: u32,
    /// Memory for the recent past, in MiB (0: 16). Whole generations are
    /// kept, the oldest dropped past it (the newest complete one is always
    /// kept).
    pub max_mb: u32,
    /// The history a snapshot should reach back, in ms, when memory
    /// allows (0: no preference). Generations roll every quarter of it
    /// (from 10 ms to 1 s; 1 s when 0).
    pub min_age_ms: u32,
    /// `rtc_flight_trigger` bits (0: all of them). Used only with a
    /// `dump_dir`.
    pub triggers: u32,
    /// Where automatic dumps go (NULL: no automatic dumps). Made if
    /// missing. Dumps are named `rtcore-PID-YYYYMMDDTHHMMSS-CAUSE.rtctrace`
    /// (UTC) and created exclusively: never overwriting a file.
    pub dump_dir: *const c_char,
    /// At most one dump per cause this often, in ms (0: 10000).
    pub rate_limit_ms: u32,
    /// The directory's budget: past this many of rtcore's own dumps (0:
    /// 20) or this many MiB of them (0: 256), the oldest of them go.
    /// Other files are never touched.
    pub dir_max_dumps: u32,
    pub dir_max_mb: u32,
    /// Reserved: zero.
    pub reserved: u32,
}

fn config_from(c: *const rtc_flight_recorder_config) -> crate::status::Result<Config> {
    let func = "rtc_flight_recorder_start";
    if c.is_null() {
        return Ok(Config::default());
    }
    super::checked_ptr(c, "config", func)?;
    // SAFETY: non-NULL and aligned; `size` read first.
    let size = unsafe { (*c).size } as usize;
    if size != size_of::<rtc_flight_recorder_config>() {
        return Err(Error::new(
            RTC_ERR_INVALID_ARGUMENT,
            format!(
                "{func}: config->size is {size}, expected sizeof(rtc_flight_recorder_config) = {}",
                size_of::<rtc_flight_recorder_config>()
            ),
        ));
    }
    // SAFETY: the caller's struct, of the right size.
    let c = unsafe { &*c };
    if c.triggers & !flight::ALL_TRIGGERS != 0 || c.reserved != 0 {
        return Err(Error::new(
            RTC_ERR_INVALID_ARGUMENT,
            format!(
                "{func}: config->triggers {:#x} has unknown bits, or config->reserved is not zero",
                c.triggers
            ),
        ));
    }
    let dump_dir = if c.dump_dir.is_null() {
        None
    } else {
        let d = required_str(c.dump_dir, "config->dump_dir", func)?;
        if d.is_empty() {
            return Err(Error::new(
                RTC_ERR_INVALID_ARGUMENT,
                format!("{func}: config->dump_dir is empty"),
            ));
        }
        Some(std::path::PathBuf::from(d))
    };
    let or = |v: u32, d: u32| if v == 0 { d } else { v };
    Ok(Config {
        max_bytes: u64::from(or(c.max_mb, (flight::DEFAULT_MAX_BYTES >> 20) as u32)) << 20,
        min_age_ms: c.min_age_ms,
        dump_dir,
        triggers: or(c.triggers, flight::ALL_TRIGGERS),
        rate_limit_ms: or(c.rate_limit_ms, flight::DEFAULT_RATE_LIMIT_MS),
        dir_max_dumps: or(c.dir_max_dumps, flight::DEFAULT_DIR_MAX_DUMPS),
        dir_max_bytes: u64::from(or(
            c.dir_max_mb,
            (flight::DEFAULT_DIR_MAX_BYTES >> 20) as u32,
        )) << 20,
    })
}

/// Start the flight recorder: a trace kept in memory (the recent past,
/// within `config->max_mb`), written out by `rtc_flight_recorder_write`
/// or, with a `dump_dir`, by itself when an incident happens (see
/// `rtc_flight_trigger`). `config` may be NULL for the defaults (16 MiB,
/// no automatic dumps). `RTCORE_FLIGHT_RECORDER=DIR[,max_mb=N][,min_age_ms=N]`
/// starts it without any call.
///
/// There is one trace at a time: while the flight recorder records,
/// `rtc_trace_start` returns `RTC_ERR_WRONG_STATE`, and the other way
/// round.
///
/// Returns `RTC_OK`; `RTC_ERR_INVALID_ARGUMENT` for a bad `size`, unknown
/// trigger bits, a non-zero `reserved` or an empty `dump_dir`;
/// `RTC_ERR_IO` if `dump_dir` cannot be made or written;
/// `RTC_ERR_WRONG_STATE` if it (or a trace) is already recording; the
/// statuses of `rtc_trace_start` otherwise.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_flight_recorder_start(
    config: *const rtc_flight_recorder_config,
) -> rtc_status {
    boundary("rtc_flight_recorder_start", || {
        lifecycle::enter()?;
        let c = config_from(config)?;
        flight::start(c)
    })
}

/// Write what the flight recorder holds into `sink` (a path, a file
/// descriptor or a callback, as for `rtc_trace_start`; called on the
/// calling thread) while it goes on recording: the trace rolls over first,
/// so the snapshot reaches the moment of the call. The snapshot is a
/// complete, consistent trace (`rtcore check` exits 0 on it) whose first
/// generation is the oldest kept. A path is created, or emptied if it is a
/// regular file. Snapshots are taken one at a time.
///
/// Returns `RTC_OK`; `RTC_ERR_WRONG_STATE` if the flight recorder is not
/// recording or nothing is recorded yet; the argument statuses of
/// `rtc_trace_start`; `RTC_ERR_IO` if the sink fails; and
/// `RTC_ERR_WOULD_DEADLOCK` from a hook, the trace writer, a sink callback
/// or the thread holding the world stopped.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_flight_recorder_write(sink: *const rtc_trace_config) -> rtc_status {
    boundary("rtc_flight_recorder_write", || {
        lifecycle::enter()?;
        let sink = super::trace::sink_from(sink, "rtc_flight_recorder_write")?;
        flight::write(sink).map(|_| ())
    })
}

/// Stop the flight recorder and free its memory (its automatic dumps and
/// fatal-signal handlers go with it). Succeeds, doing nothing, when it is
/// not recording (a trace started by `rtc_trace_start` is left alone).
///
/// Returns `RTC_OK`; the statuses of `rtc_trace_stop`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_flight_recorder_stop() -> rtc_status {
    boundary("rtc_flight_recorder_stop", || {
        lifecycle::enter()?;
        flight::stop()
    })
}
