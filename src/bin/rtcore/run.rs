//! `rtcore run -- PROGRAM [ARGS...]`: run an unmodified, dynamically linked
//! program with `librtcore_preload.so` preloaded (lock-order checking of
//! its pthread mutexes, docs/preload.md), pass its exit status through, and
//! print the interposition's summary at the end.
//!
//! The preload library writes its summary at exit into a private
//! directory this command makes (`RTCORE_PRELOAD_SUMMARY`), one file per
//! process (`summary-PID`: a program that forks or runs other programs
//! under the same `LD_PRELOAD` leaves one each); the program's own is
//! printed, the others counted.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};

/// The preload library's file name.
const PRELOAD: &str = "librtcore_preload.so";

pub struct Options {
    pub mode: String,
    pub flight_recorder: Option<PathBuf>,
    /// Trace the whole run into this file (`--trace`).
    pub trace: Option<PathBuf>,
    /// Check against this rank file (`--ranks`).
    pub ranks: Option<PathBuf>,
    /// Write the learned order here (`--learn-ranks`).
    pub learn_ranks: Option<PathBuf>,
    pub program: Vec<OsString>,
}

pub fn main(o: Options) -> ExitCode {
    match run(o) {
        Ok(code) => code,
        Err(msg) => {
            say_err!("rtcore run: {msg}");
            ExitCode::from(2)
        }
    }
}

/// Where the preload library is: `RTCORE_PRELOAD` if set, else beside
/// this command, or in `../lib` (an installed layout).
fn find_preload() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("RTCORE_PRELOAD") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "RTCORE_PRELOAD names {}, which is not a file",
                p.display()
            ))
        };
    }
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find this command's path: {e}"))?;
    let dir = exe.parent().unwrap_or(Path::new("/"));
    for cand in [dir.join(PRELOAD), dir.join("../lib").join(PRELOAD)] {
        if cand.is_file() {
            return Ok(cand);
        }
    }
    Err(format!(
        "{PRELOAD} is not beside {} nor in ../lib (build it with `cargo build`, which compiles preload/rtcore_preload.c with a C compiler; or set RTCORE_PRELOAD)",
        exe.display()
    ))
}

/// The program's path: as given if it has a '/', else looked up in PATH.
fn resolve(program: &OsStr) -> Result<PathBuf, String> {
    let p = Path::new(program);
    if program.as_encoded_bytes().contains(&b'/') {
        return Ok(p.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let cand = dir.join(p);
        if cand.is_file()
            && std::fs::metadata(&cand).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
        {
            return Ok(cand);
        }
    }
    Err(format!("{}: not found in PATH", p.display()))
}

/// Refuse what a preload library cannot reach: a static program (no
/// program interpreter) or a set-user/group-id one (the loader ignores
/// LD_PRELOAD there). Scripts (`#!`) run their interpreter, which is
/// checked when it starts.
fn check_preloadable(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{}: not a regular file", path.display()));
    }
    if meta.permissions().mode() & 0o6000 != 0 {
        return Err(format!(
            "{} is set-user-ID or set-group-ID: the loader ignores LD_PRELOAD for it, so it would run unchecked; not run",
            path.display()
        ));
    }
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(1 << 16).read_to_end(&mut head))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if !head.starts_with(b"\x7fELF") {
        return Ok(());
    }
    match elf_has_interpreter(&head) {
        Some(true) => Ok(()),
        Some(false) => Err(format!(
            "{} is statically linked: no preload library can be loaded into it, so it would run unchecked; not run",
            path.display()
        )),
        None => Err(format!(
            "{}: an ELF file this command cannot read (only 64-bit little-endian is understood)",
            path.display()
        )),
    }
}

/// Does a 64-bit little-endian ELF file have a PT_INTERP program header?
/// (None: not such a file, or its headers lie beyond `head`.)
fn elf_has_interpreter(head: &[u8]) -> Option<bool> {
    if head.get(4) != Some(&2) || head.get(5) != Some(&1) {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(head.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(head.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(head.get(o..o + 8)?.try_into().ok()?));
    let phoff = usize::try_from(u64_at(32)?).ok()?;
    let phentsize = usize::from(u16_at(54)?);
    let phnum = usize::from(u16_at(56)?);
    if phentsize < 4 {
        return None;
    }
    for i in 0..phnum {
        const PT_INTERP: u32 = 3;
        if u32_at(phoff.checked_add(i.checked_mul(phentsize)?)?)? == PT_INTERP {
            return Some(true);
        }
    }
    Some(false)
}

/// A private directory for the summaries (removed at the end).
fn summary_dir() -> Result<PathBuf, String> {
    let base = std::env::temp_dir();
    for i in 0..100u32 {
        let d = base.join(format!("rtcore-run-{}-{i}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&d) {
            Ok(()) => return Ok(d),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(format!(
                    "cannot make a directory in {}: {e}",
                    base.display()
                ));
            }
        }
    }
    Err(format!("cannot make a directory in {}", base.display()))
}

fn run(o: Options) -> Result<ExitCode, String> {
    let Some(program) = o.program.first() else {
        return Err("no program given (rtcore run -- PROGRAM [ARGS...])".into());
    };
    let preload = find_preload()?;
    let path = resolve(program)?;
    check_preloadable(&path)?;
    if o.trace.is_some() && o.flight_recorder.is_some() {
        return Err(
            "--trace and --flight-recorder each record a trace, and a process records one at a time: choose one".into(),
        );
    }
    let trace = match &o.trace {
        Some(t) => Some(absolute(t)?),
        None => None,
    };
    let ranks = match &o.ranks {
        Some(f) => Some(check_rank_file(f)?),
        None => None,
    };
    if let Some(out) = &o.learn_ranks {
        check_output(out)?;
    }
    let dir = summary_dir()?;
    let mut ld_preload = OsString::from(&preload);
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|v| !v.is_empty()) {
        ld_preload.push(":");
        ld_preload.push(old);
    }
    let mut debug = OsString::from(format!("lockrank={}", o.mode));
    if let Some(old) = std::env::var_os("RTCORE_DEBUG").filter(|v| !v.is_empty()) {
        // The user's own settings win where they repeat ours.
        debug = OsString::from(format!("lockrank={},", o.mode));
        debug.push(old);
    }
    let mut cmd = std::process::Command::new(&path);
    cmd.arg0(program)
        .args(&o.program[1..])
        .env("LD_PRELOAD", &ld_preload)
        .env("RTCORE_DEBUG", &debug)
        .env("RTCORE_PRELOAD_SUMMARY", &dir);
    if let Some(fr) = &o.flight_recorder {
        cmd.env("RTCORE_FLIGHT_RECORDER", fr);
    }
    match &trace {
        Some(t) => cmd.env("RTCORE_TRACE", t),
        None => cmd.env_remove("RTCORE_TRACE"),
    };
    match &ranks {
        Some(f) => cmd.env("RTCORE_PRELOAD_RANKS", f),
        None => cmd.env_remove("RTCORE_PRELOAD_RANKS"),
    };
    if o.learn_ranks.is_some() {
        cmd.env("RTCORE_PRELOAD_LEARN", "1");
    } else {
        cmd.env_remove("RTCORE_PRELOAD_LEARN");
    }
    // Ctrl-C and Ctrl-\ reach the program (same process group); this
    // command waits for it to end instead of dying first. SIGTERM and
    // SIGHUP sent to this command are passed on to the program (a service
    // manager, or `kill`, stops the program, not just its wrapper).
    // SAFETY: setting dispositions (ignore; a handler that only calls
    // kill(2), async-signal-safe).
    let old = unsafe {
        (
            libc::signal(libc::SIGINT, libc::SIG_IGN),
            libc::signal(libc::SIGQUIT, libc::SIG_IGN),
            libc::signal(libc::SIGTERM, forward as *const () as libc::sighandler_t),
            libc::signal(libc::SIGHUP, forward as *const () as libc::sighandler_t),
        )
    };
    // SIGTERM and SIGHUP stay blocked until the program's pid is known (a
    // signal sent once the program runs, before `spawn` returns here, is
    // passed on then, not lost). The program gets them unblocked (a blocked
    // mask is inherited across exec).
    // SAFETY: plain signal-mask calls on a local set.
    let mut term: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut term);
        libc::sigaddset(&mut term, libc::SIGTERM);
        libc::sigaddset(&mut term, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &term, std::ptr::null_mut());
    }
    let child_term = term;
    // SAFETY: the closure runs in the child between fork and exec and makes
    // one async-signal-safe call.
    unsafe {
        cmd.pre_exec(move || {
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &child_term, std::ptr::null_mut());
            Ok(())
        });
    }
    let spawned = cmd.spawn();
    let status = spawned.and_then(|mut c| {
        let pid = c.id();
        CHILD.store(pid as i32, Ordering::SeqCst);
        // SAFETY: as above.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &term, std::ptr::null_mut()) };
        c.wait().map(|s| (pid, s))
    });
    // SAFETY: as above (a failed spawn left them blocked).
    unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &term, std::ptr::null_mut()) };
    CHILD.store(0, Ordering::SeqCst);
    // SAFETY: restoring the dispositions saved above.
    unsafe {
        libc::signal(libc::SIGINT, old.0);
        libc::signal(libc::SIGQUIT, old.1);
        libc::signal(libc::SIGTERM, old.2);
        libc::signal(libc::SIGHUP, old.3);
    }
    let (pid, status) = match status {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(format!("cannot run {}: {e}", path.display()));
        }
    };
    print_summaries(&dir, pid);
    let learned = match &o.learn_ranks {
        Some(out) => save_learned(&dir, pid, out),
        None => Ok(()),
    };
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = learned {
        say_err!("rtcore run: {e}");
    }
    let name = program.to_string_lossy();
    Ok(match (status.code(), status.signal()) {
        (Some(c), _) => ExitCode::from(c as u8),
        (None, Some(sig)) => {
            say_err!("rtcore run: {name} was killed by signal {sig}");
            ExitCode::from((128 + sig.clamp(0, 127)) as u8)
        }
        _ => ExitCode::from(1),
    })
}

/// The program's pid while it runs (0: none), for `forward`.
static CHILD: AtomicI32 = AtomicI32::new(0);

/// Pass a termination signal on to the program.
extern "C" fn forward(sig: libc::c_int) {
    let pid = CHILD.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// A rank file `--ranks` can use: read and checked here (with rtcore's own
/// parser), so a bad one is refused before the program runs. Its absolute
/// path, for the program (which may change directory).
fn check_rank_file(f: &Path) -> Result<PathBuf, String> {
    // The program reads the file again: only a regular file reads the same
    // twice (a FIFO would be drained by this first read).
    let meta = std::fs::metadata(f).map_err(|e| format!("--ranks {}: {e}", f.display()))?;
    if !meta.is_file() {
        return Err(format!(
            "--ranks {}: not a regular file (the program reads it again after this check)",
            f.display()
        ));
    }
    let src = rtcore::ranks::read_file(&f.to_string_lossy()).map_err(|e| format!("--ranks {e}"))?;
    let table = rtcore::ranks::table::RankTable::new();
    table
        .load(&src, &f.to_string_lossy())
        .map_err(|e| format!("--ranks: {e}"))?;
    std::fs::canonicalize(f).map_err(|e| format!("--ranks {}: {e}", f.display()))
}

/// `--trace FILE`'s absolute path (the program may change directory); its
/// directory must exist, and it may not be a directory.
fn absolute(f: &Path) -> Result<PathBuf, String> {
    if f.is_dir() {
        return Err(format!("--trace {}: is a directory", f.display()));
    }
    let dir = f
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = std::fs::canonicalize(dir).map_err(|e| format!("--trace {}: {e}", f.display()))?;
    Ok(dir.join(
        f.file_name()
            .ok_or_else(|| format!("--trace {}: not a file name", f.display()))?,
    ))
}

/// `--learn-ranks OUT` must be a file that can be written (never a
/// directory), checked before the program runs.
fn check_output(out: &Path) -> Result<(), String> {
    if out.is_dir() {
        return Err(format!("--learn-ranks {}: is a directory", out.display()));
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(format!(
            "--learn-ranks {}: {} is not a directory",
            out.display(),
            parent.display()
        ));
    }
    Ok(())
}

/// Put the program's learned ranks in `out`: written beside it under a
/// temporary name, then renamed into place (a reader never sees half a
/// file; a file that is not regular, such as a FIFO, is written into
/// instead of replaced).
fn save_learned(dir: &Path, pid: u32, out: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(dir.join(format!("ranks-{pid}"))).map_err(|_| {
        "the program left no learned ranks (it ended without running its exit handlers)".to_string()
    })?;
    let regular_or_new = std::fs::metadata(out).map_or(true, |m| m.is_file());
    if !regular_or_new {
        return std::fs::write(out, &text)
            .map_err(|e| format!("--learn-ranks {}: {e}", out.display()));
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = parent.join(format!(
        ".{}.rtcore-{}",
        out.file_name()
            .map_or("ranks".into(), |n| n.to_string_lossy().into_owned()),
        std::process::id()
    ));
    std::fs::write(&tmp, &text)
        .and_then(|()| std::fs::rename(&tmp, out))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("--learn-ranks {}: {e}", out.display())
        })?;
    let ranks = text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains(" < "))
        .count();
    say_err!(
        "rtcore run: learned order written to {} ({ranks} rank(s)); check later runs with --ranks {}",
        out.display(),
        out.display()
    );
    Ok(())
}

/// Print the program's summary and say how many other processes left one.
fn print_summaries(dir: &Path, pid: u32) {
    let mine = dir.join(format!("summary-{pid}"));
    match std::fs::read_to_string(&mine) {
        Ok(text) => crate::output::stderr_write(&text),
        Err(_) => say_err!(
            "rtcore run: no summary from the program (it ended without running its exit handlers, or its libraries never loaded the preload library)"
        ),
    }
    let others = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    e.path() != mine && e.file_name().to_string_lossy().starts_with("summary-")
                })
                .count()
        })
        .unwrap_or(0);
    if others > 0 {
        say_err!(
            "rtcore run: {others} other process(es) it started were checked too (their reports are above)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_and_dynamic_elf_files_are_told_apart() {
        let sh = std::fs::read("/bin/sh").unwrap();
        assert_eq!(elf_has_interpreter(&sh), Some(true));
        // A made-up 64-bit header with one PT_LOAD and no PT_INTERP.
        let mut f = vec![0u8; 64 + 56];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&1u16.to_le_bytes());
        f[64..68].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(elf_has_interpreter(&f), Some(false));
        f[64..68].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(elf_has_interpreter(&f), Some(true));
        // Headers past the end, or a 32-bit file: unknown.
        f[56..58].copy_from_slice(&9u16.to_le_bytes());
        f[64..68].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(elf_has_interpreter(&f), None);
        f[4] = 1;
        assert_eq!(elf_has_interpreter(&f), None);
    }
}
