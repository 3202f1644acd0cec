//! Reading traces: framing, record by record, one generation buffered at a
//! time (`parse::Records`); decoding a thread's events from those bytes
//! (`decode`); the rules the events obey (`validate`). It knows the format
//! (`crate::format`), never the runtime.

pub mod decode;
pub mod parse;
pub mod states;
pub mod validate;

pub use parse::{Event, Generation, ReadError, Stream, Trace, parse};
pub use validate::{Cut, Summary, validate};

/// Check a trace in memory (see `check_reader`).
pub fn check(bytes: &[u8]) -> Result<Summary, ReadError> {
    check_reader(bytes)
}

/// Check a trace file without reading it into memory first. A failure to
/// open or read the file is the outer error (not a verdict on the trace).
pub fn check_file(path: &std::path::Path) -> std::io::Result<Result<Summary, ReadError>> {
    with_file(path, |f| check_reader(f))
}

/// Open `path` and run `read` over it; an I/O error on the way (opening,
/// or any read) is returned as such, whatever `read` made of it.
pub fn with_file<T>(
    path: &std::path::Path,
    read: impl FnOnce(&mut IoTracked<std::io::BufReader<crate::base::input::Input>>) -> T,
) -> std::io::Result<T> {
    let f = crate::base::input::open(path)?;
    let mut input = IoTracked {
        inner: std::io::BufReader::with_capacity(1 << 16, f),
        error: None,
    };
    let out = read(&mut input);
    match input.error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// A reader that keeps the first I/O error it passed on, so the caller can
/// tell a file that could not be read from a trace that is not valid.
pub struct IoTracked<R> {
    inner: R,
    error: Option<std::io::Error>,
}

impl<R: std::io::Read> std::io::Read for IoTracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.inner.read(buf) {
            Err(e) if e.kind() != std::io::ErrorKind::Interrupted && self.error.is_none() => {
                // The original (with its OS error code) for the caller; a
                // copy for the reader.
                let copy = std::io::Error::new(e.kind(), e.to_string());
                self.error = Some(e);
                Err(copy)
            }
            r => r,
        }
    }
}

/// Parse and validate a trace as it is read, one generation at a time:
/// only the current generation's bytes are buffered, each stream's events
/// are decoded as the validator reaches them and dropped once applied.
/// Memory is bounded by the largest generation
/// (`Summary::max_generation_bytes`), not by the trace.
pub fn check_reader(input: impl std::io::Read) -> Result<Summary, ReadError> {
    walk(input, None)
}

/// Validate a trace as it is read, as `check_reader`, and hand each
/// generation, once valid, to `visit` with all its events decoded; it is
/// dropped before the next is read. For readers that need every event of
/// a generation (statistics) with memory bounded by one generation.
pub fn visit_generations(
    input: impl std::io::Read,
    mut visit: impl FnMut(&Generation),
) -> Result<Summary, ReadError> {
    walk(input, Some(&mut visit))
}

/// Check every generation as it is read. A trace cut short (the input
/// ends before the end marker, inside or after a generation) whose
/// complete generations are all consistent is a summary with `cut` set;
/// cut before its first generation ended, it is an error.
fn walk(
    input: impl std::io::Read,
    mut visit: Option<&mut dyn FnMut(&Generation)>,
) -> Result<Summary, ReadError> {
    let mut records = parse::Records::open(input)?;
    let mut sum = Summary::default();
    let mut threads = std::collections::HashSet::new();
    loop {
        let l = match records.next_generation() {
            Ok(Some(l)) => l,
            Ok(None) => break,
            Err(e) if records.cut_short && records.last_generation() > 0 => {
                sum.cut = Some(Cut {
                    after_generation: records.last_generation(),
                    at_byte: records.complete_until as u64,
                    lost_bytes: (records.offset - records.complete_until) as u64,
                    why: e.message,
                });
                break;
            }
            Err(e) => return Err(e),
        };
        if let Some(lost) = &l.lost {
            sum.lost_generations += 1;
            sum.lost_events += lost.iter().map(|x| x.events).sum::<u64>();
            sum.lost_bytes += lost.iter().map(|x| x.bytes).sum::<u64>();
            continue;
        }
        validate::check_generation(&l, records.buffered(), &mut sum)?;
        if let Some(v) = visit.as_mut() {
            v(&l.materialise(records.buffered())?);
        }
        threads.extend(l.threads.keys().copied().filter(|id| *id != 0));
        sum.generations += 1;
        sum.max_generation_bytes = sum.max_generation_bytes.max(l.bytes);
    }
    if sum.generations == 0 && sum.lost_generations == 0 {
        return Err(validate::no_generation());
    }
    sum.events = sum.by_kind.values().sum();
    sum.threads = threads.len();
    sum.bytes = records.offset as u64;
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{
        BatchBuilder, EventKind, RecordKind, Val, file_header, generation_end_body, put_record,
        trace_end_body,
    };

    /// `generations` generations, each a header batch and one thread
    /// logging `logs` times.
    fn trace(generations: u64, logs: u64) -> Vec<u8> {
        let mut out = file_header(9).to_vec();
        for g in 1..=generations {
            let mut h = BatchBuilder::new(9, g, 0, 0, 0);
            h.event(EventKind::ClockInfo, 0, &[Val::U(1_000_000_000), Val::U(0)]);
            put_record(&mut out, RecordKind::Batch, &h.body);
            let mut b = BatchBuilder::new(9, g, 4, 0, 0);
            b.event(EventKind::String, 0, &[Val::U(1), Val::Bytes(b"x")]);
            for i in 0..logs {
                b.event(EventKind::Log, i, &[Val::U(1), Val::U(1)]);
            }
            put_record(&mut out, RecordKind::Batch, &b.body);
            put_record(
                &mut out,
                RecordKind::GenerationEnd,
                &generation_end_body(9, g, &[(0, 1), (4, 1)]),
            );
        }
        put_record(
            &mut out,
            RecordKind::TraceEnd,
            &trace_end_body(9, generations),
        );
        out
    }

    /// Hands out at most `n` bytes per read, as a pipe may.
    struct Trickle<'a>(&'a [u8], usize);

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let k = self.1.min(out.len()).min(self.0.len());
            out[..k].copy_from_slice(&self.0[..k]);
            self.0 = &self.0[k..];
            Ok(k)
        }
    }

    #[test]
    fn check_buffers_one_generation_and_agrees_with_parsing_everything() {
        let bytes = trace(3, 100);
        let s = check(&bytes).unwrap();
        assert_eq!((s.generations, s.threads), (3, 1));
        assert_eq!(s.events, 3 * (1 + 1 + 100));
        assert_eq!(s.by_kind["log"], 300);
        // The same answer as parsing everything first.
        assert_eq!(validate(&parse(&bytes).unwrap()).unwrap(), s);
        // Only one generation is buffered: a third of the trace.
        assert!(s.max_generation_bytes > 0);
        assert!(s.max_generation_bytes < bytes.len() / 3, "{s:?}");
        // Short reads change nothing.
        for n in [1, 7, 4096] {
            assert_eq!(check_reader(Trickle(&bytes, n)).unwrap(), s);
        }
        // A bad event in the second generation is found there, whichever
        // way the trace is read.
        let mut bad = trace(3, 100);
        let second = bad.len() / 2;
        bad[second] ^= 0x40;
        let e = check(&bad).unwrap_err();
        assert_eq!(check_reader(Trickle(&bad, 3)).unwrap_err(), e);
        assert_eq!(parse(&bad).and_then(|t| validate(&t)).unwrap_err(), e);
    }

    #[test]
    fn check_and_parse_report_the_same_first_error() {
        // Two threads, each with a decoding error in its second batch; the
        // one earlier in the input is reported, by both readers.
        let mut out = file_header(9).to_vec();
        let mut h = BatchBuilder::new(9, 1, 0, 0, 0);
        h.event(EventKind::ClockInfo, 0, &[Val::U(1_000_000_000), Val::U(0)]);
        put_record(&mut out, RecordKind::Batch, &h.body);
        let mut bad_at = Vec::new();
        for thread in [7u64, 4] {
            let mut b = BatchBuilder::new(9, 1, thread, 0, 0);
            b.event(EventKind::String, 0, &[Val::U(1), Val::Bytes(b"x")]);
            put_record(&mut out, RecordKind::Batch, &b.body);
        }
        for thread in [7u64, 4] {
            let mut b = BatchBuilder::new(9, 1, thread, 1, 0);
            b.event(EventKind::Log, 1, &[Val::U(1), Val::U(1)]);
            // A log naming string 5, never defined.
            bad_at.push(out.len() + crate::format::RECORD_FRAME_LEN + b.body.len());
            b.event(EventKind::Log, 2, &[Val::U(5), Val::U(1)]);
            put_record(&mut out, RecordKind::Batch, &b.body);
        }
        put_record(
            &mut out,
            RecordKind::GenerationEnd,
            &generation_end_body(9, 1, &[(0, 1), (4, 2), (7, 2)]),
        );
        put_record(&mut out, RecordKind::TraceEnd, &trace_end_body(9, 1));
        let e = check(&out).unwrap_err();
        assert!(e.message.contains("thread 7 has not defined"), "{e}");
        assert_eq!(e.offset, bad_at[0]);
        assert_eq!(parse(&out).unwrap_err(), e);
    }

    #[test]
    fn a_file_that_cannot_be_read_is_an_io_error_not_a_verdict() {
        // Opening works; every read fails (EIO at offset 0).
        let e = check_file(std::path::Path::new("/proc/self/mem")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
        assert!(check_file(std::path::Path::new("/")).is_err());
        // A file that reads is judged, with its size.
        let dir = std::env::temp_dir().join(format!("rtcore-check-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("t.rtctrace");
        let bytes = trace(2, 5);
        std::fs::write(&f, &bytes).unwrap();
        let s = check_file(&f).unwrap().unwrap();
        assert_eq!(s.bytes, bytes.len() as u64);
        std::fs::write(&f, &bytes[..bytes.len() - 1]).unwrap();
        let cut = check_file(&f).unwrap().unwrap().cut.expect("cut short");
        assert_eq!(cut.after_generation, 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_cut_trace_is_its_complete_generations_and_says_what_was_lost() {
        let whole = trace(3, 50);
        let full = check(&whole).unwrap();
        assert_eq!(full.cut, None);
        // Where each generation ends: cut the trace just after each end,
        // and a few bytes into the next generation.
        let ends: Vec<usize> = (1..=3)
            .map(|g| {
                let mut n = 0;
                // The smallest prefix that holds generation g whole.
                for k in 0..=whole.len() {
                    if let Ok(s) = check(&whole[..k]) {
                        if s.generations as u64 == g {
                            n = k;
                            break;
                        }
                    }
                }
                n
            })
            .collect();
        assert!(ends[0] > 0 && ends[0] < ends[1] && ends[1] < ends[2]);
        for (i, &end) in ends.iter().enumerate() {
            let g = i as u64 + 1;
            for extra in [0, 1, 17, 40] {
                let k = end + extra;
                if k >= whole.len() {
                    continue;
                }
                let s = check(&whole[..k]).unwrap_or_else(|e| panic!("cut at {k}: {e}"));
                let c = s.cut.clone().expect("cut");
                assert_eq!(s.generations as u64, g, "cut at {k}");
                assert_eq!(c.after_generation, g);
                assert_eq!(c.at_byte, end as u64);
                assert_eq!(c.lost_bytes, extra as u64);
                assert!(c.describe().contains(&format!("after generation {g}")));
                // The events of the complete generations, exactly.
                assert_eq!(s.events, g * (1 + 1 + 50));
            }
        }
        // Cut inside the first generation: nothing is known good.
        assert!(check(&whole[..ends[0] - 1]).is_err());
        // Corruption is not a cut: a flipped byte in the last generation.
        let mut bad = whole[..ends[2] + 20].to_vec();
        bad[ends[1] + 30] ^= 0xff;
        assert!(check(&bad).is_err());
    }

    #[test]
    fn a_lost_generation_is_skipped_and_counted_and_the_next_one_checks() {
        // Generation 2 of three lost its end to a loss record (one of its
        // batches reached the file first, and is not read).
        let whole = trace(3, 20);
        let mut out = file_header(9).to_vec();
        let mut g2_end_seen = false;
        let mut pos = crate::format::FILE_HEADER_LEN;
        while pos < whole.len() {
            let len = u32::from_le_bytes(whole[pos + 8..pos + 12].try_into().unwrap()) as usize;
            let rec = &whole[pos..pos + crate::format::RECORD_FRAME_LEN + len];
            let body = &rec[crate::format::RECORD_FRAME_LEN..];
            let mut at = 8;
            let g = crate::format::get_uvarint(body, &mut at).unwrap();
            let kind = RecordKind::from_u8(rec[4]).unwrap();
            if g == 2 && kind == RecordKind::GenerationEnd {
                let lost = crate::format::loss_body(9, 2, &[(4, 3, 21, 700)]);
                put_record(&mut out, RecordKind::Loss, &lost);
                g2_end_seen = true;
            } else {
                out.extend_from_slice(rec);
            }
            pos += rec.len();
        }
        assert!(g2_end_seen);
        let s = check(&out).unwrap();
        assert_eq!((s.generations, s.lost_generations), (2, 1));
        assert_eq!((s.lost_events, s.lost_bytes), (21, 700));
        assert_eq!(s.events, 2 * (1 + 1 + 20));
        assert_eq!(validate(&parse(&out).unwrap()).unwrap(), s);
        // A loss record keeps the generations' order: one for generation 7
        // after generation 3 skips three.
        let end_len = crate::format::RECORD_FRAME_LEN + trace_end_body(9, 3).len();
        let mut wrong = out[..out.len() - end_len].to_vec();
        put_record(
            &mut wrong,
            RecordKind::Loss,
            &crate::format::loss_body(9, 7, &[]),
        );
        put_record(&mut wrong, RecordKind::TraceEnd, &trace_end_body(9, 7));
        let e = check(&wrong).unwrap_err();
        assert!(
            e.message
                .contains("generation 7 where generation 4 was expected"),
            "{e}"
        );
    }

    #[test]
    fn a_first_generation_numbered_0_is_named_as_such() {
        let mut out = file_header(9).to_vec();
        let h = BatchBuilder::new(9, 0, 0, 0, 0);
        put_record(&mut out, RecordKind::Batch, &h.body);
        let e = check(&out).unwrap_err();
        assert!(
            e.message
                .contains("generation 0 where generation 1 was expected"),
            "{e}"
        );
    }
}
