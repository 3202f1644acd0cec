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
//! - **quiescent rollover**: a section that reads a generation published
//!   but not yet ready leaves the gate and waits (`emitter_ready`), so
//!   once a rollover's pass has waited out the sections that read the old
//!   generation, nothing changes until the tracer makes the new one ready;
//!   a waiting section holds no inner lock (a section under way may wait
//!   for one).
//! - **one tracer at a time**: `claimed` has one writer: callers of the
//!   tracer side are serialised (start and stop hold `hooklock` and
//!   `sysmonlock`).
//! - **bounded wait, for threads outside the world**: a section may never
//!   end (its thread left it by `longjmp` from a signal handler, or was
//!   cancelled asynchronously). A pass may then give up on a gate
//!   (`tracer_pass_bounded`), but only by turning `inside` from 1 to 2
//!   with a compare-and-swap: if the thread left meanwhile the swap fails
//!   and the pass goes on as usual; if it succeeds, the pass releases the
//!   claim without touching the thread's state, and the caller never
//!   touches it again (`record` marks the thread as not recording before
//!   the release). Whatever the thread still writes is then its own. Only
//!   threads whose events no other thread's depend on may be given up on
//!   (`record`: threads outside the world).
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

    /// Give up on the thread inside its section: true if it still was
    /// (its `inside` is now 2: abandoned; or was already, by a pass of an
    /// earlier trace, and it has not left since), false if it left
    /// meanwhile.
    fn abandon(&self) -> bool {
        loop {
            match self.inside.load(SeqCst) {
                0 => return false,
                2 => return true,
                _ => {
                    if self.inside.compare_exchange(1, 2, SeqCst, SeqCst).is_ok() {
                        return true;
                    }
                }
            }
        }
    }

    fn claim(&self) {
        debug_assert_eq!(self.claimed.load(Relaxed), 0, "one tracer at a time");
        self.claimed.store(1, Relaxed);
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

/// A section that waits for its generation to be ready: as `emitter`, but
/// a section that finds the generation published and not yet `ready` (a
/// rollover's tracer has not finished its statuses and header) leaves the
/// gate and waits, then tries again. So between a rollover's publish and
/// its `ready`, no such section is under way once the tracer's pass has
/// waited out those that began before the publish: the tracer reads the
/// world at rest for the new generation's statuses and header
/// (**quiescent rollover**). The caller must hold no lock a section may
/// wait for (an inner lock): it would wait for the tracer, which waits
/// for that section. None as for `emitter`.
#[inline]
pub fn emitter_ready<R>(
    gate: &Gate,
    current: &AtomicU64,
    ready: &AtomicU64,
    f: impl FnOnce(u64) -> R,
) -> Option<R> {
    loop {
        if !gate.enter() {
            return None;
        }
        let g = current.load(Acquire);
        // Acquire: the header the tracer wrote before making `g` ready.
        if g == 0 || ready.load(Acquire) >= g {
            let r = f(g);
            gate.exit();
            return Some(r);
        }
        gate.exit();
        // Waiting for the rollover while holding an inner lock would close
        // a cycle (the rollover waits for sections under way, which may
        // wait for inner locks). `lifecycle` is never taken in a section.
        #[cfg(all(debug_assertions, not(loom)))]
        crate::base::inner::assert_none_held_but(
            &[crate::base::inner::InnerRank::Lifecycle],
            "a trace section waiting for a rollover",
        );
        while current.load(Acquire) == g && ready.load(Acquire) < g {
            spin_hint();
            #[cfg(not(loom))]
            std::thread::yield_now();
        }
    }
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

/// The tracer's pass over threads' gates (after publishing the
/// generation): claim every gate, one heavy fence, then run `f(i)` on
/// each gate whose thread is out of its section and release it, sweeping
/// again over those still inside until none is left.
///
/// Never waiting on one gate while others stay claimed matters: a thread
/// inside its section may wait for an inner lock (`sched`) held by a thread
/// that is itself spinning on a claimed gate; releasing every free gate
/// first lets that one go on, release the lock, and the first one leave.
/// (The calling thread's own gate must not be among `gates`: a signal
/// handler interrupting the pass would spin on a claim only the
/// interrupted thread can release. The tracer holds its own gate, as an
/// emitter, for the whole pass instead: `record::own_gate_held`.)
pub fn tracer_pass<'g>(gates: impl Iterator<Item = &'g Gate>, f: impl FnMut(usize)) {
    tracer_pass_bounded(gates, f, || false, |_| false, |_| {});
}

/// As `tracer_pass`, but once `give_up()` says so, a gate still busy whose
/// thread `may_abandon(i)` is given up on (**bounded wait**): if its
/// thread is still inside, `abandoned(i)` is called instead of `f(i)` (it
/// must make sure nothing touches the thread's recording state again) and
/// the claim is released; if it just left, `f(i)` runs as usual.
pub fn tracer_pass_bounded<'g>(
    gates: impl Iterator<Item = &'g Gate>,
    mut f: impl FnMut(usize),
    give_up: impl Fn() -> bool,
    may_abandon: impl Fn(usize) -> bool,
    mut abandoned: impl FnMut(usize),
) {
    let gates: Vec<&Gate> = gates.collect();
    if gates.is_empty() {
        // No gate, nothing to order (the fence can cost microseconds).
        return;
    }
    let mut pending: Vec<usize> = (0..gates.len()).collect();
    for g in &gates {
        g.claim();
    }
    fence::heavy();
    loop {
        pending.retain(|&i| {
            if gates[i].inside.load(Acquire) != 0 {
                return true;
            }
            f(i);
            gates[i].release();
            false
        });
        if pending.is_empty() {
            return;
        }
        if give_up() {
            pending.retain(|&i| {
                if !may_abandon(i) {
                    return true;
                }
                if gates[i].abandon() {
                    abandoned(i);
                } else {
                    f(i);
                }
                gates[i].release();
                false
            });
            if pending.is_empty() {
                return;
            }
        }
        spin_hint();
        #[cfg(not(loom))]
        std::thread::yield_now();
    }
}

/// One attempt of a fatal-signal handler's pass (`record::fatal`): claim
/// the gates `gate(i)` gives for `i` in `0..n` (None: no gate to claim),
/// one heavy fence, then sweep over the busy ones (as `tracer_pass` does,
/// so no thread is waited for in turn) until every thread is outside its
/// section or `give_up()`. `reached[i]` says which claims are kept (the
/// caller reads those threads' state, then calls `release_claims`); a gate
/// still busy at `give_up` has its claim dropped. Returns whether every
/// gate was reached. Allocates nothing and never waits past `give_up`.
/// The caller is the only tracer (`record`'s pass token). Unlike
/// `tracer_pass`, reached gates stay claimed while the others are waited
/// for (the caller needs one cut across all threads), so a busy thread
/// waiting for an inner lock held by a thread spinning on its claimed gate
/// cannot finish within the attempt: the caller releases every claim and
/// tries again.
pub fn bounded_claim<'g>(
    n: usize,
    gate: impl Fn(usize) -> Option<&'g Gate>,
    reached: &mut [bool],
    give_up: impl Fn() -> bool,
) -> bool {
    let reached = &mut reached[..n];
    for (i, r) in reached.iter_mut().enumerate() {
        *r = false;
        if let Some(g) = gate(i) {
            g.claim();
        }
    }
    fence::heavy();
    loop {
        let mut busy = 0;
        for (i, r) in reached.iter_mut().enumerate() {
            if *r {
                continue;
            }
            let Some(g) = gate(i) else { continue };
            if g.inside.load(Acquire) == 0 {
                *r = true;
            } else {
                busy += 1;
            }
        }
        if busy == 0 {
            return true;
        }
        if give_up() {
            for (i, r) in reached.iter().enumerate() {
                if let Some(g) = gate(i).filter(|_| !*r) {
                    g.release();
                }
            }
            return false;
        }
        spin_hint();
        #[cfg(not(loom))]
        std::thread::yield_now();
    }
}

/// A fatal-signal handler's claim of every gate at the same moment:
/// `bounded_claim` attempts of `attempt_ns` each (on the clock `now`),
/// every claim released between them (`pause` waits a little), until one
/// reaches every gate or `deadline` passes; then the gates still busy are
/// left unclaimed and `reached` says which are held. Returns whether all
/// were reached.
#[cfg(not(loom))]
pub fn claim_all_at_once<'g>(
    n: usize,
    gate: impl Fn(usize) -> Option<&'g Gate> + Copy,
    reached: &mut [bool],
    now: impl Fn() -> u64,
    attempt_ns: u64,
    deadline: u64,
    pause: impl Fn(),
) -> bool {
    loop {
        let attempt = now().saturating_add(attempt_ns).min(deadline);
        if bounded_claim(n, gate, reached, || now() >= attempt) {
            return true;
        }
        if now() >= deadline {
            return false;
        }
        release_claims(n, gate, |i| reached[i]);
        pause();
    }
}

/// Release the claims `bounded_claim` kept (`kept(i)`).
pub fn release_claims<'g>(
    n: usize,
    gate: impl Fn(usize) -> Option<&'g Gate>,
    kept: impl Fn(usize) -> bool,
) {
    for i in 0..n {
        if let Some(g) = gate(i).filter(|_| kept(i)) {
            g.release();
        }
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

/// Make generation `g` ready (its header written): state-changing sections
/// waiting in `emitter_ready` go on.
pub fn make_ready(ready: &AtomicU64, g: u64) {
    ready.store(g, Release);
}

/// Deliberately broken variants, each violating one invariant above, so the
/// loom model shows it catches them. Never used outside the model.
#[cfg(loom)]
pub mod broken {
    use super::*;

    /// Breaks **bounded wait**: past its deadline the pass treats a busy
    /// gate as reached (runs `f` on the thread's state while the thread
    /// may still be inside its section) instead of giving up on it.
    pub fn tracer_pass_proceeding<'g>(
        gates: impl Iterator<Item = &'g Gate>,
        mut f: impl FnMut(usize),
    ) {
        let gates: Vec<&Gate> = gates.collect();
        for g in &gates {
            g.claim();
        }
        fence::heavy();
        for (i, g) in gates.iter().enumerate() {
            f(i);
            g.release();
        }
    }

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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::sync::{Arc, Mutex, mpsc};
    use std::time::Duration;

    /// The fatal-signal handler's claim: X is inside its section waiting
    /// for a lock that Y holds while Y waits to enter its own (claimed)
    /// gate. One attempt that keeps Y's claim while it waits for X cannot
    /// reach X (the broken variant: `attempts` 1); releasing every claim
    /// between attempts lets Y go on, X finish, and a later attempt reach
    /// both. A thread that never leaves its section is given up at the
    /// deadline, its gate left unclaimed.
    fn claim_at_once(retry: bool) -> (bool, [bool; 3], u32) {
        let gates: Arc<[Gate; 3]> = Arc::new([Gate::new(), Gate::new(), Gate::new()]);
        let m = Arc::new(Mutex::new(()));
        let stuck_go = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        // Y (gate 1): holds the lock, then enters its gate (waiting while
        // it is claimed), then lets the lock go.
        let ty = {
            let (gates, m, ready_tx) = (gates.clone(), m.clone(), ready_tx.clone());
            std::thread::spawn(move || {
                let g = m.lock().unwrap();
                ready_tx.send(()).unwrap();
                while gates[1].claimed.load(SeqCst) == 0 {
                    std::thread::yield_now();
                }
                assert!(gates[1].enter());
                gates[1].exit();
                drop(g);
            })
        };
        ready_rx.recv().unwrap();
        // X (gate 0): inside, waiting for the lock.
        let tx = {
            let (gates, m, ready_tx) = (gates.clone(), m.clone(), ready_tx.clone());
            std::thread::spawn(move || {
                assert!(gates[0].enter());
                ready_tx.send(()).unwrap();
                drop(m.lock().unwrap());
                gates[0].exit();
            })
        };
        ready_rx.recv().unwrap();
        // S (gate 2): inside until told to go.
        let ts = {
            let (gates, stuck_go) = (gates.clone(), stuck_go.clone());
            std::thread::spawn(move || {
                assert!(gates[2].enter());
                ready_tx.send(()).unwrap();
                while !stuck_go.load(SeqCst) {
                    std::thread::yield_now();
                }
                gates[2].exit();
            })
        };
        ready_rx.recv().unwrap();
        let t0 = std::time::Instant::now();
        let now = move || t0.elapsed().as_nanos() as u64;
        let mut reached = [false; 3];
        let attempts = std::cell::Cell::new(1u32);
        let all = claim_all_at_once(
            3,
            |i| Some(&gates[i]),
            &mut reached,
            now,
            20_000_000,
            if retry { 300_000_000 } else { 20_000_000 },
            || {
                attempts.set(attempts.get() + 1);
                std::thread::sleep(Duration::from_millis(1));
            },
        );
        // The stuck thread's gate was given up: not claimed.
        assert_eq!(gates[2].claimed.load(SeqCst), 0);
        release_claims(3, |i| Some(&gates[i]), |i| reached[i]);
        stuck_go.store(true, SeqCst);
        ts.join().unwrap();
        tx.join().unwrap();
        ty.join().unwrap();
        (all, reached, attempts.get())
    }

    #[test]
    fn a_fatal_dump_claims_every_gate_at_once_retrying_and_gives_up_on_a_stuck_one() {
        let (all, reached, attempts) = claim_at_once(true);
        assert!(!all, "the stuck thread cannot be reached");
        assert_eq!(reached, [true, true, false], "after {attempts} attempts");
        assert!(attempts > 1);
    }

    #[test]
    fn a_single_attempt_holding_its_claims_is_caught_missing_a_thread() {
        let (all, reached, attempts) = claim_at_once(false);
        assert!(!all);
        assert_eq!(attempts, 1);
        assert!(!reached[0], "X waits for Y's lock, Y for its claimed gate");
    }

    /// Thread X is inside its section waiting for a lock that thread Y
    /// holds while Y spins on its own claimed gate: a pass that waited
    /// for X before releasing Y would never end (the broken variant:
    /// `waits_in_order`). The sweeping pass must finish.
    fn pass_finishes(waits_in_order: bool) -> bool {
        let (x, y) = (Arc::new(Gate::new()), Arc::new(Gate::new()));
        let m = Arc::new(Mutex::new(()));
        let x_inside = Arc::new(AtomicBool::new(false));
        let y_done = Arc::new(AtomicBool::new(false));
        // Y: holds the lock X will wait for, and enters its gate once it
        // is claimed.
        let ty = {
            let (y, m, y_done) = (y.clone(), m.clone(), y_done.clone());
            let (ready_tx, ready_rx) = mpsc::channel();
            let t = std::thread::spawn(move || {
                let g = m.lock().unwrap();
                ready_tx.send(()).unwrap();
                // Until the pass claims Y (or has already handled it).
                while y.claimed.load(SeqCst) == 0 && !y_done.load(SeqCst) {
                    std::thread::yield_now();
                }
                assert!(y.enter());
                y.exit();
                drop(g);
            });
            ready_rx.recv().unwrap();
            t
        };
        // X: inside its section, waiting for the lock.
        let tx = {
            let (x, m, x_inside) = (x.clone(), m.clone(), x_inside.clone());
            std::thread::spawn(move || {
                assert!(x.enter());
                x_inside.store(true, SeqCst);
                drop(m.lock().unwrap());
                x.exit();
            })
        };
        while !x_inside.load(SeqCst) {
            std::thread::yield_now();
        }
        let (done_tx, done_rx) = mpsc::channel();
        let (x2, y2) = (x.clone(), y.clone());
        std::thread::spawn(move || {
            let y_handled = || y_done.store(true, SeqCst);
            if waits_in_order {
                for g in [&*x2, &*y2] {
                    g.claim();
                }
                fence::heavy();
                for g in [&*x2, &*y2] {
                    while g.inside.load(Acquire) != 0 {
                        std::thread::yield_now();
                    }
                    g.release();
                }
            } else {
                tracer_pass([&*x2, &*y2].into_iter(), |i| {
                    if i == 1 {
                        y_handled();
                    }
                });
            }
            let _ = done_tx.send(());
        });
        let finished = done_rx.recv_timeout(Duration::from_secs(3)).is_ok();
        if finished {
            tx.join().unwrap();
            ty.join().unwrap();
        }
        finished
    }

    #[test]
    fn a_pass_releases_free_gates_before_waiting_for_busy_ones() {
        assert!(pass_finishes(false), "the sweeping pass did not finish");
        // The broken variant hangs (its threads are left behind).
        assert!(
            !pass_finishes(true),
            "the in-order pass was expected to hang"
        );
    }
}
