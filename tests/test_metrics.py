"""``GET /metrics``: every family after real runs through the API, with exact label values and
counts; route templates, never raw paths; administrators only; the exposition parses."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from api import metrics as metrics_module
from api.app import create_app
from api.metrics import Metrics
from api.services.auth import ensure_admin
from api.settings import Settings
from storage.db import EmbeddedPostgres
from tests import sse
from tests.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    JWT_SECRET,
    User,
    assert_error,
    running,
)
from tests.servers import (
    ADMIN,
    Server,
    Worker,
    clean_env,
    free_port,
    redis_server,
    stop_postgres,
    user_with_agent,
)

# Each family the documentation lists (docs/metrics.md), by its name in the exposition.
FAMILIES = {
    "switchboard_http_requests": "counter",
    "switchboard_http_request_duration_seconds": "histogram",
    "switchboard_open_streams": "gauge",
    "switchboard_runs_started": "counter",
    "switchboard_runs_ended": "counter",
    "switchboard_run_duration_seconds": "histogram",
    "switchboard_time_to_first_token_seconds": "histogram",
    "switchboard_runs_active": "gauge",
    "switchboard_runs_queued": "gauge",
    "switchboard_tokens": "counter",
    "switchboard_worker_claims": "counter",
    "switchboard_run_events": "counter",
    "switchboard_db_pool_size": "gauge",
    "switchboard_db_pool_max": "gauge",
    "switchboard_db_pool_in_use": "gauge",
    "switchboard_db_pool_waiting": "gauge",
    "switchboard_event_logs": "gauge",
    "switchboard_event_log_events": "gauge",
    "switchboard_event_log_bytes": "gauge",
}
# 60 tokens, 50 ms before each: a run that stays running for 3 s, to be seen mid-way (it is
# cancelled then; the run queued behind it takes the 3 s).
SLOW_MODEL = "fake:tokens-60@50"


class Scrape:
    """One exposition, parsed: ``value(name, **labels)`` is the sample's value (0 if absent)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in self.families.values()
            for s in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def label_values(self, name: str, label: str) -> set[str]:
        return {dict(key)[label] for key_name, key in self.samples if key_name == name}


@pytest.fixture
async def fresh(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """An app of its own: its registry counts this test's requests and runs alone."""
    app = create_app(settings)
    async with running(app) as client:
        yield app, client


async def _admin(app: FastAPI, client: httpx.AsyncClient) -> dict[str, str]:
    await ensure_admin(
        app.state.switchboard.pool, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, name="Admin"
    )
    login = await client.post(
        "/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def _scrape(client: httpx.AsyncClient, admin: dict[str, str]) -> Scrape:
    response = await client.get("/metrics", headers=admin)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return Scrape(response.text)


async def _agent(client: httpx.AsyncClient, admin: dict[str, str], model: str) -> dict[str, Any]:
    response = await client.post(
        "/agents/", json={"name": f"Metrics {model}", "model_name": model}, headers=admin
    )
    assert response.status_code == 201, response.text
    return response.json()


async def _chat(client: httpx.AsyncClient, user: dict[str, str], agent_id: str) -> str:
    response = await client.post("/chats/", json={"agent_id": agent_id}, headers=user)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _events(client: httpx.AsyncClient, user: dict[str, str], run_id: str) -> list[Any]:
    """Every event of an ended run, replayed from its log."""
    response = await client.get(f"/runs/{run_id}/stream", headers=user)
    assert response.status_code == 200, response.text
    events, _ = sse.parse(response.text)
    return events


async def _wait_runs(
    client: httpx.AsyncClient, user: dict[str, str], chat_id: str, count: int
) -> list[dict[str, Any]]:
    """The chat's runs, once there are ``count`` of them (the first already running)."""
    for _ in range(1000):
        runs = (await client.get(f"/chats/{chat_id}/runs", headers=user)).json()["items"]
        if len(runs) == count and any(run["status"] != "pending" for run in runs):
            return runs
        await asyncio.sleep(0.02)
    raise AssertionError(f"the chat has not {count} runs: {runs}")


async def test_every_family_after_runs_through_the_api(
    fresh: tuple[FastAPI, httpx.AsyncClient], settings: Settings
) -> None:
    app, client = fresh
    admin = await _admin(app, client)
    registered = await client.post(
        "/auth/register",
        json={"name": "M", "email": f"m-{uuid.uuid4().hex[:8]}@example.org", "password": "pw-" * 4},
    )
    assert registered.status_code == 201, registered.text
    user = {"Authorization": f"Bearer {registered.json()['access_token']}"}
    echo = await _agent(client, admin, "fake:echo")
    slow = await _agent(client, admin, SLOW_MODEL)

    # A run answered as JSON, on fake:echo.
    echo_chat = await _chat(client, user, echo["id"])
    answered = await client.post(
        f"/chats/{echo_chat}/messages", json={"content": "hello there"}, headers=user
    )
    assert answered.status_code == 201, answered.text
    echo_run = answered.json()
    assert echo_run["status"] == "success"

    # A slow run streamed as SSE, seen while it runs (with a second message queued behind it),
    # then cancelled.
    slow_chat = await _chat(client, user, slow["id"])
    streaming = {**user, "Accept": "text/event-stream"}
    url = f"/chats/{slow_chat}/messages"
    stream = asyncio.create_task(client.post(url, json={"content": "go"}, headers=streaming))
    runs = await _wait_runs(client, user, slow_chat, 1)
    slow_run_id = runs[0]["id"]
    queued = asyncio.create_task(
        client.post(
            url, json={"content": "after", "multitask_strategy": "enqueue"}, headers=streaming
        )
    )
    runs = await _wait_runs(client, user, slow_chat, 2)
    queued_run_id = next(run["id"] for run in runs if run["id"] != slow_run_id)
    # Both responses' headers, and the slow run's first token, may still be on their way.
    first_tokens = "switchboard_time_to_first_token_seconds_count"
    for _ in range(500):
        mid = await _scrape(client, admin)
        if (
            mid.value("switchboard_open_streams", kind="sse") == 2
            and mid.value(first_tokens, agent=slow["slug"], model=SLOW_MODEL) == 1
        ):
            break
        await asyncio.sleep(0.02)
    assert mid.value("switchboard_open_streams", kind="sse") == 2
    assert mid.value("switchboard_runs_active") == 1
    assert mid.value("switchboard_runs_queued") == 1
    assert mid.value("switchboard_event_logs", state="live") == 2
    cancelled = await client.post(f"/runs/{slow_run_id}/cancel", headers=user)
    assert cancelled.status_code in (200, 202), cancelled.text
    # The queued run then runs to its end; both streams end.
    for response in (await stream, await queued):
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/event-stream")
    statuses = {run["id"]: run["status"] for run in await _wait_runs(client, user, slow_chat, 2)}
    assert statuses == {slow_run_id: "cancelled", queued_run_id: "success"}

    # A 404 on a chat that does not exist, and one on a path no route has.
    missing = str(uuid.uuid4())
    assert_error(await client.get(f"/chats/{missing}", headers=user), 404)
    assert_error(await client.get(f"/nowhere/{missing}", headers=user), 404)

    end = await _scrape(client, admin)
    assert {name: f.type for name, f in end.families.items() if name in FAMILIES} == FAMILIES

    # Runs by agent and model: the echo run, the cancelled slow one and the queued one.
    e, s = echo["slug"], slow["slug"]
    assert end.value("switchboard_runs_started_total", agent=e, model="fake:echo") == 1
    assert end.value("switchboard_runs_started_total", agent=s, model=SLOW_MODEL) == 2
    ended = {
        (dict(labels)["agent"], dict(labels)["status"]): value
        for (name, labels), value in end.samples.items()
        if name == "switchboard_runs_ended_total"
    }
    assert ended == {(e, "success"): 1, (s, "cancelled"): 1, (s, "success"): 1}
    assert end.value("switchboard_run_duration_seconds_count", agent=e, model="fake:echo") == 1
    assert end.value("switchboard_run_duration_seconds_count", agent=s, model=SLOW_MODEL) == 2
    assert (
        end.value("switchboard_time_to_first_token_seconds_count", agent=e, model="fake:echo") == 1
    )
    assert (
        end.value("switchboard_time_to_first_token_seconds_count", agent=s, model=SLOW_MODEL) == 2
    )
    assert end.value("switchboard_runs_active") == 0
    assert end.value("switchboard_runs_queued") == 0
    assert end.value("switchboard_worker_claims_total") == 0

    # Tokens: what the runs reported, by model ("You said: hello there" is 4 tokens out).
    usage = echo_run["usage"]
    assert usage["output_tokens"] == 4
    assert end.value("switchboard_tokens_total", model="fake:echo", direction="out") == 4
    assert (
        end.value("switchboard_tokens_total", model="fake:echo", direction="in")
        == usage["input_tokens"]
    )
    queued_run = (await client.get(f"/runs/{queued_run_id}", headers=user)).json()
    assert queued_run["usage"]["output_tokens"] == 60
    # The cancelled run never got its last chunk, which carries the usage: only the queued one's.
    assert end.value("switchboard_tokens_total", model=SLOW_MODEL, direction="out") == 60

    # Event logs: every event of the three runs, still held in memory, closed.
    events = sum(
        [
            len(await _events(client, user, run))
            for run in (echo_run["run_id"], slow_run_id, queued_run_id)
        ]
    )
    assert end.value("switchboard_run_events_total") == events
    assert end.value("switchboard_event_log_events") == events
    assert end.value("switchboard_event_logs", state="closed") == 3
    assert end.value("switchboard_event_logs", state="live") == 0
    assert end.value("switchboard_event_log_bytes") > 0
    assert end.value("switchboard_open_streams", kind="sse") == 0
    assert end.value("switchboard_open_streams", kind="websocket") == 0

    # The pool: its bounds are the settings'.
    assert end.value("switchboard_db_pool_max") == settings.pool_max_size
    size = end.value("switchboard_db_pool_size")
    assert 1 <= size <= settings.pool_max_size
    assert 0 <= end.value("switchboard_db_pool_in_use") <= size
    assert end.value("switchboard_db_pool_waiting") == 0

    # HTTP: by route template and status, never by raw path.
    requests = "switchboard_http_requests_total"
    assert end.value(requests, method="GET", route="/chats/{chat_id}", status="404") == 1
    assert end.value(requests, method="GET", route="unmatched", status="404") == 1
    assert end.value(requests, method="POST", route="/chats/{chat_id}/messages", status="201") == 1
    assert end.value(requests, method="POST", route="/chats/{chat_id}/messages", status="200") == 2
    assert end.value(requests, method="POST", route="/agents/", status="201") == 2
    assert end.value(requests, method="POST", route="/runs/{run_id}/cancel", status="200") == 1
    latency = "switchboard_http_request_duration_seconds_count"
    assert end.value(latency, method="GET", route="/chats/{chat_id}") == 1
    assert end.value(latency, method="POST", route="/chats/{chat_id}/messages") == 3
    assert missing not in end.text
    for route in end.label_values(requests, "route"):
        assert slow_chat not in route and echo_chat not in route
    # This process's own figures come with it.
    assert end.value("process_resident_memory_bytes") > 0


async def test_metrics_are_for_administrators_only(
    client: httpx.AsyncClient, user: User, admin: User
) -> None:
    assert_error(await client.get("/metrics"), 401, "unauthorized")
    assert_error(
        await client.get("/metrics", headers={"Authorization": "Bearer not-a-token"}),
        401,
        "unauthorized",
    )
    assert_error(await client.get("/metrics", headers=user.headers), 403, "forbidden")
    allowed = await client.get("/metrics", headers=admin.headers)
    assert allowed.status_code == 200
    names = {family.name for family in text_string_to_metric_families(allowed.text)}
    assert set(FAMILIES) <= names


def test_the_dashboard_and_the_documentation_name_exactly_the_metrics() -> None:
    root = Path(__file__).resolve().parent.parent
    dashboard = json.loads((root / "docs" / "grafana-dashboard.json").read_text())
    queried = {
        re.sub(r"_(bucket|total)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(?:switchboard|process)_[a-z_]+", target["expr"])
    }
    assert queried == set(FAMILIES) | {"process_resident_memory_bytes"}
    documented = set(
        re.findall(r"^\| `(switchboard_[a-z_]+)`", (root / "docs" / "metrics.md").read_text(), re.M)
    )
    exposed = {name + "_total" if kind == "counter" else name for name, kind in FAMILIES.items()}
    assert documented == exposed


def test_a_worker_serves_its_own_metrics_on_its_port(embedded_pg: EmbeddedPostgres) -> None:
    """An API process that only queues and a worker that claims: each counts what it did; the
    API counts a WebSocket while it is open."""
    name = f"switchboard_metrics_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(embedded_pg.uri(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    data_dir = Path(tempfile.mkdtemp(prefix="switchboard-metrics-", dir="/tmp"))
    try:
        with ExitStack() as stack:
            env = clean_env(
                DATABASE_URL=embedded_pg.uri(name),
                REDIS_URL=stack.enter_context(redis_server(data_dir)),
                SWITCHBOARD_JWT_SECRET=JWT_SECRET,
                SWITCHBOARD_ADMIN_EMAIL=ADMIN["email"],
                SWITCHBOARD_ADMIN_PASSWORD=ADMIN["password"],
                SWITCHBOARD_SHUTDOWN_GRACE_SECONDS="1",
            )
            api = Server(data_dir, {**env, "SWITCHBOARD_EXECUTE_RUNS": "false"})
            stack.callback(api.signal, 15)
            port = free_port()
            worker = Worker(data_dir, {**env, "SWITCHBOARD_WORKER_METRICS_PORT": str(port)})
            stack.callback(worker.stop)
            http = stack.enter_context(httpx.Client(base_url=api.url, timeout=30))
            user, agent = user_with_agent(http, "fake:echo")
            admin = http.post("/auth/login", json=ADMIN).json()
            chat = http.post("/chats/", json={"agent_id": agent["id"]}, headers=user).json()
            answer = http.post(
                f"/chats/{chat['id']}/messages", json={"content": "hi"}, headers=user
            )
            assert answer.status_code == 201, answer.text
            assert answer.json()["status"] == "success"

            scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
            assert scraped.status_code == 200
            at_worker = Scrape(scraped.text)
            labels = {"agent": agent["slug"], "model": "fake:echo"}
            assert at_worker.value("switchboard_worker_claims_total") == 1
            assert at_worker.value("switchboard_runs_started_total", **labels) == 1
            assert at_worker.value("switchboard_runs_ended_total", **labels, status="success") == 1
            # A worker does not read the queue from its exporter's thread.
            assert "switchboard_runs_queued" not in at_worker.families

            at_api = Scrape(
                http.get(
                    "/metrics", headers={"Authorization": f"Bearer {admin['access_token']}"}
                ).text
            )
            assert at_api.value("switchboard_worker_claims_total") == 0
            assert at_api.value("switchboard_runs_started_total", **labels) == 0
            assert at_api.value("switchboard_runs_queued") == 0
            route = "/chats/{chat_id}/messages"
            assert (
                at_api.value(
                    "switchboard_http_requests_total", method="POST", route=route, status="201"
                )
                == 1
            )

            # A WebSocket (a thread's v2 event stream) counts while it is open.
            def websockets_open() -> float:
                scraped = http.get(
                    "/metrics", headers={"Authorization": f"Bearer {admin['access_token']}"}
                )
                return Scrape(scraped.text).value("switchboard_open_streams", kind="websocket")

            ws_url = api.url.replace("http://", "ws://") + f"/threads/{chat['id']}/stream/events"
            with connect(ws_url, additional_headers=user):
                assert websockets_open() == 1
            # The server sees the close a moment later.
            for _ in range(500):
                if websockets_open() == 0:
                    break
                time.sleep(0.02)
            assert websockets_open() == 0
    finally:
        stop_postgres(data_dir / "pgdata")
        shutil.rmtree(data_dir, ignore_errors=True)
        with psycopg.connect(embedded_pg.uri(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_made_up_models_share_one_series_past_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics_module, "MAX_RUN_LABELS", 2)
    metrics = Metrics()
    for model in ("openai:a", "openai:b", "openai:c", "openai:d", "openai:a"):
        ctx = SimpleNamespace(
            run={"id": uuid.uuid4()},
            spec=SimpleNamespace(slug="agent", model_name=model),
            started_at=None,
            first_token_at=None,
            status="error",
            usage={},
            log=[],
        )
        ctx.run_id = ctx.run["id"]
        metrics.runs.started(ctx)  # type: ignore[arg-type]
        metrics.runs.ended(ctx)  # type: ignore[arg-type]
    scrape = Scrape(metrics.exposition().decode())
    started = {
        dict(labels)["model"]: value
        for (name, labels), value in scrape.samples.items()
        if name == "switchboard_runs_started_total"
    }
    assert started == {"openai:a": 2, "openai:b": 1, "other": 2}
    assert scrape.value("switchboard_runs_active") == 0
