"""`nogil-bench serve`'s dispatch to the chosen server, each imported only when chosen."""

from nogil_bench.core.config import Settings
from nogil_bench.serving import ServerName, ServingModeError


def serve(settings: Settings, host: str, port: int, *, server: ServerName, workers: int) -> None:
    """Runs the service with `server` and `workers` workers until a stop signal has drained it.

    Imports only the chosen server: Gunicorn and Granian load nothing in the default mode."""
    # Imported here, each: a mode loads only its own server.
    if server == "gunicorn":
        from nogil_bench.serving.gunicorn_workers import serve_with_gunicorn  # noqa: PLC0415

        serve_with_gunicorn(settings, host, port, workers=workers)
    elif server == "granian":
        from nogil_bench.serving.granian_threads import serve_with_granian  # noqa: PLC0415

        serve_with_granian(settings, host, port, workers=workers)
    else:
        if workers != 1:
            raise ServingModeError(
                "uvicorn serves from one process: use --server gunicorn or granian"
            )
        from nogil_bench.server import serve as serve_with_uvicorn  # noqa: PLC0415

        serve_with_uvicorn(settings, host, port)
