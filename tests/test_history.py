"""A chat's history for evaluators: its checkpoints, paged, and its state at any of them."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import httpx

from tests.conftest import User, assert_error
from tests.test_messages import MakeAgent, make_agent, open_chat

__all__ = ["make_agent"]

TURNS = ["2+2", "6*7", "10-3"]


async def tool_chat(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> tuple[str, list[str]]:
    """A chat of three turns, each a calculator call and an answer; the turns' run ids."""
    agent = await make_agent("fake:tools", ["calculator"])
    chat_id = await open_chat(client, user, agent["id"])
    runs = []
    for expression in TURNS:
        response = await client.post(
            f"/chats/{chat_id}/messages", json={"content": expression}, headers=user.headers
        )
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "success"
        runs.append(response.json()["run_id"])
    return chat_id, runs


async def get(client: httpx.AsyncClient, user: User, path: str, **params: Any) -> Any:
    response = await client.get(path, params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_history_is_every_checkpoint_newest_first_and_pages_back(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    chat_id, runs = await tool_chat(client, user, make_agent)
    everything = await get(client, user, f"/chats/{chat_id}/history", limit=200)
    items = everything["items"]
    assert everything["has_more"] is False
    # Newest first, each the child of the next, one step after it; the first is the input of
    # the first run (step -1), with no parent.
    for newer, older in itertools.pairwise(items):
        assert newer["parent_checkpoint_id"] == older["checkpoint_id"]
        assert newer["step"] == older["step"] + 1
    assert (items[-1]["parent_checkpoint_id"], items[-1]["step"]) == (None, -1)
    assert all(item["created_at"] is not None for item in items)
    # The newest is the end of the conversation: 3 turns of (question, call, result, answer).
    assert (items[0]["message_count"], items[0]["next"]) == (12, [])
    counts = [item["message_count"] for item in items]
    assert counts == sorted(counts, reverse=True)
    # Every checkpoint was written by one of the three runs, the newest by the last one.
    assert {item["run_id"] for item in items} == set(runs)
    assert items[0]["run_id"] == runs[-1]
    # Each run starts with one checkpoint of its input, in the order the runs ran.
    inputs = [item for item in items if item["source"] == "input"]
    assert [item["run_id"] for item in inputs] == runs[::-1]

    # The default page is 20; pages of 5 with `before` walk the same list, once each.
    default = await get(client, user, f"/chats/{chat_id}/history")
    assert default["items"] == items[:20]
    assert default["has_more"] is (len(items) > 20)
    walked: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 5}
    while True:
        page = await get(client, user, f"/chats/{chat_id}/history", **params)
        walked += page["items"]
        if not page["has_more"]:
            break
        params["before"] = page["items"][-1]["checkpoint_id"]
    assert walked == items


async def test_state_at_a_checkpoint_is_the_conversation_up_to_it(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    chat_id, runs = await tool_chat(client, user, make_agent)
    messages = (await get(client, user, f"/chats/{chat_id}/messages"))["items"]
    items = (await get(client, user, f"/chats/{chat_id}/history", limit=200))["items"]

    latest = await get(client, user, f"/chats/{chat_id}/state")
    assert latest == {"checkpoint_id": items[0]["checkpoint_id"], "messages": messages, "next": []}

    # The end of the second turn: its run's newest checkpoint.
    end_of_second = next(item for item in items if item["run_id"] == runs[1])
    state = await get(
        client, user, f"/chats/{chat_id}/state", checkpoint_id=end_of_second["checkpoint_id"]
    )
    assert state["messages"] == messages[:8]
    assert state["next"] == []
    # The second run's input checkpoint: the first turn, and the question about to be answered.
    second_input = next(
        item for item in items if item["run_id"] == runs[1] and item["source"] == "input"
    )
    state = await get(
        client, user, f"/chats/{chat_id}/state", checkpoint_id=second_input["checkpoint_id"]
    )
    assert state["messages"] == messages[:4]
    assert state["next"] == second_input["next"] != []
    for item in items:
        state = await get(
            client, user, f"/chats/{chat_id}/state", checkpoint_id=item["checkpoint_id"]
        )
        assert len(state["messages"]) == item["message_count"]
        assert state["next"] == item["next"]


async def test_a_chat_with_no_message_has_an_empty_state_and_history(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    chat_id = await open_chat(client, user, (await make_agent())["id"])
    assert await get(client, user, f"/chats/{chat_id}/history") == {"items": [], "has_more": False}
    assert await get(client, user, f"/chats/{chat_id}/state") == {
        "checkpoint_id": None,
        "messages": [],
        "next": [],
    }


async def test_unknown_checkpoints_and_bad_parameters(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    chat_id, _ = await tool_chat(client, user, make_agent)
    other_chat, _ = await tool_chat(client, user, make_agent)
    theirs = (await get(client, user, f"/chats/{other_chat}/history", limit=1))["items"][0]
    before = await get(client, user, f"/chats/{chat_id}/history", limit=200)
    # A checkpoint of another chat (of the same user) names nothing in this one.
    for missing in (str(uuid.uuid4()), theirs["checkpoint_id"]):
        response = await client.get(
            f"/chats/{chat_id}/state", params={"checkpoint_id": missing}, headers=user.headers
        )
        assert_error(response, 404, "checkpoint_not_found")
        response = await client.get(
            f"/chats/{chat_id}/history", params={"before": missing}, headers=user.headers
        )
        assert_error(response, 404, "checkpoint_not_found")
    for params in (
        {"limit": 0},
        {"limit": 201},
        {"limit": "x"},
        {"before": "a" * 65},
        {"before": "x'y"},
    ):
        response = await client.get(
            f"/chats/{chat_id}/history", params=params, headers=user.headers
        )
        assert_error(response, 422)
    response = await client.get(
        f"/chats/{chat_id}/state", params={"checkpoint_id": "\u00b2"}, headers=user.headers
    )
    assert_error(response, 422)
    # Reading changed nothing.
    assert await get(client, user, f"/chats/{chat_id}/history", limit=200) == before


async def test_another_users_chat_history_is_a_404(
    client: httpx.AsyncClient, user: User, other_user: User, make_agent: MakeAgent
) -> None:
    chat_id, _ = await tool_chat(client, user, make_agent)
    checkpoint = (await get(client, user, f"/chats/{chat_id}/history", limit=1))["items"][0]
    for path, params in (
        (f"/chats/{chat_id}/history", {}),
        (f"/chats/{chat_id}/state", {}),
        (f"/chats/{chat_id}/state", {"checkpoint_id": checkpoint["checkpoint_id"]}),
    ):
        response = await client.get(path, params=params, headers=other_user.headers)
        assert_error(response, 404, "not_found")
