//! Locks: the held-lock record and order checker, `rtc_mutex` and
//! `rtc_cond`, and the hook through which a waiting thread tells the world.
//!
//! Depends on `ranks` (the closure bitsets) and `ident`; nothing here knows
//! about the world, sysmon or the tracer.

#[cfg(not(loom))]
pub mod cond;
#[cfg(not(loom))]
pub mod inner;
#[cfg(not(loom))]
pub mod mutex;
#[cfg(not(loom))]
pub mod order;
#[cfg(not(loom))]
pub mod parked;
#[cfg(not(loom))]
pub mod wait;
pub mod word;
