//! The per-thread gate and the order of operations around it: the protocol
//! that makes "is tracing on", a thread's state change and its event one
//! unit with respect to a trace start or stop (DESIGN.md, "Tracer"; Go
//! 1.22's per-M seqlock, adapted). `record` uses these functions; the loom
//! model (tests/loom_trace.rs) drives the same ones through the `sync` shim.
//!
//! A gate is two words, each written by one side only: `inside` by its
//! thread (an emitter), `claimed` by the tracer. Neither side uses a
//! locked instruction on the other's word; the emitter's entry is a plain
//! store, a compiler fence and a load (`fence::light`), and the tracer pays
//! for both sides with one `fence::heavy` per pass over all the gates.
//!
//! Invariants:
//! - **one holder**: when the tracer, after claiming and `heavy()`, has
//!   seen `inside == 0`, the thread is not in a section and cannot enter
//!   one until the claim is released. Because an emitter stores `inside`,
//!   fences, then loads `claimed`, and the tracer stores `claimed`, fences,
//!   then loads `inside`, one of the two loads sees the other's store
//!   (`fence.rs`): either the emitter backs off, or the tracer waits for
//!   the section to end.
//! - **publish, then look**: the tracer stores the new generation before it
//!   claims any gate; an emitter reads the generation inside its gate. So an
//!   emitter section either ends before the tracer's wait on it ends (the
//!   tracer then sees the state after the change, and the event, if any,
//!   went to the old generation) or begins after the claim is released
//!   (the emitter reads the new generation and records the change there,
//!   after the status).
//! - **join, then read**: a thread that makes itself visible to the tracer
//!   (attach: it joins the thread list the tracer walks after publishing)
//!   does so inside its gate *before* reading the generation. Reading first
//!   leaves a window in which the tracer neither lists the thread nor does
//!   the thread see the new generation (the model's broken variant).
//! - **one tracer at a time**: `claimed` has one writer: callers of the
//!   tracer side are serialised (start and stop hold `hooklock` and
//!   `sysmonlock`).
//! - Sections are short and never wait for anything but inner locks; both
//!   sides spin. A thread's own gate is never waited on by that thread: a
//!   section entered again from a signal handler that interrupted it is
//!   refused (`enter` returns false).

use super::fence;
use crate::sync::{AtomicU32, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};
use crate::sync::{Ordering::SeqCst, spin_hint};

/// A thread's gate.
pub struct Gate {
    /// 1 while the thread is in a section (written by the thread only).
    inside: AtomicU32,
    /// 1 while the tracer claims the gate (written by the tracer only).
    claimed: AtomicU32,
}

impl Gate {
    pub fn new() -> Gate {
        Gate {
            inside: AtomicU32::new(0),
            claimed: AtomicU32::new(0),
        }
    }

    /// Enter a section, waiting while the tracer holds the gate. Returns
    /// false, without entering, if the calling thread is already inside
    /// (a signal handler interrupted its section): waiting would never end.
    /// Only the gate's own thread may call it.
    #[inline]
    pub fn enter(&self) -> bool {
        if self.inside.load(Relaxed) != 0 {
            return false;
        }
        loop {
            self.inside.store(1, Relaxed);
            fence::light();
            // Acquire: what the tracer wrote while it held the gate (a
            // status, a taken buffer) is seen by the section.
            if self.claimed.load(Acquire) == 0 {
                return true;
            }
            self.inside.store(0, Release);
            while self.claimed.load(Acquire) != 0 {
                spin_hint();
                #[cfg(not(loom))]
                std::thread::yield_now();
            }
        }
    }

    /// Leave the section (Release: the tracer's wait sees what it wrote).
    #[inline]
    pub fn exit(&self) {
        self.inside.store(0, Release);
    }

    fn claim(&self) {
        debug_assert_eq!(self.claimed.load(Relaxed), 0, "one tracer at a time");
        self.claimed.store(1, Relaxed);
    }

    /// Wait until the thread is out of its section (after `heavy()`).
    fn wait_out(&self) {
        while self.inside.load(Acquire) != 0 {
            spin_hint();
            #[cfg(not(loom))]
            std::thread::yield_now();
        }
    }

    fn release(&self) {
        self.claimed.store(0, Release);
    }
}

impl Default for Gate {
    fn default() -> Self {
        Gate::new()
    }
}

/// An emitter's section: `f` gets the generation read inside the gate, and
/// makes its state change and records its event (if the generation is
/// not 0) before the gate is released. None if the thread is already
/// inside its gate (`Gate::enter`).
#[inline]
pub fn emitter<R>(gate: &Gate, current: &AtomicU64, f: impl FnOnce(u64) -> R) -> Option<R> {
    if !gate.enter() {
        return None;
    }
    let g = current.load(Acquire);
    let r = f(g);
    gate.exit();
    Some(r)
}

/// A section that first makes the thread visible to the tracer (`join`),
/// then reads the generation: attach. None as for `emitter`.
pub fn joining<R>(
    gate: &Gate,
    current: &AtomicU64,
    join: impl FnOnce(),
    f: impl FnOnce(u64) -> R,
) -> Option<R> {
    if !gate.enter() {
        return None;
    }
    join();
    let g = current.load(Acquire);
    let r = f(g);
    gate.exit();
    Some(r)
}

/// The tracer's pass over `n` threads' gates (after publishing the
/// generation): claim every gate, one heavy fence, then for each in turn
/// wait for its thread to leave its section, run `f(i)`, release it.
pub fn tracer_pass<'g>(gates: impl Iterator<Item = &'g Gate> + Clone, mut f: impl FnMut(usize)) {
    let mut n = 0;
    for g in gates.clone() {
        g.claim();
        n += 1;
    }
    if n == 0 {
        // No gate, nothing to order (the fence can cost microseconds).
        return;
    }
    fence::heavy();
    for (i, g) in gates.enumerate() {
        g.wait_out();
        f(i);
        g.release();
    }
}

/// The tracer's section on one thread (after publishing the generation).
pub fn tracer<R>(gate: &Gate, f: impl FnOnce() -> R) -> R {
    let mut f = Some(f);
    let mut r = None;
    tracer_pass(std::iter::once(gate), |_| r = f.take().map(|f| f()));
    r.expect("the pass ran the section")
}

/// Publish generation `g` (0: tracing off). Done before any `tracer`
/// section of the start or stop.
pub fn publish(current: &AtomicU64, g: u64) -> u64 {
    current.swap(g, SeqCst)
}

/// Deliberately broken variants, each violating one invariant above, so the
/// loom model shows it catches them. Never used outside the model.
#[cfg(loom)]
pub mod broken {
    use super::*;

    /// Breaks **publish, then look** from the emitter's side: no gate.
    pub fn emitter_without_gate<R>(
        _gate: &Gate,
        current: &AtomicU64,
        f: impl FnOnce(u64) -> R,
    ) -> Option<R> {
        let g = current.load(SeqCst);
        Some(f(g))
    }

    /// Breaks **one holder**: the emitter enters without the fence between
    /// its store and its load (what dropping `membarrier` does on the
    /// hardware), and the tracer's fence is dropped with it.
    pub fn emitter_without_fence<R>(
        gate: &Gate,
        current: &AtomicU64,
        f: impl FnOnce(u64) -> R,
    ) -> Option<R> {
        loop {
            gate.inside.store(1, Relaxed);
            if gate.claimed.load(Relaxed) == 0 {
                break;
            }
            gate.inside.store(0, Release);
            while gate.claimed.load(Acquire) != 0 {
                spin_hint();
            }
        }
        let g = current.load(Relaxed);
        let r = f(g);
        gate.exit();
        Some(r)
    }

    /// The tracer's side of the same break: no fence between its claim
    /// and its look at `inside`.
    pub fn tracer_without_fence<R>(gate: &Gate, f: impl FnOnce() -> R) -> R {
        gate.claim();
        while gate.inside.load(Relaxed) != 0 {
            spin_hint();
        }
        let r = f();
        gate.release();
        r
    }

    /// Breaks **join, then read**: the generation is read before joining.
    pub fn joining_after_reading<R>(
        gate: &Gate,
        current: &AtomicU64,
        join: impl FnOnce(),
        f: impl FnOnce(u64) -> R,
    ) -> Option<R> {
        if !gate.enter() {
            return None;
        }
        let g = current.load(SeqCst);
        join();
        let r = f(g);
        gate.exit();
        Some(r)
    }
}
