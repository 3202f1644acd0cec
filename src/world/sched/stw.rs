//! Stop-the-world: claiming every P, waiting for running threads to reach safepoints, the time-to-safepoint diagnostic, and the restart.

use super::*;

impl World {
    // ---- stop / start ----------------------------------------------------

    pub fn stop(&self, reason: &str) -> Result<()> {
        if crate::base::state::in_hook() {
            return Err(Error::new(
                RTC_ERR_WOULD_DEADLOCK,
                "rtc_stop_the_world called from a hook: hooks run outside the world and may not stop it (a stopped thread may hold what the hook waits for)",
            ));
        }
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
        /// How long the stopper yields before parking, each round.
        const STOPPER_SPIN: Duration = Duration::from_micros(20);
        let started = Instant::now();
        let mut reported = false;
        let my_p = rec.and_then(Self::p_index);
        let mut snapshot: Vec<(u64, u64)> = Vec::new();
        loop {
            let mut waiting_for = Vec::new();
            let epoch = self.epoch.load(SeqCst);
            // Trace: each round's steals and their events in one section of
            // the stopper's gate (always: the stopper need not be attached),
            // `sched` taken inside it.
            let done = record::gated(|e| {
                let s = self.sched.lock();
                for i in 0..s.nprocs {
                    if Some(i) == my_p {
                        continue;
                    }
                    match handshake::claim(&self.ps[i]) {
                        Claim::Running(owner) => waiting_for.push(owner),
                        Claim::Stolen(victim) => {
                            let seq = self.bump_pseq(i);
                            e.event(
                                EventKind::ProcSteal,
                                &[A::U(i as u64), A::U(seq), A::U(victim)],
                            );
                        }
                        Claim::Stopped => {}
                    }
                }
                if waiting_for.is_empty() {
                    return true;
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
                false
            });
            if done {
                return;
            }
            let _ = me;
            // Yield for a few microseconds first: a running thread passes
            // its next safepoint within microseconds (and may need this
            // CPU to get there), while parking costs a futex round trip,
            // tens of microseconds under a hypervisor.
            let spin_until = Instant::now() + STOPPER_SPIN;
            while self.epoch.load(SeqCst) == epoch && Instant::now() < spin_until {
                std::thread::yield_now();
            }
            if self.epoch.load(SeqCst) != epoch {
                continue;
            }
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

    /// The restart under `sched`, inside the stopper's gate: the threads to
    /// wake.
    fn restart_in_gate(&self, me: u64, e: &mut record::Emitter<'_>) -> Result<Vec<usize>> {
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
            match self.free_p(&mut s, e) {
                Some(j) => self.hand_off(&mut s, j),
                None => break,
            }
        }
        self.runq_len.store(s.runq.len() as u32, SeqCst);
        Ok(wake)
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
        // Trace: the restart's new Ps (`free_p`) and their events in one
        // section of the stopper's gate (always: it need not be attached).
        // Grants change nothing the trace shows until each grantee records
        // its `P start`.
        let wake = record::gated(|e| self.restart_in_gate(me, e))?;
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
}
