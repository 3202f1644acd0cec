//! Fault injection for the tracer's protocol (`RTCORE_DEBUG`, docs/debug.md),
//! to show that `sysmonlock` is what keeps sysmon's events consistent with
//! start and stop, and that a rollover needs its quiescence. Three knobs,
//! each announced loudly on stderr when set (the third,
//! `rollover_no_quiesce`, is described at `set_no_quiesce`):
//!
//! - `trace_skip_sysmonlock=1`: start and stop do not take `sysmonlock`
//!   (sysmon still takes it for its own data).
//! - `sysmon_park_after_check=1`: when sysmon is about to act (a retake, a
//!   preemption request, a stall episode opening or closing), it parks
//!   between its "is tracing on?" check and its state change until the next
//!   start or stop has published a generation — a deterministic widening of
//!   the window, not a sleep. While it holds `sysmonlock` and a start or
//!   stop waits for that lock, nothing can be published, so it goes on at
//!   once (parking then would only deadlock).
//!
//! Nothing else changes: the injection never writes an event of its own;
//! it only lets the ordinary events land in the wrong generation, or be
//! skipped because tracing looked off.
//!
//! It lives here, below both sysmon (which calls `after_check`) and the
//! tracer's protocol (which asks `skip_sysmonlock`), so neither imports the
//! other.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};
use std::time::{Duration, Instant};

use super::Checked;

static SKIP_SYSMONLOCK: AtomicBool = AtomicBool::new(false);
static NO_QUIESCE: AtomicBool = AtomicBool::new(false);

/// `rollover_no_quiesce=1`: state-changing sections do not wait for a
/// rollover's header (`record::gated` behaves as `emit` does), so a
/// rollover reads the world while it changes: the broken variant the
/// rollover stress must catch.
pub fn set_no_quiesce(on: bool) {
    if on {
        crate::diag::eprintln(
            "rtcore: WARNING: fault injection rollover_no_quiesce: state changes do not wait for a rollover's header; traces may be inconsistent (fault injection for tests)",
        );
    }
    NO_QUIESCE.store(on, SeqCst);
}

pub fn no_quiesce() -> bool {
    NO_QUIESCE.load(std::sync::atomic::Ordering::Relaxed)
}
static LEAVE_SECTION: AtomicBool = AtomicBool::new(false);
static NEVER_GIVE_UP: AtomicBool = AtomicBool::new(false);

/// `trace_leave_section=1`: the first thread outside the world to record
/// an `outside wait` then leaves a recording section held, as a thread
/// does that leaves one by `longjmp` from a signal handler; its later
/// events are dropped (its gate looks entered from a signal handler).
/// `trace_never_give_up=1`: passes wait for such a section for ever: the
/// broken variant the bounded wait's test must catch (gate.rs, **bounded
/// wait**).
pub fn set_outside(leave_section: bool, never_give_up: bool) {
    if leave_section {
        crate::diag::eprintln(
            "rtcore: WARNING: fault injection trace_leave_section: a thread outside the world leaves a recording section held (fault injection for tests)",
        );
    }
    if never_give_up {
        crate::diag::eprintln(
            "rtcore: WARNING: fault injection trace_never_give_up: passes wait for ever for a recording section left held; a trace may never roll or stop (fault injection for tests)",
        );
    }
    LEAVE_SECTION.store(leave_section, SeqCst);
    NEVER_GIVE_UP.store(never_give_up, SeqCst);
}

/// Should the caller leave a section held now? True once.
pub fn take_leave_section() -> bool {
    LEAVE_SECTION.load(std::sync::atomic::Ordering::Relaxed) && LEAVE_SECTION.swap(false, SeqCst)
}

/// Is `trace_never_give_up` set?
pub fn never_give_up() -> bool {
    NEVER_GIVE_UP.load(SeqCst)
}

static PARK_AFTER_CHECK: AtomicBool = AtomicBool::new(false);
/// Starts and stops waiting for `sysmonlock` right now.
static TRACER_WAITING: AtomicU32 = AtomicU32::new(0);

/// The longest a park lasts (a safety net for a process that stops
/// tracing for good; the matrix tests never reach it).
const PARK_LIMIT: Duration = Duration::from_secs(2);

pub fn set(skip_sysmonlock: bool, park_after_check: bool) {
    if skip_sysmonlock {
        crate::diag::eprintln(
            "rtcore: WARNING: fault injection trace_skip_sysmonlock: trace start and stop skip sysmonlock; traces may be inconsistent (fault injection for tests)",
        );
    }
    if park_after_check {
        crate::diag::eprintln(
            "rtcore: WARNING: fault injection sysmon_park_after_check: sysmon parks between its tracing check and its action (fault injection for tests)",
        );
    }
    SKIP_SYSMONLOCK.store(skip_sysmonlock, SeqCst);
    PARK_AFTER_CHECK.store(park_after_check, SeqCst);
}

/// Is `trace_skip_sysmonlock` set? (The tracer's `with_sysmonlock` then
/// runs its section without the lock.)
pub fn skip_sysmonlock() -> bool {
    SKIP_SYSMONLOCK.load(SeqCst)
}

/// The tracer is about to wait for `sysmonlock`: a sysmon parked by the
/// injection while holding it must go on (parking then would only
/// deadlock). Paired with `tracer_has_sysmonlock`.
pub fn tracer_wants_sysmonlock() {
    TRACER_WAITING.fetch_add(1, SeqCst);
    crate::base::parked::unpark_all(super::generation_change_key());
}

/// The tracer took `sysmonlock`.
pub fn tracer_has_sysmonlock() {
    TRACER_WAITING.fetch_sub(1, SeqCst);
}

/// sysmon, between its check and its action: park if injected.
pub fn after_check(c: &Checked) {
    if !PARK_AFTER_CHECK.load(SeqCst) {
        return;
    }
    let deadline = Instant::now() + PARK_LIMIT;
    let blocked_by_me = || !SKIP_SYSMONLOCK.load(SeqCst) && TRACER_WAITING.load(SeqCst) > 0;
    while !c.changed() && !blocked_by_me() && !crate::base::state::closing() {
        if Instant::now() >= deadline {
            return;
        }
        // SAFETY: the validate callback only reads atomics.
        unsafe {
            crate::base::parked::park(
                super::generation_change_key(),
                || !c.changed() && !blocked_by_me(),
                Some(Instant::now() + Duration::from_millis(50)),
            );
        }
    }
}
