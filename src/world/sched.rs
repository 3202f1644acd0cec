//! The scheduler side of the world: thread records, the P table under the
//! `sched` inner lock, grants, parking, stop and start.
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
use crate::format::EventKind;
use crate::record::{self, A};

use crate::status::{
    Error, RTC_ERR_INVALID_ARGUMENT, RTC_ERR_WOULD_DEADLOCK, RTC_ERR_WRONG_STATE, Result,
};

/// Most Ps a process may have: with maxprocs 0 ("unlimited") as many
/// threads as this may run at once; an attach beyond it, with every P
/// busy, is refused with a status rather than left waiting. The tables are
/// allocated zeroed (an IDLE P is 0), so untouched Ps cost no memory.
pub const MAX_PROCS: usize = 65_536;

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
    /// BLOCKING with its P if the P is still SYSCALL(it), WAITING. (A
    /// thread granted a P that has not yet recorded its `P start` reads as
    /// RUNNING; no status is written then: grants happen only while the
    /// world runs, after the start wrote every attached thread's status,
    /// and the stop waits for the grantee to record its `P start`.) Reads
    /// atomics only (callers hold the thread's gate, never `sched`).
    pub fn trace_status(&self, rec: &ThreadRec, f: &mut dyn FnMut(&record::Status<'_>)) {
        let p = Self::p_index(rec);
        let (state, p_plus_1) = match rec.state() {
            TState::Running => (1, p.map_or(0, |i| i as u64 + 1)),
            TState::Runnable => (2, 0),
            TState::Blocking => (
                3,
                p.filter(|&i| self.ps[i].load(SeqCst) == pword(P_SYSCALL, rec.id))
                    .map_or(0, |i| i as u64 + 1),
            ),
            TState::Waiting => (4, 0),
            TState::Dead => return,
        };
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
        t.grant_seq.store(self.bump_pseq(i), SeqCst);
        self.ps[i].store(pword(P_RUNNING, t.id), SeqCst);
        t.p.store(i as u32 + 1, SeqCst);
        t.set_state(TState::Running);
        t.granted_at.store(now_ns(), Relaxed);
        t.granted.store(1, SeqCst);
    }

    /// An IDLE P, or a new one if maxprocs allows. `sched` held.
    fn free_p(&self, s: &mut Sched) -> Option<usize> {
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
            // Trace: protected by `sched` with no stop pending (a stop, and
            // so a start or stop of the trace, must take `sched` to begin).
            record::emit(EventKind::ProcsChange, &[A::U(s.nprocs as u64)]);
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
    /// granted. Trace: protected by the stop (t is RUNNING on the P: a stop
    /// waits for it to reach a safepoint, which comes after this).
    fn started_p(&self, t: &ThreadRec) {
        if let Some(i) = Self::p_index(t) {
            record::emit(
                EventKind::ProcStart,
                &[A::U(i as u64), A::U(t.grant_seq.load(SeqCst))],
            );
        }
    }

    fn acquire_p_quiet(&self, t: &ThreadRec) {
        {
            let mut s = self.sched.lock();
            t.set_state(TState::Runnable);
            t.granted.store(0, SeqCst);
            if !self.stop_pending.load(SeqCst) && s.runq.is_empty() {
                if let Some(i) = self.free_p(&mut s) {
                    self.grant(t, i);
                    return;
                }
            }
            let arc = s.threads.iter().find(|x| x.id == t.id).cloned();
            if let Some(a) = arc {
                s.runq.push_back(a);
                self.runq_len.store(s.runq.len() as u32, SeqCst);
            }
        }
        self.wait_for_grant(t);
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
    fn release_p(&self, t: &ThreadRec, new_state: TState) {
        let mut s = self.sched.lock();
        // Trace: recorded before the P goes, while t is RUNNING on it (a
        // stop waits for this P, so the generation cannot change first).
        if let Some(i) = Self::p_index(t) {
            let seq = self.bump_pseq(i);
            if new_state == TState::Dead {
                // `sched` orders this read after every preemption request
                // (made under `sched` while the thread was RUNNING).
                let tseq = t.tseq.load(SeqCst);
                let _ = LAST_TSEQ.try_with(|c| c.set(tseq));
                record::emit(EventKind::Detach, &[A::U(i as u64), A::U(seq), A::U(tseq)]);
            } else {
                let (reason, object) = match crate::base::wait::target() {
                    crate::base::wait::Target::Mutex(a) => (1, a as u64),
                    crate::base::wait::Target::Cond(a) => (2, a as u64),
                    crate::base::wait::Target::Hook(id) => (3, id),
                    crate::base::wait::Target::Nothing => (4, 0),
                };
                record::emit(
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

    // ---- attach / detach -------------------------------------------------

    pub fn attach(&self, name: &str) -> Result<u64> {
        if current().is_some() {
            return Err(Error::new(
                RTC_ERR_WRONG_STATE,
                format!(
                    "rtc_thread_attach: {} is already attached",
                    current().map(|c| c.describe()).unwrap_or_default()
                ),
            ));
        }
        let id = crate::ident::current_id();
        if self.sched.lock().stopper == Some(id) {
            return Err(Error::new(
                RTC_ERR_WOULD_DEADLOCK,
                "rtc_thread_attach: this thread holds the world stopped; attaching would wait for a P",
            ));
        }
        self.refuse_at_procs_cap()?;
        // Before the attachment's thread-local exists (see register_thread).
        crate::record::register_thread();
        let rec = Arc::new(ThreadRec {
            id,
            name: name.to_string(),
            tid: crate::ident::os_tid(),
            state: AtomicU32::new(TState::Runnable as u32),
            p: AtomicU32::new(0),
            granted: AtomicU32::new(0),
            safepoints: AtomicU64::new(0),
            preempt_requested: AtomicU64::new(0),
            preempt_acked: AtomicU64::new(0),
            granted_at: AtomicU64::new(0),
            state_changes: AtomicU64::new(0),
            // The thread's sequence goes on across its attachments, and the
            // attach itself takes the next number: events about an earlier
            // attachment order before it, events about this one after.
            tseq: AtomicU64::new(LAST_TSEQ.try_with(Cell::get).unwrap_or(0) + 1),
            grant_seq: AtomicU64::new(0),
            has_detail: AtomicBool::new(false),
            detail: InnerMutex::new(InnerRank::ThreadReason, Detail::default()),
        });
        crate::ident::set_name(Some(name.to_string()));
        // Trace: gated (the thread has no P: a stop does not wait for it);
        // see `record::attach` for why joining the list comes first.
        record::attach(
            || {
                let mut s = self.sched.lock();
                s.threads.push(rec.clone());
                s.threads_version += 1;
            },
            name,
            rec.tseq.load(SeqCst),
        );
        let ptr = Arc::as_ptr(&rec);
        ATTACHED.with(|a| {
            *a.borrow_mut() = Some(Attachment {
                rec: Some(rec.clone()),
            })
        });
        CURRENT.with(|c| c.set(ptr));
        if let Some(h) = activity() {
            (h.first_attach)();
        }
        self.acquire_p(&rec);
        kick();
        Ok(id)
    }

    /// With maxprocs 0 ("unlimited") and every P of the cap RUNNING, an
    /// attach would wait for a P, maybe forever: refused instead. (A P in
    /// SYSCALL is retaken by sysmon for a thread that waits, so it counts
    /// as available; the scan happens only at the cap.)
    fn refuse_at_procs_cap(&self) -> Result<()> {
        let s = self.sched.lock();
        let cap = procs_cap();
        if s.maxprocs != 0 || s.nprocs < cap || self.stop_pending.load(SeqCst) {
            return Ok(());
        }
        if (0..s.nprocs).any(|i| pstate(self.ps[i].load(SeqCst)) != P_RUNNING) {
            return Ok(());
        }
        Err(Error::new(
            RTC_ERR_WRONG_STATE,
            format!(
                "rtc_thread_attach: all {cap} processors (rtcore's limit with maxprocs 0) are held by running attached threads; detach one first, or set a maxprocs so that threads queue for processors"
            ),
        ))
    }

    fn detach_rec(&self, rec: &ThreadRec) {
        self.release_p(rec, TState::Dead);
        let mut s = self.sched.lock();
        s.threads.retain(|t| t.id != rec.id);
        s.threads_version += 1;
        s.runq.retain(|t| t.id != rec.id);
        self.runq_len.store(s.runq.len() as u32, SeqCst);
    }

    pub fn detach(&self) -> Result<()> {
        let Some(rec) = current() else {
            return Err(not_attached("rtc_thread_detach"));
        };
        match rec.state() {
            TState::Running => {}
            s => {
                return Err(Error::new(
                    RTC_ERR_WRONG_STATE,
                    format!(
                        "rtc_thread_detach: {} is {} (leave the blocking region first)",
                        rec.describe(),
                        s.name()
                    ),
                ));
            }
        }
        if self.holds_world(rec.id) {
            return Err(Error::new(
                RTC_ERR_WRONG_STATE,
                format!(
                    "rtc_thread_detach: {} holds the world stopped (call rtc_start_the_world first)",
                    rec.describe()
                ),
            ));
        }
        // Recorded in `release_p` while still RUNNING (protected by the
        // stop).
        self.detach_rec(rec);
        crate::ident::set_name(None);
        CURRENT.with(|c| c.set(std::ptr::null()));
        // The teardown above is done: empty the attachment so dropping it
        // does nothing more (and releases the record).
        let att = ATTACHED.with(|a| a.borrow_mut().take());
        if let Some(mut a) = att {
            a.rec = None;
        }
        Ok(())
    }

    // ---- safepoints ------------------------------------------------------

    /// The safepoint check. Cheap when nothing is pending.
    #[inline]
    pub fn safepoint_rec(&self, rec: &ThreadRec) {
        // Only this thread writes its counter: a plain load and store.
        rec.safepoints
            .store(rec.safepoints.load(Relaxed).wrapping_add(1), Relaxed);
        let req = rec.preempt_requested.load(SeqCst);
        if req != rec.preempt_acked.load(SeqCst) {
            // Acknowledge sysmon's request; yielding (below) happens only
            // if someone waits for a P.
            rec.preempt_acked.store(req, SeqCst);
            // Trace: protected by the stop (the thread is RUNNING).
            record::emit(EventKind::PreemptAck, &[A::U(req)]);
            // The user's handler runs when the calling rtcore function has
            // finished its own work (`deliver_preemption`): it may call
            // rtcore (even detach), so nothing may use `rec` after it.
            let _ = PREEMPT_DUE.try_with(|c| c.set(req));
        }
        if self.stop_pending.load(SeqCst)
            || self.runq_len.load(SeqCst) != 0
            || self.retiring.load(SeqCst)
        {
            self.safepoint_slow(rec);
        }
    }

    // ---- for sysmon ------------------------------------------------------

    /// What sysmon looks at: every P's word, and for its owner the
    /// safepoint count and outstanding preemption request; plus whether a
    /// thread waits for a P.
    pub fn observe(&self) -> Observation {
        let mut obs = Observation::default();
        self.observe_into(&mut obs);
        obs
    }

    /// `observe` into `obs`, reusing its memory: sysmon calls this every
    /// tick, so with thousands of attached threads a tick allocates
    /// nothing and holds `sched` for one pass over the Ps and one over the
    /// threads (owners are found through each thread's P, not by search).
    /// The thread list is copied (its `Arc`s cloned) only when threads
    /// attached or detached since the last call.
    pub fn observe_into(&self, obs: &mut Observation) {
        let s = self.sched.lock();
        obs.procs.clear();
        obs.procs.extend((0..s.nprocs).map(|i| ProcView {
            index: i,
            word: self.ps[i].load(SeqCst),
            owner_safepoints: 0,
            preempt_pending: false,
            owner_view: None,
        }));
        if obs.threads_version != s.threads_version || obs.threads.len() != s.threads.len() {
            obs.threads.clear();
            obs.threads.extend(s.threads.iter().map(|t| ThreadView {
                state: t.state(),
                changes: 0,
                rec: t.clone(),
            }));
            obs.threads_version = s.threads_version;
        }
        for (k, v) in obs.threads.iter_mut().enumerate() {
            let t = &v.rec;
            v.state = t.state();
            v.changes = t.state_changes.load(SeqCst);
            if let Some(i) = Self::p_index(t) {
                if let Some(p) = obs.procs.get_mut(i) {
                    if powner(p.word) == t.id {
                        p.owner_view = Some(k);
                        p.owner_safepoints = t.safepoints.load(SeqCst);
                        p.preempt_pending =
                            t.preempt_requested.load(SeqCst) != t.preempt_acked.load(SeqCst);
                    }
                }
            }
        }
        obs.runnable_waiting = !s.runq.is_empty();
        obs.stop_pending = self.stop_pending.load(SeqCst);
    }

    /// Retake P `i` from its blocking owner if its word is still `word`
    /// (SYSCALL(owner)): it goes to a waiting thread or becomes idle. The
    /// owner takes the slow path when it leaves its region.
    /// Trace: sysmon's, protected by `sysmonlock`; recorded into the
    /// generation sysmon checked before deciding.
    pub fn retake(&self, i: usize, word: u64, checked: record::Checked) -> bool {
        let mut s = self.sched.lock();
        if self.stop_pending.load(SeqCst) || i >= s.nprocs {
            return false;
        }
        if !handshake::retake(&self.ps[i], word) {
            return false;
        }
        let seq = self.bump_pseq(i);
        record::emit_checked(
            checked,
            EventKind::ProcSteal,
            &[A::U(i as u64), A::U(seq), A::U(powner(word))],
        );
        self.hand_off(&mut s, i);
        true
    }

    /// Ask the owner of a RUNNING P to reach a safepoint; returns the
    /// request's number.
    /// Only a thread still RUNNING is asked: a thread that has begun to
    /// detach (DEAD, still listed until its second `sched` section) has
    /// recorded its `detach`, and a request after it would name a thread
    /// the trace no longer knows.
    /// Returns the request's number and the thread's new sequence number
    /// (the request is an event about the thread: its `detach` carries the
    /// sequence number, so the reader orders the request before it).
    pub fn request_preemption(&self, t: &ThreadRec) -> Option<(u64, u64)> {
        // Under `sched`, a thread still RUNNING is still attached (detach
        // makes it DEAD under `sched` before it leaves the list).
        let _s = self.sched.lock();
        if t.state() != TState::Running {
            return None;
        }
        let seq = t.tseq.fetch_add(1, SeqCst) + 1;
        Some((t.preempt_requested.fetch_add(1, SeqCst) + 1, seq))
    }

    #[cold]
    fn safepoint_slow(&self, rec: &ThreadRec) {
        let Some(i) = Self::p_index(rec) else { return };
        let mut s = self.sched.lock();
        if self.stop_pending.load(SeqCst) {
            if s.stopper == Some(rec.id) {
                return;
            }
            // Park for the stop: the P is STOPPED with this thread as owner,
            // and comes back at the restart. Trace: recorded while still
            // RUNNING on it (the stop waits for this P).
            let seq = self.bump_pseq(i);
            record::emit(EventKind::ProcStop, &[A::U(i as u64), A::U(seq)]);
            handshake::stop_at_safepoint(&self.ps[i], rec.id);
            rec.p.store(0, SeqCst);
            rec.set_state(TState::Runnable);
            rec.granted.store(0, SeqCst);
            self.wake_stopper(&s);
            drop(s);
            self.wait_for_grant(rec);
            self.started_p(rec);
            return;
        }
        // Preemption: someone waits for a P and no new one may be made. A
        // thread keeps its P for a quantum first, so a loop full of
        // safepoints does not spend its time switching.
        let limit = self.limit(&s);
        if i < limit && now_ns().saturating_sub(rec.granted_at.load(Relaxed)) < QUANTUM_NS {
            return;
        }
        let must_yield = i >= limit || (!s.runq.is_empty() && s.nprocs >= limit);
        if must_yield {
            // Queue up behind the waiters, then give the P away (a retired P
            // goes idle instead) and let the queue take any free P.
            let arc = s.threads.iter().find(|x| x.id == rec.id).cloned();
            // Trace: protected by `sched` with no stop pending.
            let seq = self.bump_pseq(i);
            record::emit(EventKind::ProcStop, &[A::U(i as u64), A::U(seq)]);
            rec.p.store(0, SeqCst);
            rec.set_state(TState::Runnable);
            rec.granted.store(0, SeqCst);
            if let Some(a) = arc {
                s.runq.push_back(a);
            }
            if i >= limit {
                self.ps[i].store(pword(P_IDLE, 0), SeqCst);
                self.update_retiring(&s);
            } else {
                self.hand_off(&mut s, i);
            }
            self.serve_queue(&mut s);
            drop(s);
            self.wait_for_grant(rec);
            self.started_p(rec);
        } else {
            self.serve_queue(&mut s);
        }
    }

    /// Give free (or newly allowed) Ps to queued threads. `sched` held, no
    /// stop in force.
    fn serve_queue(&self, s: &mut Sched) {
        while !s.runq.is_empty() {
            match self.free_p(s) {
                Some(j) => self.hand_off(s, j),
                None => break,
            }
        }
        self.runq_len.store(s.runq.len() as u32, SeqCst);
    }

    // ---- blocking regions ------------------------------------------------

    pub fn enter_blocking(&self, reason: Option<&str>) -> Result<()> {
        let Some(rec) = current() else {
            return Err(not_attached("rtc_enter_blocking"));
        };
        if rec.state() != TState::Running {
            return Err(Error::new(
                RTC_ERR_WRONG_STATE,
                format!(
                    "rtc_enter_blocking: {} is {}, not RUNNING (blocking regions do not nest)",
                    rec.describe(),
                    rec.state().name()
                ),
            ));
        }
        self.safepoint_rec(rec);
        rec.publish(reason, None);
        let Some(i) = Self::p_index(rec) else {
            return Err(Error::new(RTC_ERR_WRONG_STATE, "rtc_enter_blocking: no P"));
        };
        // Only this thread changes a RUNNING(self) word. Trace: recorded
        // while still RUNNING (before the P can be claimed).
        let seq = self.bump_pseq_owned(i);
        record::emit(
            EventKind::EnterBlocking,
            &[A::U(i as u64), A::U(seq), A::Str(reason.unwrap_or(""))],
        );
        rec.set_state(TState::Blocking);
        kick();
        if handshake::enter_syscall(&self.ps[i], rec.id, &self.stop_pending) {
            // The stopper may have seen RUNNING: let it claim the P now.
            let s = self.sched.lock();
            self.wake_stopper(&s);
        }
        Ok(())
    }

    pub fn exit_blocking(&self) -> Result<()> {
        let Some(rec) = current() else {
            return Err(not_attached("rtc_exit_blocking"));
        };
        if rec.state() != TState::Blocking {
            return Err(Error::new(
                RTC_ERR_WRONG_STATE,
                format!(
                    "rtc_exit_blocking: {} is {}, not inside a blocking region",
                    rec.describe(),
                    rec.state().name()
                ),
            ));
        }
        self.exit_blocking_rec(rec);
        Ok(())
    }

    fn exit_blocking_rec(&self, rec: &ThreadRec) {
        rec.unpublish();
        kick();
        if let Some(i) = Self::p_index(rec) {
            // Fast path: the P is still ours (SYSCALL(self)).
            if let Exit::Resumed { stop_pending } =
                handshake::exit_fast(&self.ps[i], rec.id, &self.stop_pending)
            {
                // Trace: protected by the stop (RUNNING on the P again; no
                // stop completed since the region began, or it would have
                // claimed the P).
                let seq = self.bump_pseq_owned(i);
                record::emit(EventKind::ExitBlockingFast, &[A::U(i as u64), A::U(seq)]);
                rec.set_state(TState::Running);
                if stop_pending {
                    // A stop began while we were out: it waits for us here.
                    self.safepoint_slow(rec);
                }
                return;
            }
        }
        // Slow path: the P was claimed (by a stop or by sysmon). Trace:
        // gated (the thread has no P; a start may be running).
        record::gated(|e| {
            rec.p.store(0, SeqCst);
            rec.set_state(TState::Runnable);
            e.event(EventKind::ExitBlockingSlow, &[]);
        });
        self.acquire_p(rec);
    }

    // ---- stop / start ----------------------------------------------------

    pub fn stop(&self, reason: &str) -> Result<()> {
        let me = crate::ident::current_id();
        let rec = current();
        loop {
            let mut s = self.sched.lock();
            if s.stopper == Some(me) {
                return Err(Error::new(
                    RTC_ERR_WRONG_STATE,
                    format!(
                        "rtc_stop_the_world: this thread already holds the world stopped ({}); stops do not nest",
                        s.stop_reason
                    ),
                ));
            }
            if s.stopper.is_none() {
                s.stopper = Some(me);
                s.stop_reason = reason.to_string();
                handshake::StopFlag::announce(&self.stop_pending);
                break;
            }
            // Another stop is in force: wait for it like any thread would.
            drop(s);
            match rec {
                Some(r) if Self::p_index(r).is_some() && r.state() == TState::Running => {
                    self.safepoint_slow(r)
                }
                _ => self.wait_until_no_stop(),
            }
        }
        // Trace: the stopper's, protected by the stop it now holds (a trace
        // start or stop must stop the world itself, so the generation
        // cannot change until this stop ends; the start's own stop is not
        // recorded: tracing is off until it publishes).
        crate::record::emit(
            crate::format::EventKind::StwBegin,
            &[crate::record::A::Str(reason)],
        );
        self.claim_all(me, rec);
        self.stops.fetch_add(1, SeqCst);
        if rec.is_none() {
            let _ = UNATTACHED_STOP.try_with(|c| *c.borrow_mut() = Some(UnattachedStop { id: me }));
        }
        Ok(())
    }

    /// Unattached (or P-less) callers wait here for a stop to end.
    fn wait_until_no_stop(&self) {
        let key = self.stopper_key() + 1;
        while self.stop_pending.load(SeqCst) {
            // SAFETY: the validate callback only reads an atomic.
            unsafe {
                crate::base::parked::park(
                    key,
                    || self.stop_pending.load(SeqCst),
                    Some(Instant::now() + Duration::from_millis(10)),
                );
            }
        }
    }

    /// Claim every P: IDLE and SYSCALL at once, RUNNING ones as their
    /// threads reach safepoints.
    fn claim_all(&self, me: u64, rec: Option<&ThreadRec>) {
        let started = Instant::now();
        let mut reported = false;
        let my_p = rec.and_then(Self::p_index);
        let mut snapshot: Vec<(u64, u64)> = Vec::new();
        loop {
            let mut waiting_for = Vec::new();
            let epoch = self.epoch.load(SeqCst);
            {
                let s = self.sched.lock();
                for i in 0..s.nprocs {
                    if Some(i) == my_p {
                        continue;
                    }
                    match handshake::claim(&self.ps[i]) {
                        Claim::Running(owner) => waiting_for.push(owner),
                        Claim::Stolen(victim) => {
                            // Trace: the stopper's, protected by the stop
                            // it holds (and `sched`).
                            let seq = self.bump_pseq(i);
                            record::emit(
                                EventKind::ProcSteal,
                                &[A::U(i as u64), A::U(seq), A::U(victim)],
                            );
                        }
                        Claim::Stopped => {}
                    }
                }
                if waiting_for.is_empty() {
                    return;
                }
                if !reported
                    && started.elapsed().as_nanos() as u64 >= self.tts_threshold_ns.load(SeqCst)
                {
                    reported = true;
                    self.report_tts(&s, &waiting_for, started, &snapshot);
                }
                if snapshot.is_empty() {
                    snapshot = s
                        .threads
                        .iter()
                        .map(|t| (t.id, t.safepoints.load(SeqCst)))
                        .collect();
                }
            }
            let _ = me;
            // Sleep until a thread parks, enters a blocking region or waits
            // (or until the diagnostic is due).
            let threshold = Duration::from_nanos(self.tts_threshold_ns.load(SeqCst));
            let deadline = if reported {
                Instant::now() + Duration::from_secs(1)
            } else {
                started + threshold
            };
            // SAFETY: validate only reads an atomic.
            unsafe {
                crate::base::parked::park(
                    self.stopper_key(),
                    || self.epoch.load(SeqCst) == epoch,
                    Some(deadline),
                );
            }
        }
    }

    fn report_tts(&self, s: &Sched, ids: &[u64], started: Instant, _snap: &[(u64, u64)]) {
        let mut msg = format!(
            "rtcore: stop-the-world ({}) is waiting {} ms for threads to reach a safepoint:\n",
            s.stop_reason,
            started.elapsed().as_millis()
        );
        for t in s.threads.iter().filter(|t| ids.contains(&t.id)) {
            msg.push_str(&format!(
                "  {} is {} and has passed no safepoint for at least {} ms\n",
                t.describe(),
                t.state().name(),
                started.elapsed().as_millis()
            ));
        }
        crate::diag::eprint(&msg);
    }

    pub fn start(&self, me: u64) -> Result<()> {
        let r = self.start_inner(me);
        if r.is_ok() {
            // Dropped outside `sched`: it finds the world no longer held.
            let held = UNATTACHED_STOP.try_with(|c| c.borrow_mut().take());
            drop(held);
        }
        r
    }

    fn start_inner(&self, me: u64) -> Result<()> {
        // Trace: the stopper's, protected by the stop it still holds;
        // recorded before anyone else may run again (and outside `sched`).
        // The flag first, so a start without tracing takes `sched` once.
        if crate::record::rtc_trace_on.load(Relaxed) != 0 && self.sched.lock().stopper == Some(me) {
            crate::record::emit(crate::format::EventKind::StwEnd, &[]);
        }
        let mut s = self.sched.lock();
        match s.stopper {
            None => {
                return Err(Error::new(
                    RTC_ERR_WRONG_STATE,
                    "rtc_start_the_world: the world is not stopped",
                ));
            }
            Some(id) if id != me => {
                return Err(Error::new(
                    RTC_ERR_WRONG_STATE,
                    format!(
                        "rtc_start_the_world: the world was stopped by thread {id}, not by this thread; only the stopper may start it"
                    ),
                ));
            }
            _ => {}
        }
        s.stopper = None;
        self.stop_pending.store(false, SeqCst);
        let limit = self.limit(&s);
        // Ps come back: to the thread parked on it, else IDLE. Wake-ups
        // happen after `sched` is released.
        let mut freed = Vec::new();
        let mut wake = Vec::new();
        // Owners by id, made once: a restart with thousands of threads is
        // one pass over the Ps and one over the threads.
        let by_id: std::collections::HashMap<u64, Arc<ThreadRec>> =
            s.threads.iter().map(|t| (t.id, t.clone())).collect();
        for i in 0..s.nprocs {
            let w = self.ps[i].load(SeqCst);
            if pstate(w) != P_STOPPED {
                continue;
            }
            let owner = powner(w);
            let t = if owner != 0 && i < limit {
                by_id.get(&owner).cloned()
            } else {
                None
            };
            match t {
                Some(t) => {
                    s.runq.retain(|x| x.id != owner);
                    self.grant_deferred(&t, i);
                    wake.push(t.key());
                }
                None => {
                    self.ps[i].store(pword(P_IDLE, 0), SeqCst);
                    if let Some(t) = by_id.get(&owner).cloned() {
                        // Its P was retired: it waits in the queue.
                        if !s.runq.iter().any(|x| x.id == t.id) {
                            s.runq.push_back(t);
                        }
                    }
                    if i < limit {
                        freed.push(i);
                    }
                }
            }
        }
        for i in freed {
            if self.ps[i].load(SeqCst) == pword(P_IDLE, 0) {
                self.hand_off(&mut s, i);
            }
        }
        // Waiters beyond the free Ps: make new ones if allowed.
        while !s.runq.is_empty() {
            match self.free_p(&mut s) {
                Some(j) => self.hand_off(&mut s, j),
                None => break,
            }
        }
        self.runq_len.store(s.runq.len() as u32, SeqCst);
        drop(s);
        for k in wake {
            unpark_key(k);
        }
        // SAFETY: no callback.
        unsafe {
            parking_lot_core::unpark_all(
                self.stopper_key() + 1,
                parking_lot_core::DEFAULT_UNPARK_TOKEN,
            );
        }
        kick();
        Ok(())
    }

    pub fn set_maxprocs(&self, n: usize) -> Result<usize> {
        if n > MAX_PROCS {
            return Err(Error::new(
                RTC_ERR_INVALID_ARGUMENT,
                format!(
                    "rtc_set_maxprocs: {n} exceeds the limit of {MAX_PROCS} (0 means unlimited)"
                ),
            ));
        }
        let mut s = self.sched.lock();
        let old = s.maxprocs;
        s.maxprocs = n;
        // More Ps allowed: serve waiters now (unless a stop is in force; the
        // restart does it). Fewer: owners of retired Ps give them up at
        // their next safepoint.
        if !self.stop_pending.load(SeqCst) {
            while !s.runq.is_empty() {
                match self.free_p(&mut s) {
                    Some(j) => self.hand_off(&mut s, j),
                    None => break,
                }
            }
        }
        // Owners of Ps past the new limit give them up at their next
        // safepoint.
        self.update_retiring(&s);
        Ok(old)
    }

    /// `sched` held.
    fn update_retiring(&self, s: &Sched) {
        let limit = self.limit(s);
        let busy = (limit..s.nprocs).any(|i| {
            let w = self.ps[i].load(SeqCst);
            matches!(pstate(w), P_RUNNING | P_SYSCALL)
        });
        self.retiring.store(busy, SeqCst);
    }

    pub fn maxprocs(&self) -> usize {
        self.sched.lock().maxprocs
    }

    /// Counts of threads by state and Ps by state (diagnostics, tests).
    pub fn census(&self) -> Census {
        let s = self.sched.lock();
        let mut c = Census::default();
        for t in &s.threads {
            match t.state() {
                TState::Running => c.running += 1,
                TState::Runnable => c.runnable += 1,
                TState::Blocking => c.blocking += 1,
                TState::Waiting => c.waiting += 1,
                TState::Dead => {}
            }
        }
        c.procs = s.nprocs;
        for i in 0..s.nprocs {
            match pstate(self.ps[i].load(SeqCst)) {
                P_IDLE => c.p_idle += 1,
                P_RUNNING => c.p_running += 1,
                P_SYSCALL => c.p_syscall += 1,
                _ => c.p_stopped += 1,
            }
        }
        c.stopped = s.stopper.is_some();
        c
    }

    /// For `rtc_shutdown`: refuse while other threads are attached; restart
    /// a world the caller holds stopped and detach the caller.
    pub fn shutdown_prepare(&self) -> Result<()> {
        let me = crate::ident::current_id();
        {
            let s = self.sched.lock();
            let others: Vec<String> = s
                .threads
                .iter()
                .filter(|t| t.id != me)
                .map(|t| t.describe())
                .collect();
            if !others.is_empty() {
                return Err(Error::new(
                    RTC_ERR_WRONG_STATE,
                    format!(
                        "rtc_shutdown refused: {} other thread(s) still attached ({}); detach them first",
                        others.len(),
                        others.join(", ")
                    ),
                ));
            }
        }
        if self.holds_world(me) {
            self.start(me)?;
        }
        if let Some(rec) = current() {
            if rec.state() == TState::Blocking {
                self.exit_blocking_rec(rec);
            }
            self.detach()?;
        }
        Ok(())
    }

    // ---- fork ------------------------------------------------------------

    /// In a forked child only the forking thread exists: it stays attached
    /// (with its P if it had one), every other thread and queue entry is
    /// forgotten, their Ps become free, and a stop made by another thread
    /// is lifted (its stopper does not exist). A stop the forking thread
    /// holds stays in force. The old thread list is leaked, not dropped: a
    /// parent thread may have been changing it at the fork.
    pub fn after_fork_child(&self) {
        let consistent = !self.sched.get_is_locked();
        // SAFETY: called from the child's atfork handler: only this thread.
        unsafe { self.sched.reset_after_fork() };
        if consistent {
            // Nobody was changing the list: purge the parent threads' detail
            // locks too (sysmon may have been parked on one).
            for t in &self.sched.lock().threads {
                // SAFETY: as above.
                unsafe { t.detail.reset_after_fork() };
            }
        }
        let me = crate::ident::current_id();
        let mine: Option<Arc<ThreadRec>> = ATTACHED
            .try_with(|a| {
                a.try_borrow()
                    .ok()
                    .and_then(|a| a.as_ref().and_then(|a| a.rec.clone()))
            })
            .ok()
            .flatten();
        if let Some(rec) = &mine {
            // sysmon may have been reading it at the fork.
            // SAFETY: as above.
            unsafe { rec.detail.reset_after_fork() };
        }
        let mut s = self.sched.lock();
        crate::base::fork::keep_forever(std::mem::take(&mut s.threads));
        s.threads_version += 1;
        crate::base::fork::keep_forever(std::mem::take(&mut s.runq));
        self.runq_len.store(0, SeqCst);
        let i_stop = s.stopper == Some(me) && self.stop_pending.load(SeqCst);
        if !i_stop {
            s.stopper = None;
            self.stop_pending.store(false, SeqCst);
        }
        let my_p = mine.as_deref().and_then(Self::p_index);
        for i in 0..s.nprocs {
            if Some(i) == my_p && powner(self.ps[i].load(SeqCst)) == me {
                continue;
            }
            let free = if i_stop { P_STOPPED } else { P_IDLE };
            self.ps[i].store(pword(free, 0), SeqCst);
        }
        if let Some(rec) = mine {
            if my_p.is_some_and(|i| powner(self.ps[i].load(SeqCst)) != me) {
                rec.p.store(0, SeqCst);
            }
            s.threads.push(rec);
            s.threads_version += 1;
        }
        self.update_retiring(&s);
    }

    // ---- waits inside rtcore (registered with the lock module) ------------

    fn wait_begin(&self) {
        let Some(rec) = current() else {
            // An unattached stopper is reported like an attached one (one
            // atomic load on this path when no stop is pending).
            if self.stop_pending.load(SeqCst) {
                let me = crate::ident::current_id();
                if self.sched.lock().stopper == Some(me) {
                    crate::diag::eprintln(&format!(
                        "rtcore: thread {me} (unattached, tid {}) holds the world stopped and is blocking on a lock: a stopped thread may hold it (use a try-lock)",
                        crate::ident::os_tid()
                    ));
                }
            }
            return;
        };
        if rec.state() != TState::Running {
            return;
        }
        if self.sched.lock().stopper == Some(rec.id) {
            // The stopper keeps its P across its own waits; blocking on a
            // user lock while holding the world stopped may never end.
            crate::diag::eprintln(&format!(
                "rtcore: {} holds the world stopped and is blocking on a lock: a stopped thread may hold it (use a try-lock)",
                rec.describe()
            ));
            return;
        }
        rec.publish(None, Some(crate::base::wait::target()));
        self.release_p(rec, TState::Waiting);
        kick();
    }

    fn wait_end(&self) {
        let Some(rec) = current() else { return };
        let waker = crate::base::parked::last_waker();
        if rec.state() != TState::Waiting {
            return;
        }
        // Trace: gated (a waiting thread has no P; a start may be running).
        let woke = record::gated(|e| {
            let ok = rec
                .state
                .compare_exchange(
                    TState::Waiting as u32,
                    TState::Runnable as u32,
                    SeqCst,
                    SeqCst,
                )
                .is_ok();
            if ok {
                let seq = rec.tseq.fetch_add(1, SeqCst) + 1;
                e.event(EventKind::Unblock, &[A::U(rec.id), A::U(seq), A::U(waker)]);
            }
            ok
        });
        if woke {
            rec.state_changes.fetch_add(1, Relaxed);
            rec.unpublish();
            self.acquire_p(rec);
        }
    }
}

/// A user function told of each preemption request this thread
/// acknowledges (`rtc_set_preempt_handler`).
pub type PreemptFn = unsafe extern "C" fn(request: u64, user_data: *mut std::ffi::c_void);

struct PreemptHandler {
    f: PreemptFn,
    user_data: usize,
}

/// The current handler (null: none). Replaced handlers are leaked, not
/// freed: another thread may be calling one at that moment. (They are few:
/// one per call of `rtc_set_preempt_handler`.)
static PREEMPT_HANDLER: std::sync::atomic::AtomicPtr<PreemptHandler> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

pub fn set_preempt_handler(f: Option<PreemptFn>, user_data: *mut std::ffi::c_void) {
    let new = match f {
        Some(f) => Box::into_raw(Box::new(PreemptHandler {
            f,
            user_data: user_data as usize,
        })),
        None => std::ptr::null_mut(),
    };
    let old = PREEMPT_HANDLER.swap(new, SeqCst);
    if !old.is_null() {
        // Kept reachable (leak checkers see it) but never freed.
        static RETIRED: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());
        if let Ok(mut r) = RETIRED.lock() {
            r.push(old as usize);
        }
    }
}

thread_local! {
    /// A preemption request this thread acknowledged and whose handler has
    /// not run yet (0: none).
    static PREEMPT_DUE: Cell<u64> = const { Cell::new(0) };
}

/// Run the preemption handler for a request acknowledged during the
/// calling rtcore function (`rtc_safepoint`, `rtc_enter_blocking`), as its
/// last step: the world's own work is complete and no record is held.
#[inline]
pub fn deliver_preemption() {
    let req = PREEMPT_DUE.try_with(|c| c.replace(0)).unwrap_or(0);
    if req != 0 {
        call_preempt_handler(req);
    }
}

#[cold]
fn call_preempt_handler(request: u64) {
    // SAFETY: handlers are leaked, never freed, so the pointer stays valid.
    if let Some(h) = unsafe { PREEMPT_HANDLER.load(SeqCst).as_ref() } {
        // SAFETY: the user registered `f` to be called with `user_data`.
        unsafe { (h.f)(request, h.user_data as *mut std::ffi::c_void) };
    }
}

/// How long a thread keeps its P before yielding to waiters at a safepoint
/// (shorter than Go's 10 ms: rtcore threads yield only at explicit
/// safepoints, and a waiting thread should not wait long for one).
pub const QUANTUM_NS: u64 = 1_000_000;

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_ns() -> u64 {
    EPOCH.elapsed().as_nanos() as u64
}

fn unpark_key(k: usize) {
    // SAFETY: no callback.
    unsafe {
        parking_lot_core::unpark_all(k, parking_lot_core::DEFAULT_UNPARK_TOKEN);
    }
}

/// One P as sysmon sees it.
#[derive(Clone, Copy, Debug)]
pub struct ProcView {
    pub index: usize,
    pub word: u64,
    pub owner_safepoints: u64,
    pub preempt_pending: bool,
    /// The owner's place in `Observation::threads` (None: no owner, or
    /// not in the list).
    pub owner_view: Option<usize>,
}

/// One attached thread as sysmon sees it.
#[derive(Clone)]
pub struct ThreadView {
    pub rec: Arc<ThreadRec>,
    pub state: TState,
    pub changes: u64,
}

/// A snapshot for sysmon.
#[derive(Clone, Default)]
pub struct Observation {
    pub procs: Vec<ProcView>,
    pub threads: Vec<ThreadView>,
    pub runnable_waiting: bool,
    pub stop_pending: bool,
    /// `Sched::threads_version` when `threads` was copied.
    threads_version: u64,
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

/// Threads and Ps by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Census {
    pub running: usize,
    pub runnable: usize,
    pub blocking: usize,
    pub waiting: usize,
    pub procs: usize,
    pub p_idle: usize,
    pub p_running: usize,
    pub p_syscall: usize,
    pub p_stopped: usize,
    pub stopped: bool,
}

static HANDLERS: crate::base::wait::WaitHandlers = crate::base::wait::WaitHandlers {
    begin: || world().wait_begin(),
    end: || world().wait_end(),
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
