"""A Redis group behind Sentinel for tests: a primary, a replica and three Sentinels.

    with SentinelGroup(tmp_path / "sentinel") as group:   # real redis-server, redis-sentinel
        group.env()            # ZIPSCORE_SENTINELS, ZIPSCORE_SENTINEL_MASTER, ZIPSCORE_REDIS_URL
        group.kill_primary()   # SIGKILL: the Sentinels promote the replica
        group.wait_for_promotion(timeout=30)

Every process listens on a free loopback port and is stopped by `close()` (the `with`
block's exit, also after a failure). The Sentinels judge the primary down after
`down_after_ms` (1 s here; Redis's default is 30 s) and need two of three to agree.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import redis

from ops.drills.servers import free_port, wait_until

MASTER = "zipscore"
REDIS_SERVER = shutil.which("redis-server") or "redis-server"


def sentinel_command() -> list[str]:
    """Debian's redis-sentinel, or redis-server in sentinel mode (the same program)."""
    found = shutil.which("redis-sentinel")
    return [found] if found else [REDIS_SERVER]


class SentinelGroup:
    """`redis-server` primary and replica, three `redis-sentinel`, all on loopback."""

    def __init__(self, directory: Path, down_after_ms: int = 1000) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.down_after_ms = down_after_ms
        self.ports = {"primary": free_port(), "replica": free_port()}
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def __enter__(self) -> SentinelGroup:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _spawn(self, name: str, argv: list[str]) -> None:
        with (self.directory / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def _server(self, name: str, *more: str) -> None:
        data = self.directory / name
        data.mkdir(exist_ok=True)
        self._spawn(
            name,
            [
                REDIS_SERVER, "--port", str(self.ports[name]), "--bind", "127.0.0.1",
                "--dir", str(data), "--save", "", "--appendonly", "no", *more,
            ],
        )  # fmt: skip
        wait_until(lambda: self._pings(self.ports[name]), 15, f"redis-server {name}")

    @staticmethod
    def _pings(port: int) -> bool:
        try:
            return bool(redis.Redis(port=port, socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False

    def start(self) -> None:
        self._server("primary")
        self._server("replica", "--replicaof", "127.0.0.1", str(self.ports["primary"]))
        wait_until(self._replica_synced, 30, "the replica to sync")
        for number, port in enumerate(self.sentinel_ports):
            config = self.directory / f"sentinel-{number}.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.directory}\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {self.ports['primary']} 2\n"
                f"sentinel down-after-milliseconds {MASTER} {self.down_after_ms}\n"
                f"sentinel failover-timeout {MASTER} 10000\n"
                f"sentinel parallel-syncs {MASTER} 1\n"
            )
            argv = [*sentinel_command(), str(config)]
            if not shutil.which("redis-sentinel"):
                argv.append("--sentinel")
            self._spawn(f"sentinel-{number}", argv)
        wait_until(self._sentinels_agree, 30, "the Sentinels to know the replica and each other")

    def _replica_synced(self) -> bool:
        info = redis.Redis(port=self.ports["replica"]).info("replication")
        return info.get("master_link_status") == "up"

    def sentinel(self, number: int = 0) -> redis.Redis:
        return redis.Redis(port=self.sentinel_ports[number], socket_timeout=2)

    def _sentinels_agree(self) -> bool:
        try:
            for number in range(3):
                master: dict[str, Any] = self.sentinel(number).sentinel_master(MASTER)  # type: ignore[assignment]
                if master.get("num-slaves", 0) < 1 or master.get("num-other-sentinels", 0) < 2:
                    return False
        except redis.RedisError:
            return False
        return True

    def primary_port(self) -> int:
        """The port of the primary as the Sentinels see it now."""
        found: tuple[str, int] = self.sentinel().sentinel_get_master_addr_by_name(MASTER)  # type: ignore[assignment]
        return int(found[1])

    @property
    def addresses(self) -> str:
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def env(self) -> dict[str, str]:
        """zipscore's settings for this group (the URL's host and port are not used)."""
        return {
            "ZIPSCORE_SENTINELS": self.addresses,
            "ZIPSCORE_SENTINEL_MASTER": MASTER,
            "ZIPSCORE_REDIS_URL": f"redis://127.0.0.1:{self.ports['primary']}/0",
        }

    def kill_primary(self) -> int:
        """SIGKILL the current primary (no shutdown, no last write); its port."""
        port = self.primary_port()
        name = next(name for name, p in self.ports.items() if p == port)
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        return port

    def wait_for_promotion(self, old_port: int, timeout: float = 30) -> float:
        """Seconds until the Sentinels name a new primary that answers as one."""
        started = time.monotonic()

        def promoted() -> bool:
            try:
                port = self.primary_port()
                role = redis.Redis(port=port, socket_connect_timeout=1).info("replication")
            except redis.RedisError:
                return False
            return port != old_port and role.get("role") == "master"

        wait_until(promoted, timeout, "a Sentinel failover", 0.05)
        return time.monotonic() - started

    def close(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(10)
