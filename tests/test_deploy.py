"""The container and its deployment, without Docker (it is not on the machines the suite runs
on): ``compose.yaml`` validated against the Compose Specification's JSON schema
(tests/deploy/compose-spec.json) and read for what a deployment needs; the ``Dockerfile``'s
structure read instruction by instruction; and the refusal to start without ``DATABASE_URL``
that the image turns on, through the real ``switchboard serve``.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from api.settings import ConfigurationError, load_settings
from tests.servers import SWITCHBOARD, clean_env

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((Path(__file__).parent / "deploy" / "compose-spec.json").read_text())
# An environment variable whose value must never be written into these files.
SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|API_KEY")


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def _errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA)
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_follows_the_compose_specification() -> None:
    compose = _compose()
    assert _errors(compose) == []
    # The check is a real one: each mistake a hand-written file could make is caught.
    mistakes: list[tuple[str, Any]] = [
        ("$.services.api", lambda api: api.update(healthchek={"test": ["CMD", "true"]})),
        ("$.services.worker.depends_on",
         lambda worker: worker.update(depends_on={"postgres": {"condition": "service_ready"}})),
        ("$.services.api.ports", lambda api: api.update(ports={"8000": 8000})),
    ]  # fmt: skip
    for path, mistake in mistakes:
        broken = copy.deepcopy(compose)
        mistake(broken["services"][path.split(".")[2]])
        assert [e.split(":")[0] for e in _errors(broken)] == [path], path


def test_compose_runs_postgres_redis_two_api_replicas_and_a_worker() -> None:
    services = _compose()["services"]
    assert services["postgres"]["image"] == "pgvector/pgvector:pg17"
    assert services["redis"]["image"].startswith("redis:")
    api, worker = services["api"], services["worker"]
    assert api["deploy"]["replicas"] == 2
    assert api["command"][:2] == ["switchboard", "serve"]
    assert worker["command"] == ["switchboard", "worker"]
    assert services["migrate"]["command"] == ["switchboard", "db", "upgrade"]
    # The replicas only queue runs; the worker executes them; both share Postgres and Redis.
    assert api["environment"]["SWITCHBOARD_EXECUTE_RUNS"] == "false"
    for service in (api, worker):
        env = service["environment"]
        assert env["DATABASE_URL"].endswith("@postgres:5432/switchboard")
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert env["SWITCHBOARD_ENV"] == "production"
        assert service["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }
    for name in ("postgres", "redis", "api"):
        assert services[name]["healthcheck"]["test"], name
    assert "/healthz" in " ".join(api["healthcheck"]["test"])
    assert services["worker"]["healthcheck"] == {"disable": True}


def test_compose_writes_down_no_secret() -> None:
    compose = _compose()
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                # A required interpolation: compose refuses to start without the variable.
                assert re.fullmatch(r"\$\{\w+:\?[^}]*\}", value), (name, key, value)
    url = compose["services"]["api"]["environment"]["DATABASE_URL"]
    assert "${POSTGRES_PASSWORD:?" in url


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", text)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        found.append((keyword.upper(), rest.strip()))
    return found


def _env(arguments: str) -> dict[str, str]:
    pairs = re.findall(r"(\w+)=(\S*)", arguments)
    return dict(pairs)


def test_dockerfile_builds_wheels_then_runs_them_slim_as_a_user_with_a_healthcheck() -> None:
    instructions = _instructions()
    stages = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    assert len(stages) == 2
    builder = instructions[stages[0] : stages[1]]
    runtime = instructions[stages[1] :]
    assert builder[0][1].endswith(" AS builder")
    assert any(k == "RUN" and "pip wheel" in a and "/wheels" in a for k, a in builder)
    assert "-slim" in runtime[0][1]
    assert ("COPY", "--from=builder /wheels /wheels") in runtime
    assert any(k == "RUN" and "--no-index --find-links=/wheels" in a for k, a in runtime)
    # The runtime stage installs no compiler.
    assert not any("build-essential" in a for _, a in runtime)

    users = [a for k, a in runtime if k == "USER"]
    assert len(users) == 1
    user = users[0].split(":")[0]
    assert user not in ("root", "0")
    # Nothing runs as root after it: the last instructions are metadata.
    after_user = [k for k, _ in runtime[runtime.index(("USER", users[0])) :]]
    assert set(after_user) <= {"USER", "EXPOSE", "HEALTHCHECK", "CMD"}

    healthchecks = [a for k, a in runtime if k == "HEALTHCHECK"]
    assert len(healthchecks) == 1
    assert "http://127.0.0.1:8000/healthz" in healthchecks[0]
    cmd = json.loads(next(a for k, a in runtime if k == "CMD"))
    # In a container the server listens on every interface of its own network namespace.
    assert cmd == ["switchboard", "serve", "--host", "0.0.0.0", "--port", "8000"]  # noqa: S104


def test_dockerfile_requires_a_database_and_holds_no_secret() -> None:
    env: dict[str, str] = {}
    for keyword, arguments in _instructions():
        if keyword in ("ENV", "ARG"):
            env.update(_env(arguments))
    assert env["SWITCHBOARD_REQUIRE_DATABASE_URL"] == "true"
    assert env["SWITCHBOARD_ENV"] == "production"
    assert "DATABASE_URL" not in env
    assert [name for name in env if SECRET_NAME.search(name)] == []
    ignored = (ROOT / ".dockerignore").read_text().split()
    for local_state in (".git", ".venv", ".switchboard", ".env", "switchboard.env"):
        assert local_state in ignored


def test_settings_refuse_to_start_without_a_database_when_told() -> None:
    with pytest.raises(ConfigurationError) as refused:
        load_settings(require_database_url=True, database_url=None)
    assert str(refused.value) == (
        "DATABASE_URL must be set: SWITCHBOARD_REQUIRE_DATABASE_URL is true (the container"
        " image never runs the embedded Postgres)"
    )
    allowed = load_settings(require_database_url=True, database_url="postgresql://db/x")
    assert allowed.database_url == "postgresql://db/x"


def test_serve_in_the_image_s_settings_exits_before_starting_postgres(tmp_path: Path) -> None:
    secret = "a-jwt-secret-that-must-not-be-printed-0123456789"
    env = clean_env(
        SWITCHBOARD_REQUIRE_DATABASE_URL="true",
        SWITCHBOARD_ENV="production",
        SWITCHBOARD_JWT_SECRET=secret,
        SWITCHBOARD_DATA_DIR=str(tmp_path / "data"),
    )
    done = subprocess.run(
        [SWITCHBOARD, "serve", "--port", "0"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert done.stderr.strip().endswith(
        "DATABASE_URL must be set: SWITCHBOARD_REQUIRE_DATABASE_URL is true (the container"
        " image never runs the embedded Postgres)"
    )
    assert secret not in done.stdout + done.stderr
    # No embedded Postgres was started: its data directory was never made.
    assert not (tmp_path / "data").exists()


def test_the_license_is_apache_2() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "END OF TERMS AND CONDITIONS" in text
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'license = "Apache-2.0"' in pyproject
