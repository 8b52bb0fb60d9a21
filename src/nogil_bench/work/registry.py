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


class UnknownWorkKindError(LookupError):
    """A name that is no kind of work: a task from a newer or older version, say."""


def get_kind(name: str) -> WorkKind:
    try:
        return WORK_KINDS[name]
    except KeyError:
        raise UnknownWorkKindError(
            f"no kind of work named {name!r}; known: {', '.join(WORK_KINDS)}"
        ) from None
