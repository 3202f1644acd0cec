//! A thread's states over time, replayed from its own stream (a thread's
//! state changes only by its own events; another stream's steal takes its
//! P, not its state). Used by the exports and the statistics, on traces
//! the validator accepted.

use super::Stream;
use crate::format::EventKind as K;
use crate::format::{BlockReason, ThreadState};

/// One state slice of a thread.
#[derive(Clone, Debug)]
pub struct StateSlice {
    pub start: u64,
    pub end: u64,
    /// RUNNING, RUNNABLE, BLOCKING or WAITING.
    pub name: &'static str,
    /// The P it runs on, why it blocks, or what it waits for.
    pub detail: String,
}

fn state_name(code: u64) -> &'static str {
    ThreadState::from_code(code).map_or("unknown", ThreadState::name)
}

/// Replay a thread's own events into its state slices (its state changes
/// only by its own events; a steal takes its P, not its state). `header`
/// is the generation's header batch: a thread outside the world may begin
/// it waiting (`outside status`). A thread outside the world has a state
/// only while it waits.
pub fn states(s: &Stream, id: u64, header: Option<&Stream>, gen_end: u64) -> Vec<StateSlice> {
    let mut out = Vec::new();
    let mut cur: Option<(u64, &'static str, String)> = outside_at_start(id, header);
    let mut set = |cur: &mut Option<(u64, &'static str, String)>,
                   ts: u64,
                   next: Option<(&'static str, String)>| {
        if let Some((start, name, detail)) = cur.take() {
            out.push(StateSlice {
                start,
                end: ts,
                name,
                detail,
            });
        }
        *cur = next.map(|(n, d)| (ts, n, d));
    };
    for e in &s.events {
        let next = match e.kind {
            K::ThreadStatus => Some((state_name(e.args[2]), String::new())),
            K::Attach | K::ProcStop | K::ExitBlockingSlow | K::Unblock => {
                Some(("RUNNABLE", String::new()))
            }
            K::ProcStart | K::ExitBlockingFast => Some(("RUNNING", format!("P {}", e.args[0]))),
            K::EnterBlocking => Some(("BLOCKING", s.string(e.args[2]).to_string())),
            K::Block => Some((
                "WAITING",
                BlockReason::from_code(e.args[0])
                    .map(|r| r.describe(e.args[1]))
                    .unwrap_or_default(),
            )),
            K::OutsideWait => Some(("WAITING", outside_detail(e.args[0], e.args[1]))),
            K::OutsideResume | K::Detach => {
                set(&mut cur, e.ts, None);
                continue;
            }
            _ => continue,
        };
        set(&mut cur, e.ts, next);
    }
    set(&mut cur, gen_end, None);
    out
}

/// "mutex 0x1234 (outside the world)".
fn outside_detail(reason: u64, object: u64) -> String {
    let what = BlockReason::from_code(reason)
        .map(|r| r.describe(object))
        .unwrap_or_else(|| format!("{object:#x}"));
    format!("{what} (outside the world)")
}

/// The WAITING slice a thread outside the world begins the generation in
/// (the header's `outside status` for it), from the header's first event.
fn outside_at_start(id: u64, header: Option<&Stream>) -> Option<(u64, &'static str, String)> {
    let h = header?;
    let e = h
        .events
        .iter()
        .find(|e| e.kind == K::OutsideStatus && e.args[0] == id)?;
    let start = h.events.first().map_or(e.ts, |f| f.ts);
    Some((start, "WAITING", outside_detail(e.args[1], e.args[2])))
}
