"""What the parts of the runtime pass each other: one run's working set, and the errors the
runtime raises to its callers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from langchain_core.messages import BaseMessage
from psycopg.errors import ForeignKeyViolation

from graphs.events import RunLog
from graphs.runtime.inputs import ProtocolInput, RunInput
from graphs.spec import AgentContext, AgentSpec
from storage.rows import RunRow
from storage.types import RunStatus


class ShuttingDown(Exception):
    """The server is shutting down and takes no new runs."""


class ChatBusy(Exception):
    """The chat already has an active run."""

    def __init__(self, active_run_id: UUID | None):
        super().__init__("chat has an active run")
        self.active_run_id = active_run_id


class ChatGone(Exception):
    """The chat was deleted while its run was being started (after the caller had read it)."""


@contextlib.contextmanager
def chat_gone_if_deleted() -> Iterator[None]:
    """A run's insert refused by its chat's foreign key is ``ChatGone``: the chat (or its
    user) was deleted since the caller read it."""
    try:
        yield
    except ForeignKeyViolation:
        raise ChatGone from None


class EventWriter(Protocol):
    """What one run's events look like to its clients: a wire format, written into its log.

    The runtime drives the graph and tells the writer what happened; the writer decides which
    events that makes. The API supplies one per kind of run input (``WriterFactory``), so the
    runtime knows no wire format. The last event, ``end {status, usage}``, is the runtime's own:
    it is how every reader (and ``wait_ended``) knows the run is over.
    """

    @property
    def modes(self) -> Sequence[str]:
        """The LangGraph stream modes this format reads (``updates`` and ``checkpoints`` are
        streamed anyway: the runtime counts messages and usage from them)."""

    @property
    def events(self) -> bool:
        """Drive the graph with ``astream_events`` and pass each event to ``event``."""

    def opened(self) -> None:
        """The run exists: the first event, written before its task starts."""

    def added(self, messages: Sequence[BaseMessage]) -> None:
        """Messages the runtime adds to the thread before the graph runs (the input)."""

    def part(self, namespace: tuple[str, ...], mode: str, data: Any) -> None:
        """One stream part of the graph (or of a subgraph, at ``namespace``)."""

    def event(self, event: Mapping[str, Any]) -> None:
        """One ``astream_events`` (v2) event, when ``events`` is set."""

    def failed(self, error: str) -> None:
        """The run failed with an exception named ``error`` (its text stays in the log)."""


# The writer for a run, from its log, its record and its input.
WriterFactory = Callable[[RunLog, Mapping[str, Any], RunInput], EventWriter]


@dataclass
class Tally:
    """What a run added to its thread, counted as it streamed (``exact``: nothing else did)."""

    exact: bool = True
    added: int = 0
    paused: bool = False
    # Paused for a person's decision on gated tool calls (graphs/approval.py).
    approval: bool = False


@dataclass
class RunContext:
    """One run while it executes: its record, what it runs, where its events go, and what it
    has counted so far. Built when the run starts (or is claimed), read by every step after."""

    run: RunRow
    spec: AgentSpec
    log: RunLog
    # The run's input as stored in ``runs.input``: a native message or a protocol request.
    input: RunInput
    writer: EventWriter
    context: AgentContext
    # Whether tool calls a stopped run left open must be answered first; ``None``: ask.
    needs_closing: bool | None = None
    usage: dict[str, int] = field(default_factory=dict)
    tally: Tally = field(default_factory=Tally)
    status: RunStatus = "success"
    error: str | None = None
    # ``time.monotonic()`` when it began executing (after any queue) and when its first token
    # streamed; ``None`` until then (stamped by the ``RunObserver``).
    started_at: float | None = None
    first_token_at: float | None = None

    @property
    def run_id(self) -> UUID:
        return self.run["id"]

    @property
    def chat_id(self) -> str:
        return str(self.run["chat_id"])

    @property
    def protocol(self) -> bool:
        return isinstance(self.input, ProtocolInput)


class RunObserver:
    """What the runtime tells of its runs as they go (``api/metrics.py`` counts it); this one
    only stamps the times. Called on the run's task: each call must cost next to nothing."""

    def started(self, ctx: RunContext) -> None:
        """The run begins executing here (a queued run: once its turn came)."""
        ctx.started_at = time.monotonic()

    def first_token(self, ctx: RunContext) -> None:
        """The first ``messages`` part of the run streamed (a model's first token)."""
        ctx.first_token_at = time.monotonic()

    def ended(self, ctx: RunContext) -> None:
        """The run ended with ``ctx.status`` (its end recorded, its log closed)."""

    def claimed(self, run: RunRow) -> None:
        """A worker loop claimed ``run`` from the queue in Postgres."""


class Starts:
    """Who waits for the next run of a chat this process records (a thread's stream)."""

    def __init__(self) -> None:
        self._waiting: dict[str, set[asyncio.Event]] = {}

    def announce(self, chat_id: str) -> None:
        for started in self._waiting.get(chat_id, ()):
            started.set()

    @contextlib.contextmanager
    def watch(self, chat_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever a run of the chat is recorded here (clear it to wait for the
        next one); runs recorded by other processes are not seen."""
        started = asyncio.Event()
        self._waiting.setdefault(chat_id, set()).add(started)
        try:
            yield started
        finally:
            waiting = self._waiting.get(chat_id)
            if waiting is not None:
                waiting.discard(started)
                if not waiting:
                    del self._waiting[chat_id]
