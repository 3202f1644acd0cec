//! The per-thread held-lock record and the lock-order checker.
//!
//! Invariants:
//! - `Held::entries[..len]` are the locks held, oldest first; slots past
//!   `len` are stale and never read (always go through `entries()`).
//! - The held ranks are kept per depth: `Held::ranks0_at[d]` is the first
//!   word (ids below 64) of the set of ranks of `entries[..d]`, for every
//!   `d <= len` (`ranks0_at[0]` is never written: empty). The other words
//!   (ids of 64 and more, "wide" ranks) are `wide_at[d]`, kept only while
//!   some entry has a wide rank: `wide_from` is 0 when none has, else one
//!   more than the index of the oldest that has, and `wide_at[d]` is right
//!   for `wide_from <= d <= len` (below `wide_from` the wide words are
//!   empty). So `wide_from <= len`, and `ranks()` has bit r set iff some
//!   held entry has rank r.
//! - A push writes the sets at `len + 1` from those at `len`; a pop of the
//!   newest entry lowers `len` (and clears `wide_from` if it popped the
//!   oldest wide entry); a removal from the middle (`remove`, an
//!   out-of-order release) rebuilds the sets. So the uncontended lock of
//!   a program whose ranks all have ids below 64 writes one word of ranks
//!   (`push_fast`), and its unlock (`pop_top`) writes only the length and
//!   reads nothing the lock wrote but the length and the newest entry's
//!   address: on a CPU whose loads of just-stored data wait (store-to-load
//!   forwarding), the chain between the two locked instructions of a
//!   lock+unlock pair stays short.
//! - The record is only touched by its own thread; it lives in a thread-local
//!   and is never shared, so it needs no lock.
//! - The order check costs O(WORDS) regardless of how many locks are held:
//!   `held.ranks() & !allowed[wanted]` must be empty.
//! - Locks of one nestable rank are held in strictly increasing key order:
//!   acquiring one whose key is not above every held key of its rank is a
//!   violation (checked only when the rank is already held: one bit test on
//!   the common path).
//! - What happens on a violation is `report.rs`'s business; `check` returns
//!   true when a report waits to be delivered to a callback on this thread,
//!   which the caller does with `report::deliver` once it no longer borrows
//!   the record and before it blocks.

use std::ffi::CStr;
use std::os::raw::c_char;

use crate::ranks::{self, MAX_RANKS, RankSet, WORDS};

pub use super::report::{Reason, last_report, pair_count, violation_count};

/// What the checker does on a violation (the trace format's and the C
/// ABI's codes: `format::LockRankMode`).
pub use crate::format::LockRankMode as Mode;

/// What kind of lock an entry is (the C ABI's `RTC_LOCK_KIND_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum LockKind {
    Mutex = 1,
    RwLock = 2,
    /// One of rtcore's own (`hooklock`).
    Rtcore = 3,
    /// A pthread mutex or read/write lock of a program run under `rtcore
    /// run` (interposed: `interpose`); only in published waits, never in
    /// a thread's held record or a rank report. Its entries carry the call
    /// site's return address in `key`.
    Pthread = 4,
}

impl LockKind {
    pub fn name(self) -> &'static str {
        match self {
            LockKind::Mutex => "mutex",
            LockKind::RwLock => "rwlock",
            LockKind::Rtcore => "lock",
            LockKind::Pthread => "pthread lock",
        }
    }
}

/// One lock this thread holds: four words, since every acquisition writes
/// one (its name is read from the lock, which is alive while held).
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct HeldLock {
    /// Address of the lock object (identity).
    pub addr: usize,
    /// Call site (NUL-terminated file, or NULL) of the acquisition.
    pub file: *const c_char,
    /// Nesting key (the address unless the caller gave one).
    pub key: u64,
    pub line: u32,
    rank: u16,
    /// A `LockKind` (a byte, so that all-zero memory is a valid record).
    kind: u8,
    /// SHARED | TRIED | BIASED.
    flags: u8,
}

/// How a lock is held (`HeldLock::hold`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    Exclusive,
    /// Counted in the rwlock's word.
    Read,
    /// Published in the table of biased holds (`rwbias`).
    BiasedRead,
}

const SHARED: u8 = 1;
const TRIED: u8 = 2;
/// A read hold published in the table of biased holds (`rwbias`), not
/// counted in the lock's word.
const BIASED: u8 = 4;
const _: () = assert!(std::mem::size_of::<HeldLock>() == 32 && MAX_RANKS <= 1 << 16);
// The layout `Held::write_entry` writes as four words.
const _: () = assert!(
    std::mem::offset_of!(HeldLock, addr) == 0
        && std::mem::offset_of!(HeldLock, file) == 8
        && std::mem::offset_of!(HeldLock, key) == 16
        && std::mem::offset_of!(HeldLock, line) == 24
        && std::mem::offset_of!(HeldLock, rank) == 28
        && std::mem::offset_of!(HeldLock, kind) == 30
        && std::mem::offset_of!(HeldLock, flags) == 31
);

impl HeldLock {
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub fn new(
        addr: usize,
        file: *const c_char,
        key: u64,
        line: u32,
        rank: u32,
        kind: LockKind,
        shared: bool,
        tried: bool,
    ) -> HeldLock {
        HeldLock {
            addr,
            file,
            key,
            line,
            rank: rank as u16,
            kind: kind as u8,
            flags: (if shared { SHARED } else { 0 }) | (if tried { TRIED } else { 0 }),
        }
    }
    /// The last word (`line`, `rank`, `kind`, `flags`) as one 8-byte
    /// load, as `Held::write_entry` stored it; every accessor of those
    /// fields reads it so. A narrower load of part of a just-stored word
    /// is not forwarded from the store on some CPUs (AMD Zen 4, measured:
    /// reading the flags byte and the rank of the entry the lock had just
    /// pushed made the uncontended pair 2.0x pthread instead of 1.7x,
    /// docs/benchmarks.md). Volatile, so that the compiler does not narrow
    /// it back to the bytes it uses.
    #[cfg(target_endian = "little")]
    #[inline(always)]
    fn last_word(&self) -> u64 {
        // SAFETY: bytes 24..32 of this 8-aligned, 32-byte `repr(C)`
        // struct are `line`, `rank`, `kind`, `flags` (the offsets asserted
        // above); the pointer is derived from the whole struct, not from
        // the `line` field alone, so it may read all four.
        unsafe {
            std::ptr::read_volatile(
                (&raw const *self)
                    .cast::<u8>()
                    .add(std::mem::offset_of!(HeldLock, line))
                    .cast::<u64>(),
            )
        }
    }

    #[cfg(not(target_endian = "little"))]
    #[inline(always)]
    fn last_word(&self) -> u64 {
        u64::from(self.line)
            | (u64::from(self.rank) << 32)
            | (u64::from(self.kind) << 48)
            | (u64::from(self.flags) << 56)
    }

    #[inline(always)]
    fn flags(&self) -> u8 {
        (self.last_word() >> 56) as u8
    }

    pub fn kind(&self) -> LockKind {
        match (self.last_word() >> 48) as u8 {
            2 => LockKind::RwLock,
            3 => LockKind::Rtcore,
            4 => LockKind::Pthread,
            _ => LockKind::Mutex,
        }
    }
    #[inline(always)]
    pub fn rank(&self) -> u32 {
        ((self.last_word() >> 32) & 0xffff) as u32
    }
    /// Held in shared (read) mode.
    pub fn shared(&self) -> bool {
        self.flags() & SHARED != 0
    }
    /// Acquired by a try-lock (recorded, never order-checked).
    pub fn tried(&self) -> bool {
        self.flags() & TRIED != 0
    }
    /// A biased read hold (see `rwbias`).
    #[inline(always)]
    pub fn biased(&self) -> bool {
        self.flags() & BIASED != 0
    }
    /// How this hold is held, from one load of its flags (for the unlock's
    /// fast path).
    #[inline(always)]
    pub fn hold(&self) -> Hold {
        let f = self.flags();
        if f & BIASED != 0 {
            Hold::BiasedRead
        } else if f & SHARED != 0 {
            Hold::Read
        } else {
            Hold::Exclusive
        }
    }
    /// This entry, marked as a biased read hold if `biased`.
    #[inline(always)]
    pub fn biased_if(mut self, biased: bool) -> HeldLock {
        if biased {
            self.flags |= BIASED;
        }
        self
    }
    /// The lock's name (NUL-terminated, or NULL). Read from the lock
    /// itself: it is alive while held (a held lock cannot be destroyed or
    /// re-initialised), and a mutex and an rwlock keep the name at the same
    /// place.
    pub fn name(&self) -> *const c_char {
        match self.kind() {
            LockKind::Rtcore => c"hooklock".as_ptr(),
            LockKind::Pthread => c"pthread lock".as_ptr(),
            // SAFETY: see above; `name` is written only by initialisation,
            // which may not race use.
            _ => unsafe { (*(self.addr as *const super::mutex::rtc_mutex)).name },
        }
    }
}

/// Most locks one thread may hold at once (Linux's lockdep allows 48).
/// Acquiring one more is refused with `RTC_ERR_WRONG_STATE`.
pub const MAX_HELD: usize = 64;

#[cfg_attr(all(target_arch = "x86_64", target_os = "linux"), allow(dead_code))]
const EMPTY: HeldLock = HeldLock {
    addr: 0,
    file: std::ptr::null(),
    key: 0,
    line: 0,
    rank: 0,
    kind: 0,
    flags: 0,
};

/// A thread's held record plus its id (one thread-local access for both).
///
/// It has no destructor, so the thread-local needs no registration and is
/// usable until the thread's last instruction (late C++ destructors that
/// unlock included), and its access compiles to a plain TLS address. (The
/// fast way to it, `place`'s table, is given up by a destructor of its
/// own; the record stays.)
///
/// `repr(C)`: the id, length and `wide_from` first, beside the first
/// depths' rank words, so that a thread holding few locks touches one or
/// two lines of it besides its entries (measured on Zen 4: with the
/// compiler's order, which put them 2.5 KB away from the rank words, an
/// unlock with checking off was 0.08x pthread slower).
#[repr(C)]
pub struct Held {
    pub me: u64,
    len: usize,
    /// 0, or one more than the index of the oldest entry with a wide rank.
    wide_from: usize,
    /// The first word of the ranks of `entries[..d]` (the invariants).
    ranks0_at: [u64; MAX_HELD + 1],
    entries: [HeldLock; MAX_HELD],
    /// The other words of the ranks of `entries[..d]`, for `d >= wide_from`.
    wide_at: [[u64; WORDS - 1]; MAX_HELD + 1],
    /// This thread's claim on a slot of `place`'s table (`SLOT_*`).
    slot: u8,
}

/// Not claimed yet (`with_held` tries).
const SLOT_UNCLAIMED: u8 = 0;
/// Claimed: the table finds this record.
const SLOT_CLAIMED: u8 = 1;
/// Never again: the slot was taken by another thread, or this thread is
/// exiting and gave it back (its last calls find the record the slow way).
const SLOT_NEVER: u8 = 2;

/// Where this thread's record lives. On x86-64 Linux: a thread-local
/// block of its own (all zeroes: an empty record), reached through a TLS
/// descriptor (the "gnu2" dialect), whose call preserves every register
/// but one. A `thread_local!` is reached through `__tls_get_addr`, an
/// ordinary call, for which every lock call saved and restored six
/// registers: stores before the locked instruction, which x86 makes wait
/// (docs/benchmarks.md). Like the `thread_local!`, it has no destructor and
/// lasts the thread's life; the dynamic linker places it in static TLS
/// when it can and falls back to a dynamic block (never a dlopen failure,
/// unlike an initial-exec variable). A dynamic block (a dlopen'd library)
/// costs a walk of the thread's DTV and two spilled registers per call, so
/// the fast paths find the record first through a table keyed by the
/// thread pointer (`slots.rs`), with no call at all.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod place {
    use super::Held;

    const _: () = assert!(std::mem::align_of::<Held>() <= 64);

    std::arch::global_asm!(
        ".pushsection .tbss,\"awT\",@nobits",
        ".p2align 6",
        ".globl rtcore_held_record",
        ".hidden rtcore_held_record",
        ".type rtcore_held_record,@object",
        ".size rtcore_held_record,{size}",
        "rtcore_held_record:",
        ".zero {size}",
        ".popsection",
        size = const std::mem::size_of::<Held>(),
    );

    /// The record through the TLS descriptor (always right, slower: for a
    /// dynamic TLS block, as in a dlopen'd library, the descriptor's
    /// function walks the thread's DTV and spills two registers).
    #[inline(always)]
    fn record_tls() -> *mut Held {
        let p: usize;
        // SAFETY: the TLS descriptor sequence returns the calling thread's
        // address of `rtcore_held_record`; it clobbers rax and the flags.
        //
        // `nostack`, with the stack handled here: the call's return address
        // goes below the red zone (which the compiler may be using), on a
        // 16-byte aligned stack (the descriptor's slow path calls into the
        // dynamic linker), and the stack pointer is restored from a
        // register the descriptor call preserves. Without `nostack` the
        // compiler aligns the stack itself, with a push in the prologue of
        // every lock export: a store before the locked instruction, which
        // x86 makes wait.
        unsafe {
            std::arch::asm!(
                "movq %rsp, {sp}",
                "leaq -128(%rsp), %rsp",
                "andq $-16, %rsp",
                "leaq rtcore_held_record@TLSDESC(%rip), %rax",
                "call *rtcore_held_record@TLSCALL(%rax)",
                "movq {sp}, %rsp",
                "addq %fs:0, %rax",
                sp = out(reg) _,
                out("rax") p,
                options(att_syntax, pure, nomem, nostack),
            );
        }
        p as *mut Held
    }

    // The fast way: a table from thread pointer to (id, record).
    //
    // The thread pointer (`%fs:0`, the TCB's own address, which the x86-64
    // TLS ABI puts in its first word) is one load with no call; a slot of
    // a fixed table, chosen by hashing it, holds the thread's id and record
    // address (the protocol and its invariants: `slots.rs`). A thread
    // claims a slot on its first full path while rtcore runs (when the
    // fork handler that clears the table in a child is registered), frees
    // it as it ends (a thread-local destructor), and its calls after that
    // (late destructors) take the descriptor path, as do those of a thread
    // whose slot another thread holds (a hash collision): slower, never
    // wrong.

    use super::super::slots::Slot;

    const SLOT_BITS: u32 = 10;

    #[repr(align(32))]
    struct Aligned(Slot);

    static SLOTS: [Aligned; 1 << SLOT_BITS] = [const { Aligned(Slot::new()) }; 1 << SLOT_BITS];

    #[inline(always)]
    fn thread_pointer() -> u64 {
        let tp: u64;
        // SAFETY: reads the TCB's self pointer (constant for the thread).
        unsafe {
            std::arch::asm!(
                "movq %fs:0, {}",
                out(reg) tp,
                options(att_syntax, pure, nomem, nostack, preserves_flags),
            );
        }
        tp
    }

    #[inline(always)]
    fn slot(tp: u64) -> &'static Slot {
        // Fibonacci hashing: the TCBs of threads sit at the same offset in
        // their stack mappings, so the low bits alone would collide.
        let i = tp.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SLOT_BITS);
        &SLOTS[i as usize].0
    }

    #[inline(always)]
    pub fn record() -> *mut Held {
        me_and_record().1
    }

    /// This thread's id and record (the id 0 until the first full path).
    #[inline(always)]
    pub fn me_and_record() -> (u64, *mut Held) {
        let tp = thread_pointer();
        if let Some((me, rec)) = slot(tp).lookup(tp) {
            return (me, rec as *mut Held);
        }
        let h = record_tls();
        // SAFETY: this thread's record (see `held_mut`).
        (unsafe { (*h).me }, h)
    }

    /// Frees the slot as the thread ends.
    struct Release;

    impl Drop for Release {
        fn drop(&mut self) {
            let tp = thread_pointer();
            slot(tp).release(tp);
            // SAFETY: this thread's record; a destructor runs outside any
            // `with_held`, so nothing else refers to it.
            unsafe { (*record_tls()).slot = super::SLOT_NEVER };
        }
    }

    thread_local! {
        static RELEASE: Release = const { Release };
    }

    /// Claim a slot for this thread's record (`with_held`, once).
    #[cold]
    #[inline(never)]
    pub fn claim(h: &mut Held) {
        if crate::base::state::running_mode_bits().is_none() || h.me == 0 {
            return; // not yet: the fork handler may not be registered
        }
        h.slot = super::SLOT_NEVER;
        // Registers the destructor; fails if the thread is ending.
        if RELEASE.try_with(|_| ()).is_err() {
            return;
        }
        let tp = thread_pointer();
        if slot(tp).claim(tp, record_tls() as u64, h.me) {
            h.slot = super::SLOT_CLAIMED;
        }
    }

    /// In a forked child: free every slot but this thread's.
    pub fn after_fork_child() {
        let tp = thread_pointer();
        for s in &SLOTS {
            s.0.clear_unless(tp);
        }
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
mod place {
    use super::*;

    use std::cell::UnsafeCell;

    thread_local! {
        static HELD: UnsafeCell<Held> = const {
            UnsafeCell::new(Held {
                me: 0,
                len: 0,
                entries: [EMPTY; MAX_HELD],
                ranks0_at: [0; MAX_HELD + 1],
                wide_from: 0,
                wide_at: [[0; WORDS - 1]; MAX_HELD + 1],
                slot: SLOT_UNCLAIMED,
            })
        };
    }

    #[inline(always)]
    pub fn record() -> *mut Held {
        HELD.with(|h| h.get())
    }

    pub fn claim(h: &mut Held) {
        h.slot = SLOT_NEVER;
    }

    #[inline(always)]
    pub fn me_and_record() -> (u64, *mut Held) {
        let h = record();
        // SAFETY: this thread's record (see `held_mut`).
        (unsafe { (*h).me }, h)
    }

    pub fn after_fork_child() {}
}

/// Run `f` with this thread's record. `f` must not re-enter `with_held`
/// (nothing it calls does: reports and parking do not touch the record).
#[inline(always)]
pub fn with_held<R>(f: impl FnOnce(&mut Held) -> R) -> R {
    // (An initial-exec TLS slot was measured and rejected: it marks the
    // whole library STATIC_TLS, and a dlopen (Python's ctypes) then fails
    // with "cannot allocate memory in static TLS block" once glibc's small
    // surplus is used up; see docs/benchmarks.md and `place`.)
    let p: *mut Held = place::record();
    // SAFETY: this thread's own record, valid for the thread's life (it has
    // no destructor); `f` never re-enters, so this is the only reference.
    let h = unsafe { &mut *p };
    if h.me == 0 {
        assign_id(h);
    }
    if h.slot == SLOT_UNCLAIMED {
        place::claim(h);
    }
    f(h)
}

/// This thread's record, for the lock fast paths, which must compile to
/// straight-line code with no call (a closure passed to `with_held` is not
/// always inlined into them). Its `me` is 0 until the thread's first full
/// path assigns the id: a fast path seeing 0 must give up.
///
/// # Safety
/// As `with_held`'s closure: the reference must not outlive the caller's
/// use, and nothing may take the record again while it is held.
#[inline(always)]
pub unsafe fn held_mut<'a>() -> &'a mut Held {
    // SAFETY: this thread's own record, valid for the thread's life; the
    // caller promises no other reference exists.
    unsafe { &mut *place::record() }
}

/// `held_mut` with this thread's id (0 until the thread's first full
/// path assigns it), which the fast way finds beside the record's address.
///
/// # Safety
/// As `held_mut`.
#[inline(always)]
pub unsafe fn me_and_held<'a>() -> (u64, &'a mut Held) {
    let (me, p) = place::me_and_record();
    // SAFETY: as in `held_mut`.
    (me, unsafe { &mut *p })
}

/// "mutex 'db' (rank db) locked at file.c:12", for sysmon's reports.
pub fn describe_held(e: &HeldLock) -> String {
    let rank = if e.rank() == crate::ranks::LEAF {
        "unranked".to_string()
    } else {
        format!("rank {}", crate::ranks::global().name(e.rank()))
    };
    format!(
        "'{}' ({rank}) {} at {}{}",
        cstr_or(e.name(), "(unnamed)"),
        held_verb(e),
        site(e.file, e.line),
        if e.tried() { " by a try-lock" } else { "" }
    )
}

/// "locked", "read-locked" or "write-locked".
pub fn held_verb(e: &HeldLock) -> &'static str {
    match (e.kind(), e.shared()) {
        (LockKind::RwLock, true) => "read-locked",
        (LockKind::RwLock, false) => "write-locked",
        _ => "locked",
    }
}

/// In a forked child: reset the report lock (its holder may not exist).
pub fn after_fork_child() {
    place::after_fork_child();
    super::report::after_fork_child();
    // SAFETY: called from the child's atfork handler (only this thread).
    unsafe { super::mutex::NAMES.reset_after_fork() };
}

/// The rank id of `hooklock` (fixed by `BUILTIN_RANKS`: the first rank).
pub const HOOKLOCK_RANK: u32 = 1;

/// The hook thread holds `hooklock` while a hook runs: it is recorded like
/// a held lock, so the user locks a hook takes are checked against it.
///
/// Taking it is order-checked like any lock (before it is taken, by the
/// caller of `lock_hooklock`): a thread that holds one of its own locks
/// and starts or stops a trace is reported, since a hook may need that
/// lock while the tracer waits for the hook (DESIGN.md, "Ranks").
pub fn hooklock_check(what: &std::ffi::CStr) {
    let Some(mode) = crate::base::state::running_mode_bits().map(Mode::from_bits) else {
        return;
    };
    if mode == Mode::Off {
        return;
    }
    let pending = with_held(|h| {
        check(
            h,
            mode,
            &Wanted {
                addr: 0,
                kind: LockKind::Rtcore,
                shared: false,
                name: what.as_ptr(),
                rank: HOOKLOCK_RANK,
                file: std::ptr::null(),
                line: 0,
                key: 0,
            },
        )
    });
    if pending {
        super::report::deliver();
    }
}

pub fn hooklock_enter(addr: usize) {
    with_held(|h| {
        if !h.is_full() {
            h.push(HeldLock::new(
                addr,
                std::ptr::null(),
                addr as u64,
                0,
                HOOKLOCK_RANK,
                LockKind::Rtcore,
                false,
                false,
            ));
        }
    })
}

/// The hook's run returned: `hooklock` is no longer held.
pub fn hooklock_exit(addr: usize) {
    with_held(|h| {
        h.remove(addr);
    })
}

#[cold]
#[inline(never)]
fn assign_id(h: &mut Held) {
    h.me = crate::ident::current_id();
}

impl Held {
    #[inline(always)]
    pub fn is_full(&self) -> bool {
        self.len == MAX_HELD
    }

    /// Record an acquisition. The caller checked `!is_full()`.
    #[inline]
    pub fn push(&mut self, e: HeldLock) {
        let len = self.len;
        debug_assert!(len < MAX_HELD);
        let mut next = self.ranks();
        next.insert(u32::from(e.rank));
        self.ranks0_at[len + 1] = next.0[0];
        if u32::from(e.rank) >= 64 || self.wide_from != 0 {
            if self.wide_from == 0 {
                self.wide_from = len + 1;
            }
            self.wide_at[len + 1] = [next.0[1], next.0[2], next.0[3]];
        }
        // SAFETY: `len < MAX_HELD`: every caller checked `!is_full()`, and
        // `len` only changes here, in `push_fast`, `pop_top` and `remove`.
        unsafe { Self::write_entry(self.entries.as_mut_ptr().add(len), e) };
        self.len = len + 1;
    }

    /// The lock fast paths' check and record in one, for the common case:
    /// the wanted rank and every held rank have ids below 64 (the first
    /// word of a set), and, if `check`, the wanted rank conflicts with no
    /// held rank and is not held itself (a nestable rank held: keys to
    /// compare). Then `e` is recorded and the answer is true; otherwise
    /// nothing changes and the caller finishes out of line, with the full
    /// check (`check`) and `push`. The caller checked `!is_full()`.
    ///
    /// One word of ranks is read and one written, so the fast paths save
    /// no registers (a store before the next locked instruction), and the
    /// unlock that follows has nothing of the ranks to undo (the
    /// invariants). Programs with wide ranks (more than 63 declared) take
    /// the out-of-line path for every lock of a wide rank, and for every
    /// lock while one is held (tests/lock_wide_ranks.rs crosses the two
    /// kinds).
    #[inline(always)]
    pub fn push_fast(&mut self, e: HeldLock, check: bool) -> bool {
        let r = u32::from(e.rank);
        let len = self.len;
        debug_assert!(len < MAX_HELD);
        if r >= 64 || self.wide_from != 0 {
            return false;
        }
        // Indexed without a bounds check: a check is a call to a panic
        // function, whose presence makes the fast path save a register
        // (a store before the next locked instruction).
        // SAFETY: `len < MAX_HELD` (as in `push`), and `ranks0_at` has
        // MAX_HELD + 1 words.
        let h0 = unsafe { *self.ranks0_at.get_unchecked(len) };
        let bit = 1u64 << r;
        if check {
            let allowed = ranks::table::GLOBAL_ALLOWED[r as usize][0]
                .load(std::sync::atomic::Ordering::Relaxed);
            if h0 & !allowed != 0 || h0 & bit != 0 {
                return false;
            }
        }
        // SAFETY: as above; `len < MAX_HELD` for the entry too.
        unsafe {
            *self.ranks0_at.get_unchecked_mut(len + 1) = h0 | bit;
            Self::write_entry(self.entries.as_mut_ptr().add(len), e);
        }
        self.len = len + 1;
        true
    }

    /// The ranks held: bit r set iff some entry has rank r.
    #[inline(always)]
    pub fn ranks(&self) -> RankSet {
        let len = self.len;
        debug_assert!(len <= MAX_HELD && self.wide_from <= len);
        // SAFETY: len <= MAX_HELD (the invariants), and both arrays have
        // MAX_HELD + 1 elements; unchecked, so that no fast path has a
        // call to a panic function.
        let mut out = RankSet([unsafe { *self.ranks0_at.get_unchecked(len) }, 0, 0, 0]);
        if self.wide_from != 0 {
            // SAFETY: as above.
            let w = unsafe { self.wide_at.get_unchecked(len) };
            out.0[1..].copy_from_slice(w);
        }
        out
    }

    /// Rebuild the rank sets from the entries (after a removal): the
    /// entries pushed again, oldest first, so the sets follow the one
    /// rule `push` keeps.
    fn rebuild_ranks(&mut self) {
        let entries = self.entries;
        let len = self.len;
        self.len = 0;
        self.wide_from = 0;
        for e in &entries[..len] {
            self.push(*e);
        }
    }

    /// Written as four words: the compiler writes the last word's four
    /// fields one by one otherwise (stores, which the next locked
    /// instruction waits for).
    ///
    /// # Safety
    /// `to` is valid for writes.
    #[cfg(target_endian = "little")]
    #[inline(always)]
    unsafe fn write_entry(to: *mut HeldLock, e: HeldLock) {
        let last = u64::from(e.line)
            | (u64::from(e.rank) << 32)
            | (u64::from(e.kind) << 48)
            | (u64::from(e.flags) << 56);
        // SAFETY: the caller's promise; a `HeldLock` is these four words
        // (`repr(C)`, the offsets asserted above), little-endian.
        unsafe {
            to.cast::<[u64; 4]>()
                .write([e.addr as u64, e.file as u64, e.key, last])
        };
    }

    /// # Safety
    /// `to` is valid for writes.
    #[cfg(not(target_endian = "little"))]
    #[inline(always)]
    unsafe fn write_entry(to: *mut HeldLock, e: HeldLock) {
        // SAFETY: the caller's promise.
        unsafe { to.write(e) };
    }

    /// The uncontended unlock's removal: if the newest entry is `addr`'s,
    /// drop it and say true. No scan, no call, no panic; the rank sets
    /// below stay right (the invariants).
    #[inline(always)]
    pub fn pop_top(&mut self, addr: usize) -> bool {
        let len = self.len;
        if len == 0 {
            return false;
        }
        debug_assert!(len <= MAX_HELD);
        // SAFETY: 0 < len <= MAX_HELD (the invariants).
        let top = unsafe { &*self.entries.as_ptr().add(len - 1) };
        if top.addr != addr {
            return false;
        }
        self.len = len - 1;
        // Popped the oldest entry with a wide rank: none is left (the
        // older entries have narrow ones).
        if self.wide_from >= len {
            self.wide_from = 0;
        }
        true
    }

    /// Could an entry have rank `r`? False only when none has: `r` is a
    /// rank id whose bit is clear (any other value says true).
    ///
    /// Word by word, with no set built (a set in memory indexed by a
    /// variable is stored and reloaded in part: see `HeldLock::last_word`).
    #[inline(always)]
    pub fn may_hold_rank(&self, r: u32) -> bool {
        let len = self.len;
        debug_assert!(len <= MAX_HELD && self.wide_from <= len);
        if r < 64 {
            // SAFETY: len <= MAX_HELD (the invariants).
            return unsafe { *self.ranks0_at.get_unchecked(len) } & (1 << r) != 0;
        }
        if r as usize >= MAX_RANKS {
            return true;
        }
        if self.wide_from == 0 {
            return false;
        }
        // SAFETY: as above; 64 <= r < MAX_RANKS, so r / 64 - 1 < WORDS - 1.
        let w = unsafe {
            *self
                .wide_at
                .get_unchecked(len)
                .get_unchecked(r as usize / 64 - 1)
        };
        w & (1 << (r % 64)) != 0
    }

    /// Is there an entry for `addr`? (Loads only, no call.)
    #[inline(always)]
    pub fn holds(&self, addr: usize) -> bool {
        self.entries().iter().any(|e| e.addr == addr)
    }

    /// Remove the most recent entry for `addr`; releases may be out of order.
    pub fn remove(&mut self, addr: usize) -> Option<HeldLock> {
        let i = self.entries[..self.len]
            .iter()
            .rposition(|e| e.addr == addr)?;
        let e = self.entries[i];
        self.entries.copy_within(i + 1..self.len, i);
        self.len -= 1;
        // The sets above i counted the removed entry.
        self.rebuild_ranks();
        Some(e)
    }

    #[inline(always)]
    pub fn entries(&self) -> &[HeldLock] {
        debug_assert!(self.len <= MAX_HELD);
        // SAFETY: len <= MAX_HELD (the invariants); unchecked, so that no
        // fast path has a call to a panic function.
        unsafe { self.entries.get_unchecked(..self.len) }
    }

    pub fn find(&self, addr: usize) -> Option<&HeldLock> {
        self.entries().iter().rev().find(|e| e.addr == addr)
    }

    /// Ranks held that may not be held when acquiring `wanted`.
    #[inline(always)]
    pub fn conflicts(&self, wanted: u32) -> RankSet {
        let allowed = ranks::table::load_allowed(&ranks::table::GLOBAL_ALLOWED, wanted);
        let mut out = [0u64; WORDS];
        for (o, (h, a)) in out
            .iter_mut()
            .zip(self.ranks().0.iter().zip(allowed.0.iter()))
        {
            *o = h & !a;
        }
        RankSet(out)
    }
}

/// What a thread wants to acquire, for the check and reports.
pub struct Wanted {
    pub addr: usize,
    pub kind: LockKind,
    pub shared: bool,
    pub name: *const c_char,
    pub rank: u32,
    pub file: *const c_char,
    pub line: u32,
    /// Nesting key (the address unless the caller gave one).
    pub key: u64,
}

/// `p` is NULL or a NUL-terminated string valid for the call (the header's
/// contract for names and call sites).
pub(crate) fn cstr_or<'a>(p: *const c_char, default: &'a str) -> std::borrow::Cow<'a, str> {
    if p.is_null() {
        std::borrow::Cow::Borrowed(default)
    } else {
        // SAFETY: callers pass NUL-terminated strings that outlive the call
        // (documented in the header for names and sites).
        unsafe { CStr::from_ptr(p) }.to_string_lossy()
    }
}

pub(crate) fn site(file: *const c_char, line: u32) -> String {
    if file.is_null() {
        "(call site not given)".into()
    } else {
        format!("{}:{}", cstr_or(file, "?"), line)
    }
}

/// Check `wanted` against everything `held` holds; on a violation, report it
/// as `mode` says. Returns true when a report waits for this thread's
/// callback (`report::deliver`); never returns if the mode is abort.
#[inline(always)]
#[must_use = "a pending report must be delivered (report::deliver)"]
pub fn check(held: &Held, mode: Mode, wanted: &Wanted) -> bool {
    if mode == Mode::Off {
        return false;
    }
    let bad = held.conflicts(wanted.rank);
    // A held rank that the closure allows again is a nestable one: its keys
    // must increase.
    if bad.is_empty() && !held.ranks().contains(wanted.rank) {
        return false;
    }
    check_slow(held, mode, wanted, bad)
}

#[cold]
#[inline(never)]
fn check_slow(held: &Held, mode: Mode, wanted: &Wanted, bad: RankSet) -> bool {
    let reason = if !bad.is_empty() {
        Reason::Order
    } else if held
        .entries()
        .iter()
        .any(|e| e.rank() == wanted.rank && e.key >= wanted.key)
    {
        Reason::KeyOrder
    } else {
        return false;
    };
    // This may run on a lock's fast path, outside the C boundary: a panic
    // while reporting must not unwind from here.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        super::report::violation(held, mode, wanted, reason, bad)
    }))
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty record, as a new thread's (all zero).
    fn empty() -> Box<Held> {
        // SAFETY: all-zero is a valid `Held` (the TLS block starts so):
        // integers, null pointers, empty sets.
        unsafe { Box::<Held>::new_zeroed().assume_init() }
    }

    fn entry(addr: usize, rank: u32) -> HeldLock {
        HeldLock::new(
            addr,
            std::ptr::null(),
            addr as u64,
            0,
            rank,
            LockKind::Mutex,
            false,
            false,
        )
    }

    /// The invariant: `ranks()` is exactly the ranks of the entries, and
    /// the entries are the model's, in order.
    fn assert_matches(h: &Held, model: &[(usize, u32)], step: usize) {
        let got: Vec<(usize, u32)> = h.entries().iter().map(|e| (e.addr, e.rank())).collect();
        assert_eq!(got, model, "entries after step {step}");
        let mut want = RankSet::default();
        for &(_, r) in model {
            want.insert(r);
        }
        assert_eq!(h.ranks(), want, "held ranks after step {step}");
        // Exact for every rank id; true for any id beyond them.
        for r in 0..MAX_RANKS as u32 + 20 {
            let want = r as usize >= MAX_RANKS || want.contains(r);
            assert_eq!(h.may_hold_rank(r), want, "rank {r} after step {step}");
        }
        // `wide_from`: one more than the index of the oldest wide entry.
        let oldest_wide = model.iter().position(|&(_, r)| r >= 64);
        assert_eq!(
            h.wide_from,
            oldest_wide.map_or(0, |i| i + 1),
            "after step {step}"
        );
    }

    /// Random pushes (both ways, narrow and wide ranks, repeated ranks),
    /// pops of the newest and removals from anywhere, against a model.
    #[test]
    fn rank_sets_follow_every_push_pop_and_removal() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..200 {
            let mut h = empty();
            let mut model: Vec<(usize, u32)> = Vec::new();
            let mut addr = 0x1000usize;
            for step in 0..300 {
                let op = next() % 10;
                if op < 5 && !h.is_full() {
                    // Mostly ranks of the first word, some of the others;
                    // few distinct ranks, so that ranks repeat.
                    let r = if next() % 4 == 0 {
                        64 + (next() % 3) as u32 * 70
                    } else {
                        (next() % 6) as u32
                    };
                    addr += 64;
                    let e = entry(addr, r);
                    if next() % 2 == 0 {
                        h.push(e);
                    } else if !h.push_fast(e, false) {
                        // Refused only for wide ranks, and then unchanged.
                        let wide = r >= 64 || h.ranks().0[1..].iter().any(|w| *w != 0);
                        assert!(
                            wide,
                            "round {round} step {step}: push_fast refused rank {r}"
                        );
                        assert_matches(&h, &model, step);
                        h.push(e);
                    }
                    model.push((addr, r));
                } else if op < 8 {
                    let top = model.last().map(|&(a, _)| a);
                    let a = top.unwrap_or(1);
                    assert_eq!(h.pop_top(a), top.is_some(), "round {round} step {step}");
                    model.pop();
                    // Popping something not on top changes nothing.
                    if let Some(&(below, _)) = model.first() {
                        if model.len() > 1 {
                            assert!(!h.pop_top(below));
                        }
                    }
                } else if !model.is_empty() {
                    let i = (next() % model.len() as u64) as usize;
                    let (a, r) = model.remove(i);
                    let e = h.remove(a).expect("held");
                    assert_eq!((e.addr, e.rank()), (a, r));
                }
                assert_matches(&h, &model, step);
            }
        }
    }
}
