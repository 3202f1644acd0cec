//! Lock ranks: the declaration language, the rank table and its closure.
//!
//! This module depends on nothing else in rtcore. The process-wide table is
//! created on first use with rtcore's own ranks; user declarations are added
//! with `global().load(..)`.

pub mod dsl;
pub mod table;

use std::sync::LazyLock;

pub use table::{LEAF, MAX_RANKS, RankSet, RankTable, WORDS};

static GLOBAL: LazyLock<RankTable> = LazyLock::new(RankTable::new_global);

/// The process-wide rank table.
pub fn global() -> &'static RankTable {
    &GLOBAL
}

/// The largest rank file `load_file` reads (16 MiB): a rank file is a few
/// kilobytes; anything past this is a mistake (or `/dev/zero`).
pub const MAX_RANK_FILE_BYTES: u64 = 16 << 20;

/// Load declarations from a file into `table`; the file's path names it in
/// error messages and reports. At most `MAX_RANK_FILE_BYTES` are read.
pub fn load_file(table: &RankTable, path: &str) -> crate::status::Result<Vec<u32>> {
    let text = read_file(path)?;
    table.load(&text, path)
}

/// The text of rank file `path`, whatever the path names (a device, a FIFO
/// someone writes to; one nobody writes to within 5 s is refused, never
/// waited on for longer): `RTC_ERR_IO` if it cannot be read, `RTC_ERR_INVALID_ARGUMENT` past
/// `MAX_RANK_FILE_BYTES` or for text that is not UTF-8.
pub fn read_file(path: &str) -> crate::status::Result<String> {
    let io_error = |e: std::io::Error| {
        crate::status::Error::new(
            crate::status::RTC_ERR_IO,
            format!("cannot read rank file '{path}': {e}"),
        )
    };
    // Read at most one byte past the limit, whatever the file is (a
    // device or a FIFO has no size to check first).
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(
            crate::base::input::open(std::path::Path::new(path)).map_err(io_error)?,
            MAX_RANK_FILE_BYTES + 1,
        ),
        &mut bytes,
    )
    .map_err(io_error)?;
    if bytes.len() as u64 > MAX_RANK_FILE_BYTES {
        return Err(crate::status::Error::new(
            crate::status::RTC_ERR_INVALID_ARGUMENT,
            format!(
                "rank file '{path}' is larger than the limit of {} MiB",
                MAX_RANK_FILE_BYTES >> 20
            ),
        ));
    }
    String::from_utf8(bytes).map_err(|_| {
        crate::status::Error::new(
            crate::status::RTC_ERR_INVALID_ARGUMENT,
            format!("rank file '{path}' is not valid UTF-8"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 13, row 3: an endless input is refused after 16 MiB, not read
    /// until memory runs out; a file at the limit is read.
    #[test]
    fn rank_files_are_read_up_to_16_mib() {
        let dir = std::env::temp_dir().join(format!("rtcore-rankfile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // A sparse file far over the limit (zeros, as /dev/zero gives).
        let huge = dir.join("huge.ranks");
        std::fs::File::create(&huge)
            .unwrap()
            .set_len(1 << 40)
            .unwrap();
        let t = RankTable::new();
        let e = load_file(&t, huge.to_str().unwrap()).unwrap_err();
        assert_eq!(e.status, crate::status::RTC_ERR_INVALID_ARGUMENT, "{e:?}");
        assert!(
            e.message.contains("larger than the limit of 16 MiB"),
            "{e:?}"
        );
        // An endless FIFO: the same bound.
        let fifo = dir.join("endless.ranks");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Opened for reading and writing here, it counts as a writer before
        // the feeder runs (no wait for one) and
        // as a reader, so the feeder's open does not wait.
        let keeper = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo)
            .unwrap();
        let feeder = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
                let chunk = vec![b' '; 1 << 16];
                // Until no reader is left (EPIPE).
                while f.write_all(&chunk).is_ok() {}
            })
        };
        let e = load_file(&t, fifo.to_str().unwrap()).unwrap_err();
        assert!(e.message.contains("larger than the limit"), "{e:?}");
        drop(keeper);
        feeder.join().unwrap();
        // Exactly at the limit: read (and parsed: blanks only).
        let full = dir.join("full.ranks");
        let mut text = vec![b' '; MAX_RANK_FILE_BYTES as usize - 10];
        text.extend_from_slice(b"NONE < q;\n");
        std::fs::write(&full, &text).unwrap();
        load_file(&t, full.to_str().unwrap()).unwrap();
        let e = load_file(&t, dir.to_str().unwrap()).unwrap_err();
        assert_eq!(e.status, crate::status::RTC_ERR_IO);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
