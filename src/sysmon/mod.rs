//! sysmon: the monitor thread outside the world (DESIGN.md, "sysmon and
//! hooks"). `policy` holds its schedule and deadline rules as pure
//! functions; `monitor` is the thread (retakes and preemption requests so
//! far; stall reports, hooks and schedtrace come next).

pub mod monitor;
pub mod policy;

pub use monitor::{ensure_started, kick, monitor, stop_and_join};

static HOOKS: crate::world::ActivityHooks = crate::world::ActivityHooks {
    kick,
    first_attach: ensure_started,
};

/// Register with the world (at start): sysmon starts on the first attach
/// and is woken from deep sleep by the world's activity.
pub fn install() {
    crate::world::register_activity_hooks(&HOOKS);
}
