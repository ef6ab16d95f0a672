"""Chat retention (``SWITCHBOARD_CHAT_RETENTION_DAYS``) and ``switchboard db vacuum-orphans``.

A chat is idle since its ``updated_at`` (its creation, a rename, and the end of each run on it);
a test ages a chat in SQL and drives one sweep of a ``RetentionSweeper`` on the session app's
state (the session app has no retention, so nothing is swept by itself). The vacuum runs as the
real command against the test database.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from typing import Any

import httpx
import psycopg
from fastapi import FastAPI

from api.app import create_app
from api.services.chat_retention import RetentionSweeper, vacuum_orphans
from storage.retention import CHECKPOINT_TABLES, RETENTION_LOCK_KEY
from tests.conftest import User, assert_error, make_settings, running, sql
from tests.servers import SWITCHBOARD, clean_env

SSE = {"Accept": "text/event-stream"}
# In the order the command reports them.
TABLES = CHECKPOINT_TABLES


def _sweeper(app: FastAPI, days: float = 30) -> RetentionSweeper:
    return RetentionSweeper(app.state.switchboard, days=days, interval=0)


async def _rows(database_url: str, chat_id: str) -> dict[str, int]:
    """How many rows the chat has in each table that holds it."""
    counts = {
        "chats": (
            await sql(database_url, "SELECT count(*) AS n FROM chats WHERE id = %s", chat_id)
        )[0]["n"],
        "runs": (
            await sql(database_url, "SELECT count(*) AS n FROM runs WHERE chat_id = %s", chat_id)
        )[0]["n"],
    }
    for table in TABLES:
        rows = await sql(
            database_url,
            f"SELECT count(*) AS n FROM {table} WHERE thread_id = %s",  # noqa: S608
            chat_id,
        )
        counts[table] = rows[0]["n"]
    return counts


async def _chat(client: httpx.AsyncClient, user: User, agent_id: str, turns: int) -> str:
    chat = await client.post("/chats/", json={"agent_id": agent_id}, headers=user.headers)
    assert chat.status_code == 201, chat.text
    chat_id: str = chat.json()["id"]
    for i in range(turns):
        await _say(client, user, chat_id, f"turn {i}")
    return chat_id


async def _say(client: httpx.AsyncClient, user: User, chat_id: str, text: str) -> None:
    sent = await client.post(
        f"/chats/{chat_id}/messages", json={"content": text}, headers=user.headers
    )
    assert sent.status_code == 201, sent.text
    assert sent.json()["status"] == "success"


async def _age(database_url: str, chat_id: str, days: float) -> None:
    await sql(
        database_url,
        "UPDATE chats SET updated_at = now() - %s * interval '1 day' WHERE id = %s",
        days,
        chat_id,
    )


async def _agent(client: httpx.AsyncClient, user: User) -> str:
    agents = await client.get("/agents/", params={"limit": 1}, headers=user.headers)
    return str(agents.json()["items"][0]["id"])


async def test_an_idle_chat_goes_with_its_runs_and_checkpoints_and_the_rest_stay(
    app: FastAPI, client: httpx.AsyncClient, user: User, database_url: str
) -> None:
    agent_id = await _agent(client, user)
    idle = await _chat(client, user, agent_id, 2)
    fresh = await _chat(client, user, agent_id, 2)
    # Old, but a message came in since: its run's end counts as activity.
    revived = await _chat(client, user, agent_id, 2)
    # Idle for 29 days: inside the 30.
    recent = await _chat(client, user, agent_id, 1)
    await _age(database_url, idle, 31)
    await _age(database_url, revived, 31)
    await _age(database_url, recent, 29)
    await _say(client, user, revived, "back again")
    before = {c: await _rows(database_url, c) for c in (idle, fresh, revived, recent)}
    assert before[idle]["runs"] == 2
    assert before[revived]["runs"] == 3
    assert all(before[idle][table] > 0 for table in TABLES)

    sweeper = _sweeper(app)
    assert await sweeper.sweep() == [uuid.UUID(idle)]
    assert await _rows(database_url, idle) == dict.fromkeys(("chats", "runs", *TABLES), 0)
    assert_error(await client.get(f"/chats/{idle}", headers=user.headers), 404)
    for kept in (fresh, revived, recent):
        assert await _rows(database_url, kept) == before[kept]
    assert await sweeper.sweep() == []


async def test_a_chat_whose_run_is_going_is_never_idle(
    app: FastAPI, client: httpx.AsyncClient, user: User, admin: User, database_url: str
) -> None:
    slow = await client.post(
        "/agents/",
        json={"name": "Slow", "model_name": "fake:tokens-2000@10"},
        headers=admin.headers,
    )
    chat_id = await _chat(client, user, slow.json()["id"], 0)
    streaming = asyncio.create_task(
        client.post(
            f"/chats/{chat_id}/messages", json={"content": "go"}, headers=user.headers | SSE
        )
    )
    for _ in range(500):
        running_runs = await sql(
            database_url, "SELECT id FROM runs WHERE chat_id = %s AND status = 'running'", chat_id
        )
        if running_runs:
            break
        await asyncio.sleep(0.01)
    assert len(running_runs) == 1
    await _age(database_url, chat_id, 365)

    assert await _sweeper(app).sweep() == []
    assert (await _rows(database_url, chat_id))["chats"] == 1
    cancel = await client.post(f"/runs/{running_runs[0]['id']}/cancel", headers=user.headers)
    assert cancel.status_code in (200, 202), cancel.text
    await streaming
    # The run's end is activity: the chat is fresh again.
    assert await _sweeper(app).sweep() == []
    assert (await _rows(database_url, chat_id))["runs"] == 1


async def test_one_process_deletes_at_a_time_and_each_chat_once(
    app: FastAPI, client: httpx.AsyncClient, user: User, database_url: str, settings: Any
) -> None:
    agent_id = await _agent(client, user)
    chats = [await _chat(client, user, agent_id, 0) for _ in range(30)]
    await sql(database_url, "UPDATE chats SET updated_at = now() - interval '40 days'")

    # Another process holding the lock: this one deletes nothing this round.
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as other:
        async with other.transaction():
            await other.execute("SELECT pg_advisory_xact_lock(%s)", (RETENTION_LOCK_KEY,))
            assert await _sweeper(app).sweep() == []
    assert len(await sql(database_url, "SELECT id FROM chats")) == 30

    # In batches: a batch of 10 leaves 20.
    first = await _sweeper(app).sweep(limit=10)
    assert len(first) == 10
    left = {row["id"] for row in await sql(database_url, "SELECT id FROM chats")}
    assert len(left) == 20
    assert left.isdisjoint(first)

    # Two processes sweeping at once, batch after batch: each chat is deleted once, by one of
    # them.
    second = create_app(make_settings(database_url))
    deleted: list[uuid.UUID] = []
    async with running(second):
        mine, theirs = _sweeper(app), _sweeper(second)
        for _ in range(100):
            batches = await asyncio.gather(mine.sweep(limit=3), theirs.sweep(limit=3))
            deleted += [chat_id for batch in batches for chat_id in batch]
            if len(deleted) >= 20:
                break
    assert sorted(deleted) == sorted(left)
    assert await sql(database_url, "SELECT id FROM chats WHERE id = ANY(%s::uuid[])", chats) == []


async def test_no_retention_deletes_nothing(
    app: FastAPI, client: httpx.AsyncClient, user: User, database_url: str
) -> None:
    chat_id = await _chat(client, user, await _agent(client, user), 1)
    await _age(database_url, chat_id, 10_000)
    sweeper = RetentionSweeper(app.state.switchboard, days=None, interval=300)
    assert sweeper.poll_seconds == 0  # no rounds start in this process
    assert await sweeper.sweep() == []
    assert (await _rows(database_url, chat_id))["chats"] == 1


def _vacuum(database_url: str, *args: str) -> str:
    done = subprocess.run(
        [SWITCHBOARD, "db", "vacuum-orphans", *args],
        env=clean_env(DATABASE_URL=database_url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def _orphan_rows(database_url: str, chat_ids: list[str]) -> dict[str, int]:
    counts = {}
    for table in TABLES:
        rows = await sql(
            database_url,
            f"SELECT count(*) AS n FROM {table} WHERE thread_id = ANY(%s)",  # noqa: S608
            chat_ids,
        )
        counts[table] = rows[0]["n"]
    return counts


async def test_vacuum_orphans_removes_exactly_the_orphans_and_its_dry_run_none(
    app: FastAPI, client: httpx.AsyncClient, user: User, database_url: str
) -> None:
    # Earlier tests truncate the chats table and leave their threads' checkpoints behind.
    await vacuum_orphans(app.state.switchboard.pool, dry_run=False)
    agent_id = await _agent(client, user)
    orphaned = [await _chat(client, user, agent_id, 2), await _chat(client, user, agent_id, 1)]
    kept = await _chat(client, user, agent_id, 2)
    kept_before = await _rows(database_url, kept)
    # The chat rows alone, as a process dying between a chat's deletion and its thread's
    # would leave them.
    await sql(database_url, "DELETE FROM chats WHERE id = ANY(%s::uuid[])", orphaned)
    orphans = await _orphan_rows(database_url, orphaned)
    assert all(orphans[table] > 0 for table in TABLES)
    report = "".join(f"{table}: {{verb}} {orphans[table]} rows\n" for table in TABLES)

    dry = _vacuum(database_url, "--dry-run")
    assert dry == "orphaned threads: 2\n" + report.format(verb="would delete")
    assert await _orphan_rows(database_url, orphaned) == orphans

    done = _vacuum(database_url)
    assert done == "orphaned threads: 2\n" + report.format(verb="deleted")
    assert await _orphan_rows(database_url, orphaned) == dict.fromkeys(TABLES, 0)
    assert await _rows(database_url, kept) == kept_before

    assert _vacuum(database_url) == "orphaned threads: 0\n" + "".join(
        f"{table}: deleted 0 rows\n" for table in TABLES
    )
