//! The trace reader on any bytes: check (streaming), parse, validate,
//! statistics and both exports must return, never panic; the streaming
//! check must agree with parse + validate (the same summary or message
//! whenever the parse succeeds). (Seeds: the traces in corpus/reader,
//! made by `rtcore stress --keep-last` and the demo; see docs/fuzzing.md.)
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let checked = rtcore::reader::check(data);
    let stats = rtcore::stats::stats(data);
    assert_eq!(checked.is_ok(), stats.is_ok(), "check and stats disagree");
    if let Ok(t) = rtcore::reader::parse(data) {
        assert_eq!(checked, rtcore::reader::validate(&t), "check and parse + validate disagree");
        if rtcore::reader::validate(&t).is_ok() {
            let mut sink = Vec::new();
            let _ = rtcore::export::json::write(&t, &mut sink);
            sink.clear();
            let _ = rtcore::export::perfetto::write(&t, &mut sink);
        }
    }
});
