"""Thread lifecycle: a ttl on thread creation and update through the official Python client
(``langgraph-sdk``), ``POST /threads/prune``, the server's default retention, and the sweep of
expired threads (deleted with their runs and checkpoints, or cut to their latest checkpoint
with the same state), checked in Postgres.

The session app sweeps nothing by itself (``thread_sweep_seconds=0`` in the tests' settings): a
test makes a thread expire in SQL and drives one sweep with ``state.thread_sweeper.sweep()``.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from langgraph_sdk.errors import NotFoundError

from api.app import create_app
from api.schemas.protocol_out import ThreadWithTtl
from api.services.lifecycle import Swept
from storage.lifecycle import SWEEP_LOCK_KEY
from tests.conftest import JWT_SECRET, SDKFactory, User, assert_error, make_settings, running, sql
from tests.protocol import hi
from tests.servers import Worker, clean_env, redis_server


async def _rows(database_url: str, thread_id: str) -> dict[str, int]:
    """How many rows the thread has in each table that holds it."""
    row = (
        await sql(
            database_url,
            """SELECT (SELECT count(*) FROM chats WHERE id = %(id)s::uuid) AS chats,
                      (SELECT count(*) FROM runs WHERE chat_id = %(id)s::uuid) AS runs,
                      (SELECT count(*) FROM checkpoints WHERE thread_id = %(id)s) AS checkpoints,
                      (SELECT count(*) FROM checkpoint_blobs WHERE thread_id = %(id)s) AS blobs,
                      (SELECT count(*) FROM checkpoint_writes WHERE thread_id = %(id)s)
                          AS writes""".replace("%(id)s", "%s"),
            *([thread_id] * 5),
        )
    )[0]
    return {key: int(value) for key, value in row.items()}


async def _expire(database_url: str, thread_id: str) -> None:
    # expires_at alone: the trigger recomputes it only when updated_at or the ttl is written.
    await sql(
        database_url,
        "UPDATE chats SET expires_at = now() - interval '1 second' WHERE id = %s",
        thread_id,
    )


def _sweep(app: FastAPI) -> Any:
    return app.state.switchboard.thread_sweeper.sweep()


async def test_ttl_on_create_and_update_through_the_sdk(
    sdk: SDKFactory, user: User, database_url: str
) -> None:
    client = sdk(user)
    plain = await client.threads.create()
    assert (await client.threads.get(plain["thread_id"], include=["ttl"]))["ttl"] is None
    assert "ttl" not in await client.threads.get(plain["thread_id"])

    minutes = await client.threads.create(ttl=30)
    read = await client.threads.get(minutes["thread_id"], include=["ttl"])
    stored = (
        await sql(
            database_url,
            "SELECT updated_at, expires_at FROM chats WHERE id = %s",
            minutes["thread_id"],
        )
    )[0]
    assert stored["expires_at"] == stored["updated_at"] + timedelta(minutes=30)
    assert read["ttl"]["strategy"] == "delete"
    assert read["ttl"]["ttl_minutes"] == 30
    assert read["ttl"]["expires_at"] == stored["expires_at"].isoformat()

    keep = await client.threads.create(ttl={"ttl": 2.5, "strategy": "keep_latest"})
    ttl = (await client.threads.get(keep["thread_id"], include=["ttl"]))["ttl"]
    assert (ttl["strategy"], ttl["ttl_minutes"]) == ("keep_latest", 2.5)

    await client.threads.update(plain["thread_id"], metadata={"a": 1}, ttl=10)
    updated = await client.threads.get(plain["thread_id"], include=["ttl"])
    assert updated["metadata"] == {"a": 1}
    assert (updated["ttl"]["strategy"], updated["ttl"]["ttl_minutes"]) == ("delete", 10)
    # A run that ends on the thread starts its time again: updated_at moves, and expires_at
    # with it.
    before = (
        await sql(database_url, "SELECT expires_at FROM chats WHERE id = %s", plain["thread_id"])
    )[0]["expires_at"]
    await client.runs.wait(plain["thread_id"], "assistant", input=hi("x"))
    after = (
        await sql(
            database_url,
            "SELECT updated_at, expires_at FROM chats WHERE id = %s",
            plain["thread_id"],
        )
    )[0]
    assert after["expires_at"] == after["updated_at"] + timedelta(minutes=10)
    assert after["expires_at"] > before


async def test_the_sweep_deletes_an_expired_thread_with_its_runs_and_checkpoints(
    app: FastAPI, sdk: SDKFactory, user: User, database_url: str
) -> None:
    client = sdk(user)
    doomed = (await client.threads.create(ttl=60))["thread_id"]
    fresh = (await client.threads.create(ttl=60))["thread_id"]
    forever = (await client.threads.create())["thread_id"]
    for thread_id in (doomed, fresh, forever):
        await client.runs.wait(thread_id, "assistant", input=hi("one"))
        await client.runs.wait(thread_id, "assistant", input=hi("two"))
    before = {t: await _rows(database_url, t) for t in (doomed, fresh, forever)}
    assert before[doomed]["runs"] == 2
    assert before[doomed]["checkpoints"] > 2
    assert before[doomed]["writes"] > 0

    assert await _sweep(app) == Swept(0, 0)  # nothing has expired yet
    await _expire(database_url, doomed)
    assert await _sweep(app) == Swept(deleted=1, kept_latest=0)

    assert await _rows(database_url, doomed) == {
        "chats": 0, "runs": 0, "checkpoints": 0, "blobs": 0, "writes": 0
    }  # fmt: skip
    with pytest.raises(NotFoundError):
        await client.threads.get(doomed)
    # The others are untouched, row for row.
    assert await _rows(database_url, fresh) == before[fresh]
    assert await _rows(database_url, forever) == before[forever]
    assert await _sweep(app) == Swept(0, 0)


async def test_keep_latest_leaves_one_checkpoint_and_the_same_state(
    app: FastAPI, sdk: SDKFactory, user: User, database_url: str
) -> None:
    client = sdk(user)
    thread_id = (await client.threads.create(ttl={"ttl": 60, "strategy": "keep_latest"}))[
        "thread_id"
    ]
    for text in ("one", "two", "three"):
        await client.runs.wait(thread_id, "assistant", input=hi(text))
    state = await client.threads.get_state(thread_id)
    assert len(state["values"]["messages"]) == 6
    history = await client.threads.get_history(thread_id, limit=100)
    before = await _rows(database_url, thread_id)
    assert len(history) == before["checkpoints"] > 1

    await _expire(database_url, thread_id)
    assert await _sweep(app) == Swept(deleted=0, kept_latest=1)

    after = await _rows(database_url, thread_id)
    assert (after["chats"], after["runs"], after["checkpoints"]) == (1, 3, 1)
    assert after["blobs"] < before["blobs"]
    kept = await client.threads.get_state(thread_id)
    assert kept["values"] == state["values"]
    assert kept["checkpoint"] == state["checkpoint"]
    assert kept["next"] == state["next"]
    assert kept["parent_checkpoint"] is None
    assert [h["checkpoint"] for h in await client.threads.get_history(thread_id)] == [
        state["checkpoint"]
    ]
    # Pruned once: not again until it changes.
    assert await _sweep(app) == Swept(0, 0)

    # The thread goes on from its one checkpoint.
    await client.runs.wait(thread_id, "assistant", input=hi("four"))
    grown = await client.threads.get_state(thread_id)
    contents = [m["content"] for m in grown["values"]["messages"]]
    assert contents == [
        "one", "You said: one", "two", "You said: two", "three", "You said: three",
        "four", "You said: four",
    ]  # fmt: skip
    messages = await client.threads.get_state(thread_id)
    assert messages["values"]["messages"][:6] == state["values"]["messages"]


async def test_the_server_default_retention_applies_to_chats_of_both_apis(
    database_url: str,
) -> None:
    settings = make_settings(
        database_url, thread_ttl_minutes=60, thread_ttl_strategy="delete", thread_sweep_seconds=0
    )
    app = create_app(settings)
    async with running(app) as client:
        email = f"u-{uuid.uuid4().hex[:8]}@example.org"
        registered = await client.post(
            "/auth/register", json={"name": "U", "email": email, "password": "pw-123456789"}
        )
        headers = {"Authorization": f"Bearer {registered.json()['access_token']}"}
        agents = (await client.get("/agents/", headers=headers)).json()["items"]
        chat = (
            await client.post("/chats/", json={"agent_id": agents[0]["id"]}, headers=headers)
        ).json()
        sent = await client.post(
            f"/chats/{chat['id']}/messages", json={"content": "hi"}, headers=headers
        )
        assert sent.status_code == 201, sent.text
        old_thread = (await client.post("/threads", json={}, headers=headers)).json()
        young_thread = (await client.post("/threads", json={}, headers=headers)).json()
        own_ttl = (
            await client.post("/threads", json={"ttl": {"ttl": 600}}, headers=headers)
        ).json()

        shown = (await client.get(f"/threads/{chat['id']}?include=ttl", headers=headers)).json()
        assert (shown["ttl"]["strategy"], shown["ttl"]["ttl_minutes"]) == ("delete", 60)

        # An hour and a second since they last changed (a thread's own ttl is not the default).
        for thread_id in (chat["id"], old_thread["thread_id"], own_ttl["thread_id"]):
            await sql(
                database_url,
                "UPDATE chats SET updated_at = now() - interval '61 minutes' WHERE id = %s",
                thread_id,
            )
        swept = await app.state.switchboard.thread_sweeper.sweep()
        assert swept == Swept(deleted=2, kept_latest=0)
        assert (await client.get(f"/chats/{chat['id']}", headers=headers)).status_code == 404
        assert (await _rows(database_url, chat["id"]))["checkpoints"] == 0
        for kept in (young_thread["thread_id"], own_ttl["thread_id"]):
            assert (await client.get(f"/threads/{kept}", headers=headers)).status_code == 200


async def test_prune_through_the_sdk(
    sdk: SDKFactory, user: User, other_user: User, database_url: str
) -> None:
    client = sdk(user)
    first, second, third = [(await client.threads.create())["thread_id"] for _ in range(3)]
    for thread_id in (first, second, third):
        await client.runs.wait(thread_id, "assistant", input=hi("a"))
        await client.runs.wait(thread_id, "assistant", input=hi("b"))
    theirs = (await sdk(other_user).threads.create())["thread_id"]
    await sdk(other_user).runs.wait(theirs, "assistant", input=hi("mine"))
    theirs_before = await _rows(database_url, theirs)

    # Someone else's thread among the ids: a 404, and nothing is pruned.
    with pytest.raises(NotFoundError):
        await client.threads.prune([first, theirs])
    with pytest.raises(NotFoundError):
        await client.threads.prune([str(uuid.uuid4())])
    assert (await _rows(database_url, first))["chats"] == 1
    assert await _rows(database_url, theirs) == theirs_before

    state = await client.threads.get_state(third)
    assert await client.threads.prune([third], strategy="keep_latest") == {"pruned_count": 1}
    assert (await _rows(database_url, third))["checkpoints"] == 1
    assert (await client.threads.get_state(third))["values"] == state["values"]

    # Named twice counts once.
    assert await client.threads.prune([first, second, first]) == {"pruned_count": 2}
    for thread_id in (first, second):
        assert await _rows(database_url, thread_id) == {
            "chats": 0, "runs": 0, "checkpoints": 0, "blobs": 0, "writes": 0
        }  # fmt: skip
    assert await client.threads.prune([]) == {"pruned_count": 0}
    assert await _rows(database_url, theirs) == theirs_before
    assert await sdk(other_user).threads.search() != []


@pytest.mark.parametrize(
    "body",
    [
        {"ttl": {"ttl": -1}},
        {"ttl": {"ttl": 5, "strategy": "archive"}},
        {"ttl": {"ttl": "5"}},
        {"ttl": {"ttl": True}},
        {"ttl": {"strategy": "delete"}},
        {"ttl": {"ttl": 525_600 * 100 + 1}},
        {"ttl": 5},
    ],
)
async def test_a_bad_ttl_is_a_422_and_creates_nothing(
    client: httpx.AsyncClient, user: User, database_url: str, body: dict[str, Any]
) -> None:
    response = await client.post("/threads", json=body, headers=user.headers)
    assert_error(response, 422, "validation_error")
    assert await sql(database_url, "SELECT id FROM chats") == []


async def test_bad_prune_and_patch_bodies_are_422_and_change_nothing(
    client: httpx.AsyncClient, user: User, database_url: str
) -> None:
    thread = (await client.post("/threads", json={}, headers=user.headers)).json()
    thread_id = thread["thread_id"]
    for body in [
        {"thread_ids": [thread_id], "strategy": "everything"},
        {"thread_ids": [str(uuid.uuid4()) for _ in range(1001)]},
        {"thread_ids": ["not-a-uuid"]},
        {"thread_ids": thread_id},
        {},
    ]:
        response = await client.post("/threads/prune", json=body, headers=user.headers)
        assert_error(response, 422, "validation_error")
    patched = await client.patch(
        f"/threads/{thread_id}", json={"ttl": {"ttl": -5}}, headers=user.headers
    )
    assert_error(patched, 422, "validation_error")
    rows = await sql(database_url, "SELECT ttl_minutes, expires_at FROM chats")
    assert rows == [{"ttl_minutes": None, "expires_at": None}]
    refused = await client.get(f"/threads/{thread_id}?include=t%00tl", headers=user.headers)
    assert_error(refused, 422, "validation_error")


# 2,000 tokens 10 ms apart: a run that goes on until the test stops it.
SLOW_MODEL = "fake:tokens-2000@10"


async def _until_checkpointed(database_url: str, thread_id: str) -> None:
    for _ in range(500):
        if (await _rows(database_url, thread_id))["checkpoints"] > 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the run never checkpointed")


async def test_a_busy_thread_is_swept_only_once_idle(
    app: FastAPI,
    sdk: SDKFactory,
    client: httpx.AsyncClient,
    user: User,
    admin: User,
    database_url: str,
) -> None:
    made = await client.post(
        "/agents/", json={"name": "Slow", "model_name": SLOW_MODEL}, headers=admin.headers
    )
    assert made.status_code == 201, made.text
    slow = made.json()["id"]
    sdk_client = sdk(user)
    busy = (await sdk_client.threads.create(ttl=60))["thread_id"]
    run = await sdk_client.runs.create(busy, slow, input=hi("go"))
    await _until_checkpointed(database_url, busy)
    await _expire(database_url, busy)

    assert await _sweep(app) == Swept(0, 0)
    assert await sdk_client.threads.prune([busy], strategy="keep_latest") == {"pruned_count": 0}
    assert (await _rows(database_url, busy))["chats"] == 1
    assert (await sdk_client.runs.get(busy, run["run_id"]))["status"] == "running"

    await sdk_client.runs.cancel(busy, run["run_id"], wait=True)
    # The run's end is a change of the thread: its time starts again.
    expiry = await sql(database_url, "SELECT expires_at > now() AS later FROM chats")
    assert expiry == [{"later": True}]
    assert await _sweep(app) == Swept(0, 0)
    await _expire(database_url, busy)
    assert await _sweep(app) == Swept(deleted=1, kept_latest=0)
    assert (await _rows(database_url, busy))["chats"] == 0


async def test_prune_delete_stops_a_running_run_first(
    sdk: SDKFactory, client: httpx.AsyncClient, user: User, admin: User, database_url: str
) -> None:
    made = await client.post(
        "/agents/", json={"name": "Slow", "model_name": SLOW_MODEL}, headers=admin.headers
    )
    sdk_client = sdk(user)
    thread_id = (await sdk_client.threads.create())["thread_id"]
    await sdk_client.runs.create(thread_id, made.json()["id"], input=hi("go"))
    await _until_checkpointed(database_url, thread_id)
    assert await sdk_client.threads.prune([thread_id]) == {"pruned_count": 1}
    assert await _rows(database_url, thread_id) == {
        "chats": 0, "runs": 0, "checkpoints": 0, "blobs": 0, "writes": 0
    }  # fmt: skip


async def test_a_native_chat_with_a_ttl_of_its_own(
    app: FastAPI, client: httpx.AsyncClient, user: User, database_url: str
) -> None:
    agents = (await client.get("/agents/", headers=user.headers)).json()["items"]
    body = {"agent_id": agents[0]["id"], "ttl": {"ttl": 5, "strategy": "keep_latest"}}
    made = await client.post("/chats/", json=body, headers=user.headers)
    assert made.status_code == 201, made.text
    chat = made.json()
    for text in ("one", "two"):
        sent = await client.post(
            f"/chats/{chat['id']}/messages", json={"content": text}, headers=user.headers
        )
        assert sent.status_code == 201, sent.text
    shown = await client.get(f"/threads/{chat['id']}?include=ttl", headers=user.headers)
    thread = ThreadWithTtl.model_validate(shown.json())
    assert thread.ttl is not None
    assert (thread.ttl.strategy, thread.ttl.ttl_minutes) == ("keep_latest", 5)
    messages = (await client.get(f"/chats/{chat['id']}/messages", headers=user.headers)).json()
    assert [m["content"] for m in messages["items"]] == [
        "one", "You said: one", "two", "You said: two"
    ]  # fmt: skip

    await _expire(database_url, chat["id"])
    assert await _sweep(app) == Swept(deleted=0, kept_latest=1)
    assert (await _rows(database_url, chat["id"]))["checkpoints"] == 1
    again = (await client.get(f"/chats/{chat['id']}/messages", headers=user.headers)).json()
    assert again == messages
    history = (await client.get(f"/chats/{chat['id']}/history", headers=user.headers)).json()
    assert len(history["items"]) == 1

    for bad in ({"ttl": -1}, {"ttl": 1, "strategy": "later"}, {"ttl": 1, "extra": True}):
        refused = await client.post(
            "/chats/", json={"agent_id": agents[0]["id"], "ttl": bad}, headers=user.headers
        )
        assert_error(refused, 422, "validation_error")
    assert len(await sql(database_url, "SELECT id FROM chats")) == 1


async def test_keep_latest_keeps_a_waiting_interrupt_answerable(
    sdk: SDKFactory, client: httpx.AsyncClient, user: User, admin: User, database_url: str
) -> None:
    body = {"name": "Asker", "model_name": "fake:tools", "tools_enabled": ["ask_human"]}
    made = await client.post("/agents/", json=body, headers=admin.headers)
    assert made.status_code == 201, made.text
    asker = made.json()["id"]
    sdk_client = sdk(user)
    thread_id = (await sdk_client.threads.create())["thread_id"]
    await sdk_client.runs.wait(thread_id, asker, input=hi("First?"))
    await sdk_client.runs.wait(thread_id, asker, command={"resume": "yes"})
    await sdk_client.runs.wait(thread_id, asker, input=hi("Ship it?"))
    paused = await sdk_client.threads.get(thread_id)
    state = await sdk_client.threads.get_state(thread_id)
    assert paused["status"] == "interrupted"

    assert await sdk_client.threads.prune([thread_id], strategy="keep_latest") == {
        "pruned_count": 1
    }
    assert (await _rows(database_url, thread_id))["checkpoints"] == 1
    assert await sdk_client.threads.get(thread_id) == paused
    kept = await sdk_client.threads.get_state(thread_id)
    assert (kept["values"], kept["next"], kept["tasks"], kept["interrupts"]) == (
        state["values"], state["next"], state["tasks"], state["interrupts"]
    )  # fmt: skip
    await sdk_client.runs.wait(thread_id, asker, command={"resume": "ship"})
    resumed = await sdk_client.threads.get(thread_id)
    assert (resumed["status"], resumed["interrupts"]) == ("idle", {})
    assert len(resumed["values"]["messages"]) == len(state["values"]["messages"]) + 2


async def test_one_process_sweeps_at_a_time(
    app: FastAPI, sdk: SDKFactory, user: User, database_url: str, settings: Any
) -> None:
    client = sdk(user)
    threads = [(await client.threads.create(ttl=60))["thread_id"] for _ in range(30)]
    await sql(database_url, "UPDATE chats SET expires_at = now() - interval '1 second'")

    # Another process holding the sweep's lock: this one sweeps nothing.
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as other:
        await other.execute("SELECT pg_advisory_lock(%s)", (SWEEP_LOCK_KEY,))
        assert await _sweep(app) == Swept(0, 0)
        await other.execute("SELECT pg_advisory_unlock(%s)", (SWEEP_LOCK_KEY,))
    assert len(await sql(database_url, "SELECT id FROM chats")) == 30

    # Two processes sweeping at once: each thread is deleted once, by one of them.
    second = create_app(settings)
    async with running(second):
        swept = await asyncio.gather(_sweep(app), second.state.switchboard.thread_sweeper.sweep())
    assert sum(s.deleted for s in swept) == 30
    assert sum(s.kept_latest for s in swept) == 0
    assert await sql(database_url, "SELECT id FROM chats WHERE id = ANY(%s::uuid[])", threads) == []


async def test_a_thread_that_cannot_be_swept_keeps_no_other_from_it(
    app: FastAPI, sdk: SDKFactory, user: User, database_url: str
) -> None:
    client = sdk(user)
    broken = (await client.threads.create(ttl={"ttl": 60, "strategy": "keep_latest"}))["thread_id"]
    await client.runs.wait(broken, "assistant", input=hi("one"))
    await client.runs.wait(broken, "assistant", input=hi("two"))
    fine = (await client.threads.create(ttl=60))["thread_id"]
    # Its stored writes no longer decode (and nothing decoded is kept warm in this process).
    await sql(
        database_url,
        "UPDATE checkpoint_writes SET blob = '\\x00ff'::bytea WHERE thread_id = %s",
        broken,
    )
    app.state.switchboard.runs.threads.checkpointer.forget_unused(0)
    await sql(
        database_url,
        "UPDATE chats SET expires_at = now() - CASE WHEN id = %s THEN interval '2 seconds'"
        " ELSE interval '1 second' END",
        broken,
    )
    before = await _rows(database_url, broken)

    assert await _sweep(app) == Swept(deleted=1, kept_latest=0)
    assert (await _rows(database_url, fine))["chats"] == 0
    assert await _rows(database_url, broken) == before
    # Tried again next time, and still not pruned half-way.
    assert await _sweep(app) == Swept(0, 0)
    assert await _rows(database_url, broken) == before


async def test_prune_is_a_route_of_its_own_not_a_thread_id(
    client: httpx.AsyncClient, user: User
) -> None:
    for method in ("GET", "PATCH", "DELETE", "OPTIONS"):
        response = await client.request(method, "/threads/prune", headers=user.headers)
        assert_error(response, 405, "method_not_allowed")
        assert response.headers["allow"] == "POST"


async def test_a_process_sweeps_by_itself_every_interval(database_url: str) -> None:
    app = create_app(make_settings(database_url, thread_sweep_seconds=0.05))
    async with running(app) as client:
        email = f"u-{uuid.uuid4().hex[:8]}@example.org"
        registered = await client.post(
            "/auth/register", json={"name": "U", "email": email, "password": "pw-123456789"}
        )
        headers = {"Authorization": f"Bearer {registered.json()['access_token']}"}
        thread = (await client.post("/threads", json={"ttl": {"ttl": 0}}, headers=headers)).json()
        for _ in range(1000):
            if not await sql(database_url, "SELECT id FROM chats"):
                break
            await asyncio.sleep(0.01)
        gone = await client.get(f"/threads/{thread['thread_id']}", headers=headers)
        assert_error(gone, 404, "not_found")


async def test_a_worker_sweeps_too(
    sdk: SDKFactory, user: User, database_url: str, tmp_path: Path
) -> None:
    client = sdk(user)
    thread_id = (await client.threads.create(ttl=0))["thread_id"]
    await client.runs.wait(thread_id, "assistant", input=hi("x"))
    await _expire(database_url, thread_id)
    with redis_server(tmp_path) as redis_url:
        env = clean_env(
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            SWITCHBOARD_JWT_SECRET=JWT_SECRET,
            SWITCHBOARD_THREAD_SWEEP_SECONDS="0.05",
        )
        worker = Worker(tmp_path, env)
        try:
            for _ in range(1000):
                if (await _rows(database_url, thread_id))["chats"] == 0:
                    break
                await asyncio.sleep(0.01)
        finally:
            assert worker.stop() == 0
    assert await _rows(database_url, thread_id) == {
        "chats": 0, "runs": 0, "checkpoints": 0, "blobs": 0, "writes": 0
    }  # fmt: skip
    assert "1 deleted, 0 pruned" in worker.log.read_text()
