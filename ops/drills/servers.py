"""Servers a drill owns and may break: a Redis, a Postgres cluster, Celery worker processes.

Each listens on a free loopback port, keeps its files in a directory the caller gives, and
is stopped by its `close()` (fixtures and the soak script call it in a `finally`).

    redis = RedisServer(tmp / "redis", password="s3cret")   # append-only file on
    redis.start(); redis.stop(); redis.start()              # a broker restart, same data
    pg = PostgresCluster(password="s3cret")                  # initdb, scram-sha-256 auth
    worker = WorkerProcess(env, tmp / "worker.log", queues="lookups")
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import quote

import psycopg
import redis

from ops import celery_worker

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path(os.environ.get("ZIPSCORE_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    """A TCP port nobody listens on at the moment, on the loopback interface."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str, step: float = 0.05) -> None:
    """Poll `check` until it is true; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)


class RedisServer:
    """`redis-server` on a free port with the append-only file on (and a password if given)."""

    def __init__(
        self, directory: Path, password: str | None = None, options: Sequence[str] = ()
    ) -> None:
        self.directory = directory
        self.password = password
        self.options = list(options)  # more redis-server arguments, e.g. --maxmemory 20mb
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=5)

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def start(self) -> None:
        command = [
            shutil.which("redis-server") or "redis-server",
            *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)),
            *("--appendonly", "yes", "--appendfsync", "always", "--save", ""),
            *("--protected-mode", "yes"),
        ]
        if self.password:
            command += ["--requirepass", self.password]
        command += self.options
        with (self.directory / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._answers, 15, f"redis-server on port {self.port}")

    def stop(self) -> None:
        """SIGTERM: Redis writes its append-only file and exits (as a restart would)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    close = stop


def _as_postgres() -> list[str]:
    """Postgres refuses to run as root: run its binaries as the `postgres` user then."""
    if os.geteuid() != 0:
        return []
    return [shutil.which("runuser") or "runuser", "-u", "postgres", "--"]


class PostgresCluster:
    """A private Postgres cluster (initdb) on a free port, password auth (scram-sha-256).

    Its files live in a directory of its own under the system's temporary directory (the
    `postgres` user must reach it), removed by `close()`.
    """

    def __init__(self, password: str, user: str = "zipscore") -> None:
        self.directory = directory = Path(tempfile.mkdtemp(prefix="zipscore-drill-pg-"))
        self.data = directory / "data"
        self.password = password
        self.user = user
        self.port = free_port()
        self.running = False
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(directory, owner.pw_uid, owner.pw_gid)
        secret = directory / "pwfile"
        secret.write_text(password + "\n")
        if os.geteuid() == 0:
            os.chown(secret, owner.pw_uid, owner.pw_gid)
        subprocess.run(
            [
                *_as_postgres(),
                str(PG_BIN / "initdb"),
                *("-D", str(self.data), "-U", user, "--pwfile", str(secret)),
                *("-A", "scram-sha-256", "--no-sync", "-E", "UTF8", "--locale", "C"),
            ],
            check=True,
            capture_output=True,
        )
        secret.unlink()

    def url(self, database: str = "postgres", password: str | None = None) -> str:
        secret = quote(self.password if password is None else password, safe="")
        return f"postgresql://{self.user}:{secret}@127.0.0.1:{self.port}/{database}"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [*_as_postgres(), str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} "
            "-c fsync=off -c max_connections=60 -c shared_buffers=16MB"
        )
        self._ctl("-w", "-l", str(self.directory / "postgres.log"), "-o", options, "start")
        self.running = True

    def stop(self) -> None:
        """A fast shutdown: every connection is cut, as in an outage."""
        if self.running:
            self._ctl("-w", "-m", "fast", "stop")
            self.running = False

    def close(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def connect(self, database: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(self.url(database), autocommit=True, connect_timeout=5)


class WorkerProcess:
    """`celery -A worker worker` in its own process group, its output in `log`."""

    def __init__(
        self,
        env: dict[str, str],
        log: Path,
        *,
        queues: str = "lookups,batch,index",
        concurrency: int = 2,
        extra: Sequence[str] = (),
        loglevel: str = "INFO",
        wait: bool = True,
    ) -> None:
        """Start the worker; with loglevel INFO and `wait`, wait for its "ready." line."""
        self.log = log
        argv = celery_worker.command(
            queues,
            f"drill-{log.stem}-{os.getpid()}",
            concurrency=concurrency,
            loglevel=loglevel,
            extra=("--without-mingle", "--without-gossip", *extra),
        )
        self.process = celery_worker.start(env, log, argv, new_session=True, wait=False)
        if loglevel == "INFO" and wait:
            wait_until(self.ready, 60, "the worker to start", 0.1)

    @property
    def pid(self) -> int:
        return self.process.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def ready(self) -> bool:
        """Whether the worker logged "ready."; AssertionError if it exited."""
        if self.process.poll() is not None:
            raise AssertionError(f"the worker exited:\n{self.text()[-3000:]}")
        return "ready." in self.text()

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, Celery's warm shutdown: tasks in flight finish first."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes, mid-task."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.terminate(20)
        self.kill()
