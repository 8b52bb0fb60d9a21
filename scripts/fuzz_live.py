"""A time-bounded schemathesis run against a live `nogil-bench serve`: every operation in
/openapi.json, in every documented media type (JSON, the url-encoded login form, multipart
uploads), with a real token, on SQLite or on a throwaway PostgreSQL or MariaDB this script
starts. It passes when no request got a server error (5xx).

    .venv/bin/python scripts/fuzz_live.py --store sqlite --max-time 240
    .venv/bin/python scripts/fuzz_live.py --store postgresql --max-time 240
    .venv/bin/python scripts/fuzz_live.py --store mariadb --max-time 240
    .venv/bin/python scripts/fuzz_live.py --store postgresql -- --checks all --seed 42

Anything after `--` goes to `schemathesis run` as is (more checks, a seed to replay, reports).
The server runs with bcrypt cost 4, small synthetic images and batches (so the work the fuzzer
queues stays light on the CPU), and rate limits out of the fuzzer's reach (behind a 429 nothing
else would be tried). Its log, and schemathesis's cache, stay in the printed data directory.
The exit status is schemathesis's: 0 when every check passed.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))  # for tests/utils: the test servers

from live_server import running_server

from tests.utils import mariadb, postgres

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
OUT_OF_REACH = "1000000/minute"
SERVER_SETTINGS = {
    "LOGIN_RATE_LIMIT": OUT_OF_REACH,
    "LOGIN_FAILURE_LIMIT": OUT_OF_REACH,
    "REGISTER_RATE_LIMIT": OUT_OF_REACH,
    "SUBMISSION_RATE_LIMIT": OUT_OF_REACH,
    "SHARED_PAGE_RATE_LIMIT": OUT_OF_REACH,
    "MAX_SYNTHETIC_SIDE": "64",
    "MAX_BATCH_IMAGES": "8",
}
USER = {"email": "fuzz@example.com", "password": "a fine fuzzing password"}


def database_server(store: str) -> postgres.PostgresServer | mariadb.MariaDBServer:
    """A throwaway server of `store`, as the tests start them; exits with the install hint when
    its binaries are missing."""
    if store == "postgresql":
        bindir = postgres.find_bindir()
        if bindir is None:
            raise SystemExit(f"PostgreSQL's server is not installed: {postgres.INSTALL_HINT}")
        return postgres.PostgresServer(bindir)
    binaries = mariadb.find_bindir()
    if binaries is None:
        raise SystemExit(f"MariaDB's server is not installed: {mariadb.INSTALL_HINT}")
    return mariadb.MariaDBServer(binaries)


@contextmanager
def database(store: str) -> Iterator[str | None]:
    """The server's DATABASE_URL: None for SQLite in its data directory, or a new database on a
    PostgreSQL or MariaDB server started (and removed) here."""
    if store == "sqlite":
        yield None
        return
    server = database_server(store)
    try:
        server.start()
        yield server.create_database("nogil_bench")
    finally:
        server.stop()


def post(url: str, body: bytes, content_type: str) -> dict[str, object]:
    request = urllib.request.Request(url, body, {"Content-Type": content_type})  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        answer: dict[str, object] = json.load(response)
        return answer


def bearer_token(base_url: str) -> str:
    """A new user's token, through the real endpoints."""
    post(f"{base_url}/api/v1/auth/register", json.dumps(USER).encode(), "application/json")
    form = urllib.parse.urlencode({"username": USER["email"], "password": USER["password"]})
    token = post(
        f"{base_url}/api/v1/auth/token", form.encode(), "application/x-www-form-urlencoded"
    )
    return str(token["access_token"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=["sqlite", "postgresql", "mariadb"], default="sqlite")
    parser.add_argument(
        "--max-time", type=int, default=240, help="Seconds of fuzzing (default 240)."
    )
    parser.add_argument("schemathesis_args", nargs="*", help="After --: for schemathesis run.")
    args = parser.parse_args(argv)
    data_dir = Path(tempfile.mkdtemp(prefix=f"fuzz-live-{args.store}-"))
    print(f"data directory and server log: {data_dir}", flush=True)
    with (
        database(args.store) as database_url,
        running_server(data_dir, database_url=database_url, settings=SERVER_SETTINGS) as server,
    ):
        command = [
            str(SCHEMATHESIS),
            "run",
            f"{server.base_url}/openapi.json",
            "--max-time",
            str(args.max_time),
            "--checks",
            "not_a_server_error",
            "--header",
            f"Authorization: Bearer {bearer_token(server.base_url)}",
            *args.schemathesis_args,
        ]
        # In the data directory: schemathesis keeps its cache of crashes where it runs.
        return subprocess.run(command, cwd=data_dir, check=False).returncode  # noqa: S603


if __name__ == "__main__":
    sys.exit(main())
