//! How the interposition's findings read: lock and class phrases, the
//! reports' text, their delivery as the lock-rank mode says, and thread
//! names.

use std::fmt::Write as _;

use super::graph::{Class, Graph, Verdict};
use super::sites::site_name;
use super::{ClassKey, Lock, LockKind, Mode, sites, with_learned};

/// "mutex 0x... ['a', first locked at f (x.c:3)] at g (x.c:9) (exclusively)"
pub(super) fn wanted_phrase(l: &Lock) -> String {
    format!(
        "{} {:#x} {} at {} ({})",
        l.kind.noun(),
        l.addr,
        class_label(l.class),
        site_name(l.site),
        mode_word(l.kind.shared())
    )
}

/// "mutex 0x... ['b', ...] taken at g (x.c:8) (exclusively)"
pub(super) fn held_phrase(l: &Lock) -> String {
    format!(
        "{} {:#x} {} taken at {} ({})",
        l.kind.noun(),
        l.addr,
        class_label(l.class),
        site_name(l.site),
        mode_word(l.kind.shared())
    )
}

pub(super) fn mode_word(shared: bool) -> &'static str {
    if shared { "for reading" } else { "exclusively" }
}

/// "[class: initialised at SITE]", or for a statically initialised lock
/// "[NAME, first locked at SITE]" (its variable's name where the symbol
/// table has it).
pub(super) fn class_label(c: Class) -> String {
    with_learned(|l| label(&l.graph, c))
}

pub(super) fn label(g: &Graph, c: Class) -> String {
    let i = g.class(c);
    let (key, site) = (i.key, i.site);
    match key {
        ClassKey::InitSite(_) => format!("[class: initialised at {}]", site_name(site)),
        ClassKey::Static(addr) => format!(
            "[{}, first locked at {}]",
            sites::object_name(addr)
                .map_or_else(|| format!("static {addr:#x}"), |n| format!("'{n}'")),
            site_name(site)
        ),
    }
}

pub(super) fn describe(v: &Verdict, wanted: &Lock, held: &[Lock]) -> String {
    let mut s = String::new();
    match v {
        Verdict::Cycle { held: h, path, .. } => {
            let holding = held.iter().find(|x| x.class == *h);
            let _ = writeln!(
                s,
                "rtcore: lock order violation (learned order)\n  thread {} wants {}\n  while holding {}",
                thread_name(),
                wanted_phrase(wanted),
                holding.map_or_else(|| class_label(*h), held_phrase),
            );
            let _ = write!(
                s,
                "  the opposite order was learned before (each class before the next):"
            );
            for (from, to, seen) in path {
                let _ = write!(
                    s,
                    "\n    {} then {}: thread {} took the second at {} holding the first, taken at {}",
                    class_label(*from),
                    class_label(*to),
                    seen.thread,
                    site_name(seen.wanted_site),
                    site_name(seen.held_site)
                );
            }
        }
        Verdict::BothOrders {
            class,
            ascending,
            descending,
        } => {
            let _ = write!(
                s,
                "rtcore: lock order violation (learned order)\n  two locks of one class {} taken in both address orders\n    ascending: thread {} at {} while holding one taken at {}\n    descending: thread {} at {} while holding one taken at {}",
                class_label(*class),
                ascending.thread,
                site_name(ascending.wanted_site),
                site_name(ascending.held_site),
                descending.thread,
                site_name(descending.wanted_site),
                site_name(descending.held_site),
            );
        }
        Verdict::Fine => {}
    }
    s
}

/// One problem found in an interposed lock call, for `deliver`.
pub(super) struct Finding {
    pub reason: Reason,
    pub text: String,
    /// The lock wanted (for an unlock not held: the lock unlocked).
    pub wanted: Lock,
    /// The thread's held locks, oldest first, and which of them the wanted
    /// one may not follow (by address).
    pub held: Vec<Lock>,
    pub conflicting: Vec<usize>,
}

pub(super) use crate::lock::report::Reason;

/// Deliver the findings through the lock-rank mode, as rtcore's own rank
/// reports are (`lock::report::foreign`: printed, aborting, queued or
/// passed to the callback). Called with no rtcore lock held.
pub(super) fn deliver(findings: Vec<Finding>, mode: Mode) {
    for f in findings {
        let foreign = |l: &Lock, conflicts: bool| {
            let (name, rank) = with_learned(|g| {
                if (l.class as usize) < g.graph.class_count() {
                    let n = super::names_of(g, l.class);
                    (label(&g.graph, l.class), n.rank)
                } else {
                    (String::from("(unknown class)"), String::new())
                }
            });
            crate::lock::report::ForeignLock {
                addr: l.addr,
                name,
                rank,
                rwlock: matches!(l.kind, LockKind::Read | LockKind::Write),
                shared: l.kind.shared(),
                site: site_name(l.site),
                conflicts,
            }
        };
        let wanted = foreign(&f.wanted, false);
        let held = f
            .held
            .iter()
            .map(|h| foreign(h, f.conflicting.contains(&h.addr)))
            .collect();
        crate::lock::report::foreign(f.reason, wanted, held, f.text, mode);
    }
}

/// "N 'name' (tid T)" for the calling thread.
pub(super) fn thread_name() -> String {
    let mut buf = [0 as libc::c_char; 64];
    // SAFETY: a valid buffer of its length for the calling thread's name.
    let rc = unsafe { libc::pthread_getname_np(libc::pthread_self(), buf.as_mut_ptr(), buf.len()) };
    // SAFETY: plain syscall.
    let tid = unsafe { libc::gettid() };
    let name = if rc == 0 {
        // SAFETY: NUL-terminated by pthread_getname_np on success.
        unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    } else {
        String::new()
    };
    format!("'{name}' (tid {tid})")
}
