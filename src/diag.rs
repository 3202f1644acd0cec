//! Diagnostics on stderr that never fail: a write error (a full disk, a
//! closed pipe with SIGPIPE ignored, as in Python) is ignored rather than
//! turned into a panic, which could abort from a lock's fast path; and the
//! panic hook that keeps a panic's message for the C boundary to return.

use std::cell::RefCell;
use std::io::Write;
use std::sync::Once;

thread_local! {
    /// The message of this thread's last panic (for the C boundary).
    static PANIC_MESSAGE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Take the message of the calling thread's last panic, if any.
pub fn take_panic_message() -> Option<String> {
    PANIC_MESSAGE
        .try_with(|p| p.borrow_mut().take())
        .ok()
        .flatten()
}

/// Write `text` to stderr, ignoring errors.
pub fn eprint(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Write `text` and a newline to stderr, ignoring errors.
pub fn eprintln(text: &str) {
    let mut e = std::io::stderr().lock();
    let _ = e.write_all(text.as_bytes());
    let _ = e.write_all(b"\n");
}

/// Install (once) a panic hook that records the message for the boundary
/// and prints one line, instead of the default hook's backtrace advice.
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let msg = if let Some(s) = info.payload().downcast_ref::<&str>() {
                (*s).to_string()
            } else if let Some(s) = info.payload().downcast_ref::<String>() {
                s.clone()
            } else {
                "(non-string panic payload)".to_string()
            };
            let loc = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            eprintln(&format!("rtcore: internal panic at {loc}: {msg}"));
            let _ = PANIC_MESSAGE.try_with(|p| *p.borrow_mut() = Some(format!("{msg} (at {loc})")));
        }));
    });
}
