"""The one list of the kinds of queued work. A new kind is a `WorkKind` in the module of the
domain that owns it, and a line here; both drivers then claim, run, fail, put back and hand it
out. Order matters: it is the order rows are locked in (jobs, batches, benchmarks)."""

from nogil_bench.benchmarks.work import Benchmarks
from nogil_bench.core.work import WorkKind
from nogil_bench.jobs.work import Batches, SingleJobs

WORK_KINDS: dict[str, WorkKind] = {
    kind.name: kind for kind in (SingleJobs(), Batches(), Benchmarks())
}
# Lease renewals, recoveries and requeues go table by table, each table under its kind's rules
# (a batch's jobs are rows of the jobs' table, and follow them): one kind per table.
assert len({kind.table for kind in WORK_KINDS.values()}) == len(WORK_KINDS)
# With a broker: the queues the kinds go to (`WorkKind.queue`), in that order, each once.
WORK_QUEUES = list(dict.fromkeys(kind.queue for kind in WORK_KINDS.values()))


def queues_from(text: str) -> list[str]:
    """`--queues`: the kinds of work named, comma-separated, or every kind for "all"; a
    ValueError names what is not one."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if names == ["all"]:
        return list(WORK_QUEUES)
    unknown = [name for name in names if name not in WORK_QUEUES]
    if unknown or not names:
        raise ValueError(
            f"--queues {text!r}: {', '.join(map(repr, unknown)) or 'nothing'} is no kind of "
            f"work; give {', '.join(WORK_QUEUES)} (comma-separated), or all"
        )
    return list(dict.fromkeys(names))


class UnknownWorkKindError(LookupError):
    """A name that is no kind of work: a task from a newer or older version, say."""


def get_kind(name: str) -> WorkKind:
    try:
        return WORK_KINDS[name]
    except KeyError:
        raise UnknownWorkKindError(
            f"no kind of work named {name!r}; known: {', '.join(WORK_KINDS)}"
        ) from None
