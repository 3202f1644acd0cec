//! The run/remove protocol of hooks: the state transitions the hook thread
//! and a remover make under the registry lock, and the remover's wait for a
//! run in progress. Production (`hooks.rs`) calls these with its registry
//! under an inner lock; the loom model (tests/loom_hooks.rs) calls the same
//! functions under a loom mutex, through the `sync` shim.
//!
//! Invariants (the guarantee of `rtc_sysmon_hook_remove`):
//! - A run begins only in `begin_run`, under the registry lock, and only for
//!   a hook still in the registry; `running` is set in that same section.
//! - `remove` takes the hook out of the registry under the lock. If it finds
//!   `running != id` there, no run of the hook is in progress and none can
//!   begin (the next `begin_run` will not find it). Otherwise the run began
//!   before, and the remover waits, outside the lock, until `running`
//!   changes; `end_run` changes it under the lock and then wakes removers.
//! - Hook ids are never reused, so `running != id` means that run is over.
//! - From the hook itself (the hook thread, during the run) `remove` only
//!   marks the hook; `end_run` drops it, so it does not wait for itself.

use crate::sync::{AtomicU64, Ordering::SeqCst};

/// What the protocol needs of a registry entry.
pub trait HookEntry {
    fn id(&self) -> u64;
    fn remove_after_run(&mut self) -> &mut bool;
}

/// State shared outside the registry lock.
pub struct RunState {
    /// The id of the hook running now (0: none). Written under the lock.
    pub running: AtomicU64,
    /// Bumped (under the lock) each time a run ends; removers wait on it.
    pub runs_done: AtomicU64,
}

impl RunState {
    #[cfg(not(loom))]
    pub const fn new() -> RunState {
        RunState {
            running: AtomicU64::new(0),
            runs_done: AtomicU64::new(0),
        }
    }

    /// (loom's atomics are not `const`.)
    #[cfg(loom)]
    pub fn new() -> RunState {
        RunState {
            running: AtomicU64::new(0),
            runs_done: AtomicU64::new(0),
        }
    }

    fn key(&self) -> usize {
        &self.runs_done as *const AtomicU64 as usize
    }
}

impl Default for RunState {
    fn default() -> Self {
        RunState::new()
    }
}

/// Hook thread, under the registry lock: start a run of `id` if it is still
/// registered. Returns whether the run may proceed.
pub fn begin_run<E: HookEntry>(entries: &[E], st: &RunState, id: u64) -> bool {
    if !entries.iter().any(|e| e.id() == id) {
        return false;
    }
    st.running.store(id, SeqCst);
    true
}

/// Hook thread, under the registry lock, when the run of `id` returned:
/// drop the hook if it removed itself, and mark the run over. Returns the
/// entry's index if it is still registered. The caller then releases the
/// lock and calls `wake_removers`.
pub fn end_run<E: HookEntry>(entries: &mut Vec<E>, st: &RunState, id: u64) -> Option<usize> {
    let mut kept = None;
    if let Some(pos) = entries.iter().position(|e| e.id() == id) {
        if *entries[pos].remove_after_run() {
            entries.remove(pos);
        } else {
            kept = Some(pos);
        }
    }
    st.running.store(0, SeqCst);
    st.runs_done.fetch_add(1, SeqCst);
    kept
}

/// Wake removers waiting for a run to end (after `end_run`, outside the
/// lock).
pub fn wake_removers(st: &RunState) {
    // SAFETY: no callback.
    unsafe { crate::sync::park::unpark_all(st.key()) };
}

/// What `remove` decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    /// Not registered (never added, or already removed).
    NotFound,
    /// Removed; it was not running, so it never will again.
    Removed,
    /// Removed while running: call `wait_run_over` after releasing the lock.
    MustWait,
    /// The hook removes itself: dropped when its run returns.
    Deferred,
    /// Running, and the caller may not wait for it (it holds the world
    /// stopped); nothing changed.
    WouldDeadlock,
}

/// A remover, under the registry lock. `in_hook`: the caller is the hook
/// thread during a run; `may_not_wait`: waiting for a run could deadlock.
pub fn remove<E: HookEntry>(
    entries: &mut Vec<E>,
    st: &RunState,
    id: u64,
    in_hook: bool,
    may_not_wait: bool,
) -> Removal {
    let Some(pos) = entries.iter().position(|e| e.id() == id) else {
        return Removal::NotFound;
    };
    if st.running.load(SeqCst) != id {
        entries.remove(pos);
        return Removal::Removed;
    }
    if in_hook {
        let marked = entries[pos].remove_after_run();
        if *marked {
            // Removed by itself earlier in this run: already gone.
            return Removal::NotFound;
        }
        *marked = true;
        return Removal::Deferred;
    }
    if may_not_wait {
        return Removal::WouldDeadlock;
    }
    entries.remove(pos);
    Removal::MustWait
}

/// A remover, after `remove` said `MustWait` and the lock was released:
/// return once the run of `id` is over. No wake-up is lost: the check is
/// repeated under the parking lot's bucket lock, and `end_run` changes
/// `runs_done` before `wake_removers`.
pub fn wait_run_over(st: &RunState, id: u64) {
    while st.running.load(SeqCst) == id {
        let seen = st.runs_done.load(SeqCst);
        // SAFETY: the validate callback only reads atomics.
        unsafe {
            crate::sync::park::park(st.key(), || {
                st.runs_done.load(SeqCst) == seen && st.running.load(SeqCst) == id
            })
        };
    }
}

/// Deliberately broken variants, for the loom model to catch.
#[cfg(loom)]
pub mod broken {
    use super::*;

    /// Returns "removed" without waiting for a run in progress.
    pub fn remove_without_waiting<E: HookEntry>(
        entries: &mut Vec<E>,
        st: &RunState,
        id: u64,
        in_hook: bool,
        may_not_wait: bool,
    ) -> Removal {
        match super::remove(entries, st, id, in_hook, may_not_wait) {
            Removal::MustWait => Removal::Removed,
            r => r,
        }
    }

    /// Starts the run without checking that the hook is still registered
    /// (trusting a check made in an earlier lock section).
    pub fn begin_run_unchecked<E: HookEntry>(_entries: &[E], st: &RunState, id: u64) -> bool {
        st.running.store(id, SeqCst);
        true
    }
}
