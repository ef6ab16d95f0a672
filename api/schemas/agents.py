"""Agent requests and responses."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from api.schemas.common import (
    NoNul,
    NotBlank,
    NotNull,
    RequestModel,
    SchemaOnly,
    UniqueItems,
    text_rules,
)
from graphs.models import MODEL_NAME_PATTERN
from tools import TOOLS
from tools.mcp import QUALIFIED_PATTERN

APPROVAL_DESCRIPTION = (
    "Tools whose every call waits for a person's decision (approve, edit or reject) before it "
    "runs: the run ends `interrupted` with an `approval_required` event, and "
    "`POST /chats/{id}/approvals` resumes it. A tool listed here that is not enabled has no "
    "effect until it is (then its calls wait from the start)"
)
AgentName = Annotated[str, text_rules(min_length=1, max_length=100), NotBlank]
Description = Annotated[str, text_rules(max_length=1000), NoNul]
SystemPrompt = Annotated[str, text_rules(max_length=20_000, strip=False), NoNul]
# The schema lists what the validators check later (a model this server can run, a tool it
# has), so a client can tell a usable value from its description alone.
ModelName = Annotated[
    str,
    text_rules(min_length=3, max_length=200),
    NotBlank,
    SchemaOnly(lambda schema: schema.update(pattern=MODEL_NAME_PATTERN)),
]
# A tool of this server, or of a registered MCP server (``mcp:<server>/<tool>``, one its last
# refresh listed).
MCP_TOOL_NAME_PATTERN = QUALIFIED_PATTERN
TOOL_NAME_MAX = 173


def _tool_name_schema(schema: dict[str, Any]) -> None:
    schema.pop("maxLength", None)
    schema.pop("minLength", None)
    schema["anyOf"] = [
        {"type": "string", "enum": sorted(TOOLS)},
        {"type": "string", "pattern": MCP_TOOL_NAME_PATTERN, "maxLength": TOOL_NAME_MAX},
    ]
    schema.pop("type", None)


ToolName = Annotated[
    str,
    text_rules(min_length=1, max_length=TOOL_NAME_MAX),
    NotBlank,
    SchemaOnly(_tool_name_schema),
]


def _at_most(length: int) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if isinstance(value, str) and len(value) > length:
            raise PydanticCustomError(
                "string_too_long",
                "String should have at most {max_length} characters",
                {"max_length": length},
            )
        return value

    return check


# The length bounds what was sent: the parsed URL may be longer (``http://a`` -> ``http://a/``).
AvatarUrl = Annotated[
    AnyHttpUrl,
    BeforeValidator(_at_most(2048)),
    SchemaOnly(lambda schema: schema.update(maxLength=2048, description="An http(s) URL")),
]


def unique(values: list | None, what: str) -> list | None:
    if values is not None and len(set(values)) != len(values):
        raise ValueError(f"{what} must not repeat")
    return values


class AgentCreate(RequestModel):
    name: AgentName
    description: Description = ""
    system_prompt: SystemPrompt = ""
    avatar_url: AvatarUrl | None = None
    model_name: ModelName | None = Field(
        None, description="`provider:model`; null uses the server's default model (see /info)"
    )
    tools_enabled: Annotated[list[ToolName], UniqueItems] = Field(
        default_factory=list, max_length=50
    )
    tools_requiring_approval: Annotated[list[ToolName], UniqueItems] = Field(
        default_factory=list, max_length=50, description=APPROVAL_DESCRIPTION
    )
    interest_area_ids: Annotated[list[UUID], UniqueItems] = Field(
        default_factory=list, max_length=50
    )

    @field_validator("tools_enabled", "tools_requiring_approval")
    @classmethod
    def _toolsunique(cls, v: list[str], info: ValidationInfo) -> list[str]:
        return unique(v, info.field_name or "tools") or []

    @field_validator("interest_area_ids")
    @classmethod
    def _areasunique(cls, v: list[UUID]) -> list[UUID]:
        return unique(v, "interest_area_ids") or []


class AgentUpdate(RequestModel):
    """A partial update: only the fields present change. Every update bumps ``version``."""

    name: Annotated[AgentName | None, NotNull] = None
    description: Annotated[Description | None, NotNull] = None
    system_prompt: Annotated[SystemPrompt | None, NotNull] = None
    avatar_url: AvatarUrl | None = None
    model_name: ModelName | None = None
    tools_enabled: Annotated[list[ToolName] | None, NotNull, UniqueItems] = Field(
        None, max_length=50
    )
    tools_requiring_approval: Annotated[list[ToolName] | None, NotNull, UniqueItems] = Field(
        None, max_length=50, description=APPROVAL_DESCRIPTION
    )
    interest_area_ids: Annotated[list[UUID] | None, NotNull, UniqueItems] = Field(
        None, max_length=50
    )

    @model_validator(mode="after")
    def _check(self) -> AgentUpdate:
        for name in (
            "name", "description", "system_prompt", "tools_enabled", "tools_requiring_approval",
            "interest_area_ids",
        ):  # fmt: skip
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        unique(self.tools_enabled, "tools_enabled")
        unique(self.tools_requiring_approval, "tools_requiring_approval")
        unique(self.interest_area_ids, "interest_area_ids")
        return self


class AgentOut(BaseModel):
    id: UUID
    slug: str = Field(description="Stable graph name, usable as an assistant id")
    name: str
    description: str
    system_prompt: str
    avatar_url: str | None
    model_name: str | None
    tools_enabled: list[str]
    tools_requiring_approval: list[str] = Field(description=APPROVAL_DESCRIPTION)
    interest_area_ids: list[UUID]
    kind: Literal["agent", "graph"] = Field(
        description="`agent`: built from this definition; `graph`: a graph of the server's "
        "langgraph.json, served as it is (its prompt, model and tools are its own)"
    )
    version: int
    created_at: datetime
    updated_at: datetime


class AgentVersionOut(BaseModel):
    """An agent's definition at one version, as it was when that version was made."""

    agent_id: UUID
    version: int
    name: str
    description: str
    system_prompt: str
    avatar_url: str | None
    model_name: str | None
    tools_enabled: list[str]
    tools_requiring_approval: list[str]
    interest_area_ids: list[UUID]
    created_at: datetime = Field(description="When this version became current")
