//! The sysmon thread: outside the world (no P, never stopped), it runs no
//! user code. Each tick runs entirely under `sysmonlock` (an inner lock of
//! rank `sysmon`, taken with nothing else held); sleeping is outside it.
//! After taking the lock it refreshes `now`. Per tick: retake Ps that sat in
//! SYSCALL too long, and ask threads RUNNING 10 ms without a safepoint to
//! reach one (numbered requests). Deep sleep when no P is busy or a stop is
//! pending, woken by attach, blocking-region edges and the start of the
//! world (`kick`).
//!
//! Invariants:
//! - Each action (a retake, a preemption request) and, later, its trace
//!   event happen inside one `sysmonlock` section. (The tracer issue adds
//!   the events at the places marked TRACE-EVENT.)
//! - `kick` costs one load unless sysmon is in deep sleep.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use super::policy::{self, Delay, Seen, Sleep};
use crate::lock::inner::{InnerMutex, InnerRank};
use crate::world::handshake::{P_RUNNING, P_SYSCALL, powner, pstate};

struct State {
    delay: Delay,
    /// Per P: (word, owner's safepoints) as first seen.
    seen_p: Vec<Option<Seen>>,
    /// Per thread id: safepoint count as first seen while RUNNING.
    seen_run: HashMap<u64, Seen>,
}

/// sysmon's counters (also `rtc_sysmon_stats`).
#[derive(Default)]
pub struct Stats {
    pub ticks: AtomicU64,
    pub delay_ns: AtomicU64,
    pub deep_sleeps: AtomicU64,
    pub retakes: AtomicU64,
    pub preempt_requests: AtomicU64,
}

pub struct Monitor {
    sysmonlock: InnerMutex<Option<State>>,
    started: AtomicBool,
    quit: AtomicBool,
    deep: AtomicBool,
    wakes: AtomicU64,
    handle: parking_lot::Mutex<Option<std::thread::JoinHandle<()>>>,
    pub stats: Stats,
    epoch: Instant,
}

static MONITOR: std::sync::LazyLock<Monitor> = std::sync::LazyLock::new(|| Monitor {
    sysmonlock: InnerMutex::new(InnerRank::Sysmon, None),
    started: AtomicBool::new(false),
    quit: AtomicBool::new(false),
    deep: AtomicBool::new(false),
    wakes: AtomicU64::new(0),
    handle: parking_lot::Mutex::new(None),
    stats: Stats::default(),
    epoch: Instant::now(),
});

pub fn monitor() -> &'static Monitor {
    &MONITOR
}

/// Start sysmon if it is not running (first attach, or `rtc_init`).
pub fn ensure_started() {
    let m = monitor();
    if m.started.load(SeqCst) {
        return;
    }
    let mut h = m.handle.lock();
    if m.started.load(SeqCst) {
        return;
    }
    m.quit.store(false, SeqCst);
    register_fork_handler();
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
}

/// Stop and join sysmon (`rtc_shutdown`).
pub fn stop_and_join() {
    let m = monitor();
    let j = m.handle.lock().take();
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

fn now_ns(m: &Monitor) -> u64 {
    m.epoch.elapsed().as_nanos() as u64
}

/// After fork the child has no sysmon thread: forget it so first use in the
/// child starts a new one. (The prepare handler takes no lock.)
fn register_fork_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        extern "C" fn child() {
            let m = monitor();
            m.started.store(false, SeqCst);
            m.deep.store(false, SeqCst);
            // The thread does not exist here: never join it.
            if let Some(mut h) = m.handle.try_lock() {
                if let Some(j) = h.take() {
                    std::mem::forget(j);
                }
            }
        }
        // SAFETY: registering a plain function.
        unsafe {
            libc::pthread_atfork(None, None, Some(child));
        }
    });
}

fn run() {
    let m = monitor();
    let world = crate::world::world();
    let mut next_sleep = Sleep::For(policy::TICK_NS);
    loop {
        // Sleep, outside sysmonlock.
        let seen_wakes = m.wakes.load(SeqCst);
        match next_sleep {
            Sleep::For(ns) => park(m, seen_wakes, Some(Duration::from_nanos(ns))),
            Sleep::Deep { until } => {
                m.deep.store(true, SeqCst);
                m.stats.deep_sleeps.fetch_add(1, SeqCst);
                // Re-check after announcing deep sleep: a kick may have
                // come just before.
                let obs = world.observe();
                let busy = obs
                    .procs
                    .iter()
                    .any(|p| matches!(pstate(p.word), P_RUNNING | P_SYSCALL));
                if !busy || obs.stop_pending {
                    let d = until.map(|u| Duration::from_nanos(u.saturating_sub(now_ns(m))));
                    park(m, seen_wakes, d.or(Some(Duration::from_secs(1))));
                }
                m.deep.store(false, SeqCst);
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
            seen_run: HashMap::new(),
        });
        let now = now_ns(m);
        m.stats.ticks.fetch_add(1, SeqCst);
        let obs = world.observe();
        let mut did_work = false;
        if st.seen_p.len() < obs.procs.len() {
            st.seen_p.resize(obs.procs.len(), None);
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
                    && world.retake(p.index, p.word)
                {
                    // TRACE-EVENT: P steal (P, seq, victim) here.
                    m.stats.retakes.fetch_add(1, SeqCst);
                    st.seen_p[p.index] = None;
                    did_work = true;
                }
            } else {
                st.seen_p[p.index] = None;
            }
            // Preemption: RUNNING 10 ms without a safepoint.
            if state == P_RUNNING {
                let owner = powner(p.word);
                let seen =
                    policy::observe(st.seen_run.get(&owner).copied(), p.owner_safepoints, now);
                st.seen_run.insert(owner, seen);
                if policy::should_preempt(seen.since, now, p.preempt_pending) {
                    if let Some(_n) = world.request_preemption(owner) {
                        // TRACE-EVENT: preempt request (T, n) here.
                        m.stats.preempt_requests.fetch_add(1, SeqCst);
                        did_work = true;
                    }
                }
            }
        }
        // Forget threads no longer RUNNING on any P.
        st.seen_run.retain(|id, _| {
            obs.procs
                .iter()
                .any(|p| pstate(p.word) == P_RUNNING && powner(p.word) == *id)
        });
        let delay = st.delay.after_tick(did_work);
        m.stats.delay_ns.store(delay, SeqCst);
        next_sleep = policy::sleep_plan(busy, obs.stop_pending, delay, None);
        drop(g);
    }
}

fn park(m: &Monitor, seen_wakes: u64, d: Option<Duration>) {
    let deadline = d.map(|d| Instant::now() + d);
    // SAFETY: the validate callback only reads an atomic.
    unsafe {
        parking_lot_core::park(
            key(m),
            || m.wakes.load(SeqCst) == seen_wakes && !m.quit.load(SeqCst),
            || {},
            |_, _| {},
            parking_lot_core::DEFAULT_PARK_TOKEN,
            deadline,
        );
    }
}
