"""Auth requests and responses."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import email_validator
from pydantic import AfterValidator, BaseModel, Field, StringConstraints
from pydantic_core import PydanticCustomError

from api.schemas.common import NoNul, NotBlank, RequestModel, SchemaOnly, text_rules

Password = Annotated[str, text_rules(min_length=8, max_length=256, strip=False), NoNul]
Name = Annotated[str, text_rules(min_length=1, max_length=100), NotBlank]
LoginEmail = Annotated[str, text_rules(min_length=1, max_length=254), NotBlank]
LoginPassword = Annotated[str, text_rules(min_length=1, max_length=256, strip=False), NoNul]
RefreshToken = Annotated[str, text_rules(min_length=1, max_length=200), NotBlank]


def _email(value: str) -> str:
    # pydantic's EmailStr, except that addresses on the special-use ``.test`` domain (RFC 6761)
    # are taken: no mail is ever sent, and test suites and demo accounts use them.
    try:
        checked = email_validator.validate_email(
            value, check_deliverability=False, test_environment=True
        )
    except email_validator.EmailNotValidError as exc:
        raise PydanticCustomError(
            "value_error", "value is not a valid email address: {reason}", {"reason": str(exc)}
        ) from None
    return checked.normalized


Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=254),
    AfterValidator(_email),
    SchemaOnly(lambda schema: schema.update(format="email")),
]


class RegisterRequest(RequestModel):
    name: Name
    email: Email
    password: Password


class LoginRequest(RequestModel):
    email: LoginEmail
    password: LoginPassword


class RefreshRequest(RequestModel):
    refresh_token: RefreshToken


class AccountDeletion(RequestModel):
    """The account's password again: a stolen access token alone cannot delete an account."""

    password: LoginPassword = Field(description="The account's password")


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
