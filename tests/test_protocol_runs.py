"""Agent Protocol runs, driven by the official Python client (``langgraph-sdk``) against a
started server: every stream mode, wait, background + join, cancel, interrupts resumed with a
command, broken streams rejoined, and isolation between users."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import User, assert_error
from tests.protocol import TOKENS, Live, hi, http, live, parts, reference_events

__all__ = ["http", "live"]  # fixtures, shared with the other Agent Protocol tests


async def test_values_stream_has_the_official_framing(live: Live) -> None:
    headers = live.user()
    thread_id = live.thread(headers, "t5")
    got = await parts(live.client(headers).runs.stream(thread_id, "t5", input=hi()))
    assert [event for event, _ in got] == ["metadata", "values", "values", "end"]
    official = reference_events("01_values_messagestuple")
    # The same first event, and messages with the same fields as the official server's.
    assert set(got[0][1]) == set(official[0][1]) == {"run_id", "attempt"}
    assert got[0][1]["attempt"] == 1
    ours_human, official_human = got[1][1]["messages"][0], official[1][1]["messages"][0]
    assert set(ours_human) == set(official_human)
    ours_ai = got[2][1]["messages"][1]
    official_ai = official[-1][1]["messages"][1]
    assert set(ours_ai) == set(official_ai)
    assert [m["content"] for m in got[2][1]["messages"]] == ["hi", TOKENS]
    assert got[3] == ("end", {"status": "success", "usage": got[3][1]["usage"]})
    assert got[3][1]["usage"]["output_tokens"] == 5


async def test_messages_tuple_streams_each_token_with_its_metadata(live: Live) -> None:
    headers = live.user()
    thread_id = live.thread(headers, "t5")
    client = live.client(headers)
    got = await parts(client.runs.stream(thread_id, "t5", input=hi(), stream_mode="messages-tuple"))
    chunks = [data for event, data in got if event == "messages"]
    assert [event for event, _ in got] == ["metadata", *["messages"] * 6, "end"]
    assert "".join(chunk["content"] for chunk, _ in chunks) == TOKENS
    official_chunk = next(data for event, data in reference_events("01_values_messagestuple")
                          if event == "messages")[0]  # fmt: skip
    assert all(set(chunk) == set(official_chunk) for chunk, _ in chunks)
    _, metadata = chunks[0]
    assert metadata["thread_id"] == thread_id
    assert metadata["run_id"] == got[0][1]["run_id"]
    assert metadata["graph_id"] == "t5"
    assert metadata["assistant_id"] == live.agents["t5"]["id"]
    assert metadata["langgraph_node"] == "model"


async def test_legacy_messages_mode_sends_metadata_then_growing_partials(live: Live) -> None:
    headers = live.user()
    thread_id = live.thread(headers, "t5")
    client = live.client(headers)
    got = await parts(client.runs.stream(thread_id, "t5", input=hi(), stream_mode="messages"))
    events = [event for event, _ in got]
    assert events == ["metadata", "messages/metadata", *["messages/partial"] * 6, "end"]
    message_id = next(iter(got[1][1]))
    partials = [data[0] for event, data in got if event == "messages/partial"]
    assert [p["content"] for p in partials] == [
        "tok0", "tok0 tok1", "tok0 tok1 tok2", "tok0 tok1 tok2 tok3", TOKENS, TOKENS
    ]  # fmt: skip
    assert {p["id"] for p in partials} == {message_id}
    official = reference_events("03_messages_legacy")
    assert set(partials[0]) == set(official[2][1][0])
    assert {p["type"] for p in partials} == {"ai"}


async def test_updates_custom_debug_and_events_modes(live: Live) -> None:
    headers = live.user()
    thread_id = live.thread(headers, "t5")
    client = live.client(headers)

    updates = await parts(client.runs.stream(thread_id, "t5", input=hi(), stream_mode="updates"))
    assert [event for event, _ in updates] == ["metadata", "updates", "end"]
    assert list(updates[1][1]) == ["model"]
    assert updates[1][1]["model"]["messages"][0]["content"] == TOKENS

    custom = await parts(client.runs.stream(thread_id, "t5", input=hi(), stream_mode="custom"))
    # The agent writes nothing custom: the mode is accepted and the stream is just framed.
    assert [event for event, _ in custom] == ["metadata", "end"]

    debug = await parts(client.runs.stream(thread_id, "t5", input=hi(), stream_mode="debug"))
    kinds = [data["type"] for event, data in debug if event == "debug"]
    assert kinds == ["checkpoint", "checkpoint", "task", "task_result", "checkpoint"]

    events = await parts(client.runs.stream(thread_id, "t5", input=hi(), stream_mode="events"))
    names = [data["event"] for event, data in events if event == "events"]
    assert names[0] == "on_chain_start"
    assert names[-1] == "on_chain_end"
    assert names.count("on_chat_model_stream") == 6


async def test_several_modes_at_once_interleave_in_order(live: Live) -> None:
    headers = live.user()
    thread_id = live.thread(headers, "t5")
    client = live.client(headers)
    got = await parts(
        client.runs.stream(
            thread_id, "t5", input=hi(), stream_mode=["values", "updates", "messages-tuple"]
        )
    )
    events = [event for event, _ in got]
    assert events == ["metadata", "values", *["messages"] * 6, "updates", "values", "end"]


async def test_wait_and_background_run_with_join(live: Live) -> None:
    headers = live.user()
    thread_id = live.thread(headers, "t5")
    client = live.client(headers)
    values = await client.runs.wait(thread_id, "t5", input=hi("first"))
    assert [m["content"] for m in values["messages"]] == ["first", TOKENS]

    run = await client.runs.create(thread_id, live.agents["t5"]["id"], input=hi("second"))
    assert run["thread_id"] == thread_id
    assert run["assistant_id"] == live.agents["t5"]["id"]
    assert run["multitask_strategy"] == "enqueue"
    joined = await client.runs.join(thread_id, run["run_id"])
    assert [m["content"] for m in joined["messages"]] == ["first", TOKENS, "second", TOKENS]
    fetched = await client.runs.get(thread_id, run["run_id"])
    assert fetched["status"] == "success"
    assert fetched["kwargs"]["input"] == hi("second")
    listed = await client.runs.list(thread_id)
    assert listed[0]["run_id"] == run["run_id"]
    assert len(listed) == 2
    await client.runs.delete(thread_id, run["run_id"])
    assert [r["run_id"] for r in await client.runs.list(thread_id)] == [listed[1]["run_id"]]


async def test_stateless_wait_leaves_no_thread_behind(live: Live, http: httpx.AsyncClient) -> None:
    headers = live.user()
    client = live.client(headers)
    values = await client.runs.wait(None, "t5", input=hi("once"))
    assert [m["content"] for m in values["messages"]] == ["once", TOKENS]
    streamed = await parts(client.runs.stream(None, "t5", input=hi(), stream_mode="updates"))
    assert [event for event, _ in streamed] == ["metadata", "updates", "end"]
    chats = (await http.get("/chats/", headers=headers)).json()
    assert chats["total"] == 0


async def test_cancel_stops_a_running_run_and_the_thread_goes_on(live: Live) -> None:
    headers = live.user()
    thread_id = live.thread(headers, "slow")
    client = live.client(headers)
    run = await client.runs.create(thread_id, "slow", input=hi(), stream_mode="messages-tuple")
    seen = []
    async for part in client.runs.join_stream(thread_id, run["run_id"]):
        seen.append(part.event)
        if part.event == "messages":
            break
    await client.runs.cancel(thread_id, run["run_id"], wait=True)
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "interrupted"
    rest = await parts(client.runs.join_stream(thread_id, run["run_id"]))
    assert rest[-1] == ("end", {"status": "interrupted", "usage": {}})
    assert sum(event == "messages" for event, _ in rest) < 200
    values = await client.runs.wait(thread_id, "t5", input=hi("next"))
    assert values["messages"][0]["content"] == "hi"
    assert values["messages"][-2]["content"] == "next"


async def test_an_interrupt_is_resumed_with_a_command(live: Live) -> None:
    headers = live.user()
    thread_id = live.thread(headers, "hitl")
    client = live.client(headers)
    first = await parts(
        client.runs.stream(thread_id, "hitl", input=hi("May I deploy?"), stream_mode="updates")
    )
    interrupt = next(data["__interrupt__"] for event, data in first if "__interrupt__" in data)
    assert [i["value"] for i in interrupt] == [{"question": "May I deploy?"}]
    official = next(d for e, d in reference_events("05_hitl_custom") if "__interrupt__" in d)
    assert set(interrupt[0]) == set(official["__interrupt__"][0])
    waiting = await client.runs.wait(thread_id, "hitl", command={"resume": "yes, go"})
    contents = [(m["type"], m["content"]) for m in waiting["messages"]]
    assert contents[-2:] == [("tool", "yes, go"), ("ai", "yes, go")]
    assert "__interrupt__" not in waiting


async def test_a_broken_stream_is_rejoined_with_last_event_id(live: Live) -> None:
    headers = live.user()
    client = live.client(headers)
    for cut in (1, 2, 3, 5, 8):
        thread_id = live.thread(headers, "t5")
        first: list[tuple[str, Any, str]] = []
        stream = client.runs.stream(
            thread_id, "t5", input=hi(), stream_mode=["messages-tuple", "values"]
        )
        async for part in stream:
            first.append((part.event, part.data, part.id))
            if len(first) == cut:
                break
        run_id = first[0][1]["run_id"]
        rest = [
            (part.event, part.data, part.id)
            async for part in client.runs.join_stream(thread_id, run_id, last_event_id=first[-1][2])
        ]
        whole = [
            (part.event, part.data, part.id)
            async for part in client.runs.join_stream(thread_id, run_id, last_event_id="0")
        ]
        assert first + rest == whole
        assert [int(p[2]) for p in whole] == list(range(1, len(whole) + 1))
        assert whole[-1][0] == "end"


async def test_bad_assistant_missing_thread_and_other_users_threads(
    live: Live, http: httpx.AsyncClient
) -> None:
    owner, stranger = live.user(), live.user()
    thread_id = live.thread(owner, "t5")
    client = live.client(stranger)

    bad = await http.post(
        f"/threads/{thread_id}/runs/stream",
        json={"assistant_id": "nope", "input": {}},
        headers=owner,
    )
    # The official server's text; its status is 404 here (a name that names nothing).
    assert bad.status_code == 404
    assert bad.json()["code"] == "assistant_not_found"
    assert bad.json()["detail"].startswith("Invalid assistant: 'nope'. Must be either:\n")

    for path in (f"/threads/{thread_id}/runs/stream", f"/threads/{thread_id}/runs/wait"):
        response = await http.post(
            f"{path}", json={"assistant_id": "t5", "input": hi()}, headers=stranger
        )
        assert response.status_code == 404
        assert response.json()["detail"] == "Thread or assistant not found."
    # Not even by naming it as a thread to create.
    taken = await http.post(
        f"/threads/{thread_id}/runs/wait",
        json={"assistant_id": "t5", "input": hi(), "if_not_exists": "create"},
        headers=stranger,
    )
    assert taken.status_code == 404
    assert (await http.get(f"/threads/{thread_id}/runs", headers=stranger)).status_code == 404
    assert (await http.get(f"/threads/{thread_id}/runs", headers=owner)).json() == []

    fresh = str(uuid.uuid4())
    values = await client.runs.wait(fresh, "t5", input=hi(), if_not_exists="create")
    assert [m["content"] for m in values["messages"]] == ["hi", TOKENS]
    mine = await http.get(f"/chats/{fresh}", headers=stranger)
    assert mine.status_code == 200


async def test_bad_run_requests_are_clear_422s(live: Live, http: httpx.AsyncClient) -> None:
    headers = live.user()
    thread_id = live.thread(headers, "t5")
    url = f"/threads/{thread_id}/runs"
    cases = [
        {"assistant_id": "t5", "input": hi(), "stream_mode": ["tokens"]},
        {"assistant_id": "t5", "input": hi(), "command": {"resume": "x"}},
        {"assistant_id": "t5", "input": hi(), "multitask_strategy": "queue"},
        {"assistant_id": "t5", "input": hi(), "config": {"recursion_limit": 0}},
        {"input": hi()},
    ]
    for body in cases:
        response = await http.post(url, json=body, headers=headers)
        assert response.status_code == 422, body
        assert set(response.json()) == {"detail", "code"}
    assert (await http.get(url, headers=headers)).json() == []


async def test_the_sdks_api_key_header_is_never_logged(live: Live) -> None:
    headers = live.user()
    thread_id = live.thread(headers, "t5")
    secret = f"lsv2-{uuid.uuid4().hex}"
    client = live.client(headers, api_key=secret)
    await client.runs.wait(thread_id, "t5", input=hi())
    assert secret not in live.server.log.read_text()


async def test_headers_and_ids_frame_the_stream(live: Live, http: httpx.AsyncClient) -> None:
    headers = live.user()
    thread_id = live.thread(headers, "t5")
    body = {"assistant_id": "t5", "input": hi(), "stream_mode": ["updates"]}
    async with http.stream(
        "POST", f"/threads/{thread_id}/runs/stream", json=body, headers=headers
    ) as response:
        raw = (await response.aread()).decode()
    run_id = response.headers["Content-Location"].rsplit("/", 1)[1]
    assert response.headers["Location"] == f"/threads/{thread_id}/runs/{run_id}/stream"
    assert response.headers["Content-Location"] == f"/threads/{thread_id}/runs/{run_id}"
    assert response.headers["Content-Type"].startswith("text/event-stream")
    blocks = [b for b in raw.replace("\r\n", "\n").split("\n\n") if "event:" in b]
    ids = [int(line[4:]) for b in blocks for line in b.splitlines() if line.startswith("id: ")]
    assert ids == [1, 2, 3]
    official = [e for e, _ in reference_events("04_updates")]
    assert official == ["metadata", "updates"]
    names = [line[7:] for b in blocks for line in b.splitlines() if line.startswith("event: ")]
    assert names == [*official, "end"]


async def test_a_run_from_an_old_checkpoint_forks_the_thread(live: Live) -> None:
    client = live.client(live.user())
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    await client.runs.wait(thread_id, "t5", input=hi("one"))
    await client.runs.wait(thread_id, "t5", input=hi("two"))
    history = await client.threads.get_history(thread_id, limit=100)
    after_first = next(h for h in history if len(h["values"].get("messages", [])) == 2)
    forked = await client.runs.wait(
        thread_id,
        "t5",
        input=hi("instead"),
        checkpoint_id=after_first["checkpoint"]["checkpoint_id"],
    )
    assert [m["content"] for m in forked["messages"]] == ["one", TOKENS, "instead", TOKENS]
    # The old branch is still in the history.
    contents = [
        [m["content"] for m in h["values"].get("messages", [])]
        for h in await client.threads.get_history(thread_id, limit=100)
    ]
    assert ["one", TOKENS, "two", TOKENS] in contents


async def test_interrupt_before_a_node_and_continue(live: Live) -> None:
    client = live.client(live.user())
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    paused = await client.runs.wait(thread_id, "t5", input=hi("wait"), interrupt_before=["model"])
    assert [m["content"] for m in paused["messages"]] == ["wait"]
    assert (await client.threads.get_state(thread_id))["next"] == ["model"]
    finished = await client.runs.wait(thread_id, "t5", input=None)
    assert [m["content"] for m in finished["messages"]] == ["wait", TOKENS]


async def test_default_strategy_enqueues_a_second_run(live: Live) -> None:
    client = live.client(live.user())
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    first = await client.runs.create(thread_id, "t5", input=hi("a"))
    second = await client.runs.create(thread_id, "t5", input=hi("b"))
    await client.runs.join(thread_id, first["run_id"])
    values = await client.runs.join(thread_id, second["run_id"])
    assert [m["content"] for m in values["messages"]] == ["a", TOKENS, "b", TOKENS]
    statuses = [r["status"] for r in await client.runs.list(thread_id)]
    assert statuses == ["success", "success"]
    rejected = await client.runs.create(thread_id, "slow", input=hi("c"))
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await client.runs.create(thread_id, "t5", input=hi("d"), multitask_strategy="reject")
    assert refused.value.response.status_code == 409
    await client.runs.cancel(thread_id, rejected["run_id"], wait=True)


async def test_a_threads_first_run_binds_it_to_the_assistant_once(
    client: httpx.AsyncClient, user: User, seeded_agents: dict[str, Any]
) -> None:
    first, other = list(seeded_agents.values())[:2]
    thread = (await client.post("/threads", json={}, headers=user.headers)).json()
    assert thread["metadata"] == {}

    async def run(assistant: dict[str, Any]) -> httpx.Response:
        body = {"assistant_id": assistant["slug"], "input": hi()}
        url = f"/threads/{thread['thread_id']}/runs/wait"
        return await client.post(url, json=body, headers=user.headers)

    assert (await run(first)).status_code == 200
    assert (await run(other)).status_code == 200  # runs, but the thread stays with the first
    bound = (await client.get(f"/threads/{thread['thread_id']}", headers=user.headers)).json()
    assert bound["metadata"] == {"graph_id": first["slug"], "assistant_id": first["id"]}
    chat = (await client.get(f"/chats/{thread['thread_id']}", headers=user.headers)).json()
    assert chat["agent_id"] == first["id"]


async def test_an_archived_thread_is_not_run_nor_bound(
    client: httpx.AsyncClient, user: User, seeded_agents: dict[str, Any]
) -> None:
    agent = next(iter(seeded_agents.values()))
    thread = (await client.post("/threads", json={}, headers=user.headers)).json()
    archived = await client.put(
        f"/chats/{thread['thread_id']}", json={"status": "archived"}, headers=user.headers
    )
    assert archived.status_code == 200
    response = await client.post(
        f"/threads/{thread['thread_id']}/runs",
        json={"assistant_id": agent["slug"], "input": hi()},
        headers=user.headers,
    )
    assert_error(response, 409, "conflict")
    chat = (await client.get(f"/chats/{thread['thread_id']}", headers=user.headers)).json()
    assert chat["agent_id"] is None
    assert (await client.get(f"/chats/{thread['thread_id']}/runs", headers=user.headers)).json()[
        "total"
    ] == 0
