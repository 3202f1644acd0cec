//! How the interposition's findings read: lock and class phrases, the
//! reports' text, their delivery as the lock-rank mode says, and thread
//! names.

use std::fmt::Write as _;

use super::graph::{Class, Graph, Verdict};
use super::sites::site_name;
use super::{ClassKey, Lock, Mode, sites, with_learned};

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

pub(super) fn deliver(reports: Vec<String>, mode: Mode) {
    for r in &reports {
        crate::diag::eprintln(r.trim_end());
    }
    if !reports.is_empty() && mode == Mode::Abort {
        crate::diag::eprintln("rtcore: lock-rank mode abort: aborting");
        std::process::abort();
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
