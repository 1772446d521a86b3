"""A private Redis-protocol server for tests: Debian's `redis-server` on a free loopback port, its
users as the AWS stack makes them.

The dispatcher signs in as the stack's RBAC user, `voicefleet`, with the access string the stack
renders (stacks/shared/store_access.py, the string stacks/aws/store.py gives ElastiCache) and a password,
and connects the way aws-prod's task does: `REDIS_URL` names the user, `REDIS_PASSWORD` holds the
password (`env`). The `default` user is off with a password nobody is given, as the stack holds
it, and the server starts channel rules at `allchannels`, as ElastiCache Serverless does. A command, key or channel the
access string refuses is refused here too, and recorded: `refused()` reads the server's ACL log.
The tests themselves look and poke with an `admin` user that may do anything (`admin_url`).

A test may ask for valkey-server instead (`binary`), the engine ElastiCache runs; the server's
warnings go to a log in the work directory (`warnings()`).

Nothing is persisted (no RDB, no AOF) and it listens on 127.0.0.1 only. `configured_server` runs
one from a stack's own configuration file instead (the k8s stack's in-cluster store: its users,
its persistence), on a free loopback port with its data in the work directory. `stop()`/`start()` take
it down and bring it back on the same port, users included, for the store-outage tests. Tests skip
with a reason where the binary is missing (CI installs it: .ci/run).
"""

from __future__ import annotations

import contextlib
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from redis.maint_notifications import MaintNotificationsConfig

from stacks.aws.store import USER
from stacks.shared.store_access import ACCESS
from tests.support.ports import free_port
from tests.support.waiting import wait_until

BINARY = "redis-server"
# The engines a test may ask for: Debian's redis-server, and valkey-server, the engine ElastiCache
# Serverless runs (Debian has it from bookworm-backports on; .ci/run installs it).
ENGINES = (BINARY, "valkey-server")
ADMIN = "admin"
REFUSALS = ("command", "key", "channel")  # ACL LOG reasons other than a failed sign-in


class RedisServer:
    def __init__(self, workdir: Path, *, access: str = ACCESS, binary: str = BINARY) -> None:
        self.binary = binary
        self.port = free_port()
        self.workdir = workdir
        self.access = access
        self.password = secrets.token_urlsafe(24)
        self._admin_password = secrets.token_urlsafe(24)
        self.message_secret = secrets.token_urlsafe(32)  # the replicas' REDIS_MESSAGE_SECRET
        self.process: subprocess.Popen[bytes] | None = None
        self.extra_args: list[str] = []

    @property
    def url(self) -> str:
        """The dispatcher's `REDIS_URL`, as the AWS stack renders it: the user, no password."""
        return f"redis://{USER}@127.0.0.1:{self.port}/0"

    @property
    def env(self) -> dict[str, str]:
        """What a dispatcher replica needs to sign in as the stack's user and sign its messages."""
        return {"REDIS_URL": self.url, "REDIS_PASSWORD": self.password, "REDIS_MESSAGE_SECRET": self.message_secret}

    @property
    def admin_url(self) -> str:
        return f"redis://{ADMIN}:{self._admin_password}@127.0.0.1:{self.port}/0"

    def admin(self) -> redis.Redis:
        # Quiet, as the dispatcher's connections are: no CLIENT SETINFO, no CLIENT MAINT_NOTIFICATIONS.
        return redis.Redis.from_url(self.admin_url, decode_responses=True, socket_timeout=10, driver_info=None,
                                    maint_notifications_config=MaintNotificationsConfig(enabled=False))

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.workdir), "--protected-mode", "yes", "--loglevel", "warning",
                "--logfile", str(self.logfile),
                "--acl-pubsub-default", "allchannels", *self.extra_args]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not _answers(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.binary} did not start on port {self.port}")
            time.sleep(0.02)
        self._make_users()

    def _make_users(self) -> None:
        """The users, as ElastiCache would hold them: the stack's access string on a fresh user
        (`reset` first, which the access string itself may not say), its password set apart."""
        with redis.Redis(port=self.port, socket_timeout=10) as first:  # the default user, until it is off
            first.execute_command("ACL", "SETUSER", ADMIN, "on", f">{self._admin_password}", "~*", "&*", "+@all")
            first.execute_command("ACL", "SETUSER", USER, "reset")
            first.execute_command("ACL", "SETUSER", USER, *self.access.split(), f">{self.password}")
            # Off, with a password no client is given, as the stack holds it (stacks/aws/store.py).
            first.execute_command("ACL", "SETUSER", "default", "off", "resetchannels", "-@all", "resetpass",
                                  f">{secrets.token_urlsafe(24)}")

    @property
    def logfile(self) -> Path:
        return self.workdir / f"{self.binary}.log"

    def warnings(self) -> list[str]:
        """What the server logged at warning level since it first started here (its deprecation
        warnings among them: Valkey logs one for each first-argument rule it is given)."""
        return self.logfile.read_text(errors="replace").splitlines() if self.logfile.exists() else []

    def refused(self) -> list[dict[str, object]]:
        """What the server refused the stack's user since it started (or since `forget_refusals`)."""
        with self.admin() as admin:
            entries = admin.acl_log()
        return [e for e in entries if e.get("username") == USER and e.get("reason") in REFUSALS]

    def forget_refusals(self) -> None:
        with self.admin() as admin:
            admin.acl_log_reset()

    def record(self) -> CommandLog:
        """Every command the server runs from now on (MONITOR), until the log is closed."""
        return CommandLog(self)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None


class CommandLog:
    """What a server runs, as MONITOR reports it: every client's commands and those its scripts
    run, named as ACL rules name them (`script|load`). The tests' own admin reads are in it too."""

    _QUOTED = re.compile(rb'"((?:[^"\\]|\\.)*)"')

    def __init__(self, server: RedisServer) -> None:
        with server.admin() as admin:
            self._containers = {name for name, info in admin.command().items() if info.get("subcommands")}
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._socket = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        self._socket.sendall(_command(b"AUTH", ADMIN.encode(), server._admin_password.encode()) + _command(b"MONITOR"))
        self._lines = self._socket.makefile("rb")
        if self._lines.readline() != b"+OK\r\n" or self._lines.readline() != b"+OK\r\n":
            raise RuntimeError("MONITOR did not start")
        self._socket.settimeout(None)  # it reads until closed
        self._reader = threading.Thread(target=self._read, name="redis-monitor", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        with contextlib.suppress(OSError, ValueError):  # closed under it
            self._read_lines()

    def _read_lines(self) -> None:
        for line in self._lines:
            words = [w.decode(errors="replace").lower() for w in self._QUOTED.findall(line)[:2]]
            if not words:
                continue
            name = f"{words[0]}|{words[1]}" if words[0] in self._containers and len(words) > 1 else words[0]
            with self._lock:
                self._seen.add(name)

    def commands(self) -> set[str]:
        with self._lock:
            return set(self._seen)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
        self._reader.join(10)


def _command(*words: bytes) -> bytes:
    return b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith((b"+PONG", b"-NOAUTH"))  # up, with or without a password
    except OSError:
        return False


@contextmanager
def redis_server(workdir: Path, *, access: str = ACCESS, binary: str = BINARY) -> Iterator[RedisServer]:
    if shutil.which(binary) is None:
        pytest.skip(f"{binary} is not installed (apt-get install {binary}; .ci/run does)")
    server = RedisServer(workdir, access=access, binary=binary)
    server.start()
    try:
        yield server
        # The dispatcher must never be refused by the stack's access string: a refusal it survives
        # (a fallback, a retry) would pass every other check and fail in the stack.
        refused = server.refused() if server.process is not None else []
        assert not refused, f"the store refused the stack's user: {[_what(e) for e in refused]}"
    finally:
        server.stop()


class ConfiguredServer:
    """A server started from a configuration file as a stack writes it; `start` again after `kill`
    brings it back on the same port from the same data (its append-only file, if the file says so)."""

    def __init__(self, workdir: Path, config: str, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.workdir = workdir
        self.config_file = workdir / "server.conf"
        self.config_file.write_text(config)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # Arguments after the file override it: the address and the directory are the machine's.
        args = [self.binary, str(self.config_file), "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.workdir), "--logfile", str(self.workdir / f"{self.binary}.log")]
        errors = self.workdir / f"{self.binary}.stderr"  # where a refused configuration is said
        with errors.open("ab") as stderr:
            process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=stderr)
        self.process = process
        wait_until(lambda: _answers(self.port) or process.poll() is not None, f"{self.binary} on port {self.port}",
                   timeout=30, detail=lambda: errors.read_text(errors="replace")[-2000:])
        if process.poll() is not None:
            raise RuntimeError(f"{self.binary} refused its configuration: {errors.read_text(errors='replace')}")

    def kill(self) -> None:
        """As a crash would: no shutdown, nothing flushed beyond what the server wrote already."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None


@contextmanager
def configured_server(workdir: Path, config: str, *, binary: str = BINARY) -> Iterator[ConfiguredServer]:
    if shutil.which(binary) is None:
        pytest.skip(f"{binary} is not installed (apt-get install {binary}; .ci/run does)")
    server = ConfiguredServer(workdir, config, binary)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def _what(entry: dict[str, object]) -> str:
    return f"{entry.get('reason')} {entry.get('object')!r} ({entry.get('context')})"
