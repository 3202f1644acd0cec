//! Reading traces: parsing and checking framing and batches (`parse`), then
//! the rules the events obey (`validate`). It knows the format
//! (`crate::format`), never the runtime.

pub mod parse;
pub mod states;
pub mod validate;

pub use parse::{Event, Generation, ReadError, Stream, Trace, parse};
pub use validate::{Summary, validate};

/// Parse and validate.
pub fn check(bytes: &[u8]) -> Result<Summary, ReadError> {
    validate(&parse(bytes)?)
}
