//! The recording work of each runtime event, alone, beside the floor.
//!
//! The runtime's events are recorded inside paths (a contended lock, a
//! thread blocking and being woken) whose own cost dwarfs the recording
//! and varies with the scheduler; `benches/trace.rs` measures the
//! uncontended operations traced and untraced through the C ABI. This
//! measures what those paths add when tracing: `record::emit` of each
//! event kind, with the arguments its path passes, called in a loop from a
//! thread while a trace is recorded into an fd on /dev/null (started and
//! stopped through `rtc_trace_start` / `rtc_trace_stop`). The events are
//! not the state changes they describe, so the trace would not validate:
//! it goes to /dev/null. The floor (a bare `rdtsc` and a 16-byte record
//! into a thread-local ring through a non-inlined call) runs in the same
//! loop skeleton, round robin with the events, 9 rounds; medians.
//!
//! Run: `cargo bench --bench record` (about 10 s).

mod common;
use common::{Stats, round_robin};
use rtcore::format::EventKind;
use rtcore::record::{self, A};
use std::hint::black_box;
use std::time::Instant;

const ITERS: u64 = 2_000_000;

#[derive(Clone, Copy, Debug, PartialEq)]
enum V {
    Floor,
    LockContended,
    LockAcquired,
    Block,
    Unblock,
    EnterBlocking,
    ExitBlockingFast,
}

impl V {
    const ALL: [V; 7] = [
        V::Floor,
        V::LockContended,
        V::LockAcquired,
        V::Block,
        V::Unblock,
        V::EnterBlocking,
        V::ExitBlockingFast,
    ];
}

static LOCK_NAME: &std::ffi::CStr = c"queue lock";

#[inline(never)]
fn run(v: V) -> f64 {
    let t = Instant::now();
    for i in 0..ITERS {
        let i = black_box(i);
        match v {
            V::Floor => common::floor_event(i),
            // Each with the arguments its path passes (src/lock/mutex.rs,
            // src/world/sched/*.rs).
            V::LockContended => record::emit(
                EventKind::LockContended,
                &[
                    A::U(0x7f00_1234_5678),
                    A::CStrLossy(LOCK_NAME.as_ptr()),
                    A::U(7),
                ],
            ),
            V::LockAcquired => record::emit(
                EventKind::LockAcquired,
                &[A::U(0x7f00_1234_5678), A::U(12_345), A::U(7)],
            ),
            V::Block => record::emit(
                EventKind::Block,
                &[A::U(1), A::U(0x7f00_1234_5678), A::U(1), A::U(i)],
            ),
            V::Unblock => record::emit(EventKind::Unblock, &[A::U(9), A::U(i), A::U(7)]),
            V::EnterBlocking => record::emit(
                EventKind::EnterBlocking,
                &[A::U(1), A::U(i), A::Str("read(2) on a socket")],
            ),
            V::ExitBlockingFast => record::emit(EventKind::ExitBlockingFast, &[A::U(1), A::U(i)]),
        }
    }
    t.elapsed().as_nanos() as f64 / ITERS as f64
}

fn main() {
    common::install_panic_exit();
    // SAFETY: a NUL-terminated path.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    assert!(fd >= 0, "open /dev/null");
    let cfg = rtcore::ffi::trace::rtc_trace_config {
        size: std::mem::size_of::<rtcore::ffi::trace::rtc_trace_config>() as u32,
        sink_kind: 2, // RTC_TRACE_SINK_FD
        path: std::ptr::null(),
        fd,
        generation_ms: 0,
        write: None,
        user_data: std::ptr::null_mut(),
        max_mb: 0,
        reserved: 0,
    };
    assert_eq!(
        rtcore::ffi::trace::rtc_trace_start(&cfg) as i32,
        0,
        "rtc_trace_start"
    );
    for v in V::ALL {
        run(v);
    }
    let results = round_robin(&V::ALL, 9, |_, v| run(v), |_| {});
    assert_eq!(
        rtcore::ffi::trace::rtc_trace_stop() as i32,
        0,
        "rtc_trace_stop"
    );
    let stats: Vec<Stats> = results.iter().map(|r| Stats::of(r)).collect();
    let floor = stats[0].median;
    println!(
        "rtcore record benchmark: each runtime event's recording alone, {ITERS} per sample, 9 \
         rounds round robin, medians; tracing into /dev/null; {} CPUs",
        common::nproc()
    );
    println!(
        "{:<22} {:>9} {:>9} {:>9}   (goal: each <= 2x the floor)",
        "event", "ns", "spread", "/ floor"
    );
    for (v, st) in V::ALL.iter().zip(&stats) {
        println!(
            "{:<22} {:>9.2} {:>8.1}% {:>8.2}x",
            format!("{v:?}"),
            st.median,
            st.spread() * 100.0,
            st.median / floor
        );
    }
}
