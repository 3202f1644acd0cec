//! The lock-word protocol of `rtc_mutex`, apart from everything else (ranks,
//! the held record, C memory) so that loom can model it through `sync`.
//!
//! Word: `owner << 2 | RESERVED | PARKED`; owner 0 means unlocked.
//! Waiters park on `key`; the one reserving waiter parks on `key + 1`
//! (keys are lock addresses, at least 8-aligned, so `key + 1` is no other
//! lock's key).
//!
//! Invariants (checked by the loom models in tests/loom_mutex.rs):
//! - **mutual exclusion**: only a compare-and-swap from owner 0 sets an
//!   owner, so at most one thread holds the word.
//! - **no lost wake-up**: a waiter parks only after seeing (under the bucket
//!   lock) the lock owned or reserved and PARKED set; an unlocker that saw
//!   PARKED wakes one waiter and clears PARKED only when no waiter remains,
//!   also under the bucket lock. So a parked waiter is always woken by some
//!   later unlock.
//! - **no hand-off**: unlock clears the owner before waking anyone; a woken
//!   waiter takes the lock by compare-and-swap, after it has retaken its P
//!   (the world's `after_park`), so ownership never sits with a thread that
//!   cannot run.
//! - **eventual fairness**: a waiter that has waited longer than
//!   `FAIR_AFTER` and was beaten again sets RESERVED (one reserver at a
//!   time: set by compare-and-swap only when clear). While RESERVED is set
//!   no blocking acquirer takes the lock: newcomers park behind it. (A
//!   try-lock may take it, keeping RESERVED; the reserver parks again.) An unlock that sees RESERVED clears the owner and wakes the
//!   reserver (on `key + 1`), which takes the lock once it can run, clearing
//!   RESERVED. The reserver parks only while the lock is owned, checked
//!   under its bucket lock, so that wake cannot be lost.
//! - **owner-only release**: release succeeds only for the owner.

use crate::sync::{AtomicU64, Ordering, park, spin_hint};

pub const PARKED: u64 = 1;
pub const RESERVED: u64 = 2;
pub(super) const FLAGS: u64 = PARKED | RESERVED;

#[inline(always)]
pub fn owner(s: u64) -> u64 {
    s >> 2
}

#[inline(always)]
fn owned_by(me: u64) -> u64 {
    me << 2
}

/// A waiter beaten to the lock after waiting this long reserves it. Go's
/// and parking_lot's mutexes switch to fairness after 1 ms and about 0.5 ms.
#[cfg(not(loom))]
const FAIR_AFTER: std::time::Duration = std::time::Duration::from_micros(500);

/// Spinning before parking: rounds of 1, 2, 4, ... pause instructions
/// while the holder is likely running, then a few `sched_yield`s, which
/// let a holder that shares the CPU finish (the measured best on small
/// machines: parking costs two system calls and, for an attached thread,
/// giving its P back and retaking it).
#[cfg(not(loom))]
const SPIN_ROUNDS: u32 = 3;
#[cfg(not(loom))]
const YIELD_ROUNDS: u32 = 7;
// Under loom each spin is a scheduling point: one round, no yields.
#[cfg(loom)]
const SPIN_ROUNDS: u32 = 1;
#[cfg(loom)]
const YIELD_ROUNDS: u32 = 0;

/// One step of the spin before parking (the rwlock's too); false when
/// spinning is over.
#[inline]
pub(crate) fn spin(round: &mut u32) -> bool {
    if *round < SPIN_ROUNDS {
        #[cfg(not(loom))]
        for _ in 0..(2u32 << *round) {
            spin_hint();
        }
        #[cfg(loom)]
        spin_hint();
    } else if *round < SPIN_ROUNDS + YIELD_ROUNDS {
        #[cfg(not(loom))]
        std::thread::yield_now();
    } else {
        return false;
    }
    *round += 1;
    true
}

/// The spin of a lock call that found the mutex held and nobody parked
/// (`MutexRef::lock_fast_spinning`, before the full path): `sched_yield`s
/// only, the word read once after each, no pause loop. A pause loop reads
/// the word every few nanoseconds; against an owner that unlocks and locks
/// again at once (a hot lock), each read takes the line from the owner and
/// most land in its few-nanosecond unlocked window between the two, so the
/// lock changed hands every ~12 acquisitions, each change a round of cache
/// misses on both sides (measured: 75-88 owner changes per 1000 ops, 0.53-0.57x
/// parking_lot). A yield reads it about once a microsecond (30 changes
/// per 1000, 0.75-0.84x). A long-held lock is still waited for with the
/// pause loop, in `acquire_contended` (the full path), before parking.
#[cfg(not(loom))]
#[inline]
pub(crate) fn spin_yielding(round: &mut u32) -> bool {
    if *round >= YIELD_ROUNDS {
        return false;
    }
    std::thread::yield_now();
    *round += 1;
    true
}

/// How long a waiter has waited, for fairness. Under loom (no time) the
/// model chooses (`IMPATIENT`): every waiter that finds the lock owned
/// reserves it when it can, or none does, so the models check the
/// reservation protocol and the plain park path each in every schedule.
struct Patience {
    #[cfg(not(loom))]
    since: Option<std::time::Instant>,
    wakes: u32,
}

impl Patience {
    fn new() -> Patience {
        Patience {
            #[cfg(not(loom))]
            since: None,
            wakes: 0,
        }
    }
    /// About to park (the first park starts the clock).
    fn parking(&mut self) {
        #[cfg(not(loom))]
        if self.since.is_none() {
            self.since = Some(std::time::Instant::now());
        }
    }
    fn woke(&mut self) {
        self.wakes += 1;
    }
    /// Beaten after a wake-up, having waited long enough to reserve.
    fn exhausted(&self) -> bool {
        #[cfg(not(loom))]
        {
            self.wakes > 0 && self.since.is_some_and(|t| t.elapsed() >= FAIR_AFTER)
        }
        #[cfg(loom)]
        IMPATIENT.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Reservations made in every execution, so the loom model can show its
/// executions reach the fairness path (a plain std atomic: not modelled).
#[cfg(loom)]
pub static RESERVATIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// Parks on the plain path (key), likewise.
#[cfg(loom)]
pub static PLAIN_PARKS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// The model's choice of patience (see `Patience`).
#[cfg(loom)]
pub static IMPATIENT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

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
    /// Held by this thread id.
    Busy(u64),
}

impl LockWord<'_> {
    /// The uncontended acquire: one compare-and-swap from 0.
    #[inline(always)]
    pub fn acquire_uncontended(&self, me: u64) -> bool {
        self.state
            .compare_exchange(0, owned_by(me), Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Acquire without blocking (keeps PARKED for queued waiters). A free
    /// lock reserved for a long waiter is taken too, keeping RESERVED: the
    /// reserver, seeing it owned, parks again, and this owner's unlock wakes
    /// it. (So a thread holding the world stopped, whose reserver cannot
    /// run until the world starts, can still try-lock: DESIGN's rule for
    /// the stopper.)
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
                owned_by(me) | (s & FLAGS),
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
    /// `before_park`/`after_park` run around each sleep (the world's hooks:
    /// give the P back, take it again).
    ///
    /// Returns the thread whose unlock last woke the caller (0: it was
    /// never woken by an unlock: it acquired without sleeping). It is read
    /// as each park returns, before `after_park`, which may park again (for
    /// a P) and would overwrite it.
    #[cold]
    pub fn acquire_contended(&self, me: u64, before_park: fn(), after_park: fn()) -> u64 {
        let mut waker = 0;
        let mut round = 0;
        let mut patience = Patience::new();
        loop {
            let s = self.state.load(Ordering::Relaxed);
            if s & RESERVED == 0 {
                if owner(s) == 0 {
                    if self
                        .state
                        .compare_exchange_weak(
                            s,
                            owned_by(me) | (s & PARKED),
                            Ordering::Acquire,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                    {
                        return waker;
                    }
                    continue;
                }
                if patience.exhausted() {
                    // Beaten again after a long wait: reserve the lock.
                    if self
                        .state
                        .compare_exchange_weak(
                            s,
                            s | RESERVED,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                    {
                        return self.acquire_reserved(me, waker, before_park, after_park);
                    }
                    continue;
                }
                if s & PARKED == 0 && spin(&mut round) {
                    continue;
                }
            }
            if s & PARKED == 0
                && self
                    .state
                    .compare_exchange_weak(s, s | PARKED, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            patience.parking();
            #[cfg(loom)]
            PLAIN_PARKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            before_park();
            let state = self.state;
            // SAFETY: the validate callback only reads an atomic.
            unsafe {
                park::park(self.key, || {
                    let s = state.load(Ordering::Relaxed);
                    (owner(s) != 0 || s & RESERVED != 0) && s & PARKED != 0
                });
            }
            // A park that did not sleep (the word changed first) or was not
            // ended by an unlock keeps the waker of the one before.
            waker = match park::last_waker() {
                0 => waker,
                w => w,
            };
            after_park();
            patience.woke();
            round = 0;
        }
    }

    /// The reserver's wait: nobody else takes the lock until this thread
    /// does, once it can run (after `after_park`).
    #[cold]
    fn acquire_reserved(
        &self,
        me: u64,
        mut waker: u64,
        before_park: fn(),
        after_park: fn(),
    ) -> u64 {
        #[cfg(loom)]
        RESERVATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        loop {
            let s = self.state.load(Ordering::Relaxed);
            debug_assert!(s & RESERVED != 0, "only the reserver clears RESERVED");
            if owner(s) == 0 {
                if self
                    .state
                    .compare_exchange_weak(
                        s,
                        owned_by(me) | (s & PARKED),
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                {
                    return waker;
                }
                continue;
            }
            before_park();
            let state = self.state;
            // SAFETY: the validate callback only reads an atomic.
            unsafe {
                park::park(self.key + 1, || owner(state.load(Ordering::Relaxed)) != 0);
            }
            waker = match park::last_waker() {
                0 => waker,
                w => w,
            };
            after_park();
        }
    }

    /// The uncontended release: one compare-and-swap, which also proves
    /// ownership. False: nothing changed (not the owner, or waiters parked,
    /// or reserved).
    #[inline(always)]
    pub fn release_uncontended(&self, me: u64) -> bool {
        self.state
            .compare_exchange(owned_by(me), 0, Ordering::Release, Ordering::Relaxed)
            .is_ok()
    }

    /// Release; `Err(actual owner)` if `me` is not the owner.
    pub fn release(&self, me: u64) -> Result<(), u64> {
        if self.release_uncontended(me) {
            return Ok(());
        }
        self.release_slow(me)
    }

    #[cold]
    fn release_slow(&self, me: u64) -> Result<(), u64> {
        // Clear the owner, keeping the flags (waiters may set PARKED or
        // RESERVED meanwhile: hence the loop).
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if owner(s) != me {
                return Err(owner(s));
            }
            match self.state.compare_exchange_weak(
                s,
                s & FLAGS,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        if s & RESERVED != 0 {
            // The reserver takes it; the others stay parked behind it.
            // SAFETY: no callback work.
            unsafe { park::unpark_one(self.key + 1, |_| {}) };
        } else if s & PARKED != 0 {
            let state = self.state;
            // SAFETY: the callback only updates an atomic.
            unsafe {
                park::unpark_one(self.key, |more| {
                    if !more {
                        state.fetch_and(!PARKED, Ordering::Relaxed);
                    }
                });
            }
        }
        Ok(())
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
                w.state.store(owned_by(me), Ordering::Relaxed);
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

    /// Breaks **eventual fairness** (its no-lost-wake-up half): an unlock
    /// that ignores RESERVED and wakes an ordinary waiter, so the parked
    /// reserver is never woken.
    pub fn release_ignoring_reserver(w: &LockWord<'_>, me: u64) {
        let s = w.state.fetch_and(FLAGS, Ordering::Release);
        assert_eq!(owner(s), me, "not the owner");
        if s & FLAGS != 0 {
            let state = w.state;
            // SAFETY: the callback only updates an atomic.
            unsafe {
                park::unpark_one(w.key, |more| {
                    if !more {
                        state.fetch_and(!PARKED, Ordering::Relaxed);
                    }
                });
            }
        }
    }
}
