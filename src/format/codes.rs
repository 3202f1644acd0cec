//! Every code an event argument, a status or the C ABI carries, in one
//! place: the writer encodes with these, the reader, the exports and the
//! statistics decode with them, and the C ABI's enums use the same values.
//! The values are part of the trace format and of the C ABI: never
//! renumbered (docs/trace-format.md lists them).

/// A thread's state in a `thread status` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum ThreadState {
    Running = 1,
    Runnable = 2,
    Blocking = 3,
    Waiting = 4,
}

impl ThreadState {
    pub fn from_code(v: u64) -> Option<ThreadState> {
        match v {
            1 => Some(ThreadState::Running),
            2 => Some(ThreadState::Runnable),
            3 => Some(ThreadState::Blocking),
            4 => Some(ThreadState::Waiting),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            ThreadState::Running => "RUNNING",
            ThreadState::Runnable => "RUNNABLE",
            ThreadState::Blocking => "BLOCKING",
            ThreadState::Waiting => "WAITING",
        }
    }
}

/// A P's state in a `P status` event (and in the world's P word).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum ProcState {
    Idle = 0,
    Running = 1,
    Syscall = 2,
    Stopped = 3,
}

impl ProcState {
    pub fn from_code(v: u64) -> Option<ProcState> {
        match v {
            0 => Some(ProcState::Idle),
            1 => Some(ProcState::Running),
            2 => Some(ProcState::Syscall),
            3 => Some(ProcState::Stopped),
            _ => None,
        }
    }
}

/// What a `block` event's thread waits for (its first argument; the
/// second is the object: a lock's or condition's address, a hook's id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum BlockReason {
    Mutex = 1,
    Cond = 2,
    /// Removing a running hook: waiting for its run to end.
    Hook = 3,
    /// Anything else (a wait inside rtcore with no object).
    Other = 4,
    /// An `rtc_rwlock` (read or write).
    RwLock = 5,
}

impl BlockReason {
    pub fn from_code(v: u64) -> Option<BlockReason> {
        match v {
            1 => Some(BlockReason::Mutex),
            2 => Some(BlockReason::Cond),
            3 => Some(BlockReason::Hook),
            4 => Some(BlockReason::Other),
            5 => Some(BlockReason::RwLock),
            _ => None,
        }
    }
    /// "mutex 0x1234", "condition 0x..", "hook 7", or "" for `Other`.
    pub fn describe(self, object: u64) -> String {
        match self {
            BlockReason::Mutex => format!("mutex {object:#x}"),
            BlockReason::Cond => format!("condition {object:#x}"),
            BlockReason::Hook => format!("hook {object}"),
            BlockReason::Other => String::new(),
            BlockReason::RwLock => format!("rwlock {object:#x}"),
        }
    }
}

/// The kind of a stall episode (stall open, resolved and status events;
/// the key is a thread id, a lock's address or a hook run's number).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u64)]
pub enum StallKind {
    Thread = 1,
    Lock = 2,
    Hook = 3,
}

impl StallKind {
    pub fn from_code(v: u64) -> Option<StallKind> {
        match v {
            1 => Some(StallKind::Thread),
            2 => Some(StallKind::Lock),
            3 => Some(StallKind::Hook),
            _ => None,
        }
    }
    /// "thread 5", "lock 0x1234", "hook run 9".
    pub fn describe(self, key: u64) -> String {
        match self {
            StallKind::Thread => format!("thread {key}"),
            StallKind::Lock => format!("lock {key:#x}"),
            StallKind::Hook => format!("hook run {key}"),
        }
    }
}

/// What the lock-order checker does on a violation. The values are the C
/// ABI's `rtc_lockrank_mode` (0 there, `RTC_LOCKRANK_DEFAULT`, means
/// report) and what the lifecycle word stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum LockRankMode {
    Off = 1,
    Report = 2,
    Abort = 3,
    /// Call the callback set with `rtc_lockrank_set_callback`.
    Callback = 4,
    /// Queue each report for `rtc_lockrank_next_report`.
    Queue = 5,
}

impl LockRankMode {
    pub fn parse(s: &str) -> Option<LockRankMode> {
        match s {
            "off" => Some(LockRankMode::Off),
            "report" => Some(LockRankMode::Report),
            "abort" => Some(LockRankMode::Abort),
            "queue" => Some(LockRankMode::Queue),
            _ => None,
        }
    }
    pub fn bits(self) -> u32 {
        self as u32
    }
    /// The mode for stored bits (anything unknown reads as report).
    pub fn from_bits(b: u32) -> LockRankMode {
        match b {
            1 => LockRankMode::Off,
            3 => LockRankMode::Abort,
            4 => LockRankMode::Callback,
            5 => LockRankMode::Queue,
            _ => LockRankMode::Report,
        }
    }
    /// The mode for a C value: 0 is the default (report); None for a value
    /// that is no mode.
    pub fn from_c(v: i32) -> Option<LockRankMode> {
        match v {
            0 | 2 => Some(LockRankMode::Report),
            1 => Some(LockRankMode::Off),
            3 => Some(LockRankMode::Abort),
            4 => Some(LockRankMode::Callback),
            5 => Some(LockRankMode::Queue),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            LockRankMode::Off => "off",
            LockRankMode::Report => "report",
            LockRankMode::Abort => "abort",
            LockRankMode::Callback => "callback",
            LockRankMode::Queue => "queue",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for s in [
            ThreadState::Running,
            ThreadState::Runnable,
            ThreadState::Blocking,
            ThreadState::Waiting,
        ] {
            assert_eq!(ThreadState::from_code(s as u64), Some(s));
        }
        for p in [
            ProcState::Idle,
            ProcState::Running,
            ProcState::Syscall,
            ProcState::Stopped,
        ] {
            assert_eq!(ProcState::from_code(p as u64), Some(p));
        }
        for r in [
            BlockReason::Mutex,
            BlockReason::Cond,
            BlockReason::Hook,
            BlockReason::Other,
        ] {
            assert_eq!(BlockReason::from_code(r as u64), Some(r));
        }
        for k in [StallKind::Thread, StallKind::Lock, StallKind::Hook] {
            assert_eq!(StallKind::from_code(k as u64), Some(k));
        }
        for m in [
            LockRankMode::Off,
            LockRankMode::Report,
            LockRankMode::Abort,
            LockRankMode::Callback,
            LockRankMode::Queue,
        ] {
            assert_eq!(LockRankMode::from_bits(m.bits()), m);
            assert_eq!(LockRankMode::from_c(m as i32), Some(m));
            // The callback mode needs a callback: not selectable by name.
            let by_name = (m != LockRankMode::Callback).then_some(m);
            assert_eq!(LockRankMode::parse(m.name()), by_name);
        }
        assert_eq!(LockRankMode::from_c(0), Some(LockRankMode::Report));
        assert_eq!(LockRankMode::from_c(6), None);
    }
}
