"""Quotas, usage and the operator's statistics."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from api.schemas.common import JsonInteger

# The largest limits a setting or an admin may give (a bigint column holds them all).
MAX_RUNS = 1_000_000
MAX_TOKENS = 10**15

# As JSON means integers: 5.0 is one, true and "5" are not (api/schemas/common.py).
RunsLimit = Annotated[int, Field(ge=0, le=MAX_RUNS), JsonInteger] | None
TokensLimit = Annotated[int, Field(ge=0, le=MAX_TOKENS), JsonInteger] | None


class Quotas(BaseModel):
    """Limits per user; `null` is unlimited (or, for a user's own, the role's default)."""

    runs_per_minute: RunsLimit = Field(
        None, description="Runs started in any 60 s (`429 quota_runs_per_minute` past it)"
    )
    tokens_per_day: TokensLimit = Field(
        None,
        description="Tokens used in the UTC day: no run starts once they reach it "
        "(`429 quota_tokens_per_day`)",
    )
    active_runs: RunsLimit = Field(
        None, description="Runs running or queued at once (`429 quota_active_runs`)"
    )


class QuotasUpdate(Quotas):
    """A user's own limits: each field left out or `null` is the role's default; 0 allows
    none."""


class UserQuotas(BaseModel):
    user_id: UUID
    role: Literal["user", "admin"]
    overrides: Quotas = Field(description="The user's own limits (`null`: the role's default)")
    defaults: Quotas = Field(description="The role's defaults (the server's settings)")
    effective: Quotas = Field(description="What applies: the user's own, else the role's")


class UsageCounts(BaseModel):
    runs: int = Field(description="Runs that ended")
    input_tokens: int
    output_tokens: int
    total_tokens: int
    estimated_tokens: int = Field(
        description="The part of `total_tokens` that was estimated (the provider reported none)"
    )


class UsageDay(UsageCounts):
    day: date = Field(description="The UTC day the runs ended")
    model_name: str


class UserUsage(BaseModel):
    from_: date = Field(alias="from", serialization_alias="from")
    to: date
    items: list[UsageDay] = Field(description="Per day and model, oldest day first")
    totals: UsageCounts


class UsageGroup(UsageCounts):
    key: str = Field(description="The user's or agent's id, or the model's name")
    name: str | None = Field(description="The user's or agent's name")
    email: str | None = Field(description="The user's email (`group_by=user`)")


class AdminUsage(BaseModel):
    from_: date = Field(alias="from", serialization_alias="from")
    to: date
    group_by: Literal["user", "agent", "model"]
    items: list[UsageGroup] = Field(description="The largest total first")
    totals: UsageCounts


class RunsDay(BaseModel):
    day: date
    total: int
    by_status: dict[str, int]


class TableSize(BaseModel):
    name: str
    bytes: int


class Stats(BaseModel):
    from_: date = Field(alias="from", serialization_alias="from")
    to: date
    users: int = Field(description="Accounts now")
    chats: int = Field(description="Chats (threads) now")
    runs: int = Field(
        description="Runs created in the range (those still recorded: a chat's go with it)"
    )
    runs_by_status: dict[str, int] = Field(description="Those runs per status")
    runs_per_day: list[RunsDay] = Field(
        description="Those runs per UTC day (days with runs only), oldest first"
    )
    database_bytes: int = Field(description="The tables' total size")
    tables: list[TableSize] = Field(
        description="Each table of the schema with its indexes and TOAST, the largest first"
    )
