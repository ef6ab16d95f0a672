"""``/auth``: registration, login and its failure limit, refresh rotation, logout, access tokens."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import psycopg
import pytest

from api.app import create_app
from api.security import hash_refresh_token
from storage.db import connection_kwargs
from tests.conftest import (
    JWT_SECRET,
    PASSWORD,
    RegisterFn,
    User,
    assert_error,
    make_settings,
    running,
)

AUTH_KEYS = {"user", "access_token", "refresh_token", "token_type", "expires_in"}
USER_KEYS = {"id", "name", "email", "role", "created_at", "onboarding_completed"}
BAD_CREDENTIALS = {"detail": "Incorrect email or password", "code": "unauthorized"}
BAD_REFRESH = {"detail": "Invalid refresh token", "code": "unauthorized"}
WRONG_PASSWORD = "not the right password"


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[psycopg.AsyncConnection[dict[str, Any]]]:
    """A direct connection to the test database, to look at and age rows."""
    async with await psycopg.AsyncConnection.connect(database_url, **connection_kwargs()) as conn:
        yield conn


async def scalar(db: psycopg.AsyncConnection[dict[str, Any]], query: str, *params: Any) -> Any:
    cur = await db.execute(query, params)
    row = await cur.fetchone()
    assert row is not None
    return next(iter(row.values()))


async def count_users(db: psycopg.AsyncConnection[dict[str, Any]]) -> int:
    return await scalar(db, "SELECT count(*) FROM users")


async def token_row(db: psycopg.AsyncConnection[dict[str, Any]], token: str) -> dict[str, Any]:
    cur = await db.execute(
        "SELECT user_id, family_id, used_at, revoked_at FROM refresh_tokens WHERE token_hash = %s",
        (hash_refresh_token(token),),
    )
    row = await cur.fetchone()
    assert row is not None, "refresh token not stored"
    return row


def assert_unauthorized(response: httpx.Response) -> dict:
    body = assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    return body


def assert_auth_response(body: dict[str, Any], user: dict[str, Any] | None = None) -> None:
    """The sign-in shape; ``user`` (when given) is the exact user expected."""
    assert set(body) == AUTH_KEYS
    assert set(body["user"]) == USER_KEYS
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert isinstance(body["access_token"], str) and body["access_token"]
    assert isinstance(body["refresh_token"], str) and body["refresh_token"]
    assert body["access_token"] != body["refresh_token"]
    if user is not None:
        assert body["user"] == user


async def login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/auth/login", json={"email": email, "password": password})


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/auth/refresh", json={"refresh_token": token})


async def me(client: httpx.AsyncClient, access_token: str) -> httpx.Response:
    return await client.get("/users/me", headers={"Authorization": f"Bearer {access_token}"})


# --- register ---------------------------------------------------------------------------------


async def test_register_creates_a_user_and_signs_it_in(
    client: httpx.AsyncClient, db: psycopg.AsyncConnection[dict[str, Any]]
) -> None:
    before = datetime.now(UTC)
    response = await client.post(
        "/auth/register",
        json={"name": "Carol", "email": "carol@example.org", "password": PASSWORD},
    )
    after = datetime.now(UTC)
    assert response.status_code == 201, response.text
    body = response.json()
    assert_auth_response(body)
    user = body["user"]
    assert user["name"] == "Carol"
    assert user["email"] == "carol@example.org"
    assert user["role"] == "user"
    assert user["onboarding_completed"] is False
    assert before <= datetime.fromisoformat(user["created_at"]) <= after
    uuid.UUID(user["id"])

    claims = jwt.decode(body["access_token"], JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == user["id"]
    assert claims["type"] == "access"
    assert claims["exp"] - claims["iat"] == 900

    # The refresh token is stored hashed, unused, in a family of its own.
    row = await token_row(db, body["refresh_token"])
    assert str(row["user_id"]) == user["id"]
    assert row["used_at"] is None and row["revoked_at"] is None
    assert await count_users(db) == 1

    # Both tokens work, and the password signs in.
    me_response = await me(client, body["access_token"])
    assert me_response.status_code == 200
    assert me_response.json() == user
    assert (await refresh(client, body["refresh_token"])).status_code == 200
    assert (await login(client, "carol@example.org", PASSWORD)).status_code == 200


async def test_register_trims_the_email(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/register",
        json={"name": "Dana", "email": "  Dana.Smith@Example.ORG  ", "password": PASSWORD},
    )
    assert response.status_code == 201, response.text
    assert response.json()["user"]["email"] == "Dana.Smith@example.org"
    logged_in = await login(client, "dana.smith@example.org", PASSWORD)
    assert logged_in.status_code == 200
    assert logged_in.json()["user"] == response.json()["user"]


@pytest.mark.parametrize(
    "taken", ["erin@example.org", "ERIN@EXAMPLE.ORG", "Erin@Example.org", "  erin@example.org  "]
)
async def test_register_with_a_taken_email_is_a_conflict(
    client: httpx.AsyncClient,
    db: psycopg.AsyncConnection[dict[str, Any]],
    register: RegisterFn,
    taken: str,
) -> None:
    original = await register(name="Erin", email="erin@example.org")
    response = await client.post(
        "/auth/register",
        json={"name": "Impostor", "email": taken, "password": "another password"},
    )
    body = assert_error(response, 409, "conflict")
    assert body["detail"] == "An account with this email already exists"

    assert await count_users(db) == 1
    assert await scalar(db, "SELECT count(*) FROM refresh_tokens") == 1
    # The original account is untouched: its password works, the impostor's does not.
    ok = await login(client, "erin@example.org", PASSWORD)
    assert ok.status_code == 200
    assert ok.json()["user"] == original.body["user"]
    assert_unauthorized(await login(client, "erin@example.org", "another password"))


SECRET = "Tr0ub4dor&3-secret-never-echoed"
VALID = {"name": "Frank", "email": "frank@example.org", "password": SECRET}


def _without(key: str) -> dict[str, Any]:
    return {k: v for k, v in VALID.items() if k != key}


@pytest.mark.parametrize(
    ("payload", "loc", "error_type"),
    [
        pytest.param(
            {**VALID, "password": "Sh0rt!7"},
            ["body", "password"],
            "string_too_short",
            id="password-7-chars",
        ),
        pytest.param(
            {**VALID, "password": "x" * 257},
            ["body", "password"],
            "string_too_long",
            id="password-too-long",
        ),
        pytest.param(
            {**VALID, "email": "not-an-email"}, ["body", "email"], "value_error", id="invalid-email"
        ),
        pytest.param(
            {**VALID, "email": "frank@localhost"},
            ["body", "email"],
            "value_error",
            id="email-without-dot-domain",
        ),
        pytest.param(_without("name"), ["body", "name"], "missing", id="missing-name"),
        pytest.param(_without("email"), ["body", "email"], "missing", id="missing-email"),
        pytest.param(_without("password"), ["body", "password"], "missing", id="missing-password"),
        pytest.param(
            {**VALID, "role": "admin"}, ["body", "role"], "extra_forbidden", id="extra-field-role"
        ),
        pytest.param({**VALID, "name": 42}, ["body", "name"], "string_type", id="name-not-str"),
        pytest.param(
            {**VALID, "email": ["frank@example.org"]},
            ["body", "email"],
            "string_type",
            id="email-not-str",
        ),
        pytest.param(
            {**VALID, "password": 12345678},
            ["body", "password"],
            "string_type",
            id="password-not-str",
        ),
        pytest.param(
            {**VALID, "name": "n" * 101}, ["body", "name"], "string_too_long", id="name-101-chars"
        ),
        pytest.param(
            {**VALID, "name": "   "}, ["body", "name"], "string_too_short", id="name-blank"
        ),
        pytest.param(
            {**VALID, "name": "Fr\x00nk"}, ["body", "name"], "value_error", id="name-with-nul"
        ),
    ],
)
async def test_register_rejects_invalid_input(
    client: httpx.AsyncClient,
    db: psycopg.AsyncConnection[dict[str, Any]],
    payload: dict[str, Any],
    loc: list[str],
    error_type: str,
) -> None:
    response = await client.post("/auth/register", json=payload)
    body = assert_error(response, 422, "validation_error")
    assert [(e["loc"], e["type"]) for e in body["detail"]] == [(loc, error_type)]
    for problem in body["detail"]:
        assert set(problem) == {"type", "loc", "msg"}
    # The password is never echoed back, whatever was wrong.
    password = payload.get("password")
    if isinstance(password, str):
        assert password not in response.text
    assert "Sh0rt!7" not in response.text
    assert SECRET not in response.text

    assert await count_users(db) == 0
    assert await scalar(db, "SELECT count(*) FROM refresh_tokens") == 0
    assert_unauthorized(await login(client, "frank@example.org", SECRET))


async def test_register_with_a_body_that_is_not_json_is_rejected(
    client: httpx.AsyncClient, db: psycopg.AsyncConnection[dict[str, Any]]
) -> None:
    response = await client.post(
        "/auth/register",
        content=b'{"name": "Gus", "email": "gus@example.org", "password": "' + SECRET.encode(),
        headers={"content-type": "application/json"},
    )
    body = assert_error(response, 422, "validation_error")
    assert [e["type"] for e in body["detail"]] == ["json_invalid"]
    assert SECRET not in response.text
    assert await count_users(db) == 0


async def test_register_password_of_exactly_8_chars_is_accepted(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/auth/register", json={"name": "Hal", "email": "hal@example.org", "password": "12345678"}
    )
    assert response.status_code == 201, response.text
    assert (await login(client, "hal@example.org", "12345678")).status_code == 200
    # Passwords are not trimmed: the spaces are part of it.
    assert_unauthorized(await login(client, "hal@example.org", " 12345678 "))


# --- login ------------------------------------------------------------------------------------


async def test_login_with_json(client: httpx.AsyncClient, user: User) -> None:
    response = await login(client, user.email, PASSWORD)
    assert response.status_code == 200, response.text
    body = response.json()
    assert_auth_response(body, user.body["user"])
    # A fresh pair, not the registration's.
    assert body["access_token"] != user.access_token
    assert body["refresh_token"] != user.refresh_token
    assert (await me(client, body["access_token"])).json() == user.body["user"]
    assert (await refresh(client, body["refresh_token"])).status_code == 200


async def test_login_with_the_oauth2_password_form(client: httpx.AsyncClient, user: User) -> None:
    response = await client.post(
        "/auth/login",
        data={"username": user.email, "password": PASSWORD, "grant_type": "password"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert_auth_response(body, user.body["user"])
    assert (await me(client, body["access_token"])).json() == user.body["user"]


async def test_login_with_the_form_and_a_wrong_password_is_401(
    client: httpx.AsyncClient, user: User
) -> None:
    response = await client.post(
        "/auth/login",
        data={"username": user.email, "password": WRONG_PASSWORD, "grant_type": "password"},
    )
    assert_unauthorized(response)
    assert response.json() == BAD_CREDENTIALS


@pytest.mark.parametrize("variant", [str.upper, str.title, lambda e: f"  {e.upper()}  "])
async def test_login_email_is_case_insensitive(
    client: httpx.AsyncClient, register: RegisterFn, variant: Callable[[str], str]
) -> None:
    registered = await register(email="ivy@example.org")
    response = await login(client, variant("ivy@example.org"), PASSWORD)
    assert response.status_code == 200, response.text
    assert response.json()["user"] == registered.body["user"]
    form = await client.post(
        "/auth/login", data={"username": variant("ivy@example.org"), "password": PASSWORD}
    )
    assert form.status_code == 200, form.text
    assert form.json()["user"] == registered.body["user"]


async def test_wrong_password_and_unknown_email_look_the_same(
    client: httpx.AsyncClient, user: User
) -> None:
    wrong_password = await login(client, user.email, WRONG_PASSWORD)
    unknown_email = await login(client, "nobody@example.org", PASSWORD)
    assert_unauthorized(wrong_password)
    assert_unauthorized(unknown_email)
    assert wrong_password.json() == unknown_email.json() == BAD_CREDENTIALS
    assert wrong_password.content == unknown_email.content
    assert wrong_password.headers["www-authenticate"] == unknown_email.headers["www-authenticate"]


@pytest.mark.parametrize(
    ("kwargs", "types"),
    [
        pytest.param(
            {
                "content": b'{"email": "a@example.org", "password": ',
                "headers": {"content-type": "application/json"},
            },
            ["json_invalid"],
            id="malformed-json",
        ),
        pytest.param(
            {"content": b"", "headers": {"content-type": "application/json"}},
            ["json_invalid"],
            id="empty-body",
        ),
        pytest.param({"json": ["a@example.org", PASSWORD]}, ["model_type"], id="json-array"),
        pytest.param({"json": {"email": "a@example.org"}}, ["missing"], id="json-no-password"),
        pytest.param(
            {"json": {"email": "a@example.org", "password": PASSWORD, "remember": True}},
            ["extra_forbidden"],
            id="json-extra-field",
        ),
        pytest.param(
            {"json": {"email": "a@example.org", "password": ""}},
            ["string_too_short"],
            id="json-empty-password",
        ),
        pytest.param({"data": {"username": "a@example.org"}}, ["string_type"], id="form-no-pw"),
    ],
)
async def test_login_rejects_malformed_bodies(
    client: httpx.AsyncClient,
    db: psycopg.AsyncConnection[dict[str, Any]],
    kwargs: dict[str, Any],
    types: list[str],
) -> None:
    response = await client.post("/auth/login", **kwargs)
    body = assert_error(response, 422, "validation_error")
    assert [e["type"] for e in body["detail"]] == types
    assert PASSWORD not in response.text
    # A malformed request is not a failed login attempt.
    assert await scalar(db, "SELECT count(*) FROM login_failures") == 0


async def fail_logins(client: httpx.AsyncClient, email: str, times: int) -> None:
    for _ in range(times):
        response = await login(client, email, WRONG_PASSWORD)
        assert_unauthorized(response)
        assert response.json() == BAD_CREDENTIALS


def assert_rate_limited(response: httpx.Response, low: int, high: int) -> None:
    body = assert_error(response, 429, "rate_limited")
    assert body["detail"] == "Too many failed login attempts; try again later"
    assert "access_token" not in response.text
    assert low <= int(response.headers["retry-after"]) <= high


async def test_login_locks_after_five_failures(
    client: httpx.AsyncClient, user: User, other_user: User
) -> None:
    await fail_logins(client, user.email, 5)
    # Even the right password is refused now, by JSON or by form.
    assert_rate_limited(await login(client, user.email, PASSWORD), 890, 900)
    assert_rate_limited(await login(client, user.email.upper(), PASSWORD), 890, 900)
    form = await client.post("/auth/login", data={"username": user.email, "password": PASSWORD})
    assert_rate_limited(form, 890, 900)
    # Other accounts are unaffected.
    ok = await login(client, other_user.email, PASSWORD)
    assert ok.status_code == 200, ok.text
    assert ok.json()["user"] == other_user.body["user"]
    # The user's existing tokens are unaffected too: the limit is on logging in.
    assert (await me(client, user.access_token)).status_code == 200


async def test_four_failures_do_not_lock(client: httpx.AsyncClient, user: User) -> None:
    await fail_logins(client, user.email, 4)
    response = await login(client, user.email, PASSWORD)
    assert response.status_code == 200, response.text


async def test_failures_count_for_every_spelling_of_an_email(
    client: httpx.AsyncClient, user: User
) -> None:
    for spelling in (user.email, user.email.upper(), f" {user.email} ", user.email.title()):
        assert_unauthorized(await login(client, spelling, WRONG_PASSWORD))
    form = await client.post(
        "/auth/login", data={"username": user.email.upper(), "password": WRONG_PASSWORD}
    )
    assert_unauthorized(form)
    assert_rate_limited(await login(client, user.email, PASSWORD), 890, 900)


async def test_unknown_emails_are_limited_too(client: httpx.AsyncClient) -> None:
    await fail_logins(client, "ghost@example.org", 5)
    assert_rate_limited(await login(client, "ghost@example.org", PASSWORD), 890, 900)


async def test_lock_lifts_once_the_window_has_passed(
    client: httpx.AsyncClient, db: psycopg.AsyncConnection[dict[str, Any]], user: User
) -> None:
    await fail_logins(client, user.email, 5)
    assert_rate_limited(await login(client, user.email, PASSWORD), 890, 900)

    # Ten minutes later the oldest failure still counts: Retry-After says ~5 minutes.
    await db.execute("UPDATE login_failures SET failed_at = failed_at - interval '10 minutes'")
    assert_rate_limited(await login(client, user.email, PASSWORD), 290, 300)

    # Past the 15-minute window the failures no longer count.
    await db.execute("UPDATE login_failures SET failed_at = failed_at - interval '6 minutes'")
    wrong = await login(client, user.email, WRONG_PASSWORD)
    assert_unauthorized(wrong)
    assert wrong.json() == BAD_CREDENTIALS
    response = await login(client, user.email, PASSWORD)
    assert response.status_code == 200, response.text
    assert response.json()["user"] == user.body["user"]


async def test_a_successful_login_clears_earlier_failures(
    client: httpx.AsyncClient, db: psycopg.AsyncConnection[dict[str, Any]], user: User
) -> None:
    await fail_logins(client, user.email, 4)
    assert (await login(client, user.email, PASSWORD)).status_code == 200
    assert await scalar(db, "SELECT count(*) FROM login_failures") == 0
    await fail_logins(client, user.email, 4)
    response = await login(client, user.email, PASSWORD)
    assert response.status_code == 200, response.text
    # ...and the fifth failure after that does not lock either (the count restarted again).
    await fail_logins(client, user.email, 4)
    assert (await login(client, user.email, PASSWORD)).status_code == 200


async def test_parallel_guesses_cannot_exceed_the_limit(
    client: httpx.AsyncClient, db: psycopg.AsyncConnection[dict[str, Any]], user: User
) -> None:
    responses = await asyncio.gather(*(login(client, user.email, WRONG_PASSWORD) for _ in range(9)))
    # Only five guesses are checked; the others are refused without checking the password.
    assert sorted(r.status_code for r in responses) == [401] * 5 + [429] * 4
    for response in responses:
        if response.status_code == 401:
            assert response.json() == BAD_CREDENTIALS
        else:
            assert_rate_limited(response, 890, 900)
    assert await scalar(db, "SELECT count(*) FROM login_failures") == 5
    assert_rate_limited(await login(client, user.email, PASSWORD), 890, 900)


async def test_token_lifetime_and_login_limit_follow_the_settings(database_url: str) -> None:
    settings = make_settings(
        database_url,
        access_token_ttl_seconds=120,
        login_max_failures=2,
        login_window_seconds=60,
    )
    async with running(create_app(settings)) as client:
        registered = await client.post(
            "/auth/register",
            json={"name": "Jo", "email": "jo@example.org", "password": PASSWORD},
        )
        assert registered.status_code == 201, registered.text
        body = registered.json()
        assert body["expires_in"] == 120
        claims = jwt.decode(body["access_token"], JWT_SECRET, algorithms=["HS256"])
        assert claims["exp"] - claims["iat"] == 120

        await fail_logins(client, "jo@example.org", 2)
        assert_rate_limited(await login(client, "jo@example.org", PASSWORD), 50, 60)


# --- refresh ----------------------------------------------------------------------------------


async def test_refresh_rotates_the_pair(
    client: httpx.AsyncClient, db: psycopg.AsyncConnection[dict[str, Any]], user: User
) -> None:
    response = await refresh(client, user.refresh_token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert_auth_response(body, user.body["user"])
    assert body["refresh_token"] != user.refresh_token
    assert body["access_token"] != user.access_token
    assert (await me(client, body["access_token"])).json() == user.body["user"]

    old, new = await token_row(db, user.refresh_token), await token_row(db, body["refresh_token"])
    assert old["family_id"] == new["family_id"]
    assert old["used_at"] is not None and old["revoked_at"] is None
    assert new["used_at"] is None and new["revoked_at"] is None

    # The chain goes on: the new refresh token rotates in turn.
    again = await refresh(client, body["refresh_token"])
    assert again.status_code == 200, again.text
    assert again.json()["refresh_token"] not in (user.refresh_token, body["refresh_token"])
    assert (await me(client, again.json()["access_token"])).status_code == 200


async def test_reusing_a_refresh_token_revokes_its_family(
    client: httpx.AsyncClient, db: psycopg.AsyncConnection[dict[str, Any]], user: User
) -> None:
    rotated = await refresh(client, user.refresh_token)
    assert rotated.status_code == 200
    newer = rotated.json()["refresh_token"]

    reused = await refresh(client, user.refresh_token)
    assert_unauthorized(reused)
    assert reused.json() == BAD_REFRESH
    # Whoever holds the newer token is logged out too.
    newer_response = await refresh(client, newer)
    assert_unauthorized(newer_response)
    assert newer_response.json() == BAD_REFRESH

    family = (await token_row(db, user.refresh_token))["family_id"]
    live = await scalar(
        db,
        "SELECT count(*) FROM refresh_tokens WHERE family_id = %s AND revoked_at IS NULL",
        family,
    )
    assert live == 0
    assert await scalar(db, "SELECT count(*) FROM refresh_tokens") == 2


async def test_parallel_refreshes_of_one_token_rotate_once_then_revoke(
    client: httpx.AsyncClient, db: psycopg.AsyncConnection[dict[str, Any]], user: User
) -> None:
    responses = await asyncio.gather(*(refresh(client, user.refresh_token) for _ in range(3)))
    assert sorted(r.status_code for r in responses) == [200, 401, 401]
    winner = next(r for r in responses if r.status_code == 200).json()
    # The second use is a reuse: the token the winner got is revoked with the family.
    assert_unauthorized(await refresh(client, winner["refresh_token"]))
    assert await scalar(db, "SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL") == 0


async def test_revoking_a_family_leaves_other_logins_alone(
    client: httpx.AsyncClient, user: User, other_user: User
) -> None:
    second = await login(client, user.email, PASSWORD)
    assert second.status_code == 200
    assert (await refresh(client, user.refresh_token)).status_code == 200
    assert_unauthorized(await refresh(client, user.refresh_token))  # reuse: family revoked

    # The user's other login and the other user's login still rotate.
    for token in (second.json()["refresh_token"], other_user.refresh_token):
        response = await refresh(client, token)
        assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("garbage", id="garbage"),
        pytest.param("x" * 200, id="long-garbage"),
        pytest.param(hash_refresh_token("x").hex(), id="hex-of-a-hash"),
    ],
)
async def test_refresh_with_an_unknown_token_is_401(
    client: httpx.AsyncClient, user: User, token: str
) -> None:
    response = await refresh(client, token)
    assert_unauthorized(response)
    assert response.json() == BAD_REFRESH
    # The user's real refresh token was not affected.
    assert (await refresh(client, user.refresh_token)).status_code == 200


async def test_refresh_with_an_expired_token_is_401(
    client: httpx.AsyncClient, db: psycopg.AsyncConnection[dict[str, Any]], user: User
) -> None:
    await db.execute(
        "UPDATE refresh_tokens SET expires_at = now() - interval '1 second' WHERE token_hash = %s",
        (hash_refresh_token(user.refresh_token),),
    )
    response = await refresh(client, user.refresh_token)
    assert_unauthorized(response)
    assert response.json() == BAD_REFRESH
    row = await token_row(db, user.refresh_token)
    assert row["used_at"] is None
    assert await scalar(db, "SELECT count(*) FROM refresh_tokens") == 1


async def test_refresh_tokens_live_thirty_days_by_default(
    client: httpx.AsyncClient, db: psycopg.AsyncConnection[dict[str, Any]], user: User
) -> None:
    lifetime = await scalar(
        db,
        "SELECT extract(epoch FROM expires_at - created_at) FROM refresh_tokens"
        " WHERE token_hash = %s",
        hash_refresh_token(user.refresh_token),
    )
    assert abs(float(lifetime) - 30 * 24 * 3600) < 5


@pytest.mark.parametrize(
    ("payload", "error_type"),
    [
        ({}, "missing"),
        ({"refresh_token": ""}, "string_too_short"),
        ({"refresh_token": "x" * 201}, "string_too_long"),
        ({"refresh_token": 123}, "string_type"),
        ({"refresh_token": "abc", "extra": 1}, "extra_forbidden"),
    ],
)
@pytest.mark.parametrize("path", ["/auth/refresh", "/auth/logout"])
async def test_refresh_and_logout_validate_the_body(
    client: httpx.AsyncClient, path: str, payload: dict[str, Any], error_type: str
) -> None:
    body = assert_error(await client.post(path, json=payload), 422, "validation_error")
    assert [e["type"] for e in body["detail"]] == [error_type]


# --- logout -----------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["newest", "already-used"])
async def test_logout_revokes_every_token_of_the_family(
    client: httpx.AsyncClient, user: User, other_user: User, which: str
) -> None:
    second_login = await login(client, user.email, PASSWORD)
    rotated = await refresh(client, user.refresh_token)
    assert rotated.status_code == 200
    newest = rotated.json()["refresh_token"]

    token = newest if which == "newest" else user.refresh_token
    response = await client.post("/auth/logout", json={"refresh_token": token})
    assert response.status_code == 204
    assert response.content == b""

    for revoked in (newest, user.refresh_token):
        result = await refresh(client, revoked)
        assert_unauthorized(result)
        assert result.json() == BAD_REFRESH
    # A separate login of the same user, and other users, stay signed in.
    assert (await refresh(client, second_login.json()["refresh_token"])).status_code == 200
    assert (await refresh(client, other_user.refresh_token)).status_code == 200


async def test_logout_with_an_unknown_token_is_204(
    client: httpx.AsyncClient, db: psycopg.AsyncConnection[dict[str, Any]], user: User
) -> None:
    response = await client.post("/auth/logout", json={"refresh_token": "never-issued"})
    assert response.status_code == 204
    assert response.content == b""
    revoked = await scalar(db, "SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NOT NULL")
    assert revoked == 0
    assert (await refresh(client, user.refresh_token)).status_code == 200


async def test_logout_twice_is_fine(client: httpx.AsyncClient, user: User) -> None:
    for _ in range(2):
        response = await client.post("/auth/logout", json={"refresh_token": user.refresh_token})
        assert response.status_code == 204
    assert_unauthorized(await refresh(client, user.refresh_token))


# --- access tokens ----------------------------------------------------------------------------

_DROP = object()


def craft(sub: str, *, secret: str = JWT_SECRET, algorithm: str = "HS256", **claims: Any) -> str:
    """An access token like the server's, with ``claims`` overridden (``_DROP`` removes one)."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "sub": sub,
        "type": "access",
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex[:16],
    }
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not _DROP}
    return jwt.encode(payload, secret, algorithm=algorithm)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _tampered_signature(user_id: str) -> str:
    header, payload, signature = craft(user_id).split(".")
    i = len(signature) // 2
    flipped = "A" if signature[i] != "A" else "B"
    return ".".join((header, payload, signature[:i] + flipped + signature[i + 1 :]))


def _tampered_payload(user_id: str) -> str:
    # A valid token of some other subject with this user's id swapped into the payload.
    header, payload, signature = craft(str(uuid.uuid4())).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = user_id
    return ".".join((header, _b64(claims), signature))


def _alg_none(user_id: str) -> str:
    now = int(time.time())
    claims = {"sub": user_id, "type": "access", "iat": now, "exp": now + 300}
    return ".".join((_b64({"alg": "none", "typ": "JWT"}), _b64(claims), ""))


BAD_TOKENS: dict[str, Callable[[str], str]] = {
    "expired": lambda uid: craft(uid, iat=int(time.time()) - 1000, exp=int(time.time()) - 10),
    "tampered-signature": _tampered_signature,
    "tampered-payload": _tampered_payload,
    "alg-none": _alg_none,
    "alg-none-pyjwt": lambda uid: jwt.encode(
        {"sub": uid, "type": "access", "iat": int(time.time()), "exp": int(time.time()) + 300},
        None,
        algorithm="none",
    ),
    "type-refresh": lambda uid: craft(uid, type="refresh"),
    "no-type": lambda uid: craft(uid, type=_DROP),
    "no-exp": lambda uid: craft(uid, exp=_DROP),
    "other-secret": lambda uid: craft(uid, secret="another-secret-that-is-also-long-enough-0123"),
    "other-algorithm": lambda uid: craft(uid, algorithm="HS384"),
    "unknown-user": lambda uid: craft(str(uuid.uuid4())),
    "sub-not-a-uuid": lambda uid: craft("not-a-uuid"),
    "garbage": lambda uid: "not.a.jwt",
}


async def test_a_crafted_valid_token_is_accepted(client: httpx.AsyncClient, user: User) -> None:
    # The control for the cases below: each differs from this token in one way only.
    response = await me(client, craft(user.id))
    assert response.status_code == 200, response.text
    assert response.json() == user.body["user"]


@pytest.mark.parametrize("make_token", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
async def test_invalid_access_tokens_are_401(
    client: httpx.AsyncClient, user: User, make_token: Callable[[str], str]
) -> None:
    response = await me(client, make_token(user.id))
    body = assert_unauthorized(response)
    assert body["detail"] == "Invalid or expired token"
    assert user.email not in response.text


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"Authorization": ""}, id="empty"),
        pytest.param({"Authorization": "Bearer"}, id="bearer-without-token"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="basic-scheme"),
    ],
)
async def test_a_missing_access_token_is_401(
    client: httpx.AsyncClient, user: User, headers: dict[str, str]
) -> None:
    response = await client.get("/users/me", headers=headers)
    body = assert_unauthorized(response)
    assert body["detail"] == "Not authenticated"


async def test_a_refresh_token_is_not_an_access_token(
    client: httpx.AsyncClient, user: User
) -> None:
    assert_unauthorized(await me(client, user.refresh_token))


async def test_an_access_token_of_a_deleted_user_is_401(
    client: httpx.AsyncClient, db: psycopg.AsyncConnection[dict[str, Any]], user: User
) -> None:
    await db.execute("DELETE FROM users WHERE id = %s", (user.id,))
    assert_unauthorized(await me(client, user.access_token))
    # Its refresh tokens went with it.
    assert_unauthorized(await refresh(client, user.refresh_token))
