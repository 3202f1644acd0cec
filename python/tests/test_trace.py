"""The tracer from Python: start/stop into a file and a callback, user
events, checking traces, misuse. Each case runs in a fresh interpreter (one
tracer per process)."""

import unittest

from tests.support import describe, run_python


class TraceTest(unittest.TestCase):
    def run_ok(self, code):
        p = run_python(code)
        self.assertEqual(p.returncode, 0, describe(p))
        return p

    def test_file_and_callback_sinks_with_user_events(self):
        self.run_ok(
            """
            import os, tempfile, threading, rtcore
            d = tempfile.mkdtemp()
            path = os.path.join(d, "t.trace")
            assert not rtcore.trace_enabled()
            rtcore.attach("py-main")
            rtcore.trace_start(path=path)
            assert rtcore.trace_enabled()
            try:
                rtcore.trace_start(path=path)
            except rtcore.RtcoreError as e:
                assert e.status_name == "RTC_ERR_WRONG_STATE" and "already enabled" in e.message, e
            else:
                raise AssertionError("second start accepted")
            with rtcore.task("request") as t:
                assert t.id > 0
                with rtcore.region("handle"):
                    rtcore.log("http", "GET /")
                    rtcore.counter("queue", 3)
            def other():
                rtcore.log("thread", "unattached")
            th = threading.Thread(target=other); th.start(); th.join()
            rtcore.trace_stop()
            assert not rtcore.trace_enabled()
            ok, report = rtcore.trace_check_file(path)
            assert ok and "consistent trace" in report, report
            data = open(path, "rb").read()
            ok, report = rtcore.trace_check(data[:-3])
            assert not ok and "cut short" in report, report
            chunks = []
            rtcore.trace_start(write=chunks.append)
            rtcore.log("cb", "x")
            rtcore.trace_stop()
            ok, report = rtcore.trace_check(b"".join(chunks))
            assert ok, report
            def failing(data):
                raise IOError("disk full")
            rtcore.trace_start(write=failing)
            try:
                rtcore.trace_stop()
            except rtcore.RtcoreError as e:
                assert e.status_name == "RTC_ERR_IO", e
            else:
                raise AssertionError("a failing sink went unreported")
            rtcore.detach()
            """
        )

    def test_tracing_records_the_block_and_stops_on_an_exception(self):
        self.run_ok(
            """
            import os, tempfile, rtcore
            d = tempfile.mkdtemp()
            path = os.path.join(d, "block.rtctrace")
            with rtcore.tracing(path):
                assert rtcore.trace_enabled()
                rtcore.log("block", "inside")
            assert not rtcore.trace_enabled()
            ok, report = rtcore.trace_check_file(path)
            assert ok, report
            assert rtcore.trace_stats(path)["by_kind"].get("log", 0) >= 1, rtcore.trace_stats(path)
            second = os.path.join(d, "raised.rtctrace")
            try:
                with rtcore.tracing(path=second, generation_ms=50):
                    raise KeyError("boom")
            except KeyError:
                pass
            else:
                raise AssertionError("the exception was swallowed")
            assert not rtcore.trace_enabled()
            ok, report = rtcore.trace_check_file(second)
            assert ok, report
            """
        )

    def test_the_flight_recorder_dumps_and_snapshots(self):
        self.run_ok(
            """
            import os, shutil, tempfile, threading, time, rtcore
            d = tempfile.mkdtemp()
            dumps = os.path.join(d, "dumps")
            rtcore.attach("py-main")
            rtcore.set_lockrank_mode("report")
            with rtcore.flight_recorder(dump_dir=dumps, max_mb=4, min_age_ms=400,
                                        triggers=["lock_order"]):
                assert rtcore.trace_enabled()
                try:
                    rtcore.trace_start(path=os.path.join(d, "t.trace"))
                except rtcore.RtcoreError as e:
                    assert e.status_name == "RTC_ERR_WRONG_STATE", e
                else:
                    raise AssertionError("a trace started beside the flight recorder")
                for i in range(3000):
                    rtcore.log("py", "event")
                snap = os.path.join(d, "snap.trace")
                rtcore.flight_recorder_write(snap)
                verdict, report = rtcore.trace_verdict(snap)
                assert verdict == "consistent", report
                # A lock-order violation dumps by itself.
                a, b = rtcore.Mutex("inner"), rtcore.Mutex("outer")
                with a:
                    with b:
                        pass
                t0 = time.monotonic()
                while not (os.path.isdir(dumps) and [f for f in os.listdir(dumps) if "-lockorder" in f]):
                    assert time.monotonic() - t0 < 10, "no lock-order dump"
                    time.sleep(0.02)
                name = [f for f in os.listdir(dumps) if "-lockorder" in f][0]
                assert name.startswith("rtcore-%d-" % os.getpid()), name
                t0 = time.monotonic()
                while rtcore.trace_verdict(os.path.join(dumps, name))[0] != "consistent":
                    assert time.monotonic() - t0 < 10, "the dump never became a whole trace"
                    time.sleep(0.02)
            assert not rtcore.trace_enabled()
            try:
                rtcore.flight_recorder_write(os.path.join(d, "late.trace"))
            except rtcore.RtcoreError as e:
                assert e.status_name == "RTC_ERR_WRONG_STATE", e
            else:
                raise AssertionError("a snapshot with no flight recorder")
            try:
                rtcore.flight_recorder(triggers=["everything"])
            except ValueError:
                pass
            else:
                raise AssertionError("an unknown trigger was accepted")
            shutil.rmtree(d)
            print("flight ok")
            """
        )

    def test_a_killed_program_leaves_a_cut_trace_whose_generations_check(self):
        self.run_ok(
            """
            import os, signal, shutil, subprocess, sys, tempfile, rtcore
            d = tempfile.mkdtemp()
            path = os.path.join(d, "killed.trace")
            child = (
                "import os, signal, sys, time, rtcore\\n"
                "rtcore.attach('doomed')\\n"
                "rtcore.trace_start(path=sys.argv[1], generation_ms=100)\\n"
                "t0 = time.monotonic()\\n"
                "while time.monotonic() - t0 < 0.8:\\n"
                "    rtcore.log('work', 'tick')\\n"
                "os.kill(os.getpid(), signal.SIGKILL)\\n"
            )
            p = subprocess.run([sys.executable, "-c", child, path])
            assert p.returncode == -signal.SIGKILL, p.returncode
            verdict, report = rtcore.trace_verdict(path)
            assert verdict == "cut", (verdict, report)
            n = int(report.split("after generation ")[1].split()[0])
            assert n >= 4, report
            ok, _ = rtcore.trace_check_file(path)
            assert not ok
            # A corrupt file is "inconsistent", not "cut".
            with open(path, "r+b") as f:
                f.seek(os.path.getsize(path) // 2)
                b = f.read(1)
                f.seek(-1, 1)
                f.write(bytes([b[0] ^ 0xFF]))
            assert rtcore.trace_verdict(path)[0] == "inconsistent"
            try:
                rtcore.trace_start(path=path, generation_ms=-1)
            except OverflowError:
                pass
            else:
                raise AssertionError("a negative generation_ms was accepted")
            shutil.rmtree(d)
            print("cut after", n)
            """
        )

    def test_runtime_events_from_python_threads(self):
        # A Python thread blocks on a Mutex the main thread holds and passes
        # through a blocking region; the trace records it and is valid.
        self.run_ok(
            """
            import threading, time, rtcore
            rtcore.attach("py-main")
            chunks = []
            rtcore.trace_start(write=chunks.append)
            m = rtcore.Mutex("py-contended")
            m.lock()
            entered = threading.Event()
            def worker():
                rtcore.attach("py-worker")
                with rtcore.blocking("sleep"):
                    time.sleep(0.001)
                entered.set()
                with m:
                    pass
                rtcore.detach()
            t = threading.Thread(target=worker); t.start()
            entered.wait()
            time.sleep(0.02)
            m.unlock()
            t.join()
            rtcore.trace_stop()
            ok, report = rtcore.trace_check(b"".join(chunks))
            assert ok, report
            for kind in ("attach ", "enter blocking ", "lock contended ", "unblock ", ", block "):
                assert kind in report, (kind, report)
            import os, tempfile
            path = os.path.join(tempfile.mkdtemp(), "t.rtctrace")
            open(path, "wb").write(b"".join(chunks))
            st = rtcore.trace_stats(path)
            names = {t["name"] for t in st["threads"]}
            assert {"py-main", "py-worker"} <= names, names
            worker = [t for t in st["threads"] if t["name"] == "py-worker"][0]
            assert worker["state_ns"]["WAITING"] > 0, worker
            assert [r for r in st["blocking"] if r["reason"] == "sleep"], st["blocking"]
            assert [l for l in st["locks"] if l["name"] == "py-contended" and l["contentions"] >= 1], st["locks"]
            assert st["by_kind"]["lock contended"] >= 1 and st["bytes_per_event"] > 0, st
            whole = b"".join(chunks)
            # Cut short after its only generation: statistics of that one,
            # and the JSON says the trace was cut.
            open(path, "wb").write(whole[:-5])
            cut = rtcore.trace_stats(path)
            assert cut["cut"]["after_generation"] == 1, cut.get("cut")
            assert cut["events"] == st["events"], (cut["events"], st["events"])
            # Cut inside it: nothing is known good.
            open(path, "wb").write(whole[: len(whole) // 2])
            try:
                rtcore.trace_stats(path)
            except rtcore.RtcoreError as e:
                assert e.status_name == "RTC_ERR_BAD_TRACE", e
            else:
                raise AssertionError("a trace cut in its only generation gave statistics")
            rtcore.detach()
            """
        )

    def test_trace_files_one_convention(self):
        # trace_check_file, trace_verdict and trace_stats on every kind of
        # file: unreadable -> RtcoreError(RTC_ERR_IO) from all three; else
        # the checks give the verdict and trace_stats raises TraceError
        # (same verdict and report) exactly when nothing is consistent.
        p = self.run_ok(
            """
            import os, tempfile, rtcore
            d = tempfile.mkdtemp()
            def path(name, data=None):
                p = os.path.join(d, name)
                if data is not None:
                    open(p, "wb").write(data)
                return p
            chunks = []
            rtcore.attach("py-main")
            rtcore.trace_start(write=chunks.append)
            rtcore.log("work", "one")
            rtcore.trace_stop()
            whole = b"".join(chunks)
            fifo = path("fifo"); os.mkfifo(fifo)
            cases = {
                "missing": path("missing"),
                "directory": d,
                "fifo": fifo,
                "device": "/dev/zero",
                "empty": path("empty", b""),
                "garbage": path("garbage", b"not a trace at all" * 3),
                "cut inside": path("cut-inside", whole[: len(whole) // 2]),
                "cut after": path("cut-after", whole[:-5]),
                "consistent": path("whole", whole),
            }
            seen = {}
            for what, p in cases.items():
                try:
                    verdict, report = rtcore.trace_verdict(p)
                except rtcore.RtcoreError as e:
                    assert e.status_name == "RTC_ERR_IO", (what, e)
                    for f in (rtcore.trace_check_file, rtcore.trace_stats):
                        try:
                            f(p)
                        except rtcore.TraceError as e2:
                            raise AssertionError((what, f.__name__, "TraceError", e2))
                        except rtcore.RtcoreError as e2:
                            assert e2.status_name == "RTC_ERR_IO", (what, f.__name__, e2)
                        else:
                            raise AssertionError((what, f.__name__, "no error"))
                    seen[what] = "io"
                    continue
                ok, report2 = rtcore.trace_check_file(p)
                assert ok == (verdict == "consistent") and report2 == report, (what, ok, report2, report)
                try:
                    st = rtcore.trace_stats(p)
                except rtcore.TraceError as e:
                    assert verdict == "inconsistent", (what, verdict, e)
                    assert e.status_name == "RTC_ERR_BAD_TRACE" and e.verdict == verdict, (what, e)
                    assert e.report == report, (what, e.report, report)
                    assert isinstance(e, rtcore.RtcoreError)
                else:
                    assert verdict != "inconsistent", (what, report)
                    assert ("cut" in st) == (verdict == "cut"), (what, verdict, st.get("cut"))
                    assert st["by_kind"].get("log", 0) == 1, (what, st["by_kind"])
                seen[what] = verdict
            # A path given as bytes: the same report.
            try:
                rtcore.trace_stats(os.fsencode(cases["garbage"]))
            except rtcore.TraceError as e:
                assert e.report == rtcore.trace_verdict(cases["garbage"])[1], e.report
            else:
                raise AssertionError("garbage gave statistics")
            assert seen == {
                "missing": "io", "directory": "io", "fifo": "io", "device": "inconsistent",
                "empty": "inconsistent", "garbage": "inconsistent",
                "cut inside": "inconsistent", "cut after": "cut", "consistent": "consistent",
            }, seen
            import shutil; shutil.rmtree(d)
            print("convention holds")
            """
        )
        self.assertIn("convention holds", p.stdout)

    def test_exit_with_a_callback_trace_running(self):
        # The wrapper stops the trace at exit, before finalization: the
        # writer never calls into a finalized interpreter (it once crashed).
        p = self.run_ok(
            """
            import rtcore
            chunks = []
            rtcore.trace_start(write=chunks.append)
            for i in range(1000):
                rtcore.log("exit", "still tracing")
            print("exiting", flush=True)
            """
        )
        self.assertIn("exiting", p.stdout)

    def test_misuse(self):
        self.run_ok(
            """
            import rtcore
            for kwargs in ({}, {"path": "a", "fd": 1}):
                try:
                    rtcore.trace_start(**kwargs)
                except ValueError:
                    pass
                else:
                    raise AssertionError(kwargs)
            try:
                rtcore.trace_start(path="/nonexistent-dir/x.trace")
            except rtcore.RtcoreError as e:
                assert e.status_name == "RTC_ERR_IO", e
            else:
                raise AssertionError("unwritable path accepted")
            try:
                rtcore.trace_start(fd=987)
            except rtcore.RtcoreError as e:
                assert e.status_name == "RTC_ERR_INVALID_ARGUMENT", e
            else:
                raise AssertionError("bad fd accepted")
            ok, report = rtcore.trace_check(b"")
            assert not ok and "not an rtcore trace" in report
            rtcore.trace_stop()  # not tracing: fine
            """
        )


if __name__ == "__main__":
    unittest.main()
