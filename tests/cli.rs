#![cfg(not(loom))]
//! The `rtcore` command: `ranks` on good and bad files; `check` and `export`
//! on a good trace, a corrupted one (bytes flipped) and a truncated one
//! (the JSON parsed back by tests/tools/check_trace_json.py); `stress` with
//! and without the fault injection; the demo end to end (exit status and
//! the summary it promises).

use std::os::unix::fs::OpenOptionsExt;
use std::process::Command;

fn rtcore(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rtcore"))
        .args(args)
        .env_remove("RTCORE_DEBUG")
        .output()
        .expect("run rtcore");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp_file(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("rtcore-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn ranks_prints_a_linear_order_for_a_good_file() {
    let f = temp_file(
        "good.ranks",
        "# ok\nNONE < a;\na < B_GROUP;\nB_GROUP < c, d;\nnestable: d;\n",
    );
    let (code, out, _) = rtcore(&["ranks", &f]);
    assert_eq!(code, 0);
    assert!(out.contains("ok, 3 ranks (1 pseudo-ranks)"), "{out}");
    let pos = |n: &str| {
        out.find(&format!(" {n} "))
            .unwrap_or_else(|| panic!("{n} missing:\n{out}"))
    };
    assert!(pos("a") < pos("c") && pos("a") < pos("d"));
    assert!(out.contains("(nestable)"));
    assert!(!out.contains("hooklock"), "builtin ranks only with --all");
    let (_, all, _) = rtcore(&["ranks", "--all", &f]);
    assert!(all.contains("hooklock"));
}

#[test]
fn ranks_rejects_a_bad_file_with_its_position() {
    let f = temp_file("cycle.ranks", "NONE < a;\np < q;\nq < p;\n");
    let (code, _, err) = rtcore(&["ranks", &f]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cycle.ranks:3:1: graph cycle: p < q < p"),
        "{err}"
    );
    let (code, _, err) = rtcore(&["ranks", "/nonexistent.ranks"]);
    assert_eq!(code, 2, "unreadable input, as for every subcommand");
    assert!(err.contains("cannot read rank file"), "{err}");
    // A chain started without NONE: the error says how to start one.
    let f = temp_file("no-none.ranks", "a < b;\n");
    let (code, _, err) = rtcore(&["ranks", &f]);
    assert_eq!(code, 1);
    assert!(
        err.contains("missing definition for 'a'") && err.contains("start with `NONE < a;`"),
        "{err}"
    );
}

#[test]
fn ranks_lists_a_users_ranks_numbered_from_1() {
    let f = temp_file("numbered.ranks", "NONE < a;\na < b;\nb < c;\n");
    let (code, out, _) = rtcore(&["ranks", &f]);
    assert_eq!(code, 0, "{out}");
    let rows: Vec<(u32, String)> = out
        .lines()
        .skip(1)
        .map(|l| {
            let mut w = l.split_whitespace();
            (
                w.next().unwrap().parse().unwrap(),
                w.next().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(u32, String)> = vec![(1, "a".into()), (2, "b".into()), (3, "c".into())];
    assert_eq!(rows, want, "{out}");
    // With rtcore's own ranks listed too, the numbering still starts at 1.
    let (_, all, _) = rtcore(&["ranks", "--all", &f]);
    assert!(
        all.lines().nth(1).unwrap().trim_start().starts_with("1 "),
        "{all}"
    );
}

#[test]
fn demo_runs_end_to_end_in_a_fresh_directory() {
    let dir = temp_dir("demo");
    // What an earlier run and the user left in rtcore-demo/: the demo's
    // own files go (a link under one of its names is removed, never
    // followed), anything else stays.
    let demo = dir.join("rtcore-demo");
    std::fs::create_dir(&demo).unwrap();
    std::fs::write(demo.join("trace-7.json"), "stale").unwrap();
    std::fs::write(demo.join("notes.txt"), "mine").unwrap();
    std::fs::write(dir.join("precious"), "precious").unwrap();
    std::os::unix::fs::symlink(dir.join("precious"), demo.join("trace-2.json")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rtcore"))
        .arg("demo")
        .current_dir(&dir)
        .env_remove("RTCORE_DEBUG")
        .output()
        .expect("run rtcore demo");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    let served: u64 = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("requests served"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no request count:\n{stdout}"));
    assert!(served > 1000, "{stdout}");
    assert!(stdout.contains("order violations     8"), "{stdout}");
    assert!(
        stdout.contains("forbidden by examples/kv.ranks:5: index < shard"),
        "{stdout}"
    );
    assert!(stdout.contains("with the rank violation"), "{stdout}");
    assert!(stdout.contains("ui.perfetto.dev"), "{stdout}");
    assert!(stderr.contains("'kv-compactor'"), "{stderr}");
    assert!(
        stdout.contains("(cleared 2 file(s) of an earlier run from rtcore-demo/)"),
        "{stdout}"
    );
    assert!(!demo.join("trace-7.json").exists());
    assert_eq!(
        std::fs::read_to_string(demo.join("notes.txt")).unwrap(),
        "mine"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("precious")).unwrap(),
        "precious"
    );
    assert!(
        std::fs::symlink_metadata(demo.join("trace-2.json"))
            .unwrap()
            .is_file()
    );
    // Its output's size, as it says.
    let size_line = stdout
        .lines()
        .find(|l| l.starts_with("The traces are in rtcore-demo/: 15 files, "))
        .unwrap_or_else(|| panic!("no size line:\n{stdout}"));
    // "N.N MB" or, for a small output, "N.N kB".
    let said_mb: f64 = size_line
        .split("15 files, ")
        .nth(1)
        .and_then(|r| {
            let (v, unit) = r.split_once(' ')?;
            let v: f64 = v.parse().ok()?;
            match unit.split(' ').next()? {
                "MB" => Some(v),
                "kB" => Some(v / 1e3),
                _ => None,
            }
        })
        .unwrap_or_else(|| panic!("{size_line}"));
    let written: u64 = std::fs::read_dir(&demo)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with("trace-"))
        })
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(
        // Rounded to one decimal of its unit.
        (said_mb - written as f64 / 1e6).abs() <= if said_mb >= 1.0 { 0.051 } else { 0.000051 },
        "{size_line}: {written} bytes"
    );
    // The closing hints run as printed (this binary is not on PATH here,
    // so they name it by its path).
    let hints: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" check rtcore-demo/") || l.contains(" stats rtcore-demo/"))
        .collect();
    assert_eq!(hints.len(), 2, "{stdout}");
    for h in hints {
        let o = Command::new("sh")
            .args(["-c", h.trim()])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{h}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // Every trace it wrote is consistent, and its JSON opens as a clean
    // timeline.
    let mut traces = 0;
    for entry in std::fs::read_dir(&demo).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rtctrace") {
            traces += 1;
            let (code, out, _) = rtcore(&["check", path.to_str().unwrap()]);
            assert_eq!(code, 0, "{out}");
            let (ok, report) = check_json(&path.with_extension("json"), &["--min-threads", "8"]);
            assert!(ok, "{}: {report}", path.display());
            assert!(path.with_extension("perfetto-trace").exists());
        }
    }
    assert_eq!(traces, 5, "{traces} traces in {}", demo.display());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A consistent trace from a short `rtcore stress` run (kept in `dir`).
fn stress_trace(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("stress.rtctrace");
    let (code, out, err) = rtcore(&[
        "stress",
        "--duration",
        "1",
        "--trace-ms",
        "20",
        "--keep-last",
        path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "stress failed:\n{out}\n{err}");
    assert!(out.contains("inconsistent: 0"), "{out}");
    path
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("rtcore-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn check_json(path: &std::path::Path, extra: &[&str]) -> (bool, String) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/tools/check_trace_json.py"
    );
    let out = Command::new("python3")
        .arg(script)
        .arg(path)
        .args(extra)
        .output()
        .expect("run python3");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn check_and_export_accept_a_good_trace_and_refuse_broken_ones() {
    let dir = temp_dir("check");
    let good = stress_trace(&dir);
    let p = |x: &std::path::Path| x.to_str().unwrap().to_string();

    let (code, out, _) = rtcore(&["check", &p(&good)]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(": consistent: ") && out.contains(" events"),
        "{out}"
    );

    let json = dir.join("good.json");
    let (code, out, err) = rtcore(&["export", &p(&good), "--format", "json", "-o", &p(&json)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("lock-wait arrows"), "{out}");
    let (ok, report) = check_json(&json, &["--min-threads", "6"]);
    assert!(ok, "{report}");

    let (code, out, _) = rtcore(&["stats", &p(&good)]);
    assert_eq!(code, 0, "{out}");
    for part in [
        "threads: time in each state",
        "blocking regions by reason",
        "pipe read",
        "most contended locks",
        "sysmon",
        "events by kind",
        "bytes per event",
    ] {
        assert!(out.contains(part), "no '{part}' in:\n{out}");
    }
    let (code, out, _) = rtcore(&["stats", &p(&good), "--json"]);
    assert_eq!(code, 0, "{out}");
    let parsed = Command::new("python3")
        .args([
            "-c",
            "import json,sys; d=json.load(sys.stdin); assert d['events']>0 and d['threads'] and d['by_kind'] and 'retakes' in d['sysmon'], d; print('ok')",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(out.as_bytes())?;
            c.wait_with_output()
        })
        .expect("python3");
    assert!(
        parsed.status.success(),
        "stats --json is not the JSON it should be:\n{out}"
    );

    let pf = dir.join("good.perfetto-trace");
    let (code, out, err) = rtcore(&["export", &p(&good), "--format", "perfetto", "-o", &p(&pf)]);
    assert_eq!(code, 0, "{out}{err}");
    let bytes = std::fs::read(&pf).unwrap();
    // A protobuf Trace: field 1 (packet), length-delimited, first.
    assert!(
        bytes.len() > 100 && bytes[0] == 0x0a,
        "not a Perfetto trace"
    );

    // Bytes flipped in the middle: the CRC (or the state machines) catch it.
    let mut bytes = std::fs::read(&good).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 4] {
        *b ^= 0x5a;
    }
    let corrupt = dir.join("corrupt.rtctrace");
    std::fs::write(&corrupt, &bytes).unwrap();
    let (code, out, _) = rtcore(&["check", &p(&corrupt)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(": inconsistent: ") && out.contains("offset 0x"),
        "{out}"
    );
    let (code, _, err) = rtcore(&["stats", &p(&corrupt)]);
    assert_eq!(code, 1, "{err}");
    let json_bad = dir.join("corrupt.json");
    let (code, _, err) = rtcore(&[
        "export",
        &p(&corrupt),
        "--format",
        "json",
        "-o",
        &p(&json_bad),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not a consistent trace"), "{err}");
    assert!(!json_bad.exists(), "a refused export left a file");

    // Cut short: the end marker is missing. Its complete generation is
    // checked (exit 3), and stats and export use it and say so (exit 3).
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.join("cut.rtctrace");
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    let (code, out, _) = rtcore(&["check", &p(&cut)]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains(": cut short after generation 1 at byte "),
        "{out}"
    );
    assert!(
        out.contains("complete generation(s) are consistent"),
        "{out}"
    );
    let (code, json, err) = rtcore(&["export", &p(&cut), "--format", "json", "-o", "-"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("exporting its 1 complete generation(s)"),
        "{err}"
    );
    assert!(json.starts_with('{'), "{json}");
    let (code, out, err) = rtcore(&["stats", &p(&cut), "--json"]);
    assert_eq!(code, 3, "{err}");
    assert!(out.contains("\"cut\":{\"after_generation\":1"), "{out}");
    assert!(
        err.contains("the statistics cover its 1 complete generation(s)"),
        "{err}"
    );
    // Cut inside its only generation: inconsistent (exit 1).
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (code, out, _) = rtcore(&["check", &p(&cut)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(": inconsistent: "), "{out}");
    let (code, _, err) = rtcore(&["stats", &p(&cut), "--json"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not a consistent trace"), "{err}");

    // A file that is not there.
    let (code, _, err) = rtcore(&["check", &p(&dir.join("missing"))]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot read"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stress_with_the_fault_injection_finds_an_inconsistency() {
    let (code, out, err) = rtcore(&["stress", "--inject", "--duration", "20"]);
    assert_eq!(code, 0, "no inconsistency found:\n{out}\n{err}");
    assert!(out.contains("first inconsistency: cycle"), "{out}");
    assert!(err.contains("WARNING: fault injection"), "{err}");
    if let Some(kept) = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("its trace: "))
    {
        let (code, check, _) = rtcore(&["check", kept]);
        assert_eq!(code, 1, "the kept trace is consistent: {check}");
        let _ = std::fs::remove_file(kept);
    }
    let (code, _, err) = rtcore(&["stress", "--threads", "0"]);
    assert_eq!(code, 2, "{err}");
}

/// `export` without `-o` writes beside the trace, named after it with the
/// format's extension, and says where.
#[test]
fn export_has_a_default_output_name_beside_the_trace() {
    let dir = temp_dir("export-default");
    let good = stress_trace(&dir);
    let trace = dir.join("run.rtctrace");
    std::fs::rename(&good, &trace).unwrap();
    let p = trace.to_str().unwrap();
    let (code, out, err) = rtcore(&["export", p]);
    assert_eq!(code, 0, "{out}{err}");
    let json = dir.join("run.json");
    assert!(out.contains(json.to_str().unwrap()), "{out}");
    let (ok, report) = check_json(&json, &[]);
    assert!(ok, "{report}");
    let (code, out, err) = rtcore(&["export", p, "--format", "perfetto"]);
    assert_eq!(code, 0, "{out}{err}");
    let bytes = std::fs::read(dir.join("run.perfetto-trace")).unwrap();
    assert!(
        bytes.len() > 100 && bytes[0] == 0x0a,
        "not a Perfetto trace"
    );
    assert!(trace.exists(), "the trace itself was replaced");
}

#[test]
fn help_shows_an_example_for_each_subcommand() {
    for sub in ["ranks", "demo", "check", "stats", "export", "stress"] {
        let (code, out, _) = rtcore(&[sub, "--help"]);
        assert_eq!(code, 0);
        assert!(out.contains("Example: rtcore"), "{sub} --help:\n{out}");
    }
}

/// Run rtcore with `setup` applied in the child before exec (file
/// descriptors, limits); returns (exit code or -signal, stdout, stderr).
fn rtcore_with(args: &[&str], setup: fn() -> std::io::Result<()>) -> (i32, String, String) {
    rtcore_in(args, &std::env::current_dir().unwrap(), setup)
}

/// Issue 13, row 1: `export -o` writes into a FIFO (and any non-regular
/// file) instead of replacing it with a regular file, and through a
/// symbolic link into the file it names, leaving the link a link.
#[test]
fn export_writes_into_fifos_and_through_links_without_replacing_them() {
    let dir = temp_dir("export-targets");
    let good = stress_trace(&dir);
    let p = |x: &std::path::Path| x.to_str().unwrap().to_string();

    let fifo = dir.join("out.fifo");
    let c = std::ffi::CString::new(p(&fifo)).unwrap();
    // SAFETY: a valid path string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // Read without blocking, so a broken export (one that replaced the
    // FIFO and never opened it) fails the test instead of hanging it.
    let rd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rtcore"))
        .args(["export", &p(&good), "--format", "json", "-o", &p(&fifo)])
        .env_remove("RTCORE_DEBUG")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        use std::io::Read;
        let mut buf = [0u8; 65536];
        match (&rd).read(&mut buf) {
            Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => {
                if let Some(st) = child.try_wait().unwrap() {
                    // Drain what the writer left before it exited.
                    while let Ok(n) = (&rd).read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        got.extend_from_slice(&buf[..n]);
                    }
                    break st;
                }
                assert!(std::time::Instant::now() < deadline, "export hung");
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    };
    assert!(status.success());
    assert!(
        got.starts_with(b"{\"displayTimeUnit\""),
        "the FIFO's reader got {} bytes",
        got.len()
    );
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo(),
        "the FIFO was replaced"
    );

    let real = dir.join("real.json");
    std::fs::write(&real, "old").unwrap();
    let link = dir.join("link.json");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let (code, out, err) = rtcore(&["export", &p(&good), "--format", "json", "-o", &p(&link)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        std::fs::read(&real)
            .unwrap()
            .starts_with(b"{\"displayTimeUnit\"")
    );
    let (code, _, err) = rtcore(&["export", &p(&good), "-o", &p(&dir)]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is a directory"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 13, row 9: export checks the header before reading on and reads
/// one generation at a time: a 2 GB sparse file is refused at once under a
/// 512 MB address-space limit (reading it whole first failed to allocate).
#[test]
fn export_refuses_a_huge_non_trace_within_bounded_memory() {
    let dir = temp_dir("export-huge");
    let big = dir.join("sparse.rtctrace");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    let out = dir.join("out.json");
    let t0 = std::time::Instant::now();
    let (code, _, err) = rtcore_with(
        &["export", big.to_str().unwrap(), "-o", out.to_str().unwrap()],
        || {
            let lim = libc::rlimit {
                rlim_cur: 512 << 20,
                rlim_max: 512 << 20,
            };
            // SAFETY: a valid struct.
            if unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        },
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not a consistent trace"), "{err}");
    assert!(t0.elapsed() < std::time::Duration::from_secs(20));
    assert!(!out.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 13, row 10: a closed pipe on standard output ends the command
/// quietly (status 141, nothing on stderr); a closed standard output is
/// status 2 with a message; never a panic (101).
#[test]
fn output_to_a_closed_pipe_or_a_closed_stdout_is_a_status_not_a_panic() {
    let dir = temp_dir("closed-stdout");
    let good = stress_trace(&dir);
    let g = good.to_str().unwrap();
    let runs: [&[&str]; 4] = [
        &["check", g],
        &["stats", g],
        &["stats", "--json", g],
        &["export", g, "-o", "-"],
    ];
    for args in runs {
        let (code, out, err) = rtcore_with(args, || {
            let mut fds = [0; 2];
            // SAFETY: plain pipe calls in the child before exec.
            unsafe {
                if libc::pipe(fds.as_mut_ptr()) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fds[0]);
                libc::dup2(fds[1], 1);
                libc::close(fds[1]);
            }
            Ok(())
        });
        assert_eq!(code, 141, "{args:?}: {out}{err}");
        assert!(err.is_empty(), "{args:?}: {err}");
        let (code, _, err) = rtcore_with(args, || {
            // SAFETY: closing a descriptor in the child before exec.
            unsafe { libc::close(1) };
            Ok(())
        });
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains("cannot write to standard output"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The subcommands `rtcore --help` lists (all but `help`).
fn subcommands() -> Vec<String> {
    let (code, top, _) = rtcore(&["--help"]);
    assert_eq!(code, 0);
    let subs: Vec<String> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|s| *s != "help")
        .map(str::to_string)
        .collect();
    assert!(subs.len() >= 7, "{top}");
    subs
}

/// Every subcommand's `--help` example runs as printed, from a directory
/// laid out like the checkout (examples/kv.ranks), with `rtcore` on PATH.
/// The demo runs first: the check, stats and export examples read its
/// trace. Its closing hints, with the command on PATH, say `rtcore`.
#[test]
fn every_help_example_runs_as_printed() {
    let dir = temp_dir("help-examples");
    std::fs::create_dir(dir.join("examples")).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/examples/kv.ranks"),
        dir.join("examples/kv.ranks"),
    )
    .unwrap();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_rtcore"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut subs = subcommands();
    subs.sort_by_key(|s| s != "demo");
    for sub in subs {
        let (code, help, _) = rtcore(&[&sub, "--help"]);
        assert_eq!(code, 0);
        let example = help
            .lines()
            .find_map(|l| l.strip_prefix("Example: "))
            .unwrap_or_else(|| panic!("{sub} --help has no example:\n{help}"));
        let out = Command::new("sh")
            .args(["-c", example])
            .current_dir(&dir)
            .env("PATH", &path)
            .env_remove("RTCORE_DEBUG")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "`{example}` failed ({:?}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        if sub == "demo" {
            assert!(
                stdout.contains("\n  rtcore check rtcore-demo/trace-1.rtctrace\n"),
                "{stdout}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A pipe whose reader has gone, on descriptor `fd` of the child.
fn closed_pipe_on(fd: i32) -> std::io::Result<()> {
    let mut fds = [0; 2];
    // SAFETY: plain pipe calls in the child before exec.
    unsafe {
        if libc::pipe(fds.as_mut_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        libc::close(fds[0]);
        libc::dup2(fds[1], fd);
        libc::close(fds[1]);
    }
    Ok(())
}

/// Issue 19: no subcommand panics or crashes when standard output or
/// standard error is a pipe nobody reads: each ends with its usual status
/// (141 when its output had nowhere to go), never 101 (a panic) or a
/// signal.
#[test]
fn no_subcommand_panics_on_a_closed_pipe() {
    let dir = temp_dir("closed-pipes");
    let good = stress_trace(&dir);
    let g = good.to_str().unwrap().to_string();
    let ranks = temp_file("pipes.ranks", "NONE < a;\n");
    let bad_ranks = temp_file("pipes-bad.ranks", "a < b;\n");
    let demo_dir = dir.join("demo");
    std::fs::create_dir(&demo_dir).unwrap();
    let runs: Vec<Vec<String>> = vec![
        vec!["--help".into()],
        vec!["--version".into()],
        vec!["ranks".into(), ranks],
        vec!["ranks".into(), bad_ranks],
        vec!["check".into(), g.clone()],
        vec!["check".into(), "/nonexistent".into()],
        vec!["stats".into(), g.clone()],
        vec!["export".into(), g.clone(), "-o".into(), "-".into()],
        vec!["export".into(), "/nonexistent".into()],
        vec!["stress".into(), "--cycles".into(), "20".into()],
        vec!["run".into(), "--".into(), "/bin/true".into()],
        vec!["run".into(), "--".into(), "/nonexistent-program".into()],
        vec!["demo".into()],
        vec!["no-such-subcommand".into()],
    ];
    for args in &runs {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        for (fd, setup) in [
            (1, (|| closed_pipe_on(1)) as fn() -> std::io::Result<()>),
            (2, || closed_pipe_on(2)),
        ] {
            let (code, out, err) = rtcore_in(&args, &demo_dir, setup);
            assert!(
                code >= 0 && code != 101,
                "{args:?} with fd {fd} a closed pipe: status {code}\n{out}{err}"
            );
            assert!(!err.contains("panicked"), "{args:?}: {err}");
            // Those that succeed and write to standard output: the
            // reader's absence is their status.
            let writes_out = matches!(
                args[..],
                ["check", g2] | ["stats", g2] if g2 == g
            ) || args == ["demo"]
                || args[0] == "ranks" && !args[1].ends_with("pipes-bad.ranks");
            if fd == 1 && writes_out {
                assert_eq!(code, 141, "{args:?}: {err}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `rtcore_with` run in `dir`.
fn rtcore_in(
    args: &[&str],
    dir: &std::path::Path,
    setup: fn() -> std::io::Result<()>,
) -> (i32, String, String) {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let mut c = Command::new(env!("CARGO_BIN_EXE_rtcore"));
    c.args(args).current_dir(dir).env_remove("RTCORE_DEBUG");
    // SAFETY: `setup` only makes async-signal-safe calls (pipe, close,
    // dup2, setrlimit).
    unsafe { c.pre_exec(setup) };
    let out = c.output().expect("run rtcore");
    (
        out.status
            .code()
            .unwrap_or_else(|| -out.status.signal().unwrap_or(0)),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `child` (an `rtcore check`) succeeded and found its trace consistent.
fn says_consistent(child: std::process::Child) {
    let o = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains(": consistent: "),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Every subcommand that reads a file waits for a FIFO's writer, at most
/// 5 s: one nobody writes to is status 2 after that (never a hang); one
/// somebody writes to, even late, is read as a stream; and a check may
/// start before the traced program, which needs a reader to open the FIFO.
#[test]
fn a_fifo_nobody_writes_is_refused_after_a_bounded_wait_and_a_written_one_is_read() {
    let dir = temp_dir("fifo-input");
    let good = stress_trace(&dir);
    let fifo = dir.join("in.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let f = fifo.to_str().unwrap();
    let spawn = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_rtcore"))
            .args(args)
            .env_remove("RTCORE_DEBUG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Nobody writes: all four at once (each waits its 5 s).
    let t0 = std::time::Instant::now();
    let waiting: Vec<_> = [
        vec!["check", f],
        vec!["stats", f],
        vec!["export", f, "-o", "-"],
        vec!["ranks", f],
    ]
    .into_iter()
    .map(|args| (spawn(&args), args))
    .collect();
    for (child, args) in waiting {
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("a FIFO nobody wrote to within 5 s"),
            "{args:?}: {err}"
        );
    }
    let waited = t0.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(4900)
            && waited < std::time::Duration::from_secs(60),
        "{waited:?}"
    );
    // A writer that comes late (after the check opened the FIFO): read.
    let child = spawn(&["check", f]);
    let (wf, trace) = (fifo.clone(), std::fs::read(&good).unwrap());
    let writer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        // If the check is gone, this fails (EPIPE) rather than blocking.
        let mut w = std::fs::OpenOptions::new().write(true).open(&wf)?;
        std::io::Write::write_all(&mut w, &trace)
    });
    says_consistent(child);
    writer.join().unwrap().unwrap();
    // The check first, then a traced program writing into the FIFO.
    let child = spawn(&["check", f]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (code, out, err) = rtcore(&["run", "--trace", f, "--", "/bin/true"]);
    assert_eq!(code, 0, "{out}{err}");
    says_consistent(child);
    let _ = std::fs::remove_dir_all(&dir);
}
