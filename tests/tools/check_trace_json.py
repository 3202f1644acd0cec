#!/usr/bin/env python3
"""Check a `rtcore export --format json` file the way a viewer needs it.

    check_trace_json.py FILE [--min-flows N] [--min-threads N]

Checks: it parses as JSON with a traceEvents list; every track that holds an
event has a thread_name; slices ("X") on each track are strictly nested;
every flow has a start and an end, and each end lies inside a slice on its
track; every event has the fields its phase needs. Prints a one-line summary;
exit status 1 with the first problems otherwise.
"""
import json
import sys


def main(argv):
    path = argv[1]
    opts = dict(zip(argv[2::2], argv[3::2]))
    min_flows = int(opts.get("--min-flows", 0))
    min_threads = int(opts.get("--min-threads", 1))
    with open(path) as f:
        doc = json.load(f)
    events = doc["traceEvents"]
    problems = []
    names = {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "thread_name":
            names[(e["pid"], e["tid"])] = e["args"]["name"]
    slices = {}
    flows = {}
    for e in events:
        ph = e.get("ph")
        if ph == "M":
            continue
        for field in ("pid", "tid", "ts", "name"):
            if field not in e:
                problems.append("%s event without %s: %r" % (ph, field, e))
        key = (e.get("pid"), e.get("tid"))
        if key not in names:
            problems.append("track %r has no thread_name (%r)" % (key, e))
        if not names.get(key, "x"):
            problems.append("track %r has an empty name" % (key,))
        ts = float(e.get("ts", 0))
        if ph == "X":
            dur = float(e["dur"])
            if dur < 0:
                problems.append("negative duration: %r" % e)
            slices.setdefault(key, []).append((ts, ts + dur, e["name"]))
        elif ph in ("s", "f"):
            flows.setdefault(e["id"], {})[ph] = e
        elif ph not in ("i", "C", "b", "e"):
            problems.append("unexpected phase %r" % ph)
    eps = 1e-6
    for key, sl in slices.items():
        sl.sort(key=lambda x: (x[0], -x[1]))
        stack = []
        for start, end, name in sl:
            while stack and stack[-1][1] <= start + eps:
                stack.pop()
            if stack and end > stack[-1][1] + eps:
                problems.append("track %r: %r [%f, %f] overlaps %r [%f, %f] without nesting"
                                % (key, name, start, end, stack[-1][2], stack[-1][0], stack[-1][1]))
            stack.append((start, end, name))

    def inside(e):
        ts = float(e["ts"])
        return any(a - eps <= ts <= b + eps for a, b, _ in slices.get((e["pid"], e["tid"]), []))

    for fid, pair in flows.items():
        if set(pair) != {"s", "f"}:
            problems.append("flow %r is not a start and an end: %r" % (fid, sorted(pair)))
            continue
        for ph in "sf":
            if not inside(pair[ph]):
                problems.append("flow %r's %s is on no slice: %r" % (fid, ph, pair[ph]))
    threads = {k for k in names if k[1] != 0}
    if len(flows) < min_flows:
        problems.append("%d flows, fewer than %d" % (len(flows), min_flows))
    if len(threads) < min_threads:
        problems.append("%d named tracks, fewer than %d" % (len(threads), min_threads))
    if problems:
        for p in problems[:20]:
            print("PROBLEM:", p)
        print("%d problems" % len(problems))
        return 1
    print("ok: %d events, %d named tracks, %d slices, %d flows"
          % (len(events), len(names), sum(len(v) for v in slices.values()), len(flows)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
