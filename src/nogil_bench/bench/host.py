"""The host, measured alongside the benchmark: CPU time the hypervisor stole from this guest.

On a shared VM a stolen vCPU slows exactly the parallel runs, so every run records the share
of CPU time stolen while it ran (Linux's /proc/stat; None elsewhere).
"""

from dataclasses import dataclass
from pathlib import Path

PROC_STAT = Path("/proc/stat")
# user nice system idle iowait irq softirq steal; guest and guest_nice are already in user/nice.
STEAL_FIELD, COUNTED_FIELDS = 7, 8


@dataclass(frozen=True, slots=True)
class CpuJiffies:
    """Cumulative clock ticks over all CPUs since boot: all of them, and those stolen."""

    total: int
    steal: int


def parse_proc_stat(text: str) -> CpuJiffies | None:
    """The aggregate "cpu" line of /proc/stat; None when there is none."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            ticks = [int(value) for value in fields[1 : COUNTED_FIELDS + 1]]
            steal = ticks[STEAL_FIELD] if len(ticks) > STEAL_FIELD else 0
            return CpuJiffies(total=sum(ticks), steal=steal)
    return None


def read_cpu_jiffies(path: Path = PROC_STAT) -> CpuJiffies | None:
    try:
        return parse_proc_stat(path.read_text())
    except OSError:
        return None  # not Linux


def steal_share(before: CpuJiffies | None, after: CpuJiffies | None) -> float | None:
    """Stolen ticks as a share of all ticks between two readings; None when either is missing
    or no tick passed (a run shorter than a clock tick)."""
    if before is None or after is None:
        return None
    total = after.total - before.total
    if total <= 0:
        return None
    return (after.steal - before.steal) / total
