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
    assert_eq!(code, 1);
    assert!(err.contains("cannot read rank file"), "{err}");
}

#[test]
fn demo_runs_end_to_end_in_a_fresh_directory() {
    let dir = temp_dir("demo");
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
    // Every trace it wrote is consistent, and its JSON opens as a clean
    // timeline.
    let demo = dir.join("rtcore-demo");
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
    assert!(traces >= 3, "{traces} traces in {}", demo.display());
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
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let mut c = Command::new(env!("CARGO_BIN_EXE_rtcore"));
    c.args(args).env_remove("RTCORE_DEBUG");
    // SAFETY: `setup` only makes async-signal-safe calls (close, dup2,
    // setrlimit).
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
