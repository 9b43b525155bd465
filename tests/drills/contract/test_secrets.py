"""Drill: passwords in the URLs work, and never show up in logs, errors or Flower.

Given a Redis with `--requirepass` and a Postgres cluster with scram-sha-256 auth, both
reached through ZIPSCORE_* URLs carrying their passwords, when a worker, the CLI (answers,
errors, a wrong password) and Flower run, then lookups answer and no captured output (the
worker's log, the CLI's stdout and stderr, Flower's log and its pages) holds a password.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ops.drills.servers import ROOT, PostgresCluster, RedisServer, free_port, wait_until
from tests.support.console import console
from tests.support.drills import StartWorker


@pytest.fixture
def locked_redis(tmp_path: Path, services: None) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "locked-redis", password=f"redis-{uuid.uuid4().hex}")
    server.start()
    try:
        yield server
    finally:
        server.close()


def flower_pages(env: dict[str, str], log: Path, password: str) -> str:
    """Run Flower (basic auth) against the broker for a moment; its log and some pages."""
    port = free_port()
    env = {**env, "FLOWER_BASIC_AUTH": f"drill:{password}"}
    with log.open("wb") as sink:
        flower = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker", "flower",
             "--address=127.0.0.1", f"--port={port}"],
            cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    pages = []
    try:

        def answers() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"http://127.0.0.1:{port}/healthcheck", timeout=2).is_success
            return False

        wait_until(answers, 60, "Flower to answer")
        for page in ("/broker", "/api/workers?refresh=1", "/metrics"):
            answer = httpx.get(
                f"http://127.0.0.1:{port}{page}", auth=("drill", password), timeout=30
            )
            assert answer.status_code == 200, page
            pages.append(answer.text)
    finally:
        flower.terminate()
        flower.wait(20)
    return "\n".join(pages) + log.read_text(errors="replace")


def test_passwords_work_and_never_leak(
    locked_redis: RedisServer,
    private_postgres: PostgresCluster,
    start_worker: StartWorker,
    database: str,
    tmp_path: Path,
) -> None:
    flower_password = f"flower-{uuid.uuid4().hex}"
    secrets = (locked_redis.password or "", private_postgres.password, flower_password)
    env = {**os.environ, "ZIPSCORE_REDIS_URL": locked_redis.url,
           "ZIPSCORE_DATABASE_URL": private_postgres.url(),
           "ZIPSCORE_REDIS_PREFIX": f"zipscore-secrets-{uuid.uuid4().hex[:6]}",
           "PYTHONUNBUFFERED": "1"}  # fmt: skip
    worker = start_worker(env, queues="lookups")
    captured: list[str] = []
    for args in (("lookup", "9000"), ("lookup", "-v", "1501", "--json"), ("lookup", "999"),
                 ("zipcodes", "--risk-factor", "A' OR 1=1"), ("doctor", "--json")):  # fmt: skip
        done = console(*args, env=env)
        captured += [done.stdout, done.stderr]
        assert done.returncode in (0, 2), done.stderr
    assert captured[0] == "B\n"
    # A wrong password is an error that names the fault, not the secret.
    for wrong in ({"ZIPSCORE_REDIS_URL": locked_redis.url.replace(secrets[0], "nope")},
                  {"ZIPSCORE_DATABASE_URL": private_postgres.url(password="nope")}):  # fmt: skip
        done = console("doctor", "--json", env={**env, **wrong})
        assert done.returncode == 1, done.stdout
        captured += [done.stdout, done.stderr]
        done = console("lookup", "2222", env={**env, **wrong, "ZIPSCORE_LOOKUP_TIMEOUT": "3"})
        captured += [done.stdout, done.stderr]
    captured.append(flower_pages(env, tmp_path / "flower.log", flower_password))
    captured.append(worker.text())
    everything = "\n".join(captured)
    assert "Traceback" not in "\n".join(captured[:-2])  # the CLI never shows one
    for secret in secrets:
        assert secret not in everything
    assert "zipcodes.lookup" in everything  # the worker log and Flower did see the work


def test_passwords_from_files_work_with_the_real_services(
    locked_redis: RedisServer,
    private_postgres: PostgresCluster,
    start_worker: StartWorker,
    tmp_path: Path,
) -> None:
    """The container way: URLs without passwords, each password in a file (a compose secret),
    read by a real worker and the CLI against a Redis and a Postgres that require them."""
    redis_file, postgres_file = tmp_path / "redis_password", tmp_path / "postgres_password"
    redis_file.write_text(f"{locked_redis.password}\n")
    postgres_file.write_text(f"{private_postgres.password}\n")
    env = {**os.environ,
           "ZIPSCORE_REDIS_URL": f"redis://127.0.0.1:{locked_redis.port}/0",
           "ZIPSCORE_REDIS_PASSWORD_FILE": str(redis_file),
           "ZIPSCORE_DATABASE_URL":
               f"postgresql://{private_postgres.user}@127.0.0.1:{private_postgres.port}/postgres",
           "ZIPSCORE_DATABASE_PASSWORD_FILE": str(postgres_file),
           "ZIPSCORE_REDIS_PREFIX": f"zipscore-files-{uuid.uuid4().hex[:6]}",
           "PYTHONUNBUFFERED": "1"}  # fmt: skip
    worker = start_worker(env, queues="lookups")
    answered = console("lookup", "9000", env=env)
    doctor = console("doctor", "--json", env=env)
    assert (answered.returncode, answered.stdout) == (0, "B\n"), answered.stderr
    assert '"postgres": "ok' in doctor.stdout
    assert '"broker": "ok' in doctor.stdout
    everything = "\n".join([answered.stderr, doctor.stdout, doctor.stderr, worker.text()])
    for secret in (locked_redis.password or "", private_postgres.password):
        assert secret not in everything


def test_composes_redis_takes_its_password_from_the_secret_file_not_its_arguments(
    tmp_path: Path, services: None
) -> None:
    """docker-compose.yml's Redis command, run as compose runs it (`$$` is compose's `$`),
    against a secret file: clients need the password, and no process's arguments hold it."""
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    shell = compose["services"]["redis"]["command"][2].replace("$$", "$")
    password = f"pw{uuid.uuid4().hex}"
    secret = tmp_path / "redis_password"
    secret.write_text(f"{password}\n")
    port = free_port()
    shell = shell.replace("/run/secrets/redis_password", str(secret))
    shell += f" --port {port} --bind 127.0.0.1 --dir {tmp_path} --appendonly no --daemonize no"
    server = subprocess.Popen(
        ["sh", "-c", shell], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        import redis

        wait_until(lambda: _answers(port, password), 20, "the compose Redis to answer", 0.1)
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).ping()
        arguments = [p.read_bytes() for p in Path("/proc").glob("[0-9]*/cmdline") if p.exists()]
        assert not any(password.encode() in args for args in arguments)
    finally:
        server.terminate()
        server.wait(10)


def _answers(port: int, password: str) -> bool:
    import redis

    with contextlib.suppress(redis.ConnectionError):
        return bool(redis.Redis(port=port, password=password).ping())
    return False
