//! The protocol of the table that finds a thread's held record (and id)
//! from its thread pointer with no TLS descriptor call (`order::place`),
//! apart from the thread pointer itself and the table's hashing, so that
//! loom can model it through `sync` (tests/loom_mutex.rs).
//!
//! A slot is (`tp`, `rec`, `me`): `tp` is 0 (free), `CLAIMING`, or the
//! thread pointer of the thread that claimed it; `rec` and `me` are that
//! thread's record address and id.
//!
//! Invariants (checked by the loom model):
//! - **own entries only**: a lookup by thread pointer `tp` returns a value
//!   only if the thread with that pointer stored it. Only one live thread
//!   has a given thread pointer; a claim is a compare-and-swap from 0 (so
//!   two threads whose pointers share a slot never both own it), and the
//!   claimer writes `rec` and `me` before it publishes `tp` (so even a
//!   signal handler interrupting the claim on the same thread sees
//!   `CLAIMING`, not a half-written entry).
//! - **freed before reuse**: a thread frees its slot (`release`) before it
//!   ends, and a forked child frees every slot but its own thread's
//!   (`clear_unless`): a later thread given the same thread pointer (glibc
//!   reuses TCBs, and a child reuses those of the parent's other threads)
//!   finds the slot free, never the old entry.
//! - Only the owner writes a claimed slot; `clear_unless` runs in a forked
//!   child, on its only thread.

use crate::sync::{AtomicU64, Ordering};

/// A slot being claimed (no thread pointer is 1).
pub const CLAIMING: u64 = 1;

pub struct Slot {
    tp: AtomicU64,
    rec: AtomicU64,
    me: AtomicU64,
}

impl Default for Slot {
    fn default() -> Slot {
        Slot::new()
    }
}

impl Slot {
    #[cfg(not(loom))]
    pub const fn new() -> Slot {
        Slot {
            tp: AtomicU64::new(0),
            rec: AtomicU64::new(0),
            me: AtomicU64::new(0),
        }
    }

    #[cfg(loom)]
    pub fn new() -> Slot {
        Slot {
            tp: AtomicU64::new(0),
            rec: AtomicU64::new(0),
            me: AtomicU64::new(0),
        }
    }

    /// (id, record) if this slot is `tp`'s.
    #[inline(always)]
    pub fn lookup(&self, tp: u64) -> Option<(u64, u64)> {
        if self.tp.load(Ordering::Relaxed) == tp {
            Some((
                self.me.load(Ordering::Relaxed),
                self.rec.load(Ordering::Relaxed),
            ))
        } else {
            None
        }
    }

    /// Claim the slot for `tp` (false: another thread has it).
    pub fn claim(&self, tp: u64, rec: u64, me: u64) -> bool {
        debug_assert!(tp > CLAIMING);
        if self
            .tp
            .compare_exchange(0, CLAIMING, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        self.rec.store(rec, Ordering::Relaxed);
        self.me.store(me, Ordering::Relaxed);
        self.tp.store(tp, Ordering::Release);
        true
    }

    /// `tp`'s thread ends: free the slot if it is `tp`'s.
    pub fn release(&self, tp: u64) {
        if self.tp.load(Ordering::Relaxed) == tp {
            self.tp.store(0, Ordering::Release);
        }
    }

    /// In a forked child, whose only thread has pointer `tp`: free the slot
    /// unless it is `tp`'s.
    pub fn clear_unless(&self, tp: u64) {
        if self.tp.load(Ordering::Relaxed) != tp {
            self.tp.store(0, Ordering::Relaxed);
        }
    }
}

/// Deliberately broken variants, each violating one invariant above, so the
/// loom model can show it catches it. Never used outside the model.
#[cfg(loom)]
pub mod broken {
    use super::*;

    /// Breaks **own entries only**: a claim that checks then stores (no
    /// compare-and-swap), so two threads sharing the slot can mix their
    /// entries.
    pub fn claim_check_then_store(s: &Slot, tp: u64, rec: u64, me: u64) -> bool {
        if s.tp.load(Ordering::Relaxed) != 0 {
            return false;
        }
        s.rec.store(rec, Ordering::Relaxed);
        s.me.store(me, Ordering::Relaxed);
        s.tp.store(tp, Ordering::Release);
        true
    }

    /// Breaks **freed before reuse**: a thread's end that leaves its entry.
    pub fn release_forgetting(_s: &Slot, _tp: u64) {}
}
