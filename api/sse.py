"""Server-sent events: a run's event log as a ``text/event-stream`` response."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent

from graphs.events import RunLog

PING_SECONDS = 15
SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def wants_event_stream(accept: str | None) -> bool:
    return "text/event-stream" in (accept or "").lower()


def _ping() -> ServerSentEvent:
    return ServerSentEvent(comment="ping")


def encode(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)


async def _events(run_log: RunLog, after: int) -> AsyncIterator[ServerSentEvent]:
    # A comment at once: proxies and clients see the stream open before the first token.
    yield _ping()
    async for event in run_log.read(after):
        yield ServerSentEvent(data=encode(event.data), event=event.event, id=str(event.id))


def run_stream(
    run_log: RunLog, *, after: int = 0, headers: dict[str, str] | None = None
) -> EventSourceResponse:
    """Stream the events of ``run_log`` with ids above ``after``, live until its ``end``."""
    return EventSourceResponse(
        _events(run_log, after),
        headers={**SSE_HEADERS, **(headers or {})},
        ping=PING_SECONDS,
        ping_message_factory=_ping,
    )
