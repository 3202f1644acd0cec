//! The writer: one thread per trace ("rtcore-trace-writer") that alone does
//! sink I/O, holding no rtcore lock while it does. Producers (emitters
//! handing over full batches, the tracer at start and stop) push framed
//! records onto the queue (inner rank `tracequeue`, held only to push or
//! pop) and wake it.
//!
//! Invariants:
//! - Records reach the sink in queue order; the file header is the first,
//!   the trace-end record the last.
//! - A failing sink switches the writer to discard: later records are
//!   dropped (counted) and the error is kept for `finish` to return.
//! - A file descriptor given by the user is never closed; a file opened
//!   from a path is closed when the writer is done.

use std::collections::VecDeque;
use std::ffi::c_void;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use crate::base::inner::{InnerMutex, InnerRank};
use crate::format::{self, RecordKind};

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
        let regular = file
            .metadata()
            .map_err(|e| format!("cannot inspect '{path}': {e}"))?
            .is_file();
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

    fn write_all(&mut self, data: &[u8]) -> Result<(), String> {
        use std::os::fd::AsRawFd;
        match self {
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

    fn flush(&mut self) -> Result<(), String> {
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
                    if ABANDONED.load(SeqCst) {
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

enum Item {
    Raw(Vec<u8>),
    Record(RecordKind, Vec<u8>),
}

struct Queue {
    /// Records to write: a kind and its body (framed, with its CRC, by the
    /// writer, not by the producer), or raw bytes (the file header).
    items: VecDeque<Item>,
    /// A writer thread exists (from `begin` until it has returned).
    active: bool,
    /// `finish` was called: after the queue drains, the writer returns.
    closing: bool,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
    /// The sink error, once one happened (the writer then discards).
    error: Option<String>,
}

static QUEUE: LazyLock<InnerMutex<Queue>> = LazyLock::new(|| {
    InnerMutex::new(
        InnerRank::TraceQueue,
        Queue {
            items: VecDeque::new(),
            active: false,
            closing: false,
            thread: None,
            error: None,
        },
    )
});

/// Set when `finish` gave up waiting: the writer stops touching the sink
/// (after at most the write in progress), so a caller that reuses its fd
/// or frees its callback's data after a failed stop is not written to.
static ABANDONED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Bumped on every push; the writer parks while it is unchanged.
static WAKES: AtomicU64 = AtomicU64::new(0);
/// Bumped when the writer returns.
static DONE: AtomicU64 = AtomicU64::new(0);
/// Bytes the writer has written (stats).
pub static BYTES: AtomicU64 = AtomicU64::new(0);
/// Records dropped: pushed with no writer, or after a sink failure.
pub static DISCARDED: AtomicU64 = AtomicU64::new(0);

fn wake() {
    WAKES.fetch_add(1, SeqCst);
    crate::base::parked::unpark_all(&WAKES as *const AtomicU64 as usize);
}

/// Is a writer still running (a previous trace still shutting down)?
pub fn busy() -> bool {
    QUEUE.lock().active
}

/// Start a writer for a new trace: the file header goes first.
pub fn begin(sink: Sink, trace_id: u64) -> Result<(), String> {
    let mut q = QUEUE.lock();
    if q.active {
        return Err("the previous trace's writer is still draining".into());
    }
    q.items.clear();
    q.items
        .push_back(Item::Raw(format::file_header(trace_id).to_vec()));
    q.closing = false;
    q.error = None;
    ABANDONED.store(false, SeqCst);
    let j = std::thread::Builder::new()
        .name("rtcore-trace-writer".into())
        .spawn(move || run(sink))
        .map_err(|e| format!("cannot start the trace writer thread: {e}"))?;
    q.thread = Some(j);
    q.active = true;
    Ok(())
}

/// Queue a record (the writer frames it).
pub fn push_record(kind: RecordKind, body: &[u8]) {
    push_owned(kind, body.to_vec());
}

fn push_owned(kind: RecordKind, body: Vec<u8>) {
    {
        let mut q = QUEUE.lock();
        if !q.active || q.closing {
            DISCARDED.fetch_add(1, SeqCst);
            return;
        }
        q.items.push_back(Item::Record(kind, body));
    }
    wake();
}

/// Queue a batch body (no copy, no CRC on the producer's thread).
pub fn push_batch(body: Vec<u8>) {
    push_owned(RecordKind::Batch, body);
}

/// Queue the last record, then wait (at most `limit`) for the writer to
/// drain and return. Returns the sink's error, if any; a timeout is an
/// error too (the writer keeps going and a new trace must wait for it).
pub fn finish(last: Option<(RecordKind, Vec<u8>)>, limit: Duration) -> Result<(), String> {
    let seen_done = DONE.load(SeqCst);
    {
        let mut q = QUEUE.lock();
        if !q.active {
            return Ok(());
        }
        if let Some((kind, body)) = last {
            q.items.push_back(Item::Record(kind, body));
        }
        q.closing = true;
    }
    wake();
    let deadline = Instant::now() + limit;
    while DONE.load(SeqCst) == seen_done {
        if Instant::now() >= deadline {
            ABANDONED.store(true, SeqCst);
            wake();
            return Err(format!(
                "the trace writer did not finish within {} ms (a stalled sink?); the trace may be incomplete",
                limit.as_millis()
            ));
        }
        // SAFETY: the validate callback only reads an atomic.
        unsafe {
            crate::base::parked::park(
                &DONE as *const AtomicU64 as usize,
                || DONE.load(SeqCst) == seen_done,
                Some(deadline),
            );
        }
    }
    let j = QUEUE.lock().thread.take();
    match j.map(|j| j.join()) {
        Some(Ok(r)) => r,
        Some(Err(_)) => Err("the trace writer thread panicked".into()),
        None => Ok(()),
    }
}

fn run(mut sink: Sink) -> Result<(), String> {
    super::set_no_record(true);
    // A pipe or socket sink whose reader went away must fail the trace, not
    // kill the process: SIGPIPE is blocked on this thread (a write then
    // fails with EPIPE; the signal stays pending on this thread and goes
    // with it).
    // SAFETY: plain signal-mask calls on this thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    // Only the winning start gets here: now the file may be emptied.
    let mut error: Option<String> = sink.prepare().err();
    if let Some(e) = &error {
        QUEUE.lock().error = Some(e.clone());
    }
    loop {
        let seen = WAKES.load(SeqCst);
        let (batch, closing) = {
            let mut q = QUEUE.lock();
            (std::mem::take(&mut q.items), q.closing)
        };
        if ABANDONED.load(SeqCst) && error.is_none() {
            error = Some("abandoned: the writer did not finish in time".into());
        }
        let mut framed = Vec::new();
        for item in &batch {
            let rec: &[u8] = match item {
                Item::Raw(b) => b,
                Item::Record(kind, body) => {
                    framed.clear();
                    format::put_record(&mut framed, *kind, body);
                    &framed
                }
            };
            if error.is_none() {
                match sink.write_all(rec) {
                    Ok(()) => {
                        BYTES.fetch_add(rec.len() as u64, SeqCst);
                    }
                    Err(e) => {
                        QUEUE.lock().error = Some(e.clone());
                        error = Some(e);
                    }
                }
            } else {
                DISCARDED.fetch_add(1, SeqCst);
            }
        }
        if (closing && batch.is_empty()) || ABANDONED.load(SeqCst) {
            break;
        }
        if batch.is_empty() {
            // SAFETY: the validate callback only reads an atomic.
            unsafe {
                crate::base::parked::park(
                    &WAKES as *const AtomicU64 as usize,
                    || WAKES.load(SeqCst) == seen,
                    Some(Instant::now() + Duration::from_millis(100)),
                );
            }
        }
    }
    if error.is_none() {
        if let Err(e) = sink.flush() {
            error = Some(e);
        }
    }
    drop(sink);
    QUEUE.lock().active = false;
    DONE.fetch_add(1, SeqCst);
    crate::base::parked::unpark_all(&DONE as *const AtomicU64 as usize);
    match error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The sink failed during this trace?
pub fn failed() -> Option<String> {
    QUEUE.lock().error.clone()
}

/// In a forked child: no writer thread exists; the parent's queue is
/// dropped unread.
pub fn after_fork_child() {
    // SAFETY: only the forking thread exists.
    unsafe { QUEUE.reset_after_fork() };
    let mut q = QUEUE.lock();
    crate::base::fork::keep_forever(std::mem::take(&mut q.items));
    if let Some(j) = q.thread.take() {
        crate::base::fork::keep_forever(j);
    }
    q.active = false;
    q.closing = false;
}
