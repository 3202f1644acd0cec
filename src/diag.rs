//! Diagnostics on stderr that never fail: a write error (a full disk, a
//! closed pipe with SIGPIPE ignored, as in Python) is ignored rather than
//! turned into a panic, which could abort from a lock's fast path.

use std::io::Write;

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
