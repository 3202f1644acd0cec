//! The flight recorder (DESIGN.md, "The flight recorder"): a trace kept in
//! memory, whole generations at a time within a byte bound
//! (`record::ring`), written out on demand (`write`) or by itself when
//! something goes wrong (`dumps`: a stall episode opening, a deadlock, a
//! lock-order violation, a fatal signal).
//!
//! It is a trace like any other, started and stopped by the tracer's
//! protocol and rolled over by sysmon; there is one trace at a time, so a
//! regular trace and the flight recorder refuse each other
//! (`RTC_ERR_WRONG_STATE`).
//!
//! Invariants:
//! - `CONTROL` serialises start, stop and snapshots; it is not an inner
//!   lock (a snapshot holds it across its I/O) and is never taken with an
//!   inner lock held.
//! - A snapshot first rolls the trace over (completing the generation in
//!   progress), waits for the writer to put that generation into the
//!   ring, then writes the ring's complete generations: a valid trace.
//! - Nothing here runs on sysmon's thread or under `sysmonlock`: incidents
//!   only queue a dump (`dumps`), and the dumper thread writes it.

pub mod dumps;
pub mod signals;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::format::{RecordKind, put_record, trace_end_body};
use crate::record::ring::Ring;
use crate::record::writer::{self, Sink};
use crate::status::{Error, RTC_ERR_IO, RTC_ERR_WRONG_STATE, Result};

/// Trigger bits (`rtc_flight_recorder_config.triggers`).
pub const ON_STALL: u32 = 1;
pub const ON_DEADLOCK: u32 = 2;
pub const ON_LOCK_ORDER: u32 = 4;
pub const ON_FATAL_SIGNAL: u32 = 8;
pub const ALL_TRIGGERS: u32 = ON_STALL | ON_DEADLOCK | ON_LOCK_ORDER | ON_FATAL_SIGNAL;

/// The defaults.
pub const DEFAULT_MAX_BYTES: u64 = 16 << 20;
pub const DEFAULT_RATE_LIMIT_MS: u32 = 10_000;
pub const DEFAULT_DIR_MAX_DUMPS: u32 = 20;
pub const DEFAULT_DIR_MAX_BYTES: u64 = 256 << 20;

/// How the flight recorder runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The memory kept for complete generations.
    pub max_bytes: u64,
    /// The history a snapshot should reach back at least, when the bound
    /// allows: generations roll every quarter of it (10 ms to 1 s).
    pub min_age_ms: u32,
    /// Where automatic dumps go (None: none).
    pub dump_dir: Option<PathBuf>,
    /// Which incidents dump (`ON_*` bits).
    pub triggers: u32,
    /// At most one dump per cause this often.
    pub rate_limit_ms: u32,
    /// The directory's budget for rtcore's own dumps: past either, the
    /// oldest of them go.
    pub dir_max_dumps: u32,
    pub dir_max_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_bytes: DEFAULT_MAX_BYTES,
            min_age_ms: 0,
            dump_dir: None,
            triggers: ALL_TRIGGERS,
            rate_limit_ms: DEFAULT_RATE_LIMIT_MS,
            dir_max_dumps: DEFAULT_DIR_MAX_DUMPS,
            dir_max_bytes: DEFAULT_DIR_MAX_BYTES,
        }
    }
}

impl Config {
    /// The time between generations.
    pub fn generation_ms(&self) -> u32 {
        if self.min_age_ms == 0 {
            crate::format::DEFAULT_GENERATION_MS
        } else {
            (self.min_age_ms / 4).clamp(10, crate::format::DEFAULT_GENERATION_MS)
        }
    }
}

struct Active {
    ring: Arc<Ring>,
    config: Config,
}

static CONTROL: crate::base::inner::ResettableMutex<Option<Active>> =
    crate::base::inner::ResettableMutex::new(None);

/// How long a snapshot waits for the writer to hand it the generation the
/// snapshot's rollover ended.
const WRITER_WAIT: Duration = Duration::from_secs(5);

/// `rtc_flight_recorder_start`.
pub fn start(config: Config) -> Result<()> {
    let mut c = CONTROL.lock();
    if c.is_some() {
        return Err(Error::new(
            RTC_ERR_WRONG_STATE,
            "rtc_flight_recorder_start: the flight recorder is already recording",
        ));
    }
    if let Some(dir) = &config.dump_dir {
        dumps::check_dir(dir)?;
    }
    let ring = Ring::new(config.max_bytes.min(usize::MAX as u64) as usize);
    // Generations of at most an eighth of the memory: the ring keeps
    // several, so the moments before an incident survive its dump.
    crate::trace::start_for(
        crate::trace::Owner::FlightRecorder,
        Sink::Ring(ring.clone()),
        config.generation_ms(),
        (config.max_bytes / 8).max(64 << 10),
        config.max_bytes,
    )
    .map_err(|e| {
        let message = e
            .message
            .replace("rtc_trace_start", "rtc_flight_recorder_start");
        Error::new(e.status, message)
    })?;
    dumps::configure(Some((&config, ring.clone())));
    if config.dump_dir.is_some() && config.triggers & ON_FATAL_SIGNAL != 0 {
        signals::install(ring.clone(), config.dump_dir.clone().unwrap_or_default());
    }
    *c = Some(Active { ring, config });
    Ok(())
}

/// `rtc_flight_recorder_stop`: succeeds when not recording.
pub fn stop() -> Result<()> {
    let mut c = CONTROL.lock();
    if c.is_none() {
        return Ok(());
    }
    dumps::configure(None);
    signals::uninstall();
    crate::trace::stop_for(crate::trace::Owner::FlightRecorder)?;
    *c = None;
    Ok(())
}

/// rtcore's shutdown: the flight recorder stops (its trace too), and its
/// dumper thread is joined.
pub fn shutdown() {
    if let Err(e) = stop() {
        crate::diag::eprintln(&format!(
            "rtcore: rtc_shutdown: stopping the flight recorder: {}",
            e.message
        ));
    }
    dumps::shutdown();
}

/// In a forked child: the parent's recorder does not record here (the
/// child's tracing is off); its memory is forgotten, its handlers removed.
pub fn after_fork_child() {
    // SAFETY: in the child's atfork handler; the holder does not exist.
    unsafe { CONTROL.reset_after_fork() };
    if let Some(a) = CONTROL.lock().take() {
        crate::base::fork::keep_forever(a.ring);
    }
    // SAFETY: the child's atfork handler, on the only thread.
    unsafe { dumps::after_fork_child() };
    signals::uninstall();
}

/// Is the flight recorder recording? (Its configuration, if so.)
pub fn config() -> Option<Config> {
    CONTROL.lock().as_ref().map(|a| a.config.clone())
}

/// `rtc_flight_recorder_write`: a snapshot into `sink` while recording
/// goes on. Returns the bytes written.
pub fn write(sink: Sink) -> Result<u64> {
    let c = CONTROL.lock();
    let Some(a) = c.as_ref() else {
        return Err(Error::new(
            RTC_ERR_WRONG_STATE,
            "rtc_flight_recorder_write: the flight recorder is not recording",
        ));
    };
    snapshot_into(&a.ring, sink)
}

/// Roll the trace over, wait for the generation it ended to reach the
/// ring, and write the ring's generations into `sink`.
fn snapshot_into(ring: &Ring, sink: Sink) -> Result<u64> {
    let ended = crate::trace::rollover_now()?;
    writer::wake();
    let deadline = Instant::now() + WRITER_WAIT;
    while ring.last_done() < ended {
        if Instant::now() >= deadline {
            return Err(Error::new(
                RTC_ERR_IO,
                format!(
                    "flight recorder snapshot: the trace writer did not hand over generation {ended} within {} s",
                    WRITER_WAIT.as_secs()
                ),
            ));
        }
        // The writer hands it over within microseconds when it is not
        // busy: poll finely (a millisecond here was most of a snapshot).
        std::thread::sleep(Duration::from_micros(20));
    }
    let parts = snapshot_parts(ring)?;
    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
    writer::write_out(sink, &refs)
        .map_err(|e| Error::new(RTC_ERR_IO, format!("flight recorder snapshot: {e}")))
}

/// The bytes of a snapshot: the file header, the complete generations
/// kept, an end marker naming the last.
fn snapshot_parts(ring: &Ring) -> Result<Vec<Arc<Vec<u8>>>> {
    let snap = ring.snapshot();
    let Some(last) = snap.generations.last() else {
        return Err(Error::new(
            RTC_ERR_WRONG_STATE,
            "flight recorder snapshot: no generation is complete yet",
        ));
    };
    let trace_id = trace_id_of(&snap.header);
    let mut end = Vec::new();
    put_record(
        &mut end,
        RecordKind::TraceEnd,
        &trace_end_body(trace_id, last.number),
    );
    let mut parts = vec![Arc::new(snap.header.clone())];
    parts.extend(snap.generations.iter().map(|g| g.bytes.clone()));
    parts.push(Arc::new(end));
    Ok(parts)
}

fn trace_id_of(header: &[u8]) -> u64 {
    header
        .get(16..24)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

/// `RTCORE_FLIGHT_RECORDER=DIR[,max_mb=N][,min_age_ms=N]`: parsed into a
/// configuration, or a message saying what is wrong.
pub fn parse_env(v: &str) -> std::result::Result<Config, String> {
    let mut parts = v.split(',');
    let dir = parts.next().unwrap_or("").trim();
    if dir.is_empty() {
        return Err("RTCORE_FLIGHT_RECORDER: no directory given (RTCORE_FLIGHT_RECORDER=DIR[,max_mb=N][,min_age_ms=N])".into());
    }
    let mut c = Config {
        dump_dir: Some(PathBuf::from(dir)),
        ..Config::default()
    };
    for p in parts {
        let (k, val) = p.split_once('=').unwrap_or((p, ""));
        let n: u64 = val
            .trim()
            .parse()
            .map_err(|_| format!("RTCORE_FLIGHT_RECORDER: {k}={val:?} is not a number"))?;
        match k.trim() {
            "max_mb" if (1..=1 << 20).contains(&n) => c.max_bytes = n << 20,
            "min_age_ms" if n <= u32::MAX as u64 => c.min_age_ms = n as u32,
            other => {
                return Err(format!(
                    "RTCORE_FLIGHT_RECORDER: unknown or out-of-range setting {other:?}={val} (known: max_mb from 1, min_age_ms)"
                ));
            }
        }
    }
    Ok(c)
}

/// Start the flight recorder if `RTCORE_FLIGHT_RECORDER` asks for it (at
/// rtcore's first use; a program need not call anything). A bad setting
/// or a failed start is reported on stderr and the program goes on.
pub fn start_from_env() {
    let Ok(v) = std::env::var("RTCORE_FLIGHT_RECORDER") else {
        return;
    };
    match parse_env(&v)
        .map_err(|m| Error::new(crate::status::RTC_ERR_INVALID_ARGUMENT, m))
        .and_then(start)
    {
        Ok(()) => {}
        Err(e) => crate::diag::eprintln(&format!(
            "rtcore: the flight recorder asked for by RTCORE_FLIGHT_RECORDER did not start: {}",
            e.message
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_setting_parses_and_refuses_what_it_does_not_know() {
        let c = parse_env("/tmp/d,max_mb=4,min_age_ms=2000").unwrap();
        assert_eq!(c.dump_dir, Some(PathBuf::from("/tmp/d")));
        assert_eq!((c.max_bytes, c.min_age_ms), (4 << 20, 2000));
        assert_eq!(c.generation_ms(), 500);
        assert_eq!(parse_env("/d").unwrap().max_bytes, DEFAULT_MAX_BYTES);
        assert_eq!(parse_env("/d").unwrap().generation_ms(), 1000);
        assert_eq!(parse_env("/d,min_age_ms=1").unwrap().generation_ms(), 10);
        for bad in [
            "",
            ",max_mb=3",
            "/d,max_mb=x",
            "/d,max_mb=0",
            "/d,colour=blue",
            "/d,max_mb",
        ] {
            assert!(parse_env(bad).is_err(), "{bad:?}");
        }
    }
}
