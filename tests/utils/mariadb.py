"""A real MariaDB server for the tests: Debian's binaries (mariadb-install-db, mariadbd) run a
throwaway data directory in a temp dir, on a free port of 127.0.0.1, tuned for speed over
durability. Its defaults are the server's own (no my.cnf is read: `--no-defaults`), so the
tables get utf8mb4 and a binary collation from the migrations, not from a kind configuration.

As root, mariadbd runs as the `mysql` user (it refuses to run as root). The tests connect as
the server's `root`, over TCP, without a password: the data directory is made that way.
"""

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pymysql
from sqlalchemy import make_url

from tests.utils.live_server import free_port

INSTALL_HINT = "install Debian's server with `apt-get install mariadb-server` (.ci/run does)"
SERVER_BINARIES = ("mariadb-install-db", "mariadbd")
# Where Debian puts them; mariadbd is in sbin, which a user's PATH may leave out.
BINARY_DIRS = (Path("/usr/bin"), Path("/usr/sbin"))
SERVER_USER = "mysql"
START_TIMEOUT_S = 30.0
# Throwaway data: durability costs time and buys nothing here. Small buffers start fast.
SETTINGS = (
    "--innodb-buffer-pool-size=64M",
    "--innodb-log-file-size=32M",
    "--innodb-flush-log-at-trx-commit=2",  # written at commit, flushed to disk once a second
    "--skip-log-bin",
    "--skip-name-resolve",
    "--max-connections=400",
)


def connect(url: str) -> pymysql.Connection[pymysql.cursors.Cursor]:
    """An autocommit PyMySQL connection to the database at SQLAlchemy `url`."""
    parsed = make_url(url)
    return pymysql.connect(
        host=parsed.host,
        port=parsed.port or 3306,
        user=parsed.username,
        password=parsed.password or "",
        database=parsed.database or None,
        autocommit=True,
    )


def find_bindir() -> dict[str, Path] | None:
    """mariadb-install-db and mariadbd, from PATH or Debian's directories; None when either is
    missing."""
    found: dict[str, Path] = {}
    for name in SERVER_BINARIES:
        on_path = shutil.which(name)
        candidates = [Path(on_path)] if on_path else []
        candidates += [directory / name for directory in BINARY_DIRS]
        binary = next((path for path in candidates if path.is_file()), None)
        if binary is None:
            return None
        found[name] = binary
    return found


class MariaDBServer:
    """One server: `start()` makes its data directory and starts mariadbd, `stop()` kills it
    (nothing in it is kept) and removes every file."""

    def __init__(self, binaries: dict[str, Path]) -> None:
        self.binaries = binaries
        self.workdir = Path(tempfile.mkdtemp(prefix="nogil-bench-mariadb-"))
        self.data_dir = self.workdir / "data"
        self.tmp_dir = self.workdir / "tmp"
        self.log_path = self.workdir / "server.log"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        # Root may not run the server; mariadbd switches to this user itself.
        self.user = SERVER_USER if os.geteuid() == 0 else None

    def start(self) -> None:
        # Its own temp dir, not /tmp: there, two servers starting at once once failed (the file
        # of a temporary table of mariadb-install-db's was gone).
        self.tmp_dir.mkdir()
        common = (
            "--no-defaults",
            *self._run_as(),
            f"--datadir={self.data_dir}",
            f"--tmpdir={self.tmp_dir}",
            *SETTINGS,
        )
        installed = subprocess.run(
            [
                str(self.binaries["mariadb-install-db"]),
                *common,
                "--auth-root-authentication-method=normal",  # root without a password
                "--skip-test-db",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if installed.returncode != 0:
            raise RuntimeError(
                f"mariadb-install-db exited {installed.returncode}:\n{installed.stderr}"
            )
        self.port = free_port()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    str(self.binaries["mariadbd"]),
                    *common,
                    f"--port={self.port}",
                    "--bind-address=127.0.0.1",
                    "--skip-networking=0",
                    f"--socket={self.workdir / 'mariadbd.sock'}",
                    f"--pid-file={self.workdir / 'mariadbd.pid'}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_until_it_answers()

    def _run_as(self) -> tuple[str, ...]:
        """mariadbd's `--user`, its directories handed to that user; nothing when not root."""
        if self.user is None:
            return ()
        try:
            owner = pwd.getpwnam(self.user)
        except KeyError:
            raise RuntimeError(
                f"running as root, but there is no {self.user!r} user to run MariaDB as: "
                f"{INSTALL_HINT}"
            ) from None
        for directory in (self.workdir, self.tmp_dir):
            os.chown(directory, owner.pw_uid, owner.pw_gid)
        return (f"--user={self.user}",)

    def _wait_until_it_answers(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                connect(self.url("")).close()
                return
            except pymysql.err.OperationalError as error:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = self.log_path.read_text(errors="replace")[-4000:]
                    raise RuntimeError(
                        f"mariadbd did not start on port {self.port}:\n{log}"
                    ) from error
                time.sleep(0.05)

    def stop(self) -> None:
        try:
            if self.process is not None:
                self.process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=30)
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of `database`, through PyMySQL."""
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new, empty database; its URL."""
        with connect(self.url("")) as admin, admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}`")
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with connect(self.url("")) as admin, admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


class ReusedDatabase:
    """One database for many tests: the schema stays, the rows go (DELETE, children first, as
    on PostgreSQL: the few rows a test leaves go faster than TRUNCATE, which MariaDB refuses on
    a table that foreign keys name)."""

    def __init__(self, url: str, tables_parents_first: list[str]) -> None:
        self.url = url
        self._connection = connect(url)
        with self._connection.cursor() as cursor:
            # A test that left a transaction open would make the DELETE wait: fail instead.
            cursor.execute("SET SESSION innodb_lock_wait_timeout = 20")
        self._deletes = [
            f"DELETE FROM `{table}`"  # noqa: S608 - the schema's own table names
            for table in reversed(tables_parents_first)
        ]

    def empty(self) -> None:
        self._connection.ping()  # reconnects after the server's wait_timeout, if ever
        with self._connection.cursor() as cursor:
            for delete in self._deletes:
                cursor.execute(delete)

    def close(self) -> None:
        self._connection.close()
