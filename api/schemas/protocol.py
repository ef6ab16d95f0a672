"""Request bodies of the Agent Protocol's assistants and threads (as ``langgraph-sdk`` sends)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from api.schemas.agents import (
    APPROVAL_DESCRIPTION,
    AgentName,
    AgentUpdate,
    Description,
    ModelName,
    SystemPrompt,
    ToolName,
    unique,
)
from api.schemas.chats import ThreadTtl, TtlStrategy
from api.schemas.common import JsonInt, MetadataLimits, MetadataNulFree, NoNul, NulFree, UniqueItems
from api.schemas.protocol_runs import BoundedMessages, WithMessages


class _Body(BaseModel):
    # Fields the official server knows and Switchboard has no use for (supersteps,
    # extract …) are accepted and ignored, so clients work unchanged.
    model_config = ConfigDict(extra="ignore")


Limit = Field(10, ge=1, le=1000)
Offset = Field(0, ge=0, le=1_000_000)
SortOrder = Literal["asc", "desc"]
# Metadata as stored (threads) and as filtered on (searches): bounded in size and depth.
Metadata = Annotated[
    dict[str, Any],
    MetadataNulFree,
    MetadataLimits,
    Field(description="At most 16 KiB as JSON, nested at most 5 levels deep"),
]


class AssistantSearch(_Body):
    metadata: Metadata | None = None
    graph_id: Annotated[str, NoNul] | None = Field(None, max_length=200)
    name: Annotated[str, NoNul] | None = Field(None, max_length=200)
    limit: JsonInt = Limit
    offset: JsonInt = Offset
    sort_by: Literal["assistant_id", "graph_id", "name", "created_at", "updated_at"] | None = None
    sort_order: SortOrder | None = None
    select: list[Annotated[str, NoNul]] | None = None


class AssistantVersionsSearch(_Body):
    metadata: Metadata | None = Field(
        None, description="Versions carry no metadata: only an absent or empty filter matches"
    )
    limit: JsonInt = Limit
    offset: JsonInt = Offset


class AssistantVersionChange(_Body):
    version: JsonInt = Field(
        ge=1,
        le=2_147_483_647,
        description="The version whose definition becomes current, as a new version",
    )


# An assistant is an agent: its fields are the agent's, with the agent's rules, so both APIs
# refuse the same input with the same 422 naming the field.
class AssistantConfigurable(_Body):
    system_prompt: SystemPrompt | None = None
    model_name: ModelName | None = None
    tools_enabled: Annotated[list[ToolName] | None, UniqueItems] = Field(None, max_length=50)
    tools_requiring_approval: Annotated[list[ToolName] | None, UniqueItems] = Field(
        None, max_length=50, description=APPROVAL_DESCRIPTION
    )

    @field_validator("tools_enabled", "tools_requiring_approval")
    @classmethod
    def _tools_unique(cls, v: list[str] | None, info: ValidationInfo) -> list[str] | None:
        return unique(v, info.field_name or "tools")


class AssistantConfig(_Body):
    configurable: AssistantConfigurable | None = None


class AssistantCreate(_Body):
    """A new assistant: the agent ``graph_id`` names, copied, with the changes given."""

    graph_id: Annotated[str, NoNul] = Field(min_length=1, max_length=200)
    name: AgentName | None = None
    description: Description | None = None
    config: AssistantConfig | None = None


class AssistantPatch(_Body):
    name: AgentName | None = None
    description: Description | None = None
    config: AssistantConfig | None = None

    def agent_update(self) -> AgentUpdate:
        fields: dict[str, Any] = {}
        if self.name is not None:
            fields["name"] = self.name
        if self.description is not None:
            fields["description"] = self.description
        if self.config and self.config.configurable:
            fields.update(self.config.configurable.model_dump(exclude_none=True))
        return AgentUpdate.model_validate(fields)


PRUNE_MAX_THREADS = 1000


class ThreadCreate(_Body):
    thread_id: UUID | None = None
    metadata: Metadata = Field(default_factory=dict)
    if_exists: Literal["raise", "do_nothing"] = "raise"
    ttl: ThreadTtl | None = None


class ThreadPatch(_Body):
    metadata: Metadata = Field(default_factory=dict)
    ttl: ThreadTtl | None = None


class ThreadPrune(_Body):
    thread_ids: list[UUID] = Field(
        max_length=PRUNE_MAX_THREADS, description="Threads of yours (one named twice counts once)"
    )
    strategy: TtlStrategy = "delete"


class ThreadSearch(_Body):
    metadata: Metadata | None = None
    ids: list[UUID] | None = Field(None, max_length=1000)
    status: Literal["idle", "busy", "interrupted", "error"] | None = None
    limit: JsonInt = Limit
    offset: JsonInt = Offset
    sort_by: Literal["thread_id", "status", "created_at", "updated_at"] | None = None
    sort_order: SortOrder | None = None


class CheckpointRef(_Body):
    checkpoint_id: Annotated[str, NoNul] | None = Field(None, max_length=200)


class StateUpdate(_Body):
    # An object: LangGraph takes a list of updates only with the special ``as_node`` values
    # of a copy or a reset, which this server does not offer.
    values: Annotated[dict[str, Any] | None, NulFree, BoundedMessages, WithMessages] = None
    as_node: Annotated[str, NoNul] | None = Field(None, max_length=200)
    checkpoint_id: Annotated[str, NoNul] | None = Field(None, max_length=200)
    checkpoint: CheckpointRef | None = None


class HistoryQuery(_Body):
    limit: JsonInt = Field(
        10,
        ge=1,
        le=1000,
        description="At most this many states; fewer once the page holds the server's "
        "`SWITCHBOARD_HISTORY_MAX_BYTES` of JSON (4 MiB by default; the first state is always "
        "sent). Ask again with `before` set to the last state's checkpoint for the next page",
    )
    before: Annotated[str, NoNul] | CheckpointRef | None = None
    metadata: Metadata | None = None
    checkpoint: CheckpointRef | None = None
