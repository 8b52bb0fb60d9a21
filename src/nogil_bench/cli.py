"""The `nogil-bench` console script."""

import argparse
from collections.abc import Sequence

import uvicorn

from nogil_bench.core.config import get_settings


def build_parser() -> argparse.ArgumentParser:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="nogil-bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default=settings.HOST, help="default: %(default)s")
    serve.add_argument(
        "--port", type=port_number, default=settings.PORT, help="default: %(default)s"
    )
    return parser


def port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1-65535)")
    return port


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        uvicorn.run(
            "nogil_bench.main:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            # h11 and asyncio, not httptools and uvloop: those would re-enable the GIL.
            http="h11",
            loop="asyncio",
            log_config=None,
        )
