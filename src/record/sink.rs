//! Where a trace goes: a path (opened without blocking, only by a start
//! that will not be refused), a file descriptor the caller owns, or a
//! callback; and how bytes reach each (all of them, waiting out EINTR and
//! EAGAIN). Used only by the writer thread, and by the start to open a
//! path.
//!
//! Invariants:
//! - A file descriptor given by the user is never closed; a file opened
//!   from a path is closed when the writer drops the sink.
//! - Only a regular file is ever truncated, and only by the start that won.

use std::ffi::c_void;
use std::sync::atomic::Ordering::SeqCst;

/// `int (*)(const uint8_t *data, size_t len, void *user_data)`: 0 on success.
pub type WriteFn = unsafe extern "C" fn(*const u8, usize, *mut c_void) -> i32;

/// Where a trace goes.
pub enum Sink {
    /// A path, not opened yet: `open` opens it once the start knows it will
    /// win (a refused start touches nothing).
    Path(String),
    /// A file opened from a path; closed at the end. `regular`: a regular
    /// file, emptied by the writer (anything else, a FIFO or a device, is
    /// written into as it is).
    File { file: std::fs::File, regular: bool },
    /// A file descriptor owned by the caller: written, never closed.
    Fd(i32),
    /// A callback with its user data.
    Callback(WriteFn, usize),
    /// The flight recorder's memory (`ring`).
    Ring(std::sync::Arc<super::ring::Ring>),
}

/// What `Sink::open` made: the sink, and the path it created (None when
/// the file existed), for the start to remove if it fails later.
pub struct Opened {
    pub sink: Sink,
    pub created: Option<String>,
}

impl Sink {
    /// Open a `Path` sink for writing, never blocking: a FIFO with no
    /// reader is refused (ENXIO) instead of waiting in `open()` for one,
    /// since the start holds `hooklock` and is about to stop the world.
    /// The file is created if missing and never truncated here (the writer
    /// empties a regular file); a directory, or anything `open` refuses, is
    /// an error. Other sinks pass through.
    pub fn open(self) -> Result<Opened, String> {
        let Sink::Path(path) = self else {
            return Ok(Opened {
                sink: self,
                created: None,
            });
        };
        use std::os::unix::fs::OpenOptionsExt;
        let open = |create_new: bool| {
            let mut o = std::fs::OpenOptions::new();
            o.write(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY);
            if create_new {
                o.create_new(true);
            }
            o.open(&path)
        };
        let (file, created) = match open(false) {
            Ok(f) => (f, None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match open(true) {
                Ok(f) => (f, Some(path.clone())),
                // Created meanwhile by someone else: open it as it is.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => (
                    open(false).map_err(|e| describe_open_error(&path, e))?,
                    None,
                ),
                Err(e) => return Err(describe_open_error(&path, e)),
            },
            Err(e) => return Err(describe_open_error(&path, e)),
        };
        let regular = match file.metadata() {
            Ok(m) => m.is_file(),
            Err(e) => {
                drop(file);
                if created.is_some() {
                    let _ = std::fs::remove_file(&path);
                }
                return Err(format!("cannot inspect '{path}': {e}"));
            }
        };
        // Writes block as usual from here (the writer also waits out an
        // EAGAIN, for descriptors the caller made non-blocking).
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: fcntl on a descriptor this function owns.
        unsafe {
            let fl = libc::fcntl(fd, libc::F_GETFL);
            if fl >= 0 {
                libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK);
            }
        }
        Ok(Opened {
            sink: Sink::File { file, regular },
            created,
        })
    }

    /// Called once the start has won: empty a regular file opened from a
    /// path (it is opened without truncating, so a losing start changes
    /// nothing); a FIFO or a device is written into as it is.
    pub fn prepare(&mut self) -> Result<(), String> {
        match self {
            Sink::File {
                file,
                regular: true,
            } => file
                .set_len(0)
                .map_err(|e| format!("truncating the trace file: {e}")),
            _ => Ok(()),
        }
    }

    pub(super) fn write_all(&mut self, data: &[u8]) -> Result<(), String> {
        use std::os::fd::AsRawFd;
        match self {
            Sink::Ring(r) => {
                r.append(data);
                Ok(())
            }
            Sink::Path(p) => Err(format!("the trace file '{p}' was never opened")),
            Sink::File { file, .. } => {
                write_fd(file.as_raw_fd(), data).map_err(|e| format!("writing the trace file: {e}"))
            }
            Sink::Fd(fd) => {
                write_fd(*fd, data).map_err(|e| format!("writing the trace to fd {fd}: {e}"))
            }
            Sink::Callback(f, user) => {
                // SAFETY: the caller of rtc_trace_start promised `f` may be
                // called with `user` until the trace is stopped.
                let r = unsafe { f(data.as_ptr(), data.len(), *user as *mut c_void) };
                if r == 0 {
                    Ok(())
                } else {
                    Err(format!("the trace write callback returned {r}"))
                }
            }
        }
    }

    pub(super) fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }
}

fn describe_open_error(path: &str, e: std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENXIO) => format!(
            "cannot open '{path}': no process has it open for reading (a FIFO or socket needs its reader first)"
        ),
        _ => format!("cannot open '{path}': {e}"),
    }
}

/// Write all of `data` to `fd`: retried on EINTR; on EAGAIN (a descriptor
/// in non-blocking mode whose reader is slower than the trace) wait until
/// it is writable again, in slices of 100 ms so a stop that gave up on the
/// writer (`ABANDONED`) is noticed.
fn write_fd(fd: i32, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        // SAFETY: writing from a valid slice to a descriptor the caller
        // promised stays open during the trace (or that the sink owns).
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            match e.kind() {
                std::io::ErrorKind::Interrupted => continue,
                std::io::ErrorKind::WouldBlock => {
                    if super::writer::ABANDONED.load(SeqCst) {
                        return Err(e);
                    }
                    let mut p = libc::pollfd {
                        fd,
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd.
                    unsafe { libc::poll(&mut p, 1, 100) };
                    continue;
                }
                _ => return Err(e),
            }
        }
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                "wrote 0 bytes",
            ));
        }
        data = &data[n as usize..];
    }
    Ok(())
}
