"""What the running interpreter really is: build flags, GIL state, CPUs, package versions."""

import os
import platform
import re
import socket
import sys
import sysconfig
import time
import warnings
from importlib.metadata import PackageNotFoundError, version

# The runtime packages whose versions /api/v1/health/details and benchmark results report (and
# whose builds could re-enable the GIL).
REPORTED_PACKAGES = (
    "nogil-bench",
    "fastapi",
    "uvicorn",
    "sqlmodel",
    "pydantic",
    "pydantic-settings",
    "pillow",
    "pyjwt",
    "pwdlib",
    "argon2-cffi",
    "argon2-cffi-bindings",
    "bcrypt",
    "loguru",
    "psutil",
)


def is_free_threaded_build() -> bool:
    """True when the interpreter was compiled with --disable-gil (Py_GIL_DISABLED)."""
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def is_gil_enabled() -> bool:
    """The GIL's state right now; builds before 3.13 have no switch and always hold it."""
    probe = getattr(sys, "_is_gil_enabled", None)
    return True if probe is None else bool(probe())


# While any thread loads a C extension module, CPython turns the GIL on until the module says
# it runs without it (`_PyEval_EnableGILTransient` in Python/import.c): every other thread sees
# it on for that moment. A check at start-up, with the app's threads already importing, waits
# this long for such a moment to pass.
GIL_SETTLE_S = 2.0


def gil_stays_enabled(settle_s: float = GIL_SETTLE_S) -> bool:
    """True when the GIL is on and still on `settle_s` later; False as soon as it is off (an
    extension module loading on another thread turns it on only for a moment)."""
    deadline = time.monotonic() + settle_s
    while is_gil_enabled():
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.01)
    return False


def gil_forced_on_by() -> str | None:
    """The switch that asked for the GIL: "-X gil=1" (which wins), "PYTHON_GIL=1", or None."""
    option: object = sys._xoptions.get("gil")
    if option is not None:
        return "-X gil=1" if option == "1" else None
    return "PYTHON_GIL=1" if os.environ.get("PYTHON_GIL") == "1" else None


def gil_warning() -> str | None:
    """Why a free-threaded build is running with the GIL, or None when it is not."""
    if not (is_free_threaded_build() and is_gil_enabled()):
        return None
    if switch := gil_forced_on_by():
        reason = f"it was forced on with {switch}"
    else:
        reason = (
            "an extension module that does not declare free-threading support re-enabled it "
            "(look for the RuntimeWarning naming the module at import time)"
        )
    return f"free-threaded build running WITH the GIL: {reason}; threads will not run in parallel"


def process_name(role: str) -> str:
    """`role@host:pid`: names this process on the rows it runs and in the logs."""
    return f"{role}@{socket.gethostname()}:{os.getpid()}"


# CPython's RuntimeWarning when an extension without free-threading support turns the GIL on.
GIL_WARNING = re.compile(r"enabled to load module '([^']+)'")
_gil_reenabled_by: list[str] = []


def watch_gil_reenablers() -> None:
    """From now on, records the modules whose import turns the GIL back on (CPython warns about
    each one), for `gil_reenabled_by`. Call it before importing third-party packages."""
    shown = warnings.showwarning
    if getattr(shown, "watches_gil", False):
        return

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: object = None,
        line: str | None = None,
    ) -> None:
        if match := GIL_WARNING.search(str(message)):
            _gil_reenabled_by.append(match[1])
        shown(message, category, filename, lineno, file, line)  # type: ignore[arg-type]

    show.watches_gil = True  # type: ignore[attr-defined]
    warnings.showwarning = show


def gil_reenabled_by() -> list[str]:
    """The modules seen turning the GIL back on since `watch_gil_reenablers`."""
    return list(_gil_reenabled_by)


def cpu_count() -> int:
    """CPUs this process may use (affinity-aware), which bounds any parallel speedup."""
    return os.process_cpu_count() or 1


def package_versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    for name in REPORTED_PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def python_version() -> str:
    return platform.python_version()


def implementation() -> str:
    return sys.implementation.name
