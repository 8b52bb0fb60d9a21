"""psutil figures for one run, counting the process and every live descendant (process pools)."""

import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True, slots=True)
class Usage:
    cpu_user_s: float = 0.0
    cpu_system_s: float = 0.0
    ctx_voluntary: int = 0
    ctx_involuntary: int = 0

    def __sub__(self, other: Usage) -> Usage:
        return Usage(
            self.cpu_user_s - other.cpu_user_s,
            self.cpu_system_s - other.cpu_system_s,
            self.ctx_voluntary - other.ctx_voluntary,
            self.ctx_involuntary - other.ctx_involuntary,
        )

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.cpu_user_s + other.cpu_user_s,
            self.cpu_system_s + other.cpu_system_s,
            self.ctx_voluntary + other.ctx_voluntary,
            self.ctx_involuntary + other.ctx_involuntary,
        )


def process_tree(process: psutil.Process) -> list[psutil.Process]:
    return [process, *process.children(recursive=True)]


def usage_by_pid(process: psutil.Process) -> dict[int, Usage]:
    """Cumulative CPU time and context switches of the process and each live descendant."""
    usage: dict[int, Usage] = {}
    for member in process_tree(process):
        try:
            with member.oneshot():
                cpu = member.cpu_times()
                switches = member.num_ctx_switches()
        except psutil.NoSuchProcess:
            continue
        usage[member.pid] = Usage(cpu.user, cpu.system, switches.voluntary, switches.involuntary)
    return usage


def usage_between(before: dict[int, Usage], after: dict[int, Usage]) -> Usage:
    """What the tree used between two snapshots; a worker born in between counts from zero."""
    total = Usage()
    for pid, end in after.items():
        total += end - before.get(pid, Usage())
    return total


def peak_rss_bytes(process: psutil.Process) -> int:
    """The kernel's high-water mark of resident memory, summed over the process and its live
    descendants. psutil has no peak RSS on Linux, so VmHWM and getrusage supply it."""
    total = 0
    for member in process_tree(process):
        try:
            total += _high_water_mark_bytes(member)
        except psutil.NoSuchProcess:
            continue
    return total


def _high_water_mark_bytes(member: psutil.Process) -> int:
    if member.pid == os.getpid():
        scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is KiB on Linux, bytes on macOS
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    status = Path(f"/proc/{member.pid}/status")
    try:
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return int(member.memory_info().rss)


def reset_peak_rss() -> bool:
    """Restart this process's resident-memory high-water mark, so that a long-lived process (the
    service) can measure one run's peak. Linux only ("5" to /proc/self/clear_refs); False where
    it cannot, and the peak then covers the process's whole life."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class RunMeter:
    """Measures the `with` block: wall time, CPU and context switches of the process tree, and
    its peak RSS (children that ended inside the block are not counted)."""

    wall_s: float
    usage: Usage
    peak_rss_bytes: int

    def __enter__(self) -> RunMeter:
        self._process = psutil.Process()
        reset_peak_rss()
        self._before = usage_by_pid(self._process)
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not hasattr(self, "usage"):
            self.stop()

    def figures(self) -> dict[str, float]:
        """The measured figures, named as the job, batch and benchmark records name them."""
        return {
            "wall_s": self.wall_s,
            "cpu_user_s": self.usage.cpu_user_s,
            "cpu_system_s": self.usage.cpu_system_s,
            "ctx_voluntary": self.usage.ctx_voluntary,
            "ctx_involuntary": self.usage.ctx_involuntary,
            "peak_rss_bytes": self.peak_rss_bytes,
        }

    def elapsed_s(self) -> float:
        return time.perf_counter() - self._started

    def stop(self) -> None:
        """Take the figures now, e.g. while a process pool's workers are still alive."""
        self.wall_s = time.perf_counter() - self._started
        self.usage = usage_between(self._before, usage_by_pid(self._process))
        self.peak_rss_bytes = peak_rss_bytes(self._process)
