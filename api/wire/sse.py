"""Server-sent events: a run's event log as a ``text/event-stream`` response.

The only place that knows SSE framing; the event logs hold names and JSON.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from uuid import UUID

import anyio
from sse_starlette import EventSourceResponse, ServerSentEvent

from graphs.events import Event, EventSource

PING_SECONDS = 15
SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def wants_event_stream(accept: str | None) -> bool:
    return "text/event-stream" in (accept or "").lower()


def frame(event: Event) -> bytes:
    """One event as ``text/event-stream`` bytes (compact JSON never holds a raw newline)."""
    return f"id: {event.id}\r\nevent: {event.event}\r\ndata: {event.json}\r\n\r\n".encode()


def _ping() -> ServerSentEvent:
    return ServerSentEvent(comment="ping")


async def _events(
    run_log: EventSource, after: int, on_disconnect: Callable[[], object] | None
) -> AsyncIterator[ServerSentEvent | bytes]:
    # A comment at once: proxies and clients see the stream open before the first token.
    yield _ping()
    finished = False
    try:
        # Whatever the log holds beyond what was sent goes out in one write.
        async for batch in run_log.read_batches(after):
            yield b"".join(map(frame, batch))
        finished = True
    finally:
        # The client left before the end (sse-starlette closes this generator).
        if not finished and on_disconnect is not None:
            on_disconnect()


def run_stream(
    run_log: EventSource,
    *,
    after: int = 0,
    headers: dict[str, str] | None = None,
    on_disconnect: Callable[[], object] | None = None,
    shutdown: tuple[anyio.Event, float] | None = None,
) -> EventSourceResponse:
    """Stream the events of ``run_log`` with ids above ``after``, live until its ``end``.

    ``on_disconnect`` is called when the client leaves before the end; by default nothing
    happens to the run (disconnect is not stop). ``shutdown`` is the run manager's shutdown
    event and grace period: on SIGTERM sse-starlette sets the event and keeps the stream open a
    little longer than the grace period, so the run's ``end`` still gets through.
    """
    event, grace = shutdown if shutdown is not None else (None, 0.0)
    return EventSourceResponse(
        _events(run_log, after, on_disconnect),
        headers={**SSE_HEADERS, **(headers or {})},
        ping=PING_SECONDS,
        ping_message_factory=_ping,
        shutdown_event=event,
        shutdown_grace_period=grace + 5 if event is not None else 0,
    )


async def _thread_events(
    parts: AsyncIterator[list[tuple[str, str, str]]],
) -> AsyncIterator[ServerSentEvent | bytes]:
    yield _ping()
    async for batch in parts:
        if batch:
            yield b"".join(
                f"id: {sse_id}\r\nevent: {name}\r\ndata: {data}\r\n\r\n".encode()
                for sse_id, name, data in batch
            )


def thread_stream(
    parts: AsyncIterator[list[tuple[str, str, str]]],
    *,
    shutdown: tuple[anyio.Event, float] | None = None,
) -> EventSourceResponse:
    """A thread's stream: batches of ``(id, event, data as JSON)``, open until ``parts`` ends
    (the thread is gone, or the server shuts down) or the client leaves."""
    event, grace = shutdown if shutdown is not None else (None, 0.0)
    return EventSourceResponse(
        _thread_events(parts),
        headers=SSE_HEADERS,
        ping=PING_SECONDS,
        ping_message_factory=_ping,
        shutdown_event=event,
        shutdown_grace_period=grace + 5 if event is not None else 0,
    )


# The longest ``Last-Event-ID`` taken as an event id: 18 digits always fit a signed 64-bit int.
LAST_EVENT_ID_DIGITS = 18


def parse_last_event_id(value: str | None) -> int:
    """The event id a ``Last-Event-ID`` header names; 0 (replay from the start) when unusable.

    Only a plain ASCII decimal of 1 to 18 digits (``[0-9]{1,18}``) counts. Anything else (a
    sign, spaces, an exponent, non-ASCII digits such as ``²``, more digits) is ignored as if the
    header were absent: the stream is replayed from its first event, which is what a client
    resuming with an id we cannot use needs. An id beyond the run's last event only means that
    nothing already written is sent again: the client gets the live tail, if any.
    """
    if value and len(value) <= LAST_EVENT_ID_DIGITS and value.isascii() and value.isdigit():
        return int(value)
    return 0


def parse_thread_event_id(value: str | None) -> tuple[UUID, int] | None:
    """The run and event a thread stream's ``Last-Event-ID`` (``<run id>:<event id>``) names;
    ``None`` when it is absent or unusable (the stream then starts as if it were absent)."""
    if not value or value.count(":") != 1:
        return None
    run, _, event = value.partition(":")
    try:
        run_id = UUID(run)
    except ValueError:
        return None
    if not (event.isascii() and event.isdigit() and len(event) <= LAST_EVENT_ID_DIGITS):
        return None
    return run_id, int(event)
