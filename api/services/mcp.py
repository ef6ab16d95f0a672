"""MCP tools: every live agent is a tool that answers a message on one of the caller's threads.

A tool call is an Agent Protocol ``runs/wait`` (``protocol_runs.start`` and ``outcome``) on
the caller's thread, or on a new thread that is kept, so the caller can go on with the
conversation there, over MCP or either HTTP API. What goes wrong is a ``ToolFailure`` with a
message for the model that called the tool; only an unknown tool is ``UnknownTool``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

import psycopg
from pydantic import BaseModel, ConfigDict, ValidationError

from api.errors import DATABASE_UNAVAILABLE, AppError, NotFound, quota_detail
from api.schemas.common import NOT_BLANK
from api.schemas.messages import MAX_MESSAGE_CHARS, MessageContent
from api.schemas.protocol_runs import RunCreate
from api.services import protocol_runs
from api.state import AppState
from graphs.models import UnknownModel
from graphs.runtime.types import ChatBusy, ChatGone, ShuttingDown
from storage import agents as agents_store
from storage.quotas import QuotaExceeded
from storage.rows import AgentRow

log = logging.getLogger(__name__)

# Tools per ``tools/list`` page; the next page's cursor is the offset of its first agent.
TOOLS_PER_PAGE: Final = 100
# The same for every agent (a tool's arguments do not depend on the agent).
INPUT_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "message": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_MESSAGE_CHARS,
            "pattern": NOT_BLANK,
            "description": "What to say to the agent",
        },
        "thread_id": {
            "type": "string",
            "format": "uuid",
            "description": "Continue this conversation (the thread_id an earlier call "
            "answered); leave it out to start a new one",
        },
    },
    "required": ["message"],
    "additionalProperties": False,
}
OUTPUT_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "reply": {"type": "string", "description": "The agent's answer"},
        "thread_id": {
            "type": "string",
            "format": "uuid",
            "description": "The conversation's thread: pass it back to continue it",
        },
        "run_id": {"type": "string", "format": "uuid", "description": "The run that answered"},
    },
    "required": ["reply", "thread_id", "run_id"],
    "additionalProperties": False,
}


class UnknownTool(Exception):
    """No live agent has this tool's name (retired since the list was read, or never was)."""


class ToolFailure(Exception):
    """The call did not get an answer; ``message`` says why, for the model that made it."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Answer:
    reply: str
    thread_id: UUID
    run_id: UUID


class ToolArguments(BaseModel):
    # Unknown arguments are refused, as the schema says: a misspelt thread_id must not start
    # a new conversation silently.
    model_config = ConfigDict(extra="forbid")

    message: MessageContent
    thread_id: UUID | None = None


def description(agent: AgentRow) -> str:
    return agent["description"].strip() or f"Talk to the agent {agent['name']}."


async def tools_page(state: AppState, offset: int) -> tuple[list[AgentRow], int | None]:
    """A page of the agents the caller may use (every live one, by name) and the offset of the
    next page (``None`` on the last)."""
    async with state.pool.connection() as conn:
        # One more than a page tells whether another page follows.
        rows = await agents_store.list_page(conn, limit=TOOLS_PER_PAGE + 1, offset=offset)
    if len(rows) > TOOLS_PER_PAGE:
        return rows[:TOOLS_PER_PAGE], offset + TOOLS_PER_PAGE
    return rows, None


def _arguments(arguments: dict[str, Any] | None) -> ToolArguments:
    try:
        return ToolArguments.model_validate(arguments or {})
    except ValidationError as exc:
        # The field and pydantic's own words; never the input back.
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'arguments'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ToolFailure(f"Invalid arguments: {problems}") from None


async def call(
    state: AppState, user_id: UUID, name: str, arguments: dict[str, Any] | None
) -> Answer:
    """Run the agent named ``name`` (its slug) on the user's thread ``thread_id`` (or a new
    one) with ``message``, as ``POST /threads/{id}/runs/wait`` does, and answer its reply."""
    args = _arguments(arguments)
    try:
        async with state.pool.connection() as conn:
            agent = await agents_store.get_by_slug(conn, name)
    except Exception as exc:
        raise ToolFailure(explain(exc)) from None
    if agent is None:
        raise UnknownTool(name)
    body = RunCreate.model_validate(
        {
            "assistant_id": str(agent["id"]),
            "input": {"messages": [{"role": "user", "content": args.message}]},
            # A busy thread is an error the caller can act on, rather than a call that waits
            # for someone else's run first.
            "multitask_strategy": "reject",
            # A new thread is kept: its id is how the conversation continues.
            "on_completion": "keep",
        }
    )
    try:
        run, events, _ = await protocol_runs.start(state, user_id, args.thread_id, body)
        values = await protocol_runs.outcome(state, run, events)
    except Exception as exc:
        raise ToolFailure(_refusal(exc, args.thread_id)) from None
    return Answer(reply=_reply(values, run["chat_id"]), thread_id=run["chat_id"], run_id=run["id"])


def _refusal(exc: Exception, thread_id: UUID | None) -> str:
    """What the caller is told when the run could not start or be read."""
    if isinstance(exc, NotFound) and exc.code == "assistant_not_found":
        return "This agent was retired a moment ago: list the tools again"
    if isinstance(exc, NotFound | ChatGone) and thread_id is not None:
        # Another user's thread reads exactly like one that does not exist.
        return f"Thread {thread_id} not found: pass a thread_id an earlier call answered"
    if isinstance(exc, ChatBusy):
        return (
            f"Thread {thread_id} is busy with another run ({exc.active_run_id}); "
            "wait for it to end, or leave out thread_id to start a new conversation"
        )
    return explain(exc)


def explain(exc: Exception, unexpected: str = "The agent could not answer. Try again.") -> str:
    """What a client is told of ``exc``: the API's own words for what it refuses, and only
    ``unexpected`` of any other exception (which is logged)."""
    if isinstance(exc, ShuttingDown):
        return "The server is shutting down; retry in a moment"
    if isinstance(exc, AppError):
        return exc.detail
    if isinstance(exc, QuotaExceeded):
        return quota_detail(exc)
    if isinstance(exc, UnknownModel):
        return str(exc)  # our own message, naming the model
    if isinstance(exc, DATABASE_UNAVAILABLE):
        return "The database is unavailable; retry shortly"
    if isinstance(exc, psycopg.DataError):
        return "The message contains a value that cannot be stored"
    log.exception("an MCP request failed")
    return unexpected


def _reply(values: Any, thread_id: UUID) -> str:
    """The agent's answer in ``outcome``'s values: the text of the thread's last message when
    that is the agent's final one."""
    failure = values.get("__error__")
    if failure is not None:
        raise ToolFailure(f"The agent could not answer ({failure.get('error')}). Try again.")
    interrupts = values.get("__interrupt__")
    if interrupts:
        asked = interrupts[0].get("value")
        question = asked.get("question") if isinstance(asked, dict) else asked
        raise ToolFailure(
            f"The agent paused on thread {thread_id} and asks: {question}\n(Answer it with a "
            "run of the Agent Protocol on that thread whose command resumes it.)"
        )
    messages = values.get("messages") or []
    last = messages[-1] if messages else {}
    if last.get("type") != "ai" or last.get("tool_calls"):
        raise ToolFailure(f"The run on thread {thread_id} was stopped before the agent answered")
    return _text(last.get("content"))


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            block if isinstance(block, str) else str(block.get("text") or "")
            for block in content
            if isinstance(block, str) or (isinstance(block, dict) and block.get("type") == "text")
        )
    return ""
