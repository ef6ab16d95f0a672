"""Password hashing (argon2id), access and stream JWTs, opaque refresh and share-link tokens."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from uuid import UUID

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Verified against when the email is unknown, so a login costs the same either way and timing
# does not reveal which emails have accounts.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


async def hash_password(password: str) -> str:
    # argon2 is deliberately slow (tens of ms): keep it off the event loop.
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password: str, password_hash: str | None) -> bool:
    """Check ``password``; with no hash (unknown user) burn the same time and return False."""

    def _verify() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(_verify)


@dataclass(frozen=True)
class TokenCodec:
    """Issues and checks access tokens: HS256 by default, algorithm pinned, claims required."""

    secret: str
    algorithm: str
    ttl_seconds: int
    # Tokens already verified -> (user id, expiry). Every request presents the same token
    # until it expires, and checking its signature and claims again was most of the cost of
    # authentication. Expiry is still checked on every use.
    _verified: dict[str, tuple[UUID, int]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    cache_size: int = 10_000

    def issue(self, user_id: UUID) -> str:
        now = int(time.time())
        claims = {
            "sub": str(user_id),
            "type": "access",
            "iat": now,
            "exp": now + self.ttl_seconds,
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self.secret, algorithm=self.algorithm)

    def subject(self, token: str) -> UUID | None:
        """The user id of a valid access token, or ``None`` for anything else."""
        known = self._verified.get(token)
        if known is not None:
            if time.time() < known[1]:
                return known[0]
            del self._verified[token]
            return None
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[self.algorithm],
                options={"require": ["exp", "iat", "sub", "type"]},
            )
            if claims.get("type") != "access":
                return None
            user_id = UUID(claims["sub"])
            expires = int(claims["exp"])
        except (jwt.InvalidTokenError, ValueError, TypeError):
            return None
        if len(self._verified) >= self.cache_size:
            # Oldest first (dicts keep insertion order); the rest stay warm.
            for stale in list(self._verified)[: self.cache_size // 10]:
                del self._verified[stale]
        self._verified[token] = (user_id, expires)
        return user_id

    def issue_stream(self, user_id: UUID, run_id: UUID, ttl_seconds: int) -> str:
        """A token that opens one run's event stream, for a browser's ``EventSource``, which
        cannot send an ``Authorization`` header and so must carry it in the URL: it names the
        run, expires quickly, and is no access token (``subject`` refuses it)."""
        now = int(time.time())
        claims = {
            "sub": str(user_id),
            "type": "stream",
            "run": str(run_id),
            "iat": now,
            "exp": now + ttl_seconds,
        }
        return jwt.encode(claims, self.secret, algorithm=self.algorithm)

    def stream_subject(self, token: str, run_id: UUID) -> UUID | None:
        """The user id of a valid stream token for ``run_id``, or ``None`` for anything else."""
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[self.algorithm],
                options={"require": ["exp", "iat", "sub", "type", "run"]},
            )
            if claims.get("type") != "stream" or claims.get("run") != str(run_id):
                return None
            return UUID(claims["sub"])
        except (jwt.InvalidTokenError, ValueError, TypeError):
            return None


def new_refresh_token() -> tuple[str, bytes]:
    """A fresh opaque refresh token and the hash under which it is stored."""
    token = secrets.token_urlsafe(32)
    return token, hash_refresh_token(token)


def hash_refresh_token(token: str) -> bytes:
    # A fast hash is right here: the token has 256 bits of entropy, unlike a password.
    return hashlib.sha256(token.encode()).digest()


def new_share_token() -> tuple[str, bytes]:
    """A fresh share-link token (shown once, to the owner) and the hash under which it is
    stored."""
    token = secrets.token_urlsafe(32)
    return token, hash_share_token(token)


def hash_share_token(token: str) -> bytes:
    # As for refresh tokens: 256 random bits need no slow hash, and a database leak must not
    # hand out working links.
    return hashlib.sha256(token.encode()).digest()


# A share link's token is the path itself (``GET /shared/{token}``), so every log line that
# names a path would record a working link.
_SHARED_PATH = re.compile(r"/shared/[^/?#\s]+")
REDACTED_SHARED_PATH = "/shared/<redacted>"
# A stream token is a query parameter: short-lived, but a working credential until it expires.
_STREAM_TOKEN = re.compile(r"([?&]stream_token=)[^&#\s]*")


def redact_path(path: str) -> str:
    """``path`` safe to log: a share link's token and a stream token replaced."""
    return _STREAM_TOKEN.sub(r"\1<redacted>", _SHARED_PATH.sub(REDACTED_SHARED_PATH, path))


class RedactSharedPaths(logging.Filter):
    """Rewrites the path of uvicorn's access log lines (``'%s - "%s %s HTTP/%s" %d'``, the
    path third) so no share-link token reaches a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_path(args[2]), *args[3:])
        return True


ACCESS_LOG_REDACTION = RedactSharedPaths()
