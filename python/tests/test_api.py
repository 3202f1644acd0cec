"""The binding against the header: versions, declarations, layouts, statuses."""

import ctypes
import os
import re
import tomllib
import unittest

import rtcore

from . import support


class VersionTests(unittest.TestCase):
    def cargo_version(self):
        with open(support.CARGO_TOML, "rb") as f:
            return tomllib.load(f)["package"]["version"]

    def test_version_matches_cargo_toml(self):
        self.assertEqual(rtcore.version(), self.cargo_version())

    def test_version_number_packing(self):
        major, minor, patch = (int(x) for x in self.cargo_version().split("."))
        self.assertEqual(rtcore.version_number(), (major << 16) | (minor << 8) | patch)

    def test_header_version_matches_library(self):
        self.assertEqual(support.header_define("RTC_VERSION_STRING"), f'"{rtcore.version()}"')
        parts = [int(support.header_define(f"RTC_VERSION_{p}")) for p in ("MAJOR", "MINOR", "PATCH")]
        self.assertEqual(parts, [int(x) for x in rtcore.version().split(".")])


class DeclarationTests(unittest.TestCase):
    def test_every_header_function_is_declared(self):
        in_header = set(support.header_functions())
        self.assertGreaterEqual(len(in_header), 30, "header parse found too few functions")
        declared = set(rtcore.DECLARED_FUNCTIONS)
        self.assertEqual(
            sorted(in_header - declared), [], "in include/rtcore.h but not declared by rtcore"
        )
        self.assertEqual(
            sorted(declared - in_header), [], "declared by rtcore but not in include/rtcore.h"
        )
        self.assertEqual(len(rtcore.DECLARED_FUNCTIONS), len(declared), "duplicate declarations")

    def test_header_parse_is_complete(self):
        # A looser scan: every rtc_* name called like a function outside
        # comments and #define lines must be one the strict parse found.
        text = re.sub(r"/\*.*?\*/", "", support.header_text(), flags=re.S)
        text = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#"))
        anywhere = set(re.findall(r"\b(rtc_[a-z0-9_]+)\s*\(", text))
        self.assertEqual(anywhere, set(support.header_functions()))

    def test_declared_signatures_match_header(self):
        for name, (ret, params) in sorted(support.header_functions().items()):
            with self.subTest(function=name):
                fn = getattr(rtcore._lib, name)
                self.assertIn(ret, support.C_TYPES, f"unmapped return type {ret!r}")
                self.assertIs(fn.restype, support.C_TYPES[ret])
                for p in params:
                    self.assertIn(p, support.C_TYPES, f"unmapped parameter type {p!r}")
                self.assertIsNotNone(fn.argtypes, "argtypes not set")
                self.assertEqual(list(fn.argtypes), [support.C_TYPES[p] for p in params])

    def test_status_functions_are_checked(self):
        for name, (ret, _) in sorted(support.header_functions().items()):
            if ret != "rtc_status" or name == "rtc_last_error_status":
                continue
            with self.subTest(function=name):
                self.assertIsNotNone(getattr(rtcore._lib, name).errcheck)


class LayoutTests(unittest.TestCase):
    def check(self, c_name, cls, size):
        self.assertEqual(ctypes.sizeof(cls), size)
        expected = support.header_struct(c_name)
        actual = []
        for fname, ftype in cls._fields_:
            if issubclass(ftype, ctypes.Array):
                actual.append((fname, ftype._type_, ftype._length_))
            else:
                actual.append((fname, ftype, None))
        mapped = [(n, support.C_TYPES[t], length) for n, t, length in expected]
        self.assertEqual(actual, mapped)

    def test_rtc_mutex(self):
        self.check("rtc_mutex", rtcore.RtcMutex, 64)

    def test_rtc_cond(self):
        self.check("rtc_cond", rtcore.RtcCond, 32)

    def test_rtc_config(self):
        self.check("rtc_config", rtcore.RtcConfig, 24)

    def test_rtc_rwlock(self):
        self.check("rtc_rwlock", rtcore.RtcRwlock, 64)
        self.assertEqual(ctypes.alignment(rtcore.RtcRwlock), 8)

    def test_rtc_lockrank_lock(self):
        self.check("rtc_lockrank_lock", rtcore.RtcLockrankLock, 56)

    def test_rtc_lockrank_report(self):
        self.check("rtc_lockrank_report", rtcore.RtcLockrankReport, 112)


class StatusTests(unittest.TestCase):
    def test_status_constants_match_header(self):
        header = support.header_enum("RTC_(?:OK|ERR_)")
        self.assertEqual(header["RTC_OK"], 0)
        self.assertEqual(header["RTC_ERR_WRONG_STATE"], 19)
        module = {n: getattr(rtcore, n) for n in dir(rtcore) if n == "RTC_OK" or n.startswith("RTC_ERR_")}
        self.assertEqual(module, header)
        self.assertEqual(rtcore.STATUS_NAMES, {v: k for k, v in header.items()})

    def test_mode_constants_match_header(self):
        header = support.header_enum("RTC_LOCKRANK_")
        self.assertEqual(
            header,
            {n: getattr(rtcore, n) for n in dir(rtcore) if n.startswith("RTC_LOCKRANK_")},
        )
        self.assertEqual(header["RTC_LOCKRANK_ABORT"], 3)
        self.assertEqual(header["RTC_LOCKRANK_QUEUE"], 5)
        modes = {v for n, v in header.items() if n in (
            "RTC_LOCKRANK_DEFAULT", "RTC_LOCKRANK_OFF", "RTC_LOCKRANK_REPORT",
            "RTC_LOCKRANK_ABORT", "RTC_LOCKRANK_CALLBACK", "RTC_LOCKRANK_QUEUE")}
        self.assertEqual(modes, set(rtcore.LOCKRANK_MODE_NAMES))

    def test_report_enum_constants_match_header(self):
        header = support.header_enum("RTC_LOCK_(?:KIND_|EXCLUSIVE|SHARED)")
        module = {
            n: getattr(rtcore, n)
            for n in dir(rtcore)
            if n.startswith("RTC_LOCK_KIND_") or n in ("RTC_LOCK_EXCLUSIVE", "RTC_LOCK_SHARED")
        }
        self.assertEqual(module, header)
        self.assertEqual(len(header), 5)
        self.assertEqual(set(rtcore.LOCK_KIND_NAMES), {v for n, v in header.items() if "KIND" in n})
        self.assertEqual(set(rtcore.LOCK_MODE_NAMES), {header["RTC_LOCK_EXCLUSIVE"], header["RTC_LOCK_SHARED"]})

    def test_status_str_known_values(self):
        texts = [rtcore.status_str(s) for s in range(len(rtcore.STATUS_NAMES))]
        self.assertEqual(rtcore.status_str(rtcore.RTC_OK), "success")
        for s, t in enumerate(texts):
            with self.subTest(status=s):
                self.assertNotEqual(t, "unknown status")
                self.assertTrue(t)
        self.assertEqual(len(set(texts)), len(texts), "descriptions are not distinct")

    def test_status_str_unknown_values(self):
        for s in (-1, 22, 1000, 2**31 - 1, -(2**31), 2**40):
            with self.subTest(status=s):
                self.assertEqual(rtcore.status_str(s), "unknown status")

    def test_error_attributes(self):
        e = rtcore.RtcoreError(rtcore.RTC_ERR_NOT_OWNER, "some text", "rtc_mutex_unlock")
        self.assertEqual(e.status, 13)
        self.assertEqual(e.status_name, "RTC_ERR_NOT_OWNER")
        self.assertEqual(e.message, "some text")
        self.assertEqual(e.function, "rtc_mutex_unlock")
        self.assertIn("RTC_ERR_NOT_OWNER", str(e))
        self.assertIn("some text", str(e))
        self.assertTrue(issubclass(rtcore.RtcoreError, Exception))


class LoadingTests(unittest.TestCase):
    def test_library_path_is_rtcore_lib(self):
        self.assertEqual(rtcore.LIBRARY_PATH, os.environ.get("RTCORE_LIB", rtcore.LIBRARY_PATH))
        self.assertTrue(os.path.isfile(rtcore.LIBRARY_PATH))

    def test_bad_rtcore_lib_raises_import_error(self):
        proc = support.run_python(
            """
            try:
                import rtcore
            except ImportError as e:
                print("IMPORT-ERROR", e)
            else:
                print("IMPORTED")
            """,
            env={"RTCORE_LIB": "/nonexistent/librtcore.so"},
        )
        self.assertEqual(proc.returncode, 0, support.describe(proc))
        self.assertIn("IMPORT-ERROR", proc.stdout)
        self.assertIn("RTCORE_LIB", proc.stdout)
        self.assertIn("/nonexistent/librtcore.so", proc.stdout)

    def test_unset_rtcore_lib(self):
        pkg = os.path.join(support.PYTHON_DIR, "rtcore")
        bundled = any(os.path.isfile(os.path.join(pkg, n)) for n in ("librtcore.so.0", "librtcore.so"))
        proc = support.run_python(
            """
            try:
                import rtcore
            except ImportError as e:
                print("IMPORT-ERROR", e)
            else:
                print("IMPORTED", rtcore.version())
            """,
            env={"RTCORE_LIB": None},
        )
        self.assertEqual(proc.returncode, 0, support.describe(proc))
        if bundled:
            self.assertIn(f"IMPORTED {rtcore.version()}", proc.stdout)
        else:
            self.assertIn("IMPORT-ERROR", proc.stdout)
            self.assertIn("set RTCORE_LIB", proc.stdout)
            self.assertIn("target/debug/librtcore.so", proc.stdout)


if __name__ == "__main__":
    unittest.main()


class IntegerRangeTests(unittest.TestCase):
    """Issue 13, row 13: integers are checked against their C type before
    ctypes truncates them (set_maxprocs(2**32 + 1) used to set 1, and
    trace_start(fd=2**32 + 1) wrote the trace to standard output)."""

    def test_out_of_range_integers_raise_before_any_call(self):
        before = rtcore.last_error()
        with self.assertRaises(OverflowError):
            rtcore.set_maxprocs(2**32 + 1)
        with self.assertRaises(OverflowError):
            rtcore.set_maxprocs(-1)
        with self.assertRaises(OverflowError):
            rtcore.trace_start(fd=2**32 + 1)
        with self.assertRaises(OverflowError):
            rtcore.trace_start(fd=2**31)
        self.assertFalse(rtcore.trace_enabled())
        with self.assertRaises(OverflowError):
            rtcore.counter("c", 2**63)
        with self.assertRaises(OverflowError):
            rtcore.set_safepoint_threshold_ns(2**64)
        with self.assertRaises(OverflowError):
            rtcore.set_lockrank_mode(2**32 + 1)
        with self.assertRaises(OverflowError):
            rtcore.init(maxprocs=2**32)
        with self.assertRaises(TypeError):
            rtcore.set_maxprocs(2.5)
        with self.assertRaises(TypeError):
            rtcore.trace_start(fd="1")
        # Nothing reached the library.
        self.assertEqual(rtcore.last_error(), before)
