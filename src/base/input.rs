//! Opening a file to read (a trace, a rank file): whatever the path names
//! (a regular file, a device, a FIFO), the open never waits. A FIFO is read as a stream when
//! somebody is writing to it (or is blocked opening it to write); one that
//! nobody writes to is an I/O error at once, never a wait for a writer that
//! may not come (the tracer refuses a FIFO nobody reads the same way).

use std::io::{Cursor, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};

/// A file opened for reading: the bytes a FIFO's first read
/// returned, then the rest of the file. For anything but a FIFO the prefix
/// is empty.
pub type Input = std::io::Chain<Cursor<Vec<u8>>, std::fs::File>;

/// Open `path` for reading. A directory, and a FIFO with no
/// writer, are errors (of kinds `IsADirectory` and `BrokenPipe`).
pub fn open(path: &std::path::Path) -> std::io::Result<Input> {
    // O_NONBLOCK so that opening a FIFO never waits for a writer; it is
    // cleared once the file is open, so reads block as usual.
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let kind = f.metadata()?.file_type();
    if kind.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::IsADirectory,
            "is a directory",
        ));
    }
    let mut prefix = Vec::new();
    if kind.is_fifo() {
        // Non-blocking, a read says whether a writer is there: end of file
        // means none (Linux counts a writer blocked in open as one, so a
        // producer started first is never missed), no data yet means one is.
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match f.read(&mut buf) {
                Ok(0) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::BrokenPipe,
                        "a FIFO nobody is writing to",
                    ));
                }
                Ok(n) => {
                    buf.truncate(n);
                    prefix = buf;
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
    set_blocking(&f)?;
    Ok(Cursor::new(prefix).chain(f))
}

/// Clear `O_NONBLOCK` on `f`.
fn set_blocking(f: &std::fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
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
    fn a_fifo_nobody_writes_is_refused_at_once() {
        let d = temp_dir("unwritten");
        let p = fifo(&d);
        let t0 = std::time::Instant::now();
        let e = open(&p).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        assert!(t0.elapsed() < std::time::Duration::from_secs(5));
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
