"""Agent Protocol assistants and threads through the official Python client: search, state,
history, state at a checkpoint, update_state, and isolation between users."""

from __future__ import annotations

import uuid

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import NotFoundError

from tests.protocol import TOKENS, Live, hi, http, live
from tests.servers import ADMIN

__all__ = ["http", "live"]

SEED_GRAPHS = ["assistant", "legal-research", "marketing", "personal-finance", "software-engineer"]


async def test_assistants_by_uuid_and_by_graph_id(live: Live) -> None:
    client = live.client(live.user())
    found = await client.assistants.search(limit=100)
    graph_ids = sorted(a["graph_id"] for a in found)
    assert graph_ids == sorted([*SEED_GRAPHS, "t5", "slow", "hitl"])
    assert await client.assistants.count() == 8
    assert await client.assistants.count(graph_id="t5") == 1
    by_slug = await client.assistants.get("t5")
    by_uuid = await client.assistants.get(live.agents["t5"]["id"])
    assert by_slug == by_uuid
    assert by_slug["assistant_id"] == live.agents["t5"]["id"]
    assert by_slug["graph_id"] == "t5"
    assert by_slug["config"]["configurable"]["model_name"] == "fake:tokens-5"
    named = await client.assistants.search(name="HITL")
    assert [a["graph_id"] for a in named] == ["hitl"]
    assert await client.assistants.search(metadata={"team": "x"}) == []

    graph = await client.assistants.get_graph("hitl")
    assert [node["id"] for node in graph["nodes"]] == ["__start__", "model", "tools", "__end__"]
    schemas = await client.assistants.get_schemas("t5")
    assert schemas["graph_id"] == "t5"
    assert "messages" in schemas["input_schema"]["properties"]
    assert "messages" in schemas["state_schema"]["properties"]

    with pytest.raises(NotFoundError):
        await client.assistants.get("nope")


async def test_assistant_writes_are_for_admins(live: Live, http: httpx.AsyncClient) -> None:
    user = live.user()
    body = {"graph_id": "t5", "name": "Copy"}
    refused = await http.post("/assistants", json=body, headers=user)
    assert refused.status_code == 403
    admin_token = (await http.post("/auth/login", json=ADMIN)).json()["access_token"]
    admin = get_client(url=live.url, headers={"Authorization": f"Bearer {admin_token}"})
    copy = await admin.assistants.create(
        graph_id="t5", name="Copy", config={"configurable": {"system_prompt": "Be brief."}}
    )
    assert copy["graph_id"] == "copy"
    assert copy["config"]["configurable"]["model_name"] == "fake:tokens-5"
    renamed = await admin.assistants.update(copy["assistant_id"], name="Copy two")
    assert (renamed["name"], renamed["version"]) == ("Copy two", 2)
    patched = await http.patch(
        f"/assistants/{copy['assistant_id']}", json={"name": "x"}, headers=user
    )
    assert patched.status_code == 403
    await admin.assistants.delete(copy["assistant_id"])
    with pytest.raises(NotFoundError):
        await live.client(user).assistants.get(copy["assistant_id"])


async def test_thread_lifecycle_with_state_history_and_checkpoints(live: Live) -> None:
    client = live.client(live.user())
    thread = await client.threads.create(metadata={"project": "apollo"})
    thread_id = thread["thread_id"]
    assert (thread["status"], thread["values"], thread["metadata"]) == (
        "idle", {}, {"project": "apollo"}
    )  # fmt: skip
    empty = await client.threads.get_state(thread_id)
    assert (empty["values"], empty["next"], empty["checkpoint"]["checkpoint_id"]) == ({}, [], None)

    await client.runs.wait(thread_id, "t5", input=hi("one"))
    await client.runs.wait(thread_id, "t5", input=hi("two"))
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "idle"
    # Bound to the agent of its first run, as the official server records it.
    assert thread["metadata"] == {
        "project": "apollo", "graph_id": "t5", "assistant_id": live.agents["t5"]["id"]
    }  # fmt: skip
    assert [m["content"] for m in thread["values"]["messages"]] == ["one", TOKENS, "two", TOKENS]

    state = await client.threads.get_state(thread_id)
    assert state["next"] == []
    assert [m["content"] for m in state["values"]["messages"]] == ["one", TOKENS, "two", TOKENS]
    history = await client.threads.get_history(thread_id, limit=100)
    # Newest first; each run writes an input checkpoint, one after its loop starts, one per node.
    counts = [len(h["values"].get("messages", [])) for h in history]
    assert counts == [4, 3, 2, 2, 1, 0]
    assert history[0]["checkpoint"] == state["checkpoint"]
    assert history[1]["checkpoint"] == history[0]["parent_checkpoint"]

    # The state at an old checkpoint, by id, and the history before it.
    after_first = history[3]
    at = await client.threads.get_state(
        thread_id, checkpoint_id=after_first["checkpoint"]["checkpoint_id"]
    )
    assert [m["content"] for m in at["values"]["messages"]] == ["one", TOKENS]
    older = await client.threads.get_history(thread_id, before=after_first["checkpoint"])
    assert [len(h["values"].get("messages", [])) for h in older] == [1, 0]
    limited = await client.threads.get_history(thread_id, limit=2)
    assert [h["checkpoint"] for h in limited] == [h["checkpoint"] for h in history[:2]]

    # update_state writes a checkpoint that the next read and the history show.
    written = await client.threads.update_state(
        thread_id, {"messages": [{"role": "user", "content": "noted"}]}, as_node="model"
    )
    latest = await client.threads.get_state(thread_id)
    assert latest["checkpoint"]["checkpoint_id"] == written["checkpoint"]["checkpoint_id"]
    assert latest["values"]["messages"][-1]["content"] == "noted"
    assert len(await client.threads.get_history(thread_id, limit=100)) == 7

    with pytest.raises(NotFoundError):
        await client.threads.get_state(thread_id, checkpoint_id=str(uuid.uuid4()))


async def test_a_paused_thread_is_interrupted_until_resumed(live: Live) -> None:
    client = live.client(live.user())
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "hitl", input=hi("Ship it?"))
    paused = await client.threads.get(thread["thread_id"])
    assert paused["status"] == "interrupted"
    [(task_id, interrupts)] = paused["interrupts"].items()
    assert [i["value"] for i in interrupts] == [{"question": "Ship it?"}]
    state = await client.threads.get_state(thread["thread_id"])
    assert state["next"] == ["tools"]
    assert state["tasks"][0]["id"] == task_id
    assert await client.threads.search(status="interrupted") == [paused]
    await client.runs.wait(thread["thread_id"], "hitl", command={"resume": "ship"})
    resumed = await client.threads.get(thread["thread_id"])
    assert (resumed["status"], resumed["interrupts"]) == ("idle", {})


async def test_create_search_count_patch_and_delete(live: Live, http: httpx.AsyncClient) -> None:
    headers = live.user()
    client = live.client(headers)
    chosen = str(uuid.uuid4())
    first = await client.threads.create(thread_id=chosen, metadata={"team": "a"})
    assert first["thread_id"] == chosen
    again = await client.threads.create(thread_id=chosen, if_exists="do_nothing")
    assert again == first
    clash = await http.post("/threads", json={"thread_id": chosen}, headers=headers)
    assert clash.status_code == 409
    second = await client.threads.create(metadata={"team": "b"}, graph_id="t5")
    assert second["metadata"] == {
        "team": "b", "graph_id": "t5", "assistant_id": live.agents["t5"]["id"]
    }  # fmt: skip
    assert [t["thread_id"] for t in await client.threads.search()] == [
        second["thread_id"], chosen
    ]  # fmt: skip
    assert [t["thread_id"] for t in await client.threads.search(sort_order="asc")] == [
        chosen, second["thread_id"]
    ]  # fmt: skip
    assert [t["thread_id"] for t in await client.threads.search(metadata={"team": "a"})] == [chosen]
    assert await client.threads.count() == 2
    assert await client.threads.count(metadata={"team": "b"}) == 1
    await client.threads.update(chosen, metadata={"stage": "done"})
    assert (await client.threads.get(chosen))["metadata"] == {"team": "a", "stage": "done"}
    await client.threads.delete(chosen)
    assert await client.threads.count() == 1
    with pytest.raises(NotFoundError):
        await client.threads.get(chosen)
    # A thread is a chat: the native API sees it, without an agent until its first run.
    chat = (await http.get(f"/chats/{second['thread_id']}", headers=headers)).json()
    assert chat["agent_id"] == live.agents["t5"]["id"]
    bare = await client.threads.create()
    native = await http.post(
        f"/chats/{bare['thread_id']}/messages", json={"content": "hi"}, headers=headers
    )
    assert native.status_code == 409
    assert native.json()["detail"].startswith("This thread has no agent yet")


async def test_copy_has_the_same_checkpoints_and_goes_its_own_way(
    live: Live, http: httpx.AsyncClient
) -> None:
    headers = live.user()
    client = live.client(headers)
    thread = await client.threads.create(metadata={"set": "eval-1"})
    thread_id = thread["thread_id"]
    await client.runs.wait(thread_id, "t5", input=hi("one"))
    await client.runs.wait(thread_id, "t5", input=hi("two"))
    history = await client.threads.get_history(thread_id, limit=100)

    copy = await client.threads.copy(thread_id)
    copy_id = copy["thread_id"]
    assert copy_id != thread_id
    assert copy["metadata"] == (await client.threads.get(thread_id))["metadata"]
    assert copy["values"] == history[0]["values"]
    copied = await client.threads.get_history(copy_id, limit=100)
    # The same checkpoints, by id, in the new thread.
    assert [h["checkpoint"]["checkpoint_id"] for h in copied] == [
        h["checkpoint"]["checkpoint_id"] for h in history
    ]
    assert [h["values"] for h in copied] == [h["values"] for h in history]
    assert {h["checkpoint"]["thread_id"] for h in copied} == {copy_id}
    # The caller owns the copy: it is in their search, and in the native API as a chat.
    assert copy_id in [t["thread_id"] for t in await client.threads.search(limit=100)]
    chat = (await http.get(f"/chats/{copy_id}", headers=headers)).json()
    assert chat["message_count"] == 4

    await client.runs.wait(copy_id, "t5", input=hi("three"))
    assert len((await client.threads.get_state(copy_id))["values"]["messages"]) == 6
    assert await client.threads.get_history(thread_id, limit=100) == history
    with pytest.raises(NotFoundError):
        await client.threads.copy(str(uuid.uuid4()))


async def test_threads_are_private(live: Live, http: httpx.AsyncClient) -> None:
    owner_headers, stranger_headers = live.user(), live.user()
    owner, stranger = live.client(owner_headers), live.client(stranger_headers)
    thread = await owner.threads.create(metadata={"secret": "yes"})
    thread_id = thread["thread_id"]
    await owner.runs.wait(thread_id, "t5", input=hi("private"))

    assert await stranger.threads.search(metadata={"secret": "yes"}) == []
    assert await stranger.threads.search(ids=[thread_id]) == []
    assert await stranger.threads.count() == 0
    calls = [
        ("GET", f"/threads/{thread_id}", None),
        ("PATCH", f"/threads/{thread_id}", {"metadata": {"x": 1}}),
        ("DELETE", f"/threads/{thread_id}", None),
        ("GET", f"/threads/{thread_id}/state", None),
        ("POST", f"/threads/{thread_id}/state", {"values": {"messages": []}}),
        ("GET", f"/threads/{thread_id}/history", None),
        ("POST", f"/threads/{thread_id}/history", {"limit": 5}),
        ("POST", f"/threads/{thread_id}/copy", None),
    ]
    for method, path, body in calls:
        response = await http.request(method, path, json=body, headers=stranger_headers)
        assert response.status_code == 404, (method, path)
        assert response.json() == {"detail": "Thread not found", "code": "not_found"}
    # Taking the id over with create is refused, like any existing id.
    taken = await http.post("/threads", json={"thread_id": thread_id}, headers=stranger_headers)
    assert taken.status_code == 409
    unchanged = await owner.threads.get(thread_id)
    assert unchanged["metadata"]["secret"] == "yes"
    assert [m["content"] for m in unchanged["values"]["messages"]] == ["private", TOKENS]


async def test_bad_thread_requests_are_clear_4xx(live: Live, http: httpx.AsyncClient) -> None:
    headers = live.user()
    thread = (await http.post("/threads", json={}, headers=headers)).json()
    cases = [
        ("POST", "/threads", {"thread_id": "not-a-uuid"}, 422),
        ("POST", "/threads", {"if_exists": "overwrite"}, 422),
        ("POST", "/threads", {"metadata": {"graph_id": "nope"}}, 422),
        ("POST", "/threads/search", {"limit": 0}, 422),
        ("POST", "/threads/search", {"status": "sleeping"}, 422),
        ("POST", "/threads/search", {"sort_by": "secret"}, 422),
        ("GET", "/threads/not-a-uuid", None, 422),
        ("POST", f"/threads/{thread['thread_id']}/state", {"values": {"messages": []}}, 409),
        ("POST", "/assistants/search", {"limit": -1}, 422),
    ]
    for method, path, body, status in cases:
        response = await http.request(method, path, json=body, headers=headers)
        assert response.status_code == status, (method, path, body, response.text)
        assert set(response.json()) == {"detail", "code"}
    assert (await http.post("/threads/count", json={}, headers=headers)).json() == 1
