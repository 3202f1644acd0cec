//! The trace format, version 1 (docs/trace-format.md is the byte-by-byte
//! description; this module is its single source in code). Both the
//! recorder and the reader use these definitions, so the event table below
//! is the one place an event's arguments are declared.
//!
//! Layout: a file header, then records. A record is framed (magic, kind,
//! length, CRC-32 of the body) so a reader can detect corruption and
//! truncation without understanding the body. Bodies are little-endian
//! fixed-width fields and LEB128 varints.

/// The file's first 8 bytes.
pub const FILE_MAGIC: [u8; 8] = *b"RTCTRACE";
/// The format version in the file header (what writers write).
pub const VERSION: u16 = 5;
/// The oldest version readers accept. Version 1 differs only in an
/// event's first byte: the kind alone, the timestamp delta always a
/// varint after it. Version 3 adds the `rwlock contended` event; version
/// 4 the `hook status` and `STW status` header events (generations that
/// roll while a hook runs or the world is stopped); version 5 the states
/// of threads outside the world (`outside wait`, `outside resume`,
/// `outside status`) and their names (`thread name`).
pub const OLDEST_VERSION: u16 = 1;

/// An event's first byte (version 2): the kind in the low 6 bits; the high
/// 2 bits hold the timestamp delta when it is 0, 1 or 2 ticks, or
/// `TS_FOLLOWS`, and then the delta follows as a varint. Events in tight
/// loops are a tick or two apart: their delta costs no byte.
pub const KIND_MASK: u8 = 0x3f;
pub const TS_FOLLOWS: u8 = 3;

/// The first byte of an event of `kind` whose timestamp delta is `delta`,
/// and whether the delta follows as a varint.
#[inline(always)]
pub fn event_head(kind: EventKind, delta: u64) -> (u8, bool) {
    if delta < TS_FOLLOWS as u64 {
        ((kind as u8) | ((delta as u8) << 6), false)
    } else {
        ((kind as u8) | (TS_FOLLOWS << 6), true)
    }
}
/// The recorder's default time between generations, in ms (a trace cut
/// short loses at most the generation in progress).
pub const DEFAULT_GENERATION_MS: u32 = 1000;
/// Bytes in the file header.
pub const FILE_HEADER_LEN: usize = 24;
/// Each record starts with these 4 bytes ("RTB1").
pub const RECORD_MAGIC: [u8; 4] = *b"RTB1";
/// Bytes in a record's frame before its body.
pub const RECORD_FRAME_LEN: usize = 16;
/// Largest record body a writer produces or a reader accepts.
pub const MAX_RECORD_BODY: usize = 1 << 24;

/// What a record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    /// Events of one thread (or of the generation's own header batch).
    Batch = 1,
    /// The end of a generation: how many batches each thread wrote.
    GenerationEnd = 2,
    /// The end of the trace.
    TraceEnd = 3,
    /// The end of a generation that was dropped (a sink fell behind and
    /// the writer's queue reached its bound): what each thread lost.
    Loss = 4,
}

impl RecordKind {
    pub fn from_u8(v: u8) -> Option<RecordKind> {
        match v {
            1 => Some(RecordKind::Batch),
            2 => Some(RecordKind::GenerationEnd),
            3 => Some(RecordKind::TraceEnd),
            4 => Some(RecordKind::Loss),
            _ => None,
        }
    }
}

/// How one event argument is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// An unsigned LEB128 varint.
    U,
    /// A signed value, zigzag then LEB128.
    S,
    /// A string id (unsigned varint) defined by a `String` event earlier in
    /// the same thread's batches of the same generation; 0 = no string.
    Str,
    /// A length (varint) then that many bytes (only the `String` event).
    Bytes,
}

pub mod codes;
pub use codes::{BlockReason, LockRankMode, ProcState, StallKind, ThreadState};

use Arg::{Bytes, S, Str, U};

macro_rules! event_kinds {
    ($( $(#[$doc:meta])* $name:ident = $code:literal, $text:literal, [$($arg:expr),*]; )*) => {
        /// Every event kind, with its code in the format.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum EventKind {
            $( $(#[$doc])* $name = $code, )*
        }

        impl EventKind {
            /// Every kind, in code order.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$name),*];

            pub const fn from_u8(v: u8) -> Option<EventKind> {
                match v {
                    $( $code => Some(EventKind::$name), )*
                    _ => None,
                }
            }

            /// The name used in messages and docs.
            pub fn name(self) -> &'static str {
                match self {
                    $( EventKind::$name => $text, )*
                }
            }

            /// The arguments, in order.
            pub const fn args(self) -> &'static [Arg] {
                match self {
                    $( EventKind::$name => &[$($arg),*], )*
                }
            }
        }
    };
}

event_kinds! {
    /// Clock: ticks per second, realtime ns at the trace's origin.
    ClockInfo = 1, "clock info", [U, U];
    /// A string for later `Str` arguments: id, bytes.
    String = 2, "string", [U, Bytes];
    /// A thread's status when the generation began (the first event of its
    /// stream): thread, name, state (1 RUNNING, 2 RUNNABLE, 3 BLOCKING,
    /// 4 WAITING), P+1 (0 none; RUNNING on it, or BLOCKING with it in
    /// SYSCALL), thread seq, preemption requests made, requests
    /// acknowledged, open region depth.
    ThreadStatus = 3, "thread status", [U, Str, U, U, U, U, U, U];
    /// A P's status (header batch): P, state (0 IDLE, 1 RUNNING, 2 SYSCALL,
    /// 3 STOPPED), owner thread (0 none), P seq.
    ProcStatus = 4, "proc status", [U, U, U, U];
    /// The number of Ps grew to: count (new Ps are IDLE with seq 0).
    ProcsChange = 5, "procs change", [U];
    /// The emitting thread attached (RUNNABLE until a `P start`): name,
    /// thread seq (a thread's sequence continues across its attachments).
    Attach = 6, "attach", [Str, U];
    /// The emitting thread detached, giving up its P: P, P seq, thread seq
    /// (every event about the thread up to this number comes before).
    Detach = 7, "detach", [U, U, U];
    /// The emitting thread starts running on P: P, P seq.
    ProcStart = 8, "P start", [U, U];
    /// The emitting thread gives P up and stays RUNNABLE: P, P seq.
    ProcStop = 9, "P stop", [U, U];
    /// Enter a blocking region: P, P seq, reason.
    EnterBlocking = 10, "enter blocking", [U, U, Str];
    /// Leave a blocking region keeping the P: P, P seq.
    ExitBlockingFast = 11, "exit blocking (fast)", [U, U];
    /// A P taken from a thread in a blocking region (by sysmon or a
    /// stopper): P, P seq, victim thread.
    ProcSteal = 12, "P steal", [U, U, U];
    /// Leave a blocking region whose P was taken (RUNNABLE after).
    ExitBlockingSlow = 13, "exit blocking (after a steal)", [];
    /// The emitting thread waits inside rtcore, giving up its P: reason
    /// (1 mutex, 2 condition, 3 hook removal, 4 other), object, P, P seq.
    Block = 14, "block", [U, U, U, U];
    /// A waiting thread became RUNNABLE: thread, thread seq, waker thread
    /// (0: none known, as on a timeout).
    Unblock = 15, "unblock", [U, U, U];
    /// sysmon asks a thread to reach a safepoint: thread, request number
    /// (per attachment), thread seq.
    PreemptRequest = 16, "preempt request", [U, U, U];
    /// The emitting thread acknowledged requests up to number n.
    PreemptAck = 17, "preempt ack", [U];
    /// A stall episode opened: kind (1 thread, 2 lock, 3 hook), key.
    StallOpen = 18, "stall open", [U, U];
    /// A stall episode ended: kind, key.
    StallResolved = 19, "stall resolved", [U, U];
    /// A hook run began: hook id, name.
    HookBegin = 20, "hook begin", [U, Str];
    /// The hook run ended: hook id.
    HookEnd = 21, "hook end", [U];
    /// A stop-the-world began: reason.
    StwBegin = 22, "STW begin", [Str];
    /// The stop-the-world ended.
    StwEnd = 23, "STW end", [];
    /// A user task began: task id, name.
    TaskBegin = 24, "task begin", [U, Str];
    /// A user task ended: task id.
    TaskEnd = 25, "task end", [U];
    /// A user region began (regions nest per thread): name.
    RegionBegin = 26, "region begin", [Str];
    /// The innermost user region ended.
    RegionEnd = 27, "region end", [];
    /// A user log line: category, message.
    Log = 28, "log", [Str, Str];
    /// A user counter: name, value.
    Counter = 29, "counter", [Str, S];
    /// A lock was contended: lock address, lock name, owner thread.
    LockContended = 30, "lock contended", [U, Str, U];
    /// The contended lock was acquired: lock address, wait ns, the thread
    /// whose unlock last woke the emitter (0: none known).
    LockAcquired = 31, "lock acquired", [U, U, U];
    /// A lock-order violation was reported: held rank name, wanted rank name.
    RankViolation = 32, "rank violation", [Str, Str];
    /// A stall episode open when the generation began (header batch):
    /// kind, key.
    StallStatus = 33, "stall status", [U, U];
    /// An rwlock was contended (version 3): lock address, lock name, mode
    /// wanted (1 write, 2 read), the writer holding it (0: none), the
    /// number of readers holding it. Followed by `lock acquired`.
    RwLockContended = 34, "rwlock contended", [U, Str, U, U, U];
    /// A hook run open when the generation began (header batch, version
    /// 4): the thread running it, the hook id.
    HookStatus = 35, "hook status", [U, U];
    /// A stop-the-world open when the generation began (header batch,
    /// version 4): the stopping thread.
    StwStatus = 36, "STW status", [U];
    /// The emitting thread, outside the world (not attached: it holds no
    /// P), waits in a call rtcore interposed (version 5): reason (as
    /// `block`'s: 1 mutex, 2 condition, 5 rwlock), the object's address.
    OutsideWait = 37, "outside wait", [U, U];
    /// The emitting thread's `outside wait` ended: it runs again, outside
    /// the world (version 5).
    OutsideResume = 38, "outside resume", [];
    /// A thread outside the world was waiting when the generation began
    /// (header batch, version 5): the thread, reason, object.
    OutsideStatus = 39, "outside status", [U, U, U];
    /// The emitting thread's name, for a thread with no status (not
    /// attached): its OS name, the first event of its stream in each
    /// generation (version 5).
    ThreadName = 40, "thread name", [Str];
}

// ---- varints and CRC -------------------------------------------------------

/// The most Ps a trace may name (and a process may have: `world::MAX_PROCS`).
pub const MAX_PROCS: u64 = 1 << 16;

/// The most arguments an event kind has (a test checks every kind).
pub const MAX_ARGS: usize = 8;

/// Append `v` as an unsigned LEB128 varint (at most 10 bytes).
#[inline]
pub fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Zigzag: small magnitudes of either sign become small unsigned values.
#[inline]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Read an unsigned varint at `*pos`, advancing it. None if truncated or
/// longer than 10 bytes (or overflowing 64 bits). Inline, with the
/// position in a local: the reader decodes two to nine of these per event.
#[inline(always)]
pub fn get_uvarint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut p = *pos;
    let mut v: u64 = 0;
    let mut shift = 0u32;
    let r = loop {
        let Some(&b) = buf.get(p) else {
            break None;
        };
        p += 1;
        if shift == 63 && b > 1 {
            break None;
        }
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            break Some(v);
        }
        shift += 7;
        if shift > 63 {
            break None;
        }
    };
    *pos = p;
    r
}

/// CRC-32 (IEEE 802.3, reflected, as zlib's `crc32`), by `crc32fast`:
/// carry-less multiplication where the CPU has it (every x86-64 since
/// 2010, ARMv8's CRC instructions), tables otherwise. Every record's body
/// is checked with it, so it bounds how fast a trace can be read.
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

// ---- writing ----------------------------------------------------------------

/// The file header.
pub fn file_header(trace_id: u64) -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[0..8].copy_from_slice(&FILE_MAGIC);
    h[8..10].copy_from_slice(&VERSION.to_le_bytes());
    // 10..12 flags, 12..16 reserved: zero.
    h[16..24].copy_from_slice(&trace_id.to_le_bytes());
    h
}

/// Frame `body` as a record of `kind`, appending to `out`.
pub fn put_record(out: &mut Vec<u8>, kind: RecordKind, body: &[u8]) {
    out.extend_from_slice(&RECORD_MAGIC);
    out.push(kind as u8);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32(body).to_le_bytes());
    out.extend_from_slice(body);
}

/// One argument value when encoding an event.
#[derive(Clone, Copy, Debug)]
pub enum Val<'a> {
    U(u64),
    S(i64),
    Bytes(&'a [u8]),
}

/// Builds the body of one batch record: the batch header, then events with
/// timestamps as deltas from the previous event (the first from `base_ts`).
pub struct BatchBuilder {
    pub body: Vec<u8>,
    last_ts: u64,
    pub events: u64,
}

impl BatchBuilder {
    /// Start a batch of `thread` (0: the generation's header batch).
    pub fn new(trace_id: u64, generation: u64, thread: u64, batch_seq: u64, base_ts: u64) -> Self {
        Self::with_capacity(256, trace_id, generation, thread, batch_seq, base_ts)
    }

    /// As `new`, reserving `capacity` bytes (a recorder reserves a whole
    /// batch, so appending events never reallocates).
    pub fn with_capacity(
        capacity: usize,
        trace_id: u64,
        generation: u64,
        thread: u64,
        batch_seq: u64,
        base_ts: u64,
    ) -> Self {
        Self::reuse(
            Vec::with_capacity(capacity),
            trace_id,
            generation,
            thread,
            batch_seq,
            base_ts,
        )
    }

    /// As `with_capacity`, into a buffer the caller has (emptied first: a
    /// recorder recycles the buffers the writer has written).
    pub fn reuse(
        mut body: Vec<u8>,
        trace_id: u64,
        generation: u64,
        thread: u64,
        batch_seq: u64,
        base_ts: u64,
    ) -> Self {
        body.clear();
        body.extend_from_slice(&trace_id.to_le_bytes());
        put_uvarint(&mut body, generation);
        put_uvarint(&mut body, thread);
        put_uvarint(&mut body, batch_seq);
        put_uvarint(&mut body, base_ts);
        BatchBuilder {
            body,
            last_ts: base_ts,
            events: 0,
        }
    }

    /// Append one event. `vals` must match `kind.args()` (checked in debug
    /// builds and by the round-trip tests). A timestamp before the previous
    /// one is recorded as a zero delta (clocks are monotonic; this keeps a
    /// batch decodable whatever happens).
    pub fn event(&mut self, kind: EventKind, ts: u64, vals: &[Val<'_>]) {
        debug_assert_eq!(vals.len(), kind.args().len(), "{}", kind.name());
        let ts = ts.max(self.last_ts);
        let (head, follows) = event_head(kind, ts - self.last_ts);
        self.body.push(head);
        if follows {
            put_uvarint(&mut self.body, ts - self.last_ts);
        }
        self.last_ts = ts;
        for v in vals {
            match *v {
                Val::U(x) => put_uvarint(&mut self.body, x),
                Val::S(x) => put_uvarint(&mut self.body, zigzag(x)),
                Val::Bytes(b) => {
                    put_uvarint(&mut self.body, b.len() as u64);
                    self.body.extend_from_slice(b);
                }
            }
        }
        self.events += 1;
    }

    pub fn len(&self) -> usize {
        self.body.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events == 0
    }
}

/// The body of a generation-end record: the trace, the generation, and how
/// many batches each thread wrote in it (sorted by thread).
pub fn generation_end_body(trace_id: u64, generation: u64, batches: &[(u64, u64)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&trace_id.to_le_bytes());
    put_uvarint(&mut b, generation);
    put_uvarint(&mut b, batches.len() as u64);
    for &(thread, n) in batches {
        put_uvarint(&mut b, thread);
        put_uvarint(&mut b, n);
    }
    b
}

/// The body of a loss record: the trace, the generation dropped, and per
/// thread (sorted) the batches, events and bytes lost.
pub fn loss_body(trace_id: u64, generation: u64, lost: &[(u64, u64, u64, u64)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&trace_id.to_le_bytes());
    put_uvarint(&mut b, generation);
    put_uvarint(&mut b, lost.len() as u64);
    for &(thread, batches, events, bytes) in lost {
        put_uvarint(&mut b, thread);
        put_uvarint(&mut b, batches);
        put_uvarint(&mut b, events);
        put_uvarint(&mut b, bytes);
    }
    b
}

/// The body of the trace-end record: the trace and its last generation.
pub fn trace_end_body(trace_id: u64, last_generation: u64) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&trace_id.to_le_bytes());
    put_uvarint(&mut b, last_generation);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_the_edges() {
        for v in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX - 1, u64::MAX] {
            let mut b = Vec::new();
            put_uvarint(&mut b, v);
            let mut p = 0;
            assert_eq!(get_uvarint(&b, &mut p), Some(v));
            assert_eq!(p, b.len());
            // Every proper prefix is truncated.
            for cut in 0..b.len() {
                let mut p = 0;
                assert_eq!(get_uvarint(&b[..cut], &mut p), None, "{v} cut at {cut}");
            }
        }
        // 11 bytes, or a 10th byte above 1, overflow.
        let mut p = 0;
        assert_eq!(get_uvarint(&[0xff; 11], &mut p), None);
        let mut p = 0;
        let mut b = vec![0xff; 9];
        b.push(0x02);
        assert_eq!(get_uvarint(&b, &mut p), None);
        for v in [0i64, 1, -1, 63, -64, i64::MAX, i64::MIN] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        // Every length and alignment agrees with the bit-by-bit definition.
        fn slow(data: &[u8]) -> u32 {
            let mut c = !0u32;
            for &b in data {
                c ^= u32::from(b);
                for _ in 0..8 {
                    c = if c & 1 != 0 {
                        0xEDB8_8320 ^ (c >> 1)
                    } else {
                        c >> 1
                    };
                }
            }
            !c
        }
        let data: Vec<u8> = (0..100u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for start in 0..9 {
            for end in start..data.len() {
                assert_eq!(
                    crc32(&data[start..end]),
                    slow(&data[start..end]),
                    "{start}..{end}"
                );
            }
        }
    }

    #[test]
    fn event_codes_are_dense_unique_and_decode() {
        for (i, k) in EventKind::ALL.iter().enumerate() {
            assert_eq!(*k as u8 as usize, i + 1, "{}", k.name());
            assert_eq!(EventKind::from_u8(*k as u8), Some(*k));
            assert!(k.args().len() <= MAX_ARGS, "{}", k.name());
            let bytes = k.args().iter().filter(|a| **a == Arg::Bytes).count();
            assert!(bytes == 0 || *k == EventKind::String);
        }
        assert_eq!(EventKind::from_u8(0), None);
        // Kinds fit the low 6 bits of an event's first byte.
        assert!((EventKind::ALL.len() as u8) <= KIND_MASK);
        assert_eq!(EventKind::from_u8(EventKind::ALL.len() as u8 + 1), None);
        assert!(Str != U && S != U);
    }
}
