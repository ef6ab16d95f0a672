"""The Agent Protocol's wire format: LangGraph's stream parts as the official server sends them.

A protocol run's event log holds these events, so a join (``Last-Event-ID``) replays exactly
what the first reader saw. Event names and payloads follow ``langgraph-api``:

    ``metadata`` {run_id, attempt} first · ``values`` state · ``updates`` {node: update} ·
    ``messages`` [chunk, metadata] (requested as ``messages-tuple``) ·
    ``messages/metadata``, ``messages/partial`` (requested as ``messages``) · ``custom`` ·
    ``debug`` · ``tasks`` (LangGraph's task payloads: each task's start {id, name, input,
    triggers}, then its result {id, name, error, interrupts, result}) · ``checkpoints``
    (LangGraph's checkpoint payload {config, parent_config, values, metadata, next, tasks}) ·
    ``events`` · ``error`` {error, message} · ``end`` {status} last (ours).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from typing import Any
from uuid import UUID

from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from langchain_core.messages import AIMessageChunk, BaseMessage, BaseMessageChunk
from pydantic import BaseModel

from graphs.events import Event, RunLog, encode
from graphs.runtime.inputs import ProtocolInput

FAILED = "The agent could not answer. Try again."
STREAM_MODES = (
    "values", "updates", "messages", "messages-tuple", "custom", "events", "debug", "tasks",
    "checkpoints",
)  # fmt: skip
# Requested mode -> the LangGraph stream mode that feeds it.
_SOURCES = {"messages-tuple": "messages", "events": None}


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: messages as LangChain dicts, interrupts as their fields."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, BaseMessage | BaseModel):
        return jsonable(value.model_dump())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return repr(value) if callable(value) else str(value)


def graph_modes(requested: Sequence[str]) -> tuple[str, ...]:
    """The LangGraph stream modes that feed the requested protocol modes."""
    return tuple(sorted({m for mode in requested if (m := _SOURCES.get(mode, mode)) is not None}))


class Translator:
    """Turns LangGraph stream parts into the protocol events the client asked for."""

    def __init__(self, requested: list[str]):
        self.requested = set(requested)
        self._partial: dict[str, BaseMessageChunk] = {}
        # The metadata of the last model call, converted and encoded: LangGraph hands the same
        # dict with every token of a call, and converting it per token was most of the cost.
        self._metadata: tuple[Any, Any, str] | None = None

    def feed(
        self, mode: str, payload: Any, namespace: tuple[str, ...] = ()
    ) -> Iterator[tuple[str, Any, str | None]]:
        """``(event, data, data as JSON or None)`` for each protocol event of one stream part."""
        suffix = "|" + "|".join(namespace) if namespace else ""
        if mode == "messages":
            chunk, metadata = payload
            if "messages-tuple" in self.requested:
                yield self._tuple(chunk, metadata, suffix)
            if "messages" in self.requested:
                for name, data in self._legacy(chunk, metadata, suffix):
                    yield name, data, None
        elif mode in self.requested:
            yield mode + suffix, jsonable(payload), None

    def _tuple(self, chunk: Any, metadata: Any, suffix: str) -> tuple[str, Any, str | None]:
        if self._metadata is None or self._metadata[0] is not metadata:
            converted = jsonable(metadata)
            self._metadata = (metadata, converted, encode(converted))
        _, meta, meta_text = self._metadata
        if not isinstance(chunk, BaseMessageChunk):
            return "messages" + suffix, [jsonable(chunk), meta], None
        # A chunk's dump holds plain JSON types already.
        data = chunk.model_dump()
        return "messages" + suffix, [data, meta], f"[{encode(data)},{meta_text}]"

    def _legacy(self, chunk: Any, metadata: Any, suffix: str) -> Iterator[tuple]:
        if not isinstance(chunk, BaseMessage) or chunk.id is None:
            return
        if not isinstance(chunk, BaseMessageChunk):
            # A complete message (a tool's result): no partials to accumulate.
            yield "messages/complete" + suffix, [jsonable(chunk)]
            return
        previous = self._partial.get(chunk.id)
        if previous is None:
            yield "messages/metadata" + suffix, {chunk.id: {"metadata": jsonable(metadata)}}
            whole = chunk
        else:
            whole = previous + chunk
        self._partial[chunk.id] = whole
        message = whole.model_dump()
        if isinstance(whole, AIMessageChunk):
            # The official server reports the accumulated message as an "ai" message.
            message["type"] = "ai"
            for key in ("tool_call_chunks", "chunk_position"):
                message.pop(key, None)
        yield "messages/partial" + suffix, [jsonable(message)]


class ProtocolWriter:
    """An Agent Protocol run's events: the stream modes its request asked for."""

    def __init__(self, log: RunLog, run: Mapping[str, Any], request: ProtocolInput) -> None:
        self.log = log
        self.run_id = str(run["id"])
        self.translator = Translator(request.stream_mode)
        self.modes = graph_modes(request.stream_mode)
        self.events = "events" in request.stream_mode

    def opened(self) -> None:
        self.log.append("metadata", {"run_id": self.run_id, "attempt": 1})

    def added(self, messages: Sequence[BaseMessage]) -> None:
        """The protocol streams what the graph does, not what the run put in."""

    def part(self, namespace: tuple[str, ...], mode: str, data: Any) -> None:
        for name, event_data, text in self.translator.feed(mode, data, namespace):
            self.log.append(name, event_data, text)

    def event(self, event: Mapping[str, Any]) -> None:
        self.log.append("events", jsonable(event))

    def failed(self, error: str) -> None:
        self.log.append(
            "error", {"error": error, "message": "The agent could not answer. Try again."}
        )


# What a thread's stream sends of each run with ``stream_mode=lifecycle``: its first event
# (``metadata``, or a native run's ``run``), its ``end`` and the official ``run_done``.
_LIFECYCLE = {"metadata", "run", "end"}


def thread_events(
    run_id: Any, after: int, batch: Sequence[Event], lifecycle_only: bool
) -> Iterator[tuple[str, str, str]]:
    """``(id, event, data as JSON)`` of what a thread's stream sends for a batch of one run's
    events read after ``after``: the run's events (only its lifecycle with
    ``lifecycle_only``), each with the id ``<run id>:<event id>``, and after its ``end`` the
    official server's ``metadata {"status": "run_done", "run_id"}`` (id: the end's + 1)."""
    for event in batch:
        if event.id > after and (not lifecycle_only or event.event in _LIFECYCLE):
            yield f"{run_id}:{event.id}", event.event, event.json
        if event.event == "end" and after <= event.id:
            done = {"status": "run_done", "run_id": str(run_id)}
            yield f"{run_id}:{event.id + 1}", "metadata", encode(done)


def known_total(returned: int, offset: int, limit: int) -> int | None:
    """How many items match a search, when a page of ``returned`` items from ``offset`` tells
    (a short page that is not past the end); ``None`` when only counting them does."""
    if returned < limit and (returned > 0 or offset == 0):
        return offset + returned
    return None


def pagination_headers(offset: int, limit: int, returned: int, total: int) -> dict[str, str]:
    """``X-Pagination-Total`` (how many match) and, unless this page is the last,
    ``X-Pagination-Next`` (the offset of the next one), the headers the official server sends
    with a search's page and its clients read."""
    headers = {"X-Pagination-Total": str(total)}
    if offset + returned < total:
        headers["X-Pagination-Next"] = str(offset + limit)
    return headers


def json_response(content: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    """An Agent Protocol answer: ``content`` (rows, datetimes, UUIDs…) as JSON, sent as it is.

    The routes declare a ``response_model`` for the documentation; a ``JSONResponse`` returned
    directly is not validated against it again.
    """
    return JSONResponse(jsonable_encoder(content), headers=headers)
