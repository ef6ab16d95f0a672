"""API keys: what a user asks for, and what they see of their keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, Field

from api.schemas.common import JsonBool, JsonInteger, NotBlank, RequestModel, text_rules

KeyName = Annotated[str, text_rules(min_length=1, max_length=100), NotBlank]
# Ten years: past that, a key that never expires says what is meant.
ExpiresInDays = Annotated[int, Field(ge=1, le=3650), JsonInteger]


class ApiKeyCreate(RequestModel):
    name: KeyName = Field(description="What the key is for, to tell your keys apart")
    expires_in_days: ExpiresInDays | None = Field(
        None, description="The key stops working this many days from now; null: never"
    )
    admin: JsonBool = Field(
        False,
        description="Administrators only (403 `admin_required` for anyone else): the key "
        "acts as an administrator. Without it a key acts as a user, whoever made it",
    )


class ApiKeyOut(BaseModel):
    id: UUID = Field(description="Revoke the key with this id")
    name: str
    prefix: str = Field(description="The key's first characters, to recognize it (not secret)")
    admin: bool = Field(description="Whether the key acts as an administrator")
    created_at: datetime
    last_used_at: datetime | None = Field(
        description="When the key was last used, to the minute (uses within a minute of the "
        "recorded one are not recorded); null: never used"
    )
    expires_at: datetime | None = Field(description="null: the key never expires")


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(
        description="The key itself, shown only now (only its hash is kept). Send it as "
        "`Authorization: Bearer <key>` or `x-api-key: <key>`",
        pattern="^sb_live_[0-9A-Za-z]{43}$",
    )
