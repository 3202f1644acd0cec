//! Incidents: the moments a flight recorder should dump itself (a stall
//! episode opening, a deadlock found, a lock-order violation reported).
//! The module that notices calls `raise`; the flight recorder, far above,
//! registers the handler. Until one registers, raising does nothing.
//!
//! Invariants:
//! - The handler never blocks and never takes a lock a caller may hold
//!   (sysmon raises holding `sysmonlock`, a lock path raises inside a
//!   lock call): it only queues the dump for a thread that may block.

use std::sync::atomic::{AtomicPtr, Ordering};

/// Why a dump is wanted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// sysmon opened a stall episode.
    Stall,
    /// sysmon found threads deadlocked.
    Deadlock,
    /// A lock-order violation was reported.
    LockOrder,
    /// A fatal signal arrived (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT).
    FatalSignal,
}

impl Cause {
    /// The word used in dump names and messages.
    pub fn name(self) -> &'static str {
        match self {
            Cause::Stall => "stall",
            Cause::Deadlock => "deadlock",
            Cause::LockOrder => "lockorder",
            Cause::FatalSignal => "signal",
        }
    }
    pub const ALL: [Cause; 4] = [
        Cause::Stall,
        Cause::Deadlock,
        Cause::LockOrder,
        Cause::FatalSignal,
    ];
}

/// Queues a dump for `cause`; returns what to add to the report that
/// caused it ("flight recorder: writing DIR/rtcore-...-deadlock.rtctrace"),
/// or None when no dump follows (no recorder, a rate limit, the cause
/// not enabled).
pub type Handler = fn(Cause) -> Option<String>;

static HANDLER: AtomicPtr<()> = AtomicPtr::new(std::ptr::null_mut());

/// Register (or, with None, remove) the handler.
pub fn register(h: Option<Handler>) {
    HANDLER.store(
        h.map_or(std::ptr::null_mut(), |f| f as *mut ()),
        Ordering::Release,
    );
}

/// An incident happened: a dump may follow (see `Handler`).
pub fn raise(cause: Cause) -> Option<String> {
    let p = HANDLER.load(Ordering::Acquire);
    if p.is_null() {
        return None;
    }
    // SAFETY: only `Handler`s are stored.
    let f = unsafe { std::mem::transmute::<*mut (), Handler>(p) };
    f(cause)
}
