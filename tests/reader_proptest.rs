#![cfg(not(loom))]
//! The reader survives any input: random bytes, and mutations of a valid
//! trace (bits flipped, bytes inserted, deleted, duplicated, cut) — both
//! with the framing left as the mutation made it and with every record's
//! CRC recomputed, so the mutation reaches the batch decoder and the
//! validator. The reader must return (an error or a summary), never panic;
//! the statistics and the JSON export, which replay accepted traces, must
//! not panic either. proptest shrinks any failure to a small input.

use proptest::prelude::*;
use rtcore::format::{
    BatchBuilder, EventKind as K, RECORD_FRAME_LEN, RecordKind, Val, crc32, file_header,
    generation_end_body, put_record, trace_end_body,
};

const ID: u64 = 0x5eed;

/// A small valid trace: a header batch, two attached threads (one blocking
/// and stolen from, one contending for a lock), sysmon, user events.
fn valid_trace() -> Vec<u8> {
    let mut out = file_header(ID).to_vec();
    let mut h = BatchBuilder::new(ID, 1, 0, 0, 0);
    h.event(K::ClockInfo, 0, &[Val::U(1_000_000_000), Val::U(7)]);
    h.event(K::ProcsChange, 1, &[Val::U(2)]);
    h.event(
        K::ProcStatus,
        1,
        &[Val::U(0), Val::U(1), Val::U(5), Val::U(3)],
    );
    h.event(
        K::ProcStatus,
        1,
        &[Val::U(1), Val::U(0), Val::U(0), Val::U(0)],
    );
    put_record(&mut out, RecordKind::Batch, &h.body);
    let status = |b: &mut BatchBuilder, id: u64, state: u64, p: u64| {
        b.event(K::String, 2, &[Val::U(1), Val::Bytes(b"worker")]);
        b.event(
            K::ThreadStatus,
            2,
            &[
                Val::U(id),
                Val::U(1),
                Val::U(state),
                Val::U(p),
                Val::U(0),
                Val::U(0),
                Val::U(0),
                Val::U(0),
            ],
        );
    };
    let mut a = BatchBuilder::new(ID, 1, 5, 0, 2);
    status(&mut a, 5, 1, 1);
    a.event(K::String, 3, &[Val::U(2), Val::Bytes(b"read")]);
    a.event(K::EnterBlocking, 3, &[Val::U(0), Val::U(4), Val::U(2)]);
    a.event(K::ExitBlockingSlow, 9, &[]);
    a.event(K::ProcStart, 10, &[Val::U(1), Val::U(1)]);
    a.event(K::RegionBegin, 11, &[Val::U(2)]);
    a.event(K::Log, 12, &[Val::U(1), Val::U(2)]);
    a.event(K::RegionEnd, 13, &[]);
    a.event(K::Detach, 14, &[Val::U(1), Val::U(2), Val::U(0)]);
    put_record(&mut out, RecordKind::Batch, &a.body);
    let mut b = BatchBuilder::new(ID, 1, 6, 0, 2);
    status(&mut b, 6, 2, 0);
    b.event(K::ProcStart, 6, &[Val::U(0), Val::U(6)]);
    b.event(K::LockContended, 7, &[Val::U(0x40), Val::U(1), Val::U(5)]);
    b.event(
        K::Block,
        7,
        &[Val::U(1), Val::U(0x40), Val::U(0), Val::U(7)],
    );
    b.event(K::Unblock, 8, &[Val::U(6), Val::U(1), Val::U(5)]);
    b.event(K::ProcStart, 15, &[Val::U(1), Val::U(3)]);
    b.event(K::LockAcquired, 16, &[Val::U(0x40), Val::U(9), Val::U(5)]);
    b.event(K::Counter, 16, &[Val::U(1), Val::S(-3)]);
    put_record(&mut out, RecordKind::Batch, &b.body);
    let mut s = BatchBuilder::new(ID, 1, 2, 0, 4);
    s.event(K::ProcSteal, 5, &[Val::U(0), Val::U(5), Val::U(5)]);
    s.event(K::PreemptRequest, 6, &[Val::U(6), Val::U(1), Val::U(2)]);
    s.event(K::StallOpen, 6, &[Val::U(1), Val::U(5)]);
    s.event(K::StallResolved, 9, &[Val::U(1), Val::U(5)]);
    put_record(&mut out, RecordKind::Batch, &s.body);
    put_record(
        &mut out,
        RecordKind::GenerationEnd,
        &generation_end_body(ID, 1, &[(0, 1), (2, 1), (5, 1), (6, 1)]),
    );
    // Generation 2 was dropped while recording: one of its batches reached
    // the file, then its loss record (the reader skips it, counts it).
    let mut lost = BatchBuilder::new(ID, 2, 5, 0, 20);
    lost.event(K::String, 20, &[Val::U(1), Val::Bytes(b"dropped")]);
    lost.event(K::Log, 21, &[Val::U(1), Val::U(1)]);
    put_record(&mut out, RecordKind::Batch, &lost.body);
    put_record(
        &mut out,
        RecordKind::Loss,
        &rtcore::format::loss_body(ID, 2, &[(5, 2, 40, 900), (6, 1, 7, 120)]),
    );
    put_record(&mut out, RecordKind::TraceEnd, &trace_end_body(ID, 2));
    out
}

/// Recompute every well-framed record's CRC, so a mutated body passes the
/// framing check and reaches the decoder.
fn refresh_crcs(bytes: &mut [u8]) {
    let mut pos = rtcore::format::FILE_HEADER_LEN;
    while pos + RECORD_FRAME_LEN <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()) as usize;
        let body = pos + RECORD_FRAME_LEN;
        if body + len > bytes.len() {
            return;
        }
        let crc = crc32(&bytes[body..body + len]);
        bytes[pos + 12..pos + 16].copy_from_slice(&crc.to_le_bytes());
        pos = body + len;
    }
}

/// Hands out at most 7 bytes per read, as a pipe may.
struct Trickle<'a>(&'a [u8]);

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let k = 7.min(out.len()).min(self.0.len());
        out[..k].copy_from_slice(&self.0[..k]);
        self.0 = &self.0[k..];
        Ok(k)
    }
}

/// Read `bytes` every way a user can: check (streaming, from memory and
/// in short reads), parse then validate (everything in memory),
/// statistics, JSON export. The streaming check and the in-memory path
/// give the same verdict, and the same summary or message, except that
/// where the in-memory parse rejects a later part of the file, the
/// streaming check may first reject an earlier generation's events (it
/// validates each generation before reading on).
fn read_all_ways(bytes: &[u8]) {
    let checked = rtcore::reader::check(bytes);
    let parsed = rtcore::reader::parse(bytes);
    match &parsed {
        Ok(t) => assert_eq!(
            checked,
            rtcore::reader::validate(t),
            "streaming check and parse + validate disagree"
        ),
        // A trace cut short: parse (all or nothing) rejects it; the
        // streaming check accepts its complete generations and says so.
        Err(_) => assert!(
            checked.as_ref().map_or(true, |s| s.cut.is_some()),
            "check accepts what parse rejects, and not as a cut trace"
        ),
    }
    assert_eq!(
        rtcore::reader::check_reader(Trickle(bytes)),
        checked,
        "short reads change the verdict"
    );
    let stats = rtcore::stats::stats(bytes);
    assert_eq!(checked.is_ok(), stats.is_ok(), "check and stats disagree");
    // A cut trace's summary is its complete part's: the same when the
    // lost bytes are taken away first.
    if let Ok(s) = &checked {
        if let Some(c) = &s.cut {
            let head = rtcore::reader::check(&bytes[..c.at_byte as usize])
                .expect("the complete part of a cut trace checks");
            assert_eq!(
                (head.events, head.generations, &head.by_kind),
                (s.events, s.generations, &s.by_kind),
                "a cut trace's summary is not its complete part's"
            );
            assert_eq!(head.cut.map(|h| h.lost_bytes), Some(0));
        }
    }
    if let Ok(t) = parsed {
        if rtcore::reader::validate(&t).is_ok() {
            let mut sink = Vec::new();
            rtcore::export::json::write(&t, &mut sink).expect("export to memory");
        }
    }
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip { at: usize, bit: u8 },
    Set { at: usize, byte: u8 },
    Insert { at: usize, bytes: Vec<u8> },
    Delete { at: usize, len: usize },
    Duplicate { at: usize, len: usize },
    Cut { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..24)
        )
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), 1usize..32).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), 1usize..64).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
        any::<usize>().prop_map(|at| Mutation::Cut { at }),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let n = bytes.len().max(1);
    match m {
        Mutation::Flip { at, bit } => {
            let i = at % n;
            if i < bytes.len() {
                bytes[i] ^= 1 << bit;
            }
        }
        Mutation::Set { at, byte } => {
            let i = at % n;
            if i < bytes.len() {
                bytes[i] = *byte;
            }
        }
        Mutation::Insert { at, bytes: b } => {
            let i = at % (bytes.len() + 1);
            bytes.splice(i..i, b.iter().copied());
        }
        Mutation::Delete { at, len } => {
            let i = at % n;
            let end = (i + len).min(bytes.len());
            if i < end {
                bytes.drain(i..end);
            }
        }
        Mutation::Duplicate { at, len } => {
            let i = at % n;
            let end = (i + len).min(bytes.len());
            if i < end {
                let copy: Vec<u8> = bytes[i..end].to_vec();
                bytes.splice(end..end, copy);
            }
        }
        Mutation::Cut { at } => {
            let i = at % (bytes.len() + 1);
            bytes.truncate(i);
        }
    }
}

#[test]
fn the_sample_trace_is_valid() {
    let t = valid_trace();
    let s = rtcore::reader::check(&t).expect("the sample is valid");
    assert!(s.events > 20);
    assert_eq!(
        (s.lost_generations, s.lost_events, s.lost_bytes),
        (1, 47, 1020)
    );
    read_all_ways(&t);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_are_rejected_without_panicking(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048)
    ) {
        read_all_ways(&bytes);
        // With a valid file header in front, the records are random.
        let mut with_header = file_header(ID).to_vec();
        with_header.extend_from_slice(&bytes);
        read_all_ways(&with_header);
    }

    #[test]
    fn mutated_traces_never_panic(
        ms in proptest::collection::vec(mutation(), 1..6),
        fix_crcs in any::<bool>()
    ) {
        let mut t = valid_trace();
        for m in &ms {
            apply(&mut t, m);
        }
        if fix_crcs {
            refresh_crcs(&mut t);
        }
        read_all_ways(&t);
    }
}
