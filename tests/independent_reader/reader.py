#!/usr/bin/env python3
"""An independent reader of rtcore traces, written from docs/trace-format.md
alone (not from rtcore's reader), so that tests/independent_reader.rs can
check that the document is complete and exact: wherever this reader and
`rtcore check` / `rtcore stats` disagree, the document is wrong or silent.

Usage: reader.py FILE [FILE ...]

Prints one JSON object per file, one per line:
  verdict       "consistent", "cut" (every complete generation consistent,
                the end missing) or "inconsistent"
  message       why, for "cut" and "inconsistent"
  events, generations, threads, bytes, crossed_start, open_at_end,
  cross_thread_unblocks, by_kind: the summary ("Validation", "The summary")
  cut           for a cut trace, as `rtcore stats --json` gives it: the
                last complete generation, the byte it ends at, the bytes lost
  lost          generations, events and bytes lost while recording (loss
                records), as `rtcore stats --json` gives them
  stats         what `rtcore stats --json` derives ("Statistics")
For a cut trace the counts are those of its complete generations. Exit
status 0 when every file was read (whatever its verdict), 2 on a usage or
I/O error.
"""

import json
import sys
import zlib

U64 = (1 << 64) - 1
MAX_BODY = 1 << 24
MAX_PROCS = 65536

# "Events": code -> (name, argument types). U uvarint, S svarint, Str string
# id, B length-prefixed bytes.
KINDS = {
    1: ("clock info", "UU"),
    2: ("string", "UB"),
    3: ("thread status", "U$UUUUUU"),
    4: ("proc status", "UUUU"),
    5: ("procs change", "U"),
    6: ("attach", "$U"),
    7: ("detach", "UUU"),
    8: ("P start", "UU"),
    9: ("P stop", "UU"),
    10: ("enter blocking", "UU$"),
    11: ("exit blocking (fast)", "UU"),
    12: ("P steal", "UUU"),
    13: ("exit blocking (after a steal)", ""),
    14: ("block", "UUUU"),
    15: ("unblock", "UUU"),
    16: ("preempt request", "UUU"),
    17: ("preempt ack", "U"),
    18: ("stall open", "UU"),
    19: ("stall resolved", "UU"),
    20: ("hook begin", "U$"),
    21: ("hook end", "U"),
    22: ("STW begin", "$"),
    23: ("STW end", ""),
    24: ("task begin", "U$"),
    25: ("task end", "U"),
    26: ("region begin", "$"),
    27: ("region end", ""),
    28: ("log", "$$"),
    29: ("counter", "$S"),
    30: ("lock contended", "U$U"),
    31: ("lock acquired", "UUU"),
    32: ("rank violation", "$$"),
    33: ("stall status", "UU"),
    34: ("rwlock contended", "U$UUU"),
    35: ("hook status", "UU"),
    36: ("STW status", "U"),
    37: ("outside wait", "UU"),
    38: ("outside resume", ""),
    39: ("outside status", "UUU"),
    40: ("thread name", "$"),
}
CLOCK_INFO, STRING, THREAD_STATUS, PROC_STATUS, PROCS_CHANGE = 1, 2, 3, 4, 5
ATTACH, DETACH, P_START, P_STOP, ENTER_BLOCKING, EXIT_FAST = 6, 7, 8, 9, 10, 11
P_STEAL, EXIT_STOLEN, BLOCK, UNBLOCK, PREEMPT_REQ, PREEMPT_ACK = 12, 13, 14, 15, 16, 17
STALL_OPEN, STALL_RESOLVED, HOOK_BEGIN, HOOK_END, STW_BEGIN, STW_END = 18, 19, 20, 21, 22, 23
TASK_BEGIN, TASK_END, REGION_BEGIN, REGION_END, LOG, COUNTER = 24, 25, 26, 27, 28, 29
LOCK_CONTENDED, LOCK_ACQUIRED, RANK_VIOLATION, STALL_STATUS = 30, 31, 32, 33
RWLOCK_CONTENDED, HOOK_STATUS, STW_STATUS = 34, 35, 36
OUTSIDE_WAIT, OUTSIDE_RESUME, OUTSIDE_STATUS, THREAD_NAME = 37, 38, 39, 40
HEADER_ONLY = {CLOCK_INFO, PROC_STATUS, STALL_STATUS, HOOK_STATUS, STW_STATUS, OUTSIDE_STATUS}
HEADER_ALLOWED = HEADER_ONLY | {STRING, PROCS_CHANGE}

# Thread states ("Thread states"); BLOCKING carries its P or None.
UNKNOWN, RUNNING, RUNNABLE, BLOCKING, WAITING, DETACHED = range(6)
STATUS_STATE = {1: RUNNING, 2: RUNNABLE, 3: BLOCKING, 4: WAITING}
STATE_NAMES = {RUNNING: "RUNNING", RUNNABLE: "RUNNABLE", BLOCKING: "BLOCKING", WAITING: "WAITING"}
# P states: (IDLE, None) | (P_RUNNING, thread) | (P_SYSCALL, thread).
P_IDLE, P_RUNNING, P_SYSCALL = 0, 1, 2


class Invalid(Exception):
    """The trace is inconsistent (or not a trace)."""


class Cut(Exception):
    """The file ends before its trace end."""


def inc(c):
    return (c + 1) & U64


class Buf:
    """A cursor over one body (or the file), reading the conventions' fields."""

    def __init__(self, data, pos, end, what):
        self.data, self.pos, self.end, self.what = data, pos, end, what

    def uvarint(self):
        value, shift, count = 0, 0, 0
        data, pos, end = self.data, self.pos, self.end
        while True:
            if pos >= end:
                raise Invalid(f"varint runs past the end of the {self.what}")
            byte = data[pos]
            pos += 1
            count += 1
            if count == 10 and byte > 1:
                raise Invalid("varint overflows 64 bits")
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                self.pos = pos
                return value
            if count == 10:
                raise Invalid("varint longer than 10 bytes")
            shift += 7

    def svarint(self):
        u = self.uvarint()
        return (u >> 1) ^ -(u & 1)

    def fixed(self, n):
        if self.end - self.pos < n:
            raise Invalid(f"{self.what} too short for its fixed fields")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def left(self):
        return self.end - self.pos


class Stream:
    """One thread's stream in one generation: its decoded events."""

    def __init__(self):
        self.batches = 0
        self.spans = []  # (base ts, start, end) of each batch's events, in order
        self.events = []  # (kind, ts, args) with Str arguments resolved to bytes
        self.strings = {}


def decode_batch(stream, data, ts, pos, end, version):
    """Decodes one batch's events, from base timestamp ts, into its stream
    ("Event", "Strings")."""
    buf = Buf(data, pos, end, "batch")
    events, strings = stream.events, stream.strings
    while buf.pos < end:
        head = data[buf.pos]
        buf.pos += 1
        if version == 1:
            kind, delta = head, buf.uvarint()
        else:
            kind, delta = head & 0x3F, head >> 6
            if delta == 3:
                delta = buf.uvarint()
        spec = KINDS.get(kind)
        if spec is None:
            raise Invalid(f"unknown event kind {kind}")
        ts += delta
        if ts > U64:
            raise Invalid("timestamp overflows 64 bits")
        args = []
        for t in spec[1]:
            if t == "U":
                args.append(buf.uvarint())
            elif t == "S":
                args.append(buf.svarint())
            elif t == "$":
                sid = buf.uvarint()
                if sid == 0:
                    args.append(None)
                elif sid in strings:
                    args.append(strings[sid])
                else:
                    raise Invalid(f"string id {sid} used before its definition")
            else:
                n = buf.uvarint()
                if n > buf.left():
                    raise Invalid("bytes longer than what is left of the batch")
                args.append(buf.fixed(n))
        if kind == STRING:
            sid = args[0]
            if sid == 0 or sid in strings:
                raise Invalid(f"string id {sid} is 0 or defined twice")
            strings[sid] = args[1]
        events.append((kind, ts, args))


class Thread:
    """A thread's state in one generation ("Thread states")."""

    __slots__ = ("state", "p", "tseq", "req", "ack", "status")

    def __init__(self):
        self.state, self.p = UNKNOWN, None
        self.tseq = self.req = self.ack = 0
        self.status = None  # (state, p) of its `thread status`, for the owners' check


class Generation:
    """Validates one generation: statuses, then the frontier."""

    def __init__(self, streams):
        self.streams = streams
        self.procs = []  # [state, owner, pseq]
        self.threads = {}
        self.episodes = set()
        self.tasks_begun, self.tasks_ended = set(), set()
        self.crossed = 0
        self.unblocks = 0

    def thread(self, tid):
        t = self.threads.get(tid)
        if t is None:
            t = self.threads[tid] = Thread()
        return t

    def grow(self, n):
        while len(self.procs) < n:
            self.procs.append([P_IDLE, 0, 0])

    def pseq_ok(self, p, n):
        return p < len(self.procs) and n == inc(self.procs[p][2])

    def run(self):
        header = self.streams.get(0)
        if header is None:
            raise Invalid("no header batch")
        hooks, stws, outside = {}, set(), {}
        proc_statuses = []
        clocks = 0
        for kind, _, a in header.events:
            if kind not in HEADER_ALLOWED:
                raise Invalid(f"{KINDS[kind][0]} in the header batch")
            if kind == CLOCK_INFO:
                clocks += 1
                if a[0] == 0 or clocks > 1:
                    raise Invalid("clock rate of 0 or a second clock info")
            elif kind == PROCS_CHANGE:
                if a[0] > MAX_PROCS:
                    raise Invalid("too many Ps")
                self.grow(a[0])
            elif kind == PROC_STATUS:
                p, state, owner, pseq = a
                if p >= len(self.procs) or state > 3:
                    raise Invalid("proc status of no P, or of an unknown state")
                self.procs[p] = [P_RUNNING if state == 1 else P_SYSCALL if state == 2 else P_IDLE,
                                 owner if state in (1, 2) else 0, pseq]
                proc_statuses.append((p, owner))
            elif kind == STALL_STATUS:
                if (a[0], a[1]) in self.episodes:
                    raise Invalid("stall status twice")
                self.episodes.add((a[0], a[1]))
            elif kind == HOOK_STATUS:
                if a[0] in hooks:
                    raise Invalid("runs two hooks")
                hooks[a[0]] = a[1]
            elif kind == STW_STATUS:
                if a[0] in stws:
                    raise Invalid("stops the world twice")
                stws.add(a[0])
            elif kind == OUTSIDE_STATUS:
                if a[0] in outside:
                    raise Invalid("waits outside the world twice")
                outside[a[0]] = a[2]
        if header.events and clocks != 1:
            raise Invalid("header batch without a clock info")

        # Per stream: [tid, events, next index, depth, stw open, hook run,
        # lock wait, outside wait (its object), an outside event seen].
        order = []
        for tid in sorted(self.streams):
            if tid == 0:
                continue
            evs = self.streams[tid].events
            i = 0
            while i < len(evs) and evs[i][0] == STRING:
                i += 1
            depth = 0
            if i < len(evs) and evs[i][0] == THREAD_STATUS:
                if tid in outside:
                    raise Invalid("a thread status for a thread waiting outside the world")
                self.apply_status(tid, evs[i][2])
                depth = evs[i][2][7]
                i += 1
            order.append([tid, evs, i, depth, tid in stws, hooks.get(tid), None,
                          outside.get(tid), tid in outside])
        for p, owner in proc_statuses:
            state = self.procs[p][0]
            if state == P_IDLE:
                continue
            t = self.threads.get(owner)
            if t is None or t.status is None:
                raise Invalid(f"P {p}'s owner {owner} has no status")
            want = RUNNING if state == P_RUNNING else BLOCKING
            if t.status != (want, p):
                raise Invalid(f"P {p}'s owner {owner} does not hold it")

        # "The frontier".
        pending = [s for s in order if s[2] < len(s[1])]
        while pending:
            applied = False
            for s in pending:
                evs, i = s[1], s[2]
                while i < len(evs) and self.apply(s, evs[i]):
                    i += 1
                if i != s[2]:
                    applied = True
                    s[2] = i
            if not applied:
                s = pending[0]
                raise Invalid(f"no stream can advance: thread {s[0]} at "
                              f"{KINDS[s[1][s[2]][0]][0]}")
            pending = [s for s in pending if s[2] < len(s[1])]

        # "Ranges across the trace's edges": what the generation leaves open.
        open_end = len(self.tasks_begun - self.tasks_ended) + len(self.episodes)
        # A hook run or stop named by the header for a thread without a
        # stream (thread 0 included) stays open too: rtcore counts it.
        open_end += sum(1 for tid in hooks if tid == 0 or tid not in self.streams)
        open_end += sum(1 for tid in stws if tid == 0 or tid not in self.streams)
        open_end += sum(1 for tid in outside if tid == 0 or tid not in self.streams)
        for s in order:
            open_end += s[3] + (1 if s[4] else 0) + (1 if s[5] is not None else 0) + \
                (1 if s[6] is not None else 0) + (1 if s[7] is not None else 0)
        self.crossed += len(self.tasks_ended - self.tasks_begun)
        return self.crossed, open_end

    def apply_status(self, tid, a):
        thread, _name, state, p1, tseq, requested, acked, _depth = a
        if thread != tid:
            raise Invalid("thread status of another thread")
        st = STATUS_STATE.get(state)
        if st is None:
            raise Invalid(f"thread state {state}")
        p = p1 - 1 if p1 else None
        if (st == RUNNING and p is None) or (st in (RUNNABLE, WAITING) and p is not None):
            raise Invalid("thread status state and P disagree")
        if p is not None:
            if p >= len(self.procs):
                raise Invalid("thread status names no P")
            want = P_RUNNING if st == RUNNING else P_SYSCALL
            if self.procs[p][0] != want or self.procs[p][1] != tid:
                raise Invalid("thread status names a P that is not its")
        if acked > requested:
            raise Invalid("acked above requested")
        t = self.thread(tid)
        t.state, t.p = st, p
        t.tseq, t.req, t.ack = tseq, requested, acked
        t.status = (st, p)

    def apply(self, s, ev):
        """Applies one event of stream s; False when it waits or is impossible."""
        kind, _, a = ev
        tid = s[0]
        if kind in (STRING, LOG, COUNTER, RANK_VIOLATION, THREAD_NAME):
            return True
        if kind == REGION_BEGIN:
            s[3] += 1
            return True
        if kind == REGION_END:
            if s[3] == 0:
                self.crossed += 1
            else:
                s[3] -= 1
            return True
        if kind in (LOCK_CONTENDED, RWLOCK_CONTENDED):
            if s[6] is not None:
                return False
            s[6] = a[0]
            return True
        if kind == LOCK_ACQUIRED:
            if s[6] is None:
                self.crossed += 1
            elif s[6] != a[0]:
                return False
            s[6] = None
            return True
        if kind == TASK_BEGIN:
            if a[0] == 0 or a[0] in self.tasks_begun:
                return False
            self.tasks_begun.add(a[0])
            return True
        if kind == TASK_END:
            if a[0] in self.tasks_ended:
                return False
            self.tasks_ended.add(a[0])
            return True
        if kind in (HOOK_BEGIN, HOOK_END):
            if kind == HOOK_BEGIN:
                if s[5] is not None:
                    return False
                s[5] = a[0]
            else:
                if s[5] != a[0]:
                    return False
                s[5] = None
            return True
        if kind in (STW_BEGIN, STW_END):
            if s[4] == (kind == STW_BEGIN):
                return False
            s[4] = kind == STW_BEGIN
            return True
        if kind in (STALL_OPEN, STALL_RESOLVED):
            ep = (a[0], a[1])
            if (ep in self.episodes) == (kind == STALL_OPEN):
                return False
            if kind == STALL_OPEN:
                self.episodes.add(ep)
            else:
                self.episodes.discard(ep)
            return True
        if kind == PROCS_CHANGE:
            if a[0] > MAX_PROCS:
                return False
            self.grow(a[0])
            return True
        if kind == P_STEAL:
            p, pseq, victim = a
            if p >= len(self.procs) or self.procs[p][0] != P_SYSCALL or \
                    self.procs[p][1] != victim or not self.pseq_ok(p, pseq):
                return False
            self.procs[p] = [P_IDLE, 0, pseq]
            v = self.thread(victim)
            v.state, v.p = BLOCKING, None
            return True
        if kind == UNBLOCK:
            u, tseq, waker = a
            t = self.thread(u)
            if t.state != WAITING or tseq != inc(t.tseq):
                return False
            t.state, t.tseq = RUNNABLE, tseq
            if waker not in (0, u):
                self.unblocks += 1
            return True
        if kind == PREEMPT_REQ:
            u, n, tseq = a
            t = self.thread(u)
            if t.state in (UNKNOWN, DETACHED) or t.tseq == U64 or tseq != t.tseq + 1 \
                    or n != inc(t.req):
                return False
            t.tseq, t.req = tseq, n
            return True
        if kind in HEADER_ONLY or kind == THREAD_STATUS:
            return False

        # The rest are transitions of the emitter itself.
        t = self.thread(tid)
        if kind in (OUTSIDE_WAIT, OUTSIDE_RESUME):
            # Only outside the world: never attached, or detached.
            if t.state not in (UNKNOWN, DETACHED):
                return False
            seen, s[8] = s[8], True
            if kind == OUTSIDE_WAIT:
                if s[7] is not None:
                    return False
                s[7] = a[1]
            elif s[7] is not None:
                s[7] = None
            elif not seen:
                self.crossed += 1
            else:
                s[8] = seen
                return False
            return True
        if kind == ATTACH:
            if s[7] is not None:
                return False
            if t.state == UNKNOWN:
                pass
            elif t.state == DETACHED and a[1] == inc(t.tseq):
                pass
            else:
                return False
            t.state, t.p, t.tseq, t.req, t.ack = RUNNABLE, None, a[1], 0, 0
            return True
        if kind == DETACH:
            p, pseq, tseq = a
            if t.state != RUNNING or t.p != p or tseq != t.tseq or not self.pseq_ok(p, pseq):
                return False
            t.state, t.p = DETACHED, None
            self.procs[p] = [P_IDLE, 0, pseq]
            return True
        if kind == P_START:
            p, pseq = a
            if t.state != RUNNABLE or p >= len(self.procs) or self.procs[p][0] != P_IDLE \
                    or not self.pseq_ok(p, pseq):
                return False
            t.state, t.p = RUNNING, p
            self.procs[p] = [P_RUNNING, tid, pseq]
            return True
        if kind in (P_STOP, BLOCK, ENTER_BLOCKING):
            p, pseq = (a[2], a[3]) if kind == BLOCK else (a[0], a[1])
            if t.state != RUNNING or t.p != p or not self.pseq_ok(p, pseq):
                return False
            if kind == ENTER_BLOCKING:
                t.state = BLOCKING
                self.procs[p] = [P_SYSCALL, tid, pseq]
            else:
                t.state, t.p = (RUNNABLE if kind == P_STOP else WAITING), None
                self.procs[p] = [P_IDLE, 0, pseq]
            return True
        if kind == EXIT_FAST:
            p, pseq = a
            if t.state != BLOCKING or t.p != p or not self.pseq_ok(p, pseq):
                return False
            t.state = RUNNING
            self.procs[p] = [P_RUNNING, tid, pseq]
            return True
        if kind == EXIT_STOLEN:
            if t.state != BLOCKING or t.p is not None:
                return False
            t.state = RUNNABLE
            return True
        if kind == PREEMPT_ACK:
            n = a[0]
            if t.state != RUNNING or not (t.ack < n <= t.req):
                return False
            t.ack = n
            return True
        raise AssertionError(kind)


class Reading:
    """What read_trace found, kept when it stops on a cut or an error."""

    def __init__(self):
        self.done = []  # (streams, crossed, open, unblocks) per valid generation
        self.last_ended = None  # number of the last generation ended (or lost)
        self.ended_at = None  # the offset just after its end (or loss) record
        self.lost = [0, 0, 0]  # generations, events, bytes lost while recording


def read_trace(data, r):
    """Reads and validates a whole file into r (a Reading); raises Cut or
    Invalid."""
    if len(data) < 24 or data[:8] != b"RTCTRACE":
        raise Invalid("not a trace")
    version = int.from_bytes(data[8:10], "little")
    if version not in (1, 2, 3, 4, 5):
        raise Invalid(f"format version {version}")
    trace_id = data[16:24]
    pos = 24
    open_gen = None  # number of the open generation
    streams = {}
    # A batch out of sequence rejects its generation at its end, or at the
    # end of the file, but not when a loss record drops the generation.
    bad_seq = None
    while True:
        if len(data) - pos < 16:
            if bad_seq:
                raise Invalid(bad_seq)
            raise Cut("truncated record frame" if pos < len(data) else "missing end-of-trace marker")
        if data[pos:pos + 4] != b"RTB1":
            raise Invalid("bad record magic")
        kind = data[pos + 4]
        length = int.from_bytes(data[pos + 8:pos + 12], "little")
        crc = int.from_bytes(data[pos + 12:pos + 16], "little")
        if kind not in (1, 2, 3, 4):
            raise Invalid(f"unknown record kind {kind}")
        if length > MAX_BODY:
            raise Invalid("record body too long")
        start, end = pos + 16, pos + 16 + length
        if end > len(data):
            if bad_seq:
                raise Invalid(bad_seq)
            raise Cut("record body cut short")
        if zlib.crc32(data[start:end]) != crc:
            raise Invalid("CRC mismatch")
        pos = end
        body = Buf(data, start, end, "body")
        if body.fixed(8) != trace_id:
            raise Invalid("record of another trace")
        gen = body.uvarint()
        if kind == 3:
            if open_gen is not None:
                raise Invalid("trace end while a generation is open")
            if r.last_ended is None or gen != r.last_ended:
                raise Invalid("trace end names another generation")
            if pos != len(data):
                raise Invalid("bytes after the trace end")
            return
        if open_gen is None:
            if gen == 0 or (r.last_ended is not None and gen != r.last_ended + 1):
                raise Invalid(f"record of generation {gen} out of order")
            open_gen = gen
            streams = {}
        elif gen != open_gen:
            raise Invalid(f"record of generation {gen} inside generation {open_gen}")
        if kind == 1:
            tid = body.uvarint()
            seq = body.uvarint()
            s = streams.get(tid)
            if s is None:
                s = streams[tid] = Stream()
            if seq != s.batches and bad_seq is None:
                bad_seq = f"batch {seq} of thread {tid}, expected {s.batches}"
            s.batches += 1
            s.spans.append((body.uvarint(), body.pos, end))
        elif kind == 4:
            # "Loss": the generation was dropped whole; nothing of it is
            # checked, its losses are added up.
            r.lost[0] += 1
            for _ in range(body.uvarint()):
                body.uvarint()
                body.uvarint()
                r.lost[1] += body.uvarint()
                r.lost[2] += body.uvarint()
            r.last_ended, r.ended_at, open_gen, bad_seq = gen, pos, None, None
        else:
            if bad_seq:
                raise Invalid(bad_seq)
            counts = {}
            for _ in range(body.uvarint()):
                tid = body.uvarint()
                counts[tid] = body.uvarint()
            for tid, n in counts.items():
                have = streams[tid].batches if tid in streams else 0
                if have != n:
                    raise Invalid(f"thread {tid} wrote {n} batches, {have} read")
            for tid in streams:
                if tid not in counts:
                    raise Invalid(f"thread {tid}'s batches not counted")
            # Events are decoded only now, when the generation is complete:
            # rtcore check does the same, so a cut trace's unfinished
            # generation is framed and sequenced but its events are not read.
            for s in streams.values():
                for base, start, stop in s.spans:
                    decode_batch(s, data, base, start, stop, version)
            g = Generation(streams)
            crossed, open_end = g.run()
            r.done.append((streams, crossed, open_end, g.unblocks))
            r.last_ended, r.ended_at, open_gen = gen, pos, None


def clock_of(header):
    """ns = floor(ticks * f / 2^32) with the generation's rate ("Conventions")."""
    for kind, _, a in header.events if header else ():
        if kind == CLOCK_INFO:
            f = max(1, (10**9 << 32) // a[0])
            return lambda ticks: min(U64, (ticks * f) >> 32)
    return lambda ticks: ticks


def text(b):
    return b.decode("utf-8", "replace") if b else ""


def statistics(gens, bytes_, events):
    """What `rtcore stats --json` derives ("Statistics")."""
    first = last = None
    threads = {}
    blocking = {}
    locks = {}
    sysmon = dict.fromkeys(("retakes", "stop_claims", "preempt_requests", "preempt_acks",
                            "thread_stalls", "lock_stalls", "hook_overruns",
                            "stalls_resolved"), 0)
    stops = 0
    for streams, *_ in gens:
        ns = clock_of(streams.get(0))
        gen_end = max((ev[1] for s in streams.values() for ev in s.events), default=None)
        gen_end = ns(gen_end) if gen_end is not None else 0
        for tid in sorted(streams):
            if tid == 0:
                continue
            evs = streams[tid].events
            row = threads.setdefault(tid, {"id": tid, "name": "", "events": 0,
                                           "state_ns": dict.fromkeys(STATE_NAMES.values(), 0)})
            row["events"] += len(evs)
            if evs:
                a, b = ns(evs[0][1]), ns(evs[-1][1])
                first = a if first is None else min(first, a)
                last = b if last is None else max(last, b)
            slice_ = None  # (state, start ns, reason)
            # Waiting outside the world as the generation began (its
            # header's "outside status"): from the header's first event.
            hdr = streams.get(0)
            if hdr is not None and hdr.events and any(
                    k == OUTSIDE_STATUS and a[0] == tid for k, _, a in hdr.events):
                slice_ = (WAITING, ns(hdr.events[0][1]), "")
            wait = None  # (address, owner)
            # A stream that begins inside its own stop ("STW status" in the
            # header): its steals are claims of that stop.
            header = streams.get(0)
            stw = header is not None and any(
                k == STW_STATUS and a[0] == tid for k, _, a in header.events
            )

            def end_slice(at):
                if slice_ is None:
                    return
                state, start, reason = slice_
                d = max(0, at - start)
                row["state_ns"][STATE_NAMES[state]] += d
                if state == BLOCKING:
                    r = blocking.setdefault(reason, [0, 0])
                    r[0] += 1
                    r[1] += d

            for kind, ts, a in evs:
                t = ns(ts)
                new = None
                if kind == THREAD_STATUS:
                    new = (STATUS_STATE.get(a[2], RUNNABLE), t, "")
                elif kind in (ATTACH, P_STOP, EXIT_STOLEN, UNBLOCK):
                    new = (RUNNABLE, t, "")
                elif kind in (P_START, EXIT_FAST):
                    new = (RUNNING, t, "")
                elif kind == ENTER_BLOCKING:
                    new = (BLOCKING, t, text(a[2]))
                elif kind in (BLOCK, OUTSIDE_WAIT):
                    new = (WAITING, t, "")
                if new is not None or kind in (DETACH, OUTSIDE_RESUME):
                    end_slice(t)
                    slice_ = new
                if kind in (THREAD_STATUS, ATTACH, THREAD_NAME) and \
                        a[1 if kind == THREAD_STATUS else 0]:
                    row["name"] = text(a[1 if kind == THREAD_STATUS else 0])
                if kind in (LOCK_CONTENDED, RWLOCK_CONTENDED):
                    wait = (a[0], a[2] if kind == LOCK_CONTENDED else a[3])
                    lk = locks.setdefault(a[0], {"address": a[0], "name": "", "contentions": 0,
                                                 "wait_total_ns": 0, "wait_max_ns": 0,
                                                 "owners": {}, "woken_by": {}})
                    if not lk["name"] and a[1]:
                        lk["name"] = text(a[1])
                elif kind == LOCK_ACQUIRED:
                    lk = locks.setdefault(a[0], {"address": a[0], "name": "", "contentions": 0,
                                                 "wait_total_ns": 0, "wait_max_ns": 0,
                                                 "owners": {}, "woken_by": {}})
                    lk["contentions"] += 1
                    lk["wait_total_ns"] += a[1]
                    lk["wait_max_ns"] = max(lk["wait_max_ns"], a[1])
                    if wait is not None and wait[0] == a[0]:
                        key = str(wait[1])
                        lk["owners"][key] = lk["owners"].get(key, 0) + 1
                    if a[2]:
                        key = str(a[2])
                        lk["woken_by"][key] = lk["woken_by"].get(key, 0) + 1
                    wait = None
                elif kind == STW_BEGIN:
                    stw = True
                    stops += 1
                elif kind == STW_END:
                    stw = False
                elif kind == P_STEAL:
                    sysmon["stop_claims" if stw else "retakes"] += 1
                elif kind == PREEMPT_REQ:
                    sysmon["preempt_requests"] += 1
                elif kind == PREEMPT_ACK:
                    sysmon["preempt_acks"] += 1
                elif kind == STALL_OPEN:
                    sysmon[{1: "thread_stalls", 2: "lock_stalls"}.get(a[0], "hook_overruns")] += 1
                elif kind == STALL_RESOLVED:
                    sysmon["stalls_resolved"] += 1
            end_slice(gen_end)
    return {
        "bytes": bytes_,
        "events": events,
        "duration_ns": max(0, last - first) if first is not None else 0,
        "stops_of_the_world": stops,
        "threads": [threads[t] for t in sorted(threads)],
        "blocking": [{"reason": r, "count": c, "total_ns": n}
                     for r, (c, n) in sorted(blocking.items(), key=lambda kv: (-kv[1][1], kv[0]))],
        "locks": sorted((lk for lk in locks.values() if lk["contentions"]),
                        key=lambda lk: (-lk["wait_total_ns"], lk["address"])),
        "sysmon": sysmon,
    }


def summarize(path):
    with open(path, "rb") as f:
        data = f.read()
    verdict, message, cut, r = "consistent", None, None, Reading()
    try:
        read_trace(data, r)
    except Cut as e:
        # rtcore check reports a file cut before any generation ended (or
        # was lost) as inconsistent, not cut (the document does not say so).
        verdict = "cut" if r.last_ended is not None else "inconsistent"
        message = str(e)
        if r.last_ended is not None:
            cut = {"after_generation": r.last_ended, "at_byte": r.ended_at,
                   "lost_bytes": len(data) - r.ended_at}
    except Invalid as e:
        verdict, message = "inconsistent", str(e)
    gens = r.done
    by_kind, tids = {}, set()
    events = crossed = open_end = unblocks = 0
    for streams, c, o, u in gens:
        crossed, open_end, unblocks = crossed + c, open_end + o, unblocks + u
        for tid, s in streams.items():
            if tid:
                tids.add(tid)
            events += len(s.events)
            for kind, _, _ in s.events:
                name = KINDS[kind][0]
                by_kind[name] = by_kind.get(name, 0) + 1
    return {
        "verdict": verdict,
        "message": message,
        "events": events,
        "generations": len(gens),
        "threads": len(tids),
        "bytes": len(data),
        "crossed_start": crossed,
        "open_at_end": open_end,
        "cross_thread_unblocks": unblocks,
        "by_kind": dict(sorted(by_kind.items())),
        "cut": cut,
        "lost": dict(zip(("generations", "events", "bytes"), r.lost)),
        "stats": statistics(gens, len(data), events),
    }


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    for path in argv[1:]:
        try:
            out = summarize(path)
        except OSError as e:
            print(f"{path}: {e}", file=sys.stderr)
            return 2
        print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
