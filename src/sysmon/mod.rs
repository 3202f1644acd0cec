//! sysmon: the monitor thread outside the world (DESIGN.md, "sysmon and
//! hooks"). In progress: `policy` holds its schedule and deadline rules as
//! pure functions; the thread, hooks and reports come next.

pub mod policy;
