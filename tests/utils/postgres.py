"""A real PostgreSQL server for the tests: Debian's binaries (initdb, pg_ctl, postgres) run a
throwaway cluster in a temp dir, on a free port of 127.0.0.1, tuned for speed over durability.

PostgreSQL refuses to run as root: as root, the server runs as the `postgres` user. psycopg is
imported only here, when needed: without libpq5 the SQLite tests still run.
"""

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import make_url

from tests.utils.live_server import free_port

if TYPE_CHECKING:
    import psycopg

INSTALL_HINT = "install Debian's server with `apt-get install postgresql` (.ci/run does)"
SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")
SUPERUSER = "postgres"
START_TIMEOUT_S = 30
# Throwaway data: durability costs time and buys nothing here.
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "log_min_messages": "warning",
}


def missing_client() -> str | None:
    """Why psycopg cannot talk to PostgreSQL here (no libpq5), or None."""
    try:
        import psycopg  # noqa: F401, PLC0415
    except ImportError as error:
        return str(error)
    return None


def connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    """An autocommit psycopg connection to the database at SQLAlchemy `url`."""
    import psycopg  # noqa: PLC0415

    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    return psycopg.connect(conninfo, autocommit=True)


def find_bindir() -> Path | None:
    """Where initdb, pg_ctl and postgres are: `pg_config --bindir`, else the newest
    /usr/lib/postgresql/*/bin, else beside a pg_ctl on PATH. None when nowhere."""
    candidates: list[Path] = []
    if pg_config := shutil.which("pg_config"):
        with contextlib.suppress(subprocess.CalledProcessError, OSError):
            reported = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True
            ).stdout.strip()
            candidates.append(Path(reported))
    versions = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(
        versions,
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
        reverse=True,
    )
    if pg_ctl := shutil.which("pg_ctl"):
        candidates.append(Path(pg_ctl).resolve().parent)
    for bindir in candidates:
        if all((bindir / name).is_file() for name in SERVER_BINARIES):
            return bindir
    return None


class PostgresServer:
    """One cluster: `start()` runs initdb and pg_ctl start, `stop()` an immediate stop and
    removes every file. Trust authentication: it listens on the loopback only, for tests."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.workdir = Path(tempfile.mkdtemp(prefix="nogil-bench-postgres-"))
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "server.log"
        self.port = 0
        # Root may not run the server; the binaries' own user may.
        self.user = SUPERUSER if os.geteuid() == 0 else None

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        as_user = {} if self.user is None else {"user": self.user, "extra_groups": []}
        done = subprocess.run(command, capture_output=True, text=True, check=False, **as_user)  # type: ignore[call-overload]
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr}")

    def start(self) -> None:
        if self.user is not None:
            try:
                owner = pwd.getpwnam(self.user)
            except KeyError:
                raise RuntimeError(
                    f"running as root, but there is no {self.user!r} user to run PostgreSQL "
                    f"as: {INSTALL_HINT}"
                ) from None
            os.chown(self.workdir, owner.pw_uid, owner.pw_gid)
        self._run(
            "initdb",
            "--pgdata",
            str(self.data_dir),
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C.UTF-8",
            "--no-sync",
        )
        self.port = free_port()
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            for name, value in {**SETTINGS, "port": str(self.port)}.items():
                conf.write(f"{name} = {value}\n")
        self._run(
            "pg_ctl",
            "start",
            "--pgdata",
            str(self.data_dir),
            "--log",
            str(self.log_path),
            "--wait",
            "--timeout",
            str(START_TIMEOUT_S),
        )

    def stop(self) -> None:
        try:
            if (self.data_dir / "postmaster.pid").exists():
                self._run("pg_ctl", "stop", "--pgdata", str(self.data_dir), "--mode", "immediate")
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of `database`, through psycopg 3."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str, template: str = "template0") -> str:
        """A new database (a copy of `template`); its URL."""
        from psycopg import sql  # noqa: PLC0415

        with connect(self.url()) as admin:
            admin.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
        return self.url(name)

    def drop_database(self, name: str) -> None:
        from psycopg import sql  # noqa: PLC0415

        with connect(self.url()) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


class ReusedDatabase:
    """One database for many tests: the schema stays, the rows go. Measured here, emptying
    the tables a test leaves takes about 1 ms with DELETE, 50-90 ms with TRUNCATE (catalog
    work on every table and index), and 600 ms as a fresh copy of a template database."""

    def __init__(self, url: str, tables_parents_first: list[str]) -> None:
        from psycopg import sql  # noqa: PLC0415

        self.url = url
        self._connection = connect(url)
        # A test that left a transaction open would make the DELETE wait: fail instead.
        self._connection.execute("SET lock_timeout = '20s'")
        # Children first: no cascade to follow. One query, so one transaction.
        self._delete = sql.SQL("; ").join(
            sql.SQL("DELETE FROM {}").format(sql.Identifier(table))
            for table in reversed(tables_parents_first)
        )

    def empty(self) -> None:
        self._connection.execute(self._delete)

    def close(self) -> None:
        self._connection.close()
