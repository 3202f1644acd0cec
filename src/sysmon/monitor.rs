//! The sysmon thread: outside the world (no P, never stopped), it runs no
//! user code. Each tick runs entirely under `sysmonlock` (an inner lock of
//! rank `sysmon`, taken with nothing else held); sleeping is outside it.
//! After taking the lock it refreshes `now`. Per tick: retake Ps that sat in
//! SYSCALL too long, and ask threads RUNNING 10 ms without a safepoint to
//! reach one (numbered requests). Deep sleep when no P is busy or a stop is
//! pending, woken by attach, blocking-region edges and the start of the
//! world (`kick`), capped at the earliest stall deadline. Stall reports,
//! hook overruns (`stalls`) and schedtrace lines are made in the same tick.
//!
//! Invariants:
//! - Each action (a retake, a preemption request, a stall episode opening
//!   or closing) and its trace event happen inside one `sysmonlock`
//!   section, recorded into the generation read at sysmon's check before
//!   the action (`record::check`); start and stop take `sysmonlock` to
//!   publish, so that generation is still the current one.
//! - `kick` costs one load unless sysmon is in deep sleep.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use super::policy::{self, Delay, Seen, Sleep};
use super::settings::{self, Setting};
use super::stalls::Stalls;
use crate::base::inner::{InnerMutex, InnerRank, ResettableMutex};
use crate::world::handshake::{P_RUNNING, P_SYSCALL, powner, pstate};

struct State {
    delay: Delay,
    /// Per P: (word, owner's safepoints) as first seen.
    seen_p: Vec<Option<Seen>>,
    /// Per P: its RUNNING owner and that owner's safepoint count as first
    /// seen (a thread that moves to another P is seen afresh there).
    seen_run: Vec<Option<(u64, Seen)>>,
    stalls: Stalls,
    deadlocks: super::deadlock::Detector,
    /// When the next schedtrace line is due (0: not scheduled).
    next_schedtrace: u64,
    /// The world as this tick sees it (its memory reused tick to tick).
    obs: crate::world::Observation,
}

/// sysmon's counters (also `rtc_sysmon_stats`).
#[derive(Default)]
pub struct Stats {
    pub ticks: AtomicU64,
    pub delay_ns: AtomicU64,
    pub deep_sleeps: AtomicU64,
    pub retakes: AtomicU64,
    pub preempt_requests: AtomicU64,
    pub stall_reports: AtomicU64,
    pub stalls_resolved: AtomicU64,
    pub hook_overruns: AtomicU64,
    pub deadlocks: AtomicU64,
}

pub struct Monitor {
    sysmonlock: InnerMutex<Option<State>>,
    started: AtomicBool,
    quit: AtomicBool,
    deep: AtomicBool,
    /// While `deep`: when the deep sleep ends by itself (u64::MAX: never).
    deep_until: AtomicU64,
    wakes: AtomicU64,
    handle: ResettableMutex<Option<std::thread::JoinHandle<()>>>,
    pub stats: Stats,
    /// The most recent report (`rtc_sysmon_last_report`).
    last_report: InnerMutex<String>,
    /// Sticky: set by `rtc_shutdown` and at process exit (under `handle`);
    /// sysmon is not started again.
    closed: AtomicBool,
    /// Set by sysmon's thread when it returns (bounded waits at exit).
    finished: AtomicBool,
}

static MONITOR: std::sync::LazyLock<Monitor> = std::sync::LazyLock::new(|| Monitor {
    sysmonlock: InnerMutex::new(InnerRank::Sysmon, None),
    started: AtomicBool::new(false),
    quit: AtomicBool::new(false),
    deep: AtomicBool::new(false),
    deep_until: AtomicU64::new(u64::MAX),
    wakes: AtomicU64::new(0),
    handle: ResettableMutex::new(None),
    stats: Stats::default(),
    last_report: InnerMutex::new(InnerRank::LockReports, String::new()),
    closed: AtomicBool::new(false),
    finished: AtomicBool::new(false),
});

pub fn monitor() -> &'static Monitor {
    &MONITOR
}

/// Start sysmon if it is not running (first attach, or `rtc_init`).
pub fn ensure_started() {
    let m = monitor();
    if m.started.load(SeqCst) || m.closed.load(SeqCst) {
        return;
    }
    let mut h = m.handle.lock();
    if m.started.load(SeqCst) || m.closed.load(SeqCst) {
        return;
    }
    m.quit.store(false, SeqCst);
    m.finished.store(false, SeqCst);
    crate::base::fork::register();
    match std::thread::Builder::new()
        .name("rtcore-sysmon".into())
        .spawn(run)
    {
        Ok(j) => {
            *h = Some(j);
            m.started.store(true, SeqCst);
        }
        Err(e) => crate::diag::eprintln(&format!("rtcore: cannot start sysmon: {e}")),
    }
}

impl Monitor {
    pub fn is_running(&self) -> bool {
        self.started.load(SeqCst)
    }

    /// The most recent stall, overrun or resolved report ("" if none).
    pub fn last_report(&self) -> String {
        self.last_report.lock().clone()
    }
}

/// Run `f` holding `sysmonlock`: sysmon is between ticks meanwhile, so
/// none of its actions (and events) can interleave. The tracer's start and
/// stop take it after stopping the world (the seed's order); it is never
/// held across user code, so this waits at most one tick.
pub fn with_sysmonlock<R>(f: impl FnOnce() -> R) -> R {
    let _g = monitor().sysmonlock.lock();
    f()
}

/// At process exit: ask sysmon to stop and wait for it at most `limit`
/// (never join: the exit may come from anywhere).
pub fn stop_at_exit(limit: Duration) {
    let m = monitor();
    {
        let _h = m.handle.lock();
        m.closed.store(true, SeqCst);
    }
    if !m.started.load(SeqCst) {
        return;
    }
    m.quit.store(true, SeqCst);
    wake(m);
    let deadline = Instant::now() + limit;
    while !m.finished.load(SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Stop and join sysmon (`rtc_shutdown`).
pub fn stop_and_join() {
    let m = monitor();
    let j = {
        let mut h = m.handle.lock();
        m.closed.store(true, SeqCst);
        h.take()
    };
    if let Some(j) = j {
        m.quit.store(true, SeqCst);
        wake(m);
        let _ = j.join();
    }
    m.started.store(false, SeqCst);
}

/// Wake sysmon from a deep sleep (cheap otherwise).
#[inline]
pub fn kick() {
    let m = monitor();
    if m.deep.load(SeqCst) {
        wake(m);
    }
}

/// Wake sysmon from a deep sleep only if it would sleep past `deadline`
/// (ns on sysmon's clock): a new hook's earliest overrun, say.
pub fn kick_before(deadline: u64) {
    let m = monitor();
    if m.deep.load(SeqCst) && m.deep_until.load(SeqCst) > deadline {
        wake(m);
    }
}

fn wake(m: &Monitor) {
    m.wakes.fetch_add(1, SeqCst);
    // SAFETY: no callback.
    unsafe {
        parking_lot_core::unpark_all(key(m), parking_lot_core::DEFAULT_UNPARK_TOKEN);
    }
}

fn key(m: &Monitor) -> usize {
    &m.wakes as *const AtomicU64 as usize
}

fn now_ns(_m: &Monitor) -> u64 {
    crate::base::clock::now_ns()
}

/// Stall episodes open as the tracer sees them: (kind, key) with kind 1 a
/// thread (key: its id), 2 a lock (its address), 3 a hook run (its run
/// number). Changed only by sysmon under `sysmonlock`, with the events;
/// read by start under `sysmonlock` for the header's stall statuses. Its
/// own lock (rank `lockreports`) keeps it readable when the fault
/// injection skips `sysmonlock`.
static OPEN_STALLS: std::sync::LazyLock<InnerMutex<std::collections::BTreeSet<(u64, u64)>>> =
    std::sync::LazyLock::new(|| {
        InnerMutex::new(InnerRank::LockReports, std::collections::BTreeSet::new())
    });

/// The open stall episodes (for the trace header).
pub fn open_stalls() -> Vec<(u64, u64)> {
    OPEN_STALLS.lock().iter().copied().collect()
}

/// Make the published set of open episodes `now_open`, recording each
/// opening and resolution into the generation checked before the tick.
/// sysmonlock held. Returns how many opened.
fn publish_stalls(
    c: &crate::record::Checked,
    now_open: std::collections::BTreeSet<(u64, u64)>,
) -> usize {
    use crate::format::EventKind;
    use crate::record::A;
    type Keys = Vec<(u64, u64)>;
    let (opened, resolved): (Keys, Keys) = {
        let cur = OPEN_STALLS.lock();
        (
            now_open.difference(&cur).copied().collect(),
            cur.difference(&now_open).copied().collect(),
        )
    };
    if opened.is_empty() && resolved.is_empty() {
        return 0;
    }
    crate::record::fault::after_check(c);
    *OPEN_STALLS.lock() = now_open;
    for (kind, key) in resolved {
        crate::record::emit_checked(*c, EventKind::StallResolved, &[A::U(kind), A::U(key)]);
    }
    for &(kind, key) in &opened {
        crate::record::emit_checked(*c, EventKind::StallOpen, &[A::U(kind), A::U(key)]);
    }
    opened.len()
}

/// In a forked child: there is no sysmon thread. Forget it (and what it
/// was watching) so the first attach in the child starts a new one. Its
/// locks may have been held by threads that do not exist here: they are
/// reset, not waited for.
pub fn after_fork_child() {
    let m = monitor();
    // SAFETY: only the forking thread exists.
    unsafe { OPEN_STALLS.reset_after_fork() };
    OPEN_STALLS.lock().clear();
    m.started.store(false, SeqCst);
    m.deep.store(false, SeqCst);
    m.quit.store(false, SeqCst);
    let torn = m.sysmonlock.get_is_locked();
    // SAFETY: only the forking thread exists.
    unsafe {
        m.sysmonlock.reset_after_fork();
        m.last_report.reset_after_fork();
    }
    // SAFETY: in the child; its holder (if any) does not exist.
    unsafe { m.handle.reset_after_fork() };
    if let Some(j) = m.handle.lock().take() {
        // The thread does not exist here: never join it.
        crate::base::fork::keep_forever(j);
    }
    // Episodes, sightings and delays describe the parent's threads. If
    // sysmon was mid-tick at the fork they may be half-updated: kept, not
    // dropped.
    let old = m.sysmonlock.lock().take();
    if torn {
        crate::base::fork::keep_forever(old);
    }
}

fn run() {
    let m = monitor();
    struct Finished;
    impl Drop for Finished {
        fn drop(&mut self) {
            monitor().finished.store(true, SeqCst);
        }
    }
    let _finished = Finished;
    let world = crate::world::world();
    let mut next_sleep = Sleep::For(policy::TICK_NS);
    // Set after a deep sleep: the next tick starts from the base delay.
    let mut reset_delay = false;
    // Hooks added before the last tick (see the deep-sleep re-check).
    let mut seen_adds = 0;
    loop {
        // Sleep, outside sysmonlock.
        let seen_wakes = m.wakes.load(SeqCst);
        match next_sleep {
            Sleep::For(ns) => park(m, seen_wakes, Some(Duration::from_nanos(ns))),
            Sleep::Deep { until } => {
                m.deep_until.store(until.unwrap_or(u64::MAX), SeqCst);
                m.deep.store(true, SeqCst);
                m.stats.deep_sleeps.fetch_add(1, SeqCst);
                // Re-check after announcing deep sleep: a kick may have
                // come just before.
                let obs = world.observe();
                let busy = obs
                    .procs
                    .iter()
                    .any(|p| matches!(pstate(p.word), P_RUNNING | P_SYSCALL));
                // A hook added after the tick was not in its deadline: tick
                // again first (adds are rare).
                let added = super::hooks::hooks().adds() != seen_adds;
                if (!busy || obs.stop_pending) && !added {
                    let d = until.map(|u| Duration::from_nanos(u.saturating_sub(now_ns(m)).max(1)));
                    park(m, seen_wakes, d.or(Some(Duration::from_secs(1))));
                }
                m.deep.store(false, SeqCst);
                // Woken (or the deadline came): start again at the base tick,
                // as Go's sysmon does, so a thread waiting for a P is served
                // within microseconds rather than after a backed-off delay.
                reset_delay = true;
            }
        }
        if m.quit.load(SeqCst) {
            return;
        }
        // One tick, all of it under sysmonlock.
        let mut g = m.sysmonlock.lock();
        let st = g.get_or_insert_with(|| State {
            delay: Delay::default(),
            seen_p: Vec::new(),
            seen_run: Vec::new(),
            stalls: Stalls::default(),
            deadlocks: super::deadlock::Detector::default(),
            next_schedtrace: 0,
            obs: crate::world::Observation::default(),
        });
        // `now` is read after taking the lock and every deadline below is
        // derived from it this tick, so however long the lock took, no
        // decision uses a stale time.
        let now = now_ns(m);
        // First in the tick, before any of sysmon's checks: a rollover
        // publishes a new generation, and every check below must read it.
        let hook_deadline = tick_hook(now);
        seen_adds = super::hooks::hooks().adds();
        if std::mem::take(&mut reset_delay) {
            st.delay = Delay::default();
        }
        m.stats.ticks.fetch_add(1, SeqCst);
        let mut obs = std::mem::take(&mut st.obs);
        world.observe_into(&mut obs);
        let mut did_work = false;
        if st.seen_p.len() < obs.procs.len() {
            st.seen_p.resize(obs.procs.len(), None);
            st.seen_run.resize(obs.procs.len(), None);
        }
        let mut busy = 0;
        for p in &obs.procs {
            let state = pstate(p.word);
            if matches!(state, P_RUNNING | P_SYSCALL) {
                busy += 1;
            }
            // Retake: SYSCALL too long (same word, same owner safepoints).
            if state == P_SYSCALL {
                let value = p.word ^ p.owner_safepoints.rotate_left(32);
                let seen = policy::observe(st.seen_p[p.index], value, now);
                st.seen_p[p.index] = Some(seen);
                if !obs.stop_pending
                    && policy::should_retake(seen.since, now, policy::TICK_NS, obs.runnable_waiting)
                    && {
                        // Trace: check, retake, `P steal` in one
                        // sysmonlock section (the retake records it).
                        let c = crate::record::check();
                        crate::record::fault::after_check(&c);
                        world.retake(p.index, p.word, c)
                    }
                {
                    m.stats.retakes.fetch_add(1, SeqCst);
                    st.seen_p[p.index] = None;
                    did_work = true;
                }
            } else {
                st.seen_p[p.index] = None;
            }
            // Preemption: RUNNING 10 ms without a safepoint.
            if state != P_RUNNING {
                st.seen_run[p.index] = None;
            }
            if state == P_RUNNING {
                let owner = powner(p.word);
                let before = st.seen_run[p.index]
                    .filter(|(who, _)| *who == owner)
                    .map(|(_, seen)| seen);
                let seen = policy::observe(before, p.owner_safepoints, now);
                st.seen_run[p.index] = Some((owner, seen));
                if policy::should_preempt(seen.since, now, p.preempt_pending) {
                    // Trace: check, request, event in one sysmonlock
                    // section.
                    let c = crate::record::check();
                    crate::record::fault::after_check(&c);
                    let asked = p
                        .owner_view
                        .and_then(|k| world.request_preemption(&obs.threads[k].rec));
                    if let Some((n, seq)) = asked {
                        crate::record::emit_checked(
                            c,
                            crate::format::EventKind::PreemptRequest,
                            &[
                                crate::record::A::U(owner),
                                crate::record::A::U(n),
                                crate::record::A::U(seq),
                            ],
                        );
                        // Not counted as work for the delay (as in Go's
                        // retake: only Ps taken back are).
                        m.stats.preempt_requests.fetch_add(1, SeqCst);
                    }
                }
            }
        }
        // Stalls and hook overruns.
        let c = crate::record::check();
        let mut out = st.stalls.tick(&obs, now);
        if publish_stalls(&c, st.stalls.open_set()) > 0 {
            // An episode opened: a flight recorder dumps on it.
            if let Some(note) = crate::base::incident::raise(crate::base::incident::Cause::Stall) {
                out.reports.push(format!("rtcore: sysmon: {note}"));
            }
        }
        m.stats.stall_reports.fetch_add(out.stall_reports, SeqCst);
        m.stats.stalls_resolved.fetch_add(out.resolved, SeqCst);
        m.stats.hook_overruns.fetch_add(out.hook_overruns, SeqCst);
        if let Some(last) = out.reports.last() {
            *m.last_report.lock() = last.clone();
        }
        // Printed after the tick: a slow stderr must never hold sysmonlock.
        let mut to_print = out.reports;
        let mut deadline = out.next_deadline;
        // Deadlocks: searched while threads are parked on rtcore locks.
        let mut found = st.deadlocks.tick(now);
        for r in &mut found.reports {
            // A flight recorder dumps on it (queued; written elsewhere).
            if let Some(note) = crate::base::incident::raise(crate::base::incident::Cause::Deadlock)
            {
                r.push_str(&format!("; {note}"));
            }
        }
        if !found.reports.is_empty() {
            m.stats
                .deadlocks
                .fetch_add(found.reports.len() as u64, SeqCst);
            if let Some(last) = found.reports.last() {
                *m.last_report.lock() = last.clone();
            }
            to_print.extend(found.reports);
        }
        for d in [found.next_deadline, hook_deadline].into_iter().flatten() {
            deadline = Some(deadline.map_or(d, |x| x.min(d)));
        }
        // schedtrace.
        let period = settings::get(Setting::Schedtrace);
        if period == 0 {
            st.next_schedtrace = 0;
        } else {
            if st.next_schedtrace == 0 || st.next_schedtrace > now.saturating_add(period) {
                st.next_schedtrace = now.saturating_add(period);
            }
            if now >= st.next_schedtrace {
                to_print.push(schedtrace_line(m, now, st.delay.delay_ns));
                st.next_schedtrace = now.saturating_add(period);
            }
            deadline = Some(deadline.map_or(st.next_schedtrace, |d| d.min(st.next_schedtrace)));
        }
        let delay = st.delay.after_tick(did_work);
        m.stats.delay_ns.store(delay, SeqCst);
        next_sleep = policy::sleep_plan(busy, obs.stop_pending, delay, deadline);
        st.obs = obs;
        drop(g);
        if PRINT_REPORTS.load(SeqCst) {
            for line in &to_print {
                crate::diag::eprintln(line);
            }
        }
    }
}

/// Work a layer above sysmon does in its tick, under `sysmonlock` (the
/// tracer's rollovers): given sysmon's `now`, it returns when it next wants
/// a tick. Registered once at start.
pub type TickHook = fn(now: u64) -> Option<u64>;

static TICK_HOOK: std::sync::atomic::AtomicPtr<()> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

pub fn register_tick_hook(f: TickHook) {
    TICK_HOOK.store(f as *mut (), SeqCst);
}

fn tick_hook(now: u64) -> Option<u64> {
    let p = TICK_HOOK.load(SeqCst);
    if p.is_null() {
        return None;
    }
    // SAFETY: only `TickHook`s are stored.
    let f = unsafe { std::mem::transmute::<*mut (), TickHook>(p) };
    f(now)
}

/// Whether sysmon prints its reports on stderr (they are still counted,
/// kept for `rtc_sysmon_last_report` and traced). The `rtcore stress` tool
/// turns printing off: with its 100 µs thresholds they would flood the
/// terminal.
static PRINT_REPORTS: AtomicBool = AtomicBool::new(true);

pub fn set_print_reports(on: bool) {
    PRINT_REPORTS.store(on, SeqCst);
}

/// One `RTCORE_DEBUG=schedtrace=MS` line, like Go's `schedtrace`.
fn schedtrace_line(m: &Monitor, now: u64, delay_ns: u64) -> String {
    let c = crate::world::world().census();
    format!(
        "rtcore: SCHED {}ms: procs={} idle={} running={} syscall={} stopped={} threads={} running={} runnable={} blocking={} waiting={} stw={} sysmon: delay={}us ticks={} retakes={} preempts={} stalls={} hooks={}",
        now / 1_000_000,
        c.procs,
        c.p_idle,
        c.p_running,
        c.p_syscall,
        c.p_stopped,
        c.running + c.runnable + c.blocking + c.waiting,
        c.running,
        c.runnable,
        c.blocking,
        c.waiting,
        c.stopped as u8,
        delay_ns / 1000,
        m.stats.ticks.load(SeqCst),
        m.stats.retakes.load(SeqCst),
        m.stats.preempt_requests.load(SeqCst),
        m.stats.stall_reports.load(SeqCst),
        super::hooks::hooks().count(),
    )
}

fn park(m: &Monitor, seen_wakes: u64, d: Option<Duration>) {
    // A deadline too far to represent means none.
    let deadline = d.and_then(|d| Instant::now().checked_add(d));
    // SAFETY: the validate callback only reads an atomic.
    unsafe {
        crate::base::parked::park(
            key(m),
            || m.wakes.load(SeqCst) == seen_wakes && !m.quit.load(SeqCst),
            deadline,
        );
    }
}
