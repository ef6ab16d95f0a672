"""The shared connection pool on the real Postgres: which checkouts are checked, and returns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from api.app import create_app
from storage import db
from storage.db import open_pool
from tests.conftest import make_settings, running


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[db.Pool]:
    pool = await open_pool(database_url, min_size=1, max_size=1)
    yield pool
    await pool.close()


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    seen: list[Any] = []
    original = AsyncConnectionPool.check_connection

    async def counting(conn: Any) -> None:
        seen.append(conn)
        await original(conn)

    monkeypatch.setattr(AsyncConnectionPool, "check_connection", staticmethod(counting))
    return seen


async def test_a_returned_connection_is_back_in_the_pool_at_once(pool: db.Pool) -> None:
    async with pool.connection() as conn:
        await conn.execute("SELECT 1")
        assert pool.get_stats()["pool_available"] == 0
    # No background worker in between: the next caller finds it without waiting.
    assert pool.get_stats()["pool_available"] == 1


async def test_a_connection_used_just_now_is_not_checked_again(
    pool: db.Pool, checks: list[Any]
) -> None:
    async with pool.connection() as conn:
        await conn.execute("SELECT 1")
    checks.clear()  # a connection never used before is checked once
    for _ in range(3):
        async with pool.connection() as conn:
            await conn.execute("SELECT 1")
    assert checks == []


async def test_a_connection_idle_too_long_is_checked_and_a_dead_one_replaced(
    pool: db.Pool, checks: list[Any], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with pool.connection() as dead:
        cur = await dead.execute("SELECT pg_backend_pid() AS pid")
        first_pid = (await cur.fetchone())["pid"]
    checks.clear()
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as admin:
        await admin.execute("SELECT pg_terminate_backend(%s)", (first_pid,))
    monkeypatch.setattr(db, "TRUSTED_IDLE_SECONDS", 0.0)

    async with pool.connection(timeout=10) as conn:
        cur = await conn.execute("SELECT pg_backend_pid() AS pid")
        second_pid = (await cur.fetchone())["pid"]
    assert second_pid != first_pid
    # The dead one failed its check; its replacement, never used yet, was checked too.
    assert {id(c) for c in checks} == {id(dead), id(conn)}


@pytest.mark.parametrize("prepared", [True, False])
async def test_statements_are_prepared_unless_turned_off(database_url: str, prepared: bool) -> None:
    pool = await open_pool(database_url, min_size=1, max_size=1, prepared=prepared)
    try:
        async with pool.connection() as conn:
            await conn.execute("SELECT count(*) FROM agents WHERE deleted_at IS NULL")
            cur = await conn.execute("SELECT statement FROM pg_prepared_statements")
            statements = [row["statement"] for row in await cur.fetchall()]
    finally:
        await pool.close()
    expected = ["SELECT count(*) FROM agents WHERE deleted_at IS NULL"] if prepared else []
    assert [s for s in statements if "agents" in s] == expected


async def test_a_chat_turn_works_without_prepared_statements(
    database_url: str, register: Any
) -> None:
    """As behind PgBouncer in transaction mode: SWITCHBOARD_PREPARED_STATEMENTS=false."""
    app = create_app(make_settings(database_url, prepared_statements=False))
    async with running(app) as client:
        user = await register()
        agents = (await client.get("/agents/", headers=user.headers)).json()["items"]
        chat = await client.post(
            "/chats/", json={"agent_id": agents[0]["id"]}, headers=user.headers
        )
        answer = await client.post(
            f"/chats/{chat.json()['id']}/messages", json={"content": "hi"}, headers=user.headers
        )
        assert answer.json()["status"] == "success"
        assert app.state.switchboard.pool.kwargs["prepare_threshold"] is None
