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

    pub(super) fn exit_blocking_rec(&self, rec: &ThreadRec) {
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
}
