"""How `nogil-bench serve` serves: one uvicorn process, Gunicorn's uvicorn worker processes, or
Granian's worker threads. Each stops through the same drain (nogil_bench.server.Drain) and keeps
the GIL off; docs/serving.md compares them."""

from typing import Literal

from nogil_bench.core import runtime

type ServerName = Literal["uvicorn", "gunicorn", "granian"]
SERVERS: tuple[ServerName, ...] = ("uvicorn", "gunicorn", "granian")


class ServingModeError(RuntimeError):
    """This server cannot serve this way (here): the message says what to use instead."""


def default_server(*, reload: bool) -> ServerName:
    """The server `nogil-bench serve` uses when none is named: Granian (one worker thread by
    default) on a free-threaded build with the GIL off, which docs/serving.md measured as fast
    as uvicorn or faster on every route; uvicorn where Granian cannot serve: a build or run
    with the GIL on (Granian refuses it), or `--reload` (uvicorn's)."""
    if reload or not runtime.is_free_threaded_build() or runtime.is_gil_enabled():
        return "uvicorn"
    return "granian"
