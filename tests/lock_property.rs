#![cfg(not(loom))]
//! Property, through the real lock path: acquiring locks in any order the
//! declared DAG allows is never reported; taking one in an order it does not
//! allow always is. Ranks go to the process-wide table (unique names).
//! Reports are queued (`RTC_LOCKRANK_QUEUE`), not printed, and each is
//! checked: the wanted lock's rank and the held one it conflicts with.

use std::ffi::{CStr, CString};

use rtcore::ffi::general::rtc_lockrank_mode::{RTC_LOCKRANK_OFF, RTC_LOCKRANK_QUEUE};
use rtcore::ffi::mutex::{rtc_mutex_init, rtc_mutex_lock, rtc_mutex_unlock};
use rtcore::ffi::ranks::{
    rtc_lockrank_next_report, rtc_lockrank_report_free, rtc_lockrank_set_mode,
    rtc_lockrank_violations, rtc_ranks_load,
};
use rtcore::lock::mutex::rtc_mutex;
use rtcore::status::rtc_status::RTC_OK;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The tests count the process-wide violations: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn violations() -> u64 {
    let mut n = 0;
    assert_eq!(rtc_lockrank_violations(&mut n), RTC_OK);
    n
}

/// The oldest queued report, as (the wanted lock's rank, the ranks of the
/// held locks it conflicts with); None if none is queued.
fn next_report() -> Option<(String, Vec<String>)> {
    let mut r = std::ptr::null_mut();
    assert_eq!(rtc_lockrank_next_report(&mut r), RTC_OK);
    if r.is_null() {
        return None;
    }
    let text = |p: *const std::ffi::c_char| {
        // SAFETY: the report's strings are NUL-terminated while it lives.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    };
    // SAFETY: a report from the queue, valid until freed below.
    let rep = unsafe { &*r };
    // SAFETY: `held` has `held_count` entries.
    let held = unsafe { std::slice::from_raw_parts(rep.held, rep.held_count) };
    let conflicts = held
        .iter()
        .filter(|h| h.flags & 2 != 0) // RTC_LOCKRANK_HELD_CONFLICTS
        .map(|h| text(h.rank))
        .collect();
    let out = (text(rep.wanted.rank), conflicts);
    rtc_lockrank_report_free(r);
    Some(out)
}

fn zeroed_mutex() -> Box<rtc_mutex> {
    // SAFETY: all-zero is a valid rtc_mutex.
    Box::new(unsafe { std::mem::zeroed() })
}

#[test]
fn allowed_orders_never_reported_forbidden_always() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(rtc_lockrank_set_mode(RTC_LOCKRANK_QUEUE as i32), RTC_OK);
    while next_report().is_some() {}
    let mut rng = Rng(0xdead_beef_1234_5678);
    for round in 0..12 {
        let n = 3 + rng.below(12) as usize;
        let mut preds: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (j, pj) in preds.iter_mut().enumerate().skip(1) {
            for i in 0..j {
                if rng.below(3) == 0 {
                    pj.push(i);
                }
            }
        }
        let name = |i: usize| format!("p{round}_{i}");
        let mut src = String::new();
        for (j, pj) in preds.iter().enumerate() {
            let lhs = if pj.is_empty() {
                "NONE".to_string()
            } else {
                pj.iter().map(|&i| name(i)).collect::<Vec<_>>().join(", ")
            };
            src.push_str(&format!("{lhs} < {};\n", name(j)));
        }
        let csrc = CString::new(src.clone()).unwrap();
        assert_eq!(
            rtc_ranks_load(csrc.as_ptr(), c"prop.ranks".as_ptr()),
            RTC_OK,
            "{src}"
        );
        let mut reach = vec![vec![false; n]; n];
        for j in 0..n {
            for &i in &preds[j] {
                reach[i][j] = true;
                for row in reach.iter_mut() {
                    if row[i] {
                        row[j] = true;
                    }
                }
            }
        }
        let mut locks: Vec<Box<rtc_mutex>> = (0..n).map(|_| zeroed_mutex()).collect();
        let rank_names: Vec<CString> = (0..n).map(|i| CString::new(name(i)).unwrap()).collect();
        for (m, r) in locks.iter_mut().zip(&rank_names) {
            assert_eq!(rtc_mutex_init(&mut **m, r.as_ptr(), r.as_ptr()), RTC_OK);
        }
        // Random allowed chains: each next lock is a successor of every held one.
        for _ in 0..40 {
            let before = violations();
            let mut held: Vec<usize> = Vec::new();
            let mut cur = rng.below(n as u64) as usize;
            loop {
                assert_eq!(rtc_mutex_lock(&mut *locks[cur]), RTC_OK);
                held.push(cur);
                let next: Vec<usize> = (0..n).filter(|&j| reach[cur][j]).collect();
                if next.is_empty() || rng.below(4) == 0 {
                    break;
                }
                cur = next[rng.below(next.len() as u64) as usize];
            }
            assert_eq!(
                violations(),
                before,
                "round {round}: allowed chain {held:?} reported\n{src}"
            );
            assert_eq!(next_report(), None, "round {round}: {held:?}");
            // Release in a random order.
            while !held.is_empty() {
                let k = rng.below(held.len() as u64) as usize;
                let i = held.swap_remove(k);
                assert_eq!(rtc_mutex_unlock(&mut *locks[i]), RTC_OK);
            }
        }
        // Every forbidden pair is reported.
        for i in 0..n {
            for j in 0..n {
                if i == j || reach[i][j] {
                    continue;
                }
                let before = violations();
                assert_eq!(rtc_mutex_lock(&mut *locks[i]), RTC_OK);
                assert_eq!(rtc_mutex_lock(&mut *locks[j]), RTC_OK);
                assert_eq!(
                    violations(),
                    before + 1,
                    "round {round}: {i} then {j} not reported\n{src}"
                );
                assert_eq!(
                    next_report(),
                    Some((name(j), vec![name(i)])),
                    "round {round}: {i} then {j}\n{src}"
                );
                assert_eq!(rtc_mutex_unlock(&mut *locks[j]), RTC_OK);
                assert_eq!(rtc_mutex_unlock(&mut *locks[i]), RTC_OK);
            }
        }
    }
}

/// Several locks of one rank (nestable, taken in increasing key order) and
/// of others, released in random orders: the held ranks the checker sees
/// must always be those of the locks still held (an out-of-order release
/// of the oldest lock of a rank must leave the rank held while another of
/// it is; the last one's release must clear it). Probed by taking a lock
/// whose rank may not follow: reported exactly when its rank's successor
/// is still held.
#[test]
fn same_rank_releases_in_any_order_keep_the_held_ranks() {
    use rtcore::ffi::mutex::rtc_mutex_lock_keyed;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(rtc_lockrank_set_mode(RTC_LOCKRANK_QUEUE as i32), RTC_OK);
    while next_report().is_some() {}
    let src = "NONE < nx_lo;\nnx_lo < nx_mid;\nnx_mid < nx_hi;\nnestable: nx_mid;\n";
    let csrc = CString::new(src).unwrap();
    assert_eq!(
        rtc_ranks_load(csrc.as_ptr(), c"nest.ranks".as_ptr()),
        RTC_OK
    );
    let init = |rank: &std::ffi::CStr| {
        let mut m = zeroed_mutex();
        assert_eq!(
            rtc_mutex_init(&mut *m, rank.as_ptr(), rank.as_ptr()),
            RTC_OK
        );
        m
    };
    let mut mids: Vec<Box<rtc_mutex>> = (0..4).map(|_| init(c"nx_mid")).collect();
    let mut hi = init(c"nx_hi");
    let mut lo = init(c"nx_lo");
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for round in 0..300 {
        // Take k mids in increasing key order, maybe the hi on top.
        let k = 1 + rng.below(4) as usize;
        let mut held: Vec<usize> = Vec::new();
        for (i, m) in mids.iter_mut().enumerate().take(k) {
            assert_eq!(rtc_mutex_lock_keyed(&mut **m, 10 + i as u64), RTC_OK);
            held.push(i);
        }
        let with_hi = rng.below(2) == 0;
        if with_hi {
            assert_eq!(rtc_mutex_lock(&mut *hi), RTC_OK);
        }
        // Release the mids in a random order, probing after each release:
        // taking `lo` (below nx_mid) is a violation while any mid is held.
        while !held.is_empty() {
            let j = rng.below(held.len() as u64) as usize;
            let i = held.remove(j);
            assert_eq!(rtc_mutex_unlock(&mut *mids[i]), RTC_OK);
            let before = violations();
            assert_eq!(rtc_mutex_lock(&mut *lo), RTC_OK);
            let reported = violations() - before;
            assert_eq!(rtc_mutex_unlock(&mut *lo), RTC_OK);
            // With the hi held, lo is reported for it anyway (one report
            // per acquisition).
            let expect = u64::from(!held.is_empty() || with_hi);
            assert_eq!(
                reported, expect,
                "round {round}: probe with mids {held:?} held (hi: {with_hi})"
            );
            // The queued report (not printed): lo wanted, against a
            // held mid or the hi.
            match next_report() {
                Some((wanted, conflicts)) => {
                    assert!(expect == 1 && wanted == "nx_lo", "{wanted} {conflicts:?}");
                    assert!(
                        !conflicts.is_empty()
                            && conflicts.iter().all(|r| r == "nx_mid" || r == "nx_hi"),
                        "{conflicts:?}"
                    );
                }
                None => assert_eq!(expect, 0, "round {round}: no report queued"),
            }
        }
        if with_hi {
            assert_eq!(rtc_mutex_unlock(&mut *hi), RTC_OK);
        }
        let before = violations();
        assert_eq!(rtc_mutex_lock(&mut *lo), RTC_OK);
        assert_eq!(
            violations(),
            before,
            "round {round}: nothing held, lo reported"
        );
        assert_eq!(rtc_mutex_unlock(&mut *lo), RTC_OK);
    }
}

/// Locks taken with checking on and released with it off (and the other
/// way round), in and out of order, leave no entry behind: a left entry
/// would make a later acquisition that must come before it a violation.
/// (The unlock skips its look for an entry below the top when no entry
/// has the mutex's rank: this is where that shortcut could go wrong.)
#[test]
fn switching_checking_off_and_on_with_locks_held_leaves_no_entry() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let src = c"NONE < sw_z;\nsw_z < sw_a;\nsw_a < sw_b;\n";
    assert_eq!(
        rtc_ranks_load(src.as_ptr(), c"switch.ranks".as_ptr()),
        RTC_OK
    );
    let named = |r: &CStr| {
        let mut m = zeroed_mutex();
        assert_eq!(rtc_mutex_init(&mut *m, r.as_ptr(), r.as_ptr()), RTC_OK);
        m
    };
    let (mut a, mut b, mut z) = (named(c"sw_a"), named(c"sw_b"), named(c"sw_z"));
    // z may not be taken while a (or b) is held: the probe for a left entry.
    let probe = |z: &mut rtc_mutex, what: &str| {
        let before = violations();
        assert_eq!(rtc_mutex_lock(z), RTC_OK);
        assert_eq!(rtc_mutex_unlock(z), RTC_OK);
        assert_eq!(violations(), before, "{what}: an entry was left behind");
    };
    let on = || assert_eq!(rtc_lockrank_set_mode(RTC_LOCKRANK_QUEUE as i32), RTC_OK);
    let off = || assert_eq!(rtc_lockrank_set_mode(RTC_LOCKRANK_OFF as i32), RTC_OK);
    for round in 0..3 {
        // On, then off: released out of order (a below the top), then in
        // order.
        let (pa, pb): (*mut rtc_mutex, *mut rtc_mutex) = (&mut *a, &mut *b);
        for (order, first, second) in [("out of order", pa, pb), ("in order", pb, pa)] {
            on();
            assert_eq!(rtc_mutex_lock(pa), RTC_OK);
            assert_eq!(rtc_mutex_lock(pb), RTC_OK);
            off();
            assert_eq!(rtc_mutex_unlock(first), RTC_OK);
            assert_eq!(rtc_mutex_unlock(second), RTC_OK);
            on();
            probe(&mut z, &format!("round {round}: on, then off, {order}"));
        }
        // Off, then on: a (taken unrecorded) released below a recorded b.
        off();
        assert_eq!(rtc_mutex_lock(&mut *a), RTC_OK);
        on();
        assert_eq!(rtc_mutex_lock(&mut *b), RTC_OK);
        assert_eq!(rtc_mutex_unlock(&mut *a), RTC_OK);
        assert_eq!(rtc_mutex_unlock(&mut *b), RTC_OK);
        probe(&mut z, &format!("round {round}: off, then on"));
        // Off throughout, with an entry of another rank recorded below.
        assert_eq!(rtc_mutex_lock(&mut *z), RTC_OK);
        off();
        for _ in 0..3 {
            assert_eq!(rtc_mutex_lock(&mut *a), RTC_OK);
            assert_eq!(rtc_mutex_unlock(&mut *a), RTC_OK);
        }
        on();
        assert_eq!(rtc_mutex_unlock(&mut *z), RTC_OK);
        probe(&mut z, &format!("round {round}: off over a recorded lock"));
    }
    while next_report().is_some() {}
}
