//! maxprocs: changing it, retiring Ps above it.

use super::*;

impl World {
    pub fn set_maxprocs(&self, n: usize) -> Result<usize> {
        if n > MAX_PROCS {
            return Err(Error::new(
                RTC_ERR_INVALID_ARGUMENT,
                format!(
                    "rtc_set_maxprocs: {n} exceeds the limit of {MAX_PROCS} (0 means unlimited)"
                ),
            ));
        }
        // Trace: in the gate (always: the caller need not be attached or
        // RUNNING), for `free_p`'s new Ps and their events.
        let old = record::gated(|e| {
            let mut s = self.sched.lock();
            let old = s.maxprocs;
            s.maxprocs = n;
            // More Ps allowed: serve waiters now (unless a stop is in force;
            // the restart does it). Fewer: owners of retired Ps give them up
            // at their next safepoint.
            if !self.stop_pending.load(SeqCst) {
                while !s.runq.is_empty() {
                    match self.free_p(&mut s, e) {
                        Some(j) => self.hand_off(&mut s, j),
                        None => break,
                    }
                }
            }
            // Owners of Ps past the new limit give them up at their next
            // safepoint.
            self.update_retiring(&s);
            old
        });
        Ok(old)
    }

    /// `sched` held.
    pub(super) fn update_retiring(&self, s: &Sched) {
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
}
