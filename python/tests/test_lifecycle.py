"""init() and shutdown(): once per process, so each case runs in a fresh
interpreter."""

import os
import tempfile
import unittest

from . import support

PRELUDE = """
import sys
import rtcore

def attempt(label, fn, *args):
    try:
        fn(*args)
    except rtcore.RtcoreError as e:
        print(label, e.status_name, e.message, flush=True)
    else:
        print(label, "OK", flush=True)
"""


class LifecycleTests(unittest.TestCase):
    def run_code(self, body, env=None):
        proc = support.run_python(PRELUDE + body, env=env)
        self.assertEqual(proc.returncode, 0, support.describe(proc))
        return proc.stdout.splitlines()

    def line(self, lines, label):
        found = [l for l in lines if l.split(" ", 1)[0] == label]
        self.assertEqual(len(found), 1, f"no single line {label!r} in {lines!r}")
        return found[0]

    def test_init_twice(self):
        lines = self.run_code(
            """
attempt("first", rtcore.init)
attempt("second", rtcore.init)
print("mode", rtcore.lockrank_mode())
"""
        )
        self.assertEqual(self.line(lines, "first"), "first OK")
        self.assertTrue(
            self.line(lines, "second").startswith("second RTC_ERR_ALREADY_INITIALIZED "), lines
        )
        self.assertEqual(self.line(lines, "mode"), "mode report")

    def test_init_after_first_use(self):
        lines = self.run_code(
            """
print("version", rtcore.version())   # version calls are not a first use
rtcore.status_str(3)
m = rtcore.Mutex("m")                # this is
attempt("init", rtcore.init, "off")
print("mode", rtcore.lockrank_mode())
"""
        )
        self.assertTrue(self.line(lines, "init").startswith("init RTC_ERR_TOO_LATE "), lines)
        self.assertIn("after rtcore was first used", self.line(lines, "init"))
        self.assertEqual(self.line(lines, "mode"), "mode report")

    def test_version_functions_are_not_first_use(self):
        lines = self.run_code(
            """
rtcore.version(); rtcore.version_number(); rtcore.status_str(1); rtcore.last_error()
attempt("init", rtcore.init, "off")
print("mode", rtcore.lockrank_mode())
"""
        )
        self.assertEqual(self.line(lines, "init"), "init OK")
        self.assertEqual(self.line(lines, "mode"), "mode off")

    def test_init_options(self):
        with tempfile.TemporaryDirectory() as d:
            good = os.path.join(d, "app.ranks")
            with open(good, "w") as f:
                f.write("NONE < initrank;\ninitrank < initrank2;\n")
            missing = os.path.join(d, "missing.ranks")
            lines = self.run_code(
                f"""
attempt("badmode", rtcore.init, 9)
attempt("missing", rtcore.init, None, {missing!r})
attempt("good", rtcore.init, "abort", {good!r})
print("mode", rtcore.lockrank_mode())
print("ids", rtcore.rank_lookup("initrank") + 1 == rtcore.rank_lookup("initrank2"))
"""
            )
        # A failed init initialises nothing: init may be called again.
        self.assertTrue(self.line(lines, "badmode").startswith("badmode RTC_ERR_INVALID_ARGUMENT "))
        self.assertTrue(self.line(lines, "missing").startswith("missing RTC_ERR_IO "))
        self.assertIn(missing, self.line(lines, "missing"))
        self.assertEqual(self.line(lines, "good"), "good OK")
        self.assertEqual(self.line(lines, "mode"), "mode abort")
        self.assertEqual(self.line(lines, "ids"), "ids True")

    def test_shutdown(self):
        lines = self.run_code(
            """
m = rtcore.Mutex("m")
c = rtcore.Cond()
with m:
    pass
attempt("shutdown1", rtcore.shutdown)
attempt("lock", m.lock)
attempt("unlock", m.unlock)
attempt("trylock", m.try_lock)
attempt("new", rtcore.Mutex, "n")
attempt("notify", c.notify)
attempt("load", rtcore.load_ranks, "NONE < late;")
attempt("violations", rtcore.violations)
attempt("init", rtcore.init)
attempt("setmode", rtcore.set_lockrank_mode, "off")
attempt("getmode", rtcore.lockrank_mode)
attempt("shutdown2", rtcore.shutdown)
attempt("panic", rtcore.debug_panic)
print("version", rtcore.version(), rtcore.version_number())
print("status", rtcore.status_str(rtcore.RTC_ERR_SHUT_DOWN))
"""
        )
        self.assertEqual(self.line(lines, "shutdown1"), "shutdown1 OK")
        # Releasing calls keep working after shutdown (m is not held here).
        self.assertTrue(self.line(lines, "unlock").startswith("unlock RTC_ERR_NOT_OWNER "), lines)
        self.assertEqual(self.line(lines, "notify"), "notify OK")
        for label in ("lock", "trylock", "new", "load", "violations",
                      "setmode", "getmode", "init", "shutdown2"):
            with self.subTest(call=label):
                self.assertTrue(
                    self.line(lines, label).startswith(f"{label} RTC_ERR_SHUT_DOWN "), lines
                )
        # rtc_debug_panic is "safe to call at any time".
        self.assertTrue(self.line(lines, "panic").startswith("panic RTC_ERR_PANIC "), lines)
        import rtcore

        self.assertEqual(
            self.line(lines, "version"), f"version {rtcore.version()} {rtcore.version_number()}"
        )
        self.assertEqual(self.line(lines, "status"), "status rtcore has been shut down")

    def test_debug_panic_process_survives(self):
        proc = support.run_python(
            PRELUDE
            + """
attempt("panic", rtcore.debug_panic)
m = rtcore.Mutex("after")
with m:
    pass
print("alive", flush=True)
"""
        )
        self.assertEqual(proc.returncode, 0, support.describe(proc))
        lines = proc.stdout.splitlines()
        self.assertTrue(self.line(lines, "panic").startswith("panic RTC_ERR_PANIC "), lines)
        self.assertIn("alive", lines)
        self.assertIn("rtcore: internal panic", proc.stderr)


if __name__ == "__main__":
    unittest.main()
