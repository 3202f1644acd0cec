//! Locks: the held-lock record and order checker (`order`), what a
//! violation produces (`report`), `rtc_mutex` (`word`, `mutex`),
//! `rtc_rwlock` (`rwword`, `rwbias`, `rwlock`) and `rtc_cond`; `slots` is the
//! protocol of the table that finds a thread's record fast. A waiting thread
//! tells the world through `base::wait`, and publishes what it waits for
//! and holds for sysmon's deadlock search (`waiters`).
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
#[cfg(not(loom))]
pub mod report;
pub mod rwbias;
#[cfg(not(loom))]
pub mod rwlock;
pub mod rwword;
pub mod slots;
#[cfg(not(loom))]
pub mod waiters;
pub mod word;
