//! The tracer's exports: start/stop, and the user events. See
//! docs/trace-format.md.

use std::ffi::c_void;
use std::os::raw::c_char;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed, Ordering::SeqCst};

use super::{boundary, boundary_value, required_str};
use crate::base::state::{GATE, SHUT_DOWN, STATE_MASK};
use crate::format::EventKind;
use crate::lifecycle;
use crate::record::{self, A, EmitError, writer};
use crate::status::{Error, RTC_ERR_INVALID_ARGUMENT, RTC_ERR_IO, rtc_status};

/// Where `rtc_trace_start` sends the trace.
#[repr(u32)]
pub enum rtc_trace_sink_kind {
    /// No sink: refused.
    RTC_TRACE_SINK_NONE = 0,
    /// Write to the file at `path`, closed when the trace ends: a regular
    /// file is created or emptied; anything else (a FIFO with a reader, a
    /// device, a terminal) is opened and written into as it is, never
    /// truncated or replaced. The path is opened only by a start that is
    /// not refused, and without blocking: a FIFO with no reader is refused
    /// with `RTC_ERR_IO`.
    RTC_TRACE_SINK_PATH = 1,
    /// Write to the open file descriptor `fd`; rtcore never closes it. A
    /// descriptor in non-blocking mode is waited on (poll) when full.
    RTC_TRACE_SINK_FD = 2,
    /// Call `write(data, len, user_data)`; it returns 0 on success.
    RTC_TRACE_SINK_CALLBACK = 3,
}

/// Receives trace bytes (`RTC_TRACE_SINK_CALLBACK`), on rtcore's writer
/// thread; returns 0 on success, anything else fails the trace.
pub type rtc_trace_write_fn =
    Option<unsafe extern "C" fn(data: *const u8, len: usize, user_data: *mut c_void) -> i32>;

/// Options for `rtc_trace_start`. Initialise with `RTC_TRACE_CONFIG_INIT`
/// (which sets `size` to `sizeof(rtc_trace_config)` and zeroes the rest),
/// then set `sink_kind` and its fields; fields may be added at the end.
#[repr(C)]
pub struct rtc_trace_config {
    pub size: u32,
    /// An `rtc_trace_sink_kind`.
    pub sink_kind: u32,
    /// `RTC_TRACE_SINK_PATH`: the file's path.
    pub path: *const c_char,
    /// `RTC_TRACE_SINK_FD`: the descriptor.
    pub fd: i32,
    /// Milliseconds between generations (0: the default, 1000). The trace
    /// rolls to a new self-contained generation this often and hands each
    /// finished one to the sink, so a program killed while tracing leaves
    /// a trace whose complete generations can be checked and read (at most
    /// the last one is lost). Rolling stops no thread: one that changes
    /// state meanwhile waits for microseconds. (This field was `reserved`,
    /// always zero, before version 0.3.)
    pub generation_ms: u32,
    /// `RTC_TRACE_SINK_CALLBACK`: the function and its argument.
    pub write: rtc_trace_write_fn,
    pub user_data: *mut c_void,
    /// The most memory, in MiB, the trace's records may take while they
    /// wait for the sink (0: 64). When a sink falls that far behind,
    /// whole generations are dropped (the threads recording never wait)
    /// and the trace records what each thread lost (see
    /// `rtc_trace_get_stats`). Added in 0.3: a caller built against the
    /// older header passes the older, smaller `size` and gets 64.
    pub max_mb: u32,
    /// Reserved: zero.
    pub reserved: u32,
}

/// `sizeof(rtc_trace_config)` before `max_mb` was added.
const TRACE_CONFIG_V1: usize = std::mem::offset_of!(rtc_trace_config, max_mb);

/// The queue bound and generation period of a `rtc_trace_config` (`size`
/// already checked).
///
/// # Safety
/// `config` points to a config of its `size`.
unsafe fn limits_of(config: *const rtc_trace_config) -> (u32, u64) {
    // SAFETY: the caller's promise; `max_mb` is read only when present.
    unsafe {
        let c = &*config;
        let mb = if c.size as usize >= size_of::<rtc_trace_config>() {
            c.max_mb
        } else {
            0
        };
        (c.generation_ms, u64::from(mb) << 20)
    }
}

/// The sink a `rtc_trace_config` names, checked (`func` names the caller
/// in messages).
pub(super) fn sink_from(
    config: *const rtc_trace_config,
    func: &str,
) -> crate::status::Result<writer::Sink> {
    super::checked_ptr(config, "config", func)?;
    // SAFETY: non-NULL; `size` read first.
    let size = unsafe { (*config).size } as usize;
    if size != size_of::<rtc_trace_config>() && size != TRACE_CONFIG_V1 {
        return Err(Error::new(
            RTC_ERR_INVALID_ARGUMENT,
            format!(
                "{func}: config->size is {size}, expected sizeof(rtc_trace_config) = {}",
                size_of::<rtc_trace_config>()
            ),
        ));
    }
    // SAFETY: the caller's struct, of the right size.
    let c = unsafe { &*config };
    match c.sink_kind {
        0 => Err(Error::new(
            RTC_ERR_INVALID_ARGUMENT,
            format!(
                "{func}: config->sink_kind is RTC_TRACE_SINK_NONE; choose a path, a file descriptor or a callback"
            ),
        )),
        1 => {
            let path = required_str(c.path, "config->path", func)?;
            if path.is_empty() {
                return Err(Error::new(
                    RTC_ERR_INVALID_ARGUMENT,
                    format!("{func}: config->path is empty"),
                ));
            }
            // Opened by the start once it knows it will win: a refused
            // start touches nothing.
            Ok(writer::Sink::Path(path.to_string()))
        }
        2 => {
            // SAFETY: fcntl on any integer is defined; -1/EBADF for a bad one.
            let flags = unsafe { libc::fcntl(c.fd, libc::F_GETFL) };
            if c.fd < 0 || flags < 0 {
                return Err(Error::new(
                    RTC_ERR_INVALID_ARGUMENT,
                    format!("{func}: config->fd {} is not an open file descriptor", c.fd),
                ));
            }
            if flags & libc::O_ACCMODE == libc::O_RDONLY {
                return Err(Error::new(
                    RTC_ERR_INVALID_ARGUMENT,
                    format!("{func}: config->fd {} is open for reading only", c.fd),
                ));
            }
            Ok(writer::Sink::Fd(c.fd))
        }
        3 => match c.write {
            Some(f) => Ok(writer::Sink::Callback(f, c.user_data as usize)),
            None => Err(Error::new(
                crate::status::RTC_ERR_NULL,
                format!("{func}: config->write is NULL for RTC_TRACE_SINK_CALLBACK"),
            )),
        },
        k => Err(Error::new(
            RTC_ERR_INVALID_ARGUMENT,
            format!("{func}: config->sink_kind {k} is not an rtc_trace_sink_kind"),
        )),
    }
}

/// Start recording a trace into the sink `config` names. Callable from any
/// thread, attached or not. Stops the world briefly (and waits for a hook
/// run in progress and for sysmon's tick) to record every thread's state.
///
/// Returns `RTC_OK`; `RTC_ERR_NULL`; `RTC_ERR_INVALID_ARGUMENT` for a bad
/// `size`, sink kind 0 or unknown, a closed or read-only `fd`;
/// `RTC_ERR_IO` if the path cannot be opened for writing (a directory, a
/// FIFO with no reader, no permission); `RTC_ERR_WRONG_STATE` if tracing
/// is already enabled (or still shutting down); and
/// `RTC_ERR_WOULD_DEADLOCK` from a hook, the writer, a sink callback, or
/// the thread holding the world stopped; `RTC_ERR_SHUT_DOWN`. A refused
/// start creates, truncates and writes nothing.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_trace_start(config: *const rtc_trace_config) -> rtc_status {
    boundary("rtc_trace_start", || {
        lifecycle::enter()?;
        let sink = sink_from(config, "rtc_trace_start")?;
        // SAFETY: `sink_from` checked the pointer and the size.
        let (generation_ms, max_bytes) = unsafe { limits_of(config) };
        crate::trace::start(sink, generation_ms, max_bytes)
    })
}

/// Stop the trace: every thread's events are handed to the writer while the
/// world is stopped; then this waits (up to 10 s) for the writer to finish
/// and writes the end marker. Succeeds when not tracing.
///
/// Returns `RTC_OK`; `RTC_ERR_IO` if the sink failed during the trace (the
/// trace stopped being written then) or the writer did not finish in time;
/// `RTC_ERR_WOULD_DEADLOCK` as for `rtc_trace_start`; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_trace_stop() -> rtc_status {
    boundary("rtc_trace_stop", || {
        lifecycle::enter()?;
        crate::trace::stop()
    })
}

/// The counters of the trace being recorded, or of the last one.
#[repr(C)]
pub struct rtc_trace_stats {
    /// `sizeof(rtc_trace_stats)`; set it before the call.
    pub size: u32,
    /// 1 while a trace is being recorded.
    pub tracing: u32,
    /// Batches and events handed to the writer so far (a thread's events
    /// count once its batch is full, or at the trace's end), and their
    /// bytes.
    pub batches: u64,
    pub events: u64,
    pub bytes: u64,
    /// What was dropped because the sink fell behind by more than the
    /// trace's `max_mb`: whole generations, their batches, events and
    /// bytes. The trace holds a loss record for each such generation.
    pub lost_generations: u64,
    pub lost_batches: u64,
    pub lost_events: u64,
    pub lost_bytes: u64,
    /// Memory held now: threads' batches being filled, and records
    /// waiting for the sink (queued or being written). Together they stay
    /// within the trace's `max_mb` (the buffers take at most a quarter:
    /// with many threads batches get smaller).
    pub buffer_bytes: u64,
    pub queued_bytes: u64,
}

/// Fill `*out` (whose `size` the caller sets to `sizeof(rtc_trace_stats)`)
/// with the counters of the trace being recorded, or of the last one.
///
/// Returns `RTC_OK`; `RTC_ERR_NULL`; `RTC_ERR_INVALID_ARGUMENT` for a wrong
/// `size`; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_trace_get_stats(out: *mut rtc_trace_stats) -> rtc_status {
    boundary("rtc_trace_get_stats", || {
        lifecycle::enter()?;
        super::checked_ptr(out, "out", "rtc_trace_get_stats")?;
        // SAFETY: non-NULL and aligned; `size` read alone first.
        let size = unsafe { (*out).size } as usize;
        if size != size_of::<rtc_trace_stats>() {
            return Err(Error::new(
                RTC_ERR_INVALID_ARGUMENT,
                format!(
                    "rtc_trace_get_stats: out->size is {size}, expected sizeof(rtc_trace_stats) = {}",
                    size_of::<rtc_trace_stats>()
                ),
            ));
        }
        let c = writer::counters();
        let r = rtc_trace_stats {
            size: size as u32,
            tracing: u32::from(crate::trace::enabled()),
            batches: c.batches,
            events: c.events,
            bytes: c.bytes,
            lost_generations: c.lost_generations,
            lost_batches: c.lost_batches,
            lost_events: c.lost_events,
            lost_bytes: c.lost_bytes,
            buffer_bytes: crate::record::BUFFER_BYTES.load(std::sync::atomic::Ordering::Relaxed),
            queued_bytes: writer::queued_bytes(),
        };
        // SAFETY: the caller's struct of the right size.
        unsafe { out.write(r) };
        Ok(())
    })
}

/// 1 while a trace is being recorded, else 0. (The `RTC_TRACE_ON()` macro
/// reads the same without a call.)
#[unsafe(no_mangle)]
pub extern "C" fn rtc_trace_enabled() -> i32 {
    boundary_value("rtc_trace_enabled", 0, || crate::trace::enabled() as i32)
}

/// The user events' answer when not tracing, before any argument is
/// read: `RTC_OK` (and `RTC_ERR_SHUT_DOWN` after `rtc_shutdown`, through
/// the boundary so its message is kept). None: tracing, go on.
#[inline(always)]
fn when_off(func: &'static str) -> Option<rtc_status> {
    if record::rtc_trace_on.load(Relaxed) != 0 {
        return None;
    }
    if GATE.load(Relaxed) & STATE_MASK == SHUT_DOWN {
        return Some(boundary(func, || lifecycle::enter().map(|_| ())));
    }
    Some(crate::status::RTC_OK)
}

/// Record a user event whose strings are the caller's C strings, checked
/// only now that they are recorded.
fn emit_user(func: &str, kind: EventKind, args: &[A<'_>]) -> crate::status::Result<()> {
    match record::emit_user(kind, args) {
        Ok(()) => Ok(()),
        Err(EmitError::NotUtf8) => Err(Error::new(
            RTC_ERR_INVALID_ARGUMENT,
            format!("{func}: a text argument is not valid UTF-8 (nothing was recorded)"),
        )),
        // A signal handler interrupted this thread while it recorded an
        // event: its gate is held by the interrupted code; taking it would
        // spin forever. No message is stored and nothing is allocated (the
        // interrupted code may be inside the allocator).
        Err(EmitError::Busy) => Err(Error {
            status: crate::status::RTC_ERR_BUSY,
            message: String::new(),
        }),
    }
}

/// Record a log line in the calling thread's trace: `category` and
/// `message` (either may be NULL; each is cut at 64 KiB). When not
/// tracing, returns at once without reading either (use `RTC_LOG` to skip
/// even the call): text is checked only when it is recorded. Like every
/// rtcore call, not async-signal-safe: do not call it from a signal
/// handler. (One case is caught: a handler that interrupted an event being
/// recorded on the same thread gets `RTC_ERR_BUSY` from every event call,
/// with no message, where it would otherwise spin forever.)
///
/// Returns `RTC_OK`; `RTC_ERR_INVALID_ARGUMENT` for non-UTF-8 text while
/// tracing (nothing is recorded); `RTC_ERR_BUSY` as above;
/// `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_log(category: *const c_char, message: *const c_char) -> rtc_status {
    if let Some(s) = when_off("rtc_log") {
        return s;
    }
    boundary("rtc_log", || {
        // Trace (here and for every user event below): the caller's own
        // event, protected by the stop if it is RUNNING, else by its gate
        // (`record::emit_user` takes it).
        emit_user(
            "rtc_log",
            EventKind::Log,
            &[A::CStr(category), A::CStr(message)],
        )
    })
}

/// Begin a region (a named span of the calling thread; regions nest).
/// `name` may be NULL; it is read only while tracing.
///
/// Returns `RTC_OK`; `RTC_ERR_INVALID_ARGUMENT` for non-UTF-8 text while
/// tracing; `RTC_ERR_BUSY` as for `rtc_log`; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_region_begin(name: *const c_char) -> rtc_status {
    if let Some(s) = when_off("rtc_region_begin") {
        return s;
    }
    boundary("rtc_region_begin", || {
        emit_user("rtc_region_begin", EventKind::RegionBegin, &[A::CStr(name)])
    })
}

/// End the calling thread's innermost region.
///
/// Returns `RTC_OK`; `RTC_ERR_BUSY` as for `rtc_log`; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_region_end() -> rtc_status {
    if let Some(s) = when_off("rtc_region_end") {
        return s;
    }
    boundary("rtc_region_end", || {
        emit_user("rtc_region_end", EventKind::RegionEnd, &[])
    })
}

static NEXT_TASK: AtomicU64 = AtomicU64::new(1);
/// Tasks begun and not yet ended (a second end is refused, so a user's
/// mistake never makes rtcore write a trace its own checker rejects).
static OPEN_TASKS: std::sync::LazyLock<parking_lot::Mutex<std::collections::HashSet<u64>>> =
    std::sync::LazyLock::new(|| parking_lot::Mutex::new(std::collections::HashSet::new()));

/// Begin a task (a unit of work that may move between threads): its id
/// (unique, never reused) is written to `*out_id`, tracing or not; end it
/// with `rtc_task_end`, from any thread. `name` (may be NULL) is read only
/// while tracing.
///
/// Returns `RTC_OK`; `RTC_ERR_NULL`; `RTC_ERR_INVALID_ARGUMENT` for
/// non-UTF-8 text while tracing (no id is handed out then); `RTC_ERR_BUSY`
/// as for `rtc_log`; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_task_begin(name: *const c_char, out_id: *mut u64) -> rtc_status {
    boundary("rtc_task_begin", || {
        lifecycle::enter()?;
        let out_id = super::out(out_id, "out_id", "rtc_task_begin")?;
        let id = NEXT_TASK.fetch_add(1, SeqCst);
        OPEN_TASKS.lock().insert(id);
        if let Err(e) = emit_user(
            "rtc_task_begin",
            EventKind::TaskBegin,
            &[A::U(id), A::CStr(name)],
        ) {
            OPEN_TASKS.lock().remove(&id);
            return Err(e);
        }
        out_id.set(id);
        Ok(())
    })
}

/// End task `id`.
///
/// Returns `RTC_OK`; `RTC_ERR_INVALID_ARGUMENT` for id 0, one never handed
/// out, or a task already ended; `RTC_ERR_BUSY` as for `rtc_log`;
/// `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_task_end(id: u64) -> rtc_status {
    boundary("rtc_task_end", || {
        lifecycle::enter()?;
        if id == 0 || id >= NEXT_TASK.load(SeqCst) {
            return Err(Error::new(
                RTC_ERR_INVALID_ARGUMENT,
                format!("rtc_task_end: {id} is not a task id rtc_task_begin handed out"),
            ));
        }
        if !OPEN_TASKS.lock().remove(&id) {
            return Err(Error::new(
                RTC_ERR_INVALID_ARGUMENT,
                format!("rtc_task_end: task {id} has already ended"),
            ));
        }
        let r = emit_user("rtc_task_end", EventKind::TaskEnd, &[A::U(id)]);
        if r.is_err() {
            // Not recorded (RTC_ERR_BUSY): the task is still open, the
            // call may be made again.
            OPEN_TASKS.lock().insert(id);
        }
        r
    })
}

/// Record a counter's value (a counter track named `name`; may be NULL,
/// read only while tracing).
///
/// Returns `RTC_OK`; `RTC_ERR_INVALID_ARGUMENT` for non-UTF-8 text while
/// tracing; `RTC_ERR_BUSY` as for `rtc_log`; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_counter(name: *const c_char, value: i64) -> rtc_status {
    if let Some(s) = when_off("rtc_counter") {
        return s;
    }
    boundary("rtc_counter", || {
        emit_user(
            "rtc_counter",
            EventKind::Counter,
            &[A::CStr(name), A::S(value)],
        )
    })
}

/// Report a check's outcome: the summary or the rejection, in `report`.
fn report_check(
    checked: Result<crate::reader::Summary, crate::reader::ReadError>,
    report: *mut c_char,
    report_len: usize,
) -> crate::status::Result<()> {
    match checked {
        Ok(s) if s.cut.is_some() => {
            let cut = s.cut.as_ref().map(|c| c.describe()).unwrap_or_default();
            let text = format!(
                "{cut}; the {} complete generation(s) are consistent: {} events, {} thread(s)",
                s.generations, s.events, s.threads
            );
            super::copy_out(&text, report, report_len);
            Err(Error::new(crate::status::RTC_ERR_TRACE_CUT, text))
        }
        Ok(s) => {
            let kinds: Vec<String> = s
                .by_kind
                .iter()
                .filter(|(k, _)| **k != "string")
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            super::copy_out(
                &format!(
                    "consistent trace: {} events, {} generation(s), {} thread(s), {} bytes; {} range(s) crossing the start, {} open at the end; lost: {} generation(s), {} events, {} bytes; by kind: {}",
                    s.events,
                    s.generations,
                    s.threads,
                    s.bytes,
                    s.crossed_start,
                    s.open_at_end,
                    s.lost_generations,
                    s.lost_events,
                    s.lost_bytes,
                    kinds.join(", ")
                ),
                report,
                report_len,
            );
            Ok(())
        }
        Err(e) => {
            let text = e.to_string();
            super::copy_out(&text, report, report_len);
            Err(Error::new(crate::status::RTC_ERR_BAD_TRACE, text))
        }
    }
}

/// Statistics of the trace file at `path`, as JSON (the same as `rtcore
/// stats --json`): per thread the time in each state, blocking reasons with
/// totals, the most contended locks with their waits, owners and the threads
/// whose unlocks woke sleeping waiters (`woken_by`), sysmon's
/// actions, events by kind, ranges crossing the trace's edges, bytes per
/// event. A trace cut short (a program killed while tracing) gives the
/// statistics of its complete generations, with a `"cut"` object saying
/// after which generation and byte it ends. The file is read one
/// generation at a time (memory bounded by
/// one generation's events). The text is copied into `buf` (at most `len`
/// bytes, NUL-terminated, truncated if needed) and the size needed, including the
/// NUL, is written to `*out_needed` (which may be NULL): call again with a
/// larger buffer when it exceeds `len`. `buf` may be NULL when `len` is 0.
///
/// Returns `RTC_OK`; `RTC_ERR_NULL` for a NULL `path`, or a NULL `buf` with
/// `len > 0`; `RTC_ERR_INVALID_ARGUMENT` for a non-UTF-8 path or a `len`
/// above `PTRDIFF_MAX`; `RTC_ERR_IO` if the file cannot be read (as
/// `rtc_trace_check_file`: a FIFO nobody writes to within 5 s is refused);
/// `RTC_ERR_BAD_TRACE` for an inconsistent or corrupt trace, or one cut
/// before its first generation ended (the reader's message, the report
/// `rtc_trace_check_file` gives, is in `rtc_last_error_message`).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_trace_stats_json(
    path: *const c_char,
    buf: *mut c_char,
    len: usize,
    out_needed: *mut usize,
) -> rtc_status {
    boundary("rtc_trace_stats_json", || {
        let out_needed = super::opt_out(out_needed, "out_needed", "rtc_trace_stats_json")?;
        let path = required_str(path, "path", "rtc_trace_stats_json")?;
        if buf.is_null() && len > 0 {
            return Err(Error::new(
                crate::status::RTC_ERR_NULL,
                "rtc_trace_stats_json: argument 'buf' is NULL but 'len' is not 0",
            ));
        }
        if len > isize::MAX as usize {
            return Err(Error::new(
                crate::status::RTC_ERR_INVALID_ARGUMENT,
                "rtc_trace_stats_json: 'len' is larger than any buffer",
            ));
        }
        // Read one generation at a time: memory stays bounded by one.
        let stats = crate::stats::stats_file(std::path::Path::new(path))
            .map_err(|e| {
                Error::new(
                    RTC_ERR_IO,
                    format!("rtc_trace_stats_json: cannot read '{path}': {e}"),
                )
            })?
            .map_err(|e| {
                Error::new(
                    crate::status::RTC_ERR_BAD_TRACE,
                    format!("rtc_trace_stats_json: {path}: {e}"),
                )
            })?;
        let needed = super::copy_out(&stats.to_json(), buf, len);
        if let Some(out_needed) = out_needed {
            out_needed.set(needed);
        }
        Ok(())
    })
}

/// Check a trace held in memory (`data`, `len` bytes). On success a
/// one-line summary (events, generations, threads, ranges crossing the
/// trace's edges, events by kind), on failure the reader's message (naming the problem
/// and its byte offset), is copied into `report` (`report_len` bytes,
/// NUL-terminated, truncated to fit; `report` may be NULL).
///
/// Returns `RTC_OK` for a complete, consistent trace; `RTC_ERR_TRACE_CUT`
/// for one cut short (its end missing: a program killed while tracing)
/// whose complete generations are all consistent (the report says after
/// which generation and byte); `RTC_ERR_BAD_TRACE` for an inconsistent or
/// corrupt one, or one cut before its first generation ended;
/// `RTC_ERR_NULL` for NULL `data` with a non-zero `len`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_trace_check(
    data: *const u8,
    len: usize,
    report: *mut c_char,
    report_len: usize,
) -> rtc_status {
    boundary("rtc_trace_check", || {
        if data.is_null() && len != 0 {
            return Err(Error::new(
                crate::status::RTC_ERR_NULL,
                "rtc_trace_check: argument 'data' was NULL",
            ));
        }
        let bytes = if len == 0 {
            &[][..]
        } else {
            // SAFETY: the caller promises `len` readable bytes at `data`.
            unsafe { std::slice::from_raw_parts(data, len) }
        };
        report_check(crate::reader::check(bytes), report, report_len)
    })
}

/// `rtc_trace_check` on the file at `path`. The file is read as it is
/// checked, never whole: memory stays bounded by its largest generation.
/// Any file can be named: a FIFO is read as a stream while somebody writes
/// to it: a writer that comes within 5 s is waited for (so a check may
/// start before the program tracing into the FIFO, which needs a reader),
/// and a FIFO nobody writes to by then is `RTC_ERR_IO`, never a hang.
///
/// Returns as `rtc_trace_check`, and `RTC_ERR_IO` if the file cannot be
/// read (the verdict on a file that can is never `RTC_ERR_IO`: the same
/// split as `rtc_trace_stats_json`'s); `RTC_ERR_NULL`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_trace_check_file(
    path: *const c_char,
    report: *mut c_char,
    report_len: usize,
) -> rtc_status {
    boundary("rtc_trace_check_file", || {
        let path = required_str(path, "path", "rtc_trace_check_file")?;
        // Read as it is checked: memory stays bounded by one generation.
        let io_error = |e: std::io::Error| {
            let e = Error::new(
                RTC_ERR_IO,
                format!("rtc_trace_check_file: cannot read '{path}': {e}"),
            );
            super::copy_out(&e.message, report, report_len);
            e
        };
        let checked = crate::reader::check_file(std::path::Path::new(path)).map_err(io_error)?;
        report_check(checked, report, report_len)
    })
}
