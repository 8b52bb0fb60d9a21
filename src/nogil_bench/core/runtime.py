"""What the running interpreter really is: build flags, GIL state, CPUs, package versions."""

import os
import platform
import sys
import sysconfig
from importlib.metadata import PackageNotFoundError, version

# The runtime packages whose versions /health reports (and whose builds could re-enable the GIL).
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
