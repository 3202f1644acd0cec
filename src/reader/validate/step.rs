//! The state machines' rules: `step` applies one event, dispatching to one
//! function per family of events (docs/trace-format.md lists the rules).

use super::*;
use crate::format::MAX_PROCS;

pub(super) const TASK_BEGUN: u8 = 1;
pub(super) const TASK_ENDED: u8 = 2;

/// Set `flag`; false if it was set already.
fn set_flag(flags: &mut u8, flag: u8) -> bool {
    let new = *flags & flag == 0;
    *flags |= flag;
    new
}

/// Check a P's sequence number: `Apply` if it is the next one.
#[inline]
pub(super) fn pseq(st: &Gen, p: u64, seq: u64) -> Verdict {
    let Some(pr) = st.procs.get(p as usize) else {
        return Wait(why!(st, "P {p} does not exist"));
    };
    if seq == pr.seq.wrapping_add(1) {
        Apply
    } else if seq > pr.seq {
        Wait(why!(
            st,
            "P {p} is at sequence {}, and this event is {seq}",
            pr.seq
        ))
    } else {
        Bad(why!(
            st,
            "P {p}'s sequence number {seq} repeats (P {p} is at {})",
            pr.seq
        ))
    }
}

#[inline]
pub(super) fn pstate(st: &Gen, p: u64) -> Option<PS> {
    st.procs.get(p as usize).map(|x| x.state)
}

#[inline]
pub(super) fn set_p(st: &mut Gen, p: u64, state: PS, seq: u64) {
    if let Some(x) = st.procs.get_mut(p as usize) {
        x.state = state;
        x.seq = seq;
    }
}

/// Set the state of the stream's own thread (slot `me`).
#[inline]
pub(super) fn set_own(st: &mut Gen, me: usize, s: TS) {
    st.threads.slots[me].state = Some(s);
}

#[inline]
pub(super) fn set_t(st: &mut Gen, t: u64, s: TS) {
    st.threads.entry(t).state = Some(s);
}

/// The calling thread must be RUNNING on `p` (its own events decide it:
/// nothing another stream records can make it so).
#[inline]
pub(super) fn running_on(st: &Gen, id: u64, me: usize, p: u64) -> Verdict {
    match st.threads.slots[me].state {
        Some(TS::Running(q)) if q == p => Apply,
        Some(TS::Running(q)) => Bad(why!(st, "{} runs on P {q}, not P {p}", who(st, id))),
        Some(s) => Bad(why!(st, "{} is {}, not RUNNING", who(st, id), s.name())),
        None => Bad(why!(st, "{} is not attached", who(st, id))),
    }
}

/// Apply `then` if `v` allows it.
#[inline]
fn and(v: Verdict, then: impl FnOnce() -> Verdict) -> Verdict {
    match v {
        Apply => then(),
        other => other,
    }
}

/// Try to apply event `e` of stream `id`: one function per family of events.
pub(super) fn step(id: u64, me: usize, e: &Event, st: &mut Gen, sum: &mut Summary) -> Verdict {
    use EventKind as K;
    match e.kind {
        K::String
        | K::ThreadName
        | K::Log
        | K::Counter
        | K::RankViolation
        | K::ThreadStatus
        | K::ClockInfo
        | K::ProcStatus
        | K::StallStatus
        | K::HookStatus
        | K::StwStatus
        | K::OutsideStatus
        | K::ProcsChange => step_meta(id, e, st),
        K::Attach | K::Detach => step_thread(id, me, e, st),
        K::ProcStart | K::ProcStop | K::Block | K::ProcSteal => step_procs(id, me, e, st),
        K::EnterBlocking | K::ExitBlockingFast | K::ExitBlockingSlow => {
            step_blocking(id, me, e, st)
        }
        K::Unblock => step_wake(id, e, st, sum),
        K::PreemptRequest | K::PreemptAck | K::StallOpen | K::StallResolved => {
            step_sysmon(id, me, e, st)
        }
        K::HookBegin | K::HookEnd | K::StwBegin | K::StwEnd => step_hooks_and_stops(id, me, e, st),
        K::RegionBegin | K::RegionEnd | K::TaskBegin | K::TaskEnd => {
            step_ranges(id, me, e, st, sum)
        }
        K::LockContended | K::RwLockContended | K::LockAcquired => step_locks(id, me, e, st, sum),
        K::OutsideWait | K::OutsideResume => step_outside(id, me, e, st, sum),
    }
}

/// Events with no state machine, header events out of place, and the P set growing.
fn step_meta(id: u64, e: &Event, st: &mut Gen) -> Verdict {
    use EventKind as K;
    let a = &e.args;
    match e.kind {
        K::String | K::ThreadName | K::Log | K::Counter | K::RankViolation => Apply,
        K::ThreadStatus => Bad(why!(st, "{}'s status is not its first event", who(st, id))),
        K::ClockInfo
        | K::ProcStatus
        | K::StallStatus
        | K::HookStatus
        | K::StwStatus
        | K::OutsideStatus => Bad(why!(st, "{} records a header event", who(st, id))),
        K::ProcsChange => {
            if a[0] > MAX_PROCS {
                return Bad(why!(st, "{} Ps (more than {MAX_PROCS})", a[0]));
            }
            while (st.procs.len() as u64) < a[0] {
                st.procs.push(Proc {
                    state: PS::Idle,
                    seq: 0,
                });
            }
            Apply
        }
        _ => unreachable!("step_meta is given only its own kinds (step)"),
    }
}

/// A thread joining or leaving the world.
fn step_thread(id: u64, me: usize, e: &Event, st: &mut Gen) -> Verdict {
    use EventKind as K;
    let a = &e.args;
    match e.kind {
        K::Attach => match st.threads.slots[me].state {
            Some(TS::Detached) if a[1] != st.threads.slots[me].seq.wrapping_add(1) => Bad(why!(
                st,
                "{} attaches at sequence {}, not {} (one after its detach)",
                who(st, id),
                a[1],
                st.threads.slots[me].seq.wrapping_add(1)
            )),
            None | Some(TS::Detached) if st.ranges.slots[me].outside.is_some() => Bad(why!(
                st,
                "{} attaches while it waits outside the world",
                who(st, id)
            )),
            None | Some(TS::Detached) => {
                // A new attachment: its preemption requests start from
                // zero; its sequence number goes on from the attach's.
                st.threads.slots[me] = Thread {
                    state: Some(TS::Runnable),
                    seq: a[1],
                    ..Default::default()
                };
                Apply
            }
            Some(_) => Bad(why!(st, "{} is already attached", who(st, id))),
        },
        K::Detach => {
            let (p, seq, tseq) = (a[0], a[1], a[2]);
            let v = and(running_on(st, id, me, p), || {
                // Every event about the thread up to `tseq` comes first.
                let cur = Some(&st.threads.slots[me]).map_or(0, |x| x.seq);
                if tseq > cur {
                    Wait(why!(
                        st,
                        "{} is at sequence {cur}, and its detach is at {tseq}",
                        who(st, id)
                    ))
                } else if tseq < cur {
                    Bad(why!(
                        st,
                        "{} detaches at sequence {tseq}, behind its {cur}",
                        who(st, id)
                    ))
                } else {
                    pseq(st, p, seq)
                }
            });
            if let Apply = v {
                set_own(st, me, TS::Detached);
                set_p(st, p, PS::Idle, seq);
            }
            v
        }
        _ => unreachable!("step_thread is given only its own kinds (step)"),
    }
}

/// A thread starting, stopping or blocking on a P, and a P taken away.
fn step_procs(id: u64, me: usize, e: &Event, st: &mut Gen) -> Verdict {
    use EventKind as K;
    let a = &e.args;
    match e.kind {
        K::ProcStart => {
            let (p, seq) = (a[0], a[1]);
            let v = match st.threads.slots[me].state {
                Some(TS::Runnable) => match pstate(st, p) {
                    None => Wait(why!(st, "P {p} does not exist")),
                    Some(PS::Idle) => pseq(st, p, seq),
                    Some(other) => Wait(why!(st, "P {p} is {}, not IDLE", other.name())),
                },
                // Another stream's `unblock` may still make it RUNNABLE.
                Some(TS::Waiting) => Wait(why!(st, "{} is WAITING, not RUNNABLE", who(st, id))),
                Some(other) => Bad(why!(
                    st,
                    "{} is {}, not RUNNABLE",
                    who(st, id),
                    other.name()
                )),
                None => Bad(why!(st, "{} is not attached", who(st, id))),
            };
            if let Apply = v {
                set_own(st, me, TS::Running(p));
                set_p(st, p, PS::Running(id), seq);
            }
            v
        }
        K::ProcStop | K::Block => {
            let (p, seq) = if e.kind == K::Block {
                (a[2], a[3])
            } else {
                (a[0], a[1])
            };
            let v = and(running_on(st, id, me, p), || pseq(st, p, seq));
            if let Apply = v {
                let to = if e.kind == K::Block {
                    TS::Waiting
                } else {
                    TS::Runnable
                };
                set_own(st, me, to);
                set_p(st, p, PS::Idle, seq);
            }
            v
        }
        K::ProcSteal => {
            let (p, seq, victim) = (a[0], a[1], a[2]);
            let v = match pstate(st, p) {
                None => Wait(why!(st, "P {p} does not exist")),
                Some(PS::Syscall(t)) if t == victim => pseq(st, p, seq),
                Some(other) => Wait(why!(
                    st,
                    "P {p} is {}, not SYSCALL for {}",
                    other.name(),
                    who(st, victim)
                )),
            };
            if let Apply = v {
                set_p(st, p, PS::Idle, seq);
                set_t(st, victim, TS::Blocking(None));
            }
            v
        }
        _ => unreachable!("step_procs is given only its own kinds (step)"),
    }
}

/// Blocking regions: entering, and leaving by the fast or the slow path.
fn step_blocking(id: u64, me: usize, e: &Event, st: &mut Gen) -> Verdict {
    use EventKind as K;
    let a = &e.args;
    match e.kind {
        K::EnterBlocking => {
            let (p, seq) = (a[0], a[1]);
            let v = and(running_on(st, id, me, p), || pseq(st, p, seq));
            if let Apply = v {
                set_own(st, me, TS::Blocking(Some(p)));
                set_p(st, p, PS::Syscall(id), seq);
            }
            v
        }
        K::ExitBlockingFast => {
            let (p, seq) = (a[0], a[1]);
            let v = match st.threads.slots[me].state {
                Some(TS::Blocking(Some(q))) if q == p => pseq(st, p, seq),
                Some(TS::Blocking(Some(q))) => Bad(why!(
                    st,
                    "{} is BLOCKING with P {q}, not P {p}",
                    who(st, id)
                )),
                Some(TS::Blocking(None)) => Bad(why!(
                    st,
                    "{} lost its P to a steal and cannot take it back",
                    who(st, id)
                )),
                Some(other) => Bad(why!(
                    st,
                    "{} is {}, not BLOCKING",
                    who(st, id),
                    other.name()
                )),
                None => Bad(why!(st, "{} is not attached", who(st, id))),
            };
            if let Apply = v {
                set_own(st, me, TS::Running(p));
                set_p(st, p, PS::Running(id), seq);
            }
            v
        }
        K::ExitBlockingSlow => match st.threads.slots[me].state {
            Some(TS::Blocking(None)) => {
                set_own(st, me, TS::Runnable);
                Apply
            }
            Some(TS::Blocking(Some(p))) => Wait(why!(
                st,
                "{} still has P {p} (no steal of it was recorded)",
                who(st, id)
            )),
            Some(other) => Bad(why!(
                st,
                "{} is {}, not BLOCKING",
                who(st, id),
                other.name()
            )),
            None => Bad(why!(st, "{} is not attached", who(st, id))),
        },
        _ => unreachable!("step_blocking is given only its own kinds (step)"),
    }
}

/// A waiting thread woken (by the one waker that won).
fn step_wake(id: u64, e: &Event, st: &mut Gen, sum: &mut Summary) -> Verdict {
    use EventKind as K;
    let a = &e.args;
    match e.kind {
        K::Unblock => {
            let (t, seq, waker) = (a[0], a[1], a[2]);
            let own = t == id;
            let v = match st.threads.get(&t).and_then(|x| x.state.map(|s| (s, x.seq))) {
                Some((TS::Waiting, cur)) => {
                    if seq == cur.wrapping_add(1) {
                        Apply
                    } else if seq > cur {
                        Wait(why!(
                            st,
                            "{} is at sequence {cur}, and this unblock is {seq}",
                            who(st, t)
                        ))
                    } else {
                        Bad(why!(
                            st,
                            "{}'s sequence number {seq} repeats (it is at {cur})",
                            who(st, t)
                        ))
                    }
                }
                Some((other, _)) if own => {
                    Bad(why!(st, "{} is {}, not WAITING", who(st, t), other.name()))
                }
                Some((other, _)) => {
                    Wait(why!(st, "{} is {}, not WAITING", who(st, t), other.name()))
                }
                None if own => Bad(why!(st, "{} is not attached", who(st, t))),
                None => Wait(why!(st, "{} is not attached", who(st, t))),
            };
            if let Apply = v {
                let x = st.threads.entry(t);
                x.state = Some(TS::Runnable);
                x.seq = seq;
                if waker != 0 && waker != t {
                    sum.cross_thread_unblocks += 1;
                }
            }
            v
        }
        _ => unreachable!("step_wake is given only its own kinds (step)"),
    }
}

/// sysmon's preemption requests and their acknowledgements, and stall episodes.
fn step_sysmon(id: u64, me: usize, e: &Event, st: &mut Gen) -> Verdict {
    use EventKind as K;
    let a = &e.args;
    match e.kind {
        K::PreemptRequest => {
            let (t, n, tseq) = (a[0], a[1], a[2]);
            let name = why!(st, "{}", who(st, t));
            match st.threads.get_mut(&t) {
                Some(x) if matches!(x.state, Some(s) if s != TS::Detached) => {
                    if tseq > x.seq.wrapping_add(1) {
                        Wait(why!(
                            st,
                            "{name} is at sequence {}, and this request is {tseq}",
                            x.seq
                        ))
                    } else if tseq <= x.seq {
                        Bad(why!(
                            st,
                            "{name}'s sequence number {tseq} repeats (it is at {})",
                            x.seq
                        ))
                    } else if n == x.preempt_requested.wrapping_add(1) {
                        x.preempt_requested = n;
                        x.seq = tseq;
                        Apply
                    } else if n > x.preempt_requested {
                        Wait(why!(
                            st,
                            "preemption request {n} of thread {t} skips request {} (the last recorded is {})",
                            x.preempt_requested.wrapping_add(1),
                            x.preempt_requested
                        ))
                    } else {
                        Bad(why!(
                            st,
                            "preemption request {n} of {name} repeats (requests made: {})",
                            x.preempt_requested
                        ))
                    }
                }
                _ => Wait(why!(
                    st,
                    "preemption request {n} names {name}, which is not attached"
                )),
            }
        }
        K::PreemptAck => {
            let n = a[0];
            let name = why!(st, "{}", who(st, id));
            let x = &mut st.threads.slots[me];
            match x.state {
                Some(TS::Running(_)) => {
                    if n <= x.preempt_acked {
                        Bad(why!(
                            st,
                            "{name} acknowledges preemption request {n} again (acknowledged up to {})",
                            x.preempt_acked
                        ))
                    } else if n > x.preempt_requested {
                        Wait(why!(
                            st,
                            "{name} acknowledges preemption request {n}, which was never recorded as requested (requests recorded: {})",
                            x.preempt_requested
                        ))
                    } else {
                        x.preempt_acked = n;
                        Apply
                    }
                }
                Some(s) => Bad(why!(st, "{name} is {}, not RUNNING", s.name())),
                None => Bad(why!(st, "{name} is not attached")),
            }
        }
        K::StallOpen => {
            let k = (a[0], a[1]);
            if st.stalls.insert(k) {
                Apply
            } else {
                Wait(why!(st, "stall {} {} is already open", k.0, k.1))
            }
        }
        K::StallResolved => {
            let k = (a[0], a[1]);
            if st.stalls.remove(&k) {
                Apply
            } else {
                Wait(why!(
                    st,
                    "stall {} {} is resolved but was never opened (nor open when the generation began)",
                    k.0,
                    k.1
                ))
            }
        }
        _ => unreachable!("step_sysmon is given only its own kinds (step)"),
    }
}

/// Hook runs and stops of the world: pairs.
fn step_hooks_and_stops(id: u64, me: usize, e: &Event, st: &mut Gen) -> Verdict {
    use EventKind as K;
    let a = &e.args;
    match e.kind {
        K::HookBegin => {
            let r = &mut st.ranges.slots[me];
            match r.hook {
                None => {
                    r.hook = Some(a[0]);
                    Apply
                }
                Some(h) => Bad(why!(
                    st,
                    "{} begins a hook while hook {h} runs",
                    who(st, id)
                )),
            }
        }
        K::HookEnd => {
            let r = &mut st.ranges.slots[me];
            if r.hook == Some(a[0]) {
                r.hook = None;
                Apply
            } else {
                let running = r.hook;
                Bad(why!(
                    st,
                    "{} ends hook {}, {}",
                    who(st, id),
                    a[0],
                    match running {
                        Some(h) => format!("but hook {h} runs"),
                        None => "which is not running".into(),
                    }
                ))
            }
        }
        K::StwBegin => {
            let r = &mut st.ranges.slots[me];
            if r.stw_open {
                Bad(why!(
                    st,
                    "{} begins a stop-the-world inside its own",
                    who(st, id)
                ))
            } else {
                r.stw_open = true;
                Apply
            }
        }
        K::StwEnd => {
            let r = &mut st.ranges.slots[me];
            if !r.stw_open {
                Bad(why!(
                    st,
                    "{} ends a stop-the-world it did not begin",
                    who(st, id)
                ))
            } else {
                r.stw_open = false;
                Apply
            }
        }
        _ => unreachable!("step_hooks_and_stops is given only its own kinds (step)"),
    }
}

/// Regions (nested per thread) and tasks (unique ids).
fn step_ranges(id: u64, me: usize, e: &Event, st: &mut Gen, sum: &mut Summary) -> Verdict {
    use EventKind as K;
    let a = &e.args;
    match e.kind {
        K::RegionBegin => {
            let r = &mut st.ranges.slots[me];
            r.regions = r.regions.saturating_add(1);
            Apply
        }
        K::RegionEnd => {
            let r = &mut st.ranges.slots[me];
            if r.regions == 0 {
                // Begun before the trace: legal, counted.
                sum.crossed_start += 1;
            } else {
                r.regions -= 1;
            }
            Apply
        }
        K::TaskBegin => {
            let task = a[0];
            if task == 0 {
                Bad(why!(
                    st,
                    "{} begins task 0 (task ids start at 1)",
                    who(st, id)
                ))
            } else if !set_flag(st.tasks.entry(task).or_default(), TASK_BEGUN) {
                Bad(why!(
                    st,
                    "{} begins task {task}, which was already begun",
                    who(st, id)
                ))
            } else {
                Apply
            }
        }
        K::TaskEnd => {
            // A task may end on another thread than it began: whether it
            // began in this generation is decided at the end.
            if !set_flag(st.tasks.entry(a[0]).or_default(), TASK_ENDED) {
                Bad(why!(st, "{} ends task {} twice", who(st, id), a[0]))
            } else {
                Apply
            }
        }
        _ => unreachable!("step_ranges is given only its own kinds (step)"),
    }
}

/// Contended lock waits: contended, then acquired.
fn step_locks(id: u64, me: usize, e: &Event, st: &mut Gen, sum: &mut Summary) -> Verdict {
    use EventKind as K;
    let a = &e.args;
    match e.kind {
        K::LockContended | K::RwLockContended => {
            let r = &mut st.ranges.slots[me];
            match r.lock_wait {
                None => {
                    r.lock_wait = Some(a[0]);
                    Apply
                }
                Some(l) => Bad(why!(
                    st,
                    "{} contends for lock {:#x} while waiting for lock {l:#x}",
                    who(st, id),
                    a[0]
                )),
            }
        }
        K::LockAcquired => {
            let r = &mut st.ranges.slots[me];
            match r.lock_wait {
                Some(l) if l == a[0] => {
                    r.lock_wait = None;
                    Apply
                }
                None => {
                    // Contended before the trace: legal, counted.
                    sum.crossed_start += 1;
                    Apply
                }
                Some(l) => Bad(why!(
                    st,
                    "{} acquires lock {:#x} while waiting for lock {l:#x}",
                    who(st, id),
                    a[0]
                )),
            }
        }
        _ => unreachable!("step_locks is given only its own kinds (step)"),
    }
}

/// A thread outside the world (no status, not attached, or detached: it
/// holds no P) waiting in an interposed call, and running again.
fn step_outside(id: u64, me: usize, e: &Event, st: &mut Gen, sum: &mut Summary) -> Verdict {
    use EventKind as K;
    if let Some(s) = st.threads.slots[me].state.filter(|s| *s != TS::Detached) {
        return Bad(why!(
            st,
            "{} records {} while attached ({}): an attached thread's waits are blocks",
            who(st, id),
            e.kind.name(),
            s.name()
        ));
    }
    let r = &mut st.ranges.slots[me];
    let seen = std::mem::replace(&mut r.outside_seen, true);
    match (e.kind, r.outside) {
        (K::OutsideWait, None) => {
            r.outside = Some(e.args[1]);
            Apply
        }
        (K::OutsideWait, Some(o)) => Bad(why!(
            st,
            "{} waits outside the world for {:#x} while waiting for {o:#x}",
            who(st, id),
            e.args[1]
        )),
        (K::OutsideResume, Some(_)) => {
            r.outside = None;
            Apply
        }
        (K::OutsideResume, None) if !seen => {
            // Its wait began before the trace: legal, counted.
            sum.crossed_start += 1;
            Apply
        }
        (K::OutsideResume, None) => {
            r.outside_seen = seen;
            Bad(why!(st, "{} resumes without waiting", who(st, id)))
        }
        _ => unreachable!("step_outside is given only its own kinds (step)"),
    }
}
