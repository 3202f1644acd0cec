//! The rank language on any text: the parser and a table load must return
//! (statements or a syntax error with a position), never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = rtcore::ranks::dsl::parse(text);
        let table = rtcore::ranks::RankTable::new();
        let _ = table.load(text, "fuzz.ranks");
    }
});
