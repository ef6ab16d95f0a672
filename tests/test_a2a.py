"""A2A: the official ``a2a-sdk`` client (its JSON-RPC transport and card resolver, which
validate every answer against the spec's types) against the app: agent cards, a round trip,
a stream token by token, a conversation continued in its context, tasks read and canceled,
strangers refused, and each JSON-RPC error."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver
from a2a.client.errors import A2AClientJSONRPCError
from a2a.client.transports.jsonrpc import JsonRpcTransport
from a2a.types import (
    AgentCard,
    DataPart,
    Message,
    MessageSendConfiguration,
    MessageSendParams,
    Part,
    Role,
    Task,
    TaskArtifactUpdateEvent,
    TaskIdParams,
    TaskQueryParams,
    TaskState,
    TaskStatusUpdateEvent,
    TextPart,
)
from fastapi import FastAPI

from tests.conftest import User, assert_error
from tests.protocol import Live, live

__all__ = ["live"]  # the started server's fixture

TOKENS = "tok0 tok1 tok2 tok3 tok4"


async def _agent(client: httpx.AsyncClient, admin: User, model_name: str, **extra: Any) -> dict:
    body = {"name": f"A2A {model_name}", "model_name": model_name, **extra}
    response = await client.post("/agents/", json=body, headers=admin.headers)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
async def t5(client: httpx.AsyncClient, admin: User) -> dict[str, Any]:
    return await _agent(client, admin, "fake:tokens-5", description="Counts to five")


@pytest.fixture
async def echo(client: httpx.AsyncClient, admin: User) -> dict[str, Any]:
    return await _agent(client, admin, "fake:echo")


@pytest.fixture
async def sdk_http(app: FastAPI, user: User) -> AsyncIterator[httpx.AsyncClient]:
    """What the a2a-sdk client sends its requests with: the user's token, over ASGI."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://switchboard", headers=user.headers
    ) as http:
        yield http


async def _transport(http: httpx.AsyncClient, agent: dict[str, Any]) -> JsonRpcTransport:
    """A client of the agent, from its card as the SDK resolves it."""
    resolver = A2ACardResolver(
        http, "http://switchboard", f"/a2a/{agent['id']}/.well-known/agent-card.json"
    )
    card = await resolver.get_agent_card()
    return JsonRpcTransport(http, agent_card=card)


def _message(text: str, context_id: str | None = None, task_id: str | None = None) -> Message:
    return Message(
        role=Role.user,
        parts=[Part(root=TextPart(text=text))],
        message_id=str(uuid.uuid4()),
        context_id=context_id,
        task_id=task_id,
    )


def _texts(message: Message | None) -> list[str]:
    assert message is not None
    return [part.root.text for part in message.parts if isinstance(part.root, TextPart)]


async def test_the_agent_card_names_the_agent_its_skill_and_its_endpoint(
    sdk_http: httpx.AsyncClient, t5: dict[str, Any]
) -> None:
    resolver = A2ACardResolver(sdk_http, "http://switchboard")
    paths = [
        f"/a2a/{t5['id']}/.well-known/agent-card.json",
        f"/a2a/{t5['id']}",
        f"/.well-known/agent-card.json?assistant_id={t5['id']}",
        f"/.well-known/agent-card.json?assistant_id={t5['slug']}",
    ]
    cards = [await resolver.get_agent_card(relative_card_path=path) for path in paths]
    card = cards[0]
    assert all(c == card for c in cards)
    assert isinstance(card, AgentCard)
    assert card.name == "A2A fake:tokens-5"
    assert card.description == "Counts to five"
    assert card.url == f"http://switchboard/a2a/{t5['id']}"
    assert card.preferred_transport == "JSONRPC"
    assert card.capabilities.streaming is True
    assert card.capabilities.push_notifications is False
    assert [(s.id, s.name, s.description) for s in card.skills] == [
        (f"{t5['id']}-main", "A2A fake:tokens-5 Capabilities", "Counts to five")
    ]
    assert card.default_input_modes == ["text/plain"]
    assert card.default_output_modes == ["text/plain", "application/json"]
    assert card.security == [{"bearer": []}]


async def test_cards_of_unknown_assistants_are_404s(client: httpx.AsyncClient, user: User) -> None:
    for path in (
        f"/a2a/{uuid.uuid4()}/.well-known/agent-card.json",
        "/a2a/no-such-graph",
        "/.well-known/agent-card.json?assistant_id=no-such-graph",
    ):
        assert_error(await client.get(path, headers=user.headers), 404, "assistant_not_found")
    missing = await client.get("/.well-known/agent-card.json", headers=user.headers)
    assert_error(missing, 422, "validation_error")


async def test_send_answers_the_completed_task_of_a_new_thread_and_run(
    client: httpx.AsyncClient, sdk_http: httpx.AsyncClient, user: User, t5: dict[str, Any]
) -> None:
    a2a = await _transport(sdk_http, t5)
    sent = _message("hi")
    task = await a2a.send_message(MessageSendParams(message=sent))
    assert isinstance(task, Task)
    assert task.status.state == TaskState.completed
    thread_id, run_id = task.id.split(":")
    assert thread_id == task.context_id
    # The context is a thread of the user's, the task its run.
    thread = await client.get(f"/threads/{thread_id}", headers=user.headers)
    assert thread.status_code == 200
    runs = (await client.get(f"/threads/{thread_id}/runs", headers=user.headers)).json()
    assert [(r["run_id"], r["assistant_id"], r["status"]) for r in runs] == [
        (run_id, t5["id"], "success")
    ]
    assert task.artifacts is not None and len(task.artifacts) == 1
    assert [p.root.text for p in task.artifacts[0].parts] == [TOKENS]  # type: ignore[union-attr]
    assert task.history is not None
    assert [(m.role, _texts(m)) for m in task.history] == [
        (Role.user, ["hi"]),
        (Role.agent, [TOKENS]),
    ]
    assert task.history[0].message_id == sent.message_id
    assert {m.task_id for m in task.history} == {task.id}
    assert {m.context_id for m in task.history} == {task.context_id}


async def test_stream_sends_each_token_in_order_then_the_answer_and_completed(
    sdk_http: httpx.AsyncClient, t5: dict[str, Any]
) -> None:
    a2a = await _transport(sdk_http, t5)
    events = [
        e async for e in a2a.send_message_streaming(MessageSendParams(message=_message("hi")))
    ]
    first = events[0]
    assert isinstance(first, Task)
    assert first.status.state == TaskState.submitted
    assert [_texts(m) for m in first.history or []] == [["hi"]]
    rest = events[1:]
    assert all(e.task_id == first.id and e.context_id == first.context_id for e in rest)
    kinds = [
        (e.kind, e.status.state if isinstance(e, TaskStatusUpdateEvent) else None) for e in rest
    ]
    assert kinds == [
        ("status-update", TaskState.working),
        *[("status-update", TaskState.working)] * 5,
        ("artifact-update", None),
        ("status-update", TaskState.completed),
    ]
    tokens = [_texts(e.status.message)[0] for e in rest[1:6]]  # type: ignore[union-attr]
    assert tokens == ["tok0", " tok1", " tok2", " tok3", " tok4"]
    artifact = rest[6]
    assert isinstance(artifact, TaskArtifactUpdateEvent)
    assert [p.root.text for p in artifact.artifact.parts] == [TOKENS]  # type: ignore[union-attr]
    assert artifact.last_chunk is True
    final = rest[7]
    assert isinstance(final, TaskStatusUpdateEvent) and final.final is True
    assert [e.final for e in rest if isinstance(e, TaskStatusUpdateEvent)] == [False] * 6 + [True]
    # The streamed task is there to read, completed, with the same answer.
    got = await a2a.get_task(TaskQueryParams(id=first.id))
    assert got.status.state == TaskState.completed
    assert [p.root.text for p in got.artifacts[0].parts] == [TOKENS]  # type: ignore[index,union-attr]


async def test_a_context_continues_with_its_history(
    sdk_http: httpx.AsyncClient, echo: dict[str, Any]
) -> None:
    a2a = await _transport(sdk_http, echo)
    first = await a2a.send_message(MessageSendParams(message=_message("one")))
    assert isinstance(first, Task)
    second = await a2a.send_message(
        MessageSendParams(message=_message("two", context_id=first.context_id))
    )
    assert isinstance(second, Task)
    assert second.context_id == first.context_id
    assert second.id != first.id
    assert [(m.role, _texts(m)) for m in second.history or []] == [
        (Role.user, ["one"]),
        (Role.agent, ["You said: one"]),
        (Role.user, ["two"]),
        (Role.agent, ["You said: two"]),
    ]
    # Messages of earlier turns are not this task's.
    assert [m.task_id for m in second.history or []] == [None, None, second.id, second.id]
    assert [p.root.text for p in second.artifacts[0].parts] == ["You said: two"]  # type: ignore[index,union-attr]
    limited = await a2a.send_message(
        MessageSendParams(
            message=_message("three", context_id=first.context_id),
            configuration=MessageSendConfiguration(history_length=2),
        )
    )
    assert [_texts(m) for m in limited.history or []] == [["three"], ["You said: three"]]  # type: ignore[union-attr]
    # The earlier task reads as it ended.
    again = await a2a.get_task(TaskQueryParams(id=first.id, history_length=0))
    assert again.status.state == TaskState.completed
    assert again.history is None
    assert [p.root.text for p in again.artifacts[0].parts] == ["You said: one"]  # type: ignore[index,union-attr]


async def test_a_running_task_is_canceled_and_an_ended_one_cannot_be(
    client: httpx.AsyncClient, sdk_http: httpx.AsyncClient, admin: User, user: User
) -> None:
    slow = await _agent(client, admin, "fake:tokens-200@50")
    a2a = await _transport(sdk_http, slow)
    # A context of the client's choosing (a new thread), so the run can be found while the
    # stream is going (over ASGI the client reads the stream once it has ended).
    context_id = str(uuid.uuid4())
    message = _message("go", context_id=context_id)

    async def streamed() -> list[Any]:
        return [e async for e in a2a.send_message_streaming(MessageSendParams(message=message))]

    reading = asyncio.create_task(streamed())
    runs: list[dict[str, Any]] = []
    while not runs or runs[0]["status"] != "running":
        await asyncio.sleep(0.02)
        answer = await client.get(f"/threads/{context_id}/runs", headers=user.headers)
        runs = answer.json() if answer.status_code == 200 else []
    task_id = f"{context_id}:{runs[0]['run_id']}"
    canceled = await a2a.cancel_task(TaskIdParams(id=task_id))
    assert (canceled.id, canceled.status.state) == (task_id, TaskState.canceled)
    events = await reading
    assert isinstance(events[0], Task) and events[0].id == task_id
    last = events[-1]
    assert isinstance(last, TaskStatusUpdateEvent)
    assert (last.status.state, last.final) == (TaskState.canceled, True)
    assert not any(isinstance(e, TaskArtifactUpdateEvent) for e in events)
    run = (await client.get(f"/runs/{runs[0]['run_id']}", headers=user.headers)).json()
    assert run["status"] == "cancelled"
    with pytest.raises(A2AClientJSONRPCError) as again:
        await a2a.cancel_task(TaskIdParams(id=task_id))
    assert again.value.error.code == -32002
    got = await a2a.get_task(TaskQueryParams(id=task_id))
    assert got.status.state == TaskState.canceled
    # A message naming an ended task is refused; its context takes new tasks.
    with pytest.raises(A2AClientJSONRPCError) as ended:
        await a2a.send_message(MessageSendParams(message=_message("more", task_id=task_id)))
    assert (ended.value.error.code, ended.value.error.message) == (
        -32004,
        "This task takes no more messages",
    )


async def test_another_users_contexts_and_tasks_are_not_found(
    app: FastAPI, client: httpx.AsyncClient, sdk_http: httpx.AsyncClient, admin: User,
    other_user: User, user: User, t5: dict[str, Any],
) -> None:  # fmt: skip
    mine = await (await _transport(sdk_http, t5)).send_message(
        MessageSendParams(message=_message("private"))
    )
    assert isinstance(mine, Task)
    before = (await client.get(f"/threads/{mine.context_id}/history", headers=user.headers)).json()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://switchboard", headers=other_user.headers
    ) as http:
        theirs = await _transport(http, t5)
        run_id = mine.id.split(":")[1]
        missing = f"{uuid.uuid4()}:{uuid.uuid4()}"
        for task_id in (mine.id, run_id, missing):
            for call in (theirs.get_task(TaskQueryParams(id=task_id)),
                         theirs.cancel_task(TaskIdParams(id=task_id))):  # fmt: skip
                with pytest.raises(A2AClientJSONRPCError) as refused:
                    await call
                assert (refused.value.error.code, refused.value.error.message) == (
                    -32001,
                    "Task not found",
                )
        # Continuing my task or my context, sent or streamed: not found, nothing runs.
        for message in (_message("x", task_id=mine.id), _message("x", context_id=mine.context_id)):
            with pytest.raises(A2AClientJSONRPCError) as refused:
                await theirs.send_message(MessageSendParams(message=message))
            assert refused.value.error.code == -32001
            with pytest.raises(A2AClientJSONRPCError) as refused:
                async for _ in theirs.send_message_streaming(MessageSendParams(message=message)):
                    pass
            assert refused.value.error.code == -32001
    after = (await client.get(f"/threads/{mine.context_id}/history", headers=user.headers)).json()
    assert after == before
    runs = (await client.get(f"/threads/{mine.context_id}/runs", headers=user.headers)).json()
    assert len(runs) == 1
    # The task of another agent is not this agent's task either.
    echo_agent = await _agent(client, admin, "fake:echo")
    other = await _transport(sdk_http, echo_agent)
    with pytest.raises(A2AClientJSONRPCError) as refused:
        await other.get_task(TaskQueryParams(id=mine.id))
    assert refused.value.error.code == -32001


async def _rpc(
    client: httpx.AsyncClient, user: User, agent: str, body: Any, *, raw: bytes | None = None
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"content": raw} if raw is not None else {"json": body}
    response = await client.post(f"/a2a/{agent}", headers=user.headers, **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def _send(**message: Any) -> dict[str, Any]:
    base = {"role": "user", "parts": [{"kind": "text", "text": "hi"}], "messageId": "m1"}
    return {"jsonrpc": "2.0", "id": 7, "method": "message/send",
            "params": {"message": {**base, **message}}}  # fmt: skip


async def test_each_json_rpc_error_has_its_code_and_changes_nothing(
    client: httpx.AsyncClient, user: User, t5: dict[str, Any]
) -> None:
    agent = t5["id"]

    def error(code: int, message: str, rpc_id: Any = 7) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": rpc_id, "error": {"code": code, "message": message}}

    cases: list[tuple[Any, bytes | None, dict[str, Any]]] = [
        (None, b"{not json", error(-32700, "Parse error: the body is not valid JSON", None)),
        (None, b"", error(-32700, "Parse error: the body is not valid JSON", None)),
        ([1, 2], None, error(-32600, "Invalid request: expected a JSON-RPC request object", None)),
        ({"id": 7, "method": "tasks/get"}, None,
         error(-32600, 'Invalid request: jsonrpc must be "2.0"')),
        ({"jsonrpc": "2.0", "id": {"x": 1}, "method": "tasks/get"}, None,
         error(-32600, "Invalid request: id must be a string, number or null", None)),
        ({"jsonrpc": "2.0", "id": 7}, None,
         error(-32600, "Invalid request: method must be a string")),
        ({"jsonrpc": "2.0", "id": 7, "method": "tasks/list"}, None,
         error(-32601, "Method not found: tasks/list")),
        ({"jsonrpc": "2.0", "id": 7, "method": "message/send", "params": [1]}, None,
         error(-32602, "Invalid params: params must be an object")),
        ({"jsonrpc": "2.0", "id": 7, "method": "message/send", "params": {}}, None,
         error(-32602, "Invalid params: message must be an object")),
        (_send(parts=[]), None,
         error(-32602, "Invalid params: message.parts must be an array of 1 to 100 parts")),
        (_send(messageId=""), None, error(
            -32602, "Invalid params: message.messageId must be a non-empty string of at most "
            "200 characters")),
        (_send(role="agent"), None, error(-32602, 'Invalid params: message.role must be "user"')),
        (_send(role={}), None, error(-32602, 'Invalid params: message.role must be "user"')),
        (_send(parts=[{"kind": {}, "text": "x"}]), None, error(
            -32602, 'Invalid params: each part must be a text part {"kind": "text", "text": …}')),
        (_send(contextId="not-a-uuid"), None, error(
            -32602, "Invalid params: contextId must be a UUID (the id of one of your threads)")),
        (_send(parts=[{"kind": "text", "text": "a\x00b"}]), None, error(
            -32602, "Invalid params: the text must be at most 32000 characters, without NUL")),
        (_send(parts=[{"kind": "file", "file": {"uri": "http://127.0.0.1/x"}}]), None,
         error(-32005, "Only text parts are supported")),
        (_send(taskId=f"{uuid.uuid4()}:{uuid.uuid4()}"), None, error(-32001, "Task not found")),
        ({"jsonrpc": "2.0", "id": "a", "method": "tasks/get", "params": {"id": "nonsense"}}, None,
         error(-32001, "Task not found", "a")),
        ({"jsonrpc": "2.0", "id": 7, "method": "tasks/get", "params": {}}, None, error(
            -32602, "Invalid params: id must be a non-empty string of at most 200 characters")),
        ({"jsonrpc": "2.0", "id": 7, "method": "tasks/get",
          "params": {"id": "x", "historyLength": -1}}, None,
         error(-32602, "Invalid params: historyLength must be an integer from 0 to 10000")),
    ]  # fmt: skip
    for body, raw, expected in cases:
        assert await _rpc(client, user, agent, body, raw=raw) == expected, body
    unknown = await _rpc(client, user, "no-such-graph", _send())
    assert unknown == error(-32602, "Assistant not found: no-such-graph")
    chats = (await client.get("/chats/", headers=user.headers)).json()
    assert chats["total"] == 0


async def test_v1_method_names_answer_in_v1_enums(
    client: httpx.AsyncClient, user: User, t5: dict[str, Any]
) -> None:
    body = {**_send(role="ROLE_USER"), "method": "SendMessage"}
    answer = await _rpc(client, user, t5["id"], body)
    task = answer["result"]["task"]
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert [m["role"] for m in task["history"]] == ["ROLE_USER", "ROLE_AGENT"]
    get = {"jsonrpc": "2.0", "id": 8, "method": "GetTask", "params": {"id": task["id"]}}
    got = await _rpc(client, user, t5["id"], get)
    assert got["result"]["status"]["state"] == "TASK_STATE_COMPLETED"
    assert got["result"]["id"] == task["id"]
    # Streamed, each result names its kind as v1.0's StreamResponse does (a2a-sdk 1.x reads
    # nothing else; checked by hand with a2a-sdk 1.3.0, which cannot share a venv with 0.3).
    stream = {**body, "method": "SendStreamingMessage"}
    response = await client.post(f"/a2a/{t5['id']}", json=stream, headers=user.headers)
    results = [
        json.loads(line[6:])["result"]
        for line in response.text.splitlines()
        if line.startswith("data: ")
    ]
    assert [list(r) for r in results] == [
        ["task"],
        *[["statusUpdate"]] * 6,
        ["artifactUpdate"],
        ["statusUpdate"],
    ]
    states = [r["statusUpdate"]["status"]["state"] for r in results if "statusUpdate" in r]
    assert states == ["TASK_STATE_WORKING"] * 6 + ["TASK_STATE_COMPLETED"]
    assert results[2]["statusUpdate"]["status"]["message"]["role"] == "ROLE_AGENT"


async def test_calls_need_a_valid_token(client: httpx.AsyncClient, t5: dict[str, Any]) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        for method, path in (
            ("POST", f"/a2a/{t5['id']}"),
            ("GET", f"/a2a/{t5['id']}"),
            ("GET", f"/a2a/{t5['id']}/.well-known/agent-card.json"),
            ("GET", f"/.well-known/agent-card.json?assistant_id={t5['id']}"),
        ):
            response = await client.request(method, path, json=_send(), headers=headers)
            assert_error(response, 401, "unauthorized")
    assert (await client.get("/chats/")).status_code == 401


async def test_a_stream_refused_is_one_error_event(
    client: httpx.AsyncClient, user: User, t5: dict[str, Any]
) -> None:
    body = {**_send(contextId="nope"), "method": "message/stream"}
    response = await client.post(f"/a2a/{t5['id']}", json=body, headers=user.headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    data = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert [json.loads(d) for d in data] == [
        {"jsonrpc": "2.0", "id": 7, "error": {
            "code": -32602,
            "message": "Invalid params: contextId must be a UUID (the id of one of your threads)",
        }}
    ]  # fmt: skip


async def test_a_tool_using_turn_answers_the_final_text_without_the_tool_traffic(
    client: httpx.AsyncClient, sdk_http: httpx.AsyncClient, admin: User, echo: dict[str, Any]
) -> None:
    agent = await _agent(client, admin, "fake:tools", tools_enabled=["calculator"])
    a2a = await _transport(sdk_http, agent)
    card = await A2ACardResolver(sdk_http, "http://switchboard").get_agent_card(
        relative_card_path=f"/a2a/{agent['id']}"
    )
    assert card.skills[0].tags == ["assistant", "langgraph", "calculator"]
    task = await a2a.send_message(MessageSendParams(message=_message("6*7")))
    assert isinstance(task, Task)
    assert task.status.state == TaskState.completed
    # The model's tool call and the tool's result are not conversation.
    assert [(m.role, _texts(m)) for m in task.history or []] == [
        (Role.user, ["6*7"]),
        (Role.agent, ["42"]),
    ]
    assert [p.root.text for p in task.artifacts[0].parts] == ["42"]  # type: ignore[index,union-attr]
    # Several text parts are one message, in order.
    two_parts = Message(
        role=Role.user,
        parts=[Part(root=TextPart(text="one")), Part(root=TextPart(text="two"))],
        message_id=str(uuid.uuid4()),
    )
    echoed = await (await _transport(sdk_http, echo)).send_message(
        MessageSendParams(message=two_parts)
    )
    assert [_texts(m) for m in echoed.history or []] == [["one\ntwo"], ["You said: one\ntwo"]]  # type: ignore[union-attr]


async def test_over_tcp_the_stream_is_live_and_leaving_it_does_not_stop_the_task(
    live: Live,
) -> None:
    slow = live.agents["slow"]
    async with httpx.AsyncClient(headers=live.user(), timeout=30) as http:
        resolver = A2ACardResolver(http, live.url)
        card = await resolver.get_agent_card(
            relative_card_path=f"/.well-known/agent-card.json?assistant_id={slow['slug']}"
        )
        # The card names the server as the client reached it.
        assert card.url == f"{live.url}/a2a/{slow['id']}"
        a2a = JsonRpcTransport(http, agent_card=card)
        stream = a2a.send_message_streaming(MessageSendParams(message=_message("go")))
        submitted = await anext(stream)
        assert isinstance(submitted, Task)
        tokens = []
        async for event in stream:
            if isinstance(event, TaskStatusUpdateEvent) and event.status.message is not None:
                tokens.append(_texts(event.status.message)[0])
                if len(tokens) == 3:
                    break
        assert tokens == ["tok0", " tok1", " tok2"]
        # The tokens came while the run was still going: nothing waited for its end.
        working = await a2a.get_task(TaskQueryParams(id=submitted.id))
        assert working.status.state == TaskState.working
        await stream.aclose()
        context_id, run_id = submitted.id.split(":")
        joined = await http.get(f"{live.url}/threads/{context_id}/runs/{run_id}/join")
        assert joined.status_code == 200
        done = await a2a.get_task(TaskQueryParams(id=submitted.id))
        assert done.status.state == TaskState.completed
        answer = " ".join(f"tok{i}" for i in range(200))
        assert [p.root.text for p in done.artifacts[0].parts] == [answer]  # type: ignore[index,union-attr]


async def test_a_task_waiting_for_input_goes_on_with_the_answer_sent_to_it(
    client: httpx.AsyncClient, sdk_http: httpx.AsyncClient, admin: User, user: User
) -> None:
    hitl = await _agent(client, admin, "fake:tools", tools_enabled=["ask_human"])
    a2a = await _transport(sdk_http, hitl)
    asking = [
        e async for e in a2a.send_message_streaming(MessageSendParams(message=_message("May I?")))
    ]
    task_id = asking[0].id  # type: ignore[union-attr]
    waiting, last = asking[-2], asking[-1]
    assert isinstance(waiting, TaskArtifactUpdateEvent)
    assert waiting.artifact.name == "Interrupt"
    [part] = waiting.artifact.parts
    assert isinstance(part.root, DataPart)
    assert part.root.data["value"] == {"question": "May I?"}
    assert isinstance(last, TaskStatusUpdateEvent)
    assert (last.status.state, last.final) == (TaskState.input_required, True)
    assert _texts(last.status.message) == ["May I?"]
    asked = await a2a.get_task(TaskQueryParams(id=task_id))
    assert asked.status.state == TaskState.input_required
    assert _texts(asked.status.message) == ["May I?"]

    answered = await a2a.send_message(MessageSendParams(message=_message("yes", task_id=task_id)))
    assert isinstance(answered, Task)
    # The same task, gone on in a second run of its thread.
    assert (answered.id, answered.status.state) == (task_id, TaskState.completed)
    assert [p.root.text for p in answered.artifacts[0].parts] == ["yes"]  # type: ignore[index,union-attr]
    assert [(m.role, _texts(m)) for m in answered.history or []] == [
        (Role.user, ["May I?"]),
        (Role.agent, ["yes"]),
    ]
    context_id = task_id.split(":")[0]
    runs = (await client.get(f"/threads/{context_id}/runs", headers=user.headers)).json()
    assert [r["status"] for r in runs] == ["success", "success"]
    got = await a2a.get_task(TaskQueryParams(id=task_id))
    assert got.status.state == TaskState.completed
    assert [p.root.text for p in got.artifacts[0].parts] == ["yes"]  # type: ignore[index,union-attr]
    # The second run's own id names the same task.
    again = await a2a.get_task(TaskQueryParams(id=runs[0]["run_id"]))
    assert (again.id, again.status.state) == (task_id, TaskState.completed)
    with pytest.raises(A2AClientJSONRPCError) as ended:
        await a2a.send_message(MessageSendParams(message=_message("more", task_id=task_id)))
    assert (ended.value.error.code, ended.value.error.message) == (
        -32004,
        "This task takes no more messages",
    )
