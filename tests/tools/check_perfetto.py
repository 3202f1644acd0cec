#!/usr/bin/env python3
"""Check a `rtcore export --format perfetto` file against Perfetto's own
schema (the `perfetto` package's perfetto_trace_pb2, pinned in .ci/run).

    check_perfetto.py FILE.perfetto-trace STATS.json [--require-all]

Decodes the file as perfetto.protos.Trace and checks: every track
descriptor precedes the events on its track (and names a defined parent);
every interned event name is defined before use, on the same sequence;
slices nest per track (every end closes an open begin; none left open);
every flow starts once and ends once; and the counts of counter values and
of log instants match `rtcore stats --json` (STATS.json). With
--require-all (the demo's traces), also that there are slices, flows and
counter values at all. Prints a summary; exit status 1 with the problems
otherwise.
"""
import json
import sys

from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb


def main(path, stats_path, require_all=False):
    trace = pb.Trace()
    with open(path, "rb") as f:
        trace.ParseFromString(f.read())
    with open(stats_path) as f:
        stats = json.load(f)
    TE = pb.TrackEvent
    problems = []
    tracks = {}
    names = {}
    stacks = {}
    flows_start, flows_end = {}, {}
    counters = instants = logs = slices = 0
    for i, p in enumerate(trace.packet):
        if p.HasField("track_descriptor"):
            d = p.track_descriptor
            if d.uuid in tracks:
                problems.append("packet %d: track %d described twice" % (i, d.uuid))
            if d.HasField("parent_uuid") and d.parent_uuid not in tracks:
                problems.append("packet %d: track %d's parent %d is not described yet" % (i, d.uuid, d.parent_uuid))
            tracks[d.uuid] = d
            continue
        if p.HasField("interned_data"):
            for n in p.interned_data.event_names:
                names[(p.trusted_packet_sequence_id, n.iid)] = n.name
        if not p.HasField("track_event"):
            continue
        e = p.track_event
        if e.track_uuid not in tracks:
            problems.append("packet %d: event on track %d before its descriptor" % (i, e.track_uuid))
        if e.HasField("name_iid") and (p.trusted_packet_sequence_id, e.name_iid) not in names:
            problems.append("packet %d: name iid %d not interned" % (i, e.name_iid))
        name = names.get((p.trusted_packet_sequence_id, e.name_iid), "")
        stack = stacks.setdefault(e.track_uuid, [])
        if e.type == TE.TYPE_SLICE_BEGIN:
            stack.append((p.timestamp, name))
            slices += 1
        elif e.type == TE.TYPE_SLICE_END:
            if not stack:
                problems.append("packet %d: a slice end on track %d with none open" % (i, e.track_uuid))
            else:
                start, _ = stack.pop()
                if p.timestamp < start:
                    problems.append("packet %d: a slice ends before it begins" % i)
        elif e.type == TE.TYPE_INSTANT:
            instants += 1
            if any(a.name == "message" for a in e.debug_annotations):
                logs += 1
        elif e.type == TE.TYPE_COUNTER:
            counters += 1
            if not tracks.get(e.track_uuid, pb.TrackDescriptor()).HasField("counter"):
                problems.append("packet %d: a counter value on a track that is not a counter" % i)
        for f in e.flow_ids:
            flows_start[f] = flows_start.get(f, 0) + 1
        for f in e.terminating_flow_ids:
            flows_end[f] = flows_end.get(f, 0) + 1
    for uuid, stack in stacks.items():
        if stack:
            problems.append("track %d: %d slices never end" % (uuid, len(stack)))
    for f in set(flows_start) | set(flows_end):
        if flows_start.get(f) != 1 or flows_end.get(f) != 1:
            problems.append("flow %d starts %d times and ends %d times" % (f, flows_start.get(f, 0), flows_end.get(f, 0)))
    kinds = stats["by_kind"]
    if counters != kinds.get("counter", 0):
        problems.append("%d counter values, rtcore stats counts %d" % (counters, kinds.get("counter", 0)))
    if logs != kinds.get("log", 0):
        problems.append("%d log instants, rtcore stats counts %d" % (logs, kinds.get("log", 0)))
    threads = [d for d in tracks.values() if d.HasField("thread")]
    if not threads:
        problems.append("no thread track")
    if require_all:
        for what, n in (("slices", slices), ("flows", len(flows_start)), ("counter values", counters)):
            if n == 0:
                problems.append("no %s (--require-all)" % what)
    if problems:
        for p in problems[:20]:
            print("PROBLEM:", p)
        print("%d problems" % len(problems))
        return 1
    print("ok: %d packets, %d tracks (%d threads), %d slices, %d instants, %d counter values, %d flows, %d names"
          % (len(trace.packet), len(tracks), len(threads), slices, instants, counters, len(flows_start), len(names)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], "--require-all" in sys.argv[3:]))
