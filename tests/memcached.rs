#![cfg(not(loom))]
//! memcached (Debian's package), a real program nobody wrote for rtcore,
//! under `rtcore run --trace`: it serves a fixed load from four client
//! threads correctly (every value read back is the one written), with zero
//! false reports; its summary at exit shows its lock classes, learned
//! order and contended locks; the trace of the run checks consistent and
//! shows its threads' waits on its locks with their owners.
//!
//! Needs `/usr/bin/memcached`, so it is `#[ignore]`d in a plain `cargo
//! test`; `.ci/run` installs memcached and runs it with `--ignored`
//! (README: "Check and trace a program you didn't write").

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CLIENTS: usize = 4;
const KEYS: usize = 500;
const ROUNDS: usize = 6;

/// One client: set its keys, then read them back, ROUNDS times.
fn client(port: u16, id: usize) -> usize {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to memcached");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // One write per request, sent at once (no Nagle wait for the ACK).
    stream.set_nodelay(true).unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    let mut checked = 0;
    for round in 0..ROUNDS {
        for k in 0..KEYS {
            let value = format!("client{id}-key{k}-round{round}");
            w.write_all(format!("set c{id}k{k} 0 0 {}\r\n{value}\r\n", value.len()).as_bytes())
                .unwrap();
            line.clear();
            r.read_line(&mut line).unwrap();
            assert_eq!(line, "STORED\r\n", "set c{id}k{k}");
        }
        for k in 0..KEYS {
            w.write_all(format!("get c{id}k{k}\r\n").as_bytes())
                .unwrap();
            let want = format!("client{id}-key{k}-round{round}");
            line.clear();
            r.read_line(&mut line).unwrap();
            assert_eq!(line, format!("VALUE c{id}k{k} 0 {}\r\n", want.len()));
            line.clear();
            r.read_line(&mut line).unwrap();
            assert_eq!(line, format!("{want}\r\n"));
            line.clear();
            r.read_line(&mut line).unwrap();
            assert_eq!(line, "END\r\n");
            checked += 1;
        }
    }
    checked
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
#[ignore = "needs Debian's memcached; .ci/run installs it and runs this with --ignored"]
fn memcached_serves_correctly_under_rtcore_run_with_no_false_report() {
    assert!(
        std::path::Path::new("/usr/bin/memcached").exists(),
        "memcached is not installed (apt-get install memcached)"
    );
    common::lib_dir();
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("rtcore-memcached-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let trace = dir.join("memcached.rtctrace");
    let server = Command::new(env!("CARGO_BIN_EXE_rtcore"))
        .args(["run", "--trace"])
        .arg(&trace)
        .args([
            "--",
            "/usr/bin/memcached",
            "-u",
            "root",
            "-l",
            "127.0.0.1",
            "-t",
            "4",
            "-m",
            "64",
            "-p",
        ])
        .arg(port.to_string())
        .env_remove("LD_PRELOAD")
        .env_remove("RTCORE_DEBUG")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rtcore run -- memcached");
    // Wait until it listens.
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "memcached did not start listening"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let threads: Vec<_> = (0..CLIENTS)
        .map(|id| std::thread::spawn(move || client(port, id)))
        .collect();
    let checked: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(checked, CLIENTS * KEYS * ROUNDS);
    // memcached exits cleanly on SIGTERM (its exit handlers run: the
    // summary is written).
    // SAFETY: signalling our own child.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let out = server.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    for bad in [
        "lock order violation",
        "recursive locking",
        "unlock of a lock not held",
    ] {
        assert!(!err.contains(bad), "a false report ({bad}):\n{err}");
    }
    let summary = err
        .lines()
        .find(|l| l.starts_with("rtcore run: ") && l.contains("lock class(es)"))
        .unwrap_or_else(|| panic!("no summary:\n{err}"));
    assert!(summary.contains("0 order violation(s)"), "{summary}");
    // Its workers, the listener and its maintainers took interposed locks.
    let threads: u64 = summary["rtcore run: ".len()..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(threads >= 5, "{summary}");
    println!("{err}");
    // The trace of the whole run checks, and shows its threads' waits on
    // memcached's locks with their owners.
    let (code, out) = common::rtcore_on("check", &trace);
    assert_eq!(code, Some(0), "{out}");
    let (_, text) = common::rtcore_on("stats", &trace);
    println!("{text}");
    let contended: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("most contended locks"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    assert!(
        contended
            .iter()
            .any(|l| l.contains("memcached") && l.contains("held by")),
        "no wait on memcached's locks in the trace:\n{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
