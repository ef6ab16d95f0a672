"""Auth requests and responses."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, EmailStr, Field

from api.schemas.common import NoNul, RequestModel, text_rules

Password = Annotated[str, text_rules(min_length=8, max_length=256, strip=False), NoNul]
Name = Annotated[str, text_rules(min_length=1, max_length=100), NoNul]
LoginEmail = Annotated[str, text_rules(min_length=1, max_length=254), NoNul]
LoginPassword = Annotated[str, text_rules(min_length=1, max_length=256, strip=False), NoNul]
RefreshToken = Annotated[str, text_rules(min_length=1, max_length=200), NoNul]


class RegisterRequest(RequestModel):
    name: Name
    email: EmailStr = Field(max_length=254)
    password: Password


class LoginRequest(RequestModel):
    email: LoginEmail
    password: LoginPassword


class RefreshRequest(RequestModel):
    refresh_token: RefreshToken


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
