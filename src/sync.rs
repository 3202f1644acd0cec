//! The small `sync` shim through which hand-rolled protocols reach atomics
//! and the parking lot, so loom can model the production code itself.
//!
//! Normally: std's atomics and parking_lot_core's parking lot. Under
//! `--cfg loom`: loom's atomics and a parking lot built from loom's Mutex and
//! Condvar with the same contract (validate and enqueue under the bucket
//! lock; unpark's callback runs under the bucket lock).

#[cfg(not(loom))]
pub use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering, fence};

#[cfg(loom)]
pub use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering, fence};

/// Busy-wait hint (a scheduling point under loom).
#[inline(always)]
pub fn spin_hint() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

#[cfg(not(loom))]
pub mod park {
    /// Park on `key` while `validate()` holds (checked under the bucket
    /// lock). Returns when unparked (or spuriously).
    ///
    /// # Safety
    /// `validate` must not panic or call into the parking lot.
    #[inline]
    pub unsafe fn park(key: usize, validate: impl FnOnce() -> bool) {
        // SAFETY: forwarded contract.
        unsafe {
            crate::base::parked::park(key, validate, None);
        }
    }

    /// The thread whose unpark ended the caller's last `park` (0: none
    /// known, or the park did not sleep).
    #[inline]
    pub fn last_waker() -> u64 {
        crate::base::parked::last_waker()
    }

    /// Unpark every thread parked on `key`, each told the caller woke it
    /// (`last_waker`).
    ///
    /// # Safety
    /// None beyond the parking lot's; kept `unsafe` to match `unpark_one`.
    #[inline]
    pub unsafe fn unpark_all(key: usize) {
        // SAFETY: no callback.
        unsafe {
            parking_lot_core::unpark_all(key, crate::base::parked::waker_token());
        }
    }

    /// Unpark one thread parked on `key`; `callback(more_waiters)` runs under
    /// the bucket lock before the thread is woken. Returns whether a thread
    /// was woken.
    ///
    /// # Safety
    /// `callback` must not panic or call into the parking lot.
    #[inline]
    pub unsafe fn unpark_one(key: usize, callback: impl FnOnce(bool)) -> bool {
        // SAFETY: forwarded contract.
        unsafe {
            let token = crate::base::parked::waker_token();
            parking_lot_core::unpark_one(key, |r| {
                callback(r.have_more_threads);
                token
            })
            .unparked_threads
                > 0
        }
    }
}

#[cfg(loom)]
pub mod park {
    //! One global bucket: a loom Mutex over the queue of parked tickets, and
    //! one Condvar. Enough for models with a handful of threads.
    use loom::sync::{Condvar, Mutex};
    use std::collections::VecDeque;

    struct Bucket {
        /// (key, ticket) of parked threads, in arrival order.
        queue: VecDeque<(usize, u64)>,
        /// Tickets that were unparked and not yet noticed by their thread.
        woken: Vec<u64>,
        next_ticket: u64,
    }

    loom::lazy_static! {
        static ref BUCKET: Mutex<Bucket> = Mutex::new(Bucket { queue: VecDeque::new(), woken: Vec::new(), next_ticket: 0 });
        static ref CV: Condvar = Condvar::new();
    }

    /// The model does not track who unparked whom.
    pub fn last_waker() -> u64 {
        0
    }

    /// # Safety
    /// As the production version.
    pub unsafe fn park(key: usize, validate: impl FnOnce() -> bool) {
        let mut b = BUCKET.lock().unwrap();
        if !validate() {
            return;
        }
        let t = b.next_ticket;
        b.next_ticket += 1;
        b.queue.push_back((key, t));
        loop {
            if let Some(i) = b.woken.iter().position(|w| *w == t) {
                b.woken.swap_remove(i);
                return;
            }
            b = CV.wait(b).unwrap();
        }
    }

    /// # Safety
    /// As the production version.
    pub unsafe fn unpark_all(key: usize) {
        let mut b = BUCKET.lock().unwrap();
        let mut woken = Vec::new();
        b.queue.retain(|(k, t)| {
            if *k == key {
                woken.push(*t);
                false
            } else {
                true
            }
        });
        if !woken.is_empty() {
            b.woken.extend(woken);
            CV.notify_all();
        }
    }

    /// # Safety
    /// As the production version.
    pub unsafe fn unpark_one(key: usize, callback: impl FnOnce(bool)) -> bool {
        let mut b = BUCKET.lock().unwrap();
        let pos = b.queue.iter().position(|(k, _)| *k == key);
        let ticket = pos.map(|i| b.queue.remove(i).unwrap().1);
        let more = b.queue.iter().any(|(k, _)| *k == key);
        callback(more);
        if let Some(t) = ticket {
            b.woken.push(t);
            CV.notify_all();
        }
        ticket.is_some()
    }
}
