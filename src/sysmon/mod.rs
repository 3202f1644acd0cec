//! sysmon: the monitor thread outside the world (DESIGN.md, "sysmon and
//! hooks"). `policy` holds its schedule and deadline rules as pure
//! functions; `monitor` is the thread (retakes, preemption requests,
//! schedtrace); `stalls` its stall and overrun reports; `deadlock` its
//! search for cycles of threads parked on rtcore locks; `hooks` the hook
//! thread; `settings` the thresholds. Their clock is `base::clock`.

#[cfg(not(loom))]
pub mod deadlock;
pub mod hook_protocol;
#[cfg(not(loom))]
pub mod hooks;
#[cfg(not(loom))]
pub mod monitor;
#[cfg(not(loom))]
pub mod policy;
#[cfg(not(loom))]
pub mod settings;
#[cfg(not(loom))]
pub mod stalls;

#[cfg(not(loom))]
pub use monitor::{kick, monitor, stop_and_join};

#[cfg(not(loom))]
static HOOKS: crate::world::ActivityHooks = crate::world::ActivityHooks { kick, first_attach };

/// The first attach (and the first after a fork) starts sysmon, and the
/// hook thread if hooks were registered before a fork.
#[cfg(not(loom))]
fn first_attach() {
    monitor::ensure_started();
    hooks::ensure_thread();
}

#[cfg(not(loom))]
pub fn ensure_started() {
    monitor::ensure_started();
}

/// Register with the world (at start): sysmon starts on the first attach
/// and is woken from deep sleep by the world's activity.
#[cfg(not(loom))]
pub fn install() {
    crate::world::register_activity_hooks(&HOOKS);
    crate::lock::waiters::on_first_waiter(first_waiter);
}

/// A first thread parks on an rtcore lock: sysmon searches for deadlocks
/// while threads are parked, attached or not, so it starts now if nothing
/// started it, and leaves a deep sleep.
#[cfg(not(loom))]
fn first_waiter() {
    monitor::ensure_started();
    kick();
}

/// At process exit (the atexit handler): stop the hook thread and sysmon,
/// waiting a bounded time for each (a hook may be stuck; exit may be
/// called from a hook).
#[cfg(not(loom))]
pub fn stop_at_exit() {
    hooks::stop_at_exit(std::time::Duration::from_secs(1));
    monitor::stop_at_exit(std::time::Duration::from_secs(1));
}
