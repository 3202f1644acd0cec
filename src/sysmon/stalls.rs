//! Stall reports, made by sysmon under `sysmonlock` once per tick:
//! - a thread BLOCKING or WAITING past the thread-stall threshold;
//! - a mutex held past the lock-stall threshold by the same holder, with no
//!   new acquisition, while an attached thread waits for it;
//! - a hook run past its budget.
//!
//! Each is an episode (policy::stall_step): reported when it opens,
//! reminded with doubling back-off, and closed with a "resolved after N ms"
//! report. sysmon never reads a clock on anyone else's path: a condition is
//! dated from the first tick that saw its current value (a thread's state
//! change counter, a mutex's acquisition counter and holder, a hook's run
//! number), so a stall is reported at most one tick late.
//!
//! Invariants:
//! - A waiting thread's published `Detail` (its wait target) is read only
//!   under that thread's detail lock; the thread clears it under the same
//!   lock before its lock call returns, so a mutex named there is alive
//!   while sysmon samples it.
//! - Nothing here waits on user code: the detail locks and the hook registry
//!   are inner locks never held across user code.

use crate::format::StallKind;
use std::collections::{HashMap, HashSet};

use super::hooks;
use super::policy::{self, Episode, Seen, StallAction};
use super::settings::{self, Setting};
use crate::base::wait::Target;
use crate::lock::mutex::{MutexRef, MutexSnapshot, rtc_mutex};
use crate::world::{Observation, TState, ThreadRec};

/// One condition being watched.
struct Track {
    seen: Seen,
    episode: Option<Episode>,
    /// What the resolved report names.
    label: String,
}

#[derive(Default)]
pub struct Stalls {
    threads: HashMap<u64, Track>,
    locks: HashMap<usize, Track>,
    /// Keyed by the run number.
    hook: Option<(u64, Track)>,
}

/// What a tick found to say and count.
#[derive(Default)]
pub struct Outcome {
    pub reports: Vec<String>,
    /// Reports of open stalls (first reports and reminders).
    pub stall_reports: u64,
    pub resolved: u64,
    pub hook_overruns: u64,
    /// When the next report could be due (for the deep-sleep cap).
    pub next_deadline: Option<u64>,
}

pub fn ms(ns: u64) -> String {
    if ns >= 10_000_000_000 {
        format!("{:.1} s", ns as f64 / 1e9)
    } else {
        format!("{} ms", ns / 1_000_000)
    }
}

/// A wait target, copied under the waiter's detail lock (no other lock
/// may be taken there) and described after.
enum TargetCopy {
    Nothing,
    Mutex(MutexSnapshot),
    Cond(usize),
    Hook(u64),
}

fn copy_target(t: Target) -> TargetCopy {
    match t {
        Target::Nothing => TargetCopy::Nothing,
        Target::Mutex(addr) => {
            // SAFETY: the waiter is inside a lock call on this mutex (it
            // published the target and has not cleared it; our caller holds
            // its detail lock), so the mutex is alive.
            TargetCopy::Mutex(unsafe { MutexRef::new(addr as *mut rtc_mutex) }.snapshot())
        }
        Target::RwLock(addr) => {
            // SAFETY: as for a mutex; the name and rank fields are laid out
            // alike (`MutexRef::rwlock_fields`).
            TargetCopy::Mutex(
                unsafe { MutexRef::rwlock_fields(addr as *mut crate::lock::rwlock::rtc_rwlock) }
                    .snapshot(),
            )
        }
        Target::Cond(addr) => TargetCopy::Cond(addr),
        Target::Hook(id) => TargetCopy::Hook(id),
    }
}

fn describe_target(t: &TargetCopy) -> String {
    match t {
        TargetCopy::Nothing => "something inside rtcore".to_string(),
        TargetCopy::Mutex(m) => m.describe(),
        TargetCopy::Cond(addr) => format!("condition variable at {addr:#x}"),
        TargetCopy::Hook(id) => format!("hook {id} to finish its run"),
    }
}

/// "BLOCKING for 52 ms in 'read'; it holds 'db' (rank db) locked at
/// kv.c:4" (`how_long` follows the state when given).
fn state_phrase(rec: &ThreadRec, state: TState, how_long: Option<&str>) -> String {
    let (reason, target, holds) = rec.with_detail(|d| {
        (
            d.reason.clone(),
            d.waiting_for.map(copy_target),
            d.holds.clone(),
        )
    });
    let mut s = state.name().to_string();
    if let Some(d) = how_long {
        s.push_str(&format!(" for {d}"));
    }
    if let Some(r) = reason {
        s.push_str(&format!(" in '{r}'"));
    }
    if let Some(t) = target {
        s.push_str(&format!(" for {}", describe_target(&t)));
    }
    if holds.is_empty() {
        if state == TState::Running {
            s.push_str(" (a running thread's locks are published only while it blocks or waits)");
        } else {
            s.push_str("; it holds no rtcore locks");
        }
    } else {
        s.push_str(&format!("; it holds {}", holds.join(", ")));
    }
    s
}

/// Advance `track` for a condition that holds with `value`, or closes.
/// Returns the action, resolving first when the value changed under an
/// open episode (a new episode then starts from this tick).
fn step(
    track: &mut Track,
    value: u64,
    now: u64,
    threshold: u64,
    out: &mut Outcome,
    resolved_text: &dyn Fn(u64) -> String,
) -> StallAction {
    if track.seen.value != value {
        if let Some(e) = track.episode.take() {
            out.resolved += 1;
            out.reports
                .push(resolved_text(now.saturating_sub(e.opened_at)));
        }
    }
    track.seen = policy::observe(Some(track.seen), value, now);
    let a = policy::stall_step(&mut track.episode, Some(track.seen.since), now, threshold);
    let due = match &track.episode {
        Some(e) => e.next_report,
        None => track.seen.since.saturating_add(threshold),
    };
    out.next_deadline = Some(out.next_deadline.map_or(due, |d| d.min(due)));
    a
}

fn close(track: Track, now: u64, out: &mut Outcome) {
    if let Some(e) = track.episode {
        out.resolved += 1;
        out.reports.push(format!(
            "rtcore: sysmon: {} resolved after {}",
            track.label,
            ms(now.saturating_sub(e.opened_at))
        ));
    }
}

impl Stalls {
    /// One tick's stall work. `obs` was taken under `sysmonlock` this tick.
    pub fn tick(&mut self, obs: &Observation, now: u64) -> Outcome {
        let mut out = Outcome::default();
        self.threads_tick(obs, now, &mut out);
        self.locks_tick(obs, now, &mut out);
        self.hook_tick(now, &mut out);
        out
    }

    fn threads_tick(&mut self, obs: &Observation, now: u64, out: &mut Outcome) {
        let th = settings::get(Setting::ThreadStall);
        let mut present = HashSet::new();
        if th > 0 {
            for t in &obs.threads {
                if !matches!(t.state, TState::Blocking | TState::Waiting) {
                    continue;
                }
                let id = t.rec.id;
                present.insert(id);
                // Text is made only when a report needs it: a tick with
                // thousands of blocked threads allocates nothing for them.
                let track = self.threads.entry(id).or_insert_with(|| Track {
                    seen: Seen {
                        value: t.changes,
                        since: now,
                    },
                    episode: None,
                    label: format!("stall of {}", t.rec.describe()),
                });
                let resolved = |after| {
                    format!(
                        "rtcore: sysmon: stall of {} resolved after {}",
                        t.rec.describe(),
                        ms(after)
                    )
                };
                match step(track, t.changes, now, th, out, &resolved) {
                    StallAction::Report {
                        stalled_for,
                        reminder,
                    } => {
                        out.stall_reports += 1;
                        let how_long = ms(stalled_for);
                        out.reports.push(format!(
                            "rtcore: sysmon: {} has been {}{}",
                            t.rec.describe(),
                            state_phrase(&t.rec, t.state, Some(&how_long)),
                            if reminder { " (still stalled)" } else { "" }
                        ));
                    }
                    StallAction::Resolved { .. } | StallAction::None => {}
                }
            }
        }
        let gone: Vec<u64> = self
            .threads
            .keys()
            .filter(|id| !present.contains(id))
            .copied()
            .collect();
        for id in gone {
            if let Some(t) = self.threads.remove(&id) {
                close(t, now, out);
            }
        }
    }

    fn locks_tick(&mut self, obs: &Observation, now: u64, out: &mut Outcome) {
        let th = settings::get(Setting::LockStall);
        // Locks that attached threads wait for: sampled under each waiter's
        // detail lock (the mutex is alive while the waiter publishes it).
        struct Sample {
            acq: u64,
            owner: u64,
            snap: MutexSnapshot,
            waiters: Vec<String>,
        }
        let mut sampled: HashMap<usize, Sample> = HashMap::new();
        if th > 0 {
            for t in obs.threads.iter().filter(|t| t.state == TState::Waiting) {
                t.rec.with_detail(|d| {
                    if let Some(Target::Mutex(addr)) = d.waiting_for {
                        let e = sampled.entry(addr).or_insert_with(|| {
                            // SAFETY: see the module's invariants.
                            let m = unsafe { MutexRef::new(addr as *mut rtc_mutex) };
                            let (acq, owner) = m.sample();
                            Sample {
                                acq,
                                owner,
                                snap: m.snapshot(),
                                waiters: Vec::new(),
                            }
                        });
                        e.waiters.push(t.rec.describe());
                    }
                });
            }
        }
        for (addr, s) in &sampled {
            if s.owner == 0 {
                continue; // free at this instant: a waiter is about to take it
            }
            let desc = s.snap.describe();
            let label = format!("stall of {desc}");
            let track = self.locks.entry(*addr).or_insert_with(|| Track {
                seen: Seen {
                    value: s.acq ^ s.owner.rotate_left(32),
                    since: now,
                },
                episode: None,
                label: label.clone(),
            });
            let resolved = |after| format!("rtcore: sysmon: {label} resolved after {}", ms(after));
            let value = s.acq ^ s.owner.rotate_left(32);
            if let StallAction::Report {
                stalled_for,
                reminder,
            } = step(track, value, now, th, out, &resolved)
            {
                out.stall_reports += 1;
                let holder = match obs.threads.iter().find(|t| t.rec.id == s.owner) {
                    Some(h) => format!(
                        "{}, which is {}",
                        h.rec.describe(),
                        state_phrase(&h.rec, h.state, None)
                    ),
                    None => format!("thread {} (not attached: its state is unknown)", s.owner),
                };
                out.reports.push(format!(
                    "rtcore: sysmon: {} has been held for {}{} by {}; waiting for it: {}",
                    desc,
                    ms(stalled_for),
                    if reminder { " (still held)" } else { "" },
                    holder,
                    s.waiters.join(", ")
                ));
            }
        }
        let gone: Vec<usize> = self
            .locks
            .keys()
            .filter(|a| sampled.get(a).is_none_or(|s| s.owner == 0))
            .copied()
            .collect();
        for a in gone {
            if let Some(t) = self.locks.remove(&a) {
                close(t, now, out);
            }
        }
    }

    fn hook_tick(&mut self, now: u64, out: &mut Outcome) {
        let budget = settings::get(Setting::HookBudget);
        let run = if budget > 0 {
            hooks::hooks().current_run()
        } else {
            None
        };
        // A different run (or none): the previous episode is over.
        if let Some((seq, _)) = &self.hook {
            if run.as_ref().is_none_or(|r| r.seq != *seq) {
                let (_, t) = self.hook.take().expect("checked");
                if let Some(e) = t.episode {
                    out.resolved += 1;
                    out.reports.push(format!(
                        "rtcore: sysmon: {} returned after {}",
                        t.label,
                        ms(now.saturating_sub(e.opened_at))
                    ));
                }
            }
        }
        // Cap sysmon's deep sleep at the earliest possible overrun.
        if let Some(due) = hooks::hooks().overrun_deadline(budget, now) {
            out.next_deadline = Some(out.next_deadline.map_or(due, |d| d.min(due)));
        }
        let Some(r) = run else { return };
        let (_, track) = self.hook.get_or_insert_with(|| {
            (
                r.seq,
                Track {
                    seen: Seen {
                        value: r.seq,
                        since: r.started,
                    },
                    episode: None,
                    label: format!("hook '{}' (id {})", r.name, r.id),
                },
            )
        });
        let a = policy::stall_step(&mut track.episode, Some(r.started), now, budget);
        let due = track
            .episode
            .map_or(r.started.saturating_add(budget), |e| e.next_report);
        out.next_deadline = Some(out.next_deadline.map_or(due, |d| d.min(due)));
        if let StallAction::Report {
            stalled_for,
            reminder,
        } = a
        {
            if !reminder {
                out.hook_overruns += 1;
            }
            out.reports.push(format!(
                "rtcore: sysmon: {} has been running for {}, over its budget of {}{} (hook thread, tid {})",
                track.label,
                ms(stalled_for),
                ms(budget),
                if reminder { "; still running" } else { "" },
                r.tid
            ));
        }
    }

    /// The open episodes as (kind, key): 1 thread id, 2 lock address,
    /// 3 hook run number (see monitor::OPEN_STALLS).
    pub fn open_set(&self) -> std::collections::BTreeSet<(u64, u64)> {
        let mut s = std::collections::BTreeSet::new();
        for (id, t) in &self.threads {
            if t.episode.is_some() {
                s.insert((StallKind::Thread as u64, *id));
            }
        }
        for (addr, t) in &self.locks {
            if t.episode.is_some() {
                s.insert((StallKind::Lock as u64, *addr as u64));
            }
        }
        if let Some((seq, t)) = &self.hook {
            if t.episode.is_some() {
                s.insert((StallKind::Hook as u64, *seq));
            }
        }
        s
    }

    /// Forget everything (after fork: none of it exists in the child).
    pub fn clear(&mut self) {
        *self = Stalls::default();
    }
}
