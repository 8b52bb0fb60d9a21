"""How `nogil-bench serve` serves: one uvicorn process, Gunicorn's uvicorn worker processes, or
Granian's worker threads. Each stops through the same drain (nogil_bench.server.Drain) and keeps
the GIL off; docs/serving.md compares them."""

from typing import Literal

type ServerName = Literal["uvicorn", "gunicorn", "granian"]
SERVERS: tuple[ServerName, ...] = ("uvicorn", "gunicorn", "granian")


class ServingModeError(RuntimeError):
    """This server cannot serve this way (here): the message says what to use instead."""
