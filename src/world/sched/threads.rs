//! Attaching and detaching threads, and the caller's part of a shutdown.

use super::*;

impl World {
    // ---- attach / detach -------------------------------------------------

    pub fn attach(&self, name: &str) -> Result<u64> {
        if crate::base::state::in_hook() {
            return Err(Error::new(
                RTC_ERR_WRONG_STATE,
                "rtc_thread_attach called from a hook: the hook thread runs outside the world and may not attach",
            ));
        }
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
            p_started: AtomicBool::new(false),
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

    pub(super) fn detach_rec(&self, rec: &ThreadRec) {
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
}
