//! The lock-free part of stop-the-world: the P word transitions that race a
//! stop, apart from the scheduler's bookkeeping so that loom can model them
//! through `sync` (tests/loom_world.rs).
//!
//! P word: `owner << 3 | state`.
//!
//! Invariants (the models check them):
//! - **stop**: once the stopper's `claim` finds no P RUNNING for another
//!   thread, no other thread runs until the restart: a SYSCALL P is claimed
//!   by compare-and-swap, so its owner can no longer take it back, and a
//!   RUNNING one is waited for. (`exit_fast` also reports a pending stop so
//!   the caller parks at once: leaving a region is a safepoint.)
//! - **one winner**: of "the owner takes its SYSCALL P back" and "a claimer
//!   takes it", exactly one happens (both are compare-and-swaps on the word).
//! - **Dekker pair** (no lost wake-up of the stopper): the stopper sets
//!   `stop_pending` before reading any P; a thread writes SYSCALL before
//!   reading `stop_pending`. Both accesses to `stop_pending` are
//!   read-modify-writes, so one reads the other's write in the flag's
//!   modification order and the two synchronise: if the thread read "no
//!   stop", the stopper's later read of the P sees SYSCALL. So a stopper that
//!   read RUNNING and went to sleep is always woken by the thread, which saw
//!   the stop. (This holds under acquire/release alone, which is also how
//!   loom models SeqCst.)

use crate::sync::{AtomicU64, Ordering::SeqCst};

// The trace format's `ProcState` codes (a test in `world` checks they agree).
pub const P_IDLE: u64 = 0;
pub const P_RUNNING: u64 = 1;
pub const P_SYSCALL: u64 = 2;
pub const P_STOPPED: u64 = 3;

#[inline]
pub const fn pword(state: u64, owner: u64) -> u64 {
    (owner << 3) | state
}
#[inline]
pub fn pstate(w: u64) -> u64 {
    w & 7
}
#[inline]
pub fn powner(w: u64) -> u64 {
    w >> 3
}

/// The stop flag, as the handshake sees it.
pub trait StopFlag {
    /// A read-modify-write read (see the Dekker pair).
    fn pending(&self) -> bool;
    /// The stopper's announcement (a read-modify-write).
    fn announce(&self);
}

impl StopFlag for crate::sync::AtomicBool {
    #[inline]
    fn pending(&self) -> bool {
        self.fetch_or(false, SeqCst)
    }
    #[inline]
    fn announce(&self) {
        self.swap(true, SeqCst);
    }
}

/// `enter_blocking`: RUNNING(me) -> SYSCALL(me). Only the owner changes a
/// RUNNING(owner) word, so a store suffices. Returns true if a stop is
/// pending: the stopper may have read RUNNING and must be woken to claim.
#[inline]
pub fn enter_syscall(p: &AtomicU64, me: u64, stop: &impl StopFlag) -> bool {
    p.swap(pword(P_SYSCALL, me), SeqCst);
    stop.pending()
}

/// Outcome of the fast exit from a blocking region.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    /// The P was still ours and is RUNNING(me) again; `stop_pending` says
    /// the caller must park at a safepoint before returning to user code.
    Resumed { stop_pending: bool },
    /// A claimer took the P: take the slow path.
    Claimed,
}

#[inline]
pub fn exit_fast(p: &AtomicU64, me: u64, stop: &impl StopFlag) -> Exit {
    match p.compare_exchange(pword(P_SYSCALL, me), pword(P_RUNNING, me), SeqCst, SeqCst) {
        Ok(_) => Exit::Resumed {
            stop_pending: stop.pending(),
        },
        Err(_) => Exit::Claimed,
    }
}

/// What the stopper found at one P.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// STOPPED now (claimed here from IDLE, or already).
    Stopped,
    /// STOPPED now, claimed here from SYSCALL(owner): the owner's blocking
    /// region lost its P (a `P steal` in the trace).
    Stolen(u64),
    /// RUNNING for this owner: wait for it to reach a safepoint.
    Running(u64),
}

/// The stopper's step for one P (after `stop_pending` is set): IDLE and
/// SYSCALL are claimed by compare-and-swap; a failed swap means the owner
/// changed the word, so it is read again.
pub fn claim(p: &AtomicU64) -> Claim {
    loop {
        let w = p.load(SeqCst);
        match pstate(w) {
            P_IDLE | P_SYSCALL => {
                if p.compare_exchange(w, pword(P_STOPPED, 0), SeqCst, SeqCst)
                    .is_ok()
                {
                    return if pstate(w) == P_SYSCALL {
                        Claim::Stolen(powner(w))
                    } else {
                        Claim::Stopped
                    };
                }
            }
            P_RUNNING => return Claim::Running(powner(w)),
            _ => return Claim::Stopped,
        }
    }
}

/// sysmon's retake of a P it saw as `seen` (SYSCALL(owner)): one
/// compare-and-swap to IDLE, racing the owner's `exit_fast` (one winner).
pub fn retake(p: &AtomicU64, seen: u64) -> bool {
    pstate(seen) == P_SYSCALL
        && p.compare_exchange(seen, pword(P_IDLE, 0), SeqCst, SeqCst)
            .is_ok()
}

/// A RUNNING thread parking for a stop at a safepoint: its P becomes
/// STOPPED with it as owner, to be given back at the restart.
#[inline]
pub fn stop_at_safepoint(p: &AtomicU64, me: u64) {
    p.store(pword(P_STOPPED, me), SeqCst);
}

/// Deliberately broken variants for the models (never used elsewhere).
#[cfg(loom)]
pub mod broken {
    use super::*;

    /// Breaks the **Dekker pair**: publishes SYSCALL but never reports the
    /// pending stop, so a stopper that saw RUNNING sleeps forever.
    pub fn enter_syscall_silent(p: &AtomicU64, me: u64, _stop: &impl StopFlag) -> bool {
        p.swap(pword(P_SYSCALL, me), SeqCst);
        false
    }

    /// Breaks **one winner**: claims a SYSCALL P with a plain store, so the
    /// owner's compare-and-swap can also succeed.
    pub fn claim_by_store(p: &AtomicU64) -> Claim {
        let w = p.load(SeqCst);
        match pstate(w) {
            P_IDLE | P_SYSCALL => {
                p.store(pword(P_STOPPED, 0), SeqCst);
                Claim::Stopped
            }
            P_RUNNING => Claim::Running(powner(w)),
            _ => Claim::Stopped,
        }
    }

    /// Breaks **one winner** against sysmon: checks the word, then stores
    /// IDLE, so the owner's `exit_fast` can take the P back in between and
    /// both believe they have it.
    pub fn retake_by_store(p: &AtomicU64, seen: u64) -> bool {
        if pstate(seen) == P_SYSCALL && p.load(SeqCst) == seen {
            p.store(pword(P_IDLE, 0), SeqCst);
            true
        } else {
            false
        }
    }

    /// Breaks **stop**: counts a RUNNING P as stopped instead of waiting
    /// for its owner to reach a safepoint.
    pub fn claim_not_waiting(p: &AtomicU64) -> Claim {
        match claim(p) {
            Claim::Running(_) => Claim::Stopped,
            c => c,
        }
    }
}
