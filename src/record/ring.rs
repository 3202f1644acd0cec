//! The flight recorder's sink: the trace's records kept in memory, whole
//! generations at a time, the oldest dropped past a byte bound. A snapshot
//! is the file header, the generations kept, and an end marker: a valid
//! trace whose first generation is the oldest kept.
//!
//! Invariants:
//! - The writer thread appends (one record per call, in queue order); a
//!   snapshot copies out the complete generations (shared buffers, cloned
//!   under the ring's lock, written outside it).
//! - Kept generations are consecutive and complete (each ends with its
//!   generation-end record); the generation being written is never part
//!   of a snapshot (a fatal-signal dump may read it through `View`, under
//!   `record::fatal`'s rules, with the batch counts `append` keeps).
//! - Memory: the complete generations kept stay within `max_bytes`, but
//!   the newest complete one is always kept (a snapshot has something to
//!   show), and the one being written grows until its end.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::base::inner::{InnerMutex, InnerRank};
use crate::format::{FILE_HEADER_LEN, RECORD_FRAME_LEN, RecordKind};

/// One complete generation: its number in the file and its records.
#[derive(Clone)]
pub struct KeptGeneration {
    pub number: u64,
    pub bytes: Arc<Vec<u8>>,
    /// When it was complete (ns on rtcore's clock).
    pub done_at: u64,
}

struct Inner {
    /// The file header (its trace id and version).
    header: Vec<u8>,
    /// The generation being written (records so far).
    open: Vec<u8>,
    /// Its number in the file (0: no record of it yet), its batch records
    /// and whether its header batch (thread 0) is among them: what a
    /// fatal-signal dump compares with the threads' own counts.
    open_number: u64,
    open_batches: u64,
    open_has_header: bool,
    done: VecDeque<KeptGeneration>,
    /// Bytes of `done`.
    done_bytes: usize,
    /// Generations dropped for the bound.
    dropped: u64,
    /// The last complete generation's number (0: none yet).
    last_done: u64,
}

pub struct Ring {
    inner: InnerMutex<Inner>,
    max_bytes: usize,
}

/// What a snapshot holds.
pub struct Snapshot {
    pub header: Vec<u8>,
    pub generations: Vec<KeptGeneration>,
}

impl Ring {
    pub fn new(max_bytes: usize) -> Arc<Ring> {
        Arc::new(Ring {
            inner: InnerMutex::new(
                InnerRank::FlightRing,
                Inner {
                    header: Vec::new(),
                    open: Vec::new(),
                    open_number: 0,
                    open_batches: 0,
                    open_has_header: false,
                    done: VecDeque::new(),
                    done_bytes: 0,
                    dropped: 0,
                    last_done: 0,
                },
            ),
            max_bytes,
        })
    }

    /// One write of the writer: the file header, or one framed record.
    pub fn append(&self, data: &[u8]) {
        let mut g = self.inner.lock();
        if g.header.is_empty() && data.len() == FILE_HEADER_LEN && data.starts_with(b"RTCTRACE") {
            g.header = data.to_vec();
            return;
        }
        let kind = if data.len() >= RECORD_FRAME_LEN {
            RecordKind::from_u8(data[4])
        } else {
            None
        };
        match kind {
            // A ring never ends: a snapshot writes its own end.
            Some(RecordKind::TraceEnd) => {}
            // A loss record ends its generation too (the writer dropped
            // it): kept, so the ring's generations stay consecutive.
            Some(RecordKind::GenerationEnd | RecordKind::Loss) => {
                g.open.extend_from_slice(data);
                let number = generation_of(data).unwrap_or(g.last_done + 1);
                let bytes = Arc::new(std::mem::take(&mut g.open));
                g.done_bytes += bytes.len();
                g.last_done = number;
                g.open_number = 0;
                g.open_batches = 0;
                g.open_has_header = false;
                g.done.push_back(KeptGeneration {
                    number,
                    bytes,
                    done_at: crate::base::clock::now_ns(),
                });
                while g.done_bytes > self.max_bytes && g.done.len() > 1 {
                    if let Some(old) = g.done.pop_front() {
                        g.done_bytes -= old.bytes.len();
                        g.dropped += 1;
                    }
                }
            }
            Some(RecordKind::Batch) => {
                g.open.extend_from_slice(data);
                if let Some((number, thread)) = generation_and_thread(data) {
                    g.open_number = number;
                    g.open_batches += 1;
                    g.open_has_header |= thread == 0;
                }
            }
            _ => g.open.extend_from_slice(data),
        }
    }

    /// The last complete generation's number (0: none yet).
    pub fn last_done(&self) -> u64 {
        self.inner.lock().last_done
    }

    /// The complete generations kept now, and the header.
    pub fn snapshot(&self) -> Snapshot {
        let g = self.inner.lock();
        Snapshot {
            header: g.header.clone(),
            generations: g.done.iter().cloned().collect(),
        }
    }

    /// For a fatal-signal handler: the ring as it is, if its lock is free
    /// (never waiting: waiting there could never end). Nothing is copied.
    pub fn try_view(&self) -> Option<View<'_>> {
        self.inner.try_lock_in_signal_handler().map(|g| View { g })
    }

    /// (bytes kept in complete generations, bytes of the open one,
    /// generations kept, generations dropped for the bound).
    pub fn usage(&self) -> (usize, usize, usize, u64) {
        let g = self.inner.lock();
        (g.done_bytes, g.open.len(), g.done.len(), g.dropped)
    }
}

/// The ring seen under its lock, without copying (`Ring::try_view`).
pub struct View<'a> {
    g: parking_lot::MutexGuard<'a, Inner>,
}

impl View<'_> {
    /// The file header (empty until the writer began).
    pub fn header(&self) -> &[u8] {
        &self.g.header
    }
    /// The complete generations kept, oldest first.
    pub fn done(&self) -> impl Iterator<Item = &KeptGeneration> {
        self.g.done.iter()
    }
    /// The last complete generation's number (0: none).
    pub fn last_done(&self) -> u64 {
        self.g.last_done
    }
    /// The records of the generation being written, so far.
    pub fn open(&self) -> &[u8] {
        &self.g.open
    }
    /// (its number in the file (0: no batch yet), its batch records,
    /// whether its header batch is among them).
    pub fn open_counts(&self) -> (u64, u64, bool) {
        (
            self.g.open_number,
            self.g.open_batches,
            self.g.open_has_header,
        )
    }
}

/// The generation a framed record names (after its trace id).
fn generation_of(record: &[u8]) -> Option<u64> {
    let body = record.get(RECORD_FRAME_LEN + 8..)?;
    let mut pos = 0;
    crate::format::get_uvarint(body, &mut pos)
}

/// The generation and thread a framed batch record names.
fn generation_and_thread(record: &[u8]) -> Option<(u64, u64)> {
    let body = record.get(RECORD_FRAME_LEN + 8..)?;
    let mut pos = 0;
    let generation = crate::format::get_uvarint(body, &mut pos)?;
    let thread = crate::format::get_uvarint(body, &mut pos)?;
    Some((generation, thread))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{file_header, generation_end_body, put_record};

    #[test]
    fn keeps_whole_generations_within_the_bound_and_always_the_newest() {
        let ring = Ring::new(300);
        ring.append(&file_header(7));
        for g in 1..=5u64 {
            let mut rec = Vec::new();
            put_record(&mut rec, RecordKind::Batch, &[0u8; 100]);
            ring.append(&rec);
            let mut end = Vec::new();
            put_record(
                &mut end,
                RecordKind::GenerationEnd,
                &generation_end_body(7, g, &[]),
            );
            ring.append(&end);
        }
        // The open generation's counts: batches by file generation and
        // thread, the header batch (thread 0) noticed.
        let batch = |g: u64, thread: u64| {
            let mut body = 7u64.to_le_bytes().to_vec();
            crate::format::put_uvarint(&mut body, g);
            crate::format::put_uvarint(&mut body, thread);
            let mut rec = Vec::new();
            put_record(&mut rec, RecordKind::Batch, &body);
            rec
        };
        ring.append(&batch(6, 3));
        assert_eq!(ring.try_view().unwrap().open_counts(), (6, 1, false));
        ring.append(&batch(6, 0));
        assert_eq!(ring.try_view().unwrap().open_counts(), (6, 2, true));
        let s = ring.snapshot();
        assert_eq!(s.header, file_header(7).to_vec());
        let kept: Vec<u64> = s.generations.iter().map(|k| k.number).collect();
        // Each generation is ~150 bytes: two fit in 300.
        assert_eq!(kept, vec![4, 5]);
        let (bytes, open, n, dropped) = ring.usage();
        assert!(bytes <= 300 && open > 0 && n == 2 && dropped == 3);
        {
            let v = ring.try_view().unwrap();
            assert_eq!(v.last_done(), 5);
            assert_eq!(v.done().count(), 2);
            assert!(!v.open().is_empty());
        }
        // A bound smaller than one generation keeps the newest anyway.
        let tiny = Ring::new(1);
        let mut end = Vec::new();
        put_record(
            &mut end,
            RecordKind::GenerationEnd,
            &generation_end_body(7, 1, &[]),
        );
        tiny.append(&end);
        assert_eq!(tiny.snapshot().generations.len(), 1);
        assert_eq!(tiny.last_done(), 1);
    }
}
