//! Locks: the held-lock record and order checker, `rtc_mutex` and
//! `rtc_cond`, and the hook through which a waiting thread tells the world.
//!
//! Depends on `ranks` (the closure bitsets) and `ident`; nothing here knows
//! about the world, sysmon or the tracer.

pub mod cond;
pub mod mutex;
pub mod order;
pub mod wait;
