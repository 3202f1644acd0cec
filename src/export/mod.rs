//! Exporting a trace for viewers. `json`: Chrome's JSON Trace Event Format,
//! which ui.perfetto.dev and chrome://tracing open; `perfetto`: Perfetto's
//! own protobuf format. Both write the same `timeline`. Exports read a trace the
//! validator accepted (`crate::reader`), so every state machine they replay
//! is known to be consistent.

pub mod json;
pub mod perfetto;
pub mod timeline;
