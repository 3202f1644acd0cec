#![cfg(not(loom))]
//! Runs the Python package's unittest suite against the freshly built
//! library. A skipped test fails the run: nothing here may be optional.

mod common;

use std::process::Command;

#[test]
fn python_suite_passes_with_no_skips() {
    let lib = common::lib_dir().join("librtcore.so");
    let py = common::manifest_dir().join("python");
    let out = Command::new("python3")
        .args(["-m", "unittest", "discover", "-s", "tests", "-t", "."])
        .current_dir(&py)
        .env("RTCORE_LIB", &lib)
        .env_remove("RTCORE_DEBUG")
        .output()
        .expect("run python3 (Python 3 is required for the tests)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{stderr}");
    assert!(out.status.success(), "Python tests failed");
    let ran = stderr
        .lines()
        .find_map(|l| l.strip_prefix("Ran ").and_then(|r| r.split(' ').next()))
        .and_then(|n| n.parse::<u32>().ok())
        .expect("unittest printed no 'Ran N tests' line");
    assert!(ran > 0, "no Python test ran");
    assert!(
        !stderr.contains("skipped"),
        "a Python test was skipped; skips are failures here"
    );
}
