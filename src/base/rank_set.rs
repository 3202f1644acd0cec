//! The data the lock-order checks read on every acquisition, rtcore's inner
//! locks included: rank ids, rank sets, and the process-wide matrix of
//! closure bitsets (`GLOBAL_ALLOWED`). `ranks::table` fills the matrix;
//! `base::inner` and `lock::order` read it. Kept here, at the bottom, so
//! the inner locks can check their own ranks without depending on the rank
//! language.

use std::sync::atomic::{AtomicU64, Ordering};

/// Capacity of a rank table, pseudo-ranks and rtcore's own ranks included.
pub const MAX_RANKS: usize = 256;
/// Words in a rank bitset.
pub const WORDS: usize = MAX_RANKS / 64;
/// The unranked leaf.
pub const LEAF: u32 = 0;

pub type AllowedMatrix = [[AtomicU64; WORDS]; MAX_RANKS];

#[allow(clippy::declare_interior_mutable_const)]
const ZERO_WORD: AtomicU64 = AtomicU64::new(0);
#[allow(clippy::declare_interior_mutable_const)]
pub const ZERO_ROW: [AtomicU64; WORDS] = [ZERO_WORD; WORDS];

/// The process-wide table's closure bitsets, read without a lock on every
/// blocking lock acquisition.
pub static GLOBAL_ALLOWED: AllowedMatrix = [ZERO_ROW; MAX_RANKS];

/// Set once the process-wide table holds rtcore's own ranks (inner-lock
/// checks start then).
pub static GLOBAL_READY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A set of ranks (one bit per id).
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct RankSet(pub [u64; WORDS]);

impl RankSet {
    #[inline]
    pub fn insert(&mut self, r: u32) {
        self.0[r as usize / 64] |= 1 << (r % 64);
    }
    #[inline]
    pub fn remove(&mut self, r: u32) {
        self.0[r as usize / 64] &= !(1 << (r % 64));
    }
    #[inline]
    pub fn contains(&self, r: u32) -> bool {
        self.0[r as usize / 64] & (1 << (r % 64)) != 0
    }
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
}

/// Load `allowed[r]` from a matrix.
#[inline]
pub fn load_allowed(m: &AllowedMatrix, r: u32) -> RankSet {
    let row = &m[r as usize];
    let mut out = [0u64; WORDS];
    for (o, w) in out.iter_mut().zip(row.iter()) {
        *o = w.load(Ordering::Relaxed);
    }
    RankSet(out)
}
