"""What the Agent Protocol routes answer, in the shapes of the official ``langgraph-api`` server.

Documentation only: the handlers build their JSON themselves (``assistant_json``,
``thread_json``, ``state_json`` in ``api.services.threads``; ``run_json`` in
``api.services.protocol_runs``) and return it as a ``JSONResponse``, which FastAPI sends as it
is. These models say what that JSON holds, for ``/openapi.json`` and for the tests that check
real answers against them. Graph state and other graph-defined content is ``Any``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from api.schemas.messages import WebhookOut
from storage.types import MultitaskStrategy


class AssistantConfigurableOut(BaseModel):
    model_name: str | None = Field(description="The agent's model; null: the server's default")
    tools_enabled: list[str] = Field(description="The agent's enabled tools, in order")
    tools_requiring_approval: list[str] = Field(
        description="The tools whose calls wait for a person's decision (an interrupt)"
    )


class AssistantConfigOut(BaseModel):
    configurable: AssistantConfigurableOut


class AssistantVersion(BaseModel):
    """An assistant as it was at one version (the official server's ``AssistantVersion``)."""

    assistant_id: UUID
    graph_id: str = Field(description="The agent's slug")
    config: AssistantConfigOut
    context: dict[str, Any] = Field(description="Always empty")
    metadata: dict[str, Any] = Field(description="Always empty")
    name: str
    description: str | None
    version: int
    created_at: datetime = Field(description="When this version became current")


class Assistant(AssistantVersion):
    """An assistant: an agent, whose slug is the graph id (at its current version)."""

    created_at: datetime
    updated_at: datetime


class GraphSchema(BaseModel):
    """JSON schemas of an assistant's graph; null where the graph gives none."""

    graph_id: str
    input_schema: dict[str, Any] | None
    output_schema: dict[str, Any] | None
    state_schema: dict[str, Any] | None
    config_schema: dict[str, Any] | None
    context_schema: dict[str, Any] | None


class AssistantGraph(BaseModel):
    """The graph's drawing, as LangChain's ``Graph.to_json`` gives it."""

    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]


class Interrupt(BaseModel):
    """A LangGraph interrupt: the graph waits for input."""

    value: Any
    id: str | None = None
    response_schema: dict[str, Any] | None = None


class CheckpointConfig(BaseModel):
    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str | None = Field(description="Null: the thread has no checkpoint yet")
    checkpoint_map: dict[str, Any] | None = None


class ThreadTask(BaseModel):
    """A task of the next step (with its interrupts while the thread waits)."""

    id: str
    name: str
    path: list[Any]
    error: str | None = Field(description="The error's type only, never its text")
    interrupts: list[Interrupt]
    checkpoint: CheckpointConfig | None = Field(description="Always null")
    state: ThreadState | None = Field(description="Always null")
    result: Any


class ThreadState(BaseModel):
    """A thread's state at one checkpoint."""

    values: dict[str, Any]
    next: list[str]
    tasks: list[ThreadTask]
    checkpoint: CheckpointConfig
    metadata: dict[str, Any]
    created_at: datetime | None = Field(description="Null: the thread has no checkpoint yet")
    parent_checkpoint: CheckpointConfig | None
    interrupts: list[Interrupt]


ThreadTask.model_rebuild()


class ThreadStateUpdateResponse(BaseModel):
    """The checkpoint a state update wrote."""

    checkpoint: CheckpointConfig


class ThreadTtlInfo(BaseModel):
    strategy: Literal["delete", "keep_latest"]
    ttl_minutes: float
    expires_at: datetime


class Thread(BaseModel):
    """A thread: a chat, with its latest values."""

    thread_id: UUID
    created_at: datetime
    updated_at: datetime
    state_updated_at: datetime
    metadata: dict[str, Any] = Field(
        description="With `graph_id` and `assistant_id` once bound to an agent"
    )
    status: Literal["idle", "busy", "interrupted", "error"]
    values: dict[str, Any]
    interrupts: dict[str, list[Interrupt]] = Field(description="The interrupts, by task id")
    config: dict[str, Any] = Field(description="Always empty")
    error: None = Field(description="Always null")


class ThreadWithTtl(Thread):
    """A thread, with `ttl` when `?include=ttl` asks for it."""

    ttl: ThreadTtlInfo | None = Field(
        None,
        description="With `?include=ttl` only: when the thread expires (null: never), by its "
        "own ttl or the server's default",
    )


class ThreadPruneResponse(BaseModel):
    pruned_count: int = Field(
        description="Threads pruned (deleted, or cut to their latest checkpoint)"
    )


class RunKwargs(BaseModel):
    """What the run was asked to do."""

    input: Any
    command: Any
    config: Any
    stream_mode: Any


class Run(BaseModel):
    run_id: UUID
    thread_id: UUID
    assistant_id: UUID
    created_at: datetime
    updated_at: datetime
    # A cancelled run shows as interrupted, as on the official server; never "timeout".
    status: Literal["pending", "running", "error", "success", "interrupted"]
    metadata: dict[str, Any]
    kwargs: RunKwargs
    multitask_strategy: MultitaskStrategy
    webhook: WebhookOut | None = Field(
        description="Switchboard's: the run's webhook and its delivery attempts; null without one"
    )
