//! The table of biased read holds of `rtc_rwlock`s (reader bias, after
//! Dice and Kogan's BRAVO, USENIX ATC 2019).
//!
//! A reader of a lock whose word carries RBIAS (`rwword`) does not count
//! itself in the word, whose cache line every reader would otherwise
//! write: it writes the lock's address into a slot of this table instead,
//! one chosen by its thread id and the lock's address, then reads the
//! word again. A writer that clears RBIAS waits until no slot holds the
//! lock's address. So readers of one lock on different CPUs write
//! different cache lines, and the word's line stays shared among them
//! until a writer comes.
//!
//! Layout: one 64-byte line of `PER_LINE` slots per thread id modulo the
//! number of lines, the slot within it by the lock's address. Threads with
//! ids that differ modulo `LINES` (consecutive ids do, up to `LINES`
//! threads) never write one line; a thread's several biased holds share
//! its line. Two holds that map to one slot cannot both be biased: the
//! second finds the slot taken and counts itself in the word instead.
//!
//! Invariants:
//! - A slot holds a lock's address only from a reader's publishing
//!   compare-and-swap (from 0) to that reader's withdrawal or release (a
//!   store of 0): only the thread that published a slot clears it (but
//!   see `forget`, for `rtc_rwlock_init`), and a
//!   thread publishes one lock at most once (it holds a lock at most once,
//!   `rwlock`).
//! - Every slot access that takes part in the reader/writer handshake is
//!   sequentially consistent (see `rwword`'s invariant **bias**).

use crate::sync::{AtomicU64, Ordering};

/// Slots in one cache line.
pub const PER_LINE: usize = 8;

/// Lines of the production table (a power of two): 4 KB, scanned whole by
/// a writer that revokes a lock's bias.
#[cfg(not(loom))]
pub const LINES: usize = 64;

/// One cache line of slots (0: free, else the address of a lock read-held
/// by the thread the line belongs to).
#[repr(align(64))]
pub struct SlotLine(pub [AtomicU64; PER_LINE]);

impl SlotLine {
    #[cfg(not(loom))]
    pub const fn new() -> SlotLine {
        SlotLine([const { AtomicU64::new(0) }; PER_LINE])
    }

    /// (loom's atomics cannot be built in a constant.)
    #[cfg(loom)]
    pub fn new() -> SlotLine {
        SlotLine(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl Default for SlotLine {
    fn default() -> SlotLine {
        SlotLine::new()
    }
}

/// The process's table.
#[cfg(not(loom))]
pub static TABLE: [SlotLine; LINES] = [const { SlotLine::new() }; LINES];

/// The slot of thread `me`'s biased hold of the lock at `key`. `table`'s
/// length is a power of two.
#[inline(always)]
pub fn slot(table: &[SlotLine], me: u64, key: usize) -> &AtomicU64 {
    debug_assert!(table.len().is_power_of_two());
    let line = &table[me as usize & (table.len() - 1)];
    // Locks are at least 8-aligned and an rtc_rwlock is 64 bytes: mix the
    // bits of neighbouring locks of an array and of the lines around them.
    &line.0[((key >> 3) ^ (key >> 6) ^ (key >> 9)) & (PER_LINE - 1)]
}

/// How many slots hold `key` (a scan of the whole table).
pub fn count(table: &[SlotLine], key: usize) -> u64 {
    table
        .iter()
        .flat_map(|l| l.0.iter())
        // SeqCst: a writer's look (invariant **bias** in `rwword`).
        .filter(|s| s.load(Ordering::SeqCst) == key as u64)
        .count() as u64
}

/// Clear every slot that holds `key`: for `rtc_rwlock_init`, whose
/// contract is that no thread holds or uses the lock meanwhile, so that a
/// slot left by a thread that ended (or was left behind by a fork) holding
/// a lock whose memory is now a new lock does not make the new one seem
/// read-held. (The one exception to "only the publisher clears a slot".)
#[cfg(not(loom))]
pub fn forget(table: &[SlotLine], key: usize) {
    // A load first: a compare-and-swap on every slot would take every
    // thread's line away from it.
    for slot in table.iter().flat_map(|l| l.0.iter()) {
        if slot.load(Ordering::Relaxed) == key as u64 {
            let _ = slot.compare_exchange(key as u64, 0, Ordering::SeqCst, Ordering::Relaxed);
        }
    }
}

/// Time for the bias deadline: the CPU's time-stamp counter where there is
/// one that costs a few nanoseconds, else nanoseconds since the first call.
#[cfg(not(loom))]
#[inline(always)]
pub fn ticks() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no preconditions on x86-64.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        use std::sync::OnceLock;
        use std::time::Instant;
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }
}

/// Under loom time does not pass: the bias is never inhibited, so every
/// model explores biased reads.
#[cfg(loom)]
pub fn ticks() -> u64 {
    0
}
