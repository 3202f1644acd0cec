//! Fatal-signal dumps: on SIGSEGV, SIGBUS, SIGILL, SIGFPE or SIGABRT the
//! flight recorder writes what it holds into the dump directory, best
//! effort, then the previous handler runs (the signal is raised again with
//! it restored).
//!
//! What the handler does is bounded: it never waits longer than
//! `REACH_NS` (locks are only tried) and never allocates (names and
//! records are made in static buffers). It writes the complete
//! generations the ring holds and, when every recording thread can be
//! reached in time, the generation in progress closed where the signal
//! struck (`record::fatal`, where the rules are); threads still inside
//! their sections are skipped and named, and the message on stderr says
//! what was left out.
//!
//! Invariants:
//! - `RING` and `DIR` are set before the handlers are installed and
//!   cleared after they are removed; the ring a handler may be reading is
//!   never freed (it is kept for the process's life once installed).
//! - One dump per process: a second fatal signal (in the handler, or on
//!   another thread) goes straight to the previous handler.

use std::cell::UnsafeCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering::SeqCst};

use crate::format::{RECORD_FRAME_LEN, RECORD_MAGIC, RecordKind};
use crate::record::fatal::{self, InProgress};
use crate::record::ring::Ring;

/// How long a dump waits, at most, for threads to leave their sections and
/// for the writer to hand over the generation in progress (on a loaded
/// machine with threads logging at full speed, 100 ms was sometimes not
/// enough for the writer to catch up).
const REACH_NS: u64 = 1_000_000_000;

const SIGNALS: [i32; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGABRT,
];

struct Saved(UnsafeCell<[libc::sigaction; 5]>);
// SAFETY: written only by install/uninstall (serialised by the flight
// recorder's control lock), read by the handler after install.
unsafe impl Sync for Saved {}
// SAFETY: an all-zero sigaction is valid (SIG_DFL, no flags).
static OLD: Saved = Saved(UnsafeCell::new(unsafe { std::mem::zeroed() }));

struct Dir(UnsafeCell<([u8; 4096], usize)>);
// SAFETY: as `Saved`.
unsafe impl Sync for Dir {}
static DIR: Dir = Dir(UnsafeCell::new(([0; 4096], 0)));

static RING: AtomicPtr<Ring> = AtomicPtr::new(std::ptr::null_mut());
static INSTALLED: AtomicBool = AtomicBool::new(false);
static FIRED: AtomicBool = AtomicBool::new(false);

/// Install the handlers (the flight recorder's start, with a dump
/// directory and the fatal-signal trigger).
pub fn install(ring: Arc<Ring>, dir: std::path::PathBuf) {
    if INSTALLED.load(SeqCst) {
        return;
    }
    let bytes = dir.as_os_str().as_encoded_bytes();
    if bytes.len() >= 3900 {
        crate::diag::eprintln(
            "rtcore: flight recorder: the dump directory's path is too long for fatal-signal dumps",
        );
        return;
    }
    // SAFETY: no handler is installed (INSTALLED is false): nothing reads.
    unsafe {
        let d = &mut *DIR.0.get();
        d.0[..bytes.len()].copy_from_slice(bytes);
        d.1 = bytes.len();
    }
    // Kept for the process's life: a handler may read it at any moment.
    let p = Arc::into_raw(ring) as *mut Ring;
    RING.store(p, SeqCst);
    // SAFETY: plain sigaction calls with valid structs.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut sa.sa_mask);
        let old = &mut *OLD.0.get();
        for (i, s) in SIGNALS.iter().enumerate() {
            libc::sigaction(*s, &sa, &mut old[i]);
        }
    }
    INSTALLED.store(true, SeqCst);
}

/// Remove the handlers (the previous ones come back), unless a program's
/// own handler replaced ours meanwhile.
pub fn uninstall() {
    if !INSTALLED.swap(false, SeqCst) {
        return;
    }
    // SAFETY: plain sigaction calls with valid structs.
    unsafe {
        let old = &*OLD.0.get();
        for (i, s) in SIGNALS.iter().enumerate() {
            let mut cur: libc::sigaction = std::mem::zeroed();
            libc::sigaction(*s, std::ptr::null(), &mut cur);
            if cur.sa_sigaction == handler as *const () as usize {
                libc::sigaction(*s, &old[i], std::ptr::null_mut());
            }
        }
    }
    // The ring stays allocated (a handler on another thread may be in it),
    // kept where the process can still see it.
    let p = RING.swap(std::ptr::null_mut(), SeqCst);
    if !p.is_null() {
        // SAFETY: made by `Arc::into_raw` in `install`, taken back once.
        crate::base::fork::keep_forever(unsafe { Arc::from_raw(p as *const Ring) });
    }
}

struct Text(UnsafeCell<(Buf<4200>, Buf<4600>)>);
// SAFETY: used by the one dump a process makes (FIRED).
unsafe impl Sync for Text {}
static TEXT: Text = Text(UnsafeCell::new((Buf::new(), Buf::new())));

/// A fixed buffer written without allocating.
struct Buf<const N: usize> {
    b: [u8; N],
    n: usize,
}

impl<const N: usize> Buf<N> {
    const fn new() -> Self {
        Buf { b: [0; N], n: 0 }
    }
    fn push(&mut self, s: &[u8]) {
        let k = s.len().min(N - self.n);
        self.b[self.n..self.n + k].copy_from_slice(&s[..k]);
        self.n += k;
    }
    fn num(&mut self, mut v: u64, width: usize) {
        let mut d = [0u8; 20];
        let mut i = 20;
        loop {
            i -= 1;
            d[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 && 20 - i >= width {
                break;
            }
        }
        self.push(&d[i..]);
    }
    fn bytes(&self) -> &[u8] {
        &self.b[..self.n]
    }
}

/// A trace end record naming `last`, framed in place.
fn trace_end_record(trace_id: u64, last: u64) -> Buf<64> {
    let mut body = [0u8; 18];
    body[..8].copy_from_slice(&trace_id.to_le_bytes());
    let mut n = 8;
    let mut v = last;
    while v >= 0x80 {
        body[n] = (v as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    body[n] = v as u8;
    n += 1;
    let mut rec = Buf::<64>::new();
    let mut frame = [0u8; RECORD_FRAME_LEN];
    frame[..4].copy_from_slice(&RECORD_MAGIC);
    frame[4] = RecordKind::TraceEnd as u8;
    frame[8..12].copy_from_slice(&(n as u32).to_le_bytes());
    frame[12..16].copy_from_slice(&crate::format::crc32(&body[..n]).to_le_bytes());
    rec.push(&frame);
    rec.push(&body[..n]);
    rec
}

fn write_fd(fd: i32, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        // SAFETY: writing from a valid slice.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n < 0 {
            // SAFETY: reading errno.
            if unsafe { *libc::__errno_location() } == libc::EINTR {
                continue;
            }
            return false;
        }
        if n == 0 {
            return false;
        }
        data = &data[n as usize..];
    }
    true
}

extern "C" fn handler(sig: i32, _info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    if !FIRED.swap(true, SeqCst) {
        dump(sig);
    }
    // The previous handler, for this signal, then the signal again (it is
    // blocked while this runs, so it is delivered when this returns; a
    // fault re-executes and meets the restored handler anyway).
    // SAFETY: plain calls with valid structs.
    unsafe {
        if let Some(i) = SIGNALS.iter().position(|s| *s == sig) {
            let old = &*OLD.0.get();
            libc::sigaction(sig, &old[i], std::ptr::null_mut());
        }
        libc::raise(sig);
    }
}

fn dump(sig: i32) {
    let p = RING.load(SeqCst);
    if p.is_null() {
        return;
    }
    // SAFETY: installed rings are never freed (module invariant).
    let ring = unsafe { &*p };
    // SAFETY: DIR is not written while handlers are installed.
    let (dirb, dlen) = unsafe { &*DIR.0.get() };
    let mut ts: libc::timespec = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime is async-signal-safe.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    let (y, mo, d, h, mi, s) = super::dumps::civil(ts.tv_sec.max(0) as u64);
    // SAFETY: getpid is async-signal-safe.
    let pid = unsafe { libc::getpid() } as u64;
    let mut opened = -1;
    // The path and the message live in static space, not on the stack: a
    // handler may run on a small alternate signal stack (Rust gives its
    // threads 8 KiB ones). FIRED lets one dump in per process.
    // SAFETY: only this dump, once per process, touches TEXT.
    let (path, msg) = unsafe { &mut *TEXT.0.get() };
    for attempt in 1..=9u64 {
        path.n = 0;
        path.push(&dirb[..*dlen]);
        path.push(b"/rtcore-");
        path.num(pid, 1);
        path.push(b"-");
        path.num(y, 4);
        path.num(mo, 2);
        path.num(d, 2);
        path.push(b"T");
        path.num(h, 2);
        path.num(mi, 2);
        path.num(s, 2);
        path.push(b"-signal");
        if attempt > 1 {
            path.push(b"-");
            path.num(attempt, 1);
        }
        path.push(b".rtctrace\0");
        // SAFETY: a NUL-terminated path; open is async-signal-safe.
        opened = unsafe {
            libc::open(
                path.bytes().as_ptr().cast(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                0o644,
            )
        };
        // SAFETY: reading errno.
        if opened >= 0 || unsafe { *libc::__errno_location() } != libc::EEXIST {
            break;
        }
    }
    msg.n = 0;
    msg.push(b"rtcore: flight recorder: fatal signal ");
    msg.num(sig as u64, 1);
    if opened < 0 {
        msg.push(b": cannot create a dump in ");
        msg.push(&dirb[..*dlen]);
        msg.push(b"\n");
        write_fd(2, msg.bytes());
        return;
    }
    let mut ok = true;
    let deadline = crate::base::clock::monotonic_ns() + REACH_NS;
    let outcome = fatal::dump(ring, deadline, &mut |bytes| {
        let wrote = write_fd(opened, bytes);
        ok &= wrote;
        wrote
    });
    let name = &path.bytes()[..path.n - 1];
    match outcome.last {
        Some(last) => {
            let trace_end = trace_end_record(outcome.trace_id, last);
            ok &= write_fd(opened, trace_end.bytes());
            msg.push(if ok {
                b": wrote "
            } else {
                b": could not finish "
            });
            msg.push(name);
            msg.push(b" (generations up to ");
            msg.num(last, 1);
            match outcome.in_progress {
                InProgress::Written { threads, .. } => {
                    msg.push(b", the last one closed where the signal struck: ");
                    msg.num(threads as u64, 1);
                    msg.push(b" thread(s)");
                }
                InProgress::Lost { why, .. } => {
                    msg.push(b"; left out: the generation in progress, recorded as lost: ");
                    msg.push(why.as_bytes());
                }
                InProgress::Left { why } => {
                    msg.push(b"; left out: the generation in progress: ");
                    msg.push(why.as_bytes());
                }
            }
            msg.push(b")\n");
        }
        None => {
            // SAFETY: a NUL-terminated path; unlink is async-signal-safe.
            unsafe { libc::unlink(path.bytes().as_ptr().cast()) };
            msg.push(b": nothing to dump in ");
            msg.push(name);
            msg.push(b" (");
            msg.push(match outcome.in_progress {
                InProgress::Left { why } if !why.is_empty() => why.as_bytes(),
                _ => b"no generation could be reached",
            });
            msg.push(b")\n");
        }
    }
    if outcome.skipped > 0 {
        msg.push(b"rtcore: flight recorder: skipped ");
        msg.num(outcome.skipped as u64, 1);
        msg.push(b" thread(s) inside their sections (thread id");
        for id in outcome
            .skipped_ids
            .iter()
            .take(outcome.skipped.min(fatal::NAMED))
        {
            msg.push(b" ");
            msg.num(*id, 1);
        }
        if outcome.skipped > fatal::NAMED {
            msg.push(b" ...");
        }
        msg.push(b")\n");
    }
    // SAFETY: close is async-signal-safe.
    unsafe { libc::close(opened) };
    write_fd(2, msg.bytes());
}
