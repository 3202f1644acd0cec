//! sysmon's thresholds, set through `rtc_sysmon_set_threshold` and
//! `RTCORE_DEBUG` (docs/debug.md). Read by sysmon at each tick; a change
//! applies from the next tick. 0 switches a report off.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Which setting (the values of `rtc_sysmon_setting`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    /// A thread BLOCKING or WAITING this long is reported (default off:
    /// threads that wait for I/O or for work are normal).
    ThreadStall = 1,
    /// A mutex held this long by the same holder while a thread waits for
    /// it is reported (default 1 s).
    LockStall = 2,
    /// A hook run longer than this is reported (default 100 ms).
    HookBudget = 3,
    /// Print a schedtrace line this often (default off).
    Schedtrace = 4,
}

impl Setting {
    pub fn from_u32(v: u32) -> Option<Setting> {
        match v {
            1 => Some(Setting::ThreadStall),
            2 => Some(Setting::LockStall),
            3 => Some(Setting::HookBudget),
            4 => Some(Setting::Schedtrace),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Setting::ThreadStall => "threadstall",
            Setting::LockStall => "lockstall",
            Setting::HookBudget => "hookbudget",
            Setting::Schedtrace => "schedtrace",
        }
    }
    fn cell(self) -> &'static AtomicU64 {
        match self {
            Setting::ThreadStall => &THREAD_STALL_NS,
            Setting::LockStall => &LOCK_STALL_NS,
            Setting::HookBudget => &HOOK_BUDGET_NS,
            Setting::Schedtrace => &SCHEDTRACE_NS,
        }
    }
    pub const ALL: [Setting; 4] = [
        Setting::ThreadStall,
        Setting::LockStall,
        Setting::HookBudget,
        Setting::Schedtrace,
    ];
}

/// The largest value accepted (10^18 ns, about 31 years), so deadline
/// arithmetic cannot overflow.
pub const MAX_NS: u64 = 1_000_000_000_000_000_000;

pub const DEFAULT_LOCK_STALL_NS: u64 = 1_000_000_000;
pub const DEFAULT_HOOK_BUDGET_NS: u64 = 100_000_000;

static THREAD_STALL_NS: AtomicU64 = AtomicU64::new(0);
static LOCK_STALL_NS: AtomicU64 = AtomicU64::new(DEFAULT_LOCK_STALL_NS);
static HOOK_BUDGET_NS: AtomicU64 = AtomicU64::new(DEFAULT_HOOK_BUDGET_NS);
static SCHEDTRACE_NS: AtomicU64 = AtomicU64::new(0);

pub fn get(s: Setting) -> u64 {
    s.cell().load(Relaxed)
}

/// Set; returns the previous value.
pub fn set(s: Setting, ns: u64) -> u64 {
    let old = s.cell().swap(ns, Relaxed);
    super::kick();
    old
}
