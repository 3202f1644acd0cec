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

/// Load declarations from a file into `table`; the file's path names it in
/// error messages and reports.
pub fn load_file(table: &RankTable, path: &str) -> crate::status::Result<Vec<u32>> {
    let bytes = std::fs::read(path).map_err(|e| {
        crate::status::Error::new(
            crate::status::RTC_ERR_IO,
            format!("cannot read rank file '{path}': {e}"),
        )
    })?;
    let text = String::from_utf8(bytes).map_err(|_| {
        crate::status::Error::new(
            crate::status::RTC_ERR_INVALID_ARGUMENT,
            format!("rank file '{path}' is not valid UTF-8"),
        )
    })?;
    table.load(&text, path)
}
