//! Locks: the held-lock record and order checker, `rtc_mutex` and
//! `rtc_cond`. A waiting thread tells the world through `base::wait`.
//!
//! Depends on `base`, `ranks` (the closure bitsets), `record` (contended
//! waits are traced) and `format`; nothing here knows about the world,
//! sysmon, the tracer's protocol or the lifecycle.

#[cfg(not(loom))]
pub mod cond;
#[cfg(not(loom))]
pub mod mutex;
#[cfg(not(loom))]
pub mod order;
pub mod word;
