//! Which key each thread is parked on, so that a forked child can empty
//! the parking lot's queues of threads that do not exist there.
//!
//! Why: parking_lot keeps each parked thread's queue entry inside that
//! thread's own memory (its TLS, on its stack). In a forked child the
//! parent's other threads are gone but their entries stay queued, and glibc
//! hands their stacks to the child's new threads: a new thread's entry then
//! lands on a stale one and corrupts the queues (seen as "assertion failed:
//! current.is_some()" in parking_lot). The child's atfork handler, before
//! any new thread exists, unparks every key some parent thread was parked
//! on, which removes those entries while their memory is still intact.
//!
//! Invariants:
//! - Every park in rtcore goes through `park` here (or is a parking_lot
//!   lock's internal park, whose keys the resettable locks purge
//!   themselves), so a thread parked at the fork has its key in its slot.
//! - Slots live in an append-only, lock-free list of leaked nodes (no lock:
//!   the child handler may run after a fork that interrupted anything).
//!   A thread claims a free slot on its first park and frees it at exit.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering::SeqCst};
use std::time::Instant;

struct Slot {
    /// The key this thread is parked on (0: not parked).
    key: AtomicUsize,
    in_use: AtomicBool,
    next: *const Slot,
}

static HEAD: AtomicPtr<Slot> = AtomicPtr::new(std::ptr::null_mut());

struct Claim(&'static Slot);

impl Drop for Claim {
    fn drop(&mut self) {
        self.0.key.store(0, SeqCst);
        self.0.in_use.store(false, SeqCst);
    }
}

thread_local! {
    static MINE: Claim = Claim(claim());
}

fn claim() -> &'static Slot {
    let mut p = HEAD.load(SeqCst) as *const Slot;
    // SAFETY: nodes are leaked, never freed.
    while let Some(s) = unsafe { p.as_ref() } {
        if s.in_use
            .compare_exchange(false, true, SeqCst, SeqCst)
            .is_ok()
        {
            return s;
        }
        p = s.next;
    }
    let node = Box::leak(Box::new(Slot {
        key: AtomicUsize::new(0),
        in_use: AtomicBool::new(true),
        next: std::ptr::null(),
    }));
    let mut head = HEAD.load(SeqCst);
    loop {
        node.next = head;
        match HEAD.compare_exchange(head, node, SeqCst, SeqCst) {
            Ok(_) => return node,
            Err(h) => head = h,
        }
    }
}

/// `parking_lot_core::park` with no callbacks, recording `key` meanwhile.
///
/// # Safety
/// `validate` must not panic or call into the parking lot.
pub unsafe fn park(
    key: usize,
    validate: impl FnOnce() -> bool,
    deadline: Option<Instant>,
) -> parking_lot_core::ParkResult {
    // A thread whose TLS is being torn down parks unrecorded.
    let slot = MINE.try_with(|c| c.0).ok();
    if let Some(s) = slot {
        s.key.store(key, SeqCst);
    }
    // SAFETY: forwarded contract.
    let r = unsafe {
        parking_lot_core::park(
            key,
            validate,
            || {},
            |_, _| {},
            parking_lot_core::DEFAULT_PARK_TOKEN,
            deadline,
        )
    };
    if let Some(s) = slot {
        s.key.store(0, SeqCst);
    }
    let waker = match r {
        parking_lot_core::ParkResult::Unparked(t) => t.0 as u64,
        _ => 0,
    };
    let _ = WAKER.try_with(|w| w.set(waker));
    r
}

thread_local! {
    /// Who unparked this thread last (the unparker's rtcore thread id, when
    /// it passed one as the unpark token; 0 otherwise or on a timeout).
    static WAKER: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The id of the thread that last unparked the caller (0: unknown, or a
/// timeout). Each park overwrites it.
pub fn last_waker() -> u64 {
    WAKER.try_with(|w| w.get()).unwrap_or(0)
}

/// An unpark token naming the calling thread (for `take_waker`).
pub fn waker_token() -> parking_lot_core::UnparkToken {
    parking_lot_core::UnparkToken(crate::ident::current_id() as usize)
}

/// Wake every thread parked on `key` (no callback).
pub fn unpark_all(key: usize) {
    // SAFETY: no callback.
    unsafe {
        parking_lot_core::unpark_all(key, parking_lot_core::DEFAULT_UNPARK_TOKEN);
    }
}

/// In a forked child, before any new thread exists: remove the queue
/// entries of every parent thread that was parked at the fork, and free
/// their slots (those threads do not exist here).
pub fn purge_after_fork() {
    let mine = MINE.try_with(|c| c.0 as *const Slot).ok();
    let mut p = HEAD.load(SeqCst) as *const Slot;
    // SAFETY: nodes are leaked, never freed.
    while let Some(s) = unsafe { p.as_ref() } {
        if Some(s as *const Slot) != mine {
            let key = s.key.swap(0, SeqCst);
            if key != 0 {
                unpark_all(key);
            }
            s.in_use.store(false, SeqCst);
        }
        p = s.next;
    }
}
