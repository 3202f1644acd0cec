//! Where the command's output goes: standard output, checked on every
//! write, and export files written without ever replacing what is not a
//! regular file.
//!
//! Standard output: a reader that went away (EPIPE, as `rtcore stats F |
//! head -1` does) ends the command quietly with status 141, what a shell
//! reports for a tool ended by SIGPIPE; any other write error (a closed
//! descriptor, a full disk) is exit status 2 with a message. Never a panic.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The status for a reader that went away: 128 + SIGPIPE.
pub const EXIT_PIPE: i32 = 141;

/// Standard output was closed when the command started.
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// At start-up (what Rust's own start-up would have done): SIGPIPE
/// ignored, so a write to a closed pipe fails with EPIPE instead of killing
/// the process; each of fd 0, 1 and 2 that is closed gets /dev/null, so no
/// file the command opens later takes its number. A closed standard output
/// is remembered: writing to it is then an error (EBADF).
pub fn claim_standard_fds() {
    // SAFETY: plain calls on descriptors 0-2 at start-up, one thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        for fd in 0..3 {
            if libc::fcntl(fd, libc::F_GETFD) == -1 {
                if fd == 1 {
                    STDOUT_CLOSED.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                if null >= 0 && null != fd {
                    libc::dup2(null, fd);
                    libc::close(null);
                }
            }
        }
    }
}

/// Standard output, or the error a closed one gives.
pub fn stdout() -> io::Result<io::Stdout> {
    if STDOUT_CLOSED.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    Ok(io::stdout())
}

/// End the process for a failed write to standard output.
pub fn stdout_failed(e: &io::Error) -> ! {
    if e.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(EXIT_PIPE);
    }
    let _ = writeln!(io::stderr(), "rtcore: cannot write to standard output: {e}");
    std::process::exit(2);
}

/// Write `text` to standard output and flush it, or end the process as
/// `stdout_failed` says.
pub fn stdout_write(text: &str) {
    let r = stdout().and_then(|o| {
        let mut out = o.lock();
        out.write_all(text.as_bytes())?;
        out.flush()
    });
    if let Err(e) = r {
        stdout_failed(&e);
    }
}

/// `println!` for the command: a failed write ends the process with a
/// status, never a panic.
macro_rules! say {
    () => { $crate::output::stdout_write("\n") };
    ($($arg:tt)*) => { $crate::output::stdout_write(&format!("{}\n", format_args!($($arg)*))) };
}

/// `print!` for the command.
macro_rules! say_raw {
    ($($arg:tt)*) => { $crate::output::stdout_write(&format!($($arg)*)) };
}

/// `say_err!` for the command: a message on standard error, or nothing
/// when standard error cannot take it (closed, or a pipe whose reader went
/// away): the exit status still says what happened. Never a panic
/// (`say_err!` panics on a failed write).
macro_rules! say_err {
    ($($arg:tt)*) => { $crate::output::stderr_write(&format!("{}\n", format_args!($($arg)*))) };
}

/// Write `text` to standard error, ignoring a failure (see `say_err!`).
pub fn stderr_write(text: &str) {
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

/// How an export reaches the path it was given.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    /// A regular file (existing, new, or reached through a symbolic link):
    /// written beside it under a temporary name, then renamed over it, so
    /// a failed export never leaves half a file under the name. `path` is
    /// the real file (a symbolic link stays a link).
    Replace { path: PathBuf },
    /// Anything else (a FIFO, a device, a dangling link's target): opened
    /// for writing and written into, never replaced.
    Direct { path: PathBuf },
}

/// Decide how to write to `path`; a directory is an error.
pub fn target(path: &Path) -> io::Result<Target> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(Target::Replace {
            path: std::fs::canonicalize(path)?,
        }),
        Ok(m) if m.is_dir() => Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "is a directory",
        )),
        Ok(_) => Ok(Target::Direct {
            path: path.to_path_buf(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if std::fs::symlink_metadata(path).is_ok() {
                // A link to nothing: opening it creates its target.
                Ok(Target::Direct {
                    path: path.to_path_buf(),
                })
            } else {
                Ok(Target::Replace {
                    path: path.to_path_buf(),
                })
            }
        }
        Err(e) => Err(e),
    }
}

/// Write an export to `path` as `target` decides, with `write` producing
/// the bytes.
pub fn write_to_path<T>(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<T>,
) -> io::Result<T> {
    match target(path)? {
        Target::Direct { path } => {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)?;
            let mut w = io::BufWriter::new(f);
            let v = write(&mut w)?;
            w.flush()?;
            Ok(v)
        }
        Target::Replace { path } => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "export".into());
            // Created exclusively: never an existing file of the user's.
            let (tmp, f) = (0..100)
                .find_map(|i| {
                    let tmp = dir.join(format!(".{name}.tmp-{}-{i}", std::process::id()));
                    match std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&tmp)
                    {
                        Ok(f) => Some(Ok((tmp, f))),
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => None,
                        Err(e) => Some(Err(e)),
                    }
                })
                .unwrap_or_else(|| {
                    Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "no free temporary name beside the output",
                    ))
                })?;
            let r = (|| {
                // An existing file keeps its permissions.
                if let Ok(m) = std::fs::metadata(&path) {
                    f.set_permissions(m.permissions())?;
                }
                let mut w = io::BufWriter::new(&f);
                let v = write(&mut w)?;
                w.flush()?;
                drop(w);
                std::fs::rename(&tmp, &path)?;
                Ok(v)
            })();
            if r.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let dir = std::env::temp_dir().join(format!("rtcore-output-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let real = dir.join("real");
        std::fs::write(&real, "old").unwrap();
        let link = dir.join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let dangling = dir.join("dangling");
        std::os::unix::fs::symlink(dir.join("nowhere"), &dangling).unwrap();
        let canon = std::fs::canonicalize(&real).unwrap();
        assert_eq!(
            target(&real).unwrap(),
            Target::Replace {
                path: canon.clone()
            }
        );
        assert_eq!(target(&link).unwrap(), Target::Replace { path: canon });
        assert_eq!(
            target(&dangling).unwrap(),
            Target::Direct {
                path: dangling.clone()
            }
        );
        assert!(target(&dir).is_err());
        let new = dir.join("new");
        assert_eq!(target(&new).unwrap(), Target::Replace { path: new.clone() });
        // Through the link: the file changes, the link stays a link.
        write_to_path(&link, |w| w.write_all(b"new")).unwrap();
        assert_eq!(std::fs::read(&real).unwrap(), b"new");
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        // A failed write leaves the old file and no temporary.
        let r = write_to_path(&real, |w| {
            w.write_all(b"half")?;
            Err::<(), _>(io::Error::other("boom"))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read(&real).unwrap(), b"new");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 3, "{left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
