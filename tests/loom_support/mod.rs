//! Shared by the loom models: running a deliberately broken variant in a
//! child process (loom aborts the process on the deadlock it finds, so it
//! cannot be caught in-process) and telling whether the model caught it.
#![allow(dead_code)]

/// Run this binary with `--broken VARIANT`; true when the child failed and
/// its output names one of `expect` (printed, or the output when not).
pub fn broken_caught(variant: &str, expect: &[&str]) -> bool {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--broken", variant])
        .output()
        .expect("run the model child");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let hit = expect.iter().find(|e| text.contains(*e));
    if let Some(h) = hit {
        println!("  broken {variant}: the model reported \"{h}\"");
    }
    let caught = !out.status.success() && hit.is_some();
    if !caught {
        eprintln!("broken variant '{variant}' not caught; output:\n{text}");
    }
    caught
}
