"""Access tokens: what ``TokenCodec`` accepts, also once a token's verification is cached."""

from __future__ import annotations

import time
import uuid

import jwt

from api.security import TokenCodec

SECRET = "s" * 32


def codec(ttl_seconds: int = 60, **kwargs: int) -> TokenCodec:
    return TokenCodec(secret=SECRET, algorithm="HS256", ttl_seconds=ttl_seconds, **kwargs)


def test_a_verified_token_stops_working_when_it_expires() -> None:
    tokens = codec(ttl_seconds=1)
    user = uuid.uuid4()
    token = tokens.issue(user)
    assert tokens.subject(token) == user
    assert tokens.subject(token) == user  # from the cache

    time.sleep(2.1)  # whole seconds: exp has a one-second resolution
    assert tokens.subject(token) is None
    assert tokens.subject(token) is None  # and is not cached as valid again


def test_tampered_and_foreign_tokens_are_refused_every_time() -> None:
    tokens = codec()
    token = tokens.issue(uuid.uuid4())
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[:-2]}AA"
    foreign = TokenCodec(secret="x" * 32, algorithm="HS256", ttl_seconds=60).issue(uuid.uuid4())
    refresh_like = jwt.encode(
        {"sub": str(uuid.uuid4()), "type": "refresh", "iat": 1, "exp": time.time() + 60},
        SECRET,
        algorithm="HS256",
    )
    for bad in (forged, foreign, refresh_like, "not-a-jwt"):
        assert tokens.subject(bad) is None
        assert tokens.subject(bad) is None
    assert tokens.subject(token) is not None


def test_the_cache_is_bounded_and_keeps_verifying() -> None:
    tokens = codec(cache_size=10)
    users = [uuid.uuid4() for _ in range(25)]
    issued = [tokens.issue(u) for u in users]
    assert [tokens.subject(t) for t in issued] == users
    assert len(tokens._verified) <= 10
    assert [tokens.subject(t) for t in issued] == users
