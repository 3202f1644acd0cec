//! Perfetto's native format: a `Trace` of `TracePacket`s
//! (protos/perfetto/trace/trace_packet.proto and track_event/*.proto), the
//! subset below encoded by hand (a few dozen lines of protobuf wire format
//! need no code generator and no `protoc`).
//!
//! What is written, all on one packet sequence (id 1):
//! 1. a clock snapshot: the trace's clock (a sequence-scoped clock, id 64:
//!    nanoseconds since the trace's origin) at 0 is the realtime clock at
//!    the origin, which is made the trace's primary clock: timestamps are
//!    converted once, by the reader of the file;
//! 2. every track's descriptor, before any event: the process, each
//!    thread's track (a thread descriptor with its id and name), each
//!    thread's state track, the stop-the-world track, one track per counter
//!    and per task;
//! 3. the timeline's events in time order, event names interned (each
//!    packet defines the names it introduces): slices as begin/end pairs,
//!    strictly nested per track; instants; counter values; tasks as slices
//!    on their own tracks; each lock-wait flow as an instant on the
//!    releaser's state track carrying the flow id and one on the waiter's
//!    track terminating it.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};

use super::timeline::{self, Item, STATE_TID_BASE, STW_TID, Stats};
use crate::reader::Trace;

/// The trace's own clock: sequence-scoped clock ids are 64..=127.
pub const TRACE_CLOCK_ID: u64 = 64;
const BUILTIN_CLOCK_REALTIME: u64 = 1;
const SEQUENCE_ID: u64 = 1;
const SEQ_INCREMENTAL_STATE_CLEARED: u64 = 1;
const SEQ_NEEDS_INCREMENTAL_STATE: u64 = 2;
const TYPE_SLICE_BEGIN: u64 = 1;
const TYPE_SLICE_END: u64 = 2;
const TYPE_INSTANT: u64 = 3;
const TYPE_COUNTER: u64 = 4;

/// Track uuids: the process, then disjoint ranges per kind.
const PROCESS_UUID: u64 = 1;
const THREAD_UUID_BASE: u64 = 1 << 48;
const COUNTER_UUID_BASE: u64 = 2 << 48;
const TASK_UUID_BASE: u64 = 3 << 48;

/// Protobuf wire format, the parts used here.
#[derive(Default)]
struct Pb(Vec<u8>);

impl Pb {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn key(&mut self, field: u32, wire: u8) {
        self.varint(((field as u64) << 3) | wire as u64);
    }
    fn uint(&mut self, field: u32, v: u64) {
        self.key(field, 0);
        self.varint(v);
    }
    /// int64/int32: two's complement as a varint.
    fn int(&mut self, field: u32, v: i64) {
        self.key(field, 0);
        self.varint(v as u64);
    }
    fn fixed64(&mut self, field: u32, v: u64) {
        self.key(field, 1);
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }
    fn msg(&mut self, field: u32, f: impl FnOnce(&mut Pb)) {
        let mut inner = Pb::default();
        f(&mut inner);
        self.bytes(field, &inner.0);
    }
}

/// TracePacket fields.
mod packet {
    pub const TIMESTAMP: u32 = 8;
    pub const CLOCK_SNAPSHOT: u32 = 6;
    pub const SEQUENCE_ID: u32 = 10;
    pub const TRACK_EVENT: u32 = 11;
    pub const INTERNED_DATA: u32 = 12;
    pub const SEQUENCE_FLAGS: u32 = 13;
    pub const TIMESTAMP_CLOCK_ID: u32 = 58;
    pub const TRACK_DESCRIPTOR: u32 = 60;
}

/// One event in time order.
enum Ev {
    Begin {
        track: u64,
        name: String,
    },
    End {
        track: u64,
    },
    Instant {
        track: u64,
        name: String,
        flow: Option<u64>,
        terminating: Option<u64>,
        message: Option<String>,
    },
    Counter {
        track: u64,
        value: i64,
    },
}

struct Writer<'w, W: Write> {
    w: &'w mut W,
    names: HashMap<String, u64>,
}

impl<W: Write> Writer<'_, W> {
    fn packet(&mut self, p: Pb) -> io::Result<()> {
        let mut t = Pb::default();
        t.bytes(1, &p.0); // Trace.packet
        self.w.write_all(&t.0)
    }

    fn descriptor(&mut self, f: impl FnOnce(&mut Pb)) -> io::Result<()> {
        let mut p = Pb::default();
        p.msg(packet::TRACK_DESCRIPTOR, f);
        p.uint(packet::SEQUENCE_ID, SEQUENCE_ID);
        self.packet(p)
    }

    fn event(&mut self, ts: u64, ev: &Ev) -> io::Result<()> {
        let mut p = Pb::default();
        p.uint(packet::TIMESTAMP, ts);
        p.uint(packet::TIMESTAMP_CLOCK_ID, TRACE_CLOCK_ID);
        p.uint(packet::SEQUENCE_ID, SEQUENCE_ID);
        p.uint(packet::SEQUENCE_FLAGS, SEQ_NEEDS_INCREMENTAL_STATE);
        // Intern the name first: a new one is defined in this packet.
        let name = match ev {
            Ev::Begin { name, .. } | Ev::Instant { name, .. } => Some(name.as_str()),
            _ => None,
        };
        let iid = name.map(|n| {
            let next = self.names.len() as u64 + 1;
            let iid = *self.names.entry(n.to_string()).or_insert(next);
            if iid == next {
                p.msg(packet::INTERNED_DATA, |d| {
                    // InternedData.event_names: EventName { iid, name }.
                    d.msg(2, |e| {
                        e.uint(1, iid);
                        e.str(2, n);
                    });
                });
            }
            iid
        });
        p.msg(packet::TRACK_EVENT, |e| {
            // TrackEvent: type 9, track_uuid 11, name_iid 10,
            // counter_value 30, flow_ids 47, terminating_flow_ids 48,
            // debug_annotations 4.
            let (kind, track) = match ev {
                Ev::Begin { track, .. } => (TYPE_SLICE_BEGIN, *track),
                Ev::End { track } => (TYPE_SLICE_END, *track),
                Ev::Instant { track, .. } => (TYPE_INSTANT, *track),
                Ev::Counter { track, .. } => (TYPE_COUNTER, *track),
            };
            e.uint(9, kind);
            e.uint(11, track);
            if let Some(iid) = iid {
                e.uint(10, iid);
            }
            match ev {
                Ev::Counter { value, .. } => e.int(30, *value),
                Ev::Instant {
                    flow,
                    terminating,
                    message,
                    ..
                } => {
                    if let Some(f) = flow {
                        e.fixed64(47, *f);
                    }
                    if let Some(f) = terminating {
                        e.fixed64(48, *f);
                    }
                    if let Some(m) = message {
                        // DebugAnnotation { name 10, string_value 6 }.
                        e.msg(4, |a| {
                            a.str(10, "message");
                            a.str(6, m);
                        });
                    }
                }
                _ => {}
            }
        });
        self.packet(p)
    }
}

fn thread_uuid(tid: u64) -> u64 {
    THREAD_UUID_BASE + tid
}

/// Write `trace` in Perfetto's format.
pub fn write<W: Write>(trace: &Trace, w: &mut W) -> io::Result<Stats> {
    write_timeline(&timeline::build(trace), w)
}

/// Write a timeline built generation by generation (`timeline::TimelineBuilder`).
pub fn write_timeline<W: Write>(t: &timeline::Timeline, w: &mut W) -> io::Result<Stats> {
    let mut out = Writer {
        w,
        names: HashMap::new(),
    };
    // 1. The clock.
    let mut p = Pb::default();
    p.msg(packet::CLOCK_SNAPSHOT, |c| {
        c.msg(1, |k| {
            k.uint(1, TRACE_CLOCK_ID);
            k.uint(2, 0);
        });
        c.msg(1, |k| {
            k.uint(1, BUILTIN_CLOCK_REALTIME);
            k.uint(2, t.realtime_origin_ns);
        });
        c.uint(2, BUILTIN_CLOCK_REALTIME); // primary_trace_clock
    });
    p.uint(packet::SEQUENCE_ID, SEQUENCE_ID);
    p.uint(packet::SEQUENCE_FLAGS, SEQ_INCREMENTAL_STATE_CLEARED);
    out.packet(p)?;

    // 2. Every track, before any event.
    out.descriptor(|d| {
        d.uint(1, PROCESS_UUID);
        d.msg(3, |pr| {
            pr.int(1, 1);
            pr.str(6, "rtcore trace");
        });
    })?;
    for tr in &t.tracks {
        let uuid = thread_uuid(tr.tid);
        if tr.tid == STW_TID || tr.tid >= STATE_TID_BASE {
            let parent = if tr.tid >= STATE_TID_BASE {
                thread_uuid(tr.thread)
            } else {
                PROCESS_UUID
            };
            out.descriptor(|d| {
                d.uint(1, uuid);
                d.uint(5, parent);
                d.str(2, &tr.name);
            })?;
        } else {
            out.descriptor(|d| {
                d.uint(1, uuid);
                d.uint(5, PROCESS_UUID);
                d.str(2, &tr.name);
                d.msg(4, |th| {
                    th.int(1, 1);
                    th.int(2, tr.tid as i64);
                    th.str(5, &tr.name);
                });
            })?;
        }
    }
    let mut counters: BTreeMap<String, u64> = BTreeMap::new();
    // Tasks overlap and may end on another thread: each goes on the first
    // "tasks" lane free at its begin (as few lanes as tasks overlap).
    let mut task_span: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for item in &t.items {
        match item {
            Item::Counter { name, .. } => {
                let next = COUNTER_UUID_BASE + counters.len() as u64;
                counters.entry(name.clone()).or_insert(next);
            }
            Item::TaskBegin { id, ts, .. } => {
                task_span.entry(*id).or_insert((*ts, u64::MAX));
            }
            Item::TaskEnd { id, ts, .. } => {
                if let Some(s) = task_span.get_mut(id) {
                    s.1 = *ts;
                }
            }
            _ => {}
        }
    }
    let mut by_begin: Vec<(u64, u64, u64)> =
        task_span.iter().map(|(id, (b, e))| (*b, *e, *id)).collect();
    by_begin.sort();
    let mut lane_ends: Vec<u64> = Vec::new();
    let mut tasks: HashMap<u64, u64> = HashMap::new();
    for (begin, end, id) in by_begin {
        let lane = match lane_ends.iter().position(|e| *e < begin) {
            Some(l) => l,
            None => {
                lane_ends.push(0);
                lane_ends.len() - 1
            }
        };
        lane_ends[lane] = end;
        tasks.insert(id, TASK_UUID_BASE + lane as u64);
    }
    for (name, uuid) in &counters {
        out.descriptor(|d| {
            d.uint(1, *uuid);
            d.uint(5, PROCESS_UUID);
            d.str(2, name);
            d.msg(8, |_| {}); // CounterDescriptor
        })?;
    }
    for lane in 0..lane_ends.len() {
        out.descriptor(|d| {
            d.uint(1, TASK_UUID_BASE + lane as u64);
            d.uint(5, PROCESS_UUID);
            d.str(2, &format!("tasks (lane {})", lane + 1));
        })?;
    }

    // 3. Events in time order; each track's own order is kept (a stable
    // sort of sequences that are each in time order).
    let mut evs: Vec<(u64, Ev)> = Vec::new();
    let mut slices: HashMap<u64, Vec<(u64, u64, String)>> = HashMap::new();
    for item in &t.items {
        match item {
            Item::Slice {
                tid,
                name,
                start,
                end,
                ..
            } => slices
                .entry(thread_uuid(*tid))
                .or_default()
                .push((*start, *end, name.clone())),
            Item::Instant {
                tid,
                name,
                ts,
                args,
                ..
            } => evs.push((
                *ts,
                Ev::Instant {
                    track: thread_uuid(*tid),
                    name: name.clone(),
                    flow: None,
                    terminating: None,
                    message: args
                        .iter()
                        .find(|(k, _)| *k == "message")
                        .map(|(_, v)| v.clone()),
                },
            )),
            Item::Counter {
                name, ts, value, ..
            } => evs.push((
                *ts,
                Ev::Counter {
                    track: counters[name],
                    value: *value,
                },
            )),
            Item::TaskBegin { id, name, ts, .. } => evs.push((
                *ts,
                Ev::Begin {
                    track: tasks[id],
                    name: name.clone(),
                },
            )),
            Item::TaskEnd { id, ts, .. } => {
                if let Some(track) = tasks.get(id) {
                    evs.push((*ts, Ev::End { track: *track }))
                }
            }
            Item::Flow {
                id,
                from_tid,
                from_ts,
                to_tid,
                to_ts,
            } => {
                evs.push((
                    *from_ts,
                    Ev::Instant {
                        track: thread_uuid(*from_tid),
                        name: "unlock woke a waiter".into(),
                        flow: Some(*id),
                        terminating: None,
                        message: None,
                    },
                ));
                evs.push((
                    *to_ts,
                    Ev::Instant {
                        track: thread_uuid(*to_tid),
                        name: "woken by an unlock".into(),
                        flow: None,
                        terminating: Some(*id),
                        message: None,
                    },
                ));
            }
        }
    }
    // Slices to begin/end pairs, strictly nested per track.
    for (track, mut v) in slices {
        v.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut stack: Vec<u64> = Vec::new();
        for (start, end, name) in v {
            while let Some(&top) = stack.last() {
                if top > start {
                    break;
                }
                evs.push((top, Ev::End { track }));
                stack.pop();
            }
            evs.push((start, Ev::Begin { track, name }));
            stack.push(end);
        }
        while let Some(top) = stack.pop() {
            evs.push((top, Ev::End { track }));
        }
    }
    evs.sort_by_key(|(ts, _)| *ts);
    for (ts, ev) in &evs {
        out.event(*ts, ev)?;
    }
    Ok(t.stats.clone())
}
