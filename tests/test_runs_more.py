"""More of the Agent Protocol's runs (issue 16 item 4), through the official Python client
against a started server: stateless background runs one at a time (``POST /runs``) and in a
batch, bulk cancel, the ``tasks`` and ``checkpoints`` stream modes, a thread's stream that
follows its runs one after the other, the pagination headers of searches, and the CORS headers
a browser client needs. Another user's threads and runs are never touched nor revealed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from langgraph.types import CheckpointPayload, TaskPayload, TaskResultPayload

from api.app import create_app
from api.schemas.protocol_out import Run
from tests.conftest import User, assert_error, make_settings
from tests.protocol import TOKENS, Live, hi, http, live, parts

__all__ = ["http", "live"]

Part = tuple[str, Any, str]


async def _until(
    stream: AsyncIterator[Any], done: Callable[[list[Part]], bool], seconds: float = 30
) -> list[Part]:
    """The stream's parts as ``(event, data, id)`` until ``done`` says so."""
    got: list[Part] = []

    async def read() -> None:
        async for part in stream:
            got.append((part.event, part.data, part.id))
            if done(got):
                return

    await asyncio.wait_for(read(), seconds)
    return got


def _run_dones(count: int) -> Callable[[list[Part]], bool]:
    """Done once ``count`` runs have sent their ``run_done``."""
    return lambda got: sum(data == {"status": "run_done", "run_id": data.get("run_id")}
                           for _, data, _ in got if isinstance(data, dict)) == count  # fmt: skip


async def _status(client: Any, thread_id: str, run_id: str, wanted: str) -> None:
    """Wait until the run has ``wanted`` status."""
    for _ in range(200):
        if (await client.runs.get(thread_id, run_id))["status"] == wanted:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} never became {wanted}")


# --- POST /runs and POST /runs/batch ------------------------------------------------------------


async def test_a_batch_starts_stateless_runs_in_the_background(
    live: Live, http: httpx.AsyncClient
) -> None:
    headers = live.user()
    client = live.client(headers)
    runs = await client.runs.create_batch(
        [
            {"assistant_id": "t5", "input": hi("first"), "on_completion": "keep"},
            {"assistant_id": "t5", "input": hi("second"), "on_completion": "keep"},
            {"assistant_id": live.agents["t5"]["id"], "input": hi("gone")},
        ]
    )
    assert [Run.model_validate(run).kwargs.input for run in runs] == [
        hi("first"), hi("second"), hi("gone")
    ]  # fmt: skip
    assert len({run["thread_id"] for run in runs}) == 3
    assert {run["assistant_id"] for run in runs} == {live.agents["t5"]["id"]}
    for run, text in zip(runs[:2], ("first", "second"), strict=True):
        values = await client.runs.join(run["thread_id"], run["run_id"])
        assert [m["content"] for m in values["messages"]] == [text, TOKENS]
    # The third thread goes once its run ended (on_completion "delete", the default).
    gone = runs[2]["thread_id"]
    for _ in range(200):
        if (await http.get(f"/threads/{gone}", headers=headers)).status_code == 404:
            break
        await asyncio.sleep(0.05)
    kept = sorted(t["thread_id"] for t in await client.threads.search(limit=10))
    assert kept == sorted(run["thread_id"] for run in runs[:2])

    # One at a time: POST /runs, with where to find it.
    response = await http.post(
        "/runs", json={"assistant_id": "t5", "input": hi(), "on_completion": "keep"},
        headers=headers,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    one = Run.model_validate(response.json())
    assert response.headers["Content-Location"] == f"/runs/{one.run_id}"
    values = await client.runs.join(str(one.thread_id), str(one.run_id))
    assert [m["content"] for m in values["messages"]] == ["hi", TOKENS]


async def test_a_batch_with_one_bad_run_starts_none(live: Live, http: httpx.AsyncClient) -> None:
    headers = live.user()
    good = {"assistant_id": "t5", "input": hi(), "on_completion": "keep"}
    unreadable = {"assistant_id": "t5", "input": {"messages": [1]}}
    refused = await http.post("/runs/batch", json=[good, good, unreadable], headers=headers)
    problem = assert_error(refused, 422, "validation_error")["detail"][0]
    assert problem["loc"] == ["body", 2, "input", "messages", 0]
    nobody = await http.post(
        "/runs/batch", json=[good, {"assistant_id": "nope", "input": hi()}], headers=headers
    )
    assert_error(nobody, 404, "assistant_not_found")
    for body in ([], [good] * 101, good):
        assert_error(await http.post("/runs/batch", json=body, headers=headers), 422)
    assert (await http.post("/threads/count", json={}, headers=headers)).json() == 0
    assert (await http.get("/chats/", headers=headers)).json()["total"] == 0


# --- POST /runs/cancel --------------------------------------------------------------------------


async def test_cancel_many_by_thread_and_run_ids(live: Live) -> None:
    headers = live.user()
    client = live.client(headers)
    thread_id = live.thread(headers, "slow")
    running = await client.runs.create(thread_id, "slow", input=hi("a"))
    queued = await client.runs.create(thread_id, "slow", input=hi("b"))
    await _status(client, thread_id, running["run_id"], "running")
    assert (await client.runs.get(thread_id, queued["run_id"]))["status"] == "pending"

    await client.runs.cancel_many(
        thread_id=thread_id, run_ids=[running["run_id"], queued["run_id"]]
    )
    statuses = [r["status"] for r in await client.runs.list(thread_id)]
    assert statuses == ["interrupted", "interrupted"]
    ended = await parts(client.runs.join_stream(thread_id, running["run_id"]))
    assert ended[-1] == ("end", {"status": "interrupted", "usage": {}})

    # Nothing left to cancel: the official server's 404.
    with pytest.raises(httpx.HTTPStatusError) as none_active:
        await client.runs.cancel_many(thread_id=thread_id, run_ids=[running["run_id"]])
    assert none_active.value.response.status_code == 404
    assert none_active.value.response.json()["detail"].startswith("No matching runs to cancel.")
    with pytest.raises(httpx.HTTPStatusError) as unknown:
        await client.runs.cancel_many(thread_id=thread_id, run_ids=[str(uuid.uuid4())])
    assert unknown.value.response.json() == {
        "detail": "No runs found to cancel.", "code": "not_found"
    }  # fmt: skip


async def test_cancel_many_by_status(live: Live, http: httpx.AsyncClient) -> None:
    headers = live.user()
    client = live.client(headers)
    threads = [live.thread(headers, "slow") for _ in range(2)]
    running = [await client.runs.create(t, "slow", input=hi()) for t in threads]
    queued = await client.runs.create(threads[0], "slow", input=hi("later"))
    for thread_id, run in zip(threads, running, strict=True):
        await _status(client, thread_id, run["run_id"], "running")

    await client.runs.cancel_many(status="pending")
    assert (await client.runs.get(threads[0], queued["run_id"]))["status"] == "interrupted"
    for thread_id, run in zip(threads, running, strict=True):
        assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "running"

    await client.runs.cancel_many(status="running", action="rollback")
    for thread_id, run in zip(threads, running, strict=True):
        assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "interrupted"
        # Rolled back: the thread holds nothing of the run, not even its input.
        assert (await client.threads.get_state(thread_id))["values"] == {}

    refused = await http.post("/runs/cancel", json={"status": "all"}, headers=headers)
    assert refused.status_code == 404
    assert refused.json() == {"detail": "No runs found to cancel.", "code": "not_found"}
    # One form or the other, never both, never neither, never null.
    for body in (
        {"status": "all", "thread_id": threads[0], "run_ids": []},
        {"thread_id": threads[0]},
        {},
        {"status": None},
        {"status": "done"},
    ):
        response = await http.post("/runs/cancel", json=body, headers=headers)
        assert_error(response, 422, "validation_error")


async def test_cancel_many_leaves_other_users_runs_alone(
    live: Live, http: httpx.AsyncClient
) -> None:
    owner, stranger = live.user(), live.user()
    theirs = live.client(owner)
    thread_id = live.thread(owner, "slow")
    run = await theirs.runs.create(thread_id, "slow", input=hi())
    await _status(theirs, thread_id, run["run_id"], "running")
    mine = live.client(stranger)
    own_thread = live.thread(stranger, "slow")
    own_run = await mine.runs.create(own_thread, "slow", input=hi())
    await _status(mine, own_thread, own_run["run_id"], "running")

    # Their thread, or their run named in my thread: as if neither existed.
    nothing = {"thread_id": str(uuid.uuid4()), "run_ids": [str(uuid.uuid4())]}
    missing = await http.post("/runs/cancel", json=nothing, headers=stranger)
    for body in (
        {"thread_id": thread_id, "run_ids": [run["run_id"]]},
        {"thread_id": own_thread, "run_ids": [run["run_id"]]},
    ):
        response = await http.post("/runs/cancel", json=body, headers=stranger)
        assert_error(response, 404, "not_found")
        assert response.json() == missing.json()
    # Mixed with mine, theirs is left out; by status, only mine are stopped.
    await mine.runs.cancel_many(thread_id=own_thread, run_ids=[own_run["run_id"], run["run_id"]])
    assert (await mine.runs.get(own_thread, own_run["run_id"]))["status"] == "interrupted"
    assert (await theirs.runs.get(thread_id, run["run_id"]))["status"] == "running"
    second = await mine.runs.create(own_thread, "slow", input=hi())
    await _status(mine, own_thread, second["run_id"], "running")
    await mine.runs.cancel_many(status="all")
    assert (await mine.runs.get(own_thread, second["run_id"]))["status"] == "interrupted"
    assert (await theirs.runs.get(thread_id, run["run_id"]))["status"] == "running"
    await theirs.runs.cancel(thread_id, run["run_id"], wait=True)


# --- stream modes tasks and checkpoints ---------------------------------------------------------


async def test_tasks_mode_sends_langgraphs_task_payloads(live: Live) -> None:
    headers = live.user()
    client = live.client(headers)
    thread_id = live.thread(headers, "t5")
    got = await parts(
        client.runs.stream(thread_id, "t5", input=hi(), stream_mode=["tasks", "debug"])
    )
    assert [event for event, _ in got] == [
        "metadata", "debug", "debug", "tasks", "debug", "tasks", "debug", "debug", "end"
    ]  # fmt: skip
    started, result = [data for event, data in got if event == "tasks"]
    # LangGraph's own payloads (langgraph.types), as the official server forwards them.
    assert set(started) == set(TaskPayload.__annotations__)  # its metadata included
    assert started["metadata"] == {
        "ls_integration": "langchain_create_agent", "lc_agent_name": "t5",
        "run_id": got[0][1]["run_id"], "assistant_id": live.agents["t5"]["id"],
        "graph_id": "t5", "run_attempt": 1,
    }  # fmt: skip
    assert set(result) == set(TaskResultPayload.__annotations__)
    assert (started["name"], result["name"], result["id"]) == ("model", "model", started["id"])
    assert started["triggers"] == ["branch:to:model"]
    assert [m["content"] for m in started["input"]["messages"]] == ["hi"]
    assert [m["content"] for m in result["result"]["messages"]] == [TOKENS]
    assert (result["error"], result["interrupts"]) == (None, [])
    # The same payloads LangGraph's debug mode wraps for the same run.
    debug = {data["type"]: data["payload"] for event, data in got if event == "debug"
             and data["type"] != "checkpoint"}  # fmt: skip
    assert (started, result) == (debug["task"], debug["task_result"])


async def test_checkpoints_mode_sends_each_checkpoint_the_run_writes(live: Live) -> None:
    headers = live.user()
    client = live.client(headers)
    thread_id = live.thread(headers, "t5")
    got = await parts(client.runs.stream(thread_id, "t5", input=hi(), stream_mode="checkpoints"))
    assert [event for event, _ in got] == ["metadata", *["checkpoints"] * 3, "end"]
    checkpoints = [data for event, data in got if event == "checkpoints"]
    assert all(set(c) == set(CheckpointPayload.__annotations__) for c in checkpoints)
    assert [c["metadata"]["step"] for c in checkpoints] == [-1, 0, 1]
    assert [c["metadata"]["source"] for c in checkpoints] == ["input", "loop", "loop"]
    assert [c["next"] for c in checkpoints] == [["__start__"], ["model"], []]
    assert [[m["content"] for m in c["values"].get("messages", [])] for c in checkpoints] == [
        [], ["hi"], ["hi", TOKENS]
    ]  # fmt: skip
    ids = [c["config"]["configurable"]["checkpoint_id"] for c in checkpoints]
    parents = [(c["parent_config"] or {}).get("configurable", {}).get("checkpoint_id")
               for c in checkpoints]  # fmt: skip
    assert parents == [None, *ids[:-1]]
    assert {c["config"]["configurable"]["thread_id"] for c in checkpoints} == {thread_id}
    # They are the thread's checkpoints: its history, newest first, is the same ids reversed.
    history = await client.threads.get_history(thread_id, limit=10)
    assert [s["checkpoint"]["checkpoint_id"] for s in history] == ids[::-1]
    # The raw payloads of LangGraph's debug mode for the same kind of run.
    again = await parts(
        client.runs.stream(thread_id, "t5", input=hi(), stream_mode=["checkpoints", "debug"])
    )
    streamed = [data for event, data in again if event == "checkpoints"]
    debugged = [d["payload"] for e, d in again if e == "debug" and d["type"] == "checkpoint"]
    assert streamed == debugged
    assert len(streamed) == 3


async def test_tasks_and_checkpoints_resume_after_last_event_id(live: Live) -> None:
    headers = live.user()
    client = live.client(headers)
    thread_id = live.thread(headers, "t5")
    modes = ["tasks", "checkpoints"]
    whole = [
        (p.event, p.data, p.id)
        async for p in client.runs.stream(thread_id, "t5", input=hi(), stream_mode=modes)
    ]
    assert [e for e, _, _ in whole] == [
        "metadata", "checkpoints", "checkpoints", "tasks", "tasks", "checkpoints", "end"
    ]  # fmt: skip
    run_id = whole[0][1]["run_id"]
    for cut in range(1, len(whole)):
        rest = [
            (p.event, p.data, p.id)
            async for p in client.runs.join_stream(
                thread_id, run_id, last_event_id=whole[cut - 1][2]
            )
        ]
        assert rest == whole[cut:]


# --- GET /threads/{id}/stream -------------------------------------------------------------------


async def test_a_threads_stream_follows_its_current_and_next_runs(live: Live) -> None:
    headers = live.user()
    client = live.client(headers)
    thread_id = live.thread(headers, "slow")
    first = await client.runs.create(thread_id, "slow", input=hi("a"), stream_mode="messages-tuple")
    joined = await client.threads.join_stream(thread_id)
    seen: list[Part] = []
    second = None
    async for part in joined:
        seen.append((part.event, part.data, part.id))
        if second is None and part.event == "messages":
            # Queued behind the first, which is then stopped: the stream goes on with it.
            second = await client.runs.create(thread_id, "t5", input=hi("b"))
            await client.runs.cancel(thread_id, first["run_id"])
        if _run_dones(2)(seen):
            break
    assert second is not None
    runs = [first["run_id"], second["run_id"]]
    by_run = {run: [(e, d) for e, d, i in seen if i.startswith(run)] for run in runs}
    assert sum(len(events) for events in by_run.values()) == len(seen)
    a, b = by_run[first["run_id"]], by_run[second["run_id"]]
    assert a[0] == ("metadata", {"run_id": first["run_id"], "attempt": 1})
    assert {e for e, _ in a[1:-2]} == {"messages"}
    assert a[-2] == ("end", {"status": "interrupted", "usage": {}})
    assert a[-1] == ("metadata", {"status": "run_done", "run_id": first["run_id"]})
    assert [e for e, _ in b] == ["metadata", "values", "values", "end", "metadata"]
    assert [m["content"] for m in b[2][1]["messages"]][-2:] == ["b", TOKENS]
    assert b[-1] == ("metadata", {"status": "run_done", "run_id": second["run_id"]})
    # Ids name the run and its own event, 1, 2, 3 … (run_done: the end's + 1).
    for run, events in ((first["run_id"], a), (second["run_id"], b)):
        ids = [i for _, _, i in seen if i.startswith(run)]
        assert ids == [f"{run}:{n}" for n in range(1, len(events) + 1)]

    # Resumed anywhere, it sends exactly what followed, through the next run.
    for cut in (1, len(a) - 2, len(a) - 1, len(a), len(a) + 2):
        stream = await client.threads.join_stream(thread_id, last_event_id=seen[cut - 1][2])
        assert await _until(stream, lambda got: got[-1][2] == seen[-1][2]) == seen[cut:]
    # Only the lifecycle: each run's first event, its end and run_done.
    stream = await client.threads.join_stream(
        thread_id, last_event_id=f"{first['run_id']}:0", stream_mode="lifecycle"
    )
    lifecycle = await _until(stream, _run_dones(2))
    assert lifecycle == [p for p in seen if p[0] in ("metadata", "end")]
    assert len(lifecycle) == 6


async def test_a_threads_stream_waits_for_the_next_run_and_ends_with_the_thread(
    live: Live, http: httpx.AsyncClient
) -> None:
    headers = live.user()
    client = live.client(headers)
    thread_id = live.thread(headers, "t5")
    done = await client.runs.wait(thread_id, "t5", input=hi("before"))
    assert [m["content"] for m in done["messages"]] == ["before", TOKENS]
    # Nothing running: the stream waits for the next run (the finished one is not replayed).
    async with http.stream("GET", f"/threads/{thread_id}/stream", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        assert await anext(lines) == ": ping"
        run = await client.runs.create(thread_id, "t5", input=hi("after"))
        events = []
        async for line in lines:
            if line.startswith("id: "):
                events.append(line[4:])
            if line == 'data: {"status":"run_done","run_id":"' + run["run_id"] + '"}':
                break
        assert events == [f"{run['run_id']}:{n}" for n in range(1, 6)]
        # Deleting the thread ends its stream.
        assert (await http.delete(f"/threads/{thread_id}", headers=headers)).status_code == 204
        rest = await asyncio.wait_for(_drain(lines), 10)
        assert [line for line in rest if line.startswith(("id:", "event:"))] == []


async def _drain(lines: AsyncIterator[str]) -> list[str]:
    return [line async for line in lines]


async def test_a_threads_stream_is_its_owners_alone(live: Live, http: httpx.AsyncClient) -> None:
    owner, stranger = live.user(), live.user()
    thread_id = live.thread(owner, "t5")
    done = await live.client(owner).runs.wait(thread_id, "t5", input=hi())
    assert done["messages"][-1]["content"] == TOKENS
    [their_run] = await live.client(owner).runs.list(thread_id)
    theirs = await http.get(f"/threads/{thread_id}/stream", headers=stranger)
    missing = await http.get(f"/threads/{uuid.uuid4()}/stream", headers=stranger)
    assert_error(theirs, 404, "not_found")
    assert theirs.json() == missing.json()
    # Their run named as where to resume my thread's stream: ignored, my thread's runs come.
    client = live.client(stranger)
    own_thread = live.thread(stranger, "slow")
    mine = await client.runs.create(own_thread, "slow", input=hi(), stream_mode="updates")
    stream = await client.threads.join_stream(
        own_thread, last_event_id=f"{their_run['run_id']}:0", stream_mode="lifecycle"
    )
    first = await _until(stream, lambda got: len(got) == 1)
    assert first == [("metadata", {"run_id": mine["run_id"], "attempt": 1}, f"{mine['run_id']}:1")]
    await client.runs.cancel(own_thread, mine["run_id"], wait=True)


# --- pagination headers -------------------------------------------------------------------------


def _pages(response: httpx.Response) -> tuple[int, str, str | None]:
    assert response.status_code == 200, response.text
    return (
        len(response.json()),
        response.headers["X-Pagination-Total"],
        response.headers.get("X-Pagination-Next"),
    )


async def test_searches_say_how_many_match_and_where_the_next_page_starts(
    client: httpx.AsyncClient, user: User, seeded_agents: dict[str, Any]
) -> None:
    for _ in range(7):
        assert (await client.post("/threads", json={}, headers=user.headers)).status_code == 200
    pages = [
        _pages(await client.post("/threads/search", json={"limit": 3, "offset": offset},
                                 headers=user.headers))
        for offset in (0, 3, 6, 7, 9)
    ]  # fmt: skip
    assert pages == [(3, "7", "3"), (3, "7", "6"), (1, "7", None), (0, "7", None), (0, "7", None)]
    filtered = await client.post(
        "/threads/search", json={"limit": 3, "status": "busy"}, headers=user.headers
    )
    assert _pages(filtered) == (0, "0", None)

    agents = len(seeded_agents)
    assert (await client.post("/assistants/count", json={}, headers=user.headers)).json() == agents
    assert agents == 5
    assistants = [
        _pages(await client.post("/assistants/search", json={"limit": 2, "offset": offset},
                                 headers=user.headers))
        for offset in (0, 2, 4)
    ]  # fmt: skip
    assert assistants == [(2, "5", "2"), (2, "5", "4"), (1, "5", None)]

    thread = (await client.post("/threads", json={}, headers=user.headers)).json()["thread_id"]
    body = {"assistant_id": "assistant", "input": hi()}
    for _ in range(3):
        waited = await client.post(f"/threads/{thread}/runs/wait", json=body, headers=user.headers)
        assert waited.status_code == 200
    runs = [
        _pages(await client.get(f"/threads/{thread}/runs", params={"limit": 2, "offset": offset},
                                headers=user.headers))
        for offset in (0, 2)
    ]  # fmt: skip
    assert runs == [(2, "3", "2"), (1, "3", None)]


async def test_the_python_client_pages_assistants_with_the_next_header(live: Live) -> None:
    client = live.client(live.user())
    first = await client.assistants.search(limit=2, response_format="object")
    assert first["next"] == "2"
    total = await client.assistants.count()
    rest = await client.assistants.search(limit=total, offset=2, response_format="object")
    assert rest["next"] is None
    assert len(first["assistants"]) + len(rest["assistants"]) == total


# --- CORS ---------------------------------------------------------------------------------------

ORIGIN = "https://app.example"


@pytest.fixture
async def cors_app(database_url: str) -> Any:
    app: FastAPI = create_app(make_settings(database_url, cors_origins=[ORIGIN]))
    async with app.router.lifespan_context(app):
        yield app


async def test_a_browser_client_may_send_its_api_key_and_read_the_headers(
    cors_app: FastAPI, app: FastAPI, user: User
) -> None:
    preflight = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-api-key",
    }
    exposed = "Content-Location, Location, X-Pagination-Total, X-Pagination-Next, X-Request-ID"
    transport = httpx.ASGITransport(app=cors_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        allowed = await http.options("/threads/search", headers=preflight)
        assert allowed.status_code == 200, allowed.text
        assert allowed.headers["access-control-allow-origin"] == ORIGIN
        assert "x-api-key" in allowed.headers["access-control-allow-headers"].lower().split(", ")
        response = await http.post(
            "/threads/search", json={}, headers={"Origin": ORIGIN, **user.headers}
        )
        assert response.status_code == 200, response.text
        assert response.headers["access-control-expose-headers"] == exposed
        assert response.headers["X-Pagination-Total"] == "0"
    # Without CORS configured, no browser origin is answered at all.
    plain = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=plain, base_url="http://test") as http:
        response = await http.post(
            "/threads/search", json={}, headers={"Origin": ORIGIN, **user.headers}
        )
        assert response.status_code == 200
        assert "access-control-expose-headers" not in response.headers
        assert "access-control-allow-origin" not in response.headers
