//! The world in a forked child.

use super::*;

impl World {
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
}
