//! The lock-word protocol of `rtc_mutex`, apart from everything else (ranks,
//! the held record, C memory) so that loom can model it through `sync`.
//!
//! Word: `owner << 1 | PARKED`; owner 0 means unlocked.
//!
//! Invariants (checked by the loom models in tests/loom_mutex.rs):
//! - **mutual exclusion**: only a compare-and-swap from owner 0 sets an
//!   owner, so at most one thread holds the word.
//! - **no lost wake-up**: a waiter parks only after seeing (under the bucket
//!   lock) an owner and PARKED set; an unlocker that sees PARKED wakes one
//!   waiter and clears PARKED only when no waiter remains, also under the
//!   bucket lock. So a parked waiter is always woken by some later unlock.
//! - **no hand-off**: unlock clears the owner before waking anyone; a woken
//!   waiter competes with every other thread by compare-and-swap.
//! - **owner-only release**: release succeeds only for the owner.

use crate::sync::{AtomicU64, Ordering, park, spin_hint};

pub const PARKED: u64 = 1;

#[inline(always)]
pub fn owner(s: u64) -> u64 {
    s >> 1
}

/// A view of one lock word and its parking key.
pub struct LockWord<'a> {
    pub state: &'a AtomicU64,
    pub key: usize,
}

/// Outcome of a try-acquire.
#[derive(Debug, PartialEq, Eq)]
pub enum Try {
    Acquired,
    HeldByMe,
    Busy(u64),
}

impl LockWord<'_> {
    /// The uncontended acquire: one compare-and-swap from 0.
    #[inline(always)]
    pub fn acquire_uncontended(&self, me: u64) -> bool {
        self.state
            .compare_exchange(0, me << 1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Acquire without blocking (keeps PARKED for queued waiters).
    pub fn try_acquire(&self, me: u64) -> Try {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            match owner(s) {
                o if o == me => return Try::HeldByMe,
                0 => {}
                o => return Try::Busy(o),
            }
            match self.state.compare_exchange_weak(
                s,
                (me << 1) | (s & PARKED),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Try::Acquired,
                Err(now) => s = now,
            }
        }
    }

    pub fn current_owner(&self) -> u64 {
        owner(self.state.load(Ordering::Relaxed))
    }

    /// Block until acquired. The caller made sure it is not the owner.
    /// `before_park`/`after_park` run around each sleep (the world's hooks).
    /// Spins briefly first (the holder is likely running), with no
    /// `sched_yield`: on a small machine that is a wasted system call.
    ///
    /// Returns the thread whose unlock last woke the caller (0: it was
    /// never woken by an unlock: it acquired without sleeping). It is read
    /// as each park returns, before `after_park`, which may park again (for
    /// a P) and would overwrite it.
    #[cold]
    pub fn acquire_contended(&self, me: u64, before_park: fn(), after_park: fn()) -> u64 {
        let mut waker = 0;
        // 1 + 2 + ... + 32 pause instructions; one round under loom, where
        // each spin is a scheduling point.
        #[cfg(not(loom))]
        const SPIN_ROUNDS: u32 = 6;
        #[cfg(loom)]
        const SPIN_ROUNDS: u32 = 1;
        let mut round = 0;
        loop {
            let s = self.state.load(Ordering::Relaxed);
            if owner(s) == 0 {
                if self
                    .state
                    .compare_exchange_weak(
                        s,
                        (me << 1) | (s & PARKED),
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                {
                    return waker;
                }
                continue;
            }
            if s & PARKED == 0 {
                if round < SPIN_ROUNDS {
                    for _ in 0..(1u32 << round) {
                        spin_hint();
                    }
                    round += 1;
                    continue;
                }
                if self
                    .state
                    .compare_exchange_weak(s, s | PARKED, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
                {
                    continue;
                }
            }
            before_park();
            let state = self.state;
            // SAFETY: the validate callback only reads an atomic.
            unsafe {
                park::park(self.key, || {
                    let s = state.load(Ordering::Relaxed);
                    owner(s) != 0 && s & PARKED != 0
                });
            }
            // A park that did not sleep (the word changed first) or was not
            // ended by an unlock keeps the waker of the one before.
            waker = match park::last_waker() {
                0 => waker,
                w => w,
            };
            after_park();
            round = 0;
        }
    }

    /// The uncontended release: one compare-and-swap, which also proves
    /// ownership. False: nothing changed (not the owner, or waiters parked).
    #[inline(always)]
    pub fn release_uncontended(&self, me: u64) -> bool {
        self.state
            .compare_exchange(me << 1, 0, Ordering::Release, Ordering::Relaxed)
            .is_ok()
    }

    /// Release; `Err(actual owner)` if `me` is not the owner.
    pub fn release(&self, me: u64) -> Result<(), u64> {
        if self.release_uncontended(me) {
            return Ok(());
        }
        let s = self.state.load(Ordering::Relaxed);
        if owner(s) != me {
            return Err(owner(s));
        }
        // Owner with PARKED set: only other threads' PARKED updates can race,
        // and they keep the owner, so the store below is the release.
        self.release_parked();
        Ok(())
    }

    #[cold]
    fn release_parked(&self) {
        let state = self.state;
        // SAFETY: the callback only stores to an atomic.
        unsafe {
            park::unpark_one(self.key, |more| {
                // Clear the owner; never hand the lock to the woken thread.
                state.store(if more { PARKED } else { 0 }, Ordering::Release);
            });
        }
    }
}

/// Deliberately broken variants, each violating one invariant above, so the
/// loom models can show they catch it. Never used outside the models.
#[cfg(loom)]
pub mod broken {
    use super::*;

    /// Breaks **mutual exclusion**: check-then-store instead of a
    /// compare-and-swap.
    pub fn acquire_check_then_store(w: &LockWord<'_>, me: u64) {
        loop {
            if owner(w.state.load(Ordering::Acquire)) == 0 {
                w.state.store(me << 1, Ordering::Relaxed);
                return;
            }
            spin_hint();
        }
    }

    /// Breaks **no lost wake-up**: clears the word (PARKED included) and
    /// wakes nobody.
    pub fn release_forgetting_waiters(w: &LockWord<'_>, _me: u64) {
        w.state.store(0, Ordering::Release);
    }
}
