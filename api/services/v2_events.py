"""The v2 event stream of a thread and its commands (``langgraph-api`` ≥ 0.10, what the JS
SDK's ``ThreadStream`` speaks over SSE or a WebSocket).

A thread's v2 stream is its runs, oldest first, each read from its own event log and
translated (``api/wire/v2.py``), then each run the thread gets next, live. ``seq`` counts the
translated events of the whole thread from 1, whatever a reader's filter lets through, so a
reader that reconnects with ``since`` (the last ``seq`` it got) receives exactly the events
after it: every connection reads the same logs in the same order and numbers them the same.
The count covers the runs whose logs are still held (a finished run's log is kept for
``SWITCHBOARD_RUN_LOG_RETENTION_SECONDS``); once an older run's log expires, the numbers start
later (the official server's buffer has the same kind of bound).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from uuid import UUID, uuid4

from pydantic import ValidationError

from api.errors import AppError, NotFound, Unauthorized, quota_detail
from api.schemas.protocol_runs import RunCreate
from api.schemas.v2 import Command, EventStreamRequest
from api.services import api_keys
from api.services import protocol_runs as runs_service
from api.state import AppState
from api.wire.v2 import RUN_STREAM_MODES, Filter, RunTranslator
from graphs.events import Event
from graphs.runtime.types import ChatBusy, ChatGone, ShuttingDown
from storage import chats as chats_store
from storage import runs as runs_store
from storage import users as users_store
from storage.quotas import QuotaExceeded
from storage.rows import RunRow
from storage.types import ACTIVE

log = logging.getLogger(__name__)

THREAD_NOT_FOUND = "Thread not found"
# What this server answers, over HTTP and a WebSocket; the subscription commands only over a
# WebSocket (over HTTP each ``stream/events`` connection is its own subscription).
COMMANDS = frozenset(
    {
        "run.start", "input.respond", "subscription.subscribe", "subscription.unsubscribe",
        "subscription.reconnect",
    }
)  # fmt: skip


class CommandError(Exception):
    """A command answered with the protocol's error envelope; ``status`` for HTTP."""

    def __init__(self, error: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.error, self.message, self.status = error, message, status


def error_envelope(command_id: Any, error: str, message: str) -> dict[str, Any]:
    """The official error shape, with this project's ``detail`` and ``code`` beside it."""
    return {
        "type": "error", "id": command_id, "error": error, "message": message,
        "detail": message, "code": error,
    }  # fmt: skip


def success(command_id: int, result: dict[str, Any], seq: int) -> dict[str, Any]:
    return {
        "type": "success", "id": command_id, "result": result,
        "meta": {"applied_through_seq": seq},
    }  # fmt: skip


async def check_thread(state: AppState, user_id: UUID, thread_id: UUID) -> None:
    """404 unless ``thread_id`` is one of the user's threads."""
    async with state.pool.connection() as conn:
        if await chats_store.get_owned(conn, thread_id, user_id) is None:
            raise NotFound(THREAD_NOT_FOUND)


# A finished run's log goes after the retention, at the next sweep (or read) of the logs: a
# run that ended this much longer ago has nothing left to read.
LOG_MARGIN_SECONDS = 120
# The most runs of a thread one connection reads back (the newest ones).
MAX_RUNS_READ = 1000
# Where a run stands among its thread's runs: they are read, and numbered, in this order.
RunKey = tuple[Any, str]


def run_key(run: Any) -> RunKey:
    return (run["created_at"], str(run["id"]))


async def current_run(state: AppState, thread_id: UUID) -> RunKey | None:
    """The thread's current run (its oldest active one, else its newest), where a stream or a
    subscription without ``since`` starts, as the official server replays the current run:
    a run that ended just before a client looked is still replayed, while runs before it are
    not (the JS SDK would take their terminal ``lifecycle`` for the end of the run it
    started). ``None`` when the thread has no run."""
    async with state.pool.connection() as conn:
        run, _ = await runs_store.current_of_chat(conn, thread_id)
    return run_key(run) if run is not None else None


async def thread_events(
    state: AppState, user_id: UUID, thread_id: UUID
) -> AsyncIterator[list[tuple[RunKey, dict[str, Any]]]]:
    """Every v2 event of the user's thread, numbered, with its run's key, in batches as they
    are available: its runs from the oldest whose log is held, then live, until the thread is
    deleted, the server shuts down or the reader leaves."""
    seq = 0
    translators: dict[Any, RunTranslator] = {}
    async for run, batch in _thread_logs(state, user_id, thread_id):
        translator = translators.get(run["id"])
        if translator is None:
            # Runs come one after the other: the previous one's is done with.
            translators = {run["id"]: (translator := RunTranslator(run["id"]))}
        key = run_key(run)
        out = []
        for event in translator.feed(batch):
            seq += 1
            event["seq"] = seq
            out.append((key, event))
        if out:
            yield out


async def _thread_logs(
    state: AppState, user_id: UUID, thread_id: UUID
) -> AsyncIterator[tuple[RunRow, list[Event]]]:
    """The thread's runs' log events, in batches: the runs whose logs may be held, listed at
    once, then from the newest of them (or the next run) as a thread's stream follows them."""
    async with state.pool.connection() as conn:
        # Older runs' logs have expired: looking for each would cost a query per run of the
        # thread, on every connection (a long chat has hundreds).
        recent = await runs_store.recent_of_chat(
            conn, thread_id, state.settings.run_log_retention_seconds + LOG_MARGIN_SECONDS,
            MAX_RUNS_READ,
        )  # fmt: skip
        latest = None if recent else (await runs_store.current_of_chat(conn, thread_id))[0]
    for run in recent[:-1]:
        source = await state.runs.events(run["id"], active=run["status"] in ACTIVE)
        if source is not None:
            async for batch in source.read_batches(0):
                yield run, batch
    # The newest, live, then each run the thread gets next (with none held: from the next).
    first = recent[-1] if recent else None
    async for run, _, batch in runs_service.ThreadRuns(state, user_id, thread_id, first, 0, latest):
        yield run, batch


def run_request(params: dict[str, Any]) -> RunCreate:
    """``run.start``'s params as a protocol run that records what the v2 events are made of.
    The thread is created if it does not exist yet (the SDK names a new thread itself)."""
    body = {
        **params,
        "stream_mode": RUN_STREAM_MODES,
        "stream_subgraphs": True,
        "if_not_exists": "create",
    }
    try:
        return RunCreate.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "params"
        raise CommandError("invalid_argument", f"run.start {where}: {first['msg']}") from None


async def start_run(
    state: AppState, user_id: UUID, thread_id: UUID, params: dict[str, Any]
) -> dict[str, Any]:
    """``run.start``: a run on the user's thread (created when missing); its id. Refused as
    ``POST /threads/{id}/runs`` refuses (a thread that is another user's is a 404 like a
    missing one, a busy one with ``reject`` a 409)."""
    if not isinstance(params.get("assistant_id"), str) or not params["assistant_id"]:
        raise CommandError("invalid_argument", "run.start requires an assistant_id.")
    run, _, _ = await runs_service.start(state, user_id, thread_id, run_request(params))
    return {"run_id": str(run["id"])}


async def respond(
    state: AppState, user_id: UUID, thread_id: UUID, params: dict[str, Any]
) -> dict[str, Any]:
    """``input.respond``: answer the interrupts the thread waits on (``{interrupt_id,
    response}``, or several as ``responses``) with a run of the thread's agent that resumes
    them (``command: {resume: {interrupt_id: response, …}}``)."""
    entries = params.get("responses") if "responses" in params else [params]
    if not isinstance(entries, list) or not entries:
        raise CommandError("invalid_argument", "input.respond requires responses.")
    resume: dict[str, Any] = {}
    for entry in entries:
        interrupt_id = entry.get("interrupt_id") if isinstance(entry, dict) else None
        if not isinstance(interrupt_id, str) or not interrupt_id:
            raise CommandError("invalid_argument", "input.respond requires an interrupt_id.")
        resume[interrupt_id] = entry.get("response")
    async with state.pool.connection() as conn:
        chat = await chats_store.get_owned(conn, thread_id, user_id)
    if chat is None:
        raise NotFound(THREAD_NOT_FOUND)
    # The run's config and metadata are the thread's own (the official fields ``update`` and
    # ``goto`` are not taken: a resume only answers).
    body = {"assistant_id": str(chat["agent_id"]), "command": {"resume": resume}}
    await runs_service.start(state, user_id, thread_id, run_request(body))
    return {}


async def socket_user(
    state: AppState, authorization: str | None, api_key: str | None = None
) -> UUID | None:
    """The user a WebSocket's ``Authorization: Bearer`` header names (a valid access token or
    API key of an account that still exists), else its ``x-api-key`` header; ``None``
    otherwise."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        token = api_key or ""
    token = token.strip()
    if not token:
        return None
    if api_keys.is_api_key(token):
        try:
            return (await api_keys.authenticate(state.pool, token))["id"]
        except Unauthorized:
            return None
    user_id = state.tokens.subject(token)
    if user_id is None:
        return None
    async with state.pool.connection() as conn:
        user = await users_store.get(conn, user_id)
    return user_id if user is not None else None


async def owns(state: AppState, user_id: UUID, thread_id: UUID) -> bool:
    async with state.pool.connection() as conn:
        return await chats_store.get_owned(conn, thread_id, user_id) is not None


async def http_command(
    state: AppState, user_id: UUID, thread_id: UUID, method: str, params: dict[str, Any]
) -> dict[str, Any]:
    """One command over HTTP: ``run.start``, ``input.respond``; the rest is refused as the
    official server does (``unknown_command``), subscriptions with ``unsupported`` (they are
    WebSocket commands)."""
    if method == "run.start":
        return await start_run(state, user_id, thread_id, params)
    if method == "input.respond":
        return await respond(state, user_id, thread_id, params)
    # Nothing about a thread that is not the user's, not even which commands it would take.
    await check_thread(state, user_id, thread_id)
    if method not in COMMANDS:
        raise CommandError("unknown_command", f"Unknown protocol command: {method}", 400)
    raise CommandError(
        "unsupported",
        f"{method} is a WebSocket command; over HTTP, POST /threads/{{id}}/stream/events "
        "with the filter opens a subscription",
        400,
    )


# The events a WebSocket keeps for subscriptions made after them (the official server's
# buffer size); a ``since`` older than what is kept is a ``resume_gap``.
SOCKET_BUFFER = 10_000


class _Subscription:
    def __init__(self, sub_id: str, event_filter: Filter, since: int, start: RunKey | None) -> None:
        self.id, self.filter, self.since, self.start = sub_id, event_filter, since, start

    def wants(self, key: RunKey, event: dict[str, Any]) -> bool:
        # Nothing up to ``since`` (or before the run it starts at), whether the socket had
        # read it when the subscription was made or reads it later.
        return (
            event["seq"] > self.since
            and (self.start is None or key >= self.start)
            and self.filter.matches(event)
        )


class SocketSession:
    """One WebSocket on a thread: it reads the thread's v2 events from the moment the thread is
    the user's (at once, or after the ``run.start`` that creates it) and sends each to the
    socket once when any subscription matches it; a new subscription first gets the kept
    events it matches (after its ``since``). ``send`` writes one JSON message."""

    def __init__(
        self, state: AppState, user_id: UUID, thread_id: UUID,
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:  # fmt: skip
        self.state, self.user_id, self.thread_id = state, user_id, thread_id
        self._send = send
        self._lock = asyncio.Lock()
        self._kept: deque[tuple[RunKey, dict[str, Any]]] = deque(maxlen=SOCKET_BUFFER)
        self._subscriptions: dict[str, _Subscription] = {}
        self._reader: asyncio.Task[None] | None = None
        self.seq = 0
        # Set once the reader has ended: the thread is gone, the server stops, or (``failed``)
        # reading broke.
        self.ended = asyncio.Event()
        self.failed = False

    async def open(self) -> None:
        if await owns(self.state, self.user_id, self.thread_id):
            self._follow()

    def _follow(self) -> None:
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for batch in thread_events(self.state, self.user_id, self.thread_id):
                async with self._lock:
                    for key, event in batch:
                        self._kept.append((key, event))
                        self.seq = event["seq"]
                        if any(s.wants(key, event) for s in self._subscriptions.values()):
                            await self._send(event)
        except Exception:
            self.failed = True
            log.exception("reading thread %s for a v2 WebSocket failed", self.thread_id)
        finally:
            self.ended.set()

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    async def send_answer(self, answer: dict[str, Any]) -> None:
        # One writer at a time: a command's answer never interleaves with an event.
        async with self._lock:
            await self._send(answer)

    async def handle(self, raw: str) -> dict[str, Any]:
        """The answer to one message of the client."""
        try:
            command = Command.model_validate_json(raw)
        except ValidationError:
            return error_envelope(
                None, "invalid_argument",
                "Protocol commands must be JSON objects with an integer id and a string method.",
            )  # fmt: skip
        try:
            result = await self._dispatch(command.method, command.params)
        except CommandError as exc:
            return error_envelope(command.id, exc.error, exc.message)
        except AppError as exc:
            # What HTTP answers with a status (not_found, conflict …), in the envelope.
            return error_envelope(command.id, exc.code, exc.detail)
        except ChatBusy as exc:
            detail = f"The chat already has an active run: {exc.active_run_id}"
            return error_envelope(command.id, "conflict", detail)
        except ChatGone:
            return error_envelope(command.id, "not_found", "Chat not found")
        except QuotaExceeded as exc:
            return error_envelope(command.id, exc.code, quota_detail(exc))
        except ShuttingDown:
            detail = "The server is shutting down; retry on another instance"
            return error_envelope(command.id, "unavailable", detail)
        except Exception:
            log.exception("v2 command %s failed on thread %s", command.method[:100], self.thread_id)
            return error_envelope(command.id, "internal_error", "Internal server error")
        return success(command.id, result, self.seq)

    async def _dispatch(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "run.start":
            result = await start_run(self.state, self.user_id, self.thread_id, params)
            self._follow()  # the thread is the user's now, if it was not yet
            return result
        if method == "input.respond":
            return await respond(self.state, self.user_id, self.thread_id, params)
        if method in ("subscription.subscribe", "subscription.reconnect"):
            return await self._subscribe(method, params)
        if method == "subscription.unsubscribe":
            sub_id = params.get("subscription_id")
            if not isinstance(sub_id, str):
                raise CommandError(
                    "invalid_argument", "subscription.unsubscribe requires a subscription_id."
                )
            async with self._lock:
                if self._subscriptions.pop(sub_id, None) is None:
                    raise CommandError("no_such_subscription", "Unknown subscription.", 404)
            return {}
        raise CommandError("unknown_command", f"Unknown protocol command: {method[:100]}")

    async def _subscribe(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            request = EventStreamRequest.model_validate(params)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "params"
            raise CommandError("invalid_argument", f"{method} {where}: {first['msg']}") from None
        if method == "subscription.reconnect" and request.since is None:
            raise CommandError("invalid_argument", f"{method} requires a non-negative since.")
        since = request.since or 0
        sub_id = params.get("subscription_id")
        if method != "subscription.reconnect" or not isinstance(sub_id, str) or not sub_id:
            sub_id = str(uuid4())
        # Without ``since``, from the thread's current run; with it, exactly after it.
        start = None
        if request.since is None:
            start = await current_run(self.state, self.thread_id)
        subscription = _Subscription(
            sub_id, Filter(request.channels, request.namespaces, request.depth), since, start
        )
        async with self._lock:
            oldest = self._kept[0][1]["seq"] if self._kept else None
            if since and oldest is not None and since + 1 < oldest:
                raise CommandError(
                    "resume_gap", f"since={since} is older than the oldest event kept ({oldest})"
                )
            replayed = 0
            for key, event in self._kept:
                if subscription.wants(key, event):
                    await self._send(event)
                    replayed += 1
            self._subscriptions[sub_id] = subscription
        return {"subscription_id": sub_id, "replayed_events": replayed}
