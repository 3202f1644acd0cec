//! What sysmon sees and may do: the observation it takes each tick, a retake, a preemption request; and the census.

use super::*;

impl World {
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
