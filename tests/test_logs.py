"""Logs: one format for uvicorn's lines and ours, JSON lines naming their request, run and user,
request ids on every response, and no secret in any log line or configuration error."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import signal
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from websockets.sync.client import connect

from api import logs
from api.request_ids import HEADER
from api.settings import Settings
from tests.conftest import JWT_SECRET, PASSWORD, User, make_settings
from tests.servers import SWITCHBOARD, beside_the_tests, clean_env

GENERATED = re.compile(r"[0-9a-f]{32}")
FIELDS = {"timestamp", "level", "logger", "message", "request_id", "run_id", "user_id"}
SECRETS = {
    "OPENAI_API_KEY": "sk-test-logs-secret-4242",
    "SWITCHBOARD_JWT_SECRET": "jwt-secret-of-the-logs-test-0123456789abcdef",
    "SWITCHBOARD_WEBHOOK_SECRET": "whsec-logs-test-secret-987",
    "SWITCHBOARD_ADMIN_PASSWORD": "admin-pass-logs-test-55",
    "REDIS_URL": "redis://:redis-pass-logs-77@127.0.0.1:1/0",
    "DATABASE_URL": "postgresql://app:pg-pass-logs-66@127.0.0.1:1/switchboard",
}
SECRET_VALUES = [
    "sk-test-logs-secret-4242",
    "jwt-secret-of-the-logs-test-0123456789abcdef",
    "whsec-logs-test-secret-987",
    "admin-pass-logs-test-55",
    "redis-pass-logs-77",
    "pg-pass-logs-66",
]


@pytest.fixture
def json_lines(settings: Settings) -> Iterator[io.StringIO]:
    """What the root logger writes, through the JSON formatter of ``settings``' secrets."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonFormatter(logs.secrets_of(settings)))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def parsed(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


async def wait_for_line(out: io.StringIO, message: str) -> dict[str, Any]:
    # The run's last line is written once its end is recorded, which may be just after the
    # answer went out.
    for _ in range(500):
        found = [line for line in parsed(out) if line["message"] == message]
        if found:
            assert len(found) == 1
            return found[0]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no log line {message!r} in:\n{out.getvalue()}")


async def start_run(client: httpx.AsyncClient, user: User, **headers: str) -> httpx.Response:
    agents = (await client.get("/agents/", params={"limit": 100}, headers=user.headers)).json()
    agent_id = next(a["id"] for a in agents["items"] if a["slug"] == "assistant")
    chat = await client.post("/chats/", json={"agent_id": agent_id}, headers=user.headers)
    assert chat.status_code == 201, chat.text
    response = await client.post(
        f"/chats/{chat.json()['id']}/messages",
        json={"content": "hello"},
        headers={**user.headers, **headers},
    )
    return response


async def test_a_runs_lines_name_its_request_run_and_user(
    client: httpx.AsyncClient, user: User, json_lines: io.StringIO
) -> None:
    response = await start_run(client, user)
    assert response.status_code == 201, response.text
    request_id = response.headers[HEADER]
    run_id = response.json()["run_id"]
    line = await wait_for_line(json_lines, f"run {run_id} ended: success")
    assert set(line) == FIELDS
    assert line["level"] == "INFO"
    assert line["logger"] == "graphs.runtime.execution"
    assert (line["request_id"], line["run_id"], line["user_id"]) == (request_id, run_id, user.id)
    assert line["timestamp"].endswith("Z")
    # Generated: 32 hex digits, a new one for each request.
    assert GENERATED.fullmatch(request_id)
    again = await client.get("/users/me", headers=user.headers)
    assert again.headers[HEADER] not in ("", request_id)


async def test_a_sent_request_id_is_kept_on_the_response_and_the_lines(
    client: httpx.AsyncClient, user: User, json_lines: io.StringIO
) -> None:
    sent = "req-2026.12.07:abc/DEF+1=2"
    response = await start_run(client, user, **{HEADER: sent, "Accept": "text/event-stream"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers[HEADER] == sent
    run_id = json.loads(response.text.split("data: ", 1)[1].split("\n", 1)[0])["run_id"]
    line = await wait_for_line(json_lines, f"run {run_id} ended: success")
    assert (line["request_id"], line["run_id"], line["user_id"]) == (sent, run_id, user.id)


@pytest.mark.parametrize(
    "hostile",
    [
        'x" injected="1',
        "line\r\nFAKE LOG LINE",
        "a b",
        "x" * 129,
        "",
        "é",
    ],
)
async def test_a_hostile_request_id_is_replaced(client: httpx.AsyncClient, hostile: str) -> None:
    response = await client.get("/healthz", headers={HEADER: hostile.encode()})  # type: ignore[dict-item]
    given = response.headers[HEADER]
    assert given != hostile
    assert GENERATED.fullmatch(given)


async def test_errors_and_missing_routes_carry_a_request_id(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get("/no-such-route", headers={HEADER: "r-404"}),
        await client.get("/users/me", headers={HEADER: "r-401"}),
        await client.post("/auth/login", json={}, headers={HEADER: "r-422"}),
    ):
        assert response.headers[HEADER] == f"r-{response.status_code}"
        assert "code" in response.json()


async def test_an_unexpected_error_is_logged_with_its_request_id(
    app: FastAPI,
    user: User,
    json_lines: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from api.services import auth as auth_service

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("broken on purpose: postgresql://app:pg-pass-logs-66@db/x")

    # GET /users/me shapes its answer with this: a bug in it is a 500.
    monkeypatch.setattr(auth_service, "user_out", broken)
    # Starlette answers the 500, then raises the error again for the server to see.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://switchboard") as client:
        response = await client.get("/users/me", headers={**user.headers, HEADER: "boom-1"})
    assert response.status_code == 500
    assert response.headers[HEADER] == "boom-1"
    assert response.json() == {"detail": "Internal server error", "code": "internal_error"}
    [line] = [line for line in parsed(json_lines) if line["level"] == "ERROR"]
    assert line["request_id"] == "boom-1"
    assert line["user_id"] == user.id
    assert line["message"] == "unhandled error on GET /users/me"
    assert "RuntimeError: broken on purpose: postgresql://app:***@db/x" in line["exc_info"]
    assert "pg-pass-logs-66" not in json_lines.getvalue()


async def test_cors_exposes_the_request_id(database_url: str) -> None:
    from api.app import create_app

    app = create_app(make_settings(database_url, cors_origins=["https://app.example"]))
    # No lifespan: a route that does not exist needs nothing opened.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://switchboard") as client:
        response = await client.get(
            "/no-such-route", headers={"Origin": "https://app.example", HEADER: "cors-1"}
        )
    assert response.status_code == 404
    assert response.headers[HEADER] == "cors-1"
    assert response.headers["access-control-expose-headers"] == (
        "Content-Location, Location, X-Pagination-Total, X-Pagination-Next, X-Request-ID"
    )


def test_secrets_are_masked_in_every_line() -> None:
    settings = Settings.model_validate(
        {
            "jwt_secret": SECRETS["SWITCHBOARD_JWT_SECRET"],
            "openai_api_key": SECRETS["OPENAI_API_KEY"],
            "webhook_secret": SECRETS["SWITCHBOARD_WEBHOOK_SECRET"],
            "admin_password": SECRETS["SWITCHBOARD_ADMIN_PASSWORD"],
            "redis_url": SECRETS["REDIS_URL"],
            "database_url": SECRETS["DATABASE_URL"],
        }
    )
    record = logging.LogRecord(
        "x", logging.WARNING, __file__, 1, "values: %s", (" | ".join(SECRET_VALUES),), None
    )
    json_line = json.loads(logs.JsonFormatter(logs.secrets_of(settings)).format(record))
    assert json_line["message"] == "values: *** | *** | *** | *** | *** | ***"
    text_line = logs.TextFormatter(logs.secrets_of(settings)).format(record)
    assert text_line.endswith("WARNING x: values: *** | *** | *** | *** | *** | ***")
    # Any URL's or conninfo's password, configured or not.
    redact = logs.Redactor()
    assert redact("to postgresql://u:p%40ss@h:5432/d and redis://:pw@r:6379") == (
        "to postgresql://u:***@h:5432/d and redis://:***@r:6379"
    )
    assert redact("host=h password='a b' user=u") == "host=h password=*** user=u"
    assert redact("host=h password=abc user=u") == "host=h password=*** user=u"
    assert logs.masked("postgresql://app:pg-pass@db:5432/x") == "postgresql://app:***@db:5432/x"
    assert logs.masked("postgresql:///x?host=/tmp") == "postgresql:///x?host=/tmp"


def test_a_started_server_writes_only_json_lines_and_no_secret(database_url: str) -> None:
    # The tests' database reached with a password in its URL (its socket trusts the user, so
    # the password is not needed, but it is in the variable the server reads).
    with_password = database_url.replace("postgres:@", "postgres:pg-pass-logs-66@", 1)
    assert with_password != database_url
    secrets = {
        name: SECRETS[name]
        for name in ("OPENAI_API_KEY", "SWITCHBOARD_WEBHOOK_SECRET", "SWITCHBOARD_ADMIN_PASSWORD")
    }
    env = {"SWITCHBOARD_LOG_FORMAT": "json", "SWITCHBOARD_DEFAULT_MODEL": "fake:echo", **secrets}
    with beside_the_tests(with_password, JWT_SECRET, **env) as server:
        http = httpx.Client(base_url=server.url, timeout=30)
        assert http.get("/healthz", headers={HEADER: "sent-by-client-1"}).status_code == 200
        email = f"logs-{uuid.uuid4().hex[:8]}@example.org"
        registered = http.post(
            "/auth/register", json={"name": "L", "email": email, "password": PASSWORD}
        ).json()
        headers = {"Authorization": f"Bearer {registered['access_token']}"}
        agents = http.get("/agents/", params={"limit": 100}, headers=headers).json()["items"]
        agent = next(a for a in agents if a["slug"] == "assistant")
        chat = http.post("/chats/", json={"agent_id": agent["id"]}, headers=headers).json()
        answer = http.post(
            f"/chats/{chat['id']}/messages",
            json={"content": "hi"},
            headers={**headers, HEADER: "run-request-1"},
        )
        assert answer.status_code == 201, answer.text
        run_id = answer.json()["run_id"]
        http.close()
        # A WebSocket's handshake answer carries the id too.
        ws_url = server.url.replace("http://", "ws://") + f"/threads/{chat['id']}/stream/events"
        with connect(ws_url, additional_headers={**headers, HEADER: "ws-1"}) as socket:
            assert socket.response is not None
            assert socket.response.headers[HEADER] == "ws-1"
        # Stopped here, so its shutdown lines are in the log too (read before it is removed).
        server.stop_gracefully(signal.SIGTERM)
        text = server.log.read_text()
    # Every line is one JSON object with the same fields: uvicorn's own lines too.
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line for line in lines if set(line) != FIELDS] == []
    messages = {(line["logger"], line["message"]) for line in lines}
    assert ("uvicorn.error", "Application startup complete.") in messages
    assert ("uvicorn.error", "Application shutdown complete.") in messages
    [access] = [line for line in lines if line["request_id"] == "sent-by-client-1"]
    assert access["logger"] == "uvicorn.access"
    assert access["message"].endswith('"GET /healthz HTTP/1.1" 200')
    [ended] = [line for line in lines if line["message"] == f"run {run_id} ended: success"]
    user_id = registered["user"]["id"]
    assert (ended["request_id"], ended["run_id"], ended["user_id"]) == (
        "run-request-1",
        run_id,
        user_id,
    )
    # The request's own line names its user too (set by the auth dependency).
    [sent] = [
        line
        for line in lines
        if line["logger"] == "uvicorn.access" and line["request_id"] == "run-request-1"
    ]
    assert (sent["user_id"], sent["run_id"]) == (user_id, None)
    # The database is named, its password masked.
    [ready] = [line for line in lines if " ready: " in line["message"]]
    assert (
        "database=external (postgresql://postgres:***@/switchboard_test?host=" in (ready["message"])
    )
    for secret in [*secrets.values(), "pg-pass-logs-66", JWT_SECRET]:
        assert secret not in text


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"SWITCHBOARD_CORS_ORIGINS": "not-json"},
            'SWITCHBOARD_CORS_ORIGINS must be a JSON list, e.g. ["https://app.example.com"]',
        ),
        (
            {"DATABASE_URL": "postgresql://app:pg-pass-logs-66@db:port/x"},
            "DATABASE_URL: must be a Postgres connection URL, "
            "e.g. postgresql://user:password@host:5432/db",
        ),
        (
            {"DATABASE_URL": "host=db password=pg-pass-logs-66 nonsense"},
            "DATABASE_URL: must be a Postgres connection URL, "
            "e.g. postgresql://user:password@host:5432/db",
        ),
        (
            {"REDIS_URL": "http://:redis-pass-logs-77@cache"},
            "REDIS_URL: must be a Redis URL, e.g. redis://:password@host:6379/0",
        ),
        (
            {"SWITCHBOARD_LOG_LEVEL": "loud"},
            "SWITCHBOARD_LOG_LEVEL: must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
        ),
        (
            {"SWITCHBOARD_LOG_FORMAT": "xml"},
            "SWITCHBOARD_LOG_FORMAT: Input should be 'text' or 'json'",
        ),
    ],
)
def test_a_configuration_error_names_the_variable_and_no_secret(
    env: dict[str, str], expected: str
) -> None:
    environment = clean_env(SWITCHBOARD_ENV="production", **{**SECRETS, **env})
    commands = [
        ["serve", "--port", "1"],
        ["worker"],
        ["db", "upgrade"],
        ["users", "create-admin", "--email", "a@example.org", "--password", "long-enough-pw"],
    ]
    for command in commands:
        done = subprocess.run(
            [SWITCHBOARD, *command], env=environment, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2, done.stderr
        assert done.stdout == ""
        assert done.stderr == f"error: invalid configuration: {expected}\n"
