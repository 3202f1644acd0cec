//! rtcore: lock-order discipline, a monitor that watches every thread and an
//! execution tracer for C, C++ and Python programs, shipped as a C-ABI
//! library. See README.md and docs/.
//!
//! The modules form layers, each using only those below it: declared in
//! `src/layering.ranks`, checked by `tests/layering.rs`, explained in
//! docs/architecture.md. `base` is the bottom; `ffi`, the only module that
//! knows about C, is the top and is used by nothing here.

#![allow(non_camel_case_types)]

// Under `--cfg loom` only the modelled protocols (and the shim they run
// on) are compiled; see tests/loom_*.rs.
#[cfg(not(loom))]
pub mod base;
#[cfg(not(loom))]
pub mod debug_env;
#[cfg(not(loom))]
pub mod diag;
#[cfg(not(loom))]
pub mod export;
#[cfg(not(loom))]
pub mod ffi;
#[cfg(not(loom))]
pub mod flight;
#[cfg(not(loom))]
pub mod format;
#[cfg(not(loom))]
pub mod ident;
#[cfg(not(loom))]
pub mod interpose;
#[cfg(not(loom))]
pub mod lifecycle;
pub mod lock;
#[cfg(not(loom))]
pub mod ranks;
#[cfg(not(loom))]
pub mod reader;
#[cfg(not(loom))]
pub mod record;
/// Under loom, only the tracer's gate protocol (tests/loom_trace.rs).
#[cfg(loom)]
pub mod record {
    pub mod fence;
    pub mod gate;
}
#[cfg(not(loom))]
pub mod stats;
#[cfg(not(loom))]
pub mod status;
pub mod sync;
pub mod sysmon;
#[cfg(not(loom))]
pub mod trace;
pub mod world;

/// `MAJOR << 16 | MINOR << 8 | PATCH`, from Cargo.toml.
pub const VERSION_NUMBER: u32 = {
    const fn parse(s: &str) -> u32 {
        let b = s.as_bytes();
        let mut i = 0;
        let mut v = 0u32;
        while i < b.len() {
            v = v * 10 + (b[i] - b'0') as u32;
            i += 1;
        }
        v
    }
    (parse(env!("CARGO_PKG_VERSION_MAJOR")) << 16)
        | (parse(env!("CARGO_PKG_VERSION_MINOR")) << 8)
        | parse(env!("CARGO_PKG_VERSION_PATCH"))
};
