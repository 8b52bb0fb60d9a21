"""The facts a result depends on, recorded with it (pyperf's metadata)."""

import os
import platform
import sys
import sysconfig
from datetime import UTC, datetime
from pathlib import Path

import psutil

from nogil_bench.core import runtime


def describe_environment() -> dict[str, object]:
    return {
        "python_version": runtime.python_version(),
        "python_executable": sys.executable,
        "implementation": runtime.implementation(),
        "free_threaded": runtime.is_free_threaded_build(),
        "gil_enabled": runtime.is_gil_enabled(),
        "config_args": sysconfig.get_config_var("CONFIG_ARGS") or "",
        "cpu_count": runtime.cpu_count(),
        "cpu_model": cpu_model(),
        "memory_bytes": psutil.virtual_memory().total,
        "machine": platform.machine(),
        "platform": platform.platform(),
        "packages": runtime.package_versions(),
        # The host's load when this was recorded (1, 5 and 15 minutes), and when.
        "load_average": list(os.getloadavg()),
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def cpu_model() -> str:
    """The CPU's marketing name where Linux says it (platform.processor() is empty there)."""
    try:
        with Path("/proc/cpuinfo").open(encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                name, _, value = line.partition(":")
                if name.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
