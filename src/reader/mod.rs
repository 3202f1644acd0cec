//! Reading traces: parsing and checking framing and batches (`parse`), then
//! the rules the events obey (`validate`). It knows the format
//! (`crate::format`), never the runtime.

pub mod parse;
pub mod states;
pub mod validate;

pub use parse::{Event, Generation, ReadError, Stream, Trace, parse};
pub use validate::{Summary, validate};

/// Parse and validate, one generation at a time: each is validated as soon
/// as its end is read and then dropped, so memory stays bounded by one
/// generation (and the input).
pub fn check(bytes: &[u8]) -> Result<Summary, ReadError> {
    let mut sum = Summary::default();
    let mut threads = std::collections::HashSet::new();
    let t = parse::parse_with(
        bytes,
        Some(&mut |g: &Generation| {
            validate::generation(g, &mut sum)?;
            threads.extend(g.streams.keys().copied().filter(|id| *id != 0));
            Ok(())
        }),
    )?;
    if t.generations.is_empty() {
        return Err(ReadError {
            message: "a trace with no generation (nothing was recorded between the header and the end marker)".into(),
            offset: parse::first_record_offset(),
            time: None,
        });
    }
    sum.events = t.events;
    sum.generations = t.generations.len();
    sum.threads = threads.len();
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

    #[test]
    fn check_validates_each_generation_as_it_ends_and_drops_it() {
        let bytes = trace(3, 100);
        let s = check(&bytes).unwrap();
        assert_eq!((s.generations, s.threads), (3, 1));
        assert_eq!(s.events, 3 * (1 + 1 + 100));
        assert_eq!(s.by_kind["log"], 300);
        // The same answer as parsing everything first.
        assert_eq!(validate(&parse(&bytes).unwrap()).unwrap(), s);
        // What check keeps: every generation's number and counts, no event.
        let mut seen = Vec::new();
        let t = parse::parse_with(
            &bytes,
            Some(&mut |g: &Generation| {
                seen.push(g.streams.values().map(|s| s.events.len()).sum::<usize>());
                Ok(())
            }),
        )
        .unwrap();
        assert_eq!(seen, vec![102, 102, 102]);
        assert!(
            t.generations
                .iter()
                .all(|g| g.streams.is_empty() && g.ended)
        );
        // A bad event in the second generation is found there.
        let mut bad = trace(3, 100);
        let second = bad.len() / 2;
        bad[second] ^= 0x40;
        assert!(check(&bad).is_err());
    }
}
