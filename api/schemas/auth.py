"""Auth requests and responses."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, EmailStr, Field

from api.schemas.common import RequestModel, Text

Password = Text(min_length=8, max_length=256, strip=False)


class RegisterRequest(RequestModel):
    name: Text(min_length=1, max_length=100)
    email: EmailStr = Field(max_length=254)
    password: Password


class LoginRequest(RequestModel):
    email: Text(min_length=1, max_length=254)
    password: Text(min_length=1, max_length=256, strip=False)


class RefreshRequest(RequestModel):
    refresh_token: Text(min_length=1, max_length=200)


class UserOut(BaseModel):
    id: UUID
    name: str
    email: str
    role: Literal["user", "admin"]
    created_at: datetime
    onboarding_completed: bool


class AuthResponse(BaseModel):
    user: UserOut
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (the OAuth2 token type)
    expires_in: int = Field(description="Seconds until the access token expires")
