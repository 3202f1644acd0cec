"""Builds the rtcore package with librtcore.so inside it (docs/install.md,
"Python"). The library is taken from RTCORE_BUILD_LIB if set, else from the
checkout's target/release/librtcore.so (run `cargo build --release`
first), and installed as rtcore/librtcore.so.0, where the package looks
first after a librtcore already loaded. The package itself is pure Python
(ctypes), so one wheel serves every CPython 3: its tag is
py3-none-<platform> (the platform is the library's)."""
import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

try:
    from wheel.bdist_wheel import bdist_wheel
except ImportError:  # pragma: no cover - wheel is a build requirement
    bdist_wheel = None

HERE = os.path.dirname(os.path.abspath(__file__))


def _library():
    env = os.environ.get("RTCORE_BUILD_LIB")
    candidates = [env] if env else [os.path.join(HERE, "..", "target", "release", "librtcore.so")]
    for path in candidates:
        if path and os.path.isfile(path):
            return os.path.realpath(path)
    raise SystemExit(
        "rtcore: cannot find librtcore.so to put in the package: run `cargo build --release` "
        "in the checkout first, or set RTCORE_BUILD_LIB to the library's path"
    )


class BuildPyWithLibrary(build_py):
    def run(self):
        super().run()
        dest = os.path.join(self.build_lib, "rtcore", "librtcore.so.0")
        shutil.copyfile(_library(), dest)
        os.chmod(dest, 0o755)
        # Installed stripped, as `make install` does (a tenth of the size).
        strip = shutil.which("strip")
        if strip:
            subprocess.run([strip, "--strip-unneeded", dest], check=True)


class BinaryDistribution(Distribution):
    """Carries a shared library: a platform wheel, not a pure one."""

    def has_ext_modules(self):
        return True


cmdclass = {"build_py": BuildPyWithLibrary}
if bdist_wheel is not None:

    class Py3NoneWheel(bdist_wheel):
        def get_tag(self):
            _, _, plat = super().get_tag()
            return "py3", "none", plat

    cmdclass["bdist_wheel"] = Py3NoneWheel

setup(cmdclass=cmdclass, distclass=BinaryDistribution)
