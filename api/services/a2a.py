"""A2A (Agent2Agent) on Switchboard's runs: an A2A agent is an assistant (agent), a context
is one of the caller's threads (chats), a task is a run, named ``<context id>:<run id>`` as the
official server names it. Runs start through the Agent Protocol's service, so they follow its
rules (one run at a time per thread, the rest queued) and its events feed the stream.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from api.errors import Conflict, NotFound
from api.schemas.messages import MAX_MESSAGE_CHARS
from api.schemas.protocol_runs import RunCreate
from api.services import protocol_runs
from api.state import AppState
from api.wire import a2a as wire
from api.wire.a2a import RpcError
from api.wire.protocol import FAILED, jsonable
from graphs.events import Event, EventSource, read_all
from storage import runs as runs_store
from storage.rows import AgentRow, RunRow
from storage.types import ACTIVE

# What a run's status is as an A2A task's state (a run left by a dead process is canceled).
_STATES = {
    "pending": "submitted",
    "running": "working",
    "success": "completed",
    "error": "failed",
    "cancelled": "canceled",
    "interrupted": "canceled",
}
TERMINAL = {"completed", "failed", "canceled", "rejected"}
MAX_PARTS = 100
MAX_ID_CHARS = 200
MODES = ["text/plain"]


def agent_card(agent: AgentRow, base_url: str, version: str) -> dict[str, Any]:
    """The agent's card: who it is, where to call it, what it takes, how to authenticate."""
    url = f"{base_url.rstrip('/')}/a2a/{agent['id']}"
    description = agent["description"] or f"{agent['name']} assistant"
    tools = list(agent["tools_enabled"] or [])
    return {
        "protocolVersion": "0.3.0",
        "name": agent["name"],
        "description": description,
        "url": url,
        "preferredTransport": "JSONRPC",
        # What the official server lists, for v1.0 clients.
        "supportedInterfaces": [
            {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
        ],
        "version": version,
        "capabilities": {
            "streaming": True,
            "pushNotifications": False,
            "stateTransitionHistory": False,
        },
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        "security": [{"bearer": []}],
        "defaultInputModes": MODES,
        "defaultOutputModes": MODES,
        "skills": [
            {
                "id": f"{agent['id']}-main",
                "name": f"{agent['name']} Capabilities",
                "description": description,
                "tags": ["assistant", "langgraph", *tools],
                "examples": [],
                "inputModes": MODES,
                "outputModes": MODES,
            }
        ],
    }


def _invalid(message: str) -> RpcError:
    return RpcError(wire.INVALID_PARAMS, f"Invalid params: {message}")


def _string(value: Any, name: str, *, max_chars: int = MAX_ID_CHARS) -> str:
    if not isinstance(value, str) or not value or len(value) > max_chars or "\x00" in value:
        raise _invalid(f"{name} must be a non-empty string of at most {max_chars} characters")
    return value


def _context(value: Any) -> UUID | None:
    if value is None:
        return None
    try:
        return UUID(_string(value, "contextId"))
    except ValueError:
        raise _invalid("contextId must be a UUID (the id of one of your threads)") from None


def _history_length(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10_000:
        raise _invalid("historyLength must be an integer from 0 to 10000")
    return value


@dataclass(frozen=True)
class Incoming:
    """A ``message/send`` or ``message/stream``'s message, checked."""

    message: dict[str, Any]
    message_id: str
    text: str
    context_id: UUID | None
    task_id: str | None
    history_length: int | None


def incoming(params: dict[str, Any]) -> Incoming:
    """The params' message, or the JSON-RPC error that refuses it."""
    message = params.get("message")
    if not isinstance(message, dict):
        raise _invalid("message must be an object")
    message_id = _string(message.get("messageId"), "message.messageId")
    role = message.get("role")
    if not isinstance(role, str) or wire.V1_ROLES_IN.get(role, role) != "user":
        raise _invalid('message.role must be "user"')
    parts = message.get("parts")
    if not isinstance(parts, list) or not 1 <= len(parts) <= MAX_PARTS:
        raise _invalid(f"message.parts must be an array of 1 to {MAX_PARTS} parts")
    texts = []
    for part in parts:
        if not isinstance(part, dict):
            raise _invalid("each part must be an object")
        kind = part.get("kind")
        if kind in ("file", "data") or (kind is None and ("file" in part or "data" in part)):
            raise RpcError(wire.CONTENT_TYPE_NOT_SUPPORTED, "Only text parts are supported")
        if kind not in ("text", None) or not isinstance(part.get("text"), str):
            raise _invalid('each part must be a text part {"kind": "text", "text": …}')
        texts.append(part["text"])
    text = "\n".join(texts)
    if len(text) > MAX_MESSAGE_CHARS or "\x00" in text:
        raise _invalid(f"the text must be at most {MAX_MESSAGE_CHARS} characters, without NUL")
    task_id = message.get("taskId")
    if task_id is not None:
        _string(task_id, "message.taskId")
    configuration = params.get("configuration") or {}
    if not isinstance(configuration, dict):
        raise _invalid("configuration must be an object")
    return Incoming(
        message, message_id, text, _context(message.get("contextId")), task_id,
        _history_length(configuration.get("historyLength")),
    )  # fmt: skip


def _task_ref(params: dict[str, Any]) -> tuple[str, UUID | None]:
    return _string(params.get("id"), "id"), _context(params.get("contextId"))


def task_id_of(run: RunRow) -> str:
    return f"{run['chat_id']}:{run['id']}"


async def _owned_run(
    state: AppState, user_id: UUID, agent: AgentRow, task_id: str, context_id: UUID | None
) -> RunRow:
    """The caller's run ``task_id`` names (``<context>:<run>``, or a bare run id), of this
    agent and of ``context_id`` if given; ``TASK_NOT_FOUND`` otherwise, whoever's it is."""
    context, _, run_part = task_id.rpartition(":")
    not_found = RpcError(wire.TASK_NOT_FOUND, "Task not found")
    try:
        run_id = UUID(run_part)
        named_context = UUID(context) if context else None
    except ValueError:
        raise not_found from None
    async with state.pool.connection() as conn:
        run = await runs_store.get_owned(conn, run_id, user_id)
    if run is None or run["agent_id"] != agent["id"]:
        raise not_found
    if any(c is not None and c != run["chat_id"] for c in (named_context, context_id)):
        raise not_found
    return run


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            b if isinstance(b, str) else str(b.get("text", ""))
            for b in content
            if isinstance(b, str) or (isinstance(b, dict) and b.get("type") == "text")
        )
    return ""


_ROLES = {"human": "user", "ai": "agent", "AIMessageChunk": "agent"}


def _a2a_message(
    message: dict[str, Any], context_id: str, task_id: str | None
) -> dict[str, Any] | None:
    """A thread's LangChain message as an A2A message; ``None`` for what is no conversation
    text (tool results, a model turn that only called tools)."""
    role = _ROLES.get(message.get("type", ""))
    text = _text(message.get("content"))
    if role is None or (role == "agent" and not text):
        return None
    out = {
        "kind": "message",
        "role": role,
        "parts": [{"kind": "text", "text": text}],
        "messageId": str(message.get("id") or uuid.uuid4()),
        "contextId": context_id,
    }
    if task_id is not None:
        out["taskId"] = task_id
    return out


def _answer(messages: list[dict[str, Any]]) -> str | None:
    """The agent's last reply of the turn: its last message with text after the last user
    message."""
    for message in reversed(messages):
        if message.get("type") == "human":
            return None
        if message.get("type") == "ai" and (text := _text(message.get("content"))):
            return text
    return None


def task(
    run: RunRow,
    state: str,
    messages: list[dict[str, Any]],
    history_length: int | None,
    failure: str | None = None,
) -> dict[str, Any]:
    """The run as an A2A Task: its state, the context's conversation (the last
    ``history_length`` messages; messages of this task's turn carry its id) and, once
    completed, the agent's answer as an artifact."""
    task_id, context_id = task_id_of(run), str(run["chat_id"])
    last_user = max((i for i, m in enumerate(messages) if m.get("type") == "human"), default=0)
    history = [
        converted
        for i, m in enumerate(messages)
        if (converted := _a2a_message(m, context_id, task_id if i >= last_user else None))
    ]
    status: dict[str, Any] = {"state": state, "timestamp": _now()}
    if failure is not None:
        status["message"] = {
            "kind": "message",
            "role": "agent",
            "parts": [{"kind": "text", "text": failure}],
            "messageId": str(uuid.uuid4()),
            "taskId": task_id,
            "contextId": context_id,
        }
    out: dict[str, Any] = {"kind": "task", "id": task_id, "contextId": context_id, "status": status}
    if history_length != 0:
        out["history"] = history[-history_length:] if history_length else history
    answer = _answer(messages)
    if state == "completed" and answer is not None:
        out["artifacts"] = [_artifact(answer, run)]
    return out


def _artifact(text: str, run: RunRow) -> dict[str, Any]:
    return {
        "artifactId": str(uuid.uuid4()),
        "name": "Assistant Response",
        "description": f"Response from assistant {run['agent_id']}",
        "parts": [{"kind": "text", "text": text}],
    }


async def start(
    state: AppState, user_id: UUID, agent: AgentRow, message: Incoming
) -> tuple[RunRow, EventSource]:
    """A run of ``agent`` with the message on its context (a new thread when it names none,
    or one that does not exist yet)."""
    if message.task_id is not None:
        run = await _owned_run(state, user_id, agent, message.task_id, message.context_id)
        # Tasks here end when their run ends; nothing waits for input.
        raise RpcError(
            wire.UNSUPPORTED_OPERATION,
            "This task takes no more messages"
            if _STATES[run["status"]] in TERMINAL
            else "This task is still working; wait for it or cancel it",
        )
    context_id = message.context_id or uuid.uuid4()
    try:
        body = RunCreate.model_validate(
            {
                "assistant_id": str(agent["id"]),
                "input": {"messages": [{"role": "human", "content": message.text,
                                        "id": message.message_id}]},
                "stream_mode": ["messages-tuple", "values"],
                "if_not_exists": "create",
                "metadata": {"a2a": {"message_id": message.message_id}},
            }
        )  # fmt: skip
    except ValidationError:
        raise _invalid("the message is not one the agent can read") from None
    try:
        run, events, _ = await protocol_runs.start(state, user_id, context_id, body)
    except NotFound:
        # Another user's thread, or the agent deleted meanwhile: nothing to tell apart.
        raise RpcError(wire.TASK_NOT_FOUND, "Context not found") from None
    except Conflict as exc:
        raise RpcError(wire.UNSUPPORTED_OPERATION, exc.detail) from None
    return run, events


def _outcome(events: list[Event]) -> tuple[str, list[dict[str, Any]], str | None]:
    """A finished run's (state, last values' messages, failure text) from its events."""
    messages: list[dict[str, Any]] = []
    status, failure = "success", None
    for event in events:
        if event.event == "values" and isinstance(event.data, dict):
            messages = list(event.data.get("messages") or [])
        elif event.event == "error":
            failure = FAILED
        elif event.event == "end":
            status = event.data.get("status", "success")
    return _STATES.get(status, "failed"), messages, failure


async def send(state: AppState, user_id: UUID, agent: AgentRow, params: dict[str, Any]) -> Any:
    """``message/send``: the task once its run has ended."""
    message = incoming(params)
    run, events = await start(state, user_id, agent, message)
    run_state, messages, failure = _outcome(await read_all(events))
    return task(run, run_state, messages, message.history_length, failure)


async def get(state: AppState, user_id: UUID, agent: AgentRow, params: dict[str, Any]) -> Any:
    """``tasks/get``: the task as it is now."""
    task_id, context_id = _task_ref(params)
    history_length = _history_length(params.get("historyLength"))
    run = await _owned_run(state, user_id, agent, task_id, context_id)
    return await _current(state, agent, run, history_length)


async def _current(
    state: AppState, agent: AgentRow, run: RunRow, history_length: int | None
) -> dict[str, Any]:
    """The run's task: from its event log while that is kept (the run's own last values),
    else, and while it runs, from its thread as it is."""
    active = run["status"] in ACTIVE
    source = None if active else await state.runs.events(run["id"], active=False)
    if source is not None:
        _, messages, failure = _outcome(await read_all(source))
    else:
        graph = state.runs.threads.graph(agent)
        snapshot = await graph.aget_state({"configurable": {"thread_id": str(run["chat_id"])}})
        values = jsonable(snapshot.values) if isinstance(snapshot.values, dict) else {}
        messages, failure = values.get("messages") or [], None
        if run["status"] == "error":
            failure = FAILED
    return task(run, _STATES[run["status"]], messages, history_length, failure)


async def cancel(state: AppState, user_id: UUID, agent: AgentRow, params: dict[str, Any]) -> Any:
    """``tasks/cancel``: the run stopped (its checkpoints kept), then the task as it ended."""
    task_id, context_id = _task_ref(params)
    run = await _owned_run(state, user_id, agent, task_id, context_id)
    if run["status"] not in ACTIVE:
        raise RpcError(wire.TASK_NOT_CANCELABLE, "Task cannot be canceled: it has ended")
    await state.runs.stop(run["id"], "cancelled", wait=10)
    run = await _owned_run(state, user_id, agent, task_id, context_id)
    return await _current(state, agent, run, None)


async def stream(
    run: RunRow, events: EventSource, message: Incoming
) -> AsyncIterator[dict[str, Any]]:
    """``message/stream``'s results: the task submitted, working, each token of the answer
    as a working status update, then the answer as an artifact and the final status."""
    task_id, context_id = task_id_of(run), str(run["chat_id"])
    ids = {"taskId": task_id, "contextId": context_id}
    user_message = {**message.message, "kind": "message", **ids}
    yield {
        "kind": "task", "id": task_id, "contextId": context_id, "history": [user_message],
        "status": {"state": "submitted", "timestamp": _now()},
    }  # fmt: skip
    yield {**ids, "kind": "status-update", "status": {"state": "working"}, "final": False}
    seen: list[Event] = []
    async for event in events.read(0):
        seen.append(event)
        if event.event != "messages":
            continue
        chunk: dict[str, Any] = event.data[0] if isinstance(event.data, list) and event.data else {}
        delta = _text(chunk.get("content")) if chunk.get("type") == "AIMessageChunk" else ""
        if delta:
            token = {"kind": "message", "role": "agent", "parts": [{"kind": "text", "text": delta}],
                     "messageId": str(uuid.uuid4()), **ids}  # fmt: skip
            yield {
                **ids, "kind": "status-update", "final": False,
                "status": {"state": "working", "message": token, "timestamp": _now()},
            }  # fmt: skip
    final_state, messages, failure = _outcome(seen)
    answer = _answer(messages)
    if final_state == "completed" and answer is not None:
        artifact = _artifact(answer, run)
        yield {**ids, "kind": "artifact-update", "artifact": artifact, "append": False,
               "lastChunk": True}  # fmt: skip
    status: dict[str, Any] = {"state": final_state, "timestamp": _now()}
    if failure is not None:
        status["message"] = {"kind": "message", "role": "agent", "messageId": str(uuid.uuid4()),
                             "parts": [{"kind": "text", "text": failure}], **ids}  # fmt: skip
    yield {**ids, "kind": "status-update", "status": status, "final": True}
