//! Chrome JSON Trace Event Format (the "JSON Array/Object Format" of the
//! Trace Event Format document), as Perfetto UI imports it: the timeline
//! (`timeline.rs`) in one process (pid 1) named "rtcore trace", each track
//! a tid, slices as complete events ("X"), tasks as async events ("b"/"e"),
//! flows as "s"/"f" bound to the enclosing slice. Timestamps are
//! microseconds (the format's unit) with nanosecond fractions.

use std::io::{self, Write};

use super::timeline::{self, Item, Stats};
use crate::reader::Trace;

const PID: u64 = 1;

pub use super::timeline::STATE_TID_BASE;

/// `s` as a JSON string literal (quotes included). Shared by the exports
/// and the statistics.
pub(crate) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Nanoseconds to the format's microseconds.
fn us(ns: u64) -> String {
    format!("{}.{:03}", ns / 1000, ns % 1000)
}

fn args(a: &[(&'static str, String)]) -> String {
    let parts: Vec<String> = a
        .iter()
        .map(|(k, v)| format!("{}:{}", esc(k), esc(v)))
        .collect();
    parts.join(",")
}

/// Write `trace` as a JSON object with a `traceEvents` array.
pub fn write<W: Write>(trace: &Trace, w: &mut W) -> io::Result<Stats> {
    write_timeline(&timeline::build(trace), w)
}

/// Write a timeline built generation by generation (`timeline::TimelineBuilder`).
pub fn write_timeline<W: Write>(t: &timeline::Timeline, w: &mut W) -> io::Result<Stats> {
    w.write_all(b"{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n")?;
    let mut first = true;
    let mut raw = |w: &mut W, obj: String| -> io::Result<()> {
        if !std::mem::replace(&mut first, false) {
            w.write_all(b",\n")?;
        }
        w.write_all(obj.as_bytes())
    };
    raw(
        w,
        format!(
            "{{\"ph\":\"M\",\"pid\":{PID},\"name\":\"process_name\",\"args\":{{\"name\":\"rtcore trace\"}}}}"
        ),
    )?;
    for tr in &t.tracks {
        raw(
            w,
            format!(
                "{{\"ph\":\"M\",\"pid\":{PID},\"tid\":{},\"name\":\"thread_name\",\"args\":{{\"name\":{}}}}}",
                tr.tid,
                esc(&tr.name)
            ),
        )?;
        raw(
            w,
            format!(
                "{{\"ph\":\"M\",\"pid\":{PID},\"tid\":{},\"name\":\"thread_sort_index\",\"args\":{{\"sort_index\":{}}}}}",
                tr.tid, tr.sort
            ),
        )?;
    }
    for item in &t.items {
        let obj = match item {
            Item::Slice {
                tid,
                name,
                cat,
                start,
                end,
                args: a,
            } => format!(
                "{{\"ph\":\"X\",\"pid\":{PID},\"tid\":{tid},\"name\":{},\"cat\":{},\"ts\":{},\"dur\":{},\"args\":{{{}}}}}",
                esc(name),
                esc(cat),
                us(*start),
                us(end - start),
                args(a)
            ),
            Item::Instant {
                tid,
                name,
                cat,
                ts,
                args: a,
            } => format!(
                "{{\"ph\":\"i\",\"s\":\"t\",\"pid\":{PID},\"tid\":{tid},\"name\":{},\"cat\":{},\"ts\":{},\"args\":{{{}}}}}",
                esc(name),
                esc(cat),
                us(*ts),
                args(a)
            ),
            Item::Counter {
                tid,
                name,
                ts,
                value,
            } => format!(
                "{{\"ph\":\"C\",\"pid\":{PID},\"tid\":{tid},\"name\":{},\"ts\":{},\"args\":{{\"value\":{value}}}}}",
                esc(name),
                us(*ts)
            ),
            Item::TaskBegin { tid, id, name, ts } | Item::TaskEnd { tid, id, name, ts } => {
                let ph = if matches!(item, Item::TaskBegin { .. }) {
                    "b"
                } else {
                    "e"
                };
                format!(
                    "{{\"ph\":\"{ph}\",\"pid\":{PID},\"tid\":{tid},\"cat\":\"task\",\"id\":{id},\"name\":{},\"ts\":{}}}",
                    esc(name),
                    us(*ts)
                )
            }
            Item::Flow {
                id,
                from_tid,
                from_ts,
                to_tid,
                to_ts,
            } => {
                raw(
                    w,
                    format!(
                        "{{\"ph\":\"s\",\"pid\":{PID},\"tid\":{from_tid},\"cat\":\"lock\",\"name\":\"unlock woke a waiter\",\"id\":{id},\"ts\":{}}}",
                        us(*from_ts)
                    ),
                )?;
                format!(
                    "{{\"ph\":\"f\",\"bp\":\"e\",\"pid\":{PID},\"tid\":{to_tid},\"cat\":\"lock\",\"name\":\"unlock woke a waiter\",\"id\":{id},\"ts\":{}}}",
                    us(*to_ts)
                )
            }
        };
        raw(w, obj)?;
    }
    w.write_all(b"\n]}\n")?;
    Ok(t.stats.clone())
}
