//! Trace start and stop: the protocol over the world, sysmon and the
//! recorder (DESIGN.md, "Tracer"; the seed in shared/seeds).
//!
//! Start: take `hooklock` (no hook runs) → stop the world → take
//! `sysmonlock` (sysmon is between ticks) → publish a new generation and
//! enable → write the header batch (clock, every thread's and P's status)
//! → release → start the world. Stop mirrors it: disable, take every
//! thread's last batch while the world is stopped (enqueue only), release,
//! start the world, then wait (bounded) for the writer and write the end
//! marker.
//!
//! Invariants:
//! - `hooklock` serialises starts and stops: of concurrent starts exactly
//!   one finds tracing off.
//! - `hooklock` is taken before the stop (a hook may wait for a user lock
//!   held by a thread that needs the world running to release it);
//!   `sysmonlock` after it (sysmon never waits on user code, so a tick
//!   always completes) — the seed's order.
//! - No sink I/O happens here: the writer thread does it, holding no
//!   rtcore lock.

use std::time::Duration;

use crate::format::{EventKind, RecordKind};
use crate::record::{self, A, writer};
use crate::status::{Error, RTC_ERR_IO, RTC_ERR_WOULD_DEADLOCK, RTC_ERR_WRONG_STATE, Result};

/// How long `stop` waits for the writer to drain.
pub const WRITER_WAIT: Duration = Duration::from_secs(10);

fn refuse_from_rtcore_threads(what: &str) -> Result<()> {
    if crate::sysmon::hooks::in_hook() {
        return Err(Error::new(
            RTC_ERR_WOULD_DEADLOCK,
            format!("{what} called from a hook: start and stop wait for hooks to finish"),
        ));
    }
    if record::is_no_record() {
        return Err(Error::new(
            RTC_ERR_WOULD_DEADLOCK,
            format!(
                "{what} called from the trace writer or a sink callback: it would wait for itself"
            ),
        ));
    }
    if crate::world::assert_world_stopped().is_ok() {
        return Err(Error::new(
            RTC_ERR_WOULD_DEADLOCK,
            format!(
                "{what} called by the thread holding the world stopped: it stops the world itself (start the world first)"
            ),
        ));
    }
    Ok(())
}

fn random_trace_id() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: a valid buffer of 8 bytes.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), 8, libc::GRND_NONBLOCK) };
    let mut id = u64::from_le_bytes(b);
    if n != 8 || id == 0 {
        id = record::monotonic_ns() ^ (std::process::id() as u64) << 32 | 1;
    }
    id
}

fn refuse_when_tracing() -> Result<()> {
    if crate::base::state::closing() {
        return Err(crate::base::state::shut_down_error());
    }
    if record::current().0 != 0 {
        return Err(Error::new(
            RTC_ERR_WRONG_STATE,
            "rtc_trace_start: tracing is already enabled",
        ));
    }
    if writer::busy() {
        return Err(Error::new(
            RTC_ERR_WRONG_STATE,
            "rtc_trace_start: tracing is already enabled (the previous trace is still shutting down)",
        ));
    }
    Ok(())
}

/// `rtc_trace_start`.
///
/// A path sink is opened (never blocking: see `Sink::open`) after every
/// refusal is known and before the world is stopped: holding `hooklock`,
/// which every start and stop takes, so "not tracing" cannot change
/// between the check and the open. A start refused for any reason leaves
/// no file behind that it created.
pub fn start(sink: writer::Sink) -> Result<()> {
    refuse_from_rtcore_threads("rtc_trace_start")?;
    let _hooklock = crate::sysmon::hooks::lock_hooklock();
    refuse_when_tracing()?;
    // The trace clock's calibration, if rtcore started less than 10 ms
    // ago, completes here, never inside the stop.
    record::clock::ensure_calibrated();
    // The writer thread is started once, here, never inside a stop.
    writer::ensure_thread().map_err(|e| Error::new(RTC_ERR_IO, format!("rtc_trace_start: {e}")))?;
    let writer::Opened { sink, created } = sink
        .open()
        .map_err(|e| Error::new(RTC_ERR_IO, format!("rtc_trace_start: {e}")))?;
    let (published, restarted) = start_opened(sink);
    if published.is_err() {
        // Nothing was recorded into it: the file goes again.
        if let Some(path) = created {
            let _ = std::fs::remove_file(path);
        }
    }
    published.and(restarted)
}

/// The start's protocol with the sink open: whether the trace was
/// published, and whether the world restarted (a trace may be running
/// even when the restart failed).
fn start_opened(sink: writer::Sink) -> (Result<()>, Result<()>) {
    if let Err(e) = crate::world::stop_the_world("trace start") {
        return (Err(e), Ok(()));
    }
    let r = with_sysmonlock(|| -> Result<()> {
        // Checked again: cheap, and the protocol's own guard.
        refuse_when_tracing()?;
        let trace_id = random_trace_id();
        writer::begin(sink, trace_id)
            .map_err(|e| Error::new(RTC_ERR_IO, format!("rtc_trace_start: {e}")))?;
        let (g, clock) = record::prepare_start(trace_id);
        let realtime_origin = realtime_ns();
        // Publish first, then look: a thread that attaches, wakes or
        // leaves a blocking region from here on either finds the new
        // generation in its gate (and records its own status and the
        // change), or is seen below by the tracer after its change.
        record::publish(g);
        let world = crate::world::world();
        let obs = world.observe();
        let stalls = crate::sysmon::monitor::open_stalls();
        let header = record::header_batch(g, |h| {
            h.event(
                EventKind::ClockInfo,
                &[A::U(clock.ticks_per_second), A::U(realtime_origin)],
            );
            write_proc_statuses(h, &obs);
            for (kind, key) in &stalls {
                h.event(EventKind::StallStatus, &[A::U(*kind), A::U(*key)]);
            }
        });
        writer::push_batch_quiet(header);
        // Every attached thread's status, in its gate (no inner lock held
        // here below `tracebuf`: a gate's holder may wait for `sched`).
        let ids: Vec<u64> = obs.threads.iter().map(|t| t.rec.id).collect();
        record::write_statuses(g, &ids, |i, f| world.trace_status(&obs.threads[i].rec, f));
        // Start writes its own STW begin after enabling (as Go 1.22 does).
        // Trace: protected by the stop this thread holds.
        record::emit(EventKind::StwBegin, &[A::Str("trace start")]);
        Ok(())
    });
    // The world's restart records the STW end.
    let restarted = crate::world::start_the_world();
    if r.is_ok() {
        // Now, outside the stop: the writer empties the file and writes
        // the header.
        writer::started();
    }
    (r, restarted)
}

/// Run the tracer's critical section `f` under `sysmonlock` (or, with the
/// fault injection `trace_skip_sysmonlock`, without it: record::fault).
fn with_sysmonlock<R>(f: impl FnOnce() -> R) -> R {
    if record::fault::skip_sysmonlock() {
        return f();
    }
    record::fault::tracer_wants_sysmonlock();
    crate::sysmon::monitor::with_sysmonlock(|| {
        record::fault::tracer_has_sysmonlock();
        f()
    })
}

fn realtime_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Every P's status, read with the world stopped and sysmon between ticks
/// (nothing changes a P then), into the header batch.
fn write_proc_statuses(h: &mut record::HeaderBuilder, obs: &crate::world::Observation) {
    h.event(EventKind::ProcsChange, &[A::U(obs.procs.len() as u64)]);
    let world = crate::world::world();
    for p in &obs.procs {
        let owner = crate::world::handshake::powner(p.word);
        h.event(
            EventKind::ProcStatus,
            &[
                A::U(p.index as u64),
                A::U(crate::world::handshake::pstate(p.word)),
                A::U(owner),
                A::U(world.pseq(p.index)),
            ],
        );
    }
}

/// `rtc_trace_stop`: succeeds when not tracing.
pub fn stop() -> Result<()> {
    refuse_from_rtcore_threads("rtc_trace_stop")?;
    let (ended, restarted) = {
        let _hooklock = crate::sysmon::hooks::lock_hooklock();
        crate::world::stop_the_world("trace stop")?;
        let ended = with_sysmonlock(|| {
            // (The world's stop recorded its STW begin; its end falls after
            // the trace and is legal as an open range.)
            let (_, file_gen) = record::current();
            let (counts, leftovers) = record::publish_stop()?;
            end_generation(file_gen, counts);
            Some((file_gen, leftovers))
        });
        let restarted = crate::world::start_the_world();
        // Freed with the world running.
        let ended = ended.map(|(g, leftovers)| {
            drop(leftovers);
            g
        });
        (ended, restarted)
        // hooklock is released here: hooks run again while the writer
        // drains (a new start meanwhile is refused: "still shutting down").
    };
    if let Some(file_gen) = ended {
        let end = crate::format::trace_end_body(record::trace_id(), file_gen);
        // Waited as a lock wait: an attached caller gives up its P, so a
        // stop by another thread does not wait for this one.
        crate::base::wait::begin();
        let r = writer::finish(Some((RecordKind::TraceEnd, end)), WRITER_WAIT);
        crate::base::wait::end();
        r.map_err(|e| Error::new(RTC_ERR_IO, format!("rtc_trace_stop: {e}")))?;
    }
    restarted
}

/// Queue the generation-end record: every thread's batch count, and the
/// header batch (thread 0).
fn end_generation(file_gen: u64, mut counts: Vec<(u64, u64)>) {
    counts.push((0, 1));
    counts.sort();
    let body = crate::format::generation_end_body(record::trace_id(), file_gen, &counts);
    writer::push_record(RecordKind::GenerationEnd, &body);
}

/// Is a trace being recorded?
pub fn enabled() -> bool {
    record::current().0 != 0
}

/// At process exit: finish a trace in progress with bounded waits. The
/// world is not stopped (a thread that never reaches a safepoint would hang
/// the exit), so other threads may still run: their later events are not
/// recorded, and a trace ended this way can lack an event another thread's
/// recorded event depends on (the reader then reports it). Stop the trace
/// before exiting for a trace that is always consistent.
pub fn stop_at_exit() {
    if !enabled() || crate::sysmon::hooks::in_hook() || record::is_no_record() {
        return;
    }
    // Serialised with start and stop through hooklock, waiting a little: a
    // start or stop in progress on another thread at exit leaves the trace
    // without its end marker (reported as cut short) rather than mixed up.
    let Some(_hooklock) = crate::sysmon::hooks::try_lock_hooklock(Duration::from_millis(200))
    else {
        return;
    };
    let (_, file_gen) = record::current();
    let Some((counts, _leftovers)) = record::publish_stop() else {
        return;
    };
    end_generation(file_gen, counts);
    let id = record::trace_id();
    let _ = writer::finish(
        Some((
            RecordKind::TraceEnd,
            crate::format::trace_end_body(id, file_gen),
        )),
        Duration::from_secs(2),
    );
}
