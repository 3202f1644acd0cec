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

/// The default time between generations.
pub const GENERATION_MS: u32 = crate::format::DEFAULT_GENERATION_MS;
/// The time between generations of the trace being recorded, in ns.
static GENERATION_NS: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(GENERATION_MS as u64 * 1_000_000);
/// A generation rolls over early once this many bytes of its batches
/// reached the writer (0: no size limit).
static GENERATION_LIMIT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// The default size limit of a generation.
pub const GENERATION_BYTES: u64 = 64 << 20;

/// When the next rollover is due on sysmon's clock (0: not scheduled yet).
static NEXT_ROLL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// sysmon's tick hook (under `sysmonlock`): roll the trace over when its
/// generation is due. Returns when it is next due.
pub fn tick(now: u64) -> Option<u64> {
    use std::sync::atomic::Ordering::SeqCst;
    if !enabled() {
        NEXT_ROLL.store(0, SeqCst);
        return None;
    }
    let period = GENERATION_NS.load(SeqCst).max(1_000_000);
    let next = NEXT_ROLL.load(SeqCst);
    let limit = GENERATION_LIMIT.load(SeqCst);
    let too_big = limit != 0 && record::GENERATION_BYTES.load(SeqCst) >= limit;
    if next == 0 && !too_big {
        NEXT_ROLL.store(now.saturating_add(period), SeqCst);
    } else if now >= next || too_big {
        rollover_locked();
        note_given_up();
        NEXT_ROLL.store(now.saturating_add(period), SeqCst);
    }
    Some(NEXT_ROLL.load(SeqCst))
}

/// Say which threads a pass gave up on since last time (gate.rs, **bounded
/// wait**): on stderr, and in the trace while it records (a `log` event of
/// category "rtcore" in the calling thread's stream).
fn note_given_up() {
    for id in writer::take_given_up() {
        let msg = format!(
            "thread {id} stayed inside a recording section for {} ms (it left one by longjmp or was cancelled in one?): given up on, its events are no longer recorded",
            record::GIVE_UP_AFTER.as_millis()
        );
        crate::diag::eprintln(&format!("rtcore: trace: {msg}"));
        record::emit(EventKind::Log, &[A::Str("rtcore"), A::Str(&msg)]);
    }
}

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

/// The trace's clock information (ticks per second, realtime ns at its
/// origin), written into every generation's header. Set by the start
/// before it publishes; read by rollovers, which the start excludes
/// (`sysmonlock`).
static CLOCK_INFO: [std::sync::atomic::AtomicU64; 2] = [
    std::sync::atomic::AtomicU64::new(0),
    std::sync::atomic::AtomicU64::new(0),
];

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

/// Who started the trace being recorded: 0 none, 1 `rtc_trace_start`, 2
/// the flight recorder. There is one trace at a time; each refuses to
/// start over, or stop, the other's (the flight recorder's memory is
/// written out with `rtc_flight_recorder_write` instead).
static OWNER: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Who starts or stops a trace.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Owner {
    User = 1,
    FlightRecorder = 2,
}

/// The owner of the trace being recorded, if any.
pub fn owner() -> Option<Owner> {
    match OWNER.load(std::sync::atomic::Ordering::SeqCst) {
        1 => Some(Owner::User),
        2 => Some(Owner::FlightRecorder),
        _ => None,
    }
}

fn refuse_when_tracing() -> Result<()> {
    if crate::base::state::closing() {
        return Err(crate::base::state::shut_down_error());
    }
    if record::current().0 != 0 {
        return Err(Error::new(
            RTC_ERR_WRONG_STATE,
            if owner() == Some(Owner::FlightRecorder) {
                "rtc_trace_start: the flight recorder is recording (one trace at a time: write its memory out with rtc_flight_recorder_write, or stop it first)"
            } else {
                "rtc_trace_start: tracing is already enabled"
            },
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
pub fn start(sink: writer::Sink, generation_ms: u32, max_bytes: u64) -> Result<()> {
    start_for(
        Owner::User,
        sink,
        generation_ms,
        GENERATION_BYTES,
        max_bytes,
    )
}

/// Start a trace for `owner` (`start`), its generations rolling every
/// `generation_ms` or past `generation_bytes` (0: no size limit), the
/// writer's queue bounded by `max_bytes` (0: the default, 64 MiB; past it
/// whole generations are dropped and the loss recorded).
pub fn start_for(
    who: Owner,
    sink: writer::Sink,
    generation_ms: u32,
    generation_bytes: u64,
    max_bytes: u64,
) -> Result<()> {
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
    let ms = if generation_ms == 0 {
        GENERATION_MS
    } else {
        generation_ms
    };
    GENERATION_NS.store(
        u64::from(ms) * 1_000_000,
        std::sync::atomic::Ordering::SeqCst,
    );
    NEXT_ROLL.store(0, std::sync::atomic::Ordering::SeqCst);
    GENERATION_LIMIT.store(generation_bytes, std::sync::atomic::Ordering::SeqCst);
    let limit = if max_bytes == 0 {
        writer::DEFAULT_LIMIT
    } else {
        max_bytes
    };
    // A quarter of the bound for the threads' buffers being filled: with
    // many threads, batches get smaller.
    record::set_buffer_budget(limit / 4);
    let (published, restarted) = start_opened(sink, who, limit);
    if published.is_ok() {
        // sysmon rolls the generations: it runs while a trace does.
        crate::sysmon::ensure_started();
        crate::sysmon::kick();
    }
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
fn start_opened(sink: writer::Sink, who: Owner, limit: u64) -> (Result<()>, Result<()>) {
    if let Err(e) = crate::world::stop_the_world("trace start") {
        return (Err(e), Ok(()));
    }
    let r = with_sysmonlock(|| -> Result<()> {
        // Checked again: cheap, and the protocol's own guard.
        refuse_when_tracing()?;
        let trace_id = random_trace_id();
        writer::begin(sink, trace_id, limit)
            .map_err(|e| Error::new(RTC_ERR_IO, format!("rtc_trace_start: {e}")))?;
        let (g, clock) = record::prepare_start(trace_id);
        let realtime_origin = realtime_ns();
        CLOCK_INFO[0].store(clock.ticks_per_second, std::sync::atomic::Ordering::SeqCst);
        CLOCK_INFO[1].store(realtime_origin, std::sync::atomic::Ordering::SeqCst);
        OWNER.store(who as u8, std::sync::atomic::Ordering::SeqCst);
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
            write_proc_statuses(h);
            for (kind, key) in &stalls {
                h.event(EventKind::StallStatus, &[A::U(*kind), A::U(*key)]);
            }
        });
        writer::push_batch_quiet(1, header);
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

/// One tracer at a time (`record::gate`'s invariant): start, stop and
/// rollovers hold it while they publish and pass over the gates. They also
/// hold `sysmonlock`, which is enough; this lock keeps the invariant when
/// the fault injection makes start and stop skip `sysmonlock` (two tracers
/// claiming the same gates could wait for each other forever). Taken after
/// `sysmonlock`, never held across anything but the pass.
static TRACER: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

/// Run the tracer's critical section `f` under `sysmonlock` (or, with the
/// fault injection `trace_skip_sysmonlock`, without it: record::fault),
/// as the one tracer.
fn with_sysmonlock<R>(f: impl FnOnce() -> R) -> R {
    if record::fault::skip_sysmonlock() {
        let _tracer = TRACER.lock();
        return f();
    }
    record::fault::tracer_wants_sysmonlock();
    crate::sysmon::monitor::with_sysmonlock(|| {
        record::fault::tracer_has_sysmonlock();
        let _tracer = TRACER.lock();
        f()
    })
}

fn realtime_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Every P's status (`World::trace_procs`), for a generation's header:
/// read with the world stopped and sysmon between ticks (a start), or with
/// sysmon between ticks and every state-changing section held off (a
/// rollover). Nothing changes a P meanwhile.
fn write_proc_statuses(h: &mut record::HeaderBuilder) {
    let (n, procs) = crate::world::world().trace_procs();
    h.event(EventKind::ProcsChange, &[A::U(n as u64)]);
    for (index, state, owner, seq) in procs {
        h.event(
            EventKind::ProcStatus,
            &[A::U(index as u64), A::U(state), A::U(owner), A::U(seq)],
        );
    }
}

/// `rtc_trace_stop`: succeeds when not tracing; refuses to stop the flight
/// recorder's trace.
pub fn stop() -> Result<()> {
    stop_for(Owner::User)
}

/// Stop the trace if `who` started it (`stop`).
pub fn stop_for(who: Owner) -> Result<()> {
    refuse_from_rtcore_threads("rtc_trace_stop")?;
    if let Some(o) = owner() {
        if o != who {
            return Err(Error::new(
                RTC_ERR_WRONG_STATE,
                match o {
                    Owner::FlightRecorder => {
                        "rtc_trace_stop: the trace being recorded is the flight recorder's (stop it with rtc_flight_recorder_stop)"
                    }
                    Owner::User => {
                        "rtc_flight_recorder_stop: the trace being recorded was started by rtc_trace_start, not the flight recorder"
                    }
                },
            ));
        }
    }
    let (ended, restarted) = {
        let _hooklock = crate::sysmon::hooks::lock_hooklock();
        crate::world::stop_the_world("trace stop")?;
        let ended = with_sysmonlock(|| {
            // (The world's stop recorded its STW begin; its end falls after
            // the trace and is legal as an open range.)
            let (_, file_gen) = record::current();
            let (counts, leftovers) = record::publish_stop()?;
            OWNER.store(0, std::sync::atomic::Ordering::SeqCst);
            end_generation(file_gen, counts);
            Some((file_gen, leftovers))
        });
        let restarted = crate::world::start_the_world();
        note_given_up();
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

/// Advance the trace to its next generation without stopping the world
/// (DESIGN.md, "Advancing a generation never stops the world"): no
/// `hooklock`, no stop, no wait for a safepoint. The caller holds
/// `sysmonlock` (sysmon's tick does this), which also keeps starts and
/// stops out. Returns false when not tracing.
///
/// 1. Publish the next generation, not ready: every section that reads it
///    (but an attach) waits from here (`gate::emitter_ready`).
/// 2. One pass over every recording thread's gate: take its last batch of
///    the old generation. When it ends, no section is under way and none
///    can begin: the world is at rest.
/// 3. At rest, a second pass writes each attached thread's status for the
///    new generation, and the new header is written: the clock, every P,
///    the open stall episodes, and the hook runs and stops of the world
///    that threads' streams begin inside.
/// 4. Queue the old generation's end, then the new header; make the new
///    generation ready.
///
/// Threads are held only if they change state during steps 1 to 4, and
/// only for as long as the pass and the header take.
pub fn rollover_locked() -> bool {
    let _tracer = TRACER.lock();
    let Some((old, new)) = record::begin_rollover() else {
        return false;
    };
    let world = crate::world::world();
    let (counts, leftovers) = record::rollover_collect(old);
    // At rest until `finish_rollover`: threads listed now are all the
    // attached ones (one attaching later records its own `attach`).
    let obs = world.observe();
    let by_id: std::collections::HashMap<u64, usize> = obs
        .threads
        .iter()
        .enumerate()
        .map(|(i, t)| (t.rec.id, i))
        .collect();
    let open = record::rollover_statuses(new, |id, f| {
        if let Some(&i) = by_id.get(&id) {
            world.trace_status(&obs.threads[i].rec, f);
        }
    });
    // At rest until `finish_rollover`.
    let stalls = crate::sysmon::monitor::open_stalls();
    let header = record::header_batch(new, |h| {
        h.event(
            EventKind::ClockInfo,
            &[
                A::U(CLOCK_INFO[0].load(std::sync::atomic::Ordering::SeqCst)),
                A::U(CLOCK_INFO[1].load(std::sync::atomic::Ordering::SeqCst)),
            ],
        );
        write_proc_statuses(h);
        for (kind, key) in &stalls {
            h.event(EventKind::StallStatus, &[A::U(*kind), A::U(*key)]);
        }
        for (thread, open) in &open {
            if let Some(hook) = open.hook {
                h.event(EventKind::HookStatus, &[A::U(*thread), A::U(hook)]);
            }
            if open.stw {
                h.event(EventKind::StwStatus, &[A::U(*thread)]);
            }
            if let Some((reason, object)) = open.outside {
                h.event(
                    EventKind::OutsideStatus,
                    &[A::U(*thread), A::U(reason), A::U(object)],
                );
            }
        }
    });
    let (old_file, new_file) = (
        record::file_generation_of(old),
        record::file_generation_of(new),
    );
    end_generation(old_file, counts);
    writer::push_batch_quiet(new_file, header);
    record::finish_rollover(new);
    drop(leftovers);
    writer::wake();
    true
}

/// Roll the trace over now, from any thread but sysmon (which rolls in its
/// tick, holding `sysmonlock`): for a flight-recorder snapshot. Returns
/// the number in the file of the generation it ended (0: not tracing).
pub fn rollover_now() -> Result<u64> {
    refuse_from_rtcore_threads("a flight-recorder snapshot")?;
    // `sysmonlock` always (the fault injection is about starts and stops),
    // telling a sysmon the injection parked that it waits.
    record::fault::tracer_wants_sysmonlock();
    let file_gen = crate::sysmon::monitor::with_sysmonlock(|| {
        record::fault::tracer_has_sysmonlock();
        let (_, file_gen) = record::current();
        if rollover_locked() { file_gen } else { 0 }
    });
    note_given_up();
    Ok(file_gen)
}

/// Queue the generation-end record: every thread's batch count, and the
/// header batch (thread 0).
fn end_generation(file_gen: u64, mut counts: Vec<(u64, u64)>) {
    counts.push((0, 1));
    counts.sort();
    writer::push_generation_end(file_gen, &counts);
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
/// Start a trace into the file `RTCORE_TRACE` names, with the default
/// generation period and memory bound (at load: `lifecycle`); the exit
/// handler ends it. A failure is said on stderr and the program goes on.
pub fn start_from_env() {
    let Some(path) = std::env::var("RTCORE_TRACE").ok().filter(|p| !p.is_empty()) else {
        return;
    };
    // RTCORE_TRACE_GENERATION_MS: the generation period (0 or unset: the
    // default); anything else that is not a number of milliseconds is said
    // and the default used.
    let generation_ms = match std::env::var("RTCORE_TRACE_GENERATION_MS") {
        Ok(v) if !v.is_empty() => v.parse::<u32>().unwrap_or_else(|_| {
            crate::diag::eprintln(&format!(
                "rtcore: RTCORE_TRACE_GENERATION_MS={v} is not a number of milliseconds; the default generation period is used"
            ));
            0
        }),
        _ => 0,
    };
    if let Err(e) = start(writer::Sink::Path(path.clone()), generation_ms, 0) {
        crate::diag::eprintln(&format!(
            "rtcore: the trace asked for by RTCORE_TRACE={path} did not start: {}",
            e.message
        ));
    }
}

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
    // A rollover in progress (sysmon's) is waited for a little.
    let Some(_tracer) = TRACER.try_lock_for(Duration::from_millis(200)) else {
        return;
    };
    let (_, file_gen) = record::current();
    let Some((counts, _leftovers)) = record::publish_stop() else {
        return;
    };
    OWNER.store(0, std::sync::atomic::Ordering::SeqCst);
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
