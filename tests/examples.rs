#![cfg(not(loom))]
//! The examples the README points to build and run as their comments say:
//! `examples/quickstart.c` and `examples/kv.c` with gcc against the built
//! library, `examples/quickstart.cpp` with g++ -std=c++17 (warnings as
//! errors), `examples/trace.py` and `examples/quickstart.py` with Python.
//! Each runs in a fresh temporary directory (the traces they write land
//! there) and must exit 0.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rtcore-example-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.env_remove("RTCORE_DEBUG").output().expect(what);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

fn build_c(example: &str, dir: &Path) -> PathBuf {
    let (compiler, std) = if example.ends_with(".cpp") {
        ("g++", "-std=c++17")
    } else {
        ("gcc", "-std=gnu11")
    };
    let lib = common::lib_dir();
    let exe = dir.join(example.replace('.', "-"));
    run(
        Command::new(compiler)
            .args([std, "-O2", "-Wall", "-Wextra", "-Werror", "-I"])
            .arg(common::manifest_dir().join("include"))
            .arg(common::manifest_dir().join("examples").join(example))
            .arg("-L")
            .arg(lib)
            .args([
                "-lrtcore",
                &format!("-Wl,-rpath,{}", lib.display()),
                "-lpthread",
                "-o",
            ])
            .arg(&exe),
        &format!("gcc {example}"),
    );
    exe
}

#[test]
fn kv_c_serves_traces_and_reports_the_inversion() {
    let dir = temp_dir("kv");
    let exe = build_c("kv.c", &dir);
    // Laid out as the checkout, where the README runs it.
    std::fs::create_dir(dir.join("examples")).unwrap();
    std::fs::copy(
        common::manifest_dir().join("examples/kv.ranks"),
        dir.join("examples/kv.ranks"),
    )
    .unwrap();
    let out = run(Command::new(&exe).current_dir(&dir), "examples/kv.c");
    assert!(
        out.contains("3 of 3 traces consistent; 8 order violations"),
        "{out}"
    );
    assert!(
        out.contains("forbidden by examples/kv.ranks:5: index < shard"),
        "{out}"
    );
    assert!(dir.join("kv-trace-2.rtctrace").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn quickstart_cpp_reports_one_violation_and_traces() {
    let dir = temp_dir("quickstart-cpp");
    let exe = build_c("quickstart.cpp", &dir);
    let out = run(
        Command::new(&exe).current_dir(&dir),
        "examples/quickstart.cpp",
    );
    assert!(
        out.contains("order violations seen: 1; 15 turns; quickstart-cpp.rtctrace: consistent"),
        "{out}"
    );
    assert!(
        out.contains("unlocking a mutex not held: RTC_ERR_NOT_OWNER: rtc_mutex_unlock: "),
        "{out}"
    );
    assert!(
        out.contains("forbidden by bank.ranks:2: accounts < audit"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn quickstart_c_reports_one_violation() {
    let dir = temp_dir("quickstart");
    let exe = build_c("quickstart.c", &dir);
    let out = run(
        Command::new(&exe).current_dir(&dir),
        "examples/quickstart.c",
    );
    assert!(out.contains("order violations seen: 1"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn python(script: &str, dir: &Path) -> String {
    run(
        Command::new("python3")
            .arg(common::manifest_dir().join("examples").join(script))
            .current_dir(dir)
            .env("RTCORE_LIB", common::lib_dir().join("librtcore.so"))
            .env("PYTHONPATH", common::manifest_dir().join("python")),
        &format!("examples/{script}"),
    )
}

#[test]
fn trace_py_serves_traces_and_reports_the_inversion() {
    let dir = temp_dir("trace-py");
    let out = python("trace.py", &dir);
    assert!(
        out.contains("3 of 3 traces consistent; 4 order violations"),
        "{out}"
    );
    assert!(dir.join("py-trace-2.rtctrace").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn quickstart_py_runs() {
    let dir = temp_dir("quickstart-py");
    let out = python("quickstart.py", &dir);
    assert!(out.contains("forbidden by bank.ranks"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The README's `rtcore run` recipe: examples/abba.c, compiled as it says,
/// run under the command; its inversion is reported with both variables'
/// names and the program still finishes.
#[test]
fn abba_c_under_rtcore_run_reports_the_inversion() {
    let dir = temp_dir("abba");
    let exe = dir.join("abba");
    run(
        Command::new("gcc")
            .args(["-g", "-pthread"])
            .arg(common::manifest_dir().join("examples/abba.c"))
            .arg("-o")
            .arg(&exe),
        "gcc examples/abba.c",
    );
    common::lib_dir();
    let out = run(
        Command::new(env!("CARGO_BIN_EXE_rtcore"))
            .args(["run", "--"])
            .arg(&exe)
            .env_remove("LD_PRELOAD"),
        "rtcore run -- abba",
    );
    assert!(
        out.contains("lock order violation (learned order)"),
        "{out}"
    );
    assert!(
        out.contains("['accounts', first locked at transfer (abba.c:18)] then ['audit_log', first locked at transfer (abba.c:19)]"),
        "{out}"
    );
    assert!(out.contains("abba: finished"), "{out}");
    assert!(out.contains("1 order violation(s)"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
