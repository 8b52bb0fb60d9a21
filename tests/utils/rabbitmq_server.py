"""A real RabbitMQ for the tests: Debian's `rabbitmq-server` on a free port of 127.0.0.1, with its
own node name, Erlang cookie, epmd and files in a temp directory. Nothing of /etc/rabbitmq or
/var/lib/rabbitmq is read or written, so several can run at once (pytest-xdist).

As root, the server, its epmd and `rabbitmqctl` run as the `rabbitmq` user; otherwise as the
current user.
"""

import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import kombu

from tests.utils.live_server import free_port

INSTALL_HINT = "install Debian's server with `apt-get install rabbitmq-server` (.ci/run does)"
SERVER_USER = "rabbitmq"
# The server's own scripts. Debian's /usr/sbin ones wrap them: they `su` (which resets HOME, so
# the cookie), work in /var/lib/rabbitmq, and refuse any user but root and rabbitmq.
DEBIAN_SCRIPTS = Path("/usr/lib/rabbitmq/bin")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
CLI_TIMEOUT_S = 60.0
# A benchmark holds an unacknowledged task for minutes: the default consumer timeout (30 min)
# would close the channel of a long one. The alarms must not trip on a busy CI box.
CONFIG = """\
listeners.tcp.default = 127.0.0.1:{port}
consumer_timeout = 86400000
disk_free_limit.absolute = 1MB
vm_memory_high_watermark.relative = 0.9
log.console = false
"""


class RabbitMQServer:
    """`rabbitmq-server` on a free port, under a node name of its own; `stop()` shuts it down
    and removes every file. Clients log in as `guest`, which RabbitMQ allows on loopback."""

    def __init__(self, binary: str) -> None:
        self.binary = Path(binary)
        self.ctl = self.binary.with_name("rabbitmqctl")
        self.epmd = shutil.which("epmd") or "/usr/bin/epmd"
        self.directory = Path(tempfile.mkdtemp(prefix="nogil-bench-rabbitmq-"))
        self.node = f"nogil-bench-{secrets.token_hex(6)}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}//"
        self.log_path = self.directory / "server.log"
        self.pid_file = self.directory / "rabbitmq.pid"
        self.process: subprocess.Popen[bytes] | None = None
        self.epmd_process: subprocess.Popen[bytes] | None = None
        # Root may not run it through Debian's scripts (they `su`): the package's user may.
        self.user = SERVER_USER if os.geteuid() == 0 else None
        self.env = self._environment()

    def _environment(self) -> dict[str, str]:
        files = self.directory
        inherited = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("RABBITMQ_", "ERL_"))
        }
        return inherited | {
            # The server and the CLI both read the Erlang cookie from $HOME/.erlang.cookie.
            "HOME": str(files),
            "LC_ALL": "C.UTF-8",
            # Files that do not exist: nothing of /etc/rabbitmq is read.
            "RABBITMQ_CONF_ENV_FILE": str(files / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILES": str(files / "conf.d" / "*.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(files / "advanced.config"),
            "RABBITMQ_CONFIG_FILE": str(files / "rabbitmq.conf"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            # By default NODE_PORT + 20000: maybe past 65535, or taken.
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            # Each rabbitmqctl listens on the first free port of this range (11 by default).
            "RABBITMQ_CTL_DIST_PORT_MIN": "35672",
            "RABBITMQ_CTL_DIST_PORT_MAX": "35871",
            "RABBITMQ_MNESIA_BASE": str(files / "mnesia"),
            "RABBITMQ_LOG_BASE": str(files / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(files / "enabled_plugins"),
            "RABBITMQ_FEATURE_FLAGS_FILE": str(files / "feature_flags"),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            # An epmd of its own, which `stop()` stops: otherwise the server (and even a
            # `rabbitmqctl help`) starts a shared one on port 4369, which stays running.
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def _as_user(self) -> dict[str, object]:
        return {} if self.user is None else {"user": self.user, "extra_groups": []}

    def start(self) -> None:
        self._write_files()
        self.epmd_process = subprocess.Popen(
            [self.epmd, "-port", str(self.epmd_port), "-address", "127.0.0.1"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            **self._as_user(),  # type: ignore[call-overload]
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while self._epmd_names() is None:
            if self.epmd_process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"epmd did not start on port {self.epmd_port}")
            time.sleep(0.02)
        with self.log_path.open("ab") as log:
            # In the foreground, in a session of its own: `stop()` can always kill it all.
            self.process = subprocess.Popen(
                [str(self.binary)],
                cwd=self.directory,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self._as_user(),  # type: ignore[call-overload]
            )
        self._wait_until_it_answers(deadline)

    def _write_files(self) -> None:
        files = self.directory
        (files / "rabbitmq.conf").write_text(CONFIG.format(port=self.port))
        (files / "enabled_plugins").write_text("[].\n")
        cookie = files / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(20))
        cookie.chmod(0o400)  # Erlang refuses a cookie others may read
        self.log_path.touch()
        if self.user is None:
            return
        try:
            owner = pwd.getpwnam(self.user)
        except KeyError:
            raise RuntimeError(
                f"running as root, but there is no {self.user!r} user to run RabbitMQ as: "
                f"{INSTALL_HINT}"
            ) from None
        for path in (files, *files.iterdir()):
            os.chown(path, owner.pw_uid, owner.pw_gid)

    def _epmd_names(self) -> bytes | None:
        """What its epmd answers to NAMES_REQ ("name N at port P" lines); None if it does not."""
        try:
            with socket.create_connection(("127.0.0.1", self.epmd_port), timeout=2) as epmd:
                epmd.sendall(b"\x00\x01n")
                reply = b""
                while chunk := epmd.recv(4096):
                    reply += chunk
                return reply
        except OSError:
            return None

    def _wait_until_it_answers(self, deadline: float) -> None:
        assert self.process is not None
        # Cheap polls until the node is registered (about a second into its boot), then one
        # rabbitmqctl, which waits for the rest of the boot (about 5 s more).
        registered = f"name {self.node.split('@')[0]} at port ".encode()
        while registered not in (self._epmd_names() or b""):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rabbitmq-server did not start:\n{self.log()}")
            time.sleep(0.05)
        timeout = max(1, round(deadline - time.monotonic()))
        try:
            self.rabbitmqctl("await_startup", "--timeout", str(timeout), timeout=timeout + 10)
        except RuntimeError as error:
            raise RuntimeError(f"{error}\nrabbitmq-server did not start:\n{self.log()}") from None
        with kombu.Connection(self.url, connect_timeout=5) as connection:
            connection.ensure_connection(max_retries=5, interval_start=0, interval_max=1)

    def rabbitmqctl(self, *args: str, timeout: float = CLI_TIMEOUT_S) -> str:
        """What `rabbitmqctl --node NODE ARGS` prints; RuntimeError if it fails. Each call
        starts an Erlang VM: 0.4 to 0.9 s here."""
        command = [str(self.ctl), "--node", self.node, *args]
        try:
            done = subprocess.run(
                command,
                env=self.env,
                cwd=self.directory,
                capture_output=True,
                text=True,
                check=False,
                timeout=timeout,
                **self._as_user(),  # type: ignore[call-overload]
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{' '.join(command)} timed out after {timeout} s") from None
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
            )
        output: str = done.stdout
        return output

    def log(self) -> str:
        """The end of the server's output and of its log file."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        node_log = self.directory / "log" / f"{self.node}.log"
        if node_log.exists():
            text += f"\n{node_log}:\n{node_log.read_text(errors='replace')}"
        return text[-6000:]

    def queue_lengths(self) -> dict[str, int]:
        """The messages (ready or unacknowledged) of each queue of vhost `/`."""
        output = self.rabbitmqctl(
            "list_queues", "--silent", "--formatter", "json", "name", "messages"
        )
        return {row["name"]: int(row["messages"]) for row in json.loads(output)}

    def purge(self) -> None:
        """Deletes every queue of vhost `/` (with its messages, bindings and consumers); the
        exchanges stay. Measured here: 0.4 to 0.6 s, the listing's one rabbitmqctl (the
        deletions take milliseconds), where deleting and adding vhost `/` again takes 1.1 to
        1.3 s (three rabbitmqctl), and 3 s in one `rabbitmqctl eval`."""
        names = self.queue_lengths()
        if not names:
            return
        with kombu.Connection(self.url, connect_timeout=5) as connection:
            for name in names:
                # A channel each: an error (a queue exclusive to another connection, which
                # goes with it) closes its channel.
                with (
                    connection.channel() as channel,
                    contextlib.suppress(*connection.channel_errors),
                ):
                    kombu.Queue(name, channel=channel).delete()

    def stop(self) -> None:
        try:
            if self.process is not None and self.process.poll() is None:
                # The script passes SIGTERM on to the node, which stops as on `rabbitmqctl
                # stop`: 1.1 s here, where `rabbitmqctl shutdown` takes 2.5 s.
                self.process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=STOP_TIMEOUT_S)
            self._kill_leftovers()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def _kill_leftovers(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                # Its session (the script is its leader): the script and beam.smp.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=10)
            # The node removes its pid file when it exits: one left may be a node still running.
            with contextlib.suppress(OSError, ValueError):
                pid = int(self.pid_file.read_text().strip())
                if str(self.directory).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)
        if self.epmd_process is not None:
            self.epmd_process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.epmd_process.wait(timeout=10)


def find_rabbitmq_server() -> str | None:
    """The server's own `rabbitmq-server` script (not Debian's wrapper), with `rabbitmqctl`
    beside it; None when not installed."""
    candidates = [DEBIAN_SCRIPTS / "rabbitmq-server"]
    if on_path := shutil.which("rabbitmq-server"):
        candidates.append(Path(on_path))
    for candidate in candidates:
        script = candidate.resolve()
        if script.name == "rabbitmq-server" and (script.parent / "rabbitmqctl").is_file():
            return str(candidate)
    return None
