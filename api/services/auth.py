"""Registration, login with a failure limit, refresh-token rotation with reuse detection.

Abuse limits are per client address (``client_key``: the address uvicorn reports, after its
proxy-headers handling; an IPv6 client's /64, which one subscriber typically holds whole):

- Login: ``login_max_failures`` wrong passwords for one email *from one address* within
  ``login_window_seconds`` lock that email for that address only, so an attacker cannot lock
  the owner out from elsewhere; ``login_max_failures_per_address`` failures from one address
  across all emails lock that address's logins (credential stuffing). A locked attempt is
  refused without checking the password, and a successful login clears that address's failures
  for the email. Re-authentication (``confirm_password``, before deleting an account) counts
  as a login attempt for the user's email, under the same limits.
- Registration and refresh: ``register_per_minute`` / ``refresh_per_minute`` requests per
  address in a fixed one-minute window, counted before any work (the password hash, the token
  lookup) is done.

Every refusal is a 429 ``rate_limited`` with ``Retry-After``. The counters live in Postgres, so
they hold across replicas.
"""

from __future__ import annotations

import ipaddress
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from api.errors import Conflict, Forbidden, TooManyRequests, Unauthorized
from api.security import hash_password, hash_refresh_token, new_refresh_token, verify_password
from api.state import AppState
from storage import rate_limits as rate_limits_store
from storage import tokens as tokens_store
from storage import users as users_store
from storage.db import Conn, PoolType
from storage.rows import UserRow

log = logging.getLogger(__name__)

BAD_CREDENTIALS = "Incorrect email or password"
BAD_REFRESH = "Invalid refresh token"
BAD_PASSWORD = "Incorrect password"  # noqa: S105 (a message, not a secret)
WRONG_PASSWORD: Final = "wrong_password"  # noqa: S105 (an error code)
# The fixed window of the registration and refresh limits (their settings are per minute).
RATE_WINDOW_SECONDS: Final = 60
UNKNOWN_CLIENT: Final = "unknown"


def client_key(host: str | None) -> str:
    """What the per-address limits count by: the IP address, an IPv6 client's /64 network.

    A client without an address (a Unix socket, no proxy header) counts as one shared client.
    """
    if not host:
        return UNKNOWN_CLIENT
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:255]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, int(seconds) + 1))}


async def _limit(conn: Conn, bucket: str, client: str, per_minute: int, what: str) -> None:
    hits, retry_after = await rate_limits_store.hit(conn, bucket, client, RATE_WINDOW_SECONDS)
    if hits > per_minute:
        raise TooManyRequests(
            f"Too many {what} from this address; try again later",
            headers={"Retry-After": str(retry_after)},
        )


def normalize_email(email: str) -> str:
    return email.strip().lower()


def user_out(user: UserRow) -> dict[str, Any]:
    keys: Final = ("id", "name", "email", "role", "created_at", "onboarding_completed")
    return {k: user[k] for k in keys}


async def _issue_pair(
    state: AppState, conn: Conn, user: UserRow, family_id: uuid.UUID
) -> dict[str, Any]:
    refresh, refresh_hash = new_refresh_token()
    expires_at = datetime.now(UTC) + timedelta(seconds=state.settings.refresh_token_ttl_seconds)
    await tokens_store.insert_refresh(
        conn,
        user_id=user["id"],
        family_id=family_id,
        token_hash=refresh_hash,
        expires_at=expires_at,
    )
    return {
        "user": user_out(user),
        "access_token": state.tokens.issue(user["id"]),
        "refresh_token": refresh,
        "token_type": "bearer",
        "expires_in": state.tokens.ttl_seconds,
    }


async def register(
    state: AppState, *, name: str, email: str, password: str, client: str
) -> dict[str, Any]:
    async with state.pool.connection() as conn:
        # Before the password hash: refused requests cost one statement.
        await _limit(conn, "register", client, state.settings.register_per_minute, "registrations")
    password_hash = await hash_password(password)
    async with state.pool.connection() as conn, conn.transaction():
        user = await users_store.insert(
            conn, name=name, email=email.strip(), password_hash=password_hash
        )
        if user is None:
            raise Conflict("An account with this email already exists")
        return await _issue_pair(state, conn, user, uuid.uuid4())


async def _begin_attempt(state: AppState, conn: Conn, key: str, client: str, what: str) -> None:
    """Admit a password attempt for the email ``key`` from ``client`` (429 past the login
    limits); it counts as a failure from here on, until it succeeds (``clear_failures``)."""
    settings = state.settings
    lifts = await tokens_store.begin_attempt(
        conn,
        key,
        client,
        window_seconds=settings.login_window_seconds,
        max_failures=settings.login_max_failures,
        max_address_failures=settings.login_max_failures_per_address,
    )
    if lifts is not None:
        raise TooManyRequests(
            f"Too many {what}; try again later",
            headers=_retry_after((lifts - datetime.now(UTC)).total_seconds()),
        )


async def login(state: AppState, *, email: str, password: str, client: str) -> dict[str, Any]:
    key = normalize_email(email)
    async with state.pool.connection() as conn:
        await _begin_attempt(state, conn, key, client, "failed login attempts")
        user = await users_store.get_by_email(conn, key)
    # Runs the hash even for unknown emails, so both failures look and take the same.
    ok = await verify_password(password, user["password_hash"] if user else None)
    if not ok or user is None:
        raise Unauthorized(BAD_CREDENTIALS)  # already recorded by begin_attempt
    async with state.pool.connection() as conn:
        async with conn.transaction():
            await tokens_store.clear_failures(conn, key, client)
            return await _issue_pair(state, conn, user, uuid.uuid4())


async def confirm_password(state: AppState, user: UserRow, password: str, *, client: str) -> None:
    """Re-authentication of a signed-in user before what a stolen access token alone must not
    do: 403 ``wrong_password`` unless ``password`` is theirs. A wrong one counts as a failed
    login for their email from ``client``, under the login limits (429 past them): guessing
    here or at ``/auth/login`` spends the same budget.

    403, not 401: the token is good, and clients answer a 401 by refreshing it and retrying.
    """
    key = normalize_email(user["email"])
    async with state.pool.connection() as conn:
        await _begin_attempt(state, conn, key, client, "wrong passwords")
    if not await verify_password(password, user["password_hash"]):
        raise Forbidden(BAD_PASSWORD, code=WRONG_PASSWORD)  # already recorded
    async with state.pool.connection() as conn:
        await tokens_store.clear_failures(conn, key, client)


async def refresh(state: AppState, token: str, *, client: str) -> dict[str, Any]:
    """Rotate ``token``: mark it used and issue a new pair in the same family.

    A token presented a second time means it leaked (or the client raced itself): the whole
    family is revoked, so whoever holds the newer token is logged out too.
    """
    token_hash = hash_refresh_token(token)
    async with state.pool.connection() as conn:
        await _limit(conn, "refresh", client, state.settings.refresh_per_minute, "refreshes")
        async with conn.transaction():
            row = await tokens_store.lock_refresh(conn, token_hash)
            if row is None or row["revoked_at"] is not None or row["expired"]:
                raise Unauthorized(BAD_REFRESH)
            if row["used_at"] is None:
                user = await users_store.get(conn, row["user_id"])
                if user is None:
                    raise Unauthorized(BAD_REFRESH)
                await tokens_store.mark_used(conn, row["id"])
                return await _issue_pair(state, conn, user, row["family_id"])
            await tokens_store.revoke_family(conn, row["family_id"])
        log.warning("refresh token reuse detected; revoked family %s", row["family_id"])
        raise Unauthorized(BAD_REFRESH)


async def logout(pool: PoolType, token: str) -> None:
    """Revoke the family of ``token``. Unknown tokens are ignored: logout is idempotent."""
    async with pool.connection() as conn:
        family = await tokens_store.family_of(conn, hash_refresh_token(token))
        if family is not None:
            await tokens_store.revoke_family(conn, family)


async def ensure_admin(pool: PoolType, *, email: str, password: str, name: str) -> str:
    """Create an admin, or promote the existing account with that email.

    An existing account keeps its password: bootstrapping must not silently reset it.

    Returns:
        ``"created"``, ``"promoted"`` or ``"unchanged"``.
    """
    async with pool.connection() as conn:
        user = await users_store.get_by_email(conn, email.strip())
        if user is None:
            created = await users_store.insert(
                conn,
                name=name,
                email=email.strip(),
                password_hash=await hash_password(password),
                role="admin",
            )
            if created is not None:
                return "created"
            user = await users_store.get_by_email(conn, email.strip())
            assert user is not None
        if user["role"] == "admin":
            return "unchanged"
        await users_store.set_role(conn, user["id"], "admin")
        return "promoted"
