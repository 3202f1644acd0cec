#![cfg(not(loom))]
//! The `rtcore` command: `ranks` on good and bad files; `check` and `export`
//! on a good trace, a corrupted one (bytes flipped) and a truncated one
//! (the JSON parsed back by tests/tools/check_trace_json.py); `stress` with
//! and without the fault injection; the demo end to end (exit status and
//! the summary it promises).

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

    // Cut short: the end marker is missing.
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.join("cut.rtctrace");
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    let (code, out, _) = rtcore(&["check", &p(&cut)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(": inconsistent: "), "{out}");
    let (code, _, err) = rtcore(&["export", &p(&cut), "--format", "json", "-o", "-"]);
    assert_eq!(code, 1, "{err}");
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

#[test]
fn help_shows_an_example_for_each_subcommand() {
    for sub in ["ranks", "demo", "check", "stats", "export", "stress"] {
        let (code, out, _) = rtcore(&[sub, "--help"]);
        assert_eq!(code, 0);
        assert!(out.contains("Example: rtcore"), "{sub} --help:\n{out}");
    }
}
