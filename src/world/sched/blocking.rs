//! Blocking regions: entering (the P goes SYSCALL), leaving by the fast path (taking it back) or the slow one (after a retake or a stop).

use super::*;

impl World {
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
        // Only this thread changes a RUNNING(self) word. Trace: the P's
        // sequence, the event, the state and the P word change in one
        // section of this thread's gate (a rollover reads them all at rest;
        // a start or stop waits for this RUNNING thread).
        let wake_stopper = record::gated_if_tracing(|e| {
            let seq = self.bump_pseq_owned(i);
            e.event(
                EventKind::EnterBlocking,
                &[A::U(i as u64), A::U(seq), A::Str(reason.unwrap_or(""))],
            );
            rec.set_state(TState::Blocking);
            handshake::enter_syscall(&self.ps[i], rec.id, &self.stop_pending)
        });
        kick();
        if wake_stopper {
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

    pub(super) fn exit_blocking_rec(&self, rec: &ThreadRec) {
        rec.unpublish();
        kick();
        if let Some(i) = Self::p_index(rec) {
            // Fast path: the P is still ours (SYSCALL(self)). Trace: the
            // compare-and-swap that wins it back, the event and the state
            // in one section of the gate (a stop's claim would make the
            // swap fail, so a start or stop cannot come in between).
            let resumed = record::gated_if_tracing(|e| {
                match handshake::exit_fast(&self.ps[i], rec.id, &self.stop_pending) {
                    Exit::Resumed { stop_pending } => {
                        let seq = self.bump_pseq_owned(i);
                        e.event(EventKind::ExitBlockingFast, &[A::U(i as u64), A::U(seq)]);
                        rec.set_state(TState::Running);
                        Some(stop_pending)
                    }
                    _ => None,
                }
            });
            if let Some(stop_pending) = resumed {
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
}
