//! Reading traces: parsing and checking (`parse`). It knows the format
//! (`crate::format`), never the runtime. The state-machine validator and
//! statistics build on the parsed generations.

pub mod parse;

pub use parse::{Event, Generation, ReadError, Stream, Trace, parse};
