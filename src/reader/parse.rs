//! Parsing: bytes → records → batches → events, checking everything that
//! does not need the state machines: the file header, record framing
//! (magic, kind, length, CRC), that every batch belongs to this trace,
//! per-thread batch sequence numbers with no gap or repeat, generation ends
//! that match the batches seen, string definitions, and the end marker.
//!
//! Invariants:
//! - Never panics and never reads out of bounds on any input: every read
//!   goes through `Cursor`, which returns an error at the end of its slice.
//! - Memory is bounded by the input: no allocation is sized from a length
//!   field before that many bytes are known to be present.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::format::{
    self, Arg, EventKind, FILE_HEADER_LEN, FILE_MAGIC, MAX_RECORD_BODY, RECORD_FRAME_LEN,
    RECORD_MAGIC, RecordKind, VERSION,
};

/// A reason to reject a trace, with where it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadError {
    pub message: String,
    /// Byte offset in the input.
    pub offset: usize,
    /// The offending event's time on the trace clock, when there is one.
    pub time: Option<u64>,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, offset {:#x}", self.message, self.offset)?;
        if let Some(t) = self.time {
            write!(f, ", {}", super::validate::ms(t))?;
        }
        Ok(())
    }
}

impl std::error::Error for ReadError {}

fn err<T>(offset: usize, message: impl Into<String>) -> Result<T, ReadError> {
    Err(ReadError {
        message: message.into(),
        offset,
        time: None,
    })
}

/// A bounds-checked reader over one slice; `base` is the slice's offset in
/// the input, for messages.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Cursor<'a> {
    fn offset(&self) -> usize {
        self.base + self.pos
    }
    fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }
    fn u8(&mut self, what: &str) -> Result<u8, ReadError> {
        match self.buf.get(self.pos) {
            Some(b) => {
                self.pos += 1;
                Ok(*b)
            }
            None => err(self.offset(), format!("truncated {what}")),
        }
    }
    fn u64_le(&mut self, what: &str) -> Result<u64, ReadError> {
        let b = self.bytes(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn uvarint(&mut self, what: &str) -> Result<u64, ReadError> {
        let at = self.offset();
        format::get_uvarint(self.buf, &mut self.pos).map_or_else(
            || err(at, format!("truncated or overlong varint in {what}")),
            Ok,
        )
    }
    fn bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8], ReadError> {
        if self.buf.len() - self.pos.min(self.buf.len()) < n {
            return err(
                self.offset(),
                format!(
                    "truncated {what}: {n} bytes needed, {} left",
                    self.buf.len().saturating_sub(self.pos)
                ),
            );
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
}

/// One decoded event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// Nanoseconds since the trace's clock origin.
    pub ts: u64,
    /// The thread whose batch holds the event (0: the generation's header).
    pub thread: u64,
    pub generation: u64,
    /// Byte offset of the event's kind byte in the input.
    pub offset: usize,
    /// Argument values in `kind.args()` order (a `Bytes` argument's slot
    /// holds its length; a `string` event's text is in its stream's
    /// `strings`).
    pub args: Args,
}

/// An event's argument values, held inline (no event has more than
/// `MAX_ARGS`): decoding an event allocates nothing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Args {
    vals: [u64; MAX_ARGS],
    len: u8,
}

/// The most arguments an event kind has.
pub const MAX_ARGS: usize = 8;

impl Args {
    pub fn new() -> Args {
        Args {
            vals: [0; MAX_ARGS],
            len: 0,
        }
    }
    fn push(&mut self, v: u64) {
        self.vals[self.len as usize] = v;
        self.len += 1;
    }
}

impl Default for Args {
    fn default() -> Self {
        Args::new()
    }
}

impl std::ops::Deref for Args {
    type Target = [u64];
    fn deref(&self) -> &[u64] {
        &self.vals[..self.len as usize]
    }
}

impl<'a> IntoIterator for &'a Args {
    type Item = &'a u64;
    type IntoIter = std::slice::Iter<'a, u64>;
    fn into_iter(self) -> Self::IntoIter {
        self[..].iter()
    }
}

impl fmt::Debug for Args {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Hashing for string ids: looked up for every string argument of every
/// event, where SipHash's cost showed. The ids come from the file (so may
/// be hostile), hence a multiply-and-fold mix rather than the identity.
#[derive(Clone, Copy, Default)]
pub struct IdHash;

impl std::hash::BuildHasher for IdHash {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

#[derive(Default)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        let x = self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        x ^ (x >> 29)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v).wrapping_mul(0xff51_afd7_ed55_8ccd);
    }
}

/// A thread's events in one generation, in batch order.
#[derive(Clone, Debug, Default)]
pub struct Stream {
    pub events: Vec<Event>,
    /// String table of this (generation, thread).
    pub strings: HashMap<u64, String, IdHash>,
}

impl Stream {
    /// The string an `Str` argument names ("" for id 0).
    pub fn string(&self, id: u64) -> &str {
        self.strings.get(&id).map(String::as_str).unwrap_or("")
    }
}

/// One generation: the header batch (thread 0) and every thread's stream.
#[derive(Clone, Debug, Default)]
pub struct Generation {
    pub number: u64,
    pub streams: BTreeMap<u64, Stream>,
    /// Batches seen per thread.
    pub batches: BTreeMap<u64, u64>,
    pub ended: bool,
}

/// A parsed trace.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    pub trace_id: u64,
    pub version: u16,
    pub generations: Vec<Generation>,
    pub events: u64,
    pub bytes: usize,
}

/// Where the first record starts (for messages about the whole trace).
pub fn first_record_offset() -> usize {
    FILE_HEADER_LEN
}

/// Parse and check a whole trace.
pub fn parse(input: &[u8]) -> Result<Trace, ReadError> {
    parse_with(input, None)
}

/// What to do with each generation as soon as its end is read.
pub type OnGeneration<'a> = &'a mut dyn FnMut(&Generation) -> Result<(), ReadError>;

/// Parse, handing each generation to `on_end` as soon as its end record is
/// read, then dropping its events (keeping its number and batch counts):
/// memory stays bounded by one generation. With `None`, every generation
/// is kept in the returned trace.
pub fn parse_with(input: &[u8], mut on_end: Option<OnGeneration<'_>>) -> Result<Trace, ReadError> {
    let mut c = Cursor {
        buf: input,
        pos: 0,
        base: 0,
    };
    if input.len() < FILE_HEADER_LEN {
        return err(
            0,
            format!(
                "not an rtcore trace: {} bytes, shorter than the {FILE_HEADER_LEN}-byte header",
                input.len()
            ),
        );
    }
    let magic = c.bytes(8, "file header")?;
    if magic != FILE_MAGIC {
        return err(0, "not an rtcore trace: bad magic (expected \"RTCTRACE\")");
    }
    let version = u16::from_le_bytes([input[8], input[9]]);
    if version != VERSION {
        return err(
            8,
            format!("unsupported trace format version {version} (this reader knows {VERSION})"),
        );
    }
    c.pos = 16;
    let trace_id = c.u64_le("file header")?;
    let mut t = Trace {
        trace_id,
        version,
        bytes: input.len(),
        ..Default::default()
    };
    let mut ended = false;
    while !c.at_end() {
        let at = c.offset();
        if ended {
            return err(at, "data after the end-of-trace marker");
        }
        let frame = c.bytes(RECORD_FRAME_LEN, "record frame")?;
        if frame[0..4] != RECORD_MAGIC {
            return err(at, "corrupt record: bad record magic");
        }
        let kind = RecordKind::from_u8(frame[4]).map_or_else(
            || {
                err(
                    at + 4,
                    format!("corrupt record: unknown record kind {}", frame[4]),
                )
            },
            Ok,
        )?;
        let len = u32::from_le_bytes([frame[8], frame[9], frame[10], frame[11]]) as usize;
        let crc = u32::from_le_bytes([frame[12], frame[13], frame[14], frame[15]]);
        if len > MAX_RECORD_BODY {
            return err(
                at + 8,
                format!("corrupt record: length {len} exceeds the limit of {MAX_RECORD_BODY}"),
            );
        }
        let body_at = c.offset();
        let body = c.bytes(len, "record body (the trace was cut short)")?;
        if format::crc32(body) != crc {
            return err(at, "corrupt record: CRC mismatch");
        }
        let mut b = Cursor {
            buf: body,
            pos: 0,
            base: body_at,
        };
        let id = b.u64_le("record body")?;
        if id != trace_id {
            return err(
                body_at,
                format!("record of another trace ({id:#x}, this trace is {trace_id:#x})"),
            );
        }
        let generation = b.uvarint("record body")?;
        match kind {
            RecordKind::Batch => batch(&mut t, &mut b, generation)?,
            RecordKind::GenerationEnd => {
                generation_end(&mut t, &mut b, generation)?;
                if let Some(f) = on_end.as_mut() {
                    let g = t.generations.last_mut().expect("just ended");
                    f(g)?;
                    g.streams = BTreeMap::new();
                }
            }
            RecordKind::TraceEnd => {
                let last = t.generations.last().map_or(0, |g| g.number);
                if generation != last {
                    return err(
                        body_at,
                        format!(
                            "end-of-trace marker names generation {generation}, the last seen is {last}"
                        ),
                    );
                }
                if let Some(g) = t.generations.last() {
                    if !g.ended {
                        return err(
                            body_at,
                            format!(
                                "end-of-trace marker before the end of generation {}",
                                g.number
                            ),
                        );
                    }
                }
                ended = true;
            }
        }
    }
    if !ended {
        return err(
            input.len(),
            "missing end-of-trace marker: the trace was cut short",
        );
    }
    Ok(t)
}

fn current_generation(
    t: &mut Trace,
    generation: u64,
    at: usize,
) -> Result<&mut Generation, ReadError> {
    let last = t.generations.last().map(|g| (g.number, g.ended));
    match last {
        Some((n, false)) if n == generation => {}
        Some((n, _)) if generation <= n => {
            return err(
                at,
                format!("batch of generation {generation} after that generation ended"),
            );
        }
        Some((n, false)) => {
            return err(
                at,
                format!("generation {generation} begins before generation {n} ended"),
            );
        }
        _ => {
            let expected = last.map_or(1, |(n, _)| n + 1);
            if generation != expected {
                return err(
                    at,
                    format!("generation {generation} where generation {expected} was expected"),
                );
            }
            t.generations.push(Generation {
                number: generation,
                ..Default::default()
            });
        }
    }
    Ok(t.generations.last_mut().expect("just ensured"))
}

fn batch(t: &mut Trace, b: &mut Cursor<'_>, generation: u64) -> Result<(), ReadError> {
    let at = b.offset();
    let thread = b.uvarint("batch header")?;
    let seq = b.uvarint("batch header")?;
    let base_ts = b.uvarint("batch header")?;
    let g = current_generation(t, generation, at)?;
    let seen = g.batches.entry(thread).or_insert(0);
    if seq != *seen {
        let what = if seq < *seen { "repeated" } else { "missing" };
        return err(
            at,
            format!(
                "batch {} of thread {thread} in generation {generation} is {what} (found batch {seq})",
                if seq < *seen { seq } else { *seen }
            ),
        );
    }
    *seen += 1;
    let gen_number = g.number;
    let stream = g.streams.entry(thread).or_default();
    let mut ts = base_ts;
    let mut n = 0u64;
    while !b.at_end() {
        let ev_at = b.offset();
        let code = b.u8("event")?;
        let Some(kind) = EventKind::from_u8(code) else {
            return err(ev_at, format!("unknown event kind {code}"));
        };
        let delta = b.uvarint(kind.name())?;
        ts = ts
            .checked_add(delta)
            .map_or_else(|| err(ev_at, "timestamp overflows 64 bits"), Ok)?;
        let mut args = Args::new();
        let mut bytes: &[u8] = &[];
        for a in kind.args() {
            let v = b.uvarint(kind.name())?;
            match a {
                Arg::Bytes => {
                    let len = usize::try_from(v).unwrap_or(usize::MAX);
                    bytes = b.bytes(len, kind.name())?;
                }
                Arg::Str if v != 0 && !stream.strings.contains_key(&v) => {
                    return err(
                        ev_at,
                        format!(
                            "{} names string {v}, which thread {thread} has not defined",
                            kind.name()
                        ),
                    );
                }
                _ => {}
            }
            args.push(v);
        }
        if kind == EventKind::String {
            let id = args[0];
            let text = String::from_utf8_lossy(bytes).into_owned();
            if id == 0 || stream.strings.insert(id, text).is_some() {
                return err(
                    ev_at,
                    format!("string {id} defined twice (or id 0) by thread {thread}"),
                );
            }
        }
        stream.events.push(Event {
            kind,
            ts,
            thread,
            generation: gen_number,
            offset: ev_at,
            args,
        });
        n += 1;
    }
    t.events += n;
    Ok(())
}

fn generation_end(t: &mut Trace, b: &mut Cursor<'_>, generation: u64) -> Result<(), ReadError> {
    let at = b.offset();
    let g = current_generation(t, generation, at)?;
    let n = b.uvarint("generation end")?;
    let mut listed = BTreeMap::new();
    for _ in 0..n {
        let thread = b.uvarint("generation end")?;
        let batches = b.uvarint("generation end")?;
        listed.insert(thread, batches);
    }
    for (thread, want) in &listed {
        let got = g.batches.get(thread).copied().unwrap_or(0);
        if got != *want {
            return err(
                at,
                format!(
                    "generation {generation} ended with {got} batch(es) of thread {thread}; the writer wrote {want} (batches lost)"
                ),
            );
        }
    }
    if let Some((thread, _)) = g.batches.iter().find(|(th, _)| !listed.contains_key(th)) {
        return err(
            at,
            format!(
                "generation {generation}: batches of thread {thread} that its end does not list"
            ),
        );
    }
    g.ended = true;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{
        BatchBuilder, Val, file_header, generation_end_body, put_record, trace_end_body,
    };

    const ID: u64 = 0x5eed;

    /// A small valid trace: header batch, two threads, one generation.
    fn sample() -> Vec<u8> {
        let mut out = file_header(ID).to_vec();
        let mut h = BatchBuilder::new(ID, 1, 0, 0, 100);
        h.event(
            EventKind::ClockInfo,
            100,
            &[Val::U(1_000_000_000), Val::U(7)],
        );
        put_record(&mut out, RecordKind::Batch, &h.body);
        for thread in [5u64, 9] {
            for seq in 0..2 {
                let mut b = BatchBuilder::new(ID, 1, thread, seq, 1000 * (seq + 1));
                if seq == 0 {
                    b.event(EventKind::String, 1000, &[Val::U(1), Val::Bytes(b"worker")]);
                    b.event(EventKind::Attach, 1001, &[Val::U(1), Val::U(0)]);
                }
                b.event(
                    EventKind::Counter,
                    2000 * (seq + 1),
                    &[Val::U(1), Val::S(-5)],
                );
                put_record(&mut out, RecordKind::Batch, &b.body);
            }
        }
        put_record(
            &mut out,
            RecordKind::GenerationEnd,
            &generation_end_body(ID, 1, &[(0, 1), (5, 2), (9, 2)]),
        );
        put_record(&mut out, RecordKind::TraceEnd, &trace_end_body(ID, 1));
        out
    }

    #[test]
    fn a_valid_trace_parses_with_strings_and_timestamps() {
        let t = parse(&sample()).unwrap();
        assert_eq!(t.trace_id, ID);
        assert_eq!(t.generations.len(), 1);
        let g = &t.generations[0];
        assert_eq!(g.batches.get(&5), Some(&2));
        let s = &g.streams[&9];
        assert_eq!(s.string(1), "worker");
        assert_eq!(s.events[1].kind, EventKind::Attach);
        assert_eq!(s.events[2].ts, 2000);
        assert_eq!(crate::format::unzigzag(s.events[2].args[1]), -5);
        assert_eq!(t.events, 1 + 2 * 4);
    }

    #[test]
    fn every_truncation_is_rejected_without_panicking() {
        let full = sample();
        for cut in 0..full.len() {
            assert!(parse(&full[..cut]).is_err(), "cut at {cut} accepted");
        }
    }

    #[test]
    fn every_single_bit_flip_is_rejected_or_harmless() {
        // A flip inside a body breaks its CRC; in a frame it breaks the
        // magic, kind, length or CRC. The only flips that may pass are in the
        // header's flags and reserved bytes, which are not checked.
        let full = sample();
        let reserved = record_reserved_bytes(&full);
        for i in 0..full.len() {
            for bit in 0..8 {
                let mut m = full.clone();
                m[i] ^= 1 << bit;
                // The header's flags and reserved bytes, and each record
                // frame's 3 reserved bytes, are not checked.
                let ignorable = (10..16).contains(&i) || reserved.contains(&i);
                if !ignorable {
                    assert!(parse(&m).is_err(), "flip of bit {bit} at {i:#x} accepted");
                }
            }
        }
    }

    fn record_reserved_bytes(full: &[u8]) -> Vec<usize> {
        let mut v = Vec::new();
        let mut p = FILE_HEADER_LEN;
        while p + RECORD_FRAME_LEN <= full.len() {
            v.extend([p + 5, p + 6, p + 7]);
            let len =
                u32::from_le_bytes([full[p + 8], full[p + 9], full[p + 10], full[p + 11]]) as usize;
            p += RECORD_FRAME_LEN + len;
        }
        v
    }

    fn records(full: &[u8]) -> Vec<std::ops::Range<usize>> {
        let mut v = Vec::new();
        let mut p = FILE_HEADER_LEN;
        while p + RECORD_FRAME_LEN <= full.len() {
            let len =
                u32::from_le_bytes([full[p + 8], full[p + 9], full[p + 10], full[p + 11]]) as usize;
            v.push(p..p + RECORD_FRAME_LEN + len);
            p += RECORD_FRAME_LEN + len;
        }
        v
    }

    fn rebuild(full: &[u8], order: &[usize]) -> Vec<u8> {
        let rs = records(full);
        let mut out = full[..FILE_HEADER_LEN].to_vec();
        for &i in order {
            out.extend_from_slice(&full[rs[i].clone()]);
        }
        out
    }

    #[test]
    fn a_missing_repeated_or_reordered_batch_is_named() {
        let full = sample();
        let n = records(&full).len(); // 1 + 4 + gen end + trace end = 7
        assert_eq!(n, 7);
        let drop_second_of_5: Vec<usize> = (0..n).filter(|&i| i != 2).collect();
        let e = parse(&rebuild(&full, &drop_second_of_5)).unwrap_err();
        assert!(
            e.message.contains("1 batch(es) of thread 5") && e.message.contains("lost"),
            "{e}"
        );
        let repeat: Vec<usize> = vec![0, 1, 1, 2, 3, 4, 5, 6];
        let e = parse(&rebuild(&full, &repeat)).unwrap_err();
        assert!(
            e.message
                .contains("batch 0 of thread 5 in generation 1 is repeated"),
            "{e}"
        );
        let swapped: Vec<usize> = vec![0, 2, 1, 3, 4, 5, 6];
        let e = parse(&rebuild(&full, &swapped)).unwrap_err();
        assert!(e.message.contains("missing"), "{e}");
        let no_end: Vec<usize> = (0..n - 1).collect();
        let e = parse(&rebuild(&full, &no_end)).unwrap_err();
        assert!(e.message.contains("missing end-of-trace marker"), "{e}");
        let no_gen_end: Vec<usize> = vec![0, 1, 2, 3, 4, 6];
        let e = parse(&rebuild(&full, &no_gen_end)).unwrap_err();
        assert!(e.message.contains("before the end of generation 1"), "{e}");
    }

    #[test]
    fn records_of_another_trace_and_bad_strings_are_rejected() {
        let mut full = sample();
        let mut other = BatchBuilder::new(ID + 1, 1, 5, 2, 0);
        other.event(EventKind::Log, 0, &[Val::U(0), Val::U(0)]);
        let pos = records(&full)[5].start;
        let mut rec = Vec::new();
        put_record(&mut rec, RecordKind::Batch, &other.body);
        full.splice(pos..pos, rec);
        let e = parse(&full).unwrap_err();
        assert!(e.message.contains("record of another trace"), "{e}");
        assert_eq!(e.offset, pos + RECORD_FRAME_LEN);

        let mut out = file_header(ID).to_vec();
        let mut b = BatchBuilder::new(ID, 1, 5, 0, 0);
        b.event(EventKind::Log, 1, &[Val::U(3), Val::U(0)]);
        put_record(&mut out, RecordKind::Batch, &b.body);
        let e = parse(&out).unwrap_err();
        assert!(
            e.message
                .contains("log names string 3, which thread 5 has not defined"),
            "{e}"
        );
    }
}
