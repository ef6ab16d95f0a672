"""Approval of tool calls: an agent's gated tools wait for a person's decision, through both
APIs, across a restart, and nothing a bad decision carries changes the chat."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.settings import Settings
from tests.conftest import User, assert_error, running
from tests.sse import parse
from tests.test_messages import MakeAgent, make_agent, open_chat

__all__ = ["make_agent"]

SSE = {"Accept": "text/event-stream"}


async def _gated(make_agent: MakeAgent, **extra: Any) -> dict[str, Any]:
    return await make_agent(
        "fake:tools", ["calculator"], tools_requiring_approval=["calculator"], **extra
    )


async def _paused(client: httpx.AsyncClient, user: User, chat_id: str, expression: str) -> dict:
    """Send ``expression`` to a gated calculator agent; the run ends waiting for approval."""
    response = await client.post(
        f"/chats/{chat_id}/messages", json={"content": expression}, headers={**user.headers, **SSE}
    )
    assert response.status_code == 200, response.text
    events, _ = parse(response.text)
    assert [e.event for e in events] == [
        "run", "message", "tool_call", "message", "approval_required", "end",
    ]  # fmt: skip
    call = events[2].data
    asked = events[4].data
    assert asked == {
        "run_id": events[0].data["run_id"],
        "tool_calls": [
            {"id": call["tool_call_id"], "name": "calculator", "args": {"expression": expression}}
        ],
    }
    assert events[-1].data["status"] == "interrupted"
    return asked


async def _messages(client: httpx.AsyncClient, user: User, chat_id: str) -> list[tuple[str, str]]:
    page = (await client.get(f"/chats/{chat_id}/messages", headers=user.headers)).json()
    return [(m["sender"], m["content"]) for m in page["items"]]


async def test_a_gated_call_waits_and_an_approval_runs_it(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    agent = await _gated(make_agent)
    assert agent["tools_requiring_approval"] == ["calculator"]
    chat_id = await open_chat(client, user, agent["id"])
    asked = await _paused(client, user, chat_id, "6*7")

    run = (await client.get(f"/runs/{asked['run_id']}", headers=user.headers)).json()
    assert run["status"] == "interrupted"
    # The tool has not run: the thread holds the question and the call, no result.
    assert await _messages(client, user, chat_id) == [("user", "6*7"), ("agent", "")]
    state = (await client.get(f"/chats/{chat_id}/state", headers=user.headers)).json()
    assert state["next"] == ["HumanInTheLoopMiddleware.after_model"]

    call_id = asked["tool_calls"][0]["id"]
    approved = await client.post(
        f"/chats/{chat_id}/approvals",
        json={"decisions": [{"tool_call_id": call_id, "action": "approve"}]},
        headers=user.headers,
    )
    assert approved.status_code == 201, approved.text
    answer = approved.json()
    assert answer["status"] == "success"
    assert [(m["sender"], m["content"]) for m in answer["messages"]] == [
        ("agent", ""),
        ("tool", "42"),
        ("agent", "42"),
    ]
    assert answer["messages"][1]["metadata"]["tool_call_id"] == call_id
    assert await _messages(client, user, chat_id) == [
        ("user", "6*7"), ("agent", ""), ("tool", "42"), ("agent", "42"),
    ]  # fmt: skip
    chat = (await client.get(f"/chats/{chat_id}", headers=user.headers)).json()
    assert chat["message_count"] == 4
    # Nothing waits any more: a new message is answered (and waits for its own approval).
    await _paused(client, user, chat_id, "1+1")


async def test_an_edited_call_runs_with_the_new_arguments(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    chat_id = await open_chat(client, user, (await _gated(make_agent))["id"])
    asked = await _paused(client, user, chat_id, "6*7")
    edited = await client.post(
        f"/chats/{chat_id}/approvals",
        json={
            "decisions": [
                {
                    "tool_call_id": asked["tool_calls"][0]["id"],
                    "action": "edit",
                    "args": {"expression": "2 ** 10"},
                }
            ]
        },
        headers={**user.headers, **SSE},
    )
    assert edited.status_code == 200, edited.text
    events, _ = parse(edited.text)
    results = [e.data for e in events if e.event == "tool_result"]
    assert [(r["name"], r["is_error"]) for r in results] == [("calculator", False)]
    # The result says it ran an edited call; the answer is the edited call's.
    assert results[0]["content"].endswith("1024")
    assert events[-1].event == "end" and events[-1].data["status"] == "success"
    assert (await _messages(client, user, chat_id))[-1] == ("agent", results[0]["content"])


async def test_a_rejected_call_is_a_result_the_model_reads(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    chat_id = await open_chat(client, user, (await _gated(make_agent))["id"])
    asked = await _paused(client, user, chat_id, "6*7")
    rejected = await client.post(
        f"/chats/{chat_id}/approvals",
        json={
            "decisions": [
                {
                    "tool_call_id": asked["tool_calls"][0]["id"],
                    "action": "reject",
                    "reason": "not on a Sunday",
                }
            ]
        },
        headers=user.headers,
    )
    assert rejected.status_code == 201, rejected.text
    messages = rejected.json()["messages"]
    tool = next(m for m in messages if m["sender"] == "tool")
    assert "not on a Sunday" in tool["content"]
    assert "42" not in tool["content"]
    # The fake model answers with the last tool result it read: the rejection.
    assert messages[-1]["sender"] == "agent"
    assert messages[-1]["content"] == " ".join(tool["content"].split())


async def test_decisions_that_do_not_answer_the_waiting_calls_change_nothing(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    chat_id = await open_chat(client, user, (await _gated(make_agent))["id"])
    url = f"/chats/{chat_id}/approvals"
    # Nothing waits yet.
    nothing = await client.post(
        url, json={"decisions": [{"tool_call_id": "x", "action": "approve"}]}, headers=user.headers
    )
    assert_error(nothing, 409, "no_approval_pending")

    asked = await _paused(client, user, chat_id, "6*7")
    call_id = asked["tool_calls"][0]["id"]
    before = await _messages(client, user, chat_id)
    approve = {"tool_call_id": call_id, "action": "approve"}
    for decisions, status, code in [
        ([{"tool_call_id": "call_unknown", "action": "approve"}], 422, "decisions_do_not_match"),
        ([approve, approve], 422, "decisions_do_not_match"),
        ([approve, {"tool_call_id": "call_other", "action": "reject"}], 422,
         "decisions_do_not_match"),
        ([{"tool_call_id": call_id, "action": "edit"}], 422, "validation_error"),
        ([{"tool_call_id": call_id, "action": "maybe"}], 422, "validation_error"),
        ([{"tool_call_id": call_id, "action": "edit", "args": {"x": "\u0000"}}], 422,
         "validation_error"),
        ([], 422, "validation_error"),
    ]:  # fmt: skip
        response = await client.post(url, json={"decisions": decisions}, headers=user.headers)
        assert_error(response, status, code)
    # A message would leave the call unanswered: refused, with the reason.
    message = await client.post(
        f"/chats/{chat_id}/messages", json={"content": "hello?"}, headers=user.headers
    )
    assert "calculator" in assert_error(message, 409, "approval_pending")["detail"]
    assert await _messages(client, user, chat_id) == before
    runs = (await client.get(f"/chats/{chat_id}/runs", headers=user.headers)).json()
    assert [r["status"] for r in runs["items"]] == ["interrupted"]
    # ... and the call still waits, answerable.
    answered = await client.post(url, json={"decisions": [approve]}, headers=user.headers)
    assert answered.status_code == 201, answered.text


async def test_another_users_chat_is_a_404(
    client: httpx.AsyncClient, user: User, other_user: User, make_agent: MakeAgent
) -> None:
    chat_id = await open_chat(client, user, (await _gated(make_agent))["id"])
    asked = await _paused(client, user, chat_id, "6*7")
    decisions = [{"tool_call_id": asked["tool_calls"][0]["id"], "action": "approve"}]
    stolen = await client.post(
        f"/chats/{chat_id}/approvals", json={"decisions": decisions}, headers=other_user.headers
    )
    assert_error(stolen, 404)
    state = (await client.get(f"/chats/{chat_id}/state", headers=user.headers)).json()
    assert state["next"] == ["HumanInTheLoopMiddleware.after_model"]


async def test_the_approval_waits_across_a_restart(
    client: httpx.AsyncClient,
    user: User,
    make_agent: MakeAgent,
    settings: Settings,
) -> None:
    chat_id = await open_chat(client, user, (await _gated(make_agent))["id"])
    asked = await _paused(client, user, chat_id, "6*7")
    # Another server on the same database: no graph, no run, nothing in memory carried over.
    async with running(create_app(settings)) as restarted:
        message = await restarted.post(
            f"/chats/{chat_id}/messages", json={"content": "hello?"}, headers=user.headers
        )
        assert_error(message, 409, "approval_pending")
        decisions = [{"tool_call_id": asked["tool_calls"][0]["id"], "action": "approve"}]
        answered = await restarted.post(
            f"/chats/{chat_id}/approvals", json={"decisions": decisions}, headers=user.headers
        )
        assert answered.status_code == 201, answered.text
        assert answered.json()["messages"][-1]["content"] == "42"


@pytest.mark.parametrize(
    ("decision", "result"),
    [
        ({"type": "approve"}, "42"),
        ({"type": "edit", "edited_action": {"name": "calculator", "args": {"expression": "1+2"}}},
         "3"),
        ({"type": "reject", "message": "not today"}, "not today"),
    ],
)  # fmt: skip
async def test_the_agent_protocol_shows_the_interrupt_and_resumes_with_a_command(
    client: httpx.AsyncClient,
    user: User,
    make_agent: MakeAgent,
    decision: dict[str, Any],
    result: str,
) -> None:
    agent = await _gated(make_agent)
    thread = (await client.post("/threads", json={}, headers=user.headers)).json()["thread_id"]
    paused = await client.post(
        f"/threads/{thread}/runs/wait",
        json={
            "assistant_id": agent["id"],
            "input": {"messages": [{"role": "user", "content": "6*7"}]},
        },
        headers=user.headers,
    )
    assert paused.status_code == 200, paused.text
    # HumanInTheLoopMiddleware's request, as agent-chat-ui reads it.
    [interrupt] = paused.json()["__interrupt__"]
    assert interrupt["value"]["action_requests"] == [
        {
            "name": "calculator",
            "args": {"expression": "6*7"},
            "description": "Tool execution requires approval\n\nTool: calculator\n"
            "Args: {'expression': '6*7'}",
        }
    ]
    assert interrupt["value"]["review_configs"] == [
        {"action_name": "calculator", "allowed_decisions": ["approve", "edit", "reject"]}
    ]
    state = (await client.get(f"/threads/{thread}", headers=user.headers)).json()
    assert state["status"] == "interrupted"
    # Keyed by the waiting task, as the official server does.
    waiting = [i for found in state["interrupts"].values() for i in found]
    assert [(i["id"], i["value"]) for i in waiting] == [(interrupt["id"], interrupt["value"])]

    resumed = await client.post(
        f"/threads/{thread}/runs/wait",
        json={
            "assistant_id": agent["id"],
            "command": {"resume": {"decisions": [decision]}},
        },
        headers=user.headers,
    )
    assert resumed.status_code == 200, resumed.text
    messages = resumed.json()["messages"]
    assert [m["type"] for m in messages] == ["human", "ai", "tool", "ai"]
    assert messages[2]["tool_call_id"] == messages[1]["tool_calls"][0]["id"]
    assert messages[2]["content"].endswith(result)
    assert (messages[2].get("status") == "error") == (decision["type"] == "reject")
    assert (await client.get(f"/threads/{thread}", headers=user.headers)).json()["status"] == "idle"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tools_requiring_approval": ["no_such_tool"]}, None),
        ({"tools_requiring_approval": ["calculator", "calculator"]}, "tools_requiring_approval"),
        ({"tools_requiring_approval": None}, "tools_requiring_approval"),
    ],
)
async def test_an_agents_approval_list_is_validated(
    client: httpx.AsyncClient, admin: User, body: dict[str, Any], field: str | None
) -> None:
    agent = {"name": "Gated", "model_name": "fake:tools", "tools_enabled": ["calculator"], **body}
    before = (await client.get("/agents/", headers=admin.headers)).json()["total"]
    response = await client.post("/agents/", json=agent, headers=admin.headers)
    error = assert_error(response, 422)
    if field is not None:
        assert any(field in json.dumps(problem["loc"]) for problem in error["detail"])
    else:
        assert "no_such_tool" in error["detail"]
    assert (await client.get("/agents/", headers=admin.headers)).json()["total"] == before


async def test_a_gated_tool_that_is_not_enabled_gates_once_it_is(
    client: httpx.AsyncClient, admin: User, user: User
) -> None:
    created = await client.post(
        "/agents/",
        json={
            "name": "Later",
            "model_name": "fake:tools",
            "tools_enabled": [],
            "tools_requiring_approval": ["calculator"],
        },
        headers=admin.headers,
    )
    assert created.status_code == 201, created.text
    agent = created.json()
    chat_id = await open_chat(client, user, agent["id"])
    plain = await client.post(
        f"/chats/{chat_id}/messages", json={"content": "6*7"}, headers=user.headers
    )
    assert plain.json()["messages"][-1]["content"] == "I have no tools enabled."
    updated = await client.put(
        f"/agents/{agent['id']}", json={"tools_enabled": ["calculator"]}, headers=admin.headers
    )
    assert updated.json()["tools_requiring_approval"] == ["calculator"]
    await _paused(client, user, chat_id, "6*7")
