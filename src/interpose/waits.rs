//! Interposed waits seen by the rest of rtcore: a lock call that finds its
//! lock busy is published for sysmon's deadlock search (`lock::waiters`)
//! and, while tracing, recorded as a `lock contended` / `lock acquired`
//! pair named by its class, with its owner where glibc's lock word names
//! a thread that took interposed locks.

use std::sync::atomic::Ordering::Relaxed;

use super::report::{class_label, label};
use super::sites::site_name;
use super::{Lock, LockKind, with_learned};

/// An interposed lock call is about to block on `wanted` (its lock looked
/// busy) while `held` are held: published for sysmon's deadlock search
/// (`lock::waiters`), which follows these waits as it follows rtcore's
/// own locks' parks.
pub fn begin(held: &[Lock], wanted: Lock) {
    static NAMERS: std::sync::Once = std::sync::Once::new();
    NAMERS.call_once(|| crate::lock::waiters::register_external(describe_lock, site_name));
    use crate::lock::order::{HeldLock, LockKind as K};
    let want = crate::lock::waiters::Want {
        addr: wanted.addr,
        kind: K::Pthread,
        shared: wanted.kind.shared(),
        file: std::ptr::null(),
        line: 0,
        site: wanted.site,
    };
    let holds: Vec<HeldLock> = held
        .iter()
        .map(|h| {
            HeldLock::new(
                h.addr,
                std::ptr::null(),
                h.site as u64,
                0,
                0,
                K::Pthread,
                h.kind.shared(),
                false,
            )
        })
        .collect();
    crate::lock::waiters::publish_external(want, &holds);
    let reason = match wanted.kind {
        LockKind::Read | LockKind::Write => crate::format::BlockReason::RwLock,
        _ => crate::format::BlockReason::Mutex,
    };
    outside_wait(reason, wanted.addr);
    trace_contended(&wanted);
}

/// The interposed call that `begin` announced returned.
pub fn end() {
    crate::lock::waiters::withdraw_external();
    let open = TRACED_WAIT.try_with(|w| w.take()).ok().flatten();
    if let Some((addr, since)) = open {
        if tracing() {
            let waited = crate::record::monotonic_ns().saturating_sub(since);
            crate::record::emit(
                crate::format::EventKind::LockAcquired,
                &[
                    crate::record::A::U(addr as u64),
                    crate::record::A::U(waited),
                    crate::record::A::U(0),
                ],
            );
        }
    }
    outside_resume();
}

fn tracing() -> bool {
    crate::record::rtc_trace_on.load(Relaxed) != 0
}

/// A thread outside the world begins to wait in an interposed call
/// (`reason` as the format's `block`: mutex, condition, rwlock): while
/// tracing, its state becomes WAITING (`outside wait`) until
/// `outside_resume`. An attached thread's state is the world's: nothing
/// is recorded for it.
///
/// Calls nest (a signal handler that interrupts a condition wait may take
/// a busy lock): each `outside_wait` is paired with one `outside_resume`,
/// and only the outermost pair is recorded.
pub fn outside_wait(reason: crate::format::BlockReason, object: usize) {
    let depth = OUTSIDE_DEPTH
        .try_with(|d| {
            let v = d.get();
            d.set(v + 1);
            v
        })
        .unwrap_or(1);
    if depth != 0 || !tracing() || crate::record::attached() {
        return;
    }
    // Its sections may be given up on if they never end (a longjmp out of
    // a signal handler): no other thread's events depend on its.
    crate::record::mark_outside();
    crate::record::emit(
        crate::format::EventKind::OutsideWait,
        &[
            crate::record::A::U(reason as u64),
            crate::record::A::U(object as u64),
        ],
    );
    let _ = OUTSIDE_WAIT.try_with(|w| w.set(true));
    if crate::record::fault::take_leave_section() {
        crate::record::leave_section_held();
    }
}

/// The wait `outside_wait` recorded ended (`outside resume`). Recorded
/// while tracing even if the trace was restarted meanwhile: the reader
/// counts a resume first in its stream as a wait begun before the trace.
pub fn outside_resume() {
    let outermost = OUTSIDE_DEPTH
        .try_with(|d| {
            let v = d.get();
            d.set(v.saturating_sub(1));
            v == 1
        })
        .unwrap_or(false);
    if !outermost {
        return;
    }
    let was = OUTSIDE_WAIT.try_with(|w| w.replace(false)).unwrap_or(false);
    if was && tracing() {
        crate::record::emit(crate::format::EventKind::OutsideResume, &[]);
    }
}

thread_local! {
    /// The interposed wait this thread recorded as contended (address,
    /// start): `end` records its end.
    static TRACED_WAIT: std::cell::Cell<Option<(usize, u64)>> = const { std::cell::Cell::new(None) };
    /// This thread recorded an `outside wait` not yet resumed.
    static OUTSIDE_WAIT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// `outside_wait` calls not yet paired with `outside_resume`.
    static OUTSIDE_DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// While tracing: the wait as a `lock contended` event (the lock, its class
/// label as the name, its owner's rtcore id where glibc's lock word names
/// a thread that took interposed locks; 0 otherwise).
fn trace_contended(wanted: &Lock) {
    if !tracing() {
        return;
    }
    let owner_tid = owner_tid(wanted);
    let (label, owner) = with_learned(|l| {
        (
            label(&l.graph, wanted.class),
            owner_tid
                .and_then(|t| l.by_tid.get(&t).copied())
                .unwrap_or(0),
        )
    });
    crate::record::emit(
        crate::format::EventKind::LockContended,
        &[
            crate::record::A::U(wanted.addr as u64),
            crate::record::A::Str(&label),
            crate::record::A::U(owner),
        ],
    );
    let _ = TRACED_WAIT.try_with(|w| w.set(Some((wanted.addr, crate::record::monotonic_ns()))));
}

/// The kernel id of the thread holding `lock` exclusively, as glibc keeps
/// it: a mutex's `__owner`, a read/write lock's `__cur_writer` (x86-64
/// layouts; the lock is alive: its waiter is inside a call on it).
fn owner_tid(lock: &Lock) -> Option<i32> {
    let offset = match lock.kind {
        LockKind::Read | LockKind::Write => 24,
        _ => 8,
    };
    // SAFETY: the lock is alive while this thread is inside a call on it;
    // a racy read of an int the owner writes is only a hint.
    let tid = unsafe { std::ptr::read_volatile((lock.addr + offset) as *const i32) };
    (tid > 0).then_some(tid)
}

/// "pthread lock 0x... ['a', first locked at ...]" for a deadlock report.
fn describe_lock(addr: usize) -> String {
    let class = with_learned(|l| l.locks.get(&addr).copied());
    match class {
        Some(c) => format!("pthread lock {addr:#x} {}", class_label(c)),
        None => format!("pthread lock {addr:#x}"),
    }
}
