"""Exports of chats (JSON Lines, or one JSON document) and imports of them.

An export is a ``chat`` header record (the chat, its agent) then one ``message`` record per
message, oldest first, feedback included; ``GET /chats/export`` writes every chat of the user
that way, one after the other, reading one page of chats and one chat's thread at a time.

An import takes such records back (several chats in one body, each header starting the next)
and makes new chats of the caller's: new chat and message ids, the same messages in the same
order, the feedback recreated. Everything is checked before anything is written; then the
threads are written, and the chats and their feedback appear in one transaction. If any of it
fails, the threads written so far are deleted: a refused import leaves nothing behind.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from pydantic import TypeAdapter, ValidationError

from api.errors import (
    INVALID_TOKEN,
    AppError,
    Conflict,
    InvalidInput,
    NotFound,
    Unauthorized,
    UnsupportedMediaType,
)
from api.schemas.exports import (
    AgentMessageIn,
    ChatExport,
    ChatHeader,
    ChatHeaderIn,
    FeedbackRecordIn,
    ImagePartIn,
    MessageRecordIn,
    TextPartIn,
    ToolMessageIn,
    UserMessageIn,
)
from api.services import chats as chats_service
from api.services import feedback as feedback_service
from api.services.images import image_block
from api.state import AppState
from api.wire.native import is_visible, to_api
from graphs.models import USAGE_ESTIMATED
from graphs.runtime.streams import title_from
from storage import agents as agents_store
from storage import chats as chats_store
from storage import feedback as feedback_store
from storage import users as users_store
from storage.db import Conn
from storage.rows import AgentRow, ChatRow, ImportedFeedback
from storage.types import ChatStatus, ThreadStatus

JSONL: Final = "application/jsonl"
JSON: Final = "application/json"
# What an import takes: JSON Lines under either name in use, or one chat as a JSON document.
IMPORT_MEDIA_TYPES: Final = (JSONL, "application/x-ndjson", JSON)
# Chats read from Postgres at once by the export of all of a user's chats.
EXPORT_PAGE_SIZE = 50


# Exports.


async def _readable(conn: Conn, chat_id: UUID, user_id: UUID) -> ChatRow:
    """The chat the user may export, theirs or shared with them; 404 otherwise (the one place
    that decides)."""
    return await chats_service.get_readable(conn, chat_id, user_id)


def _agent_out(agent: AgentRow) -> dict[str, Any]:
    return {
        "id": agent["id"], "slug": agent["slug"], "name": agent["name"],
        "version": agent["version"], "system_prompt": agent["system_prompt"],
        "model_name": agent["model_name"], "tools_enabled": agent["tools_enabled"],
    }  # fmt: skip


async def _export(
    state: AppState, chat: ChatRow, agent: AgentRow | None, exported_at: datetime
) -> ChatExport:
    """One chat as it is now: its header, and its messages as the messages API shows them."""
    messages = [m for m in await state.runs.threads.messages(chat["id"]) if is_visible(m)]
    items = [to_api(m, str(chat["id"])) for m in messages]
    async with state.pool.connection() as conn:
        await feedback_service.attach(conn, chat["id"], items)
    return ChatExport.model_validate(
        {
            "exported_at": exported_at,
            "chat": chats_service.chat_out(chat),
            "agent": _agent_out(agent) if agent is not None else None,
            "messages": items,
        }
    )


async def export_chat(state: AppState, user_id: UUID, chat_id: UUID) -> ChatExport:
    """The user's chat with its agent and every message, oldest first."""
    async with state.pool.connection() as conn:
        chat = await _readable(conn, chat_id, user_id)
        agent = None
        if chat["agent_id"] is not None:
            agent = await agents_store.get(conn, chat["agent_id"], include_deleted=True)
    return await _export(state, chat, agent, datetime.now(UTC))


def jsonl(export: ChatExport) -> Iterator[bytes]:
    """A chat's records as JSON Lines: the header, then each message."""
    header = ChatHeader.model_validate(export.model_dump(exclude={"messages"}))
    yield header.model_dump_json().encode() + b"\n"
    for message in export.messages:
        yield message.model_dump_json().encode() + b"\n"


async def export_all(state: AppState, user_id: UUID) -> AsyncIterator[bytes]:
    """Every chat of the user, oldest first, as JSON Lines: one chat's records per item.

    Chats are read a page at a time, each page starting after the last chat of the one before
    (so chats created or deleted meanwhile move nothing), and each chat's thread only when its
    turn comes: however many chats there are, one page and one conversation are in memory."""
    exported_at = datetime.now(UTC)
    agents: dict[UUID, AgentRow | None] = {}
    after = chats_store.EXPORT_START
    while True:
        async with state.pool.connection() as conn:
            page = await chats_store.export_page(conn, user_id, after, EXPORT_PAGE_SIZE)
            for chat in page:
                agent_id = chat["agent_id"]
                if agent_id is not None and agent_id not in agents:
                    agents[agent_id] = await agents_store.get(conn, agent_id, include_deleted=True)
        for chat in page:
            agent = agents.get(chat["agent_id"]) if chat["agent_id"] is not None else None
            yield b"".join(jsonl(await _export(state, chat, agent, exported_at)))
        if len(page) < EXPORT_PAGE_SIZE:
            return
        after = (page[-1]["created_at"], page[-1]["id"])


# Imports: reading the body.


@dataclass
class _Chat:
    """One chat of an import: its header, where it is in the body, and its messages."""

    header: ChatHeaderIn
    where: str
    messages: list[tuple[UserMessageIn | AgentMessageIn | ToolMessageIn, str]] = field(
        default_factory=list
    )


def _refused(code: str, detail: str) -> InvalidInput:
    return InvalidInput(detail, code=code)


_MESSAGE = TypeAdapter(MessageRecordIn)
_SURROGATE = re.compile("[\ud800-\udfff]")


def _no_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity, which JSON has not.
    raise ValueError(name)


def _loads(text: str, where: str) -> Any:
    try:
        return json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        position = ""
        if isinstance(exc, json.JSONDecodeError):
            position = (
                f" (column {exc.colno})"
                if where.startswith("Line")
                else (f" (line {exc.lineno}, column {exc.colno})")
            )
        raise _refused("invalid_json", f"{where} is not JSON{position}") from None
    except RecursionError:
        raise _refused("invalid_json", f"{where} is nested too deeply to read") from None


def _check_text(value: Any, where: str) -> None:
    """No NUL (Postgres text and our checkpoints cannot hold it) and no lone surrogate (JSON
    escapes can write one; no UTF-8 text holds it) in any string or key, at any depth."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise _refused("nul_character", f"{where} holds a NUL character (\\u0000)")
            if _SURROGATE.search(item):
                raise _refused("invalid_text", f"{where} holds an unpaired surrogate escape")
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def _problem(where: str, exc: ValidationError, *, tagged: bool) -> InvalidInput:
    """The first problem pydantic found, as a sentence naming where it is."""
    error = exc.errors()[0]
    loc = list(error["loc"])
    if tagged and loc and loc[0] in ("user", "agent", "tool"):
        loc = loc[1:]  # the discriminated union's branch, not a field
    path = ".".join(str(part) for part in loc)
    return _refused("invalid_record", f"{where}: {path + ': ' if path else ''}{error['msg']}")


def _header(value: Any, where: str) -> ChatHeaderIn:
    try:
        return ChatHeaderIn.model_validate(value)
    except ValidationError as exc:
        raise _problem(where, exc, tagged=False) from None


def _message(value: Any, where: str) -> UserMessageIn | AgentMessageIn | ToolMessageIn:
    try:
        record = _MESSAGE.validate_python(value)
    except ValidationError as exc:
        raise _problem(where, exc, tagged=True) from None
    if isinstance(record, UserMessageIn) and record.parts:
        for at, part in enumerate(record.parts):
            if isinstance(part, ImagePartIn):
                # The body's own limit (the import's) bounds each image's size.
                image_block(part.url, None, f"{where}: parts.{at}")
                if not part.url.startswith(f"data:{part.mime_type};"):
                    raise _refused(
                        "invalid_record", f"{where}: parts.{at}: mime_type is not the URL's type"
                    )
    return record


def _record_type(value: Any, where: str) -> str:
    if not isinstance(value, dict):
        raise _refused("invalid_record", f"{where} is not a JSON object")
    kind = value.get("type")
    if kind not in ("chat", "message"):
        detail = f"{where} has no `type`" if kind is None else f"{where} has an unknown `type`"
        raise _refused("unknown_record_type", f"{detail}: records are `chat` or `message`")
    return str(kind)


def _read_jsonl(text: str) -> list[_Chat]:
    chats: list[_Chat] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"Line {number}"
        value = _loads(line, where)
        _check_text(value, where)
        if _record_type(value, where) == "chat":
            chats.append(_Chat(_header(value, where), where))
        elif not chats:
            raise _refused(
                "missing_header",
                f"{where}: a message before any `chat` record; an import starts with the "
                "chat's header record",
            )
        else:
            chats[-1].messages.append((_message(value, where), where))
    return chats


def _read_json(text: str) -> list[_Chat]:
    where = "The document"
    value = _loads(text, where)
    _check_text(value, where)
    if _record_type(value, where) != "chat":
        raise _refused("missing_header", f"{where} is a `message`; a chat's document is its header")
    messages = value.pop("messages", [])
    if not isinstance(messages, list):
        raise _refused("invalid_record", f"{where}: messages: Input should be a valid list")
    chat = _Chat(_header(value, where), where)
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if _record_type(message, where) != "message":
            raise _refused("misplaced_header", f"{where} is a `chat` record inside a chat")
        chat.messages.append((_message(message, where), where))
    return [chat]


def _check_tool_results(chat: _Chat) -> None:
    """Each tool result answers a tool call of an earlier agent message of its chat, one not
    answered yet; tool call ids are unique within the chat."""
    seen: set[str] = set()
    unanswered: set[str] = set()
    for record, where in chat.messages:
        if isinstance(record, AgentMessageIn):
            for call in record.metadata.tool_calls:
                if call.id in seen:
                    raise _refused(
                        "duplicate_tool_call", f"{where}: tool call id {call.id!r} is used twice"
                    )
                seen.add(call.id)
                unanswered.add(call.id)
        elif isinstance(record, ToolMessageIn):
            call_id = record.metadata.tool_call_id
            if call_id not in unanswered:
                raise _refused(
                    "orphan_tool_result",
                    f"{where}: this tool result answers no earlier unanswered tool call "
                    f"(tool_call_id {call_id[:100]!r})",
                )
            unanswered.discard(call_id)


def read(body: bytes, content_type: str | None) -> list[_Chat]:
    """The chats of an import body, every record checked; nothing is looked up yet."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type not in IMPORT_MEDIA_TYPES:
        raise UnsupportedMediaType(
            "Send the export as `application/jsonl` (or `application/x-ndjson`), or one chat "
            "as `application/json`"
        )
    nul = body.find(b"\x00")
    if nul >= 0:
        line = body.count(b"\n", 0, nul) + 1
        raise _refused("nul_character", f"Line {line} holds a NUL character")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
        raise _refused("invalid_text", f"Line {line} is not UTF-8 text") from None
    chats = _read_json(text) if media_type == JSON else _read_jsonl(text)
    if not chats:
        raise _refused("empty_import", "The body holds no records")
    for chat in chats:
        _check_tool_results(chat)
    return chats


# Imports: writing the chats.


@dataclass
class _Plan:
    """What one imported chat becomes."""

    chat_id: UUID
    agent: AgentRow | None
    title: str | None
    status: ChatStatus
    messages: list[BaseMessage]
    votes: list[tuple[str, FeedbackRecordIn]]
    thread_status: ThreadStatus


async def _agent(conn: Conn, chat: _Chat) -> AgentRow | None:
    reference = chat.header.agent
    if reference is None:
        return None
    agent = await agents_store.by_id_or_slug(conn, reference.id, reference.slug)
    if agent is None:
        names = [f"the id {reference.id}"] if reference.id is not None else []
        names += [f"the slug {reference.slug!r}"] if reference.slug is not None else []
        detail = f"{chat.where}: no agent here has {' or '.join(names)}"
        raise NotFound(detail, code="agent_not_found")
    if agent["deleted_at"] is not None:
        raise Conflict(
            f"{chat.where}: the agent {agent['slug']!r} has been retired; import into another "
            "agent by changing the header's `agent`",
            code="agent_retired",
        )
    return agent


def _block(part: TextPartIn | ImagePartIn) -> dict[str, Any]:
    if isinstance(part, TextPartIn):
        return {"type": "text", "text": part.text}
    payload = part.url.partition(",")[2]
    return {"type": "image", "base64": payload, "mime_type": part.mime_type}


def _to_message(
    record: UserMessageIn | AgentMessageIn | ToolMessageIn, now: datetime
) -> BaseMessage:
    """A record as the message a run would have written, under a new id."""
    created = (record.created_at or now).isoformat()
    message_id = str(uuid.uuid4())
    if isinstance(record, UserMessageIn):
        content: Any = record.content
        if record.parts:
            content = [_block(part) for part in record.parts]
        return HumanMessage(
            content=content, id=message_id, response_metadata={"created_at": created}
        )
    if isinstance(record, ToolMessageIn):
        return ToolMessage(
            content=record.content, id=message_id, tool_call_id=record.metadata.tool_call_id,
            name=record.metadata.name, status="error" if record.metadata.is_error else "success",
            response_metadata={"created_at": created},
        )  # fmt: skip
    meta = record.metadata
    reported: dict[str, Any] = {
        "model": meta.model, "latency_ms": meta.latency_ms, "finish_reason": meta.finish_reason,
    }  # fmt: skip
    if meta.citations:
        reported["citations"] = [citation.model_dump(mode="json") for citation in meta.citations]
    if meta.usage is not None and meta.usage.estimated:
        reported[USAGE_ESTIMATED] = True
    return AIMessage(
        content=record.content,
        id=message_id,
        tool_calls=[
            {"id": call.id, "name": call.name, "args": call.args, "type": "tool_call"}
            for call in meta.tool_calls
        ],
        usage_metadata=(
            meta.usage.model_dump(exclude={"estimated"}) if meta.usage is not None else None
        ),
        response_metadata={
            "created_at": created,
            **{k: v for k, v in reported.items() if v is not None},
        },
    )


def _plan(chat: _Chat, agent: AgentRow | None, now: datetime) -> _Plan:
    messages = [_to_message(record, now) for record, _ in chat.messages]
    votes = [
        (str(message.id), record.metadata.feedback)
        for message, (record, _) in zip(messages, chat.messages, strict=True)
        if isinstance(record, AgentMessageIn) and record.metadata.feedback is not None
    ]
    first_text = next((r.content for r, _ in chat.messages if isinstance(r, UserMessageIn)), "")
    # Tool calls the conversation leaves unanswered (its last run was stopped while a tool
    # ran): the next run must answer them first, as after a stopped run here. It looks for
    # them when the thread's status is not idle; "error" says the last run did not finish.
    last = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
    answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    pending = last is not None and any(c["id"] not in answered for c in last.tool_calls)
    return _Plan(
        chat_id=uuid.uuid4(),
        agent=agent,
        title=chat.header.chat.title or title_from(first_text) or None,
        status=chat.header.chat.status,
        messages=messages,
        votes=votes,
        thread_status="error" if pending else "idle",
    )


def _feedback_rows(plan: _Plan, user_id: UUID, now: datetime) -> list[ImportedFeedback]:
    agent = plan.agent
    rows: list[ImportedFeedback] = []
    for message_id, vote in plan.votes:
        created = vote.created_at or now
        rows.append(
            {
                "chat_id": plan.chat_id,
                "message_id": message_id,
                "user_id": user_id,
                # Versions are this server's: the agent as it is now, as for any vote on a
                # message no run of this server wrote.
                "agent_id": agent["id"] if agent else None,
                "agent_version": agent["version"] if agent else None,
                "score": vote.score,
                "comment": vote.comment,
                "created_at": created,
                "updated_at": vote.updated_at or created,
            }
        )
    return rows


def _last_message_at(plan: _Plan) -> datetime | None:
    if not plan.messages:
        return None
    return datetime.fromisoformat(plan.messages[-1].response_metadata["created_at"])


async def _refusal(conn: Conn, user_id: UUID, plan: _Plan) -> AppError:
    """Why a checked chat could not be inserted: its user or its agent went meanwhile."""
    if await users_store.get(conn, user_id) is None:
        return Unauthorized(INVALID_TOKEN)
    slug = plan.agent["slug"] if plan.agent else ""
    return Conflict(f"The agent {slug!r} has been retired", code="agent_retired")


async def import_chats(
    state: AppState, user_id: UUID, body: bytes, content_type: str | None
) -> list[dict[str, Any]]:
    """New chats of the user's from an export: all of them, or (any refusal) none."""
    chats = read(body, content_type)
    async with state.pool.connection() as conn:
        agents = [await _agent(conn, chat) for chat in chats]
    now = datetime.now(UTC)
    plans = [_plan(chat, agent, now) for chat, agent in zip(chats, agents, strict=True)]
    threads = state.runs.threads
    written: list[UUID] = []
    try:
        for plan in plans:
            if plan.messages:
                written.append(plan.chat_id)
                await threads.write(plan.chat_id, plan.messages)
        rows = []
        async with state.pool.connection() as conn, conn.transaction():
            for plan in plans:
                row = await chats_store.insert_imported(
                    conn, chat_id=plan.chat_id, user_id=user_id,
                    agent_id=plan.agent["id"] if plan.agent else None, title=plan.title,
                    status=plan.status, message_count=len(plan.messages),
                    last_message_at=_last_message_at(plan), thread_status=plan.thread_status,
                )  # fmt: skip
                if row is None:
                    raise await _refusal(conn, user_id, plan)
                rows.append(row)
                await feedback_store.insert_imported(conn, _feedback_rows(plan, user_id, now))
    except BaseException:
        for chat_id in written:
            await threads.delete(chat_id)
        raise
    return [chats_service.chat_out(row) for row in rows]
