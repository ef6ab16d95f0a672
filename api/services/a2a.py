"""A2A (Agent2Agent) on Switchboard's runs: an A2A agent is an assistant (agent), a context
is one of the caller's threads (chats), a task is a run, named ``<context id>:<run id>`` as the
official server names it. Runs start through the Agent Protocol's service, so they follow its
rules (one run at a time per thread, the rest queued) and its events feed the stream.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from api.errors import Conflict, NotFound, quota_detail
from api.schemas.messages import MAX_MESSAGE_CHARS
from api.schemas.protocol_runs import RunCreate
from api.services import protocol_runs
from api.state import AppState
from api.wire import a2a as wire
from api.wire.a2a import RpcError
from api.wire.protocol import FAILED, jsonable
from graphs.events import Event, EventSource, encode, read_all
from storage import runs as runs_store
from storage.quotas import QuotaExceeded
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
# A task waiting for input shows what it waits for as JSON data.
OUTPUT_MODES = ["text/plain", "application/json"]


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
        "defaultOutputModes": OUTPUT_MODES,
        "skills": [
            {
                "id": f"{agent['id']}-main",
                "name": f"{agent['name']} Capabilities",
                "description": description,
                "tags": ["assistant", "langgraph", *tools],
                "examples": [],
                "inputModes": MODES,
                "outputModes": OUTPUT_MODES,
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
    """The task a run is: the one it continues (it answered a task waiting for input), else
    its own, ``<context>:<run>``."""
    metadata = (run.get("input") or {}).get("metadata")
    a2a = metadata.get("a2a") if isinstance(metadata, dict) else None
    continued = a2a.get("task_id") if isinstance(a2a, dict) else None
    return continued if isinstance(continued, str) else f"{run['chat_id']}:{run['id']}"


# How many of a thread's newest runs are looked through for a task's latest run.
TASK_RUNS_SCANNED = 100


async def _owned_run(
    state: AppState, user_id: UUID, agent: AgentRow, task_id: str, context_id: UUID | None
) -> RunRow:
    """The latest run of the caller's task ``task_id`` names (``<context>:<run>``, or a bare
    run id), of this agent and of ``context_id`` if given; ``TASK_NOT_FOUND`` otherwise,
    whoever's it is. A task answered after it waited for input goes on in later runs."""
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
        task_id = task_id_of(run)
        newest, _ = await runs_store.list_for_chat(
            conn, run["chat_id"], limit=TASK_RUNS_SCANNED, offset=0
        )
    return next(
        (r for r in newest if task_id_of(r) == task_id and r["agent_id"] == agent["id"]), run
    )


async def _waits_for_input(state: AppState, agent: AgentRow, run: RunRow) -> bool:
    """Whether the thread waits for input on an ``interrupt()`` of ``run``, its last run."""
    if run["status"] != "success":
        return False
    async with state.pool.connection() as conn:
        current, active = await runs_store.current_of_chat(conn, run["chat_id"])
    if active or current is None or current["id"] != run["id"]:
        return False
    graph = state.runs.threads.graph(agent)
    snapshot = await graph.aget_state({"configurable": {"thread_id": str(run["chat_id"])}})
    return bool(snapshot.interrupts)


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


@dataclass(frozen=True)
class Outcome:
    """Where a run got: its task state, the thread's messages as it left them, the status
    message (why it failed, what it asks) and what it waits for (``interrupt()``s)."""

    state: str
    messages: list[dict[str, Any]]
    note: str | None = None
    interrupts: list[dict[str, Any]] = field(default_factory=list)


def _outcome(events: list[Event]) -> Outcome:
    """A finished run's outcome, from its events: the last ``values`` (with the graph's
    ``__interrupt__`` when it paused for input), an ``error``, the ``end``'s status."""
    messages: list[dict[str, Any]] = []
    interrupts: list[dict[str, Any]] = []
    status, failed = "success", False
    for event in events:
        if event.event == "values" and isinstance(event.data, dict):
            messages = list(event.data.get("messages") or [])
            interrupts = list(event.data.get("__interrupt__") or [])
        elif event.event == "error":
            failed = True
        elif event.event == "end":
            status = event.data.get("status", "success")
    return _settled(_STATES.get(status, "failed"), messages, interrupts, failed)


def _settled(
    state: str, messages: list[dict[str, Any]], interrupts: list[dict[str, Any]], failed: bool
) -> Outcome:
    if state == "completed" and interrupts:
        return Outcome("input-required", messages, _question(interrupts[0]), interrupts)
    return Outcome(state, messages, FAILED if failed or state == "failed" else None)


def _question(interrupt: dict[str, Any]) -> str:
    """What an ``interrupt()`` asks, as text: ``ask_human``'s question, else its value."""
    value = interrupt.get("value") if isinstance(interrupt, dict) else interrupt
    if isinstance(value, dict) and isinstance(value.get("question"), str):
        return str(value["question"])
    return value if isinstance(value, str) else encode(value)


def task(run: RunRow, outcome: Outcome, history_length: int | None) -> dict[str, Any]:
    """The run as an A2A Task: its state, the context's conversation (the last
    ``history_length`` messages; messages of this task's turn carry its id) and, once
    completed, the agent's answer as an artifact (waiting for input: what it waits for)."""
    task_id, context_id = task_id_of(run), str(run["chat_id"])
    messages = outcome.messages
    last_user = max((i for i, m in enumerate(messages) if m.get("type") == "human"), default=0)
    history = [
        converted
        for i, m in enumerate(messages)
        if (converted := _a2a_message(m, context_id, task_id if i >= last_user else None))
    ]
    out: dict[str, Any] = {
        "kind": "task", "id": task_id, "contextId": context_id,
        "status": _status(outcome, task_id, context_id),
    }  # fmt: skip
    if history_length != 0:
        out["history"] = history[-history_length:] if history_length else history
    artifact = _final_artifact(outcome, run)
    if artifact is not None:
        out["artifacts"] = [artifact]
    return out


def _status(outcome: Outcome, task_id: str, context_id: str) -> dict[str, Any]:
    status: dict[str, Any] = {"state": outcome.state, "timestamp": _now()}
    if outcome.note is not None:
        status["message"] = {
            "kind": "message",
            "role": "agent",
            "parts": [{"kind": "text", "text": outcome.note}],
            "messageId": str(uuid.uuid4()),
            "taskId": task_id,
            "contextId": context_id,
        }
    return status


def _final_artifact(outcome: Outcome, run: RunRow) -> dict[str, Any] | None:
    """The answer of a completed task; the interrupts a task waiting for input waits on (as
    the official server shows them: one data part ``{id, value}`` each)."""
    if outcome.state == "input-required":
        return {
            "artifactId": str(uuid.uuid4()),
            "name": "Interrupt",
            "description": "Agent requires input to continue",
            "parts": [
                {"kind": "data", "data": {"id": i.get("id"), "value": i.get("value")}}
                for i in outcome.interrupts
            ],
        }
    answer = _answer(outcome.messages)
    if outcome.state == "completed" and answer is not None:
        return _artifact(answer, run)
    return None


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
    or one that does not exist yet); or, naming a task that waits for input, the run that
    goes on with the message as the answer."""
    request: dict[str, Any] = {
        "input": {"messages": [{"role": "human", "content": message.text,
                                "id": message.message_id}]},
        "metadata": {"a2a": {"message_id": message.message_id}},
    }  # fmt: skip
    if message.task_id is not None:
        run = await _owned_run(state, user_id, agent, message.task_id, message.context_id)
        if run["status"] in ACTIVE:
            raise RpcError(
                wire.UNSUPPORTED_OPERATION, "This task is still working; wait for it or cancel it"
            )
        if not await _waits_for_input(state, agent, run):
            raise RpcError(wire.UNSUPPORTED_OPERATION, "This task takes no more messages")
        # The answer to what the task asks: its interrupt() returns the text.
        request = {
            "command": {"resume": message.text},
            "metadata": {"a2a": {"message_id": message.message_id, "task_id": task_id_of(run)}},
        }
        context_id = run["chat_id"]
    else:
        context_id = message.context_id or uuid.uuid4()
    try:
        body = RunCreate.model_validate(
            {
                "assistant_id": str(agent["id"]),
                **request,
                "stream_mode": ["messages-tuple", "values"],
                "if_not_exists": "create",
            }
        )
    except ValidationError:
        raise _invalid("the message is not one the agent can read") from None
    try:
        run, events, _ = await protocol_runs.start(state, user_id, context_id, body)
    except NotFound:
        # Another user's thread, or the agent deleted meanwhile: nothing to tell apart.
        raise RpcError(wire.TASK_NOT_FOUND, "Context not found") from None
    except Conflict as exc:
        raise RpcError(wire.UNSUPPORTED_OPERATION, exc.detail) from None
    except QuotaExceeded as exc:
        # JSON-RPC has no "too many requests": the message says which quota, and when.
        raise RpcError(wire.UNSUPPORTED_OPERATION, quota_detail(exc)) from None
    return run, events


async def send(state: AppState, user_id: UUID, agent: AgentRow, params: dict[str, Any]) -> Any:
    """``message/send``: the task once its run has ended."""
    message = incoming(params)
    run, events = await start(state, user_id, agent, message)
    return task(run, _outcome(await read_all(events)), message.history_length)


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
        return task(run, _outcome(await read_all(source)), history_length)
    graph = state.runs.threads.graph(agent)
    snapshot = await graph.aget_state({"configurable": {"thread_id": str(run["chat_id"])}})
    values = jsonable(snapshot.values) if isinstance(snapshot.values, dict) else {}
    # What the thread waits for now, when it is this ended run that left it waiting.
    waits = jsonable(list(snapshot.interrupts)) if run["status"] == "success" else []
    outcome = _settled(
        _STATES[run["status"]], values.get("messages") or [], waits, run["status"] == "error"
    )
    return task(run, outcome, history_length)


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
    outcome = _outcome(seen)
    artifact = _final_artifact(outcome, run)
    if artifact is not None:
        yield {**ids, "kind": "artifact-update", "artifact": artifact, "append": False,
               "lastChunk": True}  # fmt: skip
    status = _status(outcome, task_id, context_id)
    yield {**ids, "kind": "status-update", "status": status, "final": True}
