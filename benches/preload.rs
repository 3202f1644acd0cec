//! `cargo bench --bench preload`: what `rtcore run` costs a program nobody
//! changed (docs/benchmarks.md, "rtcore run").
//!
//! Part 1: an uncontended `pthread_mutex_lock`/`unlock` pair
//! (benches/preload/pairs.c, compiled with `cc -O2`), with nothing else
//! held and with three locks of other classes held (the chain-cache path),
//! plain and with `librtcore_preload.so` preloaded (learning on, report
//! mode), one process per sample, the two in turns in the same run.
//! Part 2 (when /usr/bin/memcached exists): memcached's throughput under a
//! fixed load from four client threads (set then get, each request a
//! round trip), plain and preloaded, in turns.
//! Ratios are of medians in this run.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROUNDS: usize = 9;
const PAIRS: &str = "5000000";

fn preload_path() -> PathBuf {
    let lib = common::lib_path();
    lib.parent()
        .unwrap_or(Path::new("."))
        .join("librtcore_preload.so")
}

fn compile(dir: &Path) -> PathBuf {
    let exe = dir.join("pairs");
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/preload/pairs.c");
    let st = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-O2", "-pthread", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
        .expect("run cc");
    assert!(st.success(), "compiling {} failed", src.display());
    exe
}

/// One sample: ns per pair.
fn pairs_sample(exe: &Path, held: u32, preload: Option<&Path>) -> f64 {
    let mut cmd = Command::new(exe);
    cmd.args([&held.to_string(), PAIRS, "1"])
        .env_remove("LD_PRELOAD")
        .env_remove("RTCORE_DEBUG")
        .stderr(Stdio::null());
    if let Some(p) = preload {
        cmd.env("LD_PRELOAD", p);
    }
    let out = cmd.output().expect("run pairs");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a number")
}

fn part1(exe: &Path, preload: &Path) {
    println!(
        "\nPart 1: ns per uncontended pthread_mutex_lock+unlock pair, {PAIRS} pairs per sample, {ROUNDS} samples each, one process per sample, plain and preloaded in turns"
    );
    println!("{}", common::stats_header(44, "   ratio"));
    for held in [0u32, 3] {
        let (mut plain, mut pre) = (Vec::new(), Vec::new());
        for r in 0..ROUNDS {
            // Alternate which goes first.
            if r % 2 == 0 {
                plain.push(pairs_sample(exe, held, None));
                pre.push(pairs_sample(exe, held, Some(preload)));
            } else {
                pre.push(pairs_sample(exe, held, Some(preload)));
                plain.push(pairs_sample(exe, held, None));
            }
            common::progress();
        }
        let (p, q) = (common::Stats::of(&plain), common::Stats::of(&pre));
        println!(
            "{}",
            common::stats_row(44, &format!("plain, {held} other lock(s) held"), &p, 1.0)
        );
        println!(
            "{}   {:.2}x",
            common::stats_row(
                44,
                &format!("preloaded, {held} other lock(s) held"),
                &q,
                1.0
            ),
            q.median / p.median
        );
        println!(
            "RATIO preloaded / plain, {held} held: {:.3} (goal <= 1.5)",
            q.median / p.median
        );
    }
}

const CLIENTS: usize = 4;
const REQUESTS: usize = 6000;

fn client(port: u16, id: usize) {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    for k in 0..REQUESTS / 2 {
        let v = format!("value-{id}-{k}");
        w.write_all(format!("set b{id}k{} 0 0 {}\r\n{v}\r\n", k % 200, v.len()).as_bytes())
            .unwrap();
        line.clear();
        r.read_line(&mut line).unwrap();
        assert_eq!(line, "STORED\r\n");
        w.write_all(format!("get b{id}k{}\r\n", k % 200).as_bytes())
            .unwrap();
        for _ in 0..3 {
            line.clear();
            r.read_line(&mut line).unwrap();
        }
        assert_eq!(line, "END\r\n");
    }
}

/// One sample: requests per second served.
fn memcached_sample(preload: Option<&Path>) -> f64 {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut cmd = Command::new("/usr/bin/memcached");
    cmd.args(["-u", "root", "-l", "127.0.0.1", "-t", "4", "-m", "64", "-p"])
        .arg(port.to_string())
        .env_remove("LD_PRELOAD")
        .stderr(Stdio::null());
    if let Some(p) = preload {
        cmd.env("LD_PRELOAD", p);
    }
    let mut server = cmd.spawn().expect("start memcached");
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "memcached did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let start = Instant::now();
    let ts: Vec<_> = (0..CLIENTS)
        .map(|id| std::thread::spawn(move || client(port, id)))
        .collect();
    for t in ts {
        t.join().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let _ = server.kill();
    let _ = server.wait();
    (CLIENTS * REQUESTS) as f64 / secs
}

fn part2(preload: &Path) {
    if !Path::new("/usr/bin/memcached").exists() {
        println!(
            "\nPart 2: not run: /usr/bin/memcached is not installed (apt-get install memcached)"
        );
        return;
    }
    println!(
        "\nPart 2: memcached -t 4, {CLIENTS} client threads x {REQUESTS} requests (set, get; each a round trip), requests per second, {ROUNDS} samples each, plain and preloaded in turns"
    );
    let (mut plain, mut pre) = (Vec::new(), Vec::new());
    for r in 0..ROUNDS {
        if r % 2 == 0 {
            plain.push(memcached_sample(None));
            pre.push(memcached_sample(Some(preload)));
        } else {
            pre.push(memcached_sample(Some(preload)));
            plain.push(memcached_sample(None));
        }
        common::progress();
    }
    let (p, q) = (common::Stats::of(&plain), common::Stats::of(&pre));
    println!("{}", common::stats_header(44, ""));
    println!("{}", common::stats_row(44, "plain (requests/s)", &p, 1.0));
    println!(
        "{}",
        common::stats_row(44, "preloaded (requests/s)", &q, 1.0)
    );
    println!(
        "RATIO memcached throughput, preloaded / plain: {:.3} (goal >= 0.85)",
        q.median / p.median
    );
}

fn main() {
    common::install_panic_exit();
    let preload = preload_path();
    assert!(
        preload.exists(),
        "{} is missing: cargo build --release",
        preload.display()
    );
    common::warn_if_stale(&common::lib_path());
    println!("rtcore interposition benchmark");
    println!("preload library: {}", preload.display());
    println!("machine: {}", common::machine_base());
    println!("load average (1 min) at start: {}", common::loadavg());
    let dir = std::env::temp_dir().join(format!("rtcore-bench-preload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = compile(&dir);
    part1(&exe, &preload);
    part2(&preload);
    println!("load average (1 min) at end: {}", common::loadavg());
    let _ = std::fs::remove_dir_all(&dir);
}
