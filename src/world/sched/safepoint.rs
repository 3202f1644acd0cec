//! Safepoints: the cheap check, and the slow path that parks for a stop or yields a P.

use super::*;

impl World {
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
            // if someone waits for a P. Trace: the count and its event in
            // one section of the gate (the status carries the count).
            record::gated_if_tracing(|e| {
                rec.preempt_acked.store(req, SeqCst);
                e.event(EventKind::PreemptAck, &[A::U(req)]);
            });
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

    #[cold]
    pub(super) fn safepoint_slow(&self, rec: &ThreadRec) {
        let Some(i) = Self::p_index(rec) else { return };
        // Trace: the decision, the P given up and the events in one
        // section of the gate, `sched` taken inside it (the thread is
        // RUNNING: a start or stop waits for it).
        let gave_up = record::gated_if_tracing(|e| self.safepoint_decide(rec, i, e));
        if gave_up {
            self.wait_for_grant(rec);
            self.started_p(rec);
        }
    }

    /// `safepoint_slow`'s decision, inside the thread's gate: whether the
    /// thread gave its P up (and must wait for a grant).
    fn safepoint_decide(&self, rec: &ThreadRec, i: usize, e: &mut record::Emitter<'_>) -> bool {
        let mut s = self.sched.lock();
        if self.stop_pending.load(SeqCst) {
            if s.stopper == Some(rec.id) {
                return false;
            }
            // Park for the stop: the P is STOPPED with this thread as owner,
            // and comes back at the restart.
            let seq = self.bump_pseq(i);
            e.event(EventKind::ProcStop, &[A::U(i as u64), A::U(seq)]);
            handshake::stop_at_safepoint(&self.ps[i], rec.id);
            rec.p.store(0, SeqCst);
            rec.set_state(TState::Runnable);
            rec.granted.store(0, SeqCst);
            self.wake_stopper(&s);
            return true;
        }
        // Preemption: someone waits for a P and no new one may be made. A
        // thread keeps its P for a quantum first, so a loop full of
        // safepoints does not spend its time switching.
        let limit = self.limit(&s);
        if i < limit && now_ns().saturating_sub(rec.granted_at.load(Relaxed)) < QUANTUM_NS {
            return false;
        }
        let must_yield = i >= limit || (!s.runq.is_empty() && s.nprocs >= limit);
        if !must_yield {
            self.serve_queue(&mut s, e);
            return false;
        }
        // Queue up behind the waiters, then give the P away (a retired P
        // goes idle instead) and let the queue take any free P.
        let arc = s.threads.iter().find(|x| x.id == rec.id).cloned();
        let seq = self.bump_pseq(i);
        e.event(EventKind::ProcStop, &[A::U(i as u64), A::U(seq)]);
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
        self.serve_queue(&mut s, e);
        true
    }

    /// Give free (or newly allowed) Ps to queued threads. `sched` held, no
    /// stop in force, inside the caller's gate (`free_p` may record).
    fn serve_queue(&self, s: &mut Sched, e: &mut record::Emitter<'_>) {
        while !s.runq.is_empty() {
            match self.free_p(s, e) {
                Some(j) => self.hand_off(s, j),
                None => break,
            }
        }
        self.runq_len.store(s.runq.len() as u32, SeqCst);
    }
}
