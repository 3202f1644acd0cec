"""rtcore's demo in Python: a small key-value service, traced, with `with`
blocks for locks, blocking regions, tasks and regions.

Workers read requests from socket pairs inside blocking regions and serve
them under ranked locks (index, then a shard); each request is a task with a
region. A hook samples the queue depths as counters. A compactor takes a
shard and then the index in a quiet window: the inversion is reported. The
run is traced in a few start/stop cycles into py-trace-N.rtctrace, each one
checked.

Run from the repository root after `cargo build --release`:
    RTCORE_LIB=target/release/librtcore.so PYTHONPATH=python python3 examples/trace.py
Then: target/release/rtcore export py-trace-2.rtctrace --format json -o py-trace-2.json
and open it at https://ui.perfetto.dev ("Open trace file").
"""

import socket
import struct
import sys
import threading
import time

import rtcore

WORKERS, SHARDS, TRACES = 3, 4, 3

rtcore.load_ranks("NONE < index;\nindex < shard;\n", "trace.py (its own ranks)")
index = rtcore.Mutex("index", rank="index")
shards = [rtcore.Mutex("shard-%d" % i, rank="shard") for i in range(SHARDS)]
data = [dict() for _ in range(SHARDS)]
depth = [0] * WORKERS
served = [0]
paused = threading.Event()
stopping = threading.Event()


def read_exactly(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def worker(i, sock):
    rtcore.attach("py-worker-%d" % i)
    while True:
        with rtcore.blocking("read request"):
            req = read_exactly(sock, 16)
        if req is None:
            break
        op, key = struct.unpack("<QQ", req)
        with rtcore.task("put" if op else "get"):
            with rtcore.region("serve"):
                shard = key % SHARDS
                with index:  # the declared order: index, then shard
                    shards[shard].lock()
                d = data[shard]
                d[key] = d.get(key, 0) + (1 if op else 0)
                value = d[key]
                shards[shard].unlock()
                served[0] += 1
        with rtcore.blocking("write reply"):
            sock.sendall(struct.pack("<Q", value))
        depth[i] -= 1
        rtcore.safepoint()
    rtcore.detach()


def client(i, sock):
    rtcore.attach("py-client-%d" % i)
    n = 0
    while not stopping.is_set():
        if paused.is_set():
            with rtcore.blocking("maintenance window"):
                time.sleep(0.001)
            continue
        depth[i] += 1
        with rtcore.blocking("request"):
            sock.sendall(struct.pack("<QQ", n % 4 == 0, (n * 7919) % 1000))
            read_exactly(sock, 8)
        n += 1
    sock.shutdown(socket.SHUT_WR)
    rtcore.detach()


def compactor():
    # The bug on purpose: a shard, then the index (index < shard).
    rtcore.attach("py-compactor")
    for s in shards:
        with s:
            with index:
                pass
    rtcore.detach()


def sample_depths():
    if rtcore.trace_enabled():
        for i, d in enumerate(depth):
            rtcore.counter("queue depth py-worker-%d" % i, d)


def main():
    hook = rtcore.add_hook("sample queue depths", 0.005, sample_depths)
    threads = []
    for i in range(WORKERS):
        a, b = socket.socketpair()
        threads.append(threading.Thread(target=worker, args=(i, a)))
        threads.append(threading.Thread(target=client, args=(i, b)))
    for t in threads:
        t.start()
    consistent = 0
    for n in range(1, TRACES + 1):
        path = "py-trace-%d.rtctrace" % n
        rtcore.trace_start(path=path)
        if n == 2:
            paused.set()
            time.sleep(0.02)
            c = threading.Thread(target=compactor)
            c.start()
            c.join()
            paused.clear()
        time.sleep(0.25)
        rtcore.trace_stop()
        ok, report = rtcore.trace_check_file(path)
        print("%s: %s" % (path, report.split("; by kind")[0]))
        consistent += ok
        time.sleep(0.1)
    stopping.set()
    for t in threads:
        t.join()
    hook.remove()
    print("requests served %d; %d of %d traces consistent; %d order violations"
          % (served[0], consistent, TRACES, rtcore.violations()))
    return 0 if consistent == TRACES and rtcore.violations() == SHARDS else 1


if __name__ == "__main__":
    sys.exit(main())
