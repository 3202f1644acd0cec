//! Benchmark of the trace reader: how fast `rtcore check` validates, and
//! how much memory it holds, on the demo's and the stress's traces.
//!
//! Run: `cargo build --release && cargo bench --bench reader`
//!
//! The traces are made first, by the built command (`RTCORE_BIN`, default
//! `target/release/rtcore` under the crate root), in a temporary directory:
//!   - "demo": the four traces `rtcore demo` writes (the traced key-value
//!     service: blocking regions, tasks, regions, hooks, a stop-the-world);
//!   - "stress": the last trace of `rtcore stress --cycles 3 --trace-ms
//!     3000 --keep-last` (tight-loop loggers, every runtime event kind).
//!
//! Or give files in `RTCORE_BENCH_READER_FILES` (colon-separated) instead.
//!
//! Variants, each timed over every file of a set, samples round robin
//! across the variants (rotating the first one each round) after one
//! warm-up round, on one thread (the reader uses one core):
//!   (check)  `reader::check_file`: what `rtcore check` and
//!            `rtc_trace_check_file` run. The file is read as it is
//!            checked, one generation buffered, events decoded as the
//!            validator reaches them;
//!   (parse)  `fs::read`, `reader::parse`, `reader::validate`: every event
//!            decoded and kept, then validated (what `rtcore stats` and
//!            `export` read, and how `check` worked before);
//!   (floor)  `fs::read` and `format::crc32` of the whole file: reading
//!            the bytes and checking their CRCs, which any reader must do;
//!            the peer the others are compared with.
//! Per variant: the median time of a sample, events per second, the ratio
//! to the floor, and the peak of heap memory allocated during a sample
//! (this binary's allocator counts; a sample starts with nothing
//! allocated by the reader).
//!
//! Tunables: RTCORE_BENCH_READER_SAMPLES (default 15).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Counts live heap bytes and their peak since the last `reset_peak`.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only adds counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on unchanged.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
            PEAK.fetch_max(now, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.realloc(ptr, layout, new) };
        if !p.is_null() {
            if new >= layout.size() {
                let now = LIVE.fetch_add(new - layout.size(), Relaxed) + new - layout.size();
                PEAK.fetch_max(now, Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new, Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Check,
    Parse,
    Floor,
}

const VARIANTS: [Variant; 3] = [Variant::Check, Variant::Parse, Variant::Floor];

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Check => "check (streaming)",
            Variant::Parse => "parse + validate (all in memory)",
            Variant::Floor => "floor: read + CRC-32",
        }
    }

    /// Run over every file; the events seen (0 for the floor).
    fn run(self, files: &[PathBuf]) -> u64 {
        let mut events = 0;
        for f in files {
            match self {
                Variant::Check => {
                    let s = rtcore::reader::check_file(f)
                        .expect("readable")
                        .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
                    events += s.events;
                }
                Variant::Parse => {
                    let data = std::fs::read(f).expect("readable");
                    let t = rtcore::reader::parse(&data)
                        .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
                    let s = rtcore::reader::validate(&t)
                        .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
                    events += s.events;
                }
                Variant::Floor => {
                    let data = std::fs::read(f).expect("readable");
                    std::hint::black_box(rtcore::format::crc32(&data));
                }
            }
        }
        events
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run_rtcore(bin: &Path, dir: &Path, args: &[&str]) {
    eprintln!("making traces: rtcore {}", args.join(" "));
    let out = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e} (build it first)", bin.display()));
    assert!(
        out.status.success(),
        "rtcore {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The trace sets: (name, files).
fn trace_sets(dir: &Path) -> Vec<(String, Vec<PathBuf>)> {
    if let Ok(list) = std::env::var("RTCORE_BENCH_READER_FILES") {
        return vec![(
            "given".into(),
            list.split(':')
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect(),
        )];
    }
    let bin = std::env::var_os("RTCORE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/release/rtcore"));
    run_rtcore(&bin, dir, &["demo"]);
    let demo: Vec<PathBuf> = (1..=4)
        .map(|i| dir.join(format!("rtcore-demo/trace-{i}.rtctrace")))
        .collect();
    let stress = dir.join("stress.rtctrace");
    run_rtcore(
        &bin,
        dir,
        &[
            "stress",
            "--cycles",
            "3",
            "--trace-ms",
            "3000",
            "--keep-last",
            stress.to_str().expect("UTF-8 path"),
        ],
    );
    vec![("demo".into(), demo), ("stress".into(), vec![stress])]
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes "--bench"; nothing else is taken.
    let samples: usize = std::env::var("RTCORE_BENCH_READER_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15)
        .max(1);
    let dir = std::env::temp_dir().join(format!("rtcore-bench-reader-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let sets = trace_sets(&dir);
    println!("reader benchmark: {samples} samples per variant, median shown\n");
    for (name, files) in &sets {
        let bytes: u64 = files
            .iter()
            .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
            .sum();
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); VARIANTS.len()];
        let mut peaks = vec![0usize; VARIANTS.len()];
        let mut events = 0u64;
        for round in 0..=samples {
            for k in 0..VARIANTS.len() {
                let i = (k + round) % VARIANTS.len();
                let v = VARIANTS[i];
                let base = LIVE.load(Relaxed);
                PEAK.store(base, Relaxed);
                let t0 = Instant::now();
                let n = v.run(files);
                let dt = t0.elapsed();
                let peak = PEAK.load(Relaxed) - base;
                if v == Variant::Check {
                    events = n;
                }
                if v == Variant::Parse {
                    assert_eq!(n, events, "check and parse disagree on the events");
                }
                if round > 0 {
                    times[i].push(dt);
                    peaks[i] = peaks[i].max(peak);
                }
            }
        }
        println!(
            "{name}: {} file(s), {:.1} MB, {events} events, {:.1} bytes/event",
            files.len(),
            bytes as f64 / 1e6,
            bytes as f64 / events.max(1) as f64
        );
        let floor = median(&mut times[2].clone()).as_secs_f64();
        println!(
            "  {:<34} {:>10} {:>14} {:>9} {:>12}",
            "variant", "median", "events/s", "÷ floor", "peak heap"
        );
        for (i, v) in VARIANTS.iter().enumerate() {
            let m = median(&mut times[i]).as_secs_f64();
            println!(
                "  {:<34} {:>8.1} ms {:>12.1} M {:>8.2}× {:>9.1} MB",
                v.name(),
                m * 1e3,
                events as f64 / m / 1e6,
                m / floor,
                peaks[i] as f64 / 1e6
            );
        }
        println!();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
