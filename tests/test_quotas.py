"""Quotas (runs per minute, tokens per day, active runs), usage accounting and statistics.

Windows are moved by updating the rows they are counted from (``run_starts``, ``usage_daily``)
in the test database, never by waiting. Apps with quota settings of their own run beside the
session app on the same database (same JWT secret: the same tokens work on each).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from api.app import create_app
from tests.conftest import RegisterFn, User, assert_error, make_settings, running, sql

SLOW = "fake:tokens-400@25"  # about 10 s: active while the test looks, cancelled after


@contextlib.asynccontextmanager
async def quota_app(database_url: str, **quotas: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app on the test database with these quota settings."""
    async with running(create_app(make_settings(database_url, **quotas))) as client:
        yield client


async def _chat(client: httpx.AsyncClient, user: User, agent_id: str | None = None) -> str:
    if agent_id is None:
        agents = (await client.get("/agents/", headers=user.headers)).json()["items"]
        agent_id = next(a["id"] for a in agents if a["slug"] == "assistant")
    response = await client.post("/chats/", json={"agent_id": agent_id}, headers=user.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _send(client: httpx.AsyncClient, user: User, chat_id: str, text: str = "hi") -> Any:
    return await client.post(
        f"/chats/{chat_id}/messages", json={"content": text}, headers=user.headers
    )


async def _answered(client: httpx.AsyncClient, user: User, chat_id: str, text: str = "hi") -> str:
    response = await _send(client, user, chat_id, text)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "success"
    return str(response.json()["run_id"])


def _refused(response: httpx.Response, code: str, retry_after: int) -> str:
    body = assert_error(response, 429, code)
    assert response.headers["Retry-After"] == str(retry_after), response.headers
    return str(body["detail"])


async def _move_starts(database_url: str, user: User, seconds_ago: int) -> None:
    """Every run start of the user now ``seconds_ago`` old."""
    await sql(
        database_url,
        "UPDATE run_starts SET started_at = clock_timestamp() - make_interval(secs => %s)"
        " WHERE user_id = %s",
        seconds_ago,
        user.id,
    )


async def _runs_of(database_url: str, user: User) -> int:
    rows = await sql(database_url, "SELECT count(*) AS n FROM runs WHERE user_id = %s", user.id)
    return int(rows[0]["n"])


async def _agent(client: httpx.AsyncClient, admin: User, model_name: str) -> str:
    body = {"name": f"Quota {model_name}", "model_name": model_name}
    response = await client.post("/agents/", json=body, headers=admin.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


# Runs per minute.


async def test_runs_per_minute_refuses_the_next_run_until_the_window_frees(
    database_url: str, register: RegisterFn
) -> None:
    user = await register()
    async with quota_app(database_url, quota_runs_per_minute=2) as client:
        chat_id = await _chat(client, user)
        await _answered(client, user, chat_id)
        await _answered(client, user, chat_id)
        messages = (await client.get(f"/chats/{chat_id}/messages", headers=user.headers)).json()
        # The window's oldest start 30 s ago: one more fits in 30 s.
        await _move_starts(database_url, user, 30)
        detail = _refused(await _send(client, user, chat_id), "quota_runs_per_minute", 30)
        assert detail == "Quota exceeded: at most 2 runs started per minute; retry in 30 s"
        # Nothing was created: no run, no message.
        assert await _runs_of(database_url, user) == 2
        after = (await client.get(f"/chats/{chat_id}/messages", headers=user.headers)).json()
        assert after == messages
        # A minute later the window is free again.
        await _move_starts(database_url, user, 61)
        await _answered(client, user, chat_id)
        assert await _runs_of(database_url, user) == 3


async def test_a_refused_run_creates_nothing_on_any_path(
    database_url: str, register: RegisterFn
) -> None:
    """A stateless run makes no thread, a fork with an edit no chat, a regenerate no run."""
    user = await register()
    async with quota_app(database_url, quota_runs_per_minute=1) as client:
        chat_id = await _chat(client, user)
        answer = await _send(client, user, chat_id)
        message_id = answer.json()["messages"][0]["id"]
        chats = await sql(database_url, "SELECT id FROM chats WHERE user_id = %s", user.id)
        starts = await sql(database_url, "SELECT * FROM run_starts WHERE user_id = %s", user.id)
        await _move_starts(database_url, user, 45)
        body = {
            "assistant_id": "assistant",
            "input": {"messages": [{"role": "user", "content": "x"}]},
        }
        for method, path, payload in [
            ("POST", "/runs/wait", body),
            ("POST", "/runs", body),
            ("POST", "/runs/batch", [body]),
            ("POST", f"/threads/{chat_id}/runs", body),
            (
                "POST",
                f"/chats/{chat_id}/fork",
                {"edit": {"message_id": message_id, "content": "y"}},
            ),
            ("POST", f"/chats/{chat_id}/messages/{message_id}/regenerate", None),
        ]:
            response = await client.request(method, path, json=payload, headers=user.headers)
            _refused(response, "quota_runs_per_minute", 15)
        assert await sql(database_url, "SELECT id FROM chats WHERE user_id = %s", user.id) == chats
        assert await _runs_of(database_url, user) == 1
        moved = await sql(database_url, "SELECT * FROM run_starts WHERE user_id = %s", user.id)
        assert len(moved) == len(starts) == 1


# Tokens per day.


def _until_midnight(now: datetime) -> int:
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    return math.ceil((midnight - now).total_seconds())


async def test_tokens_per_day_refuses_runs_once_the_days_usage_reaches_it(
    database_url: str, register: RegisterFn
) -> None:
    user = await register()
    async with quota_app(database_url, quota_tokens_per_day=50) as client:
        chat_id = await _chat(client, user)
        run_id = await _answered(client, user, chat_id, "one two three")
        used = (await client.get(f"/runs/{run_id}", headers=user.headers)).json()["usage"]
        # The prompt's words (the system prompt's and these 3) and the answer's 5 tokens.
        assert used["total_tokens"] == 45
        run_id = await _answered(client, user, chat_id, "four")
        assert await _runs_of(database_url, user) == 2
        # Over 50 tokens today: the next run waits for the next UTC day.
        before = datetime.now(UTC)
        refused = await _send(client, user, chat_id)
        after = datetime.now(UTC)
        body = assert_error(refused, 429, "quota_tokens_per_day")
        retry = int(refused.headers["Retry-After"])
        assert retry in range(_until_midnight(after), _until_midnight(before) + 1)
        assert (
            body["detail"] == f"Quota exceeded: at most 50 tokens per day (UTC); retry in {retry} s"
        )
        assert await _runs_of(database_url, user) == 2
        # Yesterday's usage does not count today.
        await sql(database_url, "UPDATE usage_daily SET day = day - 1 WHERE user_id = %s", user.id)
        await _answered(client, user, chat_id)


# Active runs.


async def _running(client: httpx.AsyncClient, user: User, chat_id: str) -> str:
    """Start a run on the chat (the Agent Protocol answers at once) and return its id."""
    body = {"assistant_id": "{}", "input": {"messages": [{"role": "user", "content": "go"}]}}
    chat = (await client.get(f"/chats/{chat_id}", headers=user.headers)).json()
    body["assistant_id"] = chat["agent_id"]
    response = await client.post(f"/threads/{chat_id}/runs", json=body, headers=user.headers)
    assert response.status_code == 200, response.text
    return str(response.json()["run_id"])


async def test_active_runs_refuses_a_run_while_as_many_are_going(
    database_url: str, client: httpx.AsyncClient, admin: User, register: RegisterFn
) -> None:
    user = await register()
    slow = await _agent(client, admin, SLOW)
    async with quota_app(database_url, quota_active_runs=1) as limited:
        busy = await _chat(limited, user, slow)
        run_id = await _running(limited, user, busy)
        other = await _chat(limited, user)
        detail = _refused(await _send(limited, user, other), "quota_active_runs", 1)
        assert detail == "Quota exceeded: at most 1 active runs at once; retry in 1 s"
        # Queued behind the running one counts as active too: refused as well.
        queued = await limited.post(
            f"/chats/{busy}/messages",
            json={"content": "later", "multitask_strategy": "enqueue"},
            headers=user.headers,
        )
        _refused(queued, "quota_active_runs", 1)
        assert await _runs_of(database_url, user) == 1
        # Cancelled (the call waits for its end): the next run may start.
        cancelled = await limited.post(f"/runs/{run_id}/cancel", headers=user.headers)
        assert cancelled.json() == {"run_id": run_id, "status": "cancelled", "cancelled": True}
        await _answered(limited, user, other)


async def test_an_interrupting_run_takes_the_place_of_the_one_it_stops(
    database_url: str, client: httpx.AsyncClient, admin: User, register: RegisterFn
) -> None:
    user = await register()
    slow = await _agent(client, admin, SLOW)
    async with quota_app(database_url, quota_active_runs=1) as limited:
        chat_id = await _chat(limited, user, slow)
        first = await _running(limited, user, chat_id)
        second = await limited.post(
            f"/chats/{chat_id}/messages",
            json={"content": "instead", "multitask_strategy": "interrupt"},
            headers={**user.headers, "Accept": "text/event-stream"},
        )
        assert second.status_code == 200, second.text
        assert (await limited.get(f"/runs/{first}", headers=user.headers)).json()[
            "status"
        ] == "interrupted"
        assert await _runs_of(database_url, user) == 2


# Overrides and roles.


async def test_a_users_own_quota_beats_the_role_default_and_null_restores_it(
    database_url: str, client: httpx.AsyncClient, admin: User, register: RegisterFn
) -> None:
    user = await register()
    async with quota_app(database_url, quota_runs_per_minute=1) as limited:
        put = await limited.put(
            f"/admin/users/{user.id}/quotas", json={"runs_per_minute": 3}, headers=admin.headers
        )
        assert put.status_code == 200, put.text
        assert put.json() == {
            "user_id": user.id,
            "role": "user",
            "overrides": {"runs_per_minute": 3, "tokens_per_day": None, "active_runs": None},
            "defaults": {"runs_per_minute": 1, "tokens_per_day": None, "active_runs": None},
            "effective": {"runs_per_minute": 3, "tokens_per_day": None, "active_runs": None},
        }
        got = await limited.get(f"/admin/users/{user.id}/quotas", headers=admin.headers)
        assert got.json() == put.json()
        chat_id = await _chat(limited, user)
        for _ in range(3):
            await _answered(limited, user, chat_id)
        await _move_starts(database_url, user, 20)
        detail = _refused(await _send(limited, user, chat_id), "quota_runs_per_minute", 40)
        assert "at most 3 runs" in detail
        # Back to the role's default (1): one run in a fresh window, then refused.
        reset = await limited.put(
            f"/admin/users/{user.id}/quotas", json={"runs_per_minute": None}, headers=admin.headers
        )
        assert reset.json()["effective"]["runs_per_minute"] == 1
        assert await sql(database_url, "SELECT * FROM user_quotas") == []
        await _move_starts(database_url, user, 61)
        await _answered(limited, user, chat_id)
        _refused(await _send(limited, user, chat_id), "quota_runs_per_minute", 60)
    # The session app has no role defaults: a user's own quota binds there too.
    await client.put(
        f"/admin/users/{user.id}/quotas", json={"active_runs": 0}, headers=admin.headers
    )
    _refused(await _send(client, user, chat_id), "quota_active_runs", 1)


async def test_admins_have_their_own_defaults(
    database_url: str, admin: User, register: RegisterFn
) -> None:
    user = await register()
    settings = {"quota_runs_per_minute": 1, "quota_admin_runs_per_minute": 3}
    async with quota_app(database_url, **settings) as client:
        chat_id = await _chat(client, admin)
        for _ in range(3):
            await _answered(client, admin, chat_id)
        _refused(await _send(client, admin, chat_id), "quota_runs_per_minute", 60)
        mine = await _chat(client, user)
        await _answered(client, user, mine)
        _refused(await _send(client, user, mine), "quota_runs_per_minute", 60)
        quotas = (await client.get(f"/admin/users/{admin.id}/quotas", headers=admin.headers)).json()
        assert quotas["role"] == "admin"
        assert quotas["effective"]["runs_per_minute"] == 3


async def test_quota_updates_are_validated_and_name_a_user(
    database_url: str, client: httpx.AsyncClient, admin: User, user: User
) -> None:
    for body in (
        {"runs_per_minute": -1},
        {"tokens_per_day": 10**15 + 1},
        {"active_runs": "many"},
        {"runs_per_minute": 1.5},
        {"runs_per_minute": True},
        {"active_runs": "5"},
    ):
        response = await client.put(
            f"/admin/users/{user.id}/quotas", json=body, headers=admin.headers
        )
        assert_error(response, 422, "validation_error")
    missing = "00000000-0000-4000-8000-000000000000"
    for method in ("GET", "PUT"):
        response = await client.request(
            method, f"/admin/users/{missing}/quotas", json={}, headers=admin.headers
        )
        assert_error(response, 404, "user_not_found")
    assert await sql(database_url, "SELECT * FROM user_quotas") == []


# Several processes.


async def test_limits_hold_across_two_apps_on_one_database(
    database_url: str, register: RegisterFn
) -> None:
    user = await register()
    async with (
        quota_app(database_url, quota_runs_per_minute=4) as first,
        quota_app(database_url, quota_runs_per_minute=4) as second,
    ):
        chats = [await _chat(first, user) for _ in range(8)]
        # Eight runs at once, half to each app, each on its own chat: exactly four start.
        answers = await asyncio.gather(
            *(_send(first if i % 2 else second, user, chat) for i, chat in enumerate(chats))
        )
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [201] * 4 + [429] * 4
        for answer in answers:
            if answer.status_code == 429:
                assert answer.json()["code"] == "quota_runs_per_minute"
        assert await _runs_of(database_url, user) == 4
        # Sequentially, one app after the other, the window is the same.
        await _move_starts(database_url, user, 61)
        for i in range(4):
            await _answered(first if i % 2 else second, user, chats[i])
        _refused(await _send(first, user, chats[5]), "quota_runs_per_minute", 60)
        _refused(await _send(second, user, chats[6]), "quota_runs_per_minute", 60)


# Usage.


async def _usage_of_runs(client: httpx.AsyncClient, user: User, run_ids: list[str]) -> dict:
    totals = {"runs": 0, "input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    for run_id in run_ids:
        usage = (await client.get(f"/runs/{run_id}", headers=user.headers)).json()["usage"]
        totals["runs"] += 1
        for key in ("input_tokens", "output_tokens", "total_tokens"):
            totals[key] += usage[key]
    return totals


async def test_usage_sums_equal_the_runs_usage_per_user_agent_and_model(
    client: httpx.AsyncClient, admin: User, user: User, other_user: User
) -> None:
    t5 = await _agent(client, admin, "fake:tokens-5")
    mine = [await _chat(client, user), await _chat(client, user, t5)]
    theirs = await _chat(client, other_user, t5)
    runs: dict[str, list[str]] = {"echo": [], "t5": [], "other": []}
    for text in ("one", "one two", "one two three"):
        runs["echo"].append(await _answered(client, user, mine[0], text))
        runs["t5"].append(await _answered(client, user, mine[1], text))
    runs["other"].append(await _answered(client, other_user, theirs, "hello there"))
    echo = await _usage_of_runs(client, user, runs["echo"])
    tokens = await _usage_of_runs(client, user, runs["t5"])
    other = await _usage_of_runs(client, other_user, runs["other"])
    assert echo["total_tokens"] > 0 and tokens["total_tokens"] > 0

    today = datetime.now(UTC).date().isoformat()
    response = await client.get("/users/me/usage", headers=user.headers)
    assert response.status_code == 200, response.text
    usage = response.json()
    assert usage["to"] == today
    assert usage["from"] == (datetime.now(UTC).date() - timedelta(days=29)).isoformat()
    assert usage["items"] == [
        {"day": today, "model_name": "fake:echo", **echo, "estimated_tokens": 0},
        {"day": today, "model_name": "fake:tokens-5", **tokens, "estimated_tokens": 0},
    ]
    assert usage["totals"] == {key: echo[key] + tokens[key] for key in echo} | {
        "estimated_tokens": 0
    }
    # A chat's deletion keeps what its runs used.
    await client.delete(f"/chats/{mine[0]}", headers=user.headers)
    assert (await client.get("/users/me/usage", headers=user.headers)).json() == usage

    def total(*parts: dict[str, int]) -> dict[str, int]:
        return {key: sum(part[key] for part in parts) for key in parts[0]} | {"estimated_tokens": 0}

    by_user = (await client.get("/admin/usage", headers=admin.headers)).json()
    assert by_user["group_by"] == "user"
    assert by_user["items"] == sorted(
        [
            {"key": user.id, "name": "Alice", "email": user.email, **total(echo, tokens)},
            {"key": other_user.id, "name": "Bob", "email": other_user.email, **total(other)},
        ],
        key=lambda item: (-item["total_tokens"], item["key"]),
    )
    assert by_user["totals"] == total(echo, tokens, other)
    agents = {
        a["id"]: a["name"]
        for a in (await client.get("/agents/", headers=user.headers)).json()["items"]
    }
    by_agent = (
        await client.get("/admin/usage", params={"group_by": "agent"}, headers=admin.headers)
    ).json()
    items = {item["key"]: item for item in by_agent["items"]}
    assert items[t5] == {
        "key": t5,
        "name": "Quota fake:tokens-5",
        "email": None,
        **total(tokens, other),
    }
    echo_agent = next(key for key in items if key != t5)
    assert items[echo_agent] == {
        "key": echo_agent,
        "name": agents[echo_agent],
        "email": None,
        **total(echo),
    }
    assert by_agent["totals"] == by_user["totals"]
    by_model = (
        await client.get("/admin/usage", params={"group_by": "model"}, headers=admin.headers)
    ).json()
    assert {item["key"]: item for item in by_model["items"]} == {
        "fake:echo": {"key": "fake:echo", "name": None, "email": None, **total(echo)},
        "fake:tokens-5": {
            "key": "fake:tokens-5",
            "name": None,
            "email": None,
            **total(tokens, other),
        },
    }
    # Another range: nothing.
    past = {"from": "2020-01-01", "to": "2020-12-31"}
    empty = (await client.get("/users/me/usage", params=past, headers=user.headers)).json()
    assert empty == {
        "from": "2020-01-01", "to": "2020-12-31", "items": [],
        "totals": {k: 0 for k in ("runs", "input_tokens", "output_tokens", "total_tokens",
                                  "estimated_tokens")},
    }  # fmt: skip


async def test_estimated_usage_counts_and_is_flagged(
    app: Any, client: httpx.AsyncClient, user: User
) -> None:
    """A run whose provider reported no usage: its estimate is counted, and shown as such."""
    from storage import runs as runs_store

    chat_id = await _chat(client, user)
    run_id = await _answered(client, user, chat_id)
    before = (await client.get("/users/me/usage", headers=user.headers)).json()["totals"]
    state = app.state.switchboard
    estimated = {"input_tokens": 7, "output_tokens": 5, "total_tokens": 12, "estimated": True}
    async with state.pool.connection() as conn:
        # What the executor records at a run's end (graphs/runtime/execution.py), for a second
        # ending of the run as a run whose usage was estimated.
        await runs_store.finish_with_summary(
            conn, run_id, status="success", error=None, usage=estimated,
            added=0, title=None, thread_status="idle",
        )  # fmt: skip
    after = (await client.get("/users/me/usage", headers=user.headers)).json()["totals"]
    assert after == {
        "runs": before["runs"] + 1,
        "input_tokens": before["input_tokens"] + 7,
        "output_tokens": before["output_tokens"] + 5,
        "total_tokens": before["total_tokens"] + 12,
        "estimated_tokens": 12,
    }


# Dates.


@pytest.mark.parametrize("path", ["/users/me/usage", "/admin/usage", "/admin/stats"])
async def test_date_ranges_are_validated(client: httpx.AsyncClient, admin: User, path: str) -> None:
    for params, code in [
        ({"from": "2026-03-02", "to": "2026-03-01"}, "invalid_date_range"),
        ({"from": "2025-01-01", "to": "2026-01-02"}, "invalid_date_range"),  # 367 days
        ({"to": "2020-01-01", "from": "2018-06-01"}, "invalid_date_range"),
        ({"from": "yesterday"}, "validation_error"),
        ({"to": "2026-02-30"}, "validation_error"),
        # A number is no date (pydantic alone would read it as a Unix time).
        ({"to": "0"}, "validation_error"),
        ({"from": "1700000000"}, "validation_error"),
        ({"from": "2026-1-02"}, "validation_error"),
    ]:
        response = await client.get(path, params=params, headers=admin.headers)
        assert_error(response, 422, code)
    # 366 days, both ends included: allowed.
    full = await client.get(
        path, params={"from": "2024-01-01", "to": "2024-12-31"}, headers=admin.headers
    )
    assert full.status_code == 200, full.text
    assert (full.json()["from"], full.json()["to"]) == ("2024-01-01", "2024-12-31")
    if path == "/admin/usage":
        bad = await client.get(path, params={"group_by": "day"}, headers=admin.headers)
        assert_error(bad, 422, "validation_error")


# Statistics.


async def test_stats_count_users_chats_and_runs_by_status_and_day(
    database_url: str, client: httpx.AsyncClient, admin: User, user: User, other_user: User
) -> None:
    chat_id = await _chat(client, user)
    await _answered(client, user, chat_id)
    await _answered(client, user, chat_id)
    theirs = await _chat(client, other_user)
    await _answered(client, other_user, theirs)
    await _chat(client, other_user)
    # One of the runs as if it had ended in error two days ago.
    await sql(
        database_url,
        "UPDATE runs SET status = 'error', created_at = created_at - interval '2 days'"
        " WHERE chat_id = %s",
        theirs,
    )
    today = datetime.now(UTC).date()
    response = await client.get("/admin/stats", headers=admin.headers)
    assert response.status_code == 200, response.text
    stats = response.json()
    two_days_ago = (today - timedelta(days=2)).isoformat()
    assert {k: v for k, v in stats.items() if k not in ("tables", "database_bytes")} == {
        "from": (today - timedelta(days=29)).isoformat(),
        "to": today.isoformat(),
        "users": 3,
        "chats": 3,
        "runs": 3,
        "runs_by_status": {"success": 2, "error": 1},
        "runs_per_day": [
            {"day": two_days_ago, "total": 1, "by_status": {"error": 1}},
            {"day": today.isoformat(), "total": 2, "by_status": {"success": 2}},
        ],
    }
    tables = await sql(
        database_url, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    )
    assert sorted(t["name"] for t in stats["tables"]) == sorted(t["tablename"] for t in tables)
    assert {"runs", "chats", "usage_daily", "checkpoints"} <= {t["name"] for t in stats["tables"]}
    assert stats["database_bytes"] == sum(t["bytes"] for t in stats["tables"])
    sizes = [t["bytes"] for t in stats["tables"]]
    assert sizes == sorted(sizes, reverse=True)
    # Only today: the run of two days ago is out of the range.
    only_today = (
        await client.get(
            "/admin/stats",
            params={"from": today.isoformat(), "to": today.isoformat()},
            headers=admin.headers,
        )
    ).json()
    assert (only_today["runs"], only_today["runs_by_status"]) == (2, {"success": 2})
    assert isinstance(date.fromisoformat(only_today["from"]), date)


# Every other way a run starts.


async def test_replays_crons_a2a_mcp_and_v2_commands_are_held_to_the_quota(
    app: Any, database_url: str, client: httpx.AsyncClient, admin: User, user: User
) -> None:
    """A user with ``runs_per_minute: 0`` of their own (on the session app, which has no role
    defaults): each way a run starts is refused in its own protocol's words, and no run is
    made."""
    from tests.test_mcp_endpoint import mcp_session

    chat_id = await _chat(client, user)
    await _answered(client, user, chat_id)
    cron = await client.post(
        f"/threads/{chat_id}/runs/crons",
        json={"assistant_id": "assistant", "schedule": "0 0 1 1 *", "input": {"messages": []}},
        headers=user.headers,
    )
    assert cron.status_code == 200, cron.text
    agent_id = (await client.get(f"/chats/{chat_id}", headers=user.headers)).json()["agent_id"]
    put = await client.put(
        f"/admin/users/{user.id}/quotas", json={"runs_per_minute": 0}, headers=admin.headers
    )
    assert put.status_code == 200, put.text
    detail = "Quota exceeded: at most 0 runs started per minute; retry in 60 s"
    _refused(await _send(client, user, chat_id), "quota_runs_per_minute", 60)

    replay = await client.post(
        f"/chats/{chat_id}/replays", json={"model_name": "fake:echo"}, headers=user.headers
    )
    assert replay.status_code == 202, replay.text
    state = replay.json()
    while state["status"] in ("pending", "running"):
        await asyncio.sleep(0.02)
        state = (await client.get(f"/replays/{replay.json()['id']}", headers=user.headers)).json()
    assert (state["status"], state["error"]) == ("failed", detail)

    await sql(
        database_url,
        "UPDATE crons SET next_run_date = now() - interval '1 second' WHERE id = %s",
        cron.json()["cron_id"],
    )
    await app.state.switchboard.crons.step()

    message = {"role": "user", "parts": [{"kind": "text", "text": "hi"}], "messageId": "m1"}
    rpc = {"jsonrpc": "2.0", "id": 7, "method": "message/send", "params": {"message": message}}
    a2a = await client.post(f"/a2a/{agent_id}", json=rpc, headers=user.headers)
    assert a2a.json() == {"jsonrpc": "2.0", "id": 7, "error": {"code": -32004, "message": detail}}

    async with mcp_session(app, user.headers) as session:
        called = await session.call_tool("assistant", {"message": "hi"})
    assert called.is_error is True
    assert [block.text for block in called.content] == [detail]  # type: ignore[union-attr]

    start = {"id": 1, "method": "run.start", "params": {"assistant_id": "assistant"}}
    start["params"]["input"] = {"messages": [{"role": "user", "content": "hi"}]}
    command = await client.post(f"/threads/{chat_id}/commands", json=start, headers=user.headers)
    _refused(command, "quota_runs_per_minute", 60)

    assert await _runs_of(database_url, user) == 1
    # The chat, and the replay's own (its copy, where its turns would have gone): no other.
    chats = await sql(database_url, "SELECT id FROM chats WHERE user_id = %s", user.id)
    assert sorted(str(row["id"]) for row in chats) == sorted([chat_id, state["target_chat_id"]])


async def test_a_user_cannot_set_their_own_quotas(
    database_url: str, client: httpx.AsyncClient, user: User
) -> None:
    mine = await client.put(
        f"/admin/users/{user.id}/quotas", json={"runs_per_minute": 1000}, headers=user.headers
    )
    assert_error(mine, 403, "forbidden")
    assert await sql(database_url, "SELECT * FROM user_quotas") == []


def test_quota_settings_are_unlimited_when_empty_and_named_when_wrong(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from api.settings import ConfigurationError, load_settings

    monkeypatch.setenv("SWITCHBOARD_QUOTA_RUNS_PER_MINUTE", "")
    monkeypatch.setenv("SWITCHBOARD_QUOTA_ADMIN_TOKENS_PER_DAY", "5000")
    defaults = load_settings().quota_defaults
    assert defaults == {
        "user": {"runs_per_minute": None, "tokens_per_day": None, "active_runs": None},
        "admin": {"runs_per_minute": None, "tokens_per_day": 5000, "active_runs": None},
    }
    monkeypatch.setenv("SWITCHBOARD_QUOTA_ACTIVE_RUNS", "-1")
    with pytest.raises(ConfigurationError) as refused:
        load_settings()
    assert str(refused.value) == (
        "SWITCHBOARD_QUOTA_ACTIVE_RUNS: Input should be greater than or equal to 0"
    )
