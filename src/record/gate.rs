//! The per-thread gate and the order of operations around it: the protocol
//! that makes "is tracing on", a thread's state change and its event one
//! unit with respect to a trace start or stop (DESIGN.md, "Tracer"; Go
//! 1.22's per-M seqlock, adapted). `record` uses these functions; the loom
//! model (tests/loom_trace.rs) drives the same ones through the `sync` shim.
//!
//! Invariants:
//! - **one holder**: the gate word is odd exactly while one party holds
//!   it: the thread itself (an emitter) or the tracer (writing the thread's
//!   status, or collecting its buffer).
//! - **publish, then look**: the tracer stores the new generation before it
//!   takes any gate; an emitter reads the generation inside its gate. So an
//!   emitter section either ends before the tracer takes the gate (the
//!   tracer then sees the state after the change, and the event, if any,
//!   went to the old generation) or begins after it (the emitter reads the
//!   new generation and records the change there, after the status).
//! - **join, then read**: a thread that makes itself visible to the tracer
//!   (attach: it joins the thread list the tracer walks after publishing)
//!   does so inside its gate *before* reading the generation. Reading first
//!   leaves a window in which the tracer neither lists the thread nor does
//!   the thread see the new generation (the model's broken variant).
//! - Sections are short and never wait for anything but inner locks; both
//!   sides spin.

use crate::sync::{AtomicU64, Ordering::SeqCst, spin_hint};

/// A thread's gate (a sequence lock: odd while held).
pub struct Gate {
    word: AtomicU64,
}

impl Gate {
    pub fn new() -> Gate {
        Gate {
            word: AtomicU64::new(0),
        }
    }

    /// Take the gate, spinning while the other party holds it.
    pub fn lock(&self) {
        loop {
            let w = self.word.load(SeqCst);
            if w & 1 == 0 && self.word.compare_exchange(w, w + 1, SeqCst, SeqCst).is_ok() {
                return;
            }
            spin_hint();
            #[cfg(not(loom))]
            std::thread::yield_now();
        }
    }

    pub fn unlock(&self) {
        self.word.fetch_add(1, SeqCst);
    }
}

impl Default for Gate {
    fn default() -> Self {
        Gate::new()
    }
}

/// An emitter's section: `f` gets the generation read inside the gate, and
/// makes its state change and records its event (if the generation is
/// not 0) before the gate is released.
pub fn emitter<R>(gate: &Gate, current: &AtomicU64, f: impl FnOnce(u64) -> R) -> R {
    gate.lock();
    let g = current.load(SeqCst);
    let r = f(g);
    gate.unlock();
    r
}

/// A section that first makes the thread visible to the tracer (`join`),
/// then reads the generation: attach.
pub fn joining<R>(
    gate: &Gate,
    current: &AtomicU64,
    join: impl FnOnce(),
    f: impl FnOnce(u64) -> R,
) -> R {
    gate.lock();
    join();
    let g = current.load(SeqCst);
    let r = f(g);
    gate.unlock();
    r
}

/// The tracer's section on one thread (after publishing the generation).
pub fn tracer<R>(gate: &Gate, f: impl FnOnce() -> R) -> R {
    gate.lock();
    let r = f();
    gate.unlock();
    r
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
    ) -> R {
        let g = current.load(SeqCst);
        f(g)
    }

    /// Breaks **join, then read**: the generation is read before joining.
    pub fn joining_after_reading<R>(
        gate: &Gate,
        current: &AtomicU64,
        join: impl FnOnce(),
        f: impl FnOnce(u64) -> R,
    ) -> R {
        gate.lock();
        let g = current.load(SeqCst);
        join();
        let r = f(g);
        gate.unlock();
        r
    }
}
