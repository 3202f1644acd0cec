//! The bottom layer: what every other module may use, using nothing above
//! it (docs/architecture.md). rtcore's inner locks and their rank check
//! (`inner`, over `rank_set`), the parking lot helpers (`parked`), the hook
//! through which a waiting thread tells the world (`wait`), the one clock
//! (`clock`), the fork registry (`fork`), opening files to read without
//! waiting on a FIFO (`input`), where incidents a flight
//! recorder dumps on are raised (`incident`), and the process-wide state the
//! lock fast path reads (`state`: running or not, the lock-rank mode).
//!
//! Modules above register callbacks here (the world's wait handlers, each
//! module's fork-child handler) instead of this layer importing them.

pub mod clock;
pub mod fork;
pub mod incident;
pub mod inner;
pub mod input;
pub mod parked;
pub mod rank_set;
pub mod state;
pub mod wait;
