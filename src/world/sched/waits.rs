//! Waits inside rtcore (registered with `base::wait`): a thread about to wait gives up its P, and takes one again after.

use super::*;

impl World {
    // ---- waits inside rtcore (registered with the lock module) ------------

    pub(super) fn wait_begin(&self) {
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

    pub(super) fn wait_end(&self) {
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
