//! sysmon's schedule and deadline rules as pure functions of an injected
//! clock (nanoseconds), so they are tested exactly (DESIGN.md, "sysmon and
//! hooks"). The sysmon loop feeds them what it observes; nothing here reads
//! a clock or touches the world.
//!
//! sysmon never reads a clock on the fast paths of other threads: it
//! notices that something has not changed between two of its own
//! observations (a P still SYSCALL with the same owner and sequence, a
//! thread's safepoint counter unchanged) and dates the episode from the
//! first observation.

/// The base tick.
pub const TICK_NS: u64 = 20_000;
/// Idle ticks after which the delay starts doubling.
pub const IDLE_TICKS_BEFORE_BACKOFF: u32 = 50;
/// The longest delay between ticks.
pub const MAX_DELAY_NS: u64 = 10_000_000;
/// A P in SYSCALL this long is retaken even if nobody waits for it.
pub const FORCE_RETAKE_NS: u64 = 10_000_000;
/// A thread RUNNING this long without a safepoint gets a preemption request.
pub const PREEMPT_AFTER_NS: u64 = 10_000_000;
/// After taking `sysmonlock`, a wait longer than this makes sysmon
/// recompute its deadlines.
pub const RECOMPUTE_AFTER_WAIT_NS: u64 = 50_000;

/// The delay between ticks: 20 µs while there is work; after 50 idle ticks
/// it doubles each idle tick, up to 10 ms; any work resets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delay {
    pub idle_ticks: u32,
    pub delay_ns: u64,
}

impl Default for Delay {
    fn default() -> Self {
        Delay {
            idle_ticks: 0,
            delay_ns: TICK_NS,
        }
    }
}

impl Delay {
    /// Account for a finished tick; returns the next delay.
    pub fn after_tick(&mut self, did_work: bool) -> u64 {
        if did_work {
            self.idle_ticks = 0;
            self.delay_ns = TICK_NS;
        } else {
            self.idle_ticks = self.idle_ticks.saturating_add(1);
            if self.idle_ticks > IDLE_TICKS_BEFORE_BACKOFF {
                self.delay_ns = (self.delay_ns * 2).min(MAX_DELAY_NS);
            }
        }
        self.delay_ns
    }
}

/// How sysmon sleeps after a tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sleep {
    /// An ordinary delay.
    For(u64),
    /// Deep sleep until woken (attach, blocking-region edges, world start),
    /// or until the deadline if one is given.
    Deep { until: Option<u64> },
}

/// Deep sleep when no P is RUNNING or SYSCALL, or a stop is pending;
/// capped at the earliest stall deadline. Otherwise the delay.
pub fn sleep_plan(
    busy_procs: usize,
    stop_pending: bool,
    delay_ns: u64,
    earliest_deadline: Option<u64>,
) -> Sleep {
    if busy_procs == 0 || stop_pending {
        Sleep::Deep {
            until: earliest_deadline,
        }
    } else {
        Sleep::For(delay_ns)
    }
}

/// What sysmon remembers about one P or thread between observations: the
/// value it saw and when it first saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    pub value: u64,
    pub since: u64,
}

/// Observe `value` at `now`: unchanged keeps the first time, changed starts
/// again. (For a P: its word and syscall sequence folded into `value`; for
/// a thread: its safepoint counter.)
pub fn observe(prev: Option<Seen>, value: u64, now: u64) -> Seen {
    match prev {
        Some(p) if p.value == value => p,
        _ => Seen { value, since: now },
    }
}

/// Go's rule: retake a P that has been in SYSCALL for more than one tick
/// when a thread waits for a P, or for 10 ms in any case.
pub fn should_retake(seen_since: u64, now: u64, tick_ns: u64, runnable_waiting: bool) -> bool {
    let held = now.saturating_sub(seen_since);
    (runnable_waiting && held > tick_ns) || held >= FORCE_RETAKE_NS
}

/// Request preemption of a thread RUNNING 10 ms without a safepoint, once
/// per episode (`pending`: a request is outstanding, not yet acknowledged).
pub fn should_preempt(seen_since: u64, now: u64, pending: bool) -> bool {
    !pending && now.saturating_sub(seen_since) >= PREEMPT_AFTER_NS
}

/// One stall episode (a thread BLOCKING or WAITING, or a lock held, past
/// a threshold): reported when it opens, reminded with doubling back-off,
/// and followed by a "resolved" report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Episode {
    pub opened_at: u64,
    /// When the next reminder is due.
    pub next_report: u64,
    /// The current back-off interval.
    pub backoff: u64,
    pub reports: u32,
}

/// What to say about a stall at this observation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StallAction {
    None,
    /// Report the stall (the first time, or a reminder).
    Report {
        stalled_for: u64,
        reminder: bool,
    },
    /// The episode ended.
    Resolved {
        after: u64,
    },
}

/// Advance a stall episode. `stalled_since`: when the condition was first
/// seen (None: the condition no longer holds).
pub fn stall_step(
    episode: &mut Option<Episode>,
    stalled_since: Option<u64>,
    now: u64,
    threshold: u64,
) -> StallAction {
    match (stalled_since, episode.as_mut()) {
        (None, None) => StallAction::None,
        (None, Some(e)) => {
            let after = now.saturating_sub(e.opened_at);
            *episode = None;
            StallAction::Resolved { after }
        }
        (Some(since), None) => {
            let stalled_for = now.saturating_sub(since);
            if stalled_for >= threshold {
                *episode = Some(Episode {
                    opened_at: since,
                    next_report: now.saturating_add(threshold.saturating_mul(2)),
                    backoff: threshold.saturating_mul(2),
                    reports: 1,
                });
                StallAction::Report {
                    stalled_for,
                    reminder: false,
                }
            } else {
                StallAction::None
            }
        }
        (Some(_), Some(e)) => {
            if now >= e.next_report {
                e.backoff = e.backoff.saturating_mul(2);
                e.next_report = now.saturating_add(e.backoff);
                e.reports += 1;
                StallAction::Report {
                    stalled_for: now.saturating_sub(e.opened_at),
                    reminder: true,
                }
            } else {
                StallAction::None
            }
        }
    }
}

/// When the next stall report could be due, for the deep-sleep cap: the
/// earliest of episode reminders and of thresholds being crossed.
pub fn earliest_deadline(
    open: impl IntoIterator<Item = u64>,
    pending_since: impl IntoIterator<Item = u64>,
    threshold: u64,
) -> Option<u64> {
    open.into_iter()
        .chain(
            pending_since
                .into_iter()
                .map(|s| s.saturating_add(threshold)),
        )
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_after_fifty_idle_ticks_up_to_ten_ms_and_work_resets_it() {
        let mut d = Delay::default();
        for _ in 0..50 {
            assert_eq!(d.after_tick(false), TICK_NS);
        }
        let expected = [
            40_000, 80_000, 160_000, 320_000, 640_000, 1_280_000, 2_560_000, 5_120_000,
        ];
        for e in expected {
            assert_eq!(d.after_tick(false), e);
        }
        assert_eq!(d.after_tick(false), MAX_DELAY_NS);
        assert_eq!(d.after_tick(false), MAX_DELAY_NS);
        assert_eq!(d.after_tick(true), TICK_NS);
        assert_eq!(d.idle_ticks, 0);
        assert_eq!(
            d.after_tick(false),
            TICK_NS,
            "the count restarts after work"
        );
    }

    #[test]
    fn deep_sleep_when_nothing_runs_or_a_stop_is_pending_capped_by_deadlines() {
        assert_eq!(
            sleep_plan(0, false, 40_000, None),
            Sleep::Deep { until: None }
        );
        assert_eq!(
            sleep_plan(3, true, 40_000, Some(7)),
            Sleep::Deep { until: Some(7) }
        );
        assert_eq!(sleep_plan(1, false, 40_000, Some(7)), Sleep::For(40_000));
        assert_eq!(earliest_deadline([900, 500], [100, 700], 300), Some(400));
        assert_eq!(earliest_deadline([], [], 300), None);
    }

    #[test]
    fn observations_date_an_unchanged_value_from_its_first_sighting() {
        let s = observe(None, 5, 100);
        assert_eq!(
            s,
            Seen {
                value: 5,
                since: 100
            }
        );
        let s = observe(Some(s), 5, 900);
        assert_eq!(s.since, 100);
        let s = observe(Some(s), 6, 1000);
        assert_eq!(
            s,
            Seen {
                value: 6,
                since: 1000
            }
        );
    }

    #[test]
    fn retake_after_one_tick_when_someone_waits_or_ten_ms_regardless() {
        let t = TICK_NS;
        assert!(
            !should_retake(0, t, t, true),
            "exactly one tick is not more than one"
        );
        assert!(should_retake(0, t + 1, t, true));
        assert!(!should_retake(0, FORCE_RETAKE_NS - 1, t, false));
        assert!(should_retake(0, FORCE_RETAKE_NS, t, false));
        // "no retake of a P whose thread blocks 1 ms while nothing is RUNNABLE"
        assert!(!should_retake(0, 1_000_000, t, false));
    }

    #[test]
    fn preemption_after_ten_ms_once_per_request() {
        assert!(!should_preempt(0, PREEMPT_AFTER_NS - 1, false));
        assert!(should_preempt(0, PREEMPT_AFTER_NS, false));
        assert!(
            !should_preempt(0, 3 * PREEMPT_AFTER_NS, true),
            "one outstanding request at a time"
        );
    }

    #[test]
    fn huge_thresholds_saturate_instead_of_overflowing() {
        let th = u64::MAX / 2;
        let mut e = None;
        let a = stall_step(&mut e, Some(0), th, th);
        assert!(matches!(
            a,
            StallAction::Report {
                reminder: false,
                ..
            }
        ));
        assert_eq!(e.unwrap().next_report, u64::MAX);
        assert_eq!(
            stall_step(&mut e, Some(0), u64::MAX - 1, th),
            StallAction::None
        );
        assert_eq!(earliest_deadline([], [u64::MAX - 5], th), Some(u64::MAX));
    }

    #[test]
    fn stall_episodes_report_once_back_off_and_resolve() {
        let th = 50;
        let mut e = None;
        assert_eq!(stall_step(&mut e, Some(0), 49, th), StallAction::None);
        assert_eq!(
            stall_step(&mut e, Some(0), 50, th),
            StallAction::Report {
                stalled_for: 50,
                reminder: false
            }
        );
        // Next reminder at 50 + 100 = 150, then back-off doubles (200, 400).
        assert_eq!(stall_step(&mut e, Some(0), 149, th), StallAction::None);
        assert_eq!(
            stall_step(&mut e, Some(0), 150, th),
            StallAction::Report {
                stalled_for: 150,
                reminder: true
            }
        );
        assert_eq!(stall_step(&mut e, Some(0), 349, th), StallAction::None);
        assert_eq!(
            stall_step(&mut e, Some(0), 350, th),
            StallAction::Report {
                stalled_for: 350,
                reminder: true
            }
        );
        assert_eq!(e.unwrap().reports, 3);
        assert_eq!(
            stall_step(&mut e, None, 400, th),
            StallAction::Resolved { after: 400 }
        );
        assert_eq!(e, None);
        assert_eq!(stall_step(&mut e, None, 500, th), StallAction::None);
        // A new episode starts afresh.
        assert_eq!(
            stall_step(&mut e, Some(480), 530, th),
            StallAction::Report {
                stalled_for: 50,
                reminder: false
            }
        );
    }
}
