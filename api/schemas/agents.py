"""Agent requests and responses."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import AnyHttpUrl, BaseModel, Field, field_validator, model_validator

from api.schemas.common import NoNul, RequestModel, text_rules

AgentName = Annotated[str, text_rules(min_length=1, max_length=100), NoNul]
Description = Annotated[str, text_rules(max_length=1000), NoNul]
SystemPrompt = Annotated[str, text_rules(max_length=20_000, strip=False), NoNul]
ModelName = Annotated[str, text_rules(min_length=3, max_length=200), NoNul]
ToolName = Annotated[str, text_rules(min_length=1, max_length=64), NoNul]
AvatarUrl = Annotated[AnyHttpUrl, Field(max_length=2048)]


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
    tools_enabled: list[ToolName] = Field(default_factory=list, max_length=50)
    interest_area_ids: list[UUID] = Field(default_factory=list, max_length=50)

    @field_validator("tools_enabled")
    @classmethod
    def _toolsunique(cls, v: list[str]) -> list[str]:
        return unique(v, "tools_enabled") or []

    @field_validator("interest_area_ids")
    @classmethod
    def _areasunique(cls, v: list[UUID]) -> list[UUID]:
        return unique(v, "interest_area_ids") or []


class AgentUpdate(RequestModel):
    """A partial update: only the fields present change. Every update bumps ``version``."""

    name: AgentName | None = None
    description: Description | None = None
    system_prompt: SystemPrompt | None = None
    avatar_url: AvatarUrl | None = None
    model_name: ModelName | None = None
    tools_enabled: list[ToolName] | None = Field(None, max_length=50)
    interest_area_ids: list[UUID] | None = Field(None, max_length=50)

    @model_validator(mode="after")
    def _check(self) -> AgentUpdate:
        for name in ("name", "description", "system_prompt", "tools_enabled", "interest_area_ids"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        unique(self.tools_enabled, "tools_enabled")
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
    interest_area_ids: list[UUID]
    version: int
    created_at: datetime
    updated_at: datetime
