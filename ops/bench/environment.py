"""The benchmarks' throwaway world: a database and a Redis prefix of their own, real workers.

with environment() as env:                  # created, migrated, loaded; dropped after
    with worker(env, "batch", log):         # `celery -A worker worker -Q batch -c 2`
        subprocess.run([zipscore_exe(), "score", ...], env=env.vars)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psutil
import psycopg
import redis
from psycopg import sql

from ops import celery_worker

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_TABLE = ROOT / "ops" / "sample_data" / "risk-table.sample.csv"


@dataclass
class Env:
    run_id: str
    admin_url: str
    database_url: str
    prefix: str
    redis_url: str

    @property
    def vars(self) -> dict[str, str]:
        return {
            **os.environ,
            "ZIPSCORE_DATABASE_URL": self.database_url,
            "ZIPSCORE_REDIS_PREFIX": self.prefix,
            "ZIPSCORE_REDIS_URL": self.redis_url,
            "PYTHONUNBUFFERED": "1",
        }


@contextlib.contextmanager
def environment() -> Iterator[Env]:
    run_id = uuid.uuid4().hex[:8]
    admin = os.environ.get("ZIPSCORE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"zipscore_bench_{run_id}"
    env = Env(
        run_id,
        admin,
        urlunsplit(urlsplit(admin)._replace(path=f"/{name}")),
        f"zipscore-bench-{run_id}",
        os.environ.get("ZIPSCORE_REDIS_URL", "redis://127.0.0.1:6379/0"),
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        for args in (["db", "migrate"], ["db", "load-zipcodes", str(SAMPLE_TABLE)]):
            subprocess.run([zipscore_exe(), *args], env=env.vars, check=True, capture_output=True)
        yield env
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        client = redis.Redis.from_url(env.redis_url)
        for key in client.scan_iter(match=f"{env.prefix}*", count=1000):
            client.delete(key)


def zipscore_exe() -> str:
    return shutil.which("zipscore", path=str(Path(sys.executable).parent)) or "zipscore"


@contextlib.contextmanager
def worker(env: Env, queues: str, log: Path, *extra: str) -> Iterator[psutil.Process]:
    """`celery -A worker worker -Q queues -c 2` until the block ends (warm shutdown)."""
    argv = celery_worker.command(queues, f"bench-{queues}-{env.run_id}", extra=extra)
    process = celery_worker.start(env.vars, log, argv)
    try:
        yield psutil.Process(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
