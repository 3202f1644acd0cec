#![cfg(not(loom))]
//! Runs the Python package's unittest suite against the freshly built
//! library, one test per module of python/tests. A skipped test fails the run: nothing here may be optional.

mod common;

use std::process::Command;
use std::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());

/// Run one module of python/tests with unittest; the test is named after
/// it, so a failure names the module (and unittest names the case).
fn run_module(module: &str) {
    // One at a time, as the suite always ran: several programs hold time
    // bounds that two at once on a 2-core machine would stretch.
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lib = common::lib_dir().join("librtcore.so");
    let py = common::manifest_dir().join("python");
    let out = Command::new("python3")
        .args(["-m", "unittest", "-v", &format!("tests.{module}")])
        .current_dir(&py)
        .env("RTCORE_LIB", &lib)
        .env_remove("RTCORE_DEBUG")
        .output()
        .expect("run python3 (Python 3 is required for the tests)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{stderr}");
    assert!(out.status.success(), "python/tests/{module}.py failed");
    let ran = stderr
        .lines()
        .find_map(|l| l.strip_prefix("Ran ").and_then(|r| r.split(' ').next()))
        .and_then(|n| n.parse::<u32>().ok())
        .expect("unittest printed no 'Ran N tests' line");
    assert!(ran > 0, "no test ran in python/tests/{module}.py");
    assert!(
        !stderr.contains("skipped"),
        "a test of python/tests/{module}.py was skipped; skips are failures here"
    );
}

macro_rules! python_modules {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_module(stringify!($name));
            }
        )*
        const MODULES: &[&str] = &[$(stringify!($name)),*];
    };
}

python_modules!(
    test_api,
    test_cond,
    test_lifecycle,
    test_lockrank,
    test_mutex,
    test_raw,
    test_reports,
    test_rwlock,
    test_sysmon,
    test_trace,
    test_world,
);

/// Every python/tests/test_*.py has its test above.
#[test]
fn every_python_module_is_listed() {
    let mut found: Vec<String> = std::fs::read_dir(common::manifest_dir().join("python/tests"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("test_") && n.ends_with(".py"))
        .map(|n| n.trim_end_matches(".py").to_string())
        .collect();
    found.sort();
    let mut listed: Vec<String> = MODULES.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(
        found, listed,
        "tests/python.rs's list differs from python/tests/"
    );
}
