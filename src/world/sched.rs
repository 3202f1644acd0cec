//! The scheduler side of the world: thread records, the P table under the
//! `sched` inner lock, and processors (grants, hand-offs, releasing and
//! acquiring a P) in this file; one concept per child file: `threads`
//! (attach, detach), `safepoint`, `blocking` (regions), `stw` (stop and
//! start), `maxprocs`, `observe` (sysmon's view and actions), `preempt`
//! (the user's handler), `waits` (a thread waiting inside rtcore gives up
//! its P), `after_fork`.
//!
//! Who changes what:
//! - A P's word (`ps[i]`: owner << 3 | state) changes under `sched`, except
//!   two lock-free transitions by the owner itself: RUNNING(T) -> SYSCALL(T)
//!   at `enter_blocking` and SYSCALL(T) -> RUNNING(T) at the `exit_blocking`
//!   fast path. The only other writer of a SYSCALL word is a claimer (the
//!   stopper now, sysmon later), by compare-and-swap, so exactly one of "the
//!   thread takes its P back" and "the P is claimed" happens.
//! - A thread's state changes under `sched`, or by the thread itself in the
//!   same two fast paths.
//!
//! Invariants:
//! - **stop**: while a stop is in force (`stop_pending`, and the stopper has
//!   returned), every P is STOPPED except the stopper's own, so no other
//!   attached thread runs: a thread with a P is either the stopper or parked
//!   inside rtcore. Threads reach that state only at safepoints.
//! - **Dekker pair**: the stopper stores `stop_pending` then reads every P;
//!   a thread stores its P word (SYSCALL, or RUNNING on the fast exit) then
//!   reads `stop_pending` (all SeqCst). So either the stopper sees the new
//!   word, or the thread sees the stop and acts on it (wakes the stopper, or
//!   parks at once).
//! - **grants**: a thread waiting for a P parks while `granted` is 0; a
//!   granter sets its P word, `p` and `granted` under `sched` and unparks it.
//!   No P is ever handed to a thread that is not waiting for one.
//! - `sched` is an inner lock: never held across a park, a safepoint or a
//!   call back into user code.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64,
    Ordering::{Relaxed, Release, SeqCst},
};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use crate::base::inner::{InnerMutex, InnerRank, assert_none_held};
use crate::format::{BlockReason, EventKind, ThreadState};
use crate::record::{self, A};

use crate::status::{
    Error, RTC_ERR_INVALID_ARGUMENT, RTC_ERR_WOULD_DEADLOCK, RTC_ERR_WRONG_STATE, Result,
};

mod after_fork;
mod blocking;
mod maxprocs;
mod observe;
mod preempt;
mod safepoint;
mod stw;
mod threads;
mod waits;

pub use observe::{Census, Observation, ProcView, ThreadView};
pub use preempt::*;

/// Most Ps a process may have: with maxprocs 0 ("unlimited") as many
/// threads as this may run at once; an attach beyond it, with every P
/// busy, is refused with a status rather than left waiting. The tables are
/// allocated zeroed (an IDLE P is 0), so untouched Ps cost no memory.
pub const MAX_PROCS: usize = crate::format::MAX_PROCS as usize;

/// The P cap in force: `MAX_PROCS`, or lower through
/// `RTCORE_DEBUG=procs_cap=N` (for tests of the cap).
static PROCS_CAP: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(MAX_PROCS);

/// Lower the P cap (`RTCORE_DEBUG=procs_cap=N`; at least 1, at most
/// `MAX_PROCS`). Takes effect for Ps created from now on.
pub fn set_procs_cap(n: usize) {
    PROCS_CAP.store(n.clamp(1, MAX_PROCS), SeqCst);
}

fn procs_cap() -> usize {
    PROCS_CAP.load(Relaxed)
}

/// Thread states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum TState {
    Running = 1,
    Runnable = 2,
    Blocking = 3,
    Waiting = 4,
    Dead = 5,
}

impl TState {
    fn from_u32(v: u32) -> TState {
        match v {
            1 => TState::Running,
            2 => TState::Runnable,
            3 => TState::Blocking,
            4 => TState::Waiting,
            _ => TState::Dead,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            TState::Running => "RUNNING",
            TState::Runnable => "RUNNABLE",
            TState::Blocking => "BLOCKING",
            TState::Waiting => "WAITING",
            TState::Dead => "DEAD",
        }
    }
}

use super::handshake::{
    self, Claim, Exit, P_IDLE, P_RUNNING, P_STOPPED, P_SYSCALL, powner, pstate, pword,
};

/// One attached thread.
pub struct ThreadRec {
    pub id: u64,
    pub name: String,
    pub tid: i64,
    state: AtomicU32,
    /// Index + 1 of the P it holds or last held while BLOCKING (0: none).
    p: AtomicU32,
    /// Set (under `sched`) when the thread is given a P; it parks while 0.
    granted: AtomicU32,
    /// Cleared when the thread is given a P, set when it records its
    /// `P start` (in its gate). In between the world has it RUNNING but
    /// the trace has it RUNNABLE and its P IDLE (`trace_status`,
    /// `trace_procs`): a rollover may come in between.
    p_started: AtomicBool,
    /// Safepoints passed (the time-to-safepoint diagnostic watches it).
    pub safepoints: AtomicU64,
    /// Preemption requests made by sysmon (numbered 1, 2, ...) and the last
    /// one this thread acknowledged at a safepoint.
    pub preempt_requested: AtomicU64,
    pub preempt_acked: AtomicU64,
    /// When it was last given a P (ns since the world's epoch): it keeps
    /// the P for at least `QUANTUM_NS` before yielding to waiters.
    granted_at: AtomicU64,
    /// Bumped at every state change: sysmon dates a stall from the first
    /// tick that saw the current value.
    pub state_changes: AtomicU64,
    /// The thread's trace sequence number: bumped by each event about the
    /// thread (its `unblock`, sysmon's preemption requests); carried by its
    /// status and its `detach`.
    tseq: AtomicU64,
    /// The P sequence number of its last grant (its `P start` carries it).
    grant_seq: AtomicU64,
    /// `detail` holds something (saves taking its lock when it does not).
    has_detail: AtomicBool,
    /// What sysmon reports about the thread while it blocks or waits.
    detail: InnerMutex<Detail>,
}

/// Published by a thread when it enters a blocking region or a wait, and
/// cleared when it leaves: why it blocks, what it waits for, what it holds.
/// (Only the thread itself writes it; sysmon reads it under the lock.)
#[derive(Clone, Debug, Default)]
pub struct Detail {
    pub reason: Option<String>,
    pub waiting_for: Option<crate::base::wait::Target>,
    /// The locks it held when it started blocking or waiting, described.
    pub holds: Vec<String>,
}

impl Detail {
    fn is_empty(&self) -> bool {
        self.reason.is_none() && self.waiting_for.is_none() && self.holds.is_empty()
    }
}

impl ThreadRec {
    pub fn state(&self) -> TState {
        TState::from_u32(self.state.load(SeqCst))
    }
    fn set_state(&self, s: TState) {
        self.state.store(s as u32, SeqCst);
        self.state_changes.fetch_add(1, Relaxed);
    }

    /// Run `f` on the published detail (sysmon, for reports). The lock is
    /// the inner rank `threadreason`.
    pub fn with_detail<R>(&self, f: impl FnOnce(&Detail) -> R) -> R {
        f(&self.detail.lock())
    }

    /// Publish why and on what this thread blocks, and the locks it holds
    /// (described now, while they are certainly held). Called by the
    /// thread itself; costs a thread-local read when there is nothing to say.
    fn publish(&self, reason: Option<&str>, waiting_for: Option<crate::base::wait::Target>) {
        let holds: Vec<String> = crate::lock::order::with_held(|h| {
            h.entries()
                .iter()
                .map(crate::lock::order::describe_held)
                .collect()
        });
        if reason.is_none() && waiting_for.is_none() && holds.is_empty() {
            return;
        }
        let mut d = self.detail.lock();
        d.reason = reason.map(str::to_string);
        d.waiting_for = waiting_for;
        d.holds = holds;
        self.has_detail.store(true, Relaxed);
    }

    /// Clear what `publish` said (the thread runs again).
    fn unpublish(&self) {
        if self.has_detail.swap(false, Relaxed) {
            let mut d = self.detail.lock();
            if !d.is_empty() {
                *d = Detail::default();
            }
        }
    }
    fn key(&self) -> usize {
        self as *const ThreadRec as usize
    }
    pub fn describe(&self) -> String {
        format!("thread {} '{}' (tid {})", self.id, self.name, self.tid)
    }
}

struct Sched {
    /// Attached threads (for diagnostics and tests).
    threads: Vec<Arc<ThreadRec>>,
    /// Bumped whenever `threads` changes (`observe_into` copies it then).
    threads_version: u64,
    /// Threads waiting for a P, first come first served.
    runq: VecDeque<Arc<ThreadRec>>,
    /// Ps created so far (they are never destroyed; extra ones are retired).
    nprocs: usize,
    /// 0: unlimited.
    maxprocs: usize,
    /// The rtcore id of the thread holding the world stopped (or stopping it).
    stopper: Option<u64>,
    stop_reason: String,
}

pub struct World {
    sched: InnerMutex<Sched>,
    ps: Box<[AtomicU64]>,
    /// Per P: its trace sequence number, bumped at each event about it
    /// (start, stop, steal, blocking-region edges, block, detach). Bumped
    /// under `sched`, or by the P's owner while only it may change the P
    /// (RUNNING(T), or SYSCALL(T) after winning the exit CAS).
    pseq: Box<[AtomicU64]>,
    stop_pending: AtomicBool,
    /// Threads in `runq` (read at safepoints without the lock).
    runq_len: AtomicU32,
    /// Time-to-safepoint threshold for the diagnostic, in nanoseconds.
    tts_threshold_ns: AtomicU64,
    /// Bumped whenever something the stopper waits for happens (a thread
    /// parked, entered a blocking region, started waiting); the stopper
    /// sleeps only while it is unchanged, so no wake-up is lost.
    epoch: AtomicU64,
    /// Set while some P's index is at or above maxprocs and may be RUNNING:
    /// its owner gives it up at the next safepoint.
    retiring: AtomicBool,
    /// Stops completed (for tests and stats).
    pub stops: AtomicU64,
}

static WORLD: LazyLock<World> = LazyLock::new(|| World {
    sched: InnerMutex::new(
        InnerRank::Sched,
        Sched {
            threads: Vec::new(),
            threads_version: 0,
            runq: VecDeque::new(),
            nprocs: 0,
            maxprocs: 0,
            stopper: None,
            stop_reason: String::new(),
        },
    ),
    ps: zeroed_atomics(MAX_PROCS),
    pseq: zeroed_atomics(MAX_PROCS),
    stop_pending: AtomicBool::new(false),
    runq_len: AtomicU32::new(0),
    tts_threshold_ns: AtomicU64::new(100_000_000),
    epoch: AtomicU64::new(0),
    retiring: AtomicBool::new(false),
    stops: AtomicU64::new(0),
});

/// `n` atomics, all 0, from zeroed memory (the kernel maps its pages on
/// first touch: Ps never created cost nothing).
fn zeroed_atomics(n: usize) -> Box<[AtomicU64]> {
    const _: () = assert!(pword(P_IDLE, 0) == 0);
    let v: Vec<u64> = vec![0; n];
    // SAFETY: AtomicU64 has the size, alignment and bit validity of u64.
    unsafe { std::mem::transmute::<Box<[u64]>, Box<[AtomicU64]>>(v.into_boxed_slice()) }
}

pub fn world() -> &'static World {
    &WORLD
}

/// This thread's attachment. Dropped at thread exit: tears down in order.
struct Attachment {
    /// Taken (None) by an explicit detach, so the drop does nothing.
    rec: Option<Arc<ThreadRec>>,
}

thread_local! {
    static ATTACHED: RefCell<Option<Attachment>> = const { RefCell::new(None) };
    /// The thread's trace sequence number when it last detached.
    static LAST_TSEQ: Cell<u64> = const { Cell::new(0) };
    /// Fast copy of the attachment's record pointer (no destructor).
    static CURRENT: Cell<*const ThreadRec> = const { Cell::new(std::ptr::null()) };
    /// Set while an unattached thread holds the world stopped: its
    /// destructor restarts the world if the thread exits (or is cancelled)
    /// still holding it. (An attached stopper's `Attachment` does this.)
    static UNATTACHED_STOP: RefCell<Option<UnattachedStop>> = const { RefCell::new(None) };
}

/// See `UNATTACHED_STOP`.
struct UnattachedStop {
    id: u64,
}

impl Drop for UnattachedStop {
    fn drop(&mut self) {
        let w = world();
        if w.holds_world(self.id) {
            let _ = w.start(self.id);
        }
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        // Thread exit while attached: leave a blocking region, restart a
        // world this thread holds stopped, then detach.
        let w = world();
        let Some(rec) = self.rec.take() else { return };
        if rec.state() == TState::Blocking {
            w.exit_blocking_rec(&rec);
        }
        if w.holds_world(rec.id) {
            let _ = w.start(rec.id);
        }
        w.detach_rec(&rec);
        CURRENT.with(|c| c.set(std::ptr::null()));
    }
}

/// The calling thread's record, if attached.
#[inline]
pub fn current() -> Option<&'static ThreadRec> {
    let p = CURRENT.try_with(|c| c.get()).unwrap_or(std::ptr::null());
    // SAFETY: CURRENT points into the Arc held by this thread's Attachment,
    // which lives until CURRENT is cleared.
    unsafe { p.as_ref() }
}

fn not_attached(what: &str) -> Error {
    Error::new(
        RTC_ERR_WRONG_STATE,
        format!("{what}: the calling thread is not attached (call rtc_thread_attach first)"),
    )
}

impl World {
    /// `rec`'s state as the trace sees it: RUNNING on its P, RUNNABLE,
    /// BLOCKING with its P if the P is still SYSCALL(it), WAITING. A thread
    /// granted a P that has not yet recorded its `P start` is RUNNABLE (and
    /// its P IDLE: `trace_procs`), as its events say: a rollover may fall
    /// between the grant and the `P start`. Reads atomics only (callers
    /// hold the thread's gate, never `sched`).
    pub fn trace_status(&self, rec: &ThreadRec, f: &mut dyn FnMut(&record::Status<'_>)) {
        let p = Self::p_index(rec);
        let (state, p_plus_1) = match rec.state() {
            TState::Running if !rec.p_started.load(SeqCst) => (ThreadState::Runnable, 0),
            TState::Running => (ThreadState::Running, p.map_or(0, |i| i as u64 + 1)),
            TState::Runnable => (ThreadState::Runnable, 0),
            TState::Blocking => (
                ThreadState::Blocking,
                p.filter(|&i| self.ps[i].load(SeqCst) == pword(P_SYSCALL, rec.id))
                    .map_or(0, |i| i as u64 + 1),
            ),
            TState::Waiting => (ThreadState::Waiting, 0),
            TState::Dead => return,
        };
        let state = state as u64;
        f(&record::Status {
            name: &rec.name,
            state,
            p_plus_1,
            thread_seq: rec.tseq.load(SeqCst),
            preempt_requested: rec.preempt_requested.load(SeqCst),
            preempt_acked: rec.preempt_acked.load(SeqCst),
        });
    }

    /// P `i`'s trace sequence number (for its status).
    pub fn pseq(&self, i: usize) -> u64 {
        self.pseq[i].load(SeqCst)
    }

    /// Every P as the trace sees it, for a header: (count, and per P its
    /// index, state code, owner and sequence number). A P granted to a
    /// thread that has not recorded its `P start` yet is IDLE, at the
    /// sequence before the grant's; a STOPPED one is reported as such (the
    /// reader takes it as IDLE). For a rollover's header, read with every
    /// state-changing section held off (`record::gated`): nothing changes
    /// meanwhile.
    pub fn trace_procs(&self) -> (usize, Vec<(usize, u64, u64, u64)>) {
        let s = self.sched.lock();
        let mut out = Vec::with_capacity(s.nprocs);
        for i in 0..s.nprocs {
            let w = self.ps[i].load(SeqCst);
            let (mut state, mut owner, mut seq) = (pstate(w), powner(w), self.pseq(i));
            if state == P_RUNNING {
                let started = s
                    .threads
                    .iter()
                    .find(|t| t.id == owner)
                    .is_none_or(|t| t.p_started.load(SeqCst));
                if !started {
                    (state, owner, seq) = (P_IDLE, 0, seq.saturating_sub(1));
                }
            }
            out.push((i, state, owner, seq));
        }
        (s.nprocs, out)
    }

    pub fn holds_world(&self, id: u64) -> bool {
        self.sched.lock().stopper == Some(id) && self.stop_pending.load(SeqCst)
    }

    /// Is a stop in force or being made?
    pub fn stop_pending(&self) -> bool {
        self.stop_pending.load(SeqCst)
    }

    fn p_index(rec: &ThreadRec) -> Option<usize> {
        match rec.p.load(SeqCst) {
            0 => None,
            n => Some(n as usize - 1),
        }
    }

    /// Give P `i` to the first runnable thread, or leave it IDLE.
    /// Called with `sched` held and no stop pending.
    fn hand_off(&self, s: &mut Sched, i: usize) {
        if let Some(t) = s.runq.pop_front() {
            self.runq_len.store(s.runq.len() as u32, SeqCst);
            self.grant(t.as_ref(), i);
        } else {
            self.ps[i].store(pword(P_IDLE, 0), SeqCst);
        }
    }

    /// P `i` becomes RUNNING(t); t is woken. `sched` held.
    fn grant(&self, t: &ThreadRec, i: usize) {
        self.grant_deferred(t, i);
        unpark_key(t.key());
    }

    /// `grant` without the wake-up: the caller unparks `t.key()` after
    /// releasing `sched` (a restart wakes many threads; it must not hold the
    /// inner lock while the kernel schedules each of them).
    fn grant_deferred(&self, t: &ThreadRec, i: usize) {
        // The grantee records its `P start` with this number when it wakes
        // (it is RUNNING in the world from here, so a stop waits for it).
        t.p_started.store(false, SeqCst);
        t.grant_seq.store(self.bump_pseq(i), SeqCst);
        self.ps[i].store(pword(P_RUNNING, t.id), SeqCst);
        t.p.store(i as u32 + 1, SeqCst);
        t.set_state(TState::Running);
        t.granted_at.store(now_ns(), Relaxed);
        t.granted.store(1, SeqCst);
    }

    /// An IDLE P, or a new one if maxprocs allows. `sched` held, inside
    /// the caller's gate: the P set and its event change together.
    fn free_p(&self, s: &mut Sched, e: &mut record::Emitter<'_>) -> Option<usize> {
        let limit = self.limit(s);
        for i in 0..s.nprocs.min(limit) {
            if self.ps[i].load(SeqCst) == pword(P_IDLE, 0) {
                return Some(i);
            }
        }
        if s.nprocs < limit {
            let i = s.nprocs;
            s.nprocs += 1;
            self.ps[i].store(pword(P_IDLE, 0), SeqCst);
            // Trace: in the caller's gate (a rollover reads the P set at
            // rest), under `sched` with no stop pending (a stop, and so a
            // start or stop of the trace, must take `sched` to begin).
            e.event(EventKind::ProcsChange, &[A::U(s.nprocs as u64)]);
            return Some(i);
        }
        None
    }

    fn limit(&self, s: &Sched) -> usize {
        if s.maxprocs == 0 {
            procs_cap()
        } else {
            s.maxprocs
        }
    }

    /// Get a P for `t` (RUNNABLE), waiting if none is free or a stop is in
    /// force. On return t is RUNNING with a P, and sysmon (which may have
    /// gone to deep sleep seeing no busy P) has been told.
    fn acquire_p(&self, t: &ThreadRec) {
        self.acquire_p_quiet(t);
        self.started_p(t);
        kick();
    }

    fn bump_pseq(&self, i: usize) -> u64 {
        self.pseq[i].fetch_add(1, SeqCst) + 1
    }

    /// `bump_pseq` by the P's owner while it alone may change the P
    /// (RUNNING(self) before entering a region; SYSCALL(self) after winning
    /// the exit CAS): no other writer, so a load and a store do, and the
    /// blocking-region fast paths pay no locked instruction for it. Later
    /// writers see the value through the P word's SeqCst transitions.
    fn bump_pseq_owned(&self, i: usize) -> u64 {
        let v = self.pseq[i].load(Relaxed) + 1;
        self.pseq[i].store(v, Release);
        v
    }

    /// Record that `t` (the calling thread) now runs on the P it was
    /// granted. Trace: in its gate, with `p_started` (a rollover reads it),
    /// while it is RUNNING on the P (a stop waits for it to reach a
    /// safepoint, which comes after this).
    fn started_p(&self, t: &ThreadRec) {
        if let Some(i) = Self::p_index(t) {
            record::gated_if_tracing(|e| {
                t.p_started.store(true, SeqCst);
                e.event(
                    EventKind::ProcStart,
                    &[A::U(i as u64), A::U(t.grant_seq.load(SeqCst))],
                );
            });
        }
    }

    fn acquire_p_quiet(&self, t: &ThreadRec) {
        // Trace: in the gate (always: the thread is not RUNNING, so a start
        // does not wait for it), for `free_p`'s new P and its event. The
        // grant itself changes nothing the trace shows until `started_p`.
        let granted = record::gated(|e| {
            let mut s = self.sched.lock();
            t.set_state(TState::Runnable);
            t.granted.store(0, SeqCst);
            if !self.stop_pending.load(SeqCst) && s.runq.is_empty() {
                if let Some(i) = self.free_p(&mut s, e) {
                    self.grant(t, i);
                    return true;
                }
            }
            let arc = s.threads.iter().find(|x| x.id == t.id).cloned();
            if let Some(a) = arc {
                s.runq.push_back(a);
                self.runq_len.store(s.runq.len() as u32, SeqCst);
            }
            false
        });
        if !granted {
            self.wait_for_grant(t);
        }
    }

    fn wait_for_grant(&self, t: &ThreadRec) {
        assert_none_held("a wait for a P");
        while t.granted.load(SeqCst) == 0 {
            // SAFETY: the validate callback only reads an atomic.
            unsafe {
                crate::base::parked::park(t.key(), || t.granted.load(SeqCst) == 0, None);
            }
        }
    }

    /// Release t's P (t becomes `new_state`), handing it on if someone waits.
    /// Trace: the event, the state and the P's hand-over in one section of
    /// t's gate, `sched` taken inside it (t is RUNNING: a start or stop
    /// waits for it).
    fn release_p(&self, t: &ThreadRec, new_state: TState) {
        record::gated_if_tracing(|e| self.release_p_in_gate(t, new_state, e));
    }

    fn release_p_in_gate(&self, t: &ThreadRec, new_state: TState, e: &mut record::Emitter<'_>) {
        let mut s = self.sched.lock();
        if let Some(i) = Self::p_index(t) {
            let seq = self.bump_pseq(i);
            if new_state == TState::Dead {
                // `sched` orders this read after every preemption request
                // (made under `sched` while the thread was RUNNING).
                let tseq = t.tseq.load(SeqCst);
                let _ = LAST_TSEQ.try_with(|c| c.set(tseq));
                e.event(EventKind::Detach, &[A::U(i as u64), A::U(seq), A::U(tseq)]);
            } else {
                let (reason, object) = match crate::base::wait::target() {
                    crate::base::wait::Target::Mutex(a) => (BlockReason::Mutex, a as u64),
                    crate::base::wait::Target::Cond(a) => (BlockReason::Cond, a as u64),
                    crate::base::wait::Target::RwLock(a) => (BlockReason::RwLock, a as u64),
                    crate::base::wait::Target::Hook(id) => (BlockReason::Hook, id),
                    crate::base::wait::Target::Nothing => (BlockReason::Other, 0),
                };
                let reason = reason as u64;
                e.event(
                    EventKind::Block,
                    &[A::U(reason), A::U(object), A::U(i as u64), A::U(seq)],
                );
            }
        }
        t.set_state(new_state);
        if let Some(i) = Self::p_index(t) {
            t.p.store(0, SeqCst);
            let limit = self.limit(&s);
            if self.stop_pending.load(SeqCst) {
                self.ps[i].store(pword(P_STOPPED, 0), SeqCst);
                self.wake_stopper(&s);
            } else if i >= limit {
                // Retired by a lower maxprocs.
                self.ps[i].store(pword(P_IDLE, 0), SeqCst);
            } else {
                self.hand_off(&mut s, i);
            }
        }
    }

    fn wake_stopper(&self, _s: &Sched) {
        self.epoch.fetch_add(1, SeqCst);
        // SAFETY: no callback.
        unsafe {
            parking_lot_core::unpark_all(
                self.stopper_key(),
                parking_lot_core::DEFAULT_UNPARK_TOKEN,
            );
        }
    }

    fn stopper_key(&self) -> usize {
        &self.stop_pending as *const AtomicBool as usize
    }
}

/// How long a thread keeps its P before yielding to waiters at a safepoint
/// (shorter than Go's 10 ms: rtcore threads yield only at explicit
/// safepoints, and a waiting thread should not wait long for one).
pub const QUANTUM_NS: u64 = 1_000_000;

fn now_ns() -> u64 {
    crate::base::clock::now_ns()
}

fn unpark_key(k: usize) {
    // SAFETY: no callback.
    unsafe {
        parking_lot_core::unpark_all(k, parking_lot_core::DEFAULT_UNPARK_TOKEN);
    }
}

/// Who to tell when something sysmon sleeps through happens (a thread
/// attached, entered or left a blocking region, the world restarted).
/// sysmon registers itself here, so the world does not import sysmon.
pub struct ActivityHooks {
    /// Cheap when nobody sleeps deeply.
    pub kick: fn(),
    /// Called on the first attach: start the monitor.
    pub first_attach: fn(),
}

static ACTIVITY: std::sync::atomic::AtomicPtr<ActivityHooks> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

pub fn register_activity_hooks(h: &'static ActivityHooks) {
    ACTIVITY.store(h as *const ActivityHooks as *mut ActivityHooks, SeqCst);
}

#[inline]
fn activity() -> Option<&'static ActivityHooks> {
    // SAFETY: only &'static hooks are stored.
    unsafe { ACTIVITY.load(SeqCst).as_ref() }
}

#[inline]
fn kick() {
    if let Some(h) = activity() {
        (h.kick)();
    }
}

static HANDLERS: crate::base::wait::WaitHandlers = crate::base::wait::WaitHandlers {
    begin: || world().wait_begin(),
    end: || world().wait_end(),
    holds_world: || world().holds_world(crate::ident::current_id()),
};

/// Register the world's wait handlers with the lock module (at start).
pub fn install() {
    crate::base::wait::register(&HANDLERS);
    record::register_status_fn(my_trace_status);
}

/// The calling thread's status for the trace (`record::gated`).
fn my_trace_status(f: &mut dyn FnMut(&record::Status<'_>)) {
    if let Some(rec) = current() {
        world().trace_status(rec, f);
    }
}

// ---- thread-level API (the C ABI calls these) --------------------------------

pub fn safepoint() {
    if let Some(rec) = current() {
        // Inside a blocking region a thread is not at a safepoint of the
        // world: its P is SYSCALL (or claimed), not its to give up.
        if rec.state() == TState::Running {
            world().safepoint_rec(rec);
        }
    }
}

pub fn stop_the_world(reason: &str) -> Result<()> {
    world().stop(reason)
}

pub fn start_the_world() -> Result<()> {
    world().start(crate::ident::current_id())
}

pub fn assert_world_stopped() -> Result<()> {
    let w = world();
    let s = w.sched.lock();
    match s.stopper {
        Some(id) if id == crate::ident::current_id() => Ok(()),
        Some(id) => Err(Error::new(
            RTC_ERR_WRONG_STATE,
            format!(
                "rtc_assert_world_stopped: the world is stopped by thread {id}, not by this thread"
            ),
        )),
        None => Err(Error::new(
            RTC_ERR_WRONG_STATE,
            "rtc_assert_world_stopped: the world is not stopped",
        )),
    }
}

pub fn set_tts_threshold(ns: u64) {
    world().tts_threshold_ns.store(ns, SeqCst);
}

#[cfg(test)]
mod tests {
    use super::handshake::{P_IDLE, P_RUNNING, P_STOPPED, P_SYSCALL};
    use crate::format::ProcState;

    /// A P's word holds the same state codes that its trace status carries.
    #[test]
    fn p_word_states_are_the_format_codes() {
        assert_eq!(P_IDLE, ProcState::Idle as u64);
        assert_eq!(P_RUNNING, ProcState::Running as u64);
        assert_eq!(P_SYSCALL, ProcState::Syscall as u64);
        assert_eq!(P_STOPPED, ProcState::Stopped as u64);
    }
}
