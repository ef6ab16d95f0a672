"""Forking a chat (at a checkpoint, or with a message edited) and regenerating an answer."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.conftest import User, assert_error
from tests.sse import parse
from tests.test_history import get, tool_chat
from tests.test_messages import SSE, MakeAgent, make_agent, open_chat

__all__ = ["make_agent"]


async def snapshot_of(client: httpx.AsyncClient, user: User, chat_id: str) -> Any:
    """Everything a reader can see of a chat: itself, its messages and its whole history."""
    return (
        await get(client, user, f"/chats/{chat_id}"),
        await get(client, user, f"/chats/{chat_id}/messages", limit=500),
        await get(client, user, f"/chats/{chat_id}/history", limit=200),
    )


async def chat_count(client: httpx.AsyncClient, user: User) -> int:
    return (await get(client, user, "/chats/"))["total"]


async def send(client: httpx.AsyncClient, user: User, chat_id: str, content: str) -> Any:
    response = await client.post(
        f"/chats/{chat_id}/messages", json={"content": content}, headers=user.headers
    )
    assert response.status_code == 201, response.text
    return response.json()


async def echo_chat(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent, *contents: str
) -> str:
    """A chat with a ``fake:echo`` agent, each of ``contents`` sent and answered."""
    chat_id = await open_chat(client, user, (await make_agent("fake:echo"))["id"])
    for content in contents:
        await send(client, user, chat_id, content)
    return chat_id


def texts(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(m["sender"], m["content"]) for m in messages]


async def test_a_fork_at_a_checkpoint_holds_the_history_up_to_it(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    chat_id, runs = await tool_chat(client, user, make_agent)
    original = await snapshot_of(client, user, chat_id)
    items = original[2]["items"]
    end_of_second = next(item for item in items if item["run_id"] == runs[1])

    response = await client.post(
        f"/chats/{chat_id}/fork",
        json={"checkpoint_id": end_of_second["checkpoint_id"]},
        headers=user.headers,
    )
    assert response.status_code == 201, response.text
    fork = response.json()
    assert response.headers["location"] == f"/chats/{fork['id']}"
    assert fork["id"] != chat_id
    assert fork["forked_from"] == {
        "chat_id": chat_id,
        "checkpoint_id": end_of_second["checkpoint_id"],
        "message_id": None,
    }
    assert (fork["agent_id"], fork["message_count"], fork["run"]) == (
        original[0]["agent_id"],
        8,
        None,
    )
    # The fork's history is the original's, from that checkpoint back to the first.
    history = (await get(client, user, f"/chats/{fork['id']}/history", limit=200))["items"]
    start = items.index(end_of_second)
    assert [h["checkpoint_id"] for h in history] == [i["checkpoint_id"] for i in items[start:]]
    assert [h["message_count"] for h in history] == [i["message_count"] for i in items[start:]]
    messages = (await get(client, user, f"/chats/{fork['id']}/messages"))["items"]
    assert [(m["id"], m["content"]) for m in messages] == [
        (m["id"], m["content"]) for m in original[1]["items"][:8]
    ]
    assert {m["chat_id"] for m in messages} == {fork["id"]}

    # The fork goes its own way; the original does not move.
    answer = await send(client, user, fork["id"], "100/4")
    assert answer["status"] == "success"
    assert answer["messages"][-1]["content"] != original[1]["items"][-1]["content"]
    assert (await get(client, user, f"/chats/{fork['id']}"))["message_count"] == 12
    assert await snapshot_of(client, user, chat_id) == original
    # Without a checkpoint, a fork is of the whole chat as it is.
    whole = await client.post(f"/chats/{chat_id}/fork", json={}, headers=user.headers)
    assert whole.status_code == 201, whole.text
    assert whole.json()["forked_from"]["checkpoint_id"] == items[0]["checkpoint_id"]
    assert whole.json()["message_count"] == 12


async def test_a_fork_with_an_edit_answers_the_new_text_and_leaves_the_original(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    chat_id, _ = await tool_chat(client, user, make_agent)
    original = await snapshot_of(client, user, chat_id)
    messages = original[1]["items"]
    second_question = messages[4]
    assert texts([second_question]) == [("user", "6*7")]

    response = await client.post(
        f"/chats/{chat_id}/fork",
        json={"edit": {"message_id": second_question["id"], "content": "6*8"}},
        headers=user.headers,
    )
    assert response.status_code == 201, response.text
    fork = response.json()
    # Forked at the end of the first turn, where the thread was before the edited message.
    end_of_first = next(
        item for item in original[2]["items"] if item["message_count"] == 4 and not item["next"]
    )
    assert fork["forked_from"] == {
        "chat_id": chat_id,
        "checkpoint_id": end_of_first["checkpoint_id"],
        "message_id": second_question["id"],
    }
    run = fork["run"]
    assert run["status"] == "success"
    assert [m["sender"] for m in run["messages"]] == ["user", "agent", "tool", "agent"]
    assert run["messages"][0]["content"] == "6*8"
    assert run["messages"][2]["content"] == "48"
    assert {m["chat_id"] for m in run["messages"]} == {fork["id"]}

    forked = (await get(client, user, f"/chats/{fork['id']}/messages"))["items"]
    assert forked[:4] == [{**m, "chat_id": fork["id"]} for m in messages[:4]]
    assert forked[4:] == run["messages"]
    assert (await get(client, user, f"/chats/{fork['id']}"))["message_count"] == 8
    # The original, byte for byte.
    assert await snapshot_of(client, user, chat_id) == original
    # The run is the fork's, and reads like any other.
    record = await get(client, user, f"/runs/{run['run_id']}")
    assert (record["chat_id"], record["status"]) == (fork["id"], "success")


async def test_an_edit_of_the_first_message_streams_into_an_empty_fork(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    chat_id = await echo_chat(client, user, make_agent, "hello there", "and again")
    original = await snapshot_of(client, user, chat_id)
    first = original[1]["items"][0]

    response = await client.post(
        f"/chats/{chat_id}/fork",
        json={"edit": {"message_id": first["id"], "content": "good morning"}},
        headers={**user.headers, **SSE},
    )
    assert response.status_code == 200, response.text
    fork_id = response.headers["location"].removeprefix("/chats/")
    events, _ = parse(response.text)
    assert events[0].event == "run"
    assert events[0].data["chat_id"] == fork_id
    assert events[-1].event == "end"
    assert events[-1].data["status"] == "success"
    tokens = "".join(e.data["delta"] for e in events if e.event == "token")
    assert tokens == "You said: good morning"

    fork = await get(client, user, f"/chats/{fork_id}")
    assert fork["forked_from"] == {
        "chat_id": chat_id,
        "checkpoint_id": None,
        "message_id": first["id"],
    }
    messages = (await get(client, user, f"/chats/{fork_id}/messages"))["items"]
    assert texts(messages) == [("user", "good morning"), ("agent", "You said: good morning")]
    assert await snapshot_of(client, user, chat_id) == original


async def test_regenerate_answers_again_and_keeps_the_old_answer_in_history(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    chat_id = await echo_chat(client, user, make_agent, "one", "two")
    before = (await get(client, user, f"/chats/{chat_id}/messages"))["items"]
    question, old_answer = before[2], before[3]

    response = await client.post(
        f"/chats/{chat_id}/messages/{question['id']}/regenerate", headers=user.headers
    )
    assert response.status_code == 201, response.text
    run = response.json()
    assert run["status"] == "success"
    # The question keeps its id; the answer is a new message.
    assert next(m["id"] for m in run["messages"]) == question["id"]
    new_answer = run["messages"][1]
    assert new_answer["id"] != old_answer["id"]
    assert new_answer["content"] == "You said: two"

    after = (await get(client, user, f"/chats/{chat_id}/messages"))["items"]
    assert [m["id"] for m in after] == [m["id"] for m in before[:3]] + [new_answer["id"]]
    assert (await get(client, user, f"/chats/{chat_id}"))["message_count"] == 4
    # The old answer is still in the history, at the checkpoints of the first branch.
    history = (await get(client, user, f"/chats/{chat_id}/history", limit=200))["items"]
    old_end = next(
        item
        for item in history
        if item["message_count"] == 4 and item["checkpoint_id"] != history[0]["checkpoint_id"]
    )
    path = f"/chats/{chat_id}/state"
    state = await get(client, user, path, checkpoint_id=old_end["checkpoint_id"])
    assert [m["id"] for m in state["messages"]] == [m["id"] for m in before]
    # Both branches grow from the end of the first turn.
    branches = [item for item in history if item["source"] == "input" and item["step"] > -1]
    assert len({item["parent_checkpoint_id"] for item in branches}) == 1

    # Once more, streamed: a third answer, the chat still four messages long.
    response = await client.post(
        f"/chats/{chat_id}/messages/{question['id']}/regenerate",
        headers={**user.headers, **SSE},
    )
    assert response.status_code == 200, response.text
    events, _ = parse(response.text)
    assert events[-1].data["status"] == "success"
    assert len((await get(client, user, f"/chats/{chat_id}/messages"))["items"]) == 4
    # The conversation goes on from the regenerated answer.
    answer = await send(client, user, chat_id, "three")
    assert answer["status"] == "success"
    assert len((await get(client, user, f"/chats/{chat_id}/messages"))["items"]) == 6


async def test_only_user_messages_of_the_chat_can_be_edited_or_regenerated(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    chat_id, _ = await tool_chat(client, user, make_agent)
    messages = (await get(client, user, f"/chats/{chat_id}/messages"))["items"]
    other_chat, _ = await tool_chat(client, user, make_agent)
    theirs = (await get(client, user, f"/chats/{other_chat}/messages"))["items"][0]
    original = await snapshot_of(client, user, chat_id)
    chats = await chat_count(client, user)

    not_user = [messages[1]["id"], messages[2]["id"], str(uuid.uuid4()), theirs["id"]]
    for message_id in not_user:
        response = await client.post(
            f"/chats/{chat_id}/messages/{message_id}/regenerate", headers=user.headers
        )
        assert_error(response, 422, "not_a_user_message")
        response = await client.post(
            f"/chats/{chat_id}/fork",
            json={"edit": {"message_id": message_id, "content": "x"}},
            headers=user.headers,
        )
        assert_error(response, 422, "not_a_user_message")
    response = await client.post(
        f"/chats/{chat_id}/messages/{messages[0]['id']}/regenerate", headers=user.headers
    )
    assert_error(response, 422, "not_the_last_user_message")
    real = original[2]["items"][0]["checkpoint_id"]
    # One character off a real id (a different one: the last may already be a "0").
    near = real[:-1] + ("1" if real.endswith("0") else "0")
    for body in ({"checkpoint_id": str(uuid.uuid4())}, {"checkpoint_id": near}):
        response = await client.post(f"/chats/{chat_id}/fork", json=body, headers=user.headers)
        assert_error(response, 404, "checkpoint_not_found")
    for body in (
        {"checkpoint_id": "x'y"},
        {"edit": {"message_id": messages[0]["id"], "content": "  "}},
        {"edit": {"message_id": messages[0]["id"]}},
        {"edit": {"message_id": "", "content": "x"}},
        {"extra": 1},
    ):
        response = await client.post(f"/chats/{chat_id}/fork", json=body, headers=user.headers)
        assert_error(response, 422)
    # Nothing was created, nothing changed.
    assert await chat_count(client, user) == chats
    assert await snapshot_of(client, user, chat_id) == original


async def test_another_users_chat_cannot_be_forked_or_regenerated(
    client: httpx.AsyncClient, user: User, other_user: User, make_agent: MakeAgent
) -> None:
    chat_id, _ = await tool_chat(client, user, make_agent)
    question = (await get(client, user, f"/chats/{chat_id}/messages"))["items"][-4]
    original = await snapshot_of(client, user, chat_id)
    for body in ({}, {"edit": {"message_id": question["id"], "content": "1+1"}}):
        response = await client.post(
            f"/chats/{chat_id}/fork", json=body, headers=other_user.headers
        )
        assert_error(response, 404, "not_found")
    response = await client.post(
        f"/chats/{chat_id}/messages/{question['id']}/regenerate", headers=other_user.headers
    )
    assert_error(response, 404, "not_found")
    assert await chat_count(client, other_user) == 0
    assert await snapshot_of(client, user, chat_id) == original


async def test_regenerate_the_first_answer_of_a_chat(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    # Nothing precedes the first message: the branch starts at the input that added it.
    chat_id = await open_chat(client, user, (await make_agent("fake:tools", ["calculator"]))["id"])
    first = await send(client, user, chat_id, "2+3")
    question = first["messages"][0]
    response = await client.post(
        f"/chats/{chat_id}/messages/{question['id']}/regenerate", headers=user.headers
    )
    assert response.status_code == 201, response.text
    again = response.json()["messages"]
    assert texts(again) == texts(first["messages"])
    assert next(m["id"] for m in again) == question["id"]
    messages = (await get(client, user, f"/chats/{chat_id}/messages"))["items"]
    assert [m["id"] for m in messages] == [m["id"] for m in again]
    assert texts(messages) == [("user", "2+3"), ("agent", ""), ("tool", "5"), ("agent", "5")]
