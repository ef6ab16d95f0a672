"""Crons of the Agent Protocol, driven by the official Python client (``langgraph-sdk``) on the
app: create (stateless and on a thread), search, count, update, delete; each tick starts an
ordinary run with the cron's input; a tick fires once, also with two processes looking and
after ticks were missed; disabled and ended crons never fire; crons are their owner's alone.

The session app's scheduler does not run by itself (``cron_poll_seconds=0`` in the tests'
settings): a test makes a cron due in SQL and drives one round with ``state.crons.step()``,
which returns once the runs of what it claimed have started. Where the scheduler's own loop is
the subject, a process of its own runs it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import hypothesis
import psycopg
import pytest
from croniter import CroniterBadDateError, croniter
from fastapi import FastAPI
from hypothesis import strategies as st
from langgraph_sdk.errors import NotFoundError

from api.app import create_app
from api.schemas.crons import SCHEDULE_PATTERN, Cron
from tests.conftest import (
    JWT_SECRET,
    PASSWORD,
    SDKFactory,
    User,
    assert_error,
    make_settings,
    running,
    sql,
)
from tests.protocol import hi
from tests.servers import Worker, beside_the_tests, clean_env, redis_server

# A schedule with no tick while a test runs (so only the ticks a test makes due fire).
YEARLY = "0 0 1 1 *"


async def _make_due(database_url: str, cron_id: str, ago: timedelta = timedelta(0)) -> None:
    await sql(
        database_url,
        "UPDATE crons SET next_run_date = now() - %s - interval '1 millisecond' WHERE id = %s",
        ago,
        cron_id,
    )


async def _cron_row(database_url: str, cron_id: str) -> dict[str, Any]:
    [row] = await sql(database_url, "SELECT * FROM crons WHERE id = %s", cron_id)
    return row


async def _runs_of_chat(database_url: str, chat_id: str) -> list[dict[str, Any]]:
    return await sql(
        database_url, "SELECT * FROM runs WHERE chat_id = %s ORDER BY created_at", chat_id
    )


async def _until(check: Callable[[], Awaitable[Any]], seconds: float = 20) -> Any:
    """Poll ``check`` until it answers something true; that answer."""
    deadline = time.monotonic() + seconds
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, "not in time"
        await asyncio.sleep(0.05)


async def _clear_of_a_minute_tick() -> None:
    """Return at least 50 s before the next minute starts: a test of an every-minute cron then
    sees no tick but the ones it makes due (waits up to 10 s, only near the end of a minute)."""
    now = datetime.now(UTC)
    second = now.second + now.microsecond / 1e6
    if second > 50:
        await asyncio.sleep(60.5 - second)


def _expected_tick(schedule: str, timezone: str, after: datetime) -> datetime:
    tick: datetime = croniter(schedule, after.astimezone(ZoneInfo(timezone))).get_next(datetime)
    return tick.astimezone(UTC)


def _fits(body: dict[str, Any]) -> Cron:
    """A cron as answered: exactly the documented fields."""
    assert set(body) == set(Cron.model_fields), body
    return Cron.model_validate(body)


async def test_the_sdk_creates_searches_counts_updates_and_deletes_crons(
    sdk: SDKFactory, client: httpx.AsyncClient, user: User, seeded_agents: dict[str, Any]
) -> None:
    alice = sdk(user)
    thread = await alice.threads.create()
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    before = datetime.now(UTC)
    weekday = await alice.crons.create_for_thread(
        thread["thread_id"],
        "assistant",
        schedule="0 9 * * MON-FRI",
        timezone="Europe/Lisbon",
        end_time=end,
        input=hi("standup"),
        metadata={"team": "a"},
        multitask_strategy="reject",
    )
    daily = await alice.crons.create(
        seeded_agents["assistant"]["id"],
        schedule="@daily",
        input=hi("digest"),
        metadata={"team": "b"},
        on_run_completed="keep",
        stream_mode=["values", "updates"],
    )
    after = datetime.now(UTC)

    first = _fits(weekday)
    assert (str(first.thread_id), first.schedule, first.timezone) == (
        thread["thread_id"], "0 9 * * MON-FRI", "Europe/Lisbon"
    )  # fmt: skip
    assert (first.end_time, first.enabled, first.on_run_completed) == (end, True, None)
    assert str(first.assistant_id) == seeded_agents["assistant"]["id"]
    assert first.user_id == user.id
    assert first.metadata == {"team": "a"}
    assert first.payload == {
        "assistant_id": seeded_agents["assistant"]["id"],
        "input": hi("standup"),
        "stream_mode": ["values"],
        "stream_subgraphs": False,
        "stream_resumable": False,
        "multitask_strategy": "reject",
    }
    # Its first run: the first weekday 9:00 in Lisbon after now.
    assert first.next_run_date in {
        _expected_tick("0 9 * * MON-FRI", "Europe/Lisbon", before),
        _expected_tick("0 9 * * MON-FRI", "Europe/Lisbon", after),
    }
    second = _fits(daily)
    assert (second.thread_id, second.on_run_completed, second.timezone) == (None, "keep", None)
    assert second.payload["stream_mode"] == ["values", "updates"]
    assert "multitask_strategy" not in second.payload
    assert second.next_run_date in {_expected_tick("@daily", "UTC", t) for t in (before, after)}

    # Search: newest first by default, every filter, sorting, paging, select.
    found = await alice.crons.search()
    assert [c["cron_id"] for c in found] == [daily["cron_id"], weekday["cron_id"]]
    assert [_fits(c) for c in found] == [second, first]
    by_thread = await alice.crons.search(thread_id=thread["thread_id"])
    assert [c["cron_id"] for c in by_thread] == [weekday["cron_id"]]
    for assistant in ("assistant", seeded_agents["assistant"]["id"]):
        assert len(await alice.crons.search(assistant_id=assistant)) == 2
    assert await alice.crons.search(assistant_id=seeded_agents["marketing"]["id"]) == []
    assert [c["cron_id"] for c in await alice.crons.search(metadata={"team": "b"})] == [
        daily["cron_id"]
    ]
    oldest_first = await alice.crons.search(sort_by="created_at", sort_order="asc")
    assert [c["cron_id"] for c in oldest_first] == [weekday["cron_id"], daily["cron_id"]]
    paged = await alice.crons.search(limit=1, offset=1)
    assert [c["cron_id"] for c in paged] == [weekday["cron_id"]]
    # The official pagination headers: how many match, and where the next page starts.
    for page, expected in (
        ({"limit": 1}, ("2", "1")),
        ({"limit": 1, "offset": 1}, ("2", None)),
        ({"limit": 5, "metadata": {"team": "a"}}, ("1", None)),
    ):
        answer = await client.post("/runs/crons/search", json=page, headers=user.headers)
        headers = answer.headers
        assert (headers["X-Pagination-Total"], headers.get("X-Pagination-Next")) == expected
    picked = await alice.crons.search(select=["cron_id", "schedule"])
    assert picked == [
        {"cron_id": daily["cron_id"], "schedule": "@daily"},
        {"cron_id": weekday["cron_id"], "schedule": "0 9 * * MON-FRI"},
    ]
    assert await alice.crons.search(enabled=False) == []

    assert await alice.crons.count() == 2
    assert await alice.crons.count(thread_id=thread["thread_id"]) == 1
    assert await alice.crons.count(metadata={"team": "a"}) == 1
    assert await alice.crons.count(assistant_id="assistant") == 2

    # Update: what is given changes, metadata is merged, the next run follows the schedule.
    before = datetime.now(UTC)
    updated = await alice.crons.update(
        weekday["cron_id"],
        schedule="*/5 * * * *",
        input=hi("five"),
        metadata={"extra": 1},
        enabled=False,
        end_time=None,
    )
    after = datetime.now(UTC)
    changed = _fits(updated)
    assert (changed.schedule, changed.enabled, changed.end_time) == ("*/5 * * * *", False, None)
    assert changed.metadata == {"team": "a", "extra": 1}
    assert changed.payload == {**first.payload, "input": hi("five")}
    assert changed.next_run_date in {
        _expected_tick("*/5 * * * *", "Europe/Lisbon", t) for t in (before, after)
    }
    assert changed.updated_at > first.updated_at
    assert (changed.created_at, changed.timezone) == (first.created_at, "Europe/Lisbon")
    read = await client.get(f"/runs/crons/{weekday['cron_id']}", headers=user.headers)
    assert read.json() == updated
    assert [c["cron_id"] for c in await alice.crons.search(enabled=False)] == [weekday["cron_id"]]
    disabled = await client.post(
        "/runs/crons/search", json={"enabled": False, "limit": 1}, headers=user.headers
    )
    assert disabled.headers["X-Pagination-Total"] == "1"

    # Delete: gone for every route; the other stays.
    await alice.crons.delete(weekday["cron_id"])
    gone = await client.get(f"/runs/crons/{weekday['cron_id']}", headers=user.headers)
    assert_error(gone, 404, "not_found")
    with pytest.raises(NotFoundError):
        await alice.crons.delete(weekday["cron_id"])
    assert [c["cron_id"] for c in await alice.crons.search()] == [daily["cron_id"]]
    assert await alice.crons.count() == 1


async def test_a_due_thread_cron_starts_a_run_with_its_input(
    app: FastAPI, sdk: SDKFactory, user: User, database_url: str
) -> None:
    await _clear_of_a_minute_tick()
    alice = sdk(user)
    thread = await alice.threads.create()
    cron = await alice.crons.create_for_thread(
        thread["thread_id"], "assistant", schedule="* * * * *", input=hi("ping"),
        metadata={"from": "cron"},
    )  # fmt: skip
    await alice.crons.update(cron["cron_id"], input=hi("pong"))
    await _make_due(database_url, cron["cron_id"])
    await app.state.switchboard.crons.step()

    [run] = await alice.runs.list(thread["thread_id"])
    assert run["kwargs"]["input"] == hi("pong")
    assert run["metadata"] == {"from": "cron"}
    assert run["multitask_strategy"] == "enqueue"
    values = await alice.runs.join(thread["thread_id"], run["run_id"])
    assert [m["content"] for m in values["messages"]] == ["pong", "You said: pong"]
    # An ordinary run: it streams like any other (replayed once it ended).
    events = [
        part.event async for part in alice.runs.join_stream(thread["thread_id"], run["run_id"])
    ]
    assert events == ["metadata", "values", "values", "end"]

    # Its next tick is the next minute: nothing more is due.
    row = await _cron_row(database_url, cron["cron_id"])
    now = datetime.now(UTC)
    assert now < row["next_run_date"] <= now + timedelta(minutes=1)
    await app.state.switchboard.crons.step()
    assert len(await alice.runs.list(thread["thread_id"])) == 1


async def test_a_stateless_cron_runs_on_a_new_thread_kept_or_deleted(
    app: FastAPI, sdk: SDKFactory, user: User, database_url: str
) -> None:
    alice = sdk(user)
    kept = await alice.crons.create(
        "assistant", schedule=YEARLY, input=hi("keep me"), on_run_completed="keep",
        metadata={"kind": "keep"},
    )  # fmt: skip
    dropped = await alice.crons.create(
        "assistant", schedule=YEARLY, input=hi("drop me"), metadata={"kind": "delete"}
    )
    assert dropped["on_run_completed"] == "delete"  # the default, as on the official server
    for cron in (kept, dropped):
        await _make_due(database_url, cron["cron_id"])
    await app.state.switchboard.crons.step()

    started = await sql(
        database_url,
        "SELECT id, chat_id, input->'metadata'->>'kind' AS kind FROM runs WHERE user_id = %s",
        user.id,
    )
    assert sorted(run["kind"] for run in started) == ["delete", "keep"]
    deleted_chat = next(run["chat_id"] for run in started if run["kind"] == "delete")
    kept_chat = next(run["chat_id"] for run in started if run["kind"] == "keep")
    assert deleted_chat != kept_chat
    # The deleted one goes once its run ended: with the run's record, as for `POST /runs/wait`.
    assert await _until(lambda: _gone(database_url, deleted_chat))
    [thread] = await alice.threads.search()
    assert thread["thread_id"] == str(kept_chat)
    [run] = await alice.runs.list(thread["thread_id"])
    assert (run["kwargs"]["input"], run["metadata"]) == (hi("keep me"), {"kind": "keep"})
    values = await alice.runs.join(thread["thread_id"], run["run_id"])
    assert [m["content"] for m in values["messages"]] == ["keep me", "You said: keep me"]
    # Both crons stay, each at its next tick.
    assert await alice.crons.count() == 2


async def _gone(database_url: str, chat_id: Any) -> bool:
    return not await sql(database_url, "SELECT 1 FROM chats WHERE id = %s", chat_id)


async def test_ticks_missed_while_nothing_ran_fire_once(
    app: FastAPI, sdk: SDKFactory, user: User, database_url: str
) -> None:
    await _clear_of_a_minute_tick()
    alice = sdk(user)
    thread = await alice.threads.create()
    cron = await alice.crons.create_for_thread(
        thread["thread_id"], "assistant", schedule="* * * * *", input=hi("late")
    )
    # Down for an hour: 60 ticks missed.
    await _make_due(database_url, cron["cron_id"], ago=timedelta(hours=1))
    before = datetime.now(UTC)
    await app.state.switchboard.crons.step()
    after = datetime.now(UTC)
    assert len(await alice.runs.list(thread["thread_id"])) == 1
    row = await _cron_row(database_url, cron["cron_id"])
    assert row["next_run_date"] in {_expected_tick("* * * * *", "UTC", t) for t in (before, after)}
    assert row["next_run_date"] > after - timedelta(seconds=1)
    await app.state.switchboard.crons.step()
    assert len(await alice.runs.list(thread["thread_id"])) == 1


async def test_disabled_and_ended_crons_never_fire(
    app: FastAPI, sdk: SDKFactory, user: User, database_url: str
) -> None:
    await _clear_of_a_minute_tick()
    alice = sdk(user)
    threads = {name: (await alice.threads.create())["thread_id"] for name in ("on", "off", "ended")}
    crons = {
        "on": await alice.crons.create_for_thread(
            threads["on"], "assistant", schedule="* * * * *", input=hi("on")
        ),
        "off": await alice.crons.create_for_thread(
            threads["off"], "assistant", schedule="* * * * *", input=hi("off"), enabled=False
        ),
        "ended": await alice.crons.create_for_thread(
            threads["ended"], "assistant", schedule="* * * * *", input=hi("ended"),
            end_time=datetime.now(UTC) + timedelta(hours=1),
        ),
    }  # fmt: skip
    for cron in crons.values():
        await _make_due(database_url, cron["cron_id"], ago=timedelta(minutes=5))
    await sql(
        database_url,
        "UPDATE crons SET end_time = now() - interval '1 minute' WHERE id = %s",
        crons["ended"]["cron_id"],
    )
    off_before = await _cron_row(database_url, crons["off"]["cron_id"])
    # One round: every due cron was looked at, and only the enabled, unended one started a run.
    await app.state.switchboard.crons.step()
    ran = {name: len(await _runs_of_chat(database_url, tid)) for name, tid in threads.items()}
    assert ran == {"on": 1, "off": 0, "ended": 0}
    assert await _cron_row(database_url, crons["off"]["cron_id"]) == off_before
    # An ended cron has no next run left.
    ended = await alice.crons.search(thread_id=threads["ended"])
    assert ended[0]["next_run_date"] is None

    # Enabled again, a cron runs at its next tick from now: what it skipped is not made up.
    revived = await alice.crons.update(crons["off"]["cron_id"], enabled=True)
    assert datetime.fromisoformat(revived["next_run_date"]) > datetime.now(UTC)
    await app.state.switchboard.crons.step()
    ran = {name: len(await _runs_of_chat(database_url, tid)) for name, tid in threads.items()}
    assert ran == {"on": 1, "off": 0, "ended": 0}


async def test_the_schedulers_loop_starts_a_cron_when_it_is_due(
    database_url: str, sdk: SDKFactory, user: User
) -> None:
    """A process whose scheduler runs: a cron due in a second starts its run then, though the
    process looks for new crons only every 60 s (a change it makes itself wakes it)."""
    alice = sdk(user)
    thread = await alice.threads.create()
    cron = await alice.crons.create_for_thread(
        thread["thread_id"], "assistant", schedule=YEARLY, input=hi("on time")
    )
    looping = create_app(make_settings(database_url, cron_poll_seconds=60))
    async with running(looping) as other:
        [due] = await sql(
            database_url,
            "UPDATE crons SET next_run_date = now() + interval '1 second' WHERE id = %s"
            " RETURNING next_run_date",
            cron["cron_id"],
        )
        # What a cron written here does: it wakes the scheduler, which then waits for the tick.
        looping.state.switchboard.crons.wake()
        [run] = await _until(lambda: _runs_of_chat(database_url, thread["thread_id"]))
        assert run["created_at"] >= due["next_run_date"]
        answer = await other.get(
            f"/threads/{thread['thread_id']}/runs/{run['id']}/join", headers=user.headers
        )
        assert [m["content"] for m in answer.json()["messages"]][-1] == "You said: on time"
    assert len(await _runs_of_chat(database_url, thread["thread_id"])) == 1


# Sessions of other processes waiting for a lock on crons, by what they were asking.
_WAITING = """
SELECT query LIKE '%%now() AS now FROM crons%%' AS claiming FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'
  AND query LIKE '%%FROM crons%%'
"""


async def _both_claiming_at_once(database_url: str) -> None:
    """Make every cron due at the instant two schedulers are both inside their claim.

    The table is locked, so each scheduler's next round blocks in its claim; once both are
    blocked there, every cron is made due and the lock released: the two claims then run side by
    side on the same due crons. (A scheduler caught in its other query when the lock came is not
    claiming; then the lock is let go and taken again.)
    """

    async def both_waiting() -> list[dict[str, Any]]:
        waiting = await sql(database_url, _WAITING)
        return waiting if len(waiting) == 2 else []

    for _ in range(20):
        async with await psycopg.AsyncConnection.connect(database_url) as locker:
            await locker.execute("LOCK TABLE crons IN ACCESS EXCLUSIVE MODE")
            waiting = await _until(both_waiting)
            if all(row["claiming"] for row in waiting):
                await locker.execute("UPDATE crons SET next_run_date = now()")
                await locker.commit()
                return
            await locker.rollback()
    raise AssertionError("the two schedulers were never both claiming")


async def test_two_processes_start_each_due_cron_once(
    database_url: str, sdk: SDKFactory, user: User
) -> None:
    """Two started servers share the database, and their schedulers claim the same 20 due
    crons at the same moment. Each cron starts exactly one run."""
    alice = sdk(user)
    threads = [(await alice.threads.create())["thread_id"] for _ in range(20)]
    for index, thread_id in enumerate(threads):
        await alice.crons.create_for_thread(
            thread_id, "assistant", schedule=YEARLY, input=hi(f"tick {index}")
        )
    env = {"SWITCHBOARD_CRON_POLL_SECONDS": "0.2"}
    with (
        beside_the_tests(database_url, JWT_SECRET, **env),
        beside_the_tests(database_url, JWT_SECRET, **env),
    ):
        await _both_claiming_at_once(database_url)

        async def started() -> bool:
            [row] = await sql(
                database_url,
                "SELECT (SELECT count(*) FROM runs) AS runs,"
                " (SELECT bool_and(next_run_date > now()) FROM crons) AS moved",
            )
            return row["runs"] >= len(threads) and row["moved"]

        await _until(started)
    # Both servers have stopped (each ends the round it is in first): nothing more can start.
    counts = await sql(
        database_url, "SELECT chat_id::text AS chat, count(*) AS n FROM runs GROUP BY chat_id"
    )
    assert {row["chat"]: row["n"] for row in counts} == {thread_id: 1 for thread_id in threads}


async def test_a_worker_starts_due_crons_too(
    database_url: str, client: httpx.AsyncClient, sdk: SDKFactory, user: User, tmp_path: Path
) -> None:
    """``switchboard worker`` runs a scheduler as API processes do: alone with a due stateless
    cron, it starts the run, executes it and keeps its thread."""
    alice = sdk(user)
    cron = await alice.crons.create(
        "assistant", schedule=YEARLY, input=hi("from the worker"), on_run_completed="keep"
    )
    with redis_server(tmp_path) as redis_url:
        env = clean_env(
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            SWITCHBOARD_JWT_SECRET=JWT_SECRET,
            SWITCHBOARD_CRON_POLL_SECONDS="0.2",
        )
        worker = Worker(tmp_path, env)
        try:
            await _make_due(database_url, cron["cron_id"])

            async def ended() -> list[dict[str, Any]]:
                return await sql(
                    database_url,
                    "SELECT * FROM runs WHERE user_id = %s AND status = 'success'",
                    user.id,
                )

            [run] = await _until(ended)
        finally:
            assert worker.stop() == 0
    assert run["worker_id"] == worker.worker_id
    state = await client.get(f"/threads/{run['chat_id']}/state", headers=user.headers)
    assert [m["content"] for m in state.json()["values"]["messages"]] == [
        "from the worker", "You said: from the worker"
    ]  # fmt: skip


async def test_another_users_crons_are_404_and_invisible(
    sdk: SDKFactory, client: httpx.AsyncClient, user: User, other_user: User, database_url: str
) -> None:
    alice, bob = sdk(user), sdk(other_user)
    thread = await alice.threads.create()
    cron = await alice.crons.create_for_thread(
        thread["thread_id"], "assistant", schedule=YEARLY, input=hi("mine"), metadata={"k": 1}
    )
    theirs = await alice.crons.create("assistant", schedule=YEARLY, input=hi("mine too"))
    before = await sql(database_url, "SELECT * FROM crons ORDER BY id")

    assert await bob.crons.search() == []
    assert await bob.crons.search(thread_id=thread["thread_id"], metadata={"k": 1}) == []
    assert await bob.crons.count() == 0
    assert await bob.crons.count(thread_id=thread["thread_id"]) == 0
    nowhere = str(uuid.uuid4())
    for cron_id in (cron["cron_id"], theirs["cron_id"]):
        for method, body in (("GET", None), ("PATCH", {"enabled": False}), ("DELETE", None)):
            stolen = await client.request(
                method, f"/runs/crons/{cron_id}", json=body, headers=other_user.headers
            )
            missing = await client.request(
                method, f"/runs/crons/{nowhere}", json=body, headers=other_user.headers
            )
            assert_error(stolen, 404, "not_found")
            assert stolen.json() == missing.json()
    # A cron on someone else's thread: the thread is not found, as when it does not exist.
    body = {"assistant_id": "assistant", "schedule": YEARLY}
    on_theirs = await client.post(
        f"/threads/{thread['thread_id']}/runs/crons", json=body, headers=other_user.headers
    )
    on_none = await client.post(
        f"/threads/{nowhere}/runs/crons", json=body, headers=other_user.headers
    )
    assert_error(on_theirs, 404, "not_found")
    assert on_theirs.json() == on_none.json()
    assert await sql(database_url, "SELECT * FROM crons ORDER BY id") == before
    assert await alice.crons.count() == 2


VALID = {"assistant_id": "assistant", "schedule": "*/5 * * * *", "input": hi("x")}


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"schedule": "61 * * * *"}, 422, "validation_error"),
        ({"schedule": "* * * *"}, 422, "validation_error"),
        ({"schedule": "@reboot"}, 422, "validation_error"),
        ({"schedule": "0 0 L * *"}, 422, "validation_error"),
        ({"schedule": "0 0 30 2 *"}, 422, "schedule_never_fires"),
        ({"timezone": "Mars/Olympus_Mons"}, 422, "validation_error"),
        ({"end_time": "2020-01-01T00:00:00Z"}, 422, "end_time_passed"),
        ({"end_time": "2999-01-01T00:00:00"}, 422, "validation_error"),  # no offset
        ({"end_time": "2999-02-30T00:00:00Z"}, 422, "validation_error"),
        ({"stream_mode": "sideways"}, 422, "validation_error"),
        ({"assistant_id": "nobody"}, 404, "assistant_not_found"),
        ({"assistant_id": str(uuid.uuid4())}, 404, "assistant_not_found"),
    ],
)
async def test_a_cron_that_cannot_be_is_refused_and_changes_nothing(
    client: httpx.AsyncClient,
    user: User,
    database_url: str,
    change: dict[str, Any],
    status: int,
    code: str,
) -> None:
    thread = (await client.post("/threads", json={}, headers=user.headers)).json()
    existing = await client.post("/runs/crons", json=VALID, headers=user.headers)
    assert existing.status_code == 200, existing.text
    before = await sql(database_url, "SELECT * FROM crons")
    body = {**VALID, **change}
    for path in ("/runs/crons", f"/threads/{thread['thread_id']}/runs/crons"):
        refused = await client.post(path, json=body, headers=user.headers)
        problem = assert_error(refused, status, code)
        if code == "validation_error":
            assert problem["detail"][0]["loc"][:2] == ["body", next(iter(change))]
    if "assistant_id" not in change:  # what a PATCH may change
        patched = await client.patch(
            f"/runs/crons/{existing.json()['cron_id']}", json=change, headers=user.headers
        )
        assert_error(patched, status, code)
    assert await sql(database_url, "SELECT * FROM crons") == before


async def test_a_patch_that_changes_nothing_is_no_write(
    client: httpx.AsyncClient, user: User
) -> None:
    created = (await client.post("/runs/crons", json=VALID, headers=user.headers)).json()
    for body in ({}, {"schedule": VALID["schedule"]}, {"input": VALID["input"]}):
        same = await client.patch(
            f"/runs/crons/{created['cron_id']}", json=body, headers=user.headers
        )
        assert same.status_code == 200, same.text
        assert same.json() == created


async def test_deleting_a_thread_or_an_account_deletes_its_crons(
    sdk: SDKFactory, client: httpx.AsyncClient, user: User, other_user: User, database_url: str
) -> None:
    alice, bob = sdk(user), sdk(other_user)
    thread = await alice.threads.create()
    await alice.crons.create_for_thread(thread["thread_id"], "assistant", schedule=YEARLY)
    stateless = await alice.crons.create("assistant", schedule=YEARLY)
    bobs = await bob.crons.create("assistant", schedule=YEARLY)

    await alice.threads.delete(thread["thread_id"])
    assert [c["cron_id"] for c in await alice.crons.search()] == [stateless["cron_id"]]

    deleted = await client.request(
        "DELETE", "/users/me", json={"password": PASSWORD}, headers=user.headers
    )
    assert deleted.status_code == 204, deleted.text
    left = await sql(database_url, "SELECT id::text FROM crons")
    assert left == [{"id": bobs["cron_id"]}]


async def test_the_cron_routes_are_not_runs(client: httpx.AsyncClient, user: User) -> None:
    # `/runs/{run_id}` matches these paths by shape; they are routes of their own.
    for path, allowed in (
        ("/runs/crons", "POST"),
        ("/runs/crons/search", "POST"),
        ("/runs/crons/count", "POST"),
        (f"/runs/crons/{uuid.uuid4()}", "DELETE, GET, PATCH"),
        (f"/threads/{uuid.uuid4()}/runs/crons", "POST"),
    ):
        response = await client.request("OPTIONS", path, headers=user.headers)
        assert_error(response, 405, "method_not_allowed")
        assert response.headers["allow"] == allowed, path
    created = await client.post("/runs/crons", json=VALID, headers=user.headers)
    assert created.status_code == 200, created.text


@hypothesis.settings(max_examples=300, derandomize=True, database=None, deadline=None)
@hypothesis.given(st.from_regex(SCHEDULE_PATTERN, fullmatch=True))
def test_every_schedule_the_pattern_admits_is_one_croniter_reads(schedule: str) -> None:
    # The schema's pattern is the rule: what it admits, the validator takes and the ticks are
    # computed from (or the schedule never comes, which a write refuses with its own code).
    assert croniter.is_valid(schedule), schedule
    start = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    try:
        assert croniter(schedule, start).get_next(datetime) > start
    except CroniterBadDateError:
        pass
