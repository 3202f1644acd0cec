//! A thread's strings in one generation: each text gets an id the first
//! time the thread records it (the caller then writes its `string` event),
//! and is found again cheaply after that.
//!
//! Two levels:
//! - a **cache** of 64 entries indexed by the text's address: a hit is
//!   checked against the stored bytes (a caller may reuse a buffer for a
//!   different text), word by word, never reading a C string past the
//!   8-byte word that holds its terminating NUL (that word is within one
//!   page, so the read cannot fault);
//! - a **table** keyed by a hash of the bytes (open addressing), for texts
//!   at new addresses; a miss there validates the text (UTF-8, cut at
//!   `MAX_STRING`), stores it and hands out the next id.
//!
//! Invariants:
//! - An id names one text for the rest of the generation's stream: ids are
//!   never reused, and the table only forgets (when it reaches its bounds:
//!   `MAX_ENTRIES` texts or `MAX_ARENA_BYTES` of them), after which a text
//!   seen again gets a new id and a new `string` event. So the memory is
//!   bounded per thread and generation, and no single lookup costs more
//!   than a bounded rehash (at most `MAX_ENTRIES` entries).
//! - A cache entry points into the arena of the same table: both are
//!   cleared together.
//! - Stored texts are followed by a NUL and zero padding to a whole word,
//!   so a C string is compared with its terminator included.

use std::ffi::c_char;

/// Longer texts are cut (at a character boundary): one event must fit a
/// record.
pub const MAX_STRING: usize = 64 * 1024;
const CACHE: usize = 64;
const MAX_ENTRIES: usize = 4096;
const MAX_ARENA_BYTES: usize = 256 * 1024;

/// A text the C caller passed is not UTF-8 (within its first `MAX_STRING`
/// bytes).
#[derive(Debug)]
pub struct NotUtf8;

#[derive(Clone, Copy, Default)]
struct CacheEntry {
    /// The text's address (0: empty; callers never pass NULL here).
    ptr: usize,
    /// Where its bytes start in the arena (in words) and how many.
    word: u32,
    len: u32,
    id: u64,
    /// Its first 16 bytes (with the NUL and zero padding): a text of up
    /// to 15 bytes is checked without touching the arena.
    head: [u64; 2],
}

impl CacheEntry {
    const EMPTY: CacheEntry = CacheEntry {
        ptr: 0,
        word: 0,
        len: 0,
        id: 0,
        head: [0; 2],
    };
}

#[derive(Clone, Copy)]
struct Entry {
    hash: u64,
    word: u32,
    len: u32,
    id: u64,
}

/// The result of a lookup: the id, and for a text new to the generation,
/// where its bytes are (`Strings::bytes`) so the caller writes its
/// `string` event.
#[derive(Clone, Copy, Debug)]
pub struct Interned {
    pub id: u64,
    pub new: Option<(u32, u32)>,
}

pub struct Strings {
    /// Allocated at the first text remembered: an empty table (a thread's
    /// slot at a generation's start, what a stop takes away) is a few
    /// words, cheap to make and to move.
    cache: Option<Box<[CacheEntry; CACHE]>>,
    /// 0: empty; else the hash's top 32 bits and the entry's index + 1.
    index: Vec<u64>,
    entries: Vec<Entry>,
    arena: Vec<u64>,
    next_id: u64,
}

impl Default for Strings {
    fn default() -> Self {
        Strings {
            cache: None,
            index: Vec::new(),
            entries: Vec::new(),
            arena: Vec::new(),
            next_id: 1,
        }
    }
}

#[inline(always)]
fn cache_slot(p: usize) -> usize {
    (p.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - 6)) & (CACHE - 1)
}

/// Read the 8 bytes at `p`, which may extend past the object `p` points
/// into but not past its page. In assembly: beyond the object, Rust's
/// rules would not allow the read; the hardware does, within the page.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn load_word(p: *const u8) -> u64 {
    let v: u64;
    // SAFETY: the caller guarantees the 8 bytes are in one mapped page.
    unsafe {
        core::arch::asm!(
            "mov {v}, qword ptr [{p}]",
            p = in(reg) p,
            v = lateout(reg) v,
            options(nostack, preserves_flags, readonly, pure)
        );
    }
    v
}

const WORD_READS: bool = cfg!(target_arch = "x86_64");

/// Does the C string at `p` equal the `n - 1` stored bytes and their NUL
/// (`stored`, little-endian words)? Reads no word of `p` past the one
/// holding its own NUL.
///
/// # Safety
/// `p` is a readable NUL-terminated string; `stored` holds `n` bytes.
#[inline(always)]
unsafe fn cstr_equals(p: *const u8, stored: &[u64], n: usize) -> bool {
    let mut off = 0;
    while off < n {
        let m = (n - off).min(8);
        let s = stored[off / 8];
        // SAFETY: every earlier word matched non-NUL stored bytes, so the
        // caller's string goes on at least to `off`.
        let q = unsafe { p.add(off) };
        if WORD_READS && (q as usize & 4095) <= 4096 - 8 {
            #[cfg(target_arch = "x86_64")]
            {
                // SAFETY: the 8 bytes are within q's page.
                let w = unsafe { load_word(q) };
                let mask = if m == 8 { !0 } else { (1u64 << (8 * m)) - 1 };
                if (w ^ s) & mask != 0 {
                    return false;
                }
            }
        } else {
            for i in 0..m {
                // SAFETY: bytes up to the first mismatch (the caller's NUL
                // at the latest, as stored bytes before `n - 1` are not 0).
                if unsafe { *q.add(i) } != (s >> (8 * i)) as u8 {
                    return false;
                }
            }
        }
        off += 8;
    }
    true
}

/// A keyed hash of the bytes (one multiply-fold per word).
fn hash(bytes: &[u8]) -> u64 {
    static KEY: std::sync::LazyLock<u64> = std::sync::LazyLock::new(|| {
        let mut b = [0u8; 8];
        // SAFETY: a valid 8-byte buffer.
        unsafe { libc::getrandom(b.as_mut_ptr().cast(), 8, libc::GRND_NONBLOCK) };
        u64::from_le_bytes(b) | 1
    });
    const M: u64 = 0x9E37_79B9_7F4A_7C15;
    fn fold(a: u64, b: u64) -> u64 {
        let f = u128::from(a) * u128::from(b);
        (f as u64) ^ ((f >> 64) as u64)
    }
    let mut h = *KEY ^ (bytes.len() as u64).wrapping_mul(M);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        h = fold(h ^ w, M);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        h = fold(h ^ u64::from_le_bytes(b), M ^ 0xff);
    }
    fold(h, *KEY)
}

impl Strings {
    /// The stored bytes at `word`, `len` long.
    pub fn bytes(&self, word: u32, len: u32) -> &[u8] {
        let start = word as usize * 8;
        // SAFETY: the arena's words as bytes (u64 has no padding).
        let all: &[u8] = unsafe {
            std::slice::from_raw_parts(self.arena.as_ptr().cast::<u8>(), self.arena.len() * 8)
        };
        &all[start..start + len as usize]
    }

    /// The id of the C string at `p` (not NULL; empty: id 0).
    ///
    /// # Safety
    /// `p` is a readable NUL-terminated string.
    #[inline]
    pub unsafe fn intern_cstr(&mut self, p: *const c_char) -> Result<Interned, NotUtf8> {
        let pu = p.cast::<u8>();
        let e = match &self.cache {
            Some(c) => &c[cache_slot(p as usize)],
            None => &CacheEntry::EMPTY,
        };
        if e.ptr == p as usize {
            let n = e.len as usize + 1;
            let same = if n <= 16 {
                // SAFETY: forwarded; `head` holds the first 16 bytes.
                unsafe { cstr_equals(pu, &e.head, n) }
            } else {
                let w = e.word as usize;
                // SAFETY: forwarded; the entry's bytes are in the arena.
                unsafe { cstr_equals(pu, &self.arena[w..w + n.div_ceil(8)], n) }
            };
            if same {
                return Ok(Interned {
                    id: e.id,
                    new: None,
                });
            }
        }
        // SAFETY: forwarded.
        unsafe { self.intern_cstr_slow(p) }
    }

    #[cold]
    unsafe fn intern_cstr_slow(&mut self, p: *const c_char) -> Result<Interned, NotUtf8> {
        // SAFETY: forwarded; `strnlen` reads at most MAX_STRING + 1 bytes.
        let len = unsafe { libc::strnlen(p, MAX_STRING + 1) };
        // SAFETY: `len` bytes are readable.
        let bytes = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) };
        let cut = len > MAX_STRING;
        let bytes = if cut { &bytes[..MAX_STRING] } else { bytes };
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t,
            // A character cut at the limit: what was cut is not recorded,
            // so it is not checked.
            // SAFETY: valid up to `valid_up_to`.
            Err(e) if cut && e.error_len().is_none() => unsafe {
                std::str::from_utf8_unchecked(&bytes[..e.valid_up_to()])
            },
            Err(_) => return Err(NotUtf8),
        };
        if cut {
            super::TRUNCATED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let (r, word) = self.intern_bytes(text.as_bytes());
        // Cache only an exact text (a cut one would never match its NUL).
        if !cut && r.id != 0 {
            self.remember(p as usize, r.id, word, len);
        }
        Ok(r)
    }

    /// The id of a Rust string (cut at `MAX_STRING`; empty: id 0).
    #[inline]
    pub fn intern_str(&mut self, s: &str) -> Interned {
        if s.is_empty() {
            return Interned { id: 0, new: None };
        }
        let p = s.as_ptr() as usize;
        let e = self
            .cache
            .as_ref()
            .map_or(CacheEntry::EMPTY, |c| c[cache_slot(p)]);
        if e.ptr == p
            && e.id != 0
            && e.len as usize == s.len()
            && self.bytes(e.word, e.len) == s.as_bytes()
        {
            return Interned {
                id: e.id,
                new: None,
            };
        }
        let text = if s.len() > MAX_STRING {
            super::TRUNCATED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut end = MAX_STRING;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            &s[..end]
        } else {
            s
        };
        let (r, word) = self.intern_bytes(text.as_bytes());
        // Not a text with a NUL inside: a C string at the same address
        // would be compared as if it ended there.
        if text.len() == s.len() && !s.as_bytes().contains(&0) {
            self.remember(p, r.id, word, s.len());
        }
        r
    }

    fn remember(&mut self, p: usize, id: u64, word: u32, len: usize) {
        let w = word as usize;
        let at = |i: usize| self.arena.get(w + i).copied().unwrap_or(0);
        let head = if len < 8 { [at(0), 0] } else { [at(0), at(1)] };
        let cache = self
            .cache
            .get_or_insert_with(|| Box::new([CacheEntry::EMPTY; CACHE]));
        cache[cache_slot(p)] = CacheEntry {
            ptr: p,
            word,
            len: len as u32,
            id,
            head,
        };
    }

    /// The text's id and where its bytes are.
    fn intern_bytes(&mut self, b: &[u8]) -> (Interned, u32) {
        if b.is_empty() {
            return (Interned { id: 0, new: None }, 0);
        }
        let h = hash(b);
        if let Some(e) = self.find(h, b) {
            return (
                Interned {
                    id: e.id,
                    new: None,
                },
                e.word,
            );
        }
        let words = (b.len() + 8) / 8;
        if self.entries.len() >= MAX_ENTRIES || (self.arena.len() + words) * 8 > MAX_ARENA_BYTES {
            self.forget();
        }
        if (self.entries.len() + 1) * 2 > self.index.len() {
            self.grow();
        }
        let word = self.arena.len() as u32;
        let mut padded = b.chunks(8);
        for c in &mut padded {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.arena.push(u64::from_le_bytes(w));
        }
        if b.len() % 8 == 0 {
            // The NUL gets a word of its own.
            self.arena.push(0);
        }
        let id = self.next_id;
        self.next_id += 1;
        let idx = self.entries.len();
        self.entries.push(Entry {
            hash: h,
            word,
            len: b.len() as u32,
            id,
        });
        self.insert_index(h, idx);
        (
            Interned {
                id,
                new: Some((word, b.len() as u32)),
            },
            word,
        )
    }

    fn find(&self, h: u64, b: &[u8]) -> Option<Entry> {
        if self.index.is_empty() {
            return None;
        }
        let mask = self.index.len() - 1;
        let mut i = h as usize & mask;
        loop {
            let e = self.index[i];
            if e == 0 {
                return None;
            }
            if (e >> 32) == (h >> 32) {
                let entry = self.entries[(e as u32 - 1) as usize];
                if entry.hash == h && self.bytes(entry.word, entry.len) == b {
                    return Some(entry);
                }
            }
            i = (i + 1) & mask;
        }
    }

    fn insert_index(&mut self, h: u64, idx: usize) {
        let mask = self.index.len() - 1;
        let mut i = h as usize & mask;
        while self.index[i] != 0 {
            i = (i + 1) & mask;
        }
        self.index[i] = (h >> 32) << 32 | (idx as u64 + 1);
    }

    fn grow(&mut self) {
        let n = (self.index.len() * 2).max(64);
        self.index = vec![0; n];
        for idx in 0..self.entries.len() {
            let h = self.entries[idx].hash;
            self.insert_index(h, idx);
        }
    }

    /// Forget every text (ids go on from where they are).
    fn forget(&mut self) {
        if let Some(c) = &mut self.cache {
            c.fill(CacheEntry::EMPTY);
        }
        self.index.iter_mut().for_each(|e| *e = 0);
        self.entries.clear();
        self.arena.clear();
    }

    /// How many texts are known (tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    #[test]
    fn a_text_keeps_its_id_and_a_reused_buffer_gets_the_new_text() {
        let mut s = Strings::default();
        let a = CString::new("request done").unwrap();
        let r1 = unsafe { s.intern_cstr(a.as_ptr()) }.unwrap();
        assert_eq!(r1.id, 1);
        let (w, l) = r1.new.expect("new");
        assert_eq!(s.bytes(w, l), b"request done");
        let r2 = unsafe { s.intern_cstr(a.as_ptr()) }.unwrap();
        assert_eq!((r2.id, r2.new.is_none()), (1, true));
        // The same buffer, other text: shorter, longer, same length.
        let mut buf = [0u8; 64];
        for text in [
            &b"request done"[..],
            b"request",
            b"request done twice",
            b"request dome",
        ] {
            buf.fill(0xAA);
            buf[..text.len()].copy_from_slice(text);
            buf[text.len()] = 0;
            let r = unsafe { s.intern_cstr(buf.as_ptr().cast()) }.unwrap();
            let want = s.find(hash(text), text).map(|e| e.id).unwrap();
            assert_eq!(r.id, want, "{:?}", std::str::from_utf8(text));
        }
        assert_eq!(s.len(), 4);
        // A Rust text with a NUL inside is never cached: a C string at
        // the same address must not match its first part.
        let inner = "ab\0cd";
        let r = s.intern_str(inner);
        let c = unsafe { s.intern_cstr(inner.as_ptr().cast()) }.unwrap();
        assert_ne!(r.id, c.id);
        assert_eq!(c.id, s.find(hash(b"ab"), b"ab").unwrap().id);
        // Rust strings share the table.
        assert_eq!(
            s.intern_str("request").id,
            s.find(hash(b"request"), b"request").unwrap().id
        );
        assert_eq!(s.intern_str("").id, 0);
        assert_eq!(unsafe { s.intern_cstr(c"".as_ptr()) }.unwrap().id, 0);
    }

    #[test]
    fn a_c_string_at_the_end_of_a_page_is_compared_without_reading_past_it() {
        // Two pages, the second one inaccessible: a string ending at the
        // first page's last byte must be found (and hit) without a fault.
        unsafe {
            let page = 4096;
            let m = libc::mmap(
                std::ptr::null_mut(),
                2 * page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(m, libc::MAP_FAILED);
            assert_eq!(
                libc::mprotect(m.cast::<u8>().add(page).cast(), page, libc::PROT_NONE),
                0
            );
            let mut s = Strings::default();
            for len in 0..20usize {
                let p = m.cast::<u8>().add(page - len - 1);
                for i in 0..len {
                    *p.add(i) = b'a' + (i % 26) as u8;
                }
                *p.add(len) = 0;
                let first = s.intern_cstr(p.cast()).unwrap();
                let again = s.intern_cstr(p.cast()).unwrap();
                assert_eq!(first.id, again.id, "len {len}");
                assert!(again.new.is_none());
            }
            libc::munmap(m, 2 * page);
        }
    }

    #[test]
    fn invalid_utf8_is_refused_and_long_texts_are_cut_at_a_boundary() {
        let mut s = Strings::default();
        let bad = CString::new(vec![b'a', 0xff, b'b']).unwrap();
        assert!(unsafe { s.intern_cstr(bad.as_ptr()) }.is_err());
        // 'é' (2 bytes) straddling the limit: cut before it.
        let mut long = "x".repeat(MAX_STRING - 1);
        long.push('é');
        long.push_str("tail");
        let c = CString::new(long.clone()).unwrap();
        let r = unsafe { s.intern_cstr(c.as_ptr()) }.unwrap();
        let (w, l) = r.new.unwrap();
        assert_eq!(l as usize, MAX_STRING - 1);
        assert_eq!(s.bytes(w, l), &long.as_bytes()[..MAX_STRING - 1]);

        // Invalid bytes past the limit are not looked at.
        let mut v = vec![b'y'; MAX_STRING + 10];
        v[MAX_STRING + 5] = 0xff;
        let c = CString::new(v).unwrap();
        assert!(unsafe { s.intern_cstr(c.as_ptr()) }.is_ok());
    }

    #[test]
    fn the_table_is_bounded_and_ids_are_never_reused() {
        let mut s = Strings::default();
        let mut seen = std::collections::HashSet::new();
        for i in 0..3 * MAX_ENTRIES {
            let t = format!("text number {i}");
            let r = s.intern_str(&t);
            assert!(r.new.is_some());
            assert!(seen.insert(r.id), "id {} reused", r.id);
            assert!(s.len() <= MAX_ENTRIES);
            assert!(s.index.len() <= 2 * MAX_ENTRIES);
        }
        // A text seen before the table forgot gets a new id.
        let r = s.intern_str("text number 0");
        assert!(r.new.is_some() && seen.insert(r.id));
    }
}
