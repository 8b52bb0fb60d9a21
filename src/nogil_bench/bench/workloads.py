"""The work a configuration measures: an installed workload with its parameters, or a user's
function (bench.target), made into `Work` in the worker process that runs it."""

from nogil_bench.bench import target
from nogil_bench.bench.config import Config, share
from nogil_bench.workloads.plugin import Work
from nogil_bench.workloads.registry import get_workload, parse_params


def build_work(config: Config) -> Work:
    if config.function is not None:
        return target.load(config.function)
    return get_workload(config.workload).build(parse_params(config.workload, config.params))


def tasks_of(work: Work, config: Config) -> list[object]:
    """The configuration's tasks: all of them, or its share when it is one process of a
    ceiling."""
    part = share(len(work.tasks), config.part, config.parts)
    return list(work.tasks[part.start : part.stop])
