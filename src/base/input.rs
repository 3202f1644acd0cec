//! Opening a file to read (a trace, a rank file): whatever the path names
//! (a regular file, a device, a FIFO), the open itself never waits. A FIFO
//! is read as a stream once somebody writes to it: a writer already there
//! (or blocked opening it to write) is found at once, and one that comes
//! within `FIFO_WRITER_WAIT` is waited for, so `rtcore check f` may start
//! before the program that traces into `f` (the tracer refuses a FIFO
//! nobody reads, so the reader must come first). A FIFO nobody writes to
//! by then is an I/O error: a bounded wait, never a hang.

use std::io::{Cursor, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::time::{Duration, Instant};

/// How long a FIFO with no writer is given for one to come.
pub const FIFO_WRITER_WAIT: Duration = Duration::from_secs(5);

/// A file opened for reading: the bytes a FIFO's first read
/// returned, then the rest of the file. For anything but a FIFO the prefix
/// is empty.
pub type Input = std::io::Chain<Cursor<Vec<u8>>, std::fs::File>;

/// Open `path` for reading. A directory is an error of kind
/// `IsADirectory`; a FIFO no writer came to within `FIFO_WRITER_WAIT`, of
/// kind `TimedOut`.
pub fn open(path: &std::path::Path) -> std::io::Result<Input> {
    // Cleared once the file is open, so reads block as usual.
    let mut f = open_nonblocking(path)?;
    let kind = f.metadata()?.file_type();
    if kind.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::IsADirectory,
            "is a directory",
        ));
    }
    let prefix = if kind.is_fifo() {
        first_bytes_of_fifo(&mut f, FIFO_WRITER_WAIT)?
    } else {
        Vec::new()
    };
    set_blocking(&f)?;
    Ok(Cursor::new(prefix).chain(f))
}

/// `path` opened for reading with `O_NONBLOCK`, so that opening a FIFO
/// never waits for a writer.
fn open_nonblocking(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

/// Wait (at most `wait`) until FIFO `f`, open without blocking, has a
/// writer; returns the bytes a first read found (possibly none).
///
/// Non-blocking, a read tells the cases apart: data; "would block" (a
/// writer is there, Linux counting one blocked in open, and has written
/// nothing yet: from then on reads may block); end of file, which is
/// either no writer yet (keep waiting) or writers that came and went
/// (`POLLHUP`: the input was empty, read as such).
fn first_bytes_of_fifo(f: &mut std::fs::File, wait: Duration) -> std::io::Result<Vec<u8>> {
    let deadline = Instant::now() + wait;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match f.read(&mut buf) {
            Ok(0) if hung_up(f) => return Ok(Vec::new()),
            Ok(0) => {
                if Instant::now() >= deadline {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("a FIFO nobody wrote to within {} s", wait.as_secs_f64()),
                    ));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(Vec::new()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Did a writer of FIFO `f` come and go since it was opened?
fn hung_up(f: &std::fs::File) -> bool {
    let mut p = libc::pollfd {
        fd: f.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd, a zero timeout.
    let r = unsafe { libc::poll(&mut p, 1, 0) };
    r > 0 && p.revents & libc::POLLHUP != 0
}

/// Clear `O_NONBLOCK` on `f`.
fn set_blocking(f: &std::fs::File) -> std::io::Result<()> {
    let fd = f.as_raw_fd();
    // SAFETY: fcntl on a descriptor `f` owns, with integer arguments only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn fifo(dir: &std::path::Path) -> std::path::PathBuf {
        let p = dir.join("fifo");
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        p
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("rtcore-input-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir(&d).unwrap();
        d
    }

    #[test]
    fn a_fifo_nobody_writes_to_is_refused_after_the_wait() {
        let d = temp_dir("unwritten");
        let p = fifo(&d);
        let mut f = open_nonblocking(&p).unwrap();
        let t0 = std::time::Instant::now();
        let e = first_bytes_of_fifo(&mut f, Duration::from_millis(200)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
        assert!(t0.elapsed() >= Duration::from_millis(200));
        assert!(t0.elapsed() < Duration::from_secs(5));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_writer_that_comes_late_is_waited_for() {
        let d = temp_dir("late");
        let p = fifo(&d);
        let wp = p.clone();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            // Blocks until the reader below has the FIFO open.
            let mut w = std::fs::OpenOptions::new().write(true).open(&wp).unwrap();
            w.write_all(b"late but here").unwrap();
        });
        let mut got = Vec::new();
        open(&p).unwrap().read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        assert_eq!(got, b"late but here");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_pipe_whose_writer_left_is_empty_input() {
        let d = temp_dir("left");
        let p = fifo(&d);
        // A writer comes after the reader opened (its open does not wait:
        // there is a reader), writes nothing and leaves.
        let mut f = open_nonblocking(&p).unwrap();
        drop(std::fs::OpenOptions::new().write(true).open(&p).unwrap());
        let t0 = std::time::Instant::now();
        assert_eq!(first_bytes_of_fifo(&mut f, FIFO_WRITER_WAIT).unwrap(), b"");
        assert!(t0.elapsed() < Duration::from_secs(1));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_fifo_with_a_writer_is_read_whole() {
        let d = temp_dir("written");
        let p = fifo(&d);
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        // Opened for reading and writing, `keeper` is a writer from now
        // on (so the open below finds one, whenever the thread runs) and a
        // reader (so the writer's open does not wait); it goes only after
        // the last byte is written, which ends the reader's file.
        let keeper = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .unwrap();
        let (wp, wd) = (p.clone(), data.clone());
        let writer = std::thread::spawn(move || {
            let mut w = std::fs::OpenOptions::new().write(true).open(&wp).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
            w.write_all(&wd).unwrap();
            drop(w);
            drop(keeper);
        });
        let mut got = Vec::new();
        open(&p).unwrap().read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        assert!(got == data, "read {} of {} bytes", got.len(), data.len());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn regular_files_and_directories() {
        let d = temp_dir("regular");
        let p = d.join("f");
        std::fs::write(&p, b"abc").unwrap();
        let mut got = Vec::new();
        open(&p).unwrap().read_to_end(&mut got).unwrap();
        assert_eq!(got, b"abc");
        assert_eq!(
            open(&d).unwrap_err().kind(),
            std::io::ErrorKind::IsADirectory
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
