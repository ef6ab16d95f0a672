"""Feedback on agent messages: votes in the messages' metadata, and the per-version summary."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.conftest import User, assert_error
from tests.test_forks import send
from tests.test_history import get, tool_chat
from tests.test_messages import MakeAgent, make_agent, open_chat

__all__ = ["make_agent"]


async def put(
    client: httpx.AsyncClient, user: User, chat_id: str, message_id: str, body: Any
) -> httpx.Response:
    return await client.put(
        f"/chats/{chat_id}/messages/{message_id}/feedback", json=body, headers=user.headers
    )


async def test_feedback_shows_in_the_messages_and_can_be_replaced_and_removed(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    chat_id, _ = await tool_chat(client, user, make_agent)
    messages = (await get(client, user, f"/chats/{chat_id}/messages"))["items"]
    answer, call = messages[3], messages[1]
    assert (answer["sender"], call["sender"]) == ("agent", "agent")
    assert {m["metadata"]["feedback"] for m in messages if m["sender"] == "agent"} == {None}

    response = await put(client, user, chat_id, answer["id"], {"score": 1, "comment": "right"})
    assert response.status_code == 200, response.text
    vote = response.json()
    assert (vote["message_id"], vote["score"], vote["comment"]) == (answer["id"], 1, "right")
    shown = {"score": 1, "comment": "right", "created_at": vote["created_at"],
             "updated_at": vote["updated_at"]}  # fmt: skip
    after = (await get(client, user, f"/chats/{chat_id}/messages"))["items"]
    assert after[3]["metadata"]["feedback"] == shown
    # Only that message carries it; the rest are as they were.
    assert [m for i, m in enumerate(after) if i != 3] == [
        m for i, m in enumerate(messages) if i != 3
    ]
    state = await get(client, user, f"/chats/{chat_id}/state")
    assert state["messages"][3]["metadata"]["feedback"] == shown

    # A second vote replaces the first; the tool-calling message can be voted on too.
    response = await put(client, user, chat_id, answer["id"], {"score": -1})
    assert (response.json()["score"], response.json()["comment"]) == (-1, None)
    assert response.json()["created_at"] == vote["created_at"]
    assert (await put(client, user, chat_id, call["id"], {"score": 0})).status_code == 200
    after = (await get(client, user, f"/chats/{chat_id}/messages"))["items"]
    votes = [m["metadata"].get("feedback") for m in after[:4]]
    assert (votes[0], votes[2]) == (None, None)  # a user's and a tool's message: no field
    assert (votes[1]["score"], votes[1]["comment"]) == (0, None)
    assert (votes[3]["score"], votes[3]["comment"]) == (-1, None)

    response = await client.delete(
        f"/chats/{chat_id}/messages/{answer['id']}/feedback", headers=user.headers
    )
    assert response.status_code == 204
    after = (await get(client, user, f"/chats/{chat_id}/messages"))["items"]
    assert after[3]["metadata"]["feedback"] is None
    response = await client.delete(
        f"/chats/{chat_id}/messages/{answer['id']}/feedback", headers=user.headers
    )
    assert_error(response, 404, "feedback_not_found")


async def test_only_agent_messages_take_feedback_and_bad_votes_change_nothing(
    client: httpx.AsyncClient, user: User, other_user: User, make_agent: MakeAgent
) -> None:
    chat_id, _ = await tool_chat(client, user, make_agent)
    messages = (await get(client, user, f"/chats/{chat_id}/messages"))["items"]
    answer = messages[3]
    for message_id in (messages[0]["id"], messages[2]["id"], str(uuid.uuid4())):
        response = await put(client, user, chat_id, message_id, {"score": 1})
        assert_error(response, 422, "not_an_agent_message")
    for body in (
        {"score": 2},
        {"score": True},
        {"score": "1"},
        {"score": 0.5},
        {},
        {"score": 1, "comment": "x" * 2001},
        {"score": 1, "comment": "nul\x00"},
        {"score": 1, "extra": 1},
    ):
        response = await put(client, user, chat_id, answer["id"], body)
        assert_error(response, 422)
    # Someone else's chat does not exist for them.
    response = await put(client, other_user, chat_id, answer["id"], {"score": -1})
    assert_error(response, 404, "not_found")
    response = await client.delete(
        f"/chats/{chat_id}/messages/{answer['id']}/feedback", headers=other_user.headers
    )
    assert_error(response, 404, "not_found")
    assert (await get(client, user, f"/chats/{chat_id}/messages"))["items"] == messages
    # A 2,000-character comment is fine.
    response = await put(client, user, chat_id, answer["id"], {"score": 1, "comment": "y" * 2000})
    assert response.status_code == 200, response.text


async def test_the_summary_counts_votes_per_agent_version(
    client: httpx.AsyncClient, user: User, admin: User, make_agent: MakeAgent
) -> None:
    agent = await make_agent("fake:echo")
    chat_id = await open_chat(client, user, agent["id"])
    first = await send(client, user, chat_id, "one")
    second = await send(client, user, chat_id, "two")
    response = await client.put(
        f"/agents/{agent['id']}", json={"system_prompt": "Be brief."}, headers=admin.headers
    )
    assert response.json()["version"] == agent["version"] + 1
    third = await send(client, user, chat_id, "three")
    other_chat = await open_chat(client, user, agent["id"])
    fourth = await send(client, user, other_chat, "four")
    votes = [
        (chat_id, first, 1), (chat_id, second, 1), (chat_id, third, -1), (other_chat, fourth, 0),
    ]  # fmt: skip
    for chat, run, score in votes:
        response = await put(client, user, chat, run["messages"][-1]["id"], {"score": score})
        assert response.status_code == 200, response.text
    # Voting again on the same message does not count twice.
    await put(client, user, chat_id, first["messages"][-1]["id"], {"score": 1})

    response = await client.get(f"/agents/{agent['id']}/feedback-summary", headers=admin.headers)
    assert response.status_code == 200, response.text
    v = agent["version"]
    assert response.json() == {
        "agent_id": agent["id"],
        "versions": [
            {"version": v + 1, "up": 0, "down": 1, "neutral": 1, "total": 2},
            {"version": v, "up": 2, "down": 0, "neutral": 0, "total": 2},
        ],
    }
    response = await client.get(f"/agents/{agent['id']}/feedback-summary", headers=user.headers)
    assert_error(response, 403)
    response = await client.get(f"/agents/{uuid.uuid4()}/feedback-summary", headers=admin.headers)
    assert_error(response, 404)
