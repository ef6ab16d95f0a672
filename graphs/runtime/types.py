"""What the parts of the runtime pass each other: one run's working set, and the errors the
runtime raises to its callers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from graphs.events import RunLog
from graphs.spec import AgentContext, AgentSpec
from storage.types import RunStatus


class ShuttingDown(Exception):
    """The server is shutting down and takes no new runs."""


class ChatBusy(Exception):
    """The chat already has an active run."""

    def __init__(self, active_run_id: UUID | None):
        super().__init__("chat has an active run")
        self.active_run_id = active_run_id


@dataclass
class Tally:
    """What a run added to its thread, counted as it streamed (``exact``: nothing else did)."""

    exact: bool = True
    added: int = 0
    paused: bool = False


@dataclass
class RunContext:
    """One run while it executes: its record, what it runs, where its events go, and what it
    has counted so far. Built when the run starts (or is claimed), read by every step after."""

    run: dict[str, Any]
    spec: AgentSpec
    log: RunLog
    # The run's input as stored in ``runs.input``: a native message or a protocol request.
    payload: dict[str, Any]
    context: AgentContext
    # Whether tool calls a stopped run left open must be answered first; ``None``: ask.
    needs_closing: bool | None = None
    usage: dict[str, int] = field(default_factory=dict)
    tally: Tally = field(default_factory=Tally)
    status: RunStatus = "success"
    error: str | None = None

    @property
    def run_id(self) -> UUID:
        return self.run["id"]

    @property
    def chat_id(self) -> str:
        return str(self.run["chat_id"])

    @property
    def protocol(self) -> bool:
        return self.payload.get("kind") == "protocol"
