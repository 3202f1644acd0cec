//! Decoding one thread's events in one generation, one event at a time,
//! straight from the batch bytes the framing pass buffered: the validator
//! pulls events as its frontier needs them, so a checked trace is never
//! held as decoded events.
//!
//! Invariants:
//! - Never panics and never reads out of bounds: every read is bounded by
//!   the current batch's end (a varint never runs into the next record).
//! - The string table grows only from `string` events, each checked to be
//!   defined once, so memory is bounded by the input.
//! - An event's `Str` argument names a string the same stream defined
//!   earlier (0 = none); its text is then found with `string`.

use std::collections::HashMap;

use super::parse::{BatchRef, Event, IdHash, ReadError, err};
use crate::format::{self, Arg, EventKind};

/// What decoding needs to know of an event kind, looked up by its code
/// in one table (`SHAPES`) rather than by matching on the kind.
#[derive(Clone, Copy)]
struct Shape {
    kind: Option<EventKind>,
    args: u8,
    /// Bit i: argument i is a string id (`Arg::Str`).
    strs: u8,
    /// Bit i: argument i is a length followed by bytes (`Arg::Bytes`).
    bytes: u8,
}

const SHAPES: [Shape; 256] = {
    let mut t = [Shape {
        kind: None,
        args: 0,
        strs: 0,
        bytes: 0,
    }; 256];
    let mut code = 0;
    while code < 256 {
        if let Some(kind) = EventKind::from_u8(code as u8) {
            let args = kind.args();
            let mut s = Shape {
                kind: Some(kind),
                args: args.len() as u8,
                strs: 0,
                bytes: 0,
            };
            let mut i = 0;
            while i < args.len() {
                match args[i] {
                    Arg::Str => s.strs |= 1 << i,
                    Arg::Bytes => s.bytes |= 1 << i,
                    Arg::U | Arg::S => {}
                }
                i += 1;
            }
            t[code] = s;
        }
        code += 1;
    }
    t
};

/// String ids below this may be tracked in a bitmap (writers number
/// strings from 1 per stream, so in practice all of them); larger ones are
/// only in the map.
const DENSE_IDS: u64 = 4096;

/// A stream's events, decoded on demand.
pub struct Decoder<'a> {
    data: &'a [u8],
    batches: std::slice::Iter<'a, BatchRef>,
    /// The current batch: `data[pos..end]`, `data[pos]` at input byte
    /// `pos + shift`.
    pos: usize,
    end: usize,
    shift: usize,
    ts: u64,
    /// Nanoseconds per tick, 32.32 fixed point.
    scale: u64,
    /// Version 2: an event's first byte is `format::event_head`'s.
    packed_heads: bool,
    thread: u64,
    generation: u64,
    strings: HashMap<u64, String, IdHash>,
    /// Bit `id` set: string `id` is defined (a fast path: every defined
    /// id is also in `strings`). It grows to cover an id being defined
    /// only while it holds no more words than strings were defined (plus
    /// one), so a stream costs no more than its strings' bytes: a file of
    /// many tiny streams must not make the reader allocate many bitmaps.
    defined: Vec<u64>,
}

impl<'a> Decoder<'a> {
    pub fn new(
        data: &'a [u8],
        batches: &'a [BatchRef],
        thread: u64,
        generation: u64,
        scale: u64,
    ) -> Self {
        Decoder {
            data,
            batches: batches.iter(),
            pos: 0,
            end: 0,
            shift: 0,
            ts: 0,
            scale,
            packed_heads: false,
            thread,
            generation,
            strings: HashMap::default(),
            defined: Vec::new(),
        }
    }

    /// Read events as version 2 writes them (`format::event_head`).
    pub fn with_packed_heads(mut self, packed: bool) -> Self {
        self.packed_heads = packed;
        self
    }

    #[inline]
    fn is_defined(&self, id: u64) -> bool {
        let word = (id / 64) as usize;
        (word < self.defined.len() && self.defined[word] >> (id % 64) & 1 == 1)
            || self.strings.contains_key(&id)
    }

    fn mark_defined(&mut self, id: u64) {
        let word = (id / 64) as usize;
        if id < DENSE_IDS && word >= self.defined.len() && word <= self.strings.len() {
            self.defined.resize(word + 1, 0);
        }
        if word < self.defined.len() {
            self.defined[word] |= 1 << (id % 64);
        }
    }

    pub fn thread(&self) -> u64 {
        self.thread
    }

    /// The string an `Str` argument names ("" for id 0).
    pub fn string(&self, id: u64) -> &str {
        self.strings.get(&id).map(String::as_str).unwrap_or("")
    }

    pub fn into_strings(self) -> HashMap<u64, String, IdHash> {
        self.strings
    }

    /// The next event, `None` at the end of the stream.
    pub fn next_event(&mut self) -> Result<Option<Event>, ReadError> {
        let mut e = Event::empty();
        Ok(self.next_into(&mut e)?.then_some(e))
    }

    /// Decode the next event into `out`; false at the end of the stream.
    /// (Into a slot the caller keeps, not returned: this runs once per
    /// event and an event is a hundred bytes.)
    #[inline]
    pub fn next_into(&mut self, out: &mut Event) -> Result<bool, ReadError> {
        while self.pos >= self.end {
            let Some(b) = self.batches.next() else {
                return Ok(false);
            };
            self.pos = b.pos;
            self.end = b.end.min(self.data.len());
            self.shift = b.offset - b.pos;
            self.ts = b.base_ts;
        }
        let d = &self.data[..self.end];
        let ev_at = self.pos + self.shift;
        let head = d[self.pos];
        let (code, inline_delta) = if self.packed_heads {
            (head & format::KIND_MASK, head >> 6)
        } else {
            (head, format::TS_FOLLOWS)
        };
        let shape = SHAPES[code as usize];
        let Some(kind) = shape.kind else {
            return err(ev_at, format!("unknown event kind {code}"));
        };
        let mut pos = self.pos + 1;
        let truncated = |pos: usize, shift: usize| {
            err(
                pos + shift,
                format!("truncated or overlong varint in {}", kind.name()),
            )
        };
        let delta = if inline_delta < format::TS_FOLLOWS {
            u64::from(inline_delta)
        } else {
            let delta_at = pos;
            let Some(delta) = format::get_uvarint(d, &mut pos) else {
                return truncated(delta_at, self.shift);
            };
            delta
        };
        let Some(ts) = self.ts.checked_add(delta) else {
            return err(ev_at, "timestamp overflows 64 bits");
        };
        // Decoded straight into `out` (on an error, `out` is left
        // half-written: the caller stops there).
        out.args.clear();
        let mut text: &[u8] = &[];
        for i in 0..shape.args {
            let at = pos;
            let Some(v) = format::get_uvarint(d, &mut pos) else {
                return truncated(at, self.shift);
            };
            if shape.strs >> i & 1 == 1 && v != 0 && !self.is_defined(v) {
                return err(
                    ev_at,
                    format!(
                        "{} names string {v}, which thread {} has not defined",
                        kind.name(),
                        self.thread
                    ),
                );
            }
            if shape.bytes >> i & 1 == 1 {
                let left = d.len() - pos;
                match usize::try_from(v) {
                    Ok(n) if n <= left => {
                        text = &d[pos..pos + n];
                        pos += n;
                    }
                    _ => {
                        return err(
                            pos + self.shift,
                            format!("truncated {}: {v} bytes needed, {left} left", kind.name()),
                        );
                    }
                }
            }
            out.args.push(v);
        }
        if kind == EventKind::String {
            let id = out.args[0];
            if id == 0 || self.is_defined(id) {
                return err(
                    ev_at,
                    format!(
                        "string {id} defined twice (or id 0) by thread {}",
                        self.thread
                    ),
                );
            }
            self.mark_defined(id);
            self.strings
                .insert(id, String::from_utf8_lossy(text).into_owned());
        }
        self.pos = pos;
        self.ts = ts;
        out.kind = kind;
        out.ts = if self.scale == super::parse::ONE_NS_PER_TICK {
            ts
        } else {
            ((u128::from(ts) * u128::from(self.scale)) >> 32).min(u128::from(u64::MAX)) as u64
        };
        out.thread = self.thread;
        out.generation = self.generation;
        out.offset = ev_at;
        Ok(true)
    }
}
