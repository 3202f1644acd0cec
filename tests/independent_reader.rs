#![cfg(not(loom))]
//! docs/trace-format.md checked by a reader written from it alone
//! (tests/independent_reader/reader.py, Python, standard library only): on
//! real traces (the demo's, a stress run's, one cut in its last generation)
//! its verdict, summary and statistics must equal `rtcore check`'s and
//! `rtcore stats --json`'s; on a few hundred deterministic mutations of a
//! real trace (bytes flipped, records dropped, files truncated, events
//! deleted, repeated, swapped, moved or given other arguments) its verdict
//! class must equal `rtcore check`'s. A disagreement means the document is
//! wrong or incomplete (or the reader misread it).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const READER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/independent_reader/reader.py"
);

/// A directory under the system's temporary one, removed when dropped (also
/// when an assertion fails, so a failing run leaves nothing behind).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let d =
            std::env::temp_dir().join(format!("rtcore-independent-reader-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rtcore(args: &[&str], dir: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rtcore"))
        .args(args)
        .current_dir(dir)
        .env_remove("RTCORE_DEBUG")
        .output()
        .expect("run rtcore");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The reader started on many files at once (one JSON line each), so that
/// Python starts once; the caller collects it with `reader_results`.
fn spawn_reader(files: &[PathBuf]) -> std::process::Child {
    Command::new("python3")
        .arg(READER)
        .args(files)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3 (the independent reader needs it)")
}

fn reader_results(child: std::process::Child, files: &[PathBuf]) -> Vec<Json> {
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "reader failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Json> = stdout.lines().map(Json::parse).collect();
    assert_eq!(results.len(), files.len(), "one result per file:\n{stdout}");
    results
}

/// `rtcore check`'s verdict class from its exit status.
fn verdict_of(code: i32) -> &'static str {
    match code {
        0 => "consistent",
        3 => "cut",
        1 => "inconsistent",
        _ => "unexpected exit status",
    }
}

/// The integers of `text` after `marker`, in order.
fn numbers_after(text: &str, marker: &str) -> Vec<u64> {
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in {text:?}"));
    text[at + marker.len()..]
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().unwrap())
        .collect()
}

/// Compares `rtcore check`'s summary line with the reader's counts: for a
/// consistent trace events, generations, threads, bytes, ranges crossing
/// the start, open at the end; for a cut one the generation and byte it was
/// cut after, the bytes lost, events and threads.
fn compare_check_line(file: &Path, line: &str, mine: &Json) {
    let n = |k: &str| mine.get(k).num();
    let (theirs, ours) = match mine.get("verdict").str() {
        // The six counts; generations lost while recording, if any, follow
        // them (and are compared in the statistics).
        "consistent" => (
            numbers_after(line, "consistent: ")[..6].to_vec(),
            vec![
                n("events"),
                n("generations"),
                n("threads"),
                n("bytes"),
                n("crossed_start"),
                n("open_at_end"),
            ],
        ),
        "cut" => {
            let cut = mine.get("cut");
            let mut theirs = numbers_after(line, "cut short after generation ");
            theirs.truncate(3);
            theirs.extend(numbers_after(
                line,
                "complete generation(s) are consistent: ",
            ));
            (
                theirs,
                vec![
                    cut.get("after_generation").num(),
                    cut.get("at_byte").num(),
                    cut.get("lost_bytes").num(),
                    n("events"),
                    n("threads"),
                ],
            )
        }
        _ => return,
    };
    assert_eq!(
        theirs,
        ours,
        "{}: rtcore check said {line:?}",
        file.display()
    );
}

/// Compares `rtcore stats --json` with the reader's summary and statistics.
/// `waiting_at_end` and `bytes_per_event` are left out: the document does
/// not describe the first nor how the second is rounded.
fn compare_stats(file: &Path, stats: &Json, mine: &Json) {
    for key in [
        "events",
        "generations",
        "by_kind",
        "crossed_start",
        "open_at_end",
    ] {
        assert_eq!(stats.get(key), mine.get(key), "{}: {key}", file.display());
    }
    let derived = mine.get("stats");
    for key in [
        "bytes",
        "duration_ns",
        "stops_of_the_world",
        "threads",
        "blocking",
        "locks",
        "sysmon",
    ] {
        assert_eq!(
            stats.get(key),
            derived.get(key),
            "{}: {key}",
            file.display()
        );
    }
    for key in ["cut", "lost"] {
        assert_eq!(stats.get(key), mine.get(key), "{}: {key}", file.display());
    }
}

/// The records of a trace: (offset, kind, length with the frame) after the
/// 24-byte header, walked by their frames' lengths.
fn records(data: &[u8]) -> Vec<(usize, u8, usize)> {
    let mut out = Vec::new();
    let mut pos = 24;
    while pos + 16 <= data.len() {
        let len = u32::from_le_bytes(data[pos + 8..pos + 12].try_into().unwrap()) as usize;
        out.push((pos, data[pos + 4], 16 + len));
        pos += 16 + len;
    }
    assert_eq!(pos, data.len(), "a trace made of whole records");
    out
}

/// Rewrites a record's frame for its (changed) body: length and CRC.
fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + body.len());
    out.extend_from_slice(b"RTB1");
    out.extend_from_slice(&[kind, 0, 0, 0]);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out.extend_from_slice(body);
    out
}

fn uvarint(data: &[u8], pos: &mut usize) -> u64 {
    let (mut v, mut shift) = (0u64, 0);
    loop {
        let b = data[*pos];
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return v;
        }
        shift += 7;
    }
}

fn put_uvarint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A trace of threads outside the world: tests/preload/scenarios.c's
/// "waits" under `rtcore run --trace` with 5 ms generations (condition and
/// lock waits crossing generation starts, thread names).
fn outside_trace(dir: &Path) -> PathBuf {
    common::lib_dir();
    let exe = dir.join("scenarios");
    let src = common::manifest_dir().join("tests/preload/scenarios.c");
    let st = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-g", "-O0", "-pthread", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
        .expect("run the C compiler");
    assert!(st.success(), "compiling {} failed", src.display());
    let trace = dir.join("outside.rtctrace");
    let out = Command::new(env!("CARGO_BIN_EXE_rtcore"))
        .args(["run", "--trace", trace.to_str().unwrap(), "--"])
        .arg(&exe)
        .arg("waits")
        .env("RTCORE_TRACE_GENERATION_MS", "5")
        .env_remove("LD_PRELOAD")
        .output()
        .expect("run rtcore run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    trace
}

/// Argument types per event kind, as the document's table gives them:
/// U uvarint (S and Str are uvarints too on the wire), B length and bytes.
fn arg_types(kind: u8) -> &'static str {
    const TABLE: [&str; 40] = [
        "UU", "UB", "UUUUUUUU", "UUUU", "U", "UU", "UUU", "UU", "UU", "UUU", "UU", "UUU", "",
        "UUUU", "UUU", "UUU", "U", "UU", "UU", "UU", "U", "U", "", "UU", "U", "U", "", "UU", "UU",
        "UUU", "UUU", "UU", "UU", "UUUUU", "UU", "U", "UU", "", "UUU", "U",
    ];
    TABLE[kind as usize - 1]
}

/// One event of a version-4 batch body: its byte range and its arguments'.
struct Event {
    start: usize,
    end: usize,
    kind: u8,
    args: Vec<(usize, usize)>,
}

/// The events of a batch body (of a consistent trace).
fn events(body: &[u8]) -> Vec<Event> {
    let mut pos = 8;
    for _ in 0..4 {
        uvarint(body, &mut pos); // generation, thread, batch seq, base ts
    }
    let mut out = Vec::new();
    while pos < body.len() {
        let start = pos;
        let head = body[pos];
        pos += 1;
        if head >> 6 == 3 {
            uvarint(body, &mut pos);
        }
        let kind = head & 0x3f;
        let mut args = Vec::new();
        for t in arg_types(kind).bytes() {
            let a = pos;
            let n = uvarint(body, &mut pos);
            if t == b'B' {
                pos += n as usize;
            }
            args.push((a, pos));
        }
        out.push(Event {
            start,
            end: pos,
            kind,
            args,
        });
    }
    out
}

/// A small deterministic generator (xorshift64*), so that the mutations
/// are the same on every run of a given trace.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

/// Mutations of a consistent trace: (what was done, the bytes). Byte-level
/// ones reach the framing; event-level ones (batch re-framed with a good
/// CRC) reach the decoder and the state machines. Events that are neither
/// `string` nor `log` are chosen, since those two only carry text.
fn mutations(data: &[u8], count: usize) -> Vec<(String, Vec<u8>)> {
    let recs = records(data);
    let batches: Vec<usize> = (0..recs.len()).filter(|&i| recs[i].1 == 1).collect();
    let body = |i: usize| &data[recs[i].0 + 16..recs[i].0 + recs[i].2];
    let parsed: BTreeMap<usize, Vec<Event>> =
        batches.iter().map(|&i| (i, events(body(i)))).collect();
    let interesting: Vec<(usize, usize)> = parsed
        .iter()
        .flat_map(|(&i, evs)| {
            evs.iter()
                .enumerate()
                .filter(|(_, e)| e.kind != 2 && e.kind != 28)
                .map(move |(j, _)| (i, j))
        })
        .collect();
    assert!(interesting.len() > 50, "too few events to mutate");
    // Rebuilds the file with record `at` given a new body.
    let rebuild = |at: usize, new_body: &[u8]| {
        let (pos, kind, len) = recs[at];
        [&data[..pos], &frame(kind, new_body)[..], &data[pos + len..]].concat()
    };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::new();
    for m in 0..count {
        let mutation = match m % 10 {
            0 => {
                let at = rng.below(data.len());
                let mut d = data.to_vec();
                d[at] ^= 1 << rng.below(8);
                (format!("flip byte {at}"), d)
            }
            1 => {
                let (pos, _, len) = recs[rng.below(recs.len())];
                (
                    format!("drop the record at {pos}"),
                    [&data[..pos], &data[pos + len..]].concat(),
                )
            }
            2 => {
                let at = rng.below(data.len());
                (format!("truncate at {at}"), data[..at].to_vec())
            }
            3 => {
                let (pos, _, _) = recs[rng.below(recs.len())];
                (
                    format!("truncate at the record at {pos}"),
                    data[..pos].to_vec(),
                )
            }
            4 => {
                let i = batches[rng.below(batches.len())];
                let mut b = body(i).to_vec();
                let at = 8 + rng.below(b.len() - 8);
                b[at] = rng.below(256) as u8;
                (
                    format!("batch at {}: byte {at} set, CRC fixed", recs[i].0),
                    rebuild(i, &b),
                )
            }
            _ => {
                let (i, j) = interesting[rng.below(interesting.len())];
                let evs = &parsed[&i];
                let e = &evs[j];
                let mut b = body(i).to_vec();
                let what = match m % 10 {
                    5 => {
                        b.drain(e.start..e.end);
                        "deleted"
                    }
                    6 => {
                        let copy = b[e.start..e.end].to_vec();
                        b.splice(e.end..e.end, copy);
                        "repeated"
                    }
                    7 if j + 1 < evs.len() => {
                        let swapped = [&b[e.end..evs[j + 1].end], &b[e.start..e.end]].concat();
                        b.splice(e.start..evs[j + 1].end, swapped);
                        "swapped with the next"
                    }
                    8 if !e.args.is_empty() => {
                        let (a, z) = e.args[rng.below(e.args.len())];
                        let mut p = a;
                        let v = uvarint(&b, &mut p);
                        let mut enc = Vec::new();
                        put_uvarint(
                            [v.wrapping_add(1), v.saturating_sub(1), v.wrapping_add(2), 0]
                                [rng.below(4)],
                            &mut enc,
                        );
                        b.splice(a..z, enc);
                        "given another argument"
                    }
                    _ => {
                        // Moved to the end of another batch (maybe another
                        // thread's, or the same).
                        let to = batches[rng.below(batches.len())];
                        let ev = b[e.start..e.end].to_vec();
                        b.drain(e.start..e.end);
                        let mut d = rebuild(i, &b);
                        let moved = records(&d)[to];
                        let mut tb = d[moved.0 + 16..moved.0 + moved.2].to_vec();
                        tb.extend_from_slice(&ev);
                        d.splice(moved.0..moved.0 + moved.2, frame(1, &tb));
                        out.push((
                            format!(
                                "event {j} (kind {}) of the batch at {} moved to the batch at {}",
                                e.kind, recs[i].0, recs[to].0
                            ),
                            d,
                        ));
                        continue;
                    }
                };
                (
                    format!(
                        "event {j} (kind {}) of the batch at {} {what}",
                        e.kind, recs[i].0
                    ),
                    rebuild(i, &b),
                )
            }
        };
        out.push(mutation);
    }
    out
}

#[test]
fn the_document_alone_reads_rtcores_traces_as_rtcore_does() {
    let python = Command::new("python3").arg("--version").output();
    assert!(
        python.is_ok_and(|o| o.status.success()),
        "python3 is needed to run the independent reader"
    );
    let tmp = TempDir::new();
    let dir = &tmp.0;

    // Real traces: the demo's (one long generation each, tasks, regions,
    // steals, a rank violation) and a stress run's (2 ms generations,
    // attach/detach churn, statuses at rollovers).
    let (code, out, err) = rtcore(&["demo"], dir);
    assert_eq!(code, 0, "demo failed:\n{out}\n{err}");
    let mut traces: Vec<PathBuf> = std::fs::read_dir(dir.join("rtcore-demo"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rtctrace"))
        .collect();
    traces.sort();
    assert!(traces.len() >= 3, "{} demo traces", traces.len());
    let stress = dir.join("stress.rtctrace");
    let (code, out, err) = rtcore(
        &[
            "stress",
            "--cycles",
            "30",
            // 50 ms at 2 ms a generation: many generations even when the
            // writer thread is starved for a while on a loaded machine
            // (with 10 ms, a loaded run once kept a trace of one).
            "--trace-ms",
            "50",
            "--generation-ms",
            "2",
            "--keep-last",
            stress.to_str().unwrap(),
        ],
        dir,
    );
    assert_eq!(code, 0, "stress failed:\n{out}\n{err}");
    let data = std::fs::read(&stress).unwrap();
    // Cut in its last generation: halfway between the last two generation
    // ends, as a killed program leaves it.
    let ends: Vec<usize> = records(&data)
        .iter()
        .filter(|r| r.1 == 2)
        .map(|r| r.0)
        .collect();
    assert!(
        ends.len() >= 2,
        "the stress trace has {} generations",
        ends.len()
    );
    let cut = dir.join("cut.rtctrace");
    std::fs::write(
        &cut,
        &data[..(ends[ends.len() - 2] + ends[ends.len() - 1]) / 2],
    )
    .unwrap();
    traces.push(stress.clone());
    traces.push(cut);
    traces.push(outside_trace(dir));

    let reader = spawn_reader(&traces);
    let mut expected = Vec::new();
    for t in &traces {
        let path = t.to_str().unwrap();
        let (code, line, err) = rtcore(&["check", path], dir);
        let (stats_code, stats, stats_err) = rtcore(&["stats", "--json", path], dir);
        assert_eq!(
            stats_code, code,
            "{path}: stats and check disagree: {stats_err}"
        );
        expected.push((code, format!("{line}{err}"), Json::parse(&stats)));
    }
    let mut events = 0;
    for ((t, mine), (code, line, stats)) in traces
        .iter()
        .zip(reader_results(reader, &traces))
        .zip(&expected)
    {
        let want = if t.ends_with("cut.rtctrace") {
            "cut"
        } else {
            "consistent"
        };
        assert_eq!(verdict_of(*code), want, "{}: {line}", t.display());
        assert_eq!(mine.get("verdict").str(), want, "{}: {mine:?}", t.display());
        compare_check_line(t, line, &mine);
        compare_stats(t, stats, &mine);
        events += mine.get("events").num();
    }

    // Mutations of the stress trace, each judged by both. The reader runs
    // on all of them while rtcore checks them one by one.
    let muts = mutations(&data, 400);
    let files: Vec<PathBuf> = (0..muts.len())
        .map(|i| dir.join(format!("m{i}.rtctrace")))
        .collect();
    for (f, (_, bytes)) in files.iter().zip(&muts) {
        std::fs::write(f, bytes).unwrap();
    }
    let reader = spawn_reader(&files);
    let checks: Vec<(i32, String)> = files
        .iter()
        .map(|f| {
            let (code, out, err) = rtcore(&["check", f.to_str().unwrap()], dir);
            (code, format!("{out}{err}"))
        })
        .collect();
    let mut classes = BTreeMap::new();
    for (((f, (what, _)), mine), (code, line)) in files
        .iter()
        .zip(&muts)
        .zip(reader_results(reader, &files))
        .zip(&checks)
    {
        let verdict = verdict_of(*code);
        assert_eq!(
            mine.get("verdict").str(),
            verdict,
            "{what}: rtcore check said {line:?}, the reader {mine:?}"
        );
        compare_check_line(f, line, &mine);
        *classes.entry(verdict).or_insert(0) += 1;
    }
    // The mutations must reach every verdict, or the comparison proves little.
    assert_eq!(classes.len(), 3, "verdicts of the mutations: {classes:?}");
    eprintln!(
        "independent reader: {} traces ({events} events) agree; {} mutations agree ({classes:?})",
        traces.len(),
        muts.len()
    );
}

/// Just enough JSON for the two programs' outputs: objects compare whatever
/// their key order, numbers by their text (both print integers plainly).
#[derive(Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    Obj(BTreeMap<String, Json>),
}

impl Json {
    fn parse(text: &str) -> Json {
        let mut p = text.trim().char_indices().peekable();
        let v = Json::value(text.trim(), &mut p);
        assert!(p.next().is_none(), "trailing text in {text:?}");
        v
    }

    fn value(s: &str, p: &mut std::iter::Peekable<std::str::CharIndices>) -> Json {
        while p.next_if(|c| c.1.is_whitespace()).is_some() {}
        let (at, c) = p.next().unwrap_or_else(|| panic!("JSON ends early: {s:?}"));
        match c {
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                let (mut obj, mut arr) = (BTreeMap::new(), Vec::new());
                loop {
                    while p.next_if(|c| c.1.is_whitespace() || c.1 == ',').is_some() {}
                    if p.next_if(|c| c.1 == close).is_some() {
                        break;
                    }
                    if c == '{' {
                        let Json::Str(k) = Json::value(s, p) else {
                            panic!("JSON key in {s:?}")
                        };
                        while p.next_if(|c| c.1.is_whitespace() || c.1 == ':').is_some() {}
                        obj.insert(k, Json::value(s, p));
                    } else {
                        arr.push(Json::value(s, p));
                    }
                }
                if c == '{' {
                    Json::Obj(obj)
                } else {
                    Json::Arr(arr)
                }
            }
            '"' => {
                let mut out = String::new();
                loop {
                    match p.next().map(|c| c.1) {
                        Some('"') => break,
                        Some('\\') => match p.next().map(|c| c.1) {
                            Some('u') => {
                                let hex: String =
                                    (0..4).filter_map(|_| p.next().map(|c| c.1)).collect();
                                out.push(
                                    char::from_u32(u32::from_str_radix(&hex, 16).unwrap())
                                        .unwrap_or('\u{fffd}'),
                                );
                            }
                            Some('n') => out.push('\n'),
                            Some('t') => out.push('\t'),
                            Some('r') => out.push('\r'),
                            Some('b') => out.push('\u{8}'),
                            Some('f') => out.push('\u{c}'),
                            Some(c) => out.push(c),
                            None => panic!("JSON string ends early: {s:?}"),
                        },
                        Some(c) => out.push(c),
                        None => panic!("JSON string ends early: {s:?}"),
                    }
                }
                Json::Str(out)
            }
            _ => {
                let mut end = at + c.len_utf8();
                while let Some((i, c)) = p.next_if(|c| !",]}: \n".contains(c.1)) {
                    end = i + c.len_utf8();
                }
                match &s[at..end] {
                    "null" => Json::Null,
                    "true" => Json::Bool(true),
                    "false" => Json::Bool(false),
                    n => Json::Num(n.to_string()),
                }
            }
        }
    }

    /// A key of an object; Null when absent (as Python's None prints).
    fn get(&self, key: &str) -> &Json {
        match self {
            Json::Obj(m) => m.get(key).unwrap_or(&Json::Null),
            _ => panic!("{key} of a non-object: {self:?}"),
        }
    }

    fn num(&self) -> u64 {
        match self {
            Json::Num(n) => n.parse().unwrap_or_else(|_| panic!("not an integer: {n}")),
            _ => panic!("not a number: {self:?}"),
        }
    }

    fn str(&self) -> &str {
        match self {
            Json::Str(s) => s,
            _ => panic!("not a string: {self:?}"),
        }
    }
}
