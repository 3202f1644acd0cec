//! The tracer's start/stop stress and the 2×2 fault-injection matrix, run
//! through `rtcore stress` (src/bin/rtcore/stress.rs: the workload, one
//! process per run since there is one world per process).
//!
//! - `cargo test --test trace_stress` runs the stress for about 60 s
//!   (`RTC_STRESS_SECONDS`) and then the matrix once.
//! - `... -- stress --cycles N` runs N cycles instead (the acceptance run:
//!   `--release`, 10,000).
//! - `... -- matrix --runs N` runs the matrix N times.
//!
//! - `... -- rollover --cycles N` runs the stress with generations rolling
//!   every millisecond inside each trace (the rollover acceptance run).
//! - `... -- flight --cycles N` runs it with the flight recorder: each
//!   cycle starts it, takes two snapshots and stops it (N snapshots).
//!
//! The stress asserts no inconsistent trace, that every worker attached
//! throughout appears in every trace, and per-kind totals over the run.
//! The rollover run asserts the same with many generations per trace,
//! some beginning inside a hook run or a stop-the-world; its broken
//! variant (`rollover_no_quiesce`: state changes do not wait for the
//! rollover's header) must produce inconsistent traces.
//! The matrix: with `sysmonlock` (with or without sysmon parking between
//! its check and its action) no inconsistency; without it and with the
//! park, an inconsistency whose message names a sysmon action.

use std::collections::BTreeMap;
use std::process::Command;

const RTCORE: &str = env!("CARGO_BIN_EXE_rtcore");

/// What one `rtcore stress` run printed.
struct Run {
    success: bool,
    inconsistent: u64,
    first: String,
    kinds: BTreeMap<String, u64>,
    cross_thread_unblocks: u64,
    missing: u64,
    cycles: u64,
    generations: u64,
    output: String,
}

fn stress(args: &[&str], rtcore_debug: &str) -> Run {
    let out = Command::new(RTCORE)
        .arg("stress")
        .args(args)
        .env("RTCORE_DEBUG", rtcore_debug)
        .output()
        .expect("run rtcore stress");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let output = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let field = |prefix: &str| -> Option<String> {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix).map(str::to_string))
    };
    let number = |prefix: &str| -> u64 {
        field(prefix)
            .and_then(|v| {
                v.split_whitespace()
                    .next()
                    .map(|w| w.trim_end_matches(';').to_string())
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no '{prefix}' line in:\n{output}"))
    };
    let kinds = field("per kind: ")
        .unwrap_or_default()
        .split(", ")
        .filter_map(|kv| {
            let (k, v) = kv.rsplit_once('=')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect();
    let cross_thread_unblocks = field("events per consistent trace: ")
        .and_then(|l| {
            l.split(", ")
                .find_map(|p| p.strip_suffix(" cross-thread unblocks").map(str::to_string))
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // The tool keeps the first inconsistent trace for inspection; the
    // matrix makes them on purpose.
    if let Some(kept) = stdout
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("its trace: "))
    {
        let _ = std::fs::remove_file(kept);
    }
    let generations = field("inconsistent: ")
        .and_then(|l| {
            l.split("generations in the consistent traces: ")
                .nth(1)
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0);
    // "rtcore stress: N cycles in S s; ..." (the summary, not the banner).
    let cycles = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("rtcore stress: "))
        .find_map(|l| {
            l.split_once(" cycles in ")
                .and_then(|(n, _)| n.parse().ok())
        })
        .unwrap_or(0);
    Run {
        success: out.status.success(),
        cycles,
        generations,
        inconsistent: number("inconsistent: "),
        first: field("first inconsistency: ").unwrap_or_default(),
        kinds,
        cross_thread_unblocks,
        missing: number("traces missing a worker attached throughout: "),
        output,
    }
}

fn run_stress(args: &[&str]) -> Run {
    let r = stress(args, "");
    println!("{}", r.output);
    assert_eq!(r.inconsistent, 0, "inconsistent traces: {}", r.first);
    assert_eq!(r.missing, 0, "traces without a worker attached throughout");
    assert!(r.success, "rtcore stress failed:\n{}", r.output);
    for kind in [
        "P steal",
        "preempt request",
        "preempt ack",
        "hook begin",
        "hook end",
        "lock contended",
        "lock acquired",
        "region begin",
        "region end",
        "log",
        "block",
        "unblock",
        "enter blocking",
        "exit blocking (fast)",
        "exit blocking (after a steal)",
        "P start",
        "P stop",
        "attach",
        "detach",
        "thread status",
        "stall open",
        "stall resolved",
    ] {
        assert!(
            r.kinds.get(kind).copied().unwrap_or(0) > 0,
            "no '{kind}' event in the whole run:\n{}",
            r.output
        );
    }
    assert!(r.cross_thread_unblocks > 0, "no cross-thread unblock");
    r
}

/// The stress with generations rolling every millisecond inside traces of
/// 10 ms: rollovers mix with starts, stops, hook runs and stops of the
/// world. Then its broken variant must be caught.
fn rollover(args: &[&str], broken_seconds: &str) {
    let mut all = vec!["--trace-ms", "10", "--generation-ms", "1"];
    all.extend_from_slice(args);
    let r = run_stress(&all);
    assert!(
        r.cycles > 0 && r.generations >= 3 * r.cycles,
        "generations did not roll: {} generations in {} traces",
        r.generations,
        r.cycles
    );
    for kind in ["hook status", "STW status", "stall status"] {
        assert!(
            r.kinds.get(kind).copied().unwrap_or(0) > 0,
            "no generation began with a '{kind}' in the whole run:\n{}",
            r.output
        );
    }
    println!(
        "rollover: {} traces, {} generations, 0 inconsistent",
        r.cycles, r.generations
    );
    let b = stress(
        &[
            "--trace-ms",
            "10",
            "--generation-ms",
            "1",
            "--duration",
            broken_seconds,
        ],
        "rollover_no_quiesce=1",
    );
    println!(
        "rollover without quiescence: {} inconsistent of {} ({})",
        b.inconsistent, b.cycles, b.first
    );
    assert!(
        b.inconsistent > 0,
        "the broken rollover (no quiescence) was not caught:\n{}",
        b.output
    );
}

/// Words that name a sysmon action or its missing event in the
/// validator's messages (a steal, a preemption request, a stall episode).
fn names_sysmon_action(msg: &str) -> bool {
    ["steal", "preemption request", "stall", "SYSCALL"]
        .iter()
        .any(|w| msg.contains(w))
}

/// The stress with the flight recorder: snapshots and rollovers mixed with
/// its starts and stops, every snapshot valid; the fault injection still
/// finds an inconsistency.
fn flight(args: &[&str]) {
    let mut all = vec![
        "--flight-recorder",
        "--trace-ms",
        "10",
        "--generation-ms",
        "2",
    ];
    all.extend_from_slice(args);
    let r = run_stress(&all);
    println!(
        "flight recorder: {} snapshots, {} generations, 0 inconsistent",
        r.cycles, r.generations
    );
    let b = stress(
        &[
            "--flight-recorder",
            "--trace-ms",
            "10",
            "--generation-ms",
            "2",
            // It stops at the first inconsistency; the injection parks
            // sysmon, and with it the rollovers, for up to 2 s at a time,
            // so cycles are few (3-4 s each) and about one in ten is
            // caught: 60 s missed it about one run in five, 240 s misses
            // it about once in 500 (the run ends at the first catch, so
            // the cap costs only when luck is bad).
            "--duration",
            "240",
            "--inject",
        ],
        "",
    );
    assert!(
        b.inconsistent > 0,
        "the fault injection found nothing with the flight recorder:\n{}",
        b.output
    );
}

fn matrix(runs: u32, seconds: &str) {
    let configs = [
        ("", "sysmonlock, no park"),
        ("sysmon_park_after_check=1", "sysmonlock, park"),
        (
            "trace_skip_sysmonlock=1,sysmon_park_after_check=1",
            "no sysmonlock, park",
        ),
        ("trace_skip_sysmonlock=1", "no sysmonlock, no park"),
    ];
    let mut held = 0;
    for run in 1..=runs {
        let mut ok = true;
        for (debug, label) in configs {
            let r = stress(&["--duration", seconds], debug);
            println!(
                "matrix run {run}/{runs}: {label}: {} inconsistent {}",
                r.inconsistent, r.first
            );
            let skip = debug.contains("skip");
            let park = debug.contains("park");
            if !skip && r.inconsistent != 0 {
                ok = false;
                println!("  FAIL: an inconsistency with sysmonlock held");
            }
            if skip && park {
                if r.inconsistent == 0 {
                    ok = false;
                    println!("  FAIL: no inconsistency without sysmonlock");
                } else if !names_sysmon_action(&r.first) {
                    ok = false;
                    println!("  FAIL: the first inconsistency names no sysmon action");
                }
            }
        }
        held += ok as u32;
    }
    println!("the matrix held {held} times out of {runs}");
    assert_eq!(held, runs, "the matrix did not hold every time");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    match args.first().map(String::as_str) {
        Some("stress") => {
            let rest: Vec<&str> = args[1..].iter().map(String::as_str).collect();
            run_stress(&rest);
        }
        Some("rollover") => {
            let rest: Vec<&str> = args[1..].iter().map(String::as_str).collect();
            rollover(&rest, "5");
        }
        Some("flight") => {
            let rest: Vec<&str> = args[1..].iter().map(String::as_str).collect();
            flight(&rest);
        }
        Some("matrix") => matrix(
            value("--runs").and_then(|v| v.parse().ok()).unwrap_or(1),
            &value("--seconds").unwrap_or_else(|| "5".into()),
        ),
        // `cargo test` passes libtest's flags: run the default set.
        _ => {
            let seconds = std::env::var("RTC_STRESS_SECONDS").unwrap_or_else(|_| "60".into());
            run_stress(&["--duration", &seconds]);
            let rolling = std::env::var("RTC_ROLLOVER_SECONDS").unwrap_or_else(|_| "20".into());
            rollover(&["--duration", &rolling], "5");
            flight(&["--duration", "10"]);
            matrix(1, "5");
            println!("test result: ok. trace_stress passed");
        }
    }
}
