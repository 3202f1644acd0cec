#![cfg(not(loom))]
//! Property, through the real lock path: acquiring locks in any order the
//! declared DAG allows is never reported; taking one in an order it does not
//! allow always is. Ranks go to the process-wide table (unique names).
//! Reports are queued (`RTC_LOCKRANK_QUEUE`), not printed, and each is
//! checked: the wanted lock's rank and the held one it conflicts with.

use std::ffi::{CStr, CString};

use rtcore::ffi::general::rtc_lockrank_mode::RTC_LOCKRANK_QUEUE;
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
    assert_eq!(rtc_lockrank_set_mode(RTC_LOCKRANK_QUEUE as i32), RTC_OK);
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
