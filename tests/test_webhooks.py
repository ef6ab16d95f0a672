"""Webhooks: a run that names one has its final record POSTed there when it ends, signed,
tried again after failures, its attempts on GET run; and the SSRF guard that decides which URLs
may be named.

Every request goes to a sink on 127.0.0.1 that the test starts. The private, link-local and
metadata rules are proven on the guard's decision (a pure function of the resolved addresses,
through a resolver stub), never by sending anything there.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID

import httpx
import psycopg
import pytest
from langgraph_sdk import get_client
from psycopg.types.json import Jsonb

from api.app import create_app
from api.settings import Settings
from storage import runs as runs_store
from storage import webhooks as webhooks_store
from storage.db import connection_kwargs
from tests.conftest import JWT_SECRET, PASSWORD, User, assert_error, make_settings, running
from tests.servers import beside_the_tests, free_port
from tests.test_messages import MakeAgent, make_agent
from tools import net_guard

__all__ = ["make_agent"]

T = TypeVar("T")
SECRET = "webhook-secret-for-the-tests"
HI = {"messages": [{"role": "user", "content": "hi"}]}


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)


class Sink:
    """A webhook receiver on 127.0.0.1, on a port of its own: it records every request and
    answers the next of ``statuses`` (200 once they run out)."""

    def __init__(self, statuses: tuple[int, ...] = ()) -> None:
        self.statuses = list(statuses)
        self.received: list[Received] = []
        self._arrived = asyncio.Event()

    async def __aenter__(self) -> Sink:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/hooks/runs?source=switchboard"
        return self

    async def __aexit__(self, *_: Any) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        _, path, _ = head[0].split(" ", 2)
        headers = {}
        for line in head[1:]:
            if line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        status = self.statuses.pop(0) if self.statuses else 200
        self.received.append(Received(path, headers, body))
        self._arrived.set()
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        writer.close()

    async def wait_for(self, count: int, seconds: float = 20) -> list[Received]:
        """The first ``count`` requests, once they have come."""
        async with asyncio.timeout(seconds):
            while len(self.received) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.received[:count]


def verified(received: Received, secret: str = SECRET) -> dict[str, Any]:
    """The record a request carried, once its signature checks out as the README says."""
    timestamp = received.headers["x-switchboard-timestamp"]
    signed = timestamp.encode() + b"." + received.body
    expected = "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(received.headers["x-switchboard-signature"], expected)
    assert abs(time.time() - int(timestamp)) < 60
    assert received.headers["content-type"] == "application/json"
    assert received.path == "/hooks/runs?source=switchboard"
    return json.loads(received.body)


def hooked_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "webhook_secret": SECRET,
        "webhook_allowed_hosts": ["127.0.0.1"],
        "webhook_backoff_seconds": 0.2,
        "webhook_timeout_seconds": 5,
    }
    return make_settings(database_url, **{**values, **overrides})


@pytest.fixture
async def hooked(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app with webhooks on (the tests' secret, 127.0.0.1 allowlisted), over ASGI."""
    async with running(create_app(hooked_settings(database_url))) as client:
        yield client


async def sign_up(client: httpx.AsyncClient, name: str = "Hooked") -> User:
    email = f"hooks-{uuid.uuid4().hex[:12]}@example.org"
    response = await client.post(
        "/auth/register", json={"name": name, "email": email, "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    return User(response.json(), PASSWORD)


async def chat_of(client: httpx.AsyncClient, user: User, agent: str = "assistant") -> str:
    agents = (await client.get("/agents/", params={"limit": 100}, headers=user.headers)).json()
    agent_id = next(a["id"] for a in agents["items"] if a["slug"] == agent)
    chat = await client.post("/chats/", json={"agent_id": agent_id}, headers=user.headers)
    assert chat.status_code == 201, chat.text
    return str(chat.json()["id"])


async def until(fetch: Callable[[], Awaitable[T]], done: Callable[[T], bool]) -> T:
    """What ``fetch`` answers once ``done`` says so (within 20 s)."""
    async with asyncio.timeout(20):
        while True:
            value = await fetch()
            if done(value):
                return value
            await asyncio.sleep(0.05)


async def _run(client: httpx.AsyncClient, user: User, run_id: str) -> dict[str, Any]:
    response = await client.get(f"/runs/{run_id}", headers=user.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def settled(client: httpx.AsyncClient, user: User, run_id: str) -> dict[str, Any]:
    """``GET /runs/{id}`` once its webhook is no longer pending."""
    return await until(
        lambda: _run(client, user, run_id), lambda run: run["webhook"]["status"] != "pending"
    )


def codes(run: dict[str, Any]) -> list[tuple[int | None, str | None]]:
    return [(a["status_code"], a["error"]) for a in run["webhook"]["attempts"]]


async def test_a_native_run_posts_its_final_record_signed(
    hooked: httpx.AsyncClient, database_url: str
) -> None:
    user = await sign_up(hooked)
    chat_id = await chat_of(hooked, user)
    async with Sink() as sink:
        answer = await hooked.post(
            f"/chats/{chat_id}/messages",
            json={"content": "hello", "webhook": sink.url},
            headers=user.headers,
        )
        assert answer.status_code == 201, answer.text
        run_id = answer.json()["run_id"]
        [received] = await sink.wait_for(1)
        run = await settled(hooked, user, run_id)
    record = verified(received)
    # The run as GET /runs/{id} shows it, but for the webhook's own field.
    assert record == {k: v for k, v in run.items() if k != "webhook"}
    assert (record["id"], record["status"], record["chat_id"]) == (run_id, "success", chat_id)
    assert run["webhook"]["url"] == sink.url
    assert run["webhook"]["status"] == "delivered"
    assert codes(run) == [(200, None)]
    assert len(sink.received) == 1
    listed = (await hooked.get(f"/chats/{chat_id}/runs", headers=user.headers)).json()
    assert listed["items"] == [run]
    # Settled: the copy of the run kept for the delivery is gone; the attempts go with the run.
    async with await psycopg.AsyncConnection.connect(database_url) as db:
        kept = await (
            await db.execute("SELECT run FROM webhook_deliveries WHERE run_id = %s", (run_id,))
        ).fetchone()
    assert kept == (None,)
    deleted = await hooked.delete(f"/chats/{chat_id}", headers=user.headers)
    assert deleted.status_code == 204, deleted.text
    assert await _deliveries_of(database_url, run_id) == 0


async def test_a_run_without_a_webhook_shows_none(
    hooked: httpx.AsyncClient, database_url: str
) -> None:
    user = await sign_up(hooked)
    chat_id = await chat_of(hooked, user)
    answer = await hooked.post(
        f"/chats/{chat_id}/messages", json={"content": "hello"}, headers=user.headers
    )
    run = (await hooked.get(f"/runs/{answer.json()['run_id']}", headers=user.headers)).json()
    assert run["webhook"] is None
    protocol = (
        await hooked.get(f"/threads/{chat_id}/runs/{run['id']}", headers=user.headers)
    ).json()
    assert protocol["webhook"] is None
    async with await psycopg.AsyncConnection.connect(database_url) as db:
        count = await (await db.execute("SELECT count(*) FROM webhook_deliveries")).fetchone()
    assert count == (0,)


async def test_the_official_sdk_names_a_webhook_and_gets_the_run(database_url: str) -> None:
    env = {
        "SWITCHBOARD_WEBHOOK_SECRET": SECRET,
        "SWITCHBOARD_WEBHOOK_ALLOWED_HOSTS": '["127.0.0.1"]',
        "SWITCHBOARD_WEBHOOK_BACKOFF_SECONDS": "0.2",
    }
    with beside_the_tests(database_url, JWT_SECRET, **env) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            user = await sign_up(http)
        client = get_client(url=server.url, headers=user.headers)
        async with Sink() as sink:
            thread = await client.threads.create()
            run = await client.runs.create(
                thread["thread_id"], "assistant", input=HI, webhook=sink.url
            )
            await client.runs.join(thread["thread_id"], run["run_id"])
            [received] = await sink.wait_for(1)
            shown = await until(
                lambda: client.runs.get(thread["thread_id"], run["run_id"]),
                lambda shown: shown["webhook"]["status"] != "pending",
            )
            record = verified(received)
            # The run as the protocol's GET shows it, but for the webhook's own field.
            assert record == {k: v for k, v in shown.items() if k != "webhook"}
            assert (record["run_id"], record["status"]) == (run["run_id"], "success")
            assert shown["webhook"]["status"] == "delivered"
            assert [a["status_code"] for a in shown["webhook"]["attempts"]] == [200]

            # Stateless: the thread and the run are deleted when it ends; the record still goes.
            values = await client.runs.wait(None, "assistant", input=HI, webhook=sink.url)
            assert [m["content"] for m in values["messages"]] == ["hi", "You said: hi"]
            _, second = await sink.wait_for(2)
        stateless = verified(second)
        assert stateless["status"] == "success"
        assert stateless["kwargs"]["input"] == HI
        assert [t["thread_id"] for t in await client.threads.search()] == [thread["thread_id"]]
        # Nothing is kept about a run nobody can read any more.
        await until(lambda: _deliveries_of(database_url, stateless["run_id"]), lambda n: n == 0)


async def _deliveries_of(database_url: str, run_id: str) -> int:
    async with await psycopg.AsyncConnection.connect(database_url) as db:
        cur = await db.execute(
            "SELECT count(*) FROM webhook_deliveries WHERE run_id = %s", (run_id,)
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_a_failing_receiver_is_tried_again_and_then_gets_the_record(
    hooked: httpx.AsyncClient,
) -> None:
    user = await sign_up(hooked)
    chat_id = await chat_of(hooked, user)
    async with Sink(statuses=(500, 429)) as sink:
        answer = await hooked.post(
            f"/chats/{chat_id}/messages",
            json={"content": "hello", "webhook": sink.url},
            headers=user.headers,
        )
        run = await settled(hooked, user, answer.json()["run_id"])
        first, second, third = await sink.wait_for(3)
    assert run["webhook"]["status"] == "delivered"
    assert codes(run) == [(500, None), (429, None), (200, None)]
    # The same record each time, signed anew; each retry waited its backoff (0.2 s, 0.4 s).
    assert verified(first) == verified(second) == verified(third)
    assert second.at - first.at > 0.2
    assert third.at - second.at > 0.4
    assert len(sink.received) == 3


@pytest.mark.parametrize(
    ("statuses", "max_attempts", "expected"),
    [
        # Attempts run out: the last answer was still worth another try.
        ((500, 502, 503), 3, [(500, None), (502, None), (503, None)]),
        # An answer that another try would not change: no retry.
        ((404,), 3, [(404, None)]),
        ((301,), 3, [(301, None)]),
    ],
)
async def test_a_delivery_that_cannot_succeed_fails(
    database_url: str,
    statuses: tuple[int, ...],
    max_attempts: int,
    expected: list[tuple[int, None]],
) -> None:
    settings = hooked_settings(database_url, webhook_max_attempts=max_attempts)
    async with running(create_app(settings)) as client, Sink(statuses) as sink:
        user = await sign_up(client)
        chat_id = await chat_of(client, user)
        answer = await client.post(
            f"/chats/{chat_id}/messages",
            json={"content": "hello", "webhook": sink.url},
            headers=user.headers,
        )
        run = await settled(client, user, answer.json()["run_id"])
    assert run["webhook"]["status"] == "failed"
    assert codes(run) == expected
    assert len(sink.received) == len(expected)


async def test_an_unreachable_receiver_is_a_connection_error_each_attempt(
    database_url: str,
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}/hooks"  # nothing listens there
    settings = hooked_settings(database_url, webhook_max_attempts=2)
    async with running(create_app(settings)) as client:
        user = await sign_up(client)
        chat_id = await chat_of(client, user)
        answer = await client.post(
            f"/chats/{chat_id}/messages",
            json={"content": "hello", "webhook": nobody},
            headers=user.headers,
        )
        run = await settled(client, user, answer.json()["run_id"])
    assert run["webhook"]["status"] == "failed"
    assert codes(run) == [(None, "ConnectError"), (None, "ConnectError")]


async def test_a_cancelled_run_sends_its_record_too(
    hooked: httpx.AsyncClient, make_agent: MakeAgent
) -> None:
    slow = await make_agent("fake:tokens-200@20")
    user = await sign_up(hooked)
    chat = await hooked.post("/chats/", json={"agent_id": slow["id"]}, headers=user.headers)
    chat_id = chat.json()["id"]
    async with Sink() as sink:
        started = await hooked.post(
            f"/threads/{chat_id}/runs",
            json={"assistant_id": slow["id"], "input": HI, "webhook": sink.url},
            headers=user.headers,
        )
        assert started.status_code == 200, started.text
        run_id = started.json()["run_id"]
        assert started.json()["webhook"] == {"url": sink.url, "status": "pending", "attempts": []}
        cancelled = await hooked.post(f"/runs/{run_id}/cancel", headers=user.headers)
        assert cancelled.json()["cancelled"] is True
        [received] = await sink.wait_for(1)
    record = verified(received)
    # A protocol run: its record is the protocol's, where a cancelled run is interrupted.
    assert (record["run_id"], record["status"]) == (run_id, "interrupted")
    shown = (await hooked.get(f"/threads/{chat_id}/runs/{run_id}", headers=user.headers)).json()
    assert {k: v for k, v in shown.items() if k != "webhook"} == record


async def _count(database_url: str) -> tuple[int, int, int]:
    async with await psycopg.AsyncConnection.connect(database_url) as db:
        row = await (
            await db.execute(
                "SELECT (SELECT count(*) FROM chats), (SELECT count(*) FROM runs),"
                " (SELECT count(*) FROM webhook_deliveries)"
            )
        ).fetchone()
    assert row is not None
    return row


@pytest.mark.parametrize(
    "url",
    [
        "http://0.0.0.0/hooks",
        "http://[::1]/hooks",
        "http://0/hooks",
        # 127.0.0.1 written as a number: the allowlist names hosts as written.
        "http://2130706433/hooks",
        "file:///etc/passwd",
        "http://user:password@127.0.0.1/hooks",
        "ftp://127.0.0.1/hooks",
        "/hooks",
        "http:///hooks",
    ],
)
async def test_a_refused_webhook_is_a_422_and_creates_nothing(
    hooked: httpx.AsyncClient, database_url: str, url: str
) -> None:
    user = await sign_up(hooked)
    chat_id = await chat_of(hooked, user)
    before = await _count(database_url)
    for path, body in (
        (f"/chats/{chat_id}/messages", {"content": "hello", "webhook": url}),
        (f"/threads/{chat_id}/runs", {"assistant_id": "assistant", "input": HI, "webhook": url}),
        ("/runs/wait", {"assistant_id": "assistant", "input": HI, "webhook": url}),
        (
            f"/threads/{uuid.uuid4()}/runs/wait",
            {"assistant_id": "assistant", "input": HI, "webhook": url, "if_not_exists": "create"},
        ),
    ):
        refused = await hooked.post(path, json=body, headers=user.headers)
        detail = assert_error(refused, 422, "webhook_not_allowed")["detail"]
        assert detail.startswith("This webhook is not allowed: "), detail
    assert await _count(database_url) == before


async def test_loopback_is_refused_unless_allowlisted(database_url: str) -> None:
    settings = hooked_settings(database_url, webhook_allowed_hosts=[])
    async with running(create_app(settings)) as client, Sink() as sink:
        user = await sign_up(client)
        chat_id = await chat_of(client, user)
        before = await _count(database_url)
        refused = await client.post(
            f"/chats/{chat_id}/messages",
            json={"content": "hello", "webhook": sink.url},
            headers=user.headers,
        )
        body = assert_error(refused, 422, "webhook_not_allowed")
        assert body["detail"] == (
            "This webhook is not allowed: 127.0.0.1 is not an address requests may go to (loopback)"
        )
        assert await _count(database_url) == before
    assert sink.received == []


async def test_a_server_without_a_secret_refuses_webhooks(
    client: httpx.AsyncClient, user: User, seeded_agents: dict[str, Any], database_url: str
) -> None:
    chat = await client.post(
        "/chats/", json={"agent_id": seeded_agents["assistant"]["id"]}, headers=user.headers
    )
    before = await _count(database_url)
    refused = await client.post(
        f"/chats/{chat.json()['id']}/messages",
        json={"content": "hello", "webhook": "http://127.0.0.1:9/hooks"},
        headers=user.headers,
    )
    assert assert_error(refused, 422, "webhooks_disabled")["detail"] == (
        "This server sends no webhooks (SWITCHBOARD_WEBHOOK_SECRET is not set)"
    )
    assert await _count(database_url) == before


def test_the_schema_takes_a_webhook_only_where_the_server_sends_them(database_url: str) -> None:
    for settings, takes_one in (
        (make_settings(database_url), False),
        (hooked_settings(database_url), True),
    ):
        schemas = create_app(settings).openapi()["components"]["schemas"]
        for body in ("MessageCreate", "RunCreate"):
            webhook = schemas[body]["properties"]["webhook"]
            kinds = [variant["type"] for variant in webhook.get("anyOf", [webhook])]
            assert kinds == (["string", "null"] if takes_one else ["null"]), (body, webhook)
        # What a run shows is the same either way.
        assert "WebhookOut" in str(schemas["RunOut"]["properties"]["webhook"])


async def _first_attempt_then_stop(
    database_url: str, sink: Sink
) -> tuple[User, str, dict[str, Any]]:
    """A run whose webhook got a 500 from an app that then stopped before trying again."""
    first = create_app(hooked_settings(database_url, webhook_backoff_seconds=2))
    async with running(first) as client:
        user = await sign_up(client)
        chat_id = await chat_of(client, user)
        answer = await client.post(
            f"/chats/{chat_id}/messages",
            json={"content": "hello", "webhook": sink.url},
            headers=user.headers,
        )
        run_id = answer.json()["run_id"]
        await sink.wait_for(1)
        run = await until(
            lambda: _run(client, user, run_id), lambda run: bool(run["webhook"]["attempts"])
        )
    assert run["webhook"]["status"] == "pending"
    assert codes(run) == [(500, None)]
    return user, run_id, run


async def test_a_pending_delivery_is_delivered_after_a_restart(database_url: str) -> None:
    async with Sink(statuses=(500,)) as sink:
        user, run_id, _ = await _first_attempt_then_stop(database_url, sink)
        assert len(sink.received) == 1  # stopped before its retry was due
        async with running(create_app(hooked_settings(database_url))) as restarted:
            run = await settled(restarted, user, run_id)
            first, second = await sink.wait_for(2)
    assert run["webhook"]["status"] == "delivered"
    assert codes(run) == [(500, None), (200, None)]
    assert verified(first) == verified(second) == {k: v for k, v in run.items() if k != "webhook"}


async def test_the_url_is_checked_again_before_each_attempt(database_url: str) -> None:
    async with Sink(statuses=(500,)) as sink:
        user, run_id, _ = await _first_attempt_then_stop(database_url, sink)
        # Restarted without 127.0.0.1 on the allowlist: the next attempt is refused unsent.
        stricter = hooked_settings(database_url, webhook_allowed_hosts=[])
        async with running(create_app(stricter)) as restarted:
            run = await settled(restarted, user, run_id)
        assert len(sink.received) == 1
    assert run["webhook"]["status"] == "failed"
    assert codes(run) == [(500, None), (None, "webhook_not_allowed")]


async def test_a_run_a_dead_process_left_is_interrupted_and_its_record_sent(
    database_url: str,
) -> None:
    application = create_app(hooked_settings(database_url))
    async with running(application) as client, Sink() as sink:
        user = await sign_up(client)
        chat_id = await chat_of(client, user)
        # Recorded as running by a process of this host that no longer exists.
        async with await psycopg.AsyncConnection.connect(database_url) as db:
            cur = await db.execute(
                "INSERT INTO runs (chat_id, user_id, agent_id, agent_version, model_name, status,"
                " worker_id, started_at, heartbeat_at, webhook_url)"
                " SELECT id, user_id, agent_id, 1, 'fake:echo', 'running', %s, now(), now(), %s"
                " FROM chats WHERE id = %s RETURNING id",
                (f"{socket.gethostname()}:999999999", sink.url, chat_id),
            )
            row = await cur.fetchone()
            assert row is not None
            orphan = str(row[0])
        assert [str(i) for i in await application.state.switchboard.runs.recover()] == [orphan]
        [received] = await sink.wait_for(1)
        run = await settled(client, user, orphan)
    assert verified(received)["status"] == "interrupted"
    assert codes(run) == [(200, None)]


async def _ended_run_with_a_delivery(database_url: str, user: User, chat_id: str) -> UUID:
    """A run with a webhook that ended (no process delivers: webhooks are off in the session's
    app), so its delivery waits, pending."""
    async with await psycopg.AsyncConnection.connect(database_url, **connection_kwargs()) as db:
        cur = await db.execute(
            "INSERT INTO runs (chat_id, user_id, agent_id, agent_version, model_name, status,"
            " webhook_url) SELECT id, user_id, agent_id, 1, 'fake:echo', 'running',"
            " 'http://127.0.0.1:9/' FROM chats WHERE id = %s RETURNING id",
            (chat_id,),
        )
        row = await cur.fetchone()
        assert row is not None
        await runs_store.finish(db, row["id"], status="success", error=None, usage=None)
    assert await _deliveries_of(database_url, str(row["id"])) == 1
    return UUID(str(row["id"]))


DELIVERED = {"at": "2026-01-01T00:00:00+00:00", "status_code": 200, "error": None}


async def test_a_delivery_settled_while_its_run_is_deleted_goes_either_way(
    client: httpx.AsyncClient, user: User, seeded_agents: dict[str, Any], database_url: str
) -> None:
    chat = await client.post(
        "/chats/", json={"agent_id": seeded_agents["assistant"]["id"]}, headers=user.headers
    )
    chat_id = chat.json()["id"]
    options = connection_kwargs()
    async with (
        await psycopg.AsyncConnection.connect(database_url, **options) as deleting,
        await psycopg.AsyncConnection.connect(database_url, **options) as recording,
    ):
        # The run is deleted first; the attempt's record waits for that, then deletes the row.
        run_id = await _ended_run_with_a_delivery(database_url, user, chat_id)
        async with deleting.transaction():
            await deleting.execute("DELETE FROM runs WHERE id = %s", (run_id,))
            record = asyncio.create_task(
                webhooks_store.record_attempt(
                    recording, run_id, attempt=DELIVERED, status="delivered", retry_in=0
                )
            )
            await asyncio.sleep(0.3)
            assert not record.done()  # waiting for the deletion's lock
        await record
        assert await _deliveries_of(database_url, str(run_id)) == 0

        # The attempt is recorded first; the run's deletion waits for it, then deletes the row.
        run_id = await _ended_run_with_a_delivery(database_url, user, chat_id)
        params = {"run_id": run_id, "attempt": Jsonb(DELIVERED), "status": "delivered"}
        async with recording.transaction():
            await recording.execute(webhooks_store.RECORD_ATTEMPT, {**params, "retry_in": 0})
            deletion = asyncio.create_task(
                deleting.execute("DELETE FROM runs WHERE id = %s", (run_id,))
            )
            await asyncio.sleep(0.3)
            assert not deletion.done()  # its trigger waits for the record's lock
            await recording.execute(webhooks_store.DELETE_SETTLED, (run_id,))
        await deletion
        assert await _deliveries_of(database_url, str(run_id)) == 0


async def test_another_user_cannot_see_the_webhook_attempts(hooked: httpx.AsyncClient) -> None:
    owner, stranger = await sign_up(hooked, "Owner"), await sign_up(hooked, "Stranger")
    chat_id = await chat_of(hooked, owner)
    async with Sink() as sink:
        answer = await hooked.post(
            f"/chats/{chat_id}/messages",
            json={"content": "hello", "webhook": sink.url},
            headers=owner.headers,
        )
        run_id = answer.json()["run_id"]
        await settled(hooked, owner, run_id)
    missing = uuid.uuid4()
    for theirs, nothing in (
        (f"/runs/{run_id}", f"/runs/{missing}"),
        (f"/threads/{chat_id}/runs/{run_id}", f"/threads/{chat_id}/runs/{missing}"),
        (f"/chats/{chat_id}/runs", f"/chats/{missing}/runs"),
        (f"/threads/{chat_id}/runs", f"/threads/{missing}/runs"),
    ):
        response = await hooked.get(theirs, headers=stranger.headers)
        assert_error(response, 404, "not_found")
        assert response.json() == (await hooked.get(nothing, headers=stranger.headers)).json()
        assert sink.url not in response.text


# The guard's decisions: a pure function of the host and the addresses it resolves to.


def stub(answers: dict[str, list[str]]) -> net_guard.Resolver:
    """A resolver that knows only ``answers`` (and says so for any other name)."""

    async def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise OSError(f"{host} is not in the stub")
        return answers[host]

    return resolve


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "cloud metadata service"),
        ("169.254.1.1", "link-local"),
        ("100.64.0.1", "shared address space (CGNAT)"),
        ("fd00::1", "private"),
        ("fd00:ec2::254", "cloud metadata service"),
        ("fe80::1", "link-local"),
        ("::ffff:10.0.0.1", "private (as IPv6)"),
        ("::ffff:127.0.0.1", "loopback (as IPv6)"),
        ("2002:a9fe:a9fe::", "cloud metadata service (as IPv6)"),  # 6to4 of 169.254.169.254
        ("64:ff9b::c0a8:101", "private (as IPv6)"),  # NAT64 of 192.168.1.1
        ("0.0.0.0", "unspecified"),  # noqa: S104 (an address to refuse, not to bind)
        ("::", "unspecified"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("192.0.2.1", "not globally routable"),  # documentation
    ],
)
async def test_the_guard_refuses_a_name_that_resolves_inside(address: str, why: str) -> None:
    assert net_guard.refusal(ipaddress.ip_address(address)) == why
    resolve = stub({"hooks.example.com": [address]})
    with pytest.raises(net_guard.Refused) as refused:
        await net_guard.check("https://hooks.example.com/x", resolve=resolve)
    assert refused.value.reason == (
        f"hooks.example.com resolves to {address}, which requests may not go to ({why})"
    )
    # Allowlisted by name, the same answer passes, pinned to that address.
    allowed = await net_guard.check(
        "https://hooks.example.com/x", allowed_hosts=["HOOKS.example.com"], resolve=resolve
    )
    assert allowed.address == address


async def test_the_guard_refuses_when_any_address_is_inside() -> None:
    resolve = stub({"split.example.com": ["93.184.215.14", "2606:4700::1111", "10.0.0.1"]})
    with pytest.raises(net_guard.Refused) as refused:
        await net_guard.check("http://split.example.com/", resolve=resolve)
    assert refused.value.reason.endswith("10.0.0.1, which requests may not go to (private)")


async def test_the_guard_pins_the_address_it_checked() -> None:
    resolve = stub({"hooks.example.com": ["93.184.215.14", "2606:4700::1111"]})
    target = await net_guard.check("https://Hooks.Example.com:8443/in?a=1", resolve=resolve)
    url, headers, extensions = target.request()
    # Connected to the checked address, never to a second lookup of the name; the name goes
    # in Host, and is what TLS presents and verifies.
    assert str(url) == "https://93.184.215.14:8443/in?a=1"
    assert headers == {"Host": "hooks.example.com:8443"}
    assert extensions == {"sni_hostname": "hooks.example.com"}
    v6 = await net_guard.check("http://v6.example/", resolve=stub({"v6.example": ["2606::1"]}))
    assert str(v6.request()[0]) == "http://[2606::1]/"
    assert v6.request()[2] == {}


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "only http and https URLs are allowed"),
        ("gopher://hooks.example.com/", "only http and https URLs are allowed"),
        ("http://user@hooks.example.com/", "a URL with a user name or password is not allowed"),
        ("http://:pw@hooks.example.com/", "a URL with a user name or password is not allowed"),
        ("http:///path", "the URL has no valid host"),
        ("http://hooks example.com/", "the URL has no valid host"),
        ("http://hooks.example.com:99999/", "the URL's port is out of range"),
        ("http://[::1/", "not a valid URL"),
        ("http://unknown.example.com/", "unknown.example.com does not resolve"),
    ],
)
async def test_the_guard_refuses_what_is_not_a_plain_web_url(url: str, reason: str) -> None:
    resolve = stub({"hooks.example.com": ["93.184.215.14"]})
    with pytest.raises(net_guard.Refused) as refused:
        await net_guard.check(url, allowed_hosts=["hooks.example.com"], resolve=resolve)
    assert refused.value.reason == reason


def test_public_addresses_pass() -> None:
    for address in ("93.184.215.14", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"):
        assert net_guard.refusal(ipaddress.ip_address(address)) is None
    assert net_guard.decide("hooks.example.com", ["93.184.215.14"], allowed_hosts=()) is None
    assert net_guard.decide("x.example", [], allowed_hosts=()) == "x.example resolves to no address"
