//! sysmon: the monitor thread outside the world (DESIGN.md, "sysmon and
//! hooks"). `policy` holds its schedule and deadline rules as pure
//! functions; `monitor` is the thread (retakes, preemption requests,
//! schedtrace); `stalls` its stall and overrun reports; `hooks` the hook
//! thread; `settings` the thresholds; `clock` the time they share.

pub mod clock;
pub mod hooks;
pub mod monitor;
pub mod policy;
pub mod settings;
pub mod stalls;

pub use monitor::{kick, monitor, stop_and_join};

static HOOKS: crate::world::ActivityHooks = crate::world::ActivityHooks { kick, first_attach };

/// The first attach (and the first after a fork) starts sysmon, and the
/// hook thread if hooks were registered before a fork.
fn first_attach() {
    monitor::ensure_started();
    hooks::ensure_thread();
}

pub fn ensure_started() {
    monitor::ensure_started();
}

/// Register with the world (at start): sysmon starts on the first attach
/// and is woken from deep sleep by the world's activity.
pub fn install() {
    crate::world::register_activity_hooks(&HOOKS);
}

/// At process exit (the atexit handler): stop the hook thread and sysmon,
/// waiting a bounded time for each (a hook may be stuck; exit may be
/// called from a hook).
pub fn stop_at_exit() {
    hooks::stop_at_exit(std::time::Duration::from_secs(1));
    monitor::stop_at_exit(std::time::Duration::from_secs(1));
}
