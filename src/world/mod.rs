//! The world: attached threads, processor slots (Ps), safepoints, blocking
//! regions and stop-the-world (DESIGN.md, "Model"; docs/world.md).
//!
//! `handshake` holds the lock-free P-word transitions that race a stop
//! (modelled with loom); `sched` holds the rest: the scheduler's records
//! under its inner lock, attach/detach, parking, and the public calls.

pub mod handshake;
#[cfg(not(loom))]
mod sched;

#[cfg(not(loom))]
pub use sched::*;
