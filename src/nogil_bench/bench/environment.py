"""The facts a result depends on, recorded with it (pyperf's metadata)."""

import platform
import sys
import sysconfig

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
        "cpu_model": platform.processor() or platform.machine(),
        "memory_bytes": psutil.virtual_memory().total,
        "machine": platform.machine(),
        "platform": platform.platform(),
        "packages": runtime.package_versions(),
    }
