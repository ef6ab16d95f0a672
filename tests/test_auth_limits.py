"""Abuse limits of ``/auth`` per client address: login lockout that is not a free denial of
service, a per-address failure limit across emails, and registration and refresh rate limits.

Clients are told apart by the address the ASGI transport reports as ``request.client``.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from psycopg.rows import dict_row

from api.app import create_app
from api.services.auth import client_key
from api.settings import Settings
from storage import rate_limits, tokens
from storage.db import connection_kwargs
from tests.conftest import PASSWORD, assert_error, make_settings

ATTACKER = "203.0.113.7"
OWNER = "198.51.100.20"
OTHER = "192.0.2.55"
WRONG = "not the right password"
LOCKED = "Too many failed login attempts; try again later"

DB = psycopg.AsyncConnection[dict[str, Any]]


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[DB]:
    async with await psycopg.AsyncConnection.connect(database_url, **connection_kwargs()) as conn:
        yield conn


@pytest.fixture(autouse=True)
async def _no_counters(database_url: str) -> None:
    # conftest empties login_failures before each test, not (yet) the request counters.
    async with await psycopg.AsyncConnection.connect(database_url, **connection_kwargs()) as conn:
        await conn.execute("TRUNCATE auth_rate_limits")


def at(app: FastAPI, address: str) -> httpx.AsyncClient:
    """A client of ``app`` whose requests come from ``address``."""
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://switchboard")


# The defaults, restated: these tests do not depend on what the shared test settings choose.
LIMITS = {
    "login_max_failures": 5,
    "login_window_seconds": 900,
    "login_max_failures_per_address": 20,
    "register_per_minute": 10,
    "refresh_per_minute": 60,
}


@pytest.fixture(scope="module")
async def app(database_url: str) -> AsyncIterator[FastAPI]:
    async with started(database_url) as application:
        yield application


def test_the_defaults() -> None:
    assert {name: Settings.model_fields[name].default for name in LIMITS} == LIMITS


@contextlib.asynccontextmanager
async def started(database_url: str, **overrides: Any) -> AsyncIterator[FastAPI]:
    app = create_app(make_settings(database_url, **{**LIMITS, **overrides}))
    async with app.router.lifespan_context(app):
        yield app


async def register(client: httpx.AsyncClient, email: str | None = None) -> httpx.Response:
    email = email or f"user-{uuid.uuid4().hex[:12]}@example.org"
    return await client.post(
        "/auth/register", json={"name": "Someone", "email": email, "password": PASSWORD}
    )


async def registered(client: httpx.AsyncClient, email: str | None = None) -> dict[str, Any]:
    response = await register(client, email)
    assert response.status_code == 201, response.text
    return response.json()


async def login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/auth/login", json={"email": email, "password": password})


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/auth/refresh", json={"refresh_token": token})


async def fail(client: httpx.AsyncClient, email: str, times: int) -> None:
    for _ in range(times):
        response = await login(client, email, WRONG)
        assert response.status_code == 401, response.text


def assert_limited(response: httpx.Response, low: int, high: int) -> dict[str, Any]:
    body = assert_error(response, 429, "rate_limited")
    assert low <= int(response.headers["retry-after"]) <= high, response.headers
    return body


async def scalar(db: DB, query: str, *params: Any) -> Any:
    cur = await db.execute(query, params)
    row = await cur.fetchone()
    assert row is not None
    return next(iter(row.values()))


# --- login ------------------------------------------------------------------------------------


async def test_an_attacker_cannot_lock_the_owner_out(app: FastAPI, db: DB) -> None:
    async with at(app, OWNER) as owner, at(app, ATTACKER) as attacker:
        user = await registered(owner)
        email = user["user"]["email"]
        await fail(attacker, email, 5)

        # The attacker's address is locked for that email, even with the right password...
        body = assert_limited(await login(attacker, email, PASSWORD), 890, 900)
        assert body["detail"] == LOCKED
        assert_limited(await login(attacker, email.upper(), WRONG), 890, 900)
        # ...and the refused attempts were not recorded (nor their passwords checked).
        assert await scalar(db, "SELECT count(*) FROM login_failures") == 5

        # The owner, from another address, is not locked.
        ok = await login(owner, email, PASSWORD)
        assert ok.status_code == 200, ok.text
        assert ok.json()["user"] == user["user"]
        # Nor is another address that failed for this email too, below the limit.
        async with at(app, OTHER) as other:
            await fail(other, email, 4)
            assert (await login(other, email, PASSWORD)).status_code == 200
        # The owner's success cleared neither the attacker's failures nor its lock.
        assert await scalar(db, "SELECT count(*) FROM login_failures") == 5
        assert_limited(await login(attacker, email, PASSWORD), 890, 900)
        # The attacker's address can still try other emails (this is not its address limit).
        assert (await login(attacker, "someone-else@example.org", WRONG)).status_code == 401


async def test_the_lock_ends_after_the_window(app: FastAPI, db: DB) -> None:
    async with at(app, OWNER) as owner, at(app, ATTACKER) as attacker:
        email = (await registered(owner))["user"]["email"]
        await fail(attacker, email, 5)
        assert_limited(await login(attacker, email, PASSWORD), 890, 900)

        await db.execute("UPDATE login_failures SET failed_at = failed_at - interval '10 minutes'")
        assert_limited(await login(attacker, email, PASSWORD), 290, 300)

        await db.execute("UPDATE login_failures SET failed_at = failed_at - interval '6 minutes'")
        assert (await login(attacker, email, WRONG)).status_code == 401
        assert (await login(attacker, email, PASSWORD)).status_code == 200


async def test_the_lock_follows_the_window_setting(database_url: str, db: DB) -> None:
    async with started(database_url, login_max_failures=2, login_window_seconds=30) as app:
        async with at(app, OWNER) as owner, at(app, ATTACKER) as attacker:
            email = (await registered(owner))["user"]["email"]
            await fail(attacker, email, 2)
            assert_limited(await login(attacker, email, PASSWORD), 20, 30)
            assert (await login(owner, email, PASSWORD)).status_code == 200
            await db.execute("UPDATE login_failures SET failed_at = now() - interval '31 seconds'")
            assert (await login(attacker, email, PASSWORD)).status_code == 200


async def test_one_address_has_a_failure_limit_across_emails(app: FastAPI, db: DB) -> None:
    async with at(app, ATTACKER) as attacker, at(app, OWNER) as owner:
        user = await registered(owner)
        # Four guesses on each of five emails: no email reaches its limit of five...
        for n in range(5):
            await fail(attacker, f"victim-{n}@example.org", 4)
        assert await scalar(db, "SELECT count(*) FROM login_failures") == 20
        # ...but the address has failed twenty times: every login from it waits now.
        assert_limited(await login(attacker, "victim-5@example.org", WRONG), 890, 900)
        assert_limited(await login(attacker, user["user"]["email"], PASSWORD), 890, 900)
        assert await scalar(db, "SELECT count(*) FROM login_failures") == 20
        # Other addresses are not affected.
        assert (await login(owner, user["user"]["email"], PASSWORD)).status_code == 200
        async with at(app, OTHER) as other:
            assert (await login(other, "victim-0@example.org", WRONG)).status_code == 401


async def test_the_address_limit_follows_its_setting(database_url: str) -> None:
    async with started(database_url, login_max_failures_per_address=3) as app:
        async with at(app, ATTACKER) as attacker, at(app, OTHER) as other:
            for n in range(3):
                await fail(attacker, f"victim-{n}@example.org", 1)
            assert_limited(await login(attacker, "victim-3@example.org", WRONG), 890, 900)
            assert (await login(other, "victim-3@example.org", WRONG)).status_code == 401


async def test_parallel_guesses_from_one_address_stop_at_the_limit(app: FastAPI, db: DB) -> None:
    async with at(app, ATTACKER) as attacker:
        emails = [f"victim-{n % 6}@example.org" for n in range(26)]
        responses = await asyncio.gather(*(login(attacker, e, WRONG) for e in emails))
        assert sorted(r.status_code for r in responses) == [401] * 20 + [429] * 6
        assert await scalar(db, "SELECT count(*) FROM login_failures") == 20


async def test_addresses_of_one_ipv6_subscriber_share_their_limits(app: FastAPI) -> None:
    async with at(app, OWNER) as owner:
        email = (await registered(owner))["user"]["email"]
    async with at(app, "2001:db8:1:2::1") as first, at(app, "2001:db8:1:2:ffff::9") as second:
        await fail(first, email, 5)
        assert_limited(await login(second, email, PASSWORD), 890, 900)
    async with at(app, "2001:db8:1:3::1") as next_network:
        assert (await login(next_network, email, PASSWORD)).status_code == 200


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("testclient", "testclient"),
        (None, "unknown"),
        ("", "unknown"),
    ],
)
def test_client_key(host: str | None, key: str) -> None:
    assert client_key(host) == key


# --- registration -----------------------------------------------------------------------------


async def test_registration_is_limited_per_address(app: FastAPI, db: DB) -> None:
    async with at(app, ATTACKER) as attacker, at(app, OTHER) as other:
        for _ in range(10):
            await registered(attacker)
        refused = await register(attacker)
        body = assert_limited(refused, 1, 60)
        assert body["detail"] == "Too many registrations from this address; try again later"
        assert await scalar(db, "SELECT count(*) FROM users") == 10
        # Another address still registers.
        await registered(other)
        assert await scalar(db, "SELECT count(*) FROM users") == 11

        # Once the minute is over, the address registers again.
        await db.execute("UPDATE auth_rate_limits SET resets_at = now() - interval '1 second'")
        await registered(attacker)


async def test_parallel_registrations_stop_at_the_limit(database_url: str, db: DB) -> None:
    async with started(database_url, register_per_minute=3) as app, at(app, ATTACKER) as attacker:
        responses = await asyncio.gather(*(register(attacker) for _ in range(7)))
        assert sorted(r.status_code for r in responses) == [201] * 3 + [429] * 4
        assert await scalar(db, "SELECT count(*) FROM users") == 3


async def test_refused_registrations_and_conflicts_count_too(database_url: str, db: DB) -> None:
    async with started(database_url, register_per_minute=2) as app, at(app, ATTACKER) as attacker:
        await registered(attacker, "taken@example.org")
        assert_error(await register(attacker, "taken@example.org"), 409, "conflict")
        # The limit is reached: the same email is not even looked at (no 409 to probe with).
        assert_limited(await register(attacker, "taken@example.org"), 1, 60)
        assert_limited(await register(attacker), 1, 60)
        hits = await scalar(db, "SELECT hits FROM auth_rate_limits WHERE bucket = 'register'")
        assert hits == 4


# --- refresh ----------------------------------------------------------------------------------


async def test_refresh_is_limited_per_address(database_url: str, db: DB) -> None:
    async with (
        started(database_url, refresh_per_minute=3) as app,
        at(app, OWNER) as owner,
        at(app, OTHER) as other,
    ):
        token = (await registered(owner))["refresh_token"]
        for _ in range(3):
            response = await refresh(owner, token)
            assert response.status_code == 200, response.text
            token = response.json()["refresh_token"]
        body = assert_limited(await refresh(owner, token), 1, 60)
        assert body["detail"] == "Too many refreshes from this address; try again later"
        # The refused request did not spend the token: it still rotates from elsewhere.
        response = await refresh(other, token)
        assert response.status_code == 200, response.text
        token = response.json()["refresh_token"]
        # Unknown tokens count as much as valid ones.
        for _ in range(2):
            assert (await refresh(other, "garbage")).status_code == 401
        assert_limited(await refresh(other, token), 1, 60)

        await db.execute("UPDATE auth_rate_limits SET resets_at = now() - interval '1 second'")
        assert (await refresh(owner, token)).status_code == 200


async def test_refresh_default_limit_is_sixty_a_minute(app: FastAPI, db: DB) -> None:
    async with at(app, ATTACKER) as attacker:
        statuses = [(await refresh(attacker, "garbage")).status_code for _ in range(61)]
        assert statuses == [401] * 60 + [429]


# --- storage ----------------------------------------------------------------------------------


async def test_a_new_window_prunes_the_windows_that_are_over(app: FastAPI, db: DB) -> None:
    async with at(app, ATTACKER) as attacker, at(app, OTHER) as other:
        await refresh(attacker, "garbage")
        await register(attacker)
        assert await scalar(db, "SELECT count(*) FROM auth_rate_limits") == 2
        await db.execute(
            "UPDATE auth_rate_limits SET resets_at = now() - interval '1 second'"
            " WHERE bucket = 'refresh'"
        )
        await refresh(other, "garbage")
        cur = await db.execute("SELECT bucket, client_key, hits FROM auth_rate_limits ORDER BY 1")
        assert await cur.fetchall() == [
            {"bucket": "refresh", "client_key": OTHER, "hits": 1},
            {"bucket": "register", "client_key": ATTACKER, "hits": 1},
        ]


QUERIES: dict[str, tuple[str, Any]] = {
    "count_recent_failures": (
        tokens.COUNT_RECENT_FAILURES,
        {"email": "a@example.org", "client": ATTACKER, "window": 900},
    ),
    "clear_failures": (tokens.CLEAR_FAILURES, (ATTACKER, "a@example.org")),
    "prune_failures": (tokens.PRUNE_FAILURES, (900,)),
    "rate_hit": (rate_limits.HIT, {"bucket": "register", "client": ATTACKER, "window": 60}),
    "rate_prune": (rate_limits.PRUNE, None),
}


def _seq_scans(plan: dict[str, Any]) -> list[str]:
    found = [plan.get("Relation Name", "?")] if plan.get("Node Type") == "Seq Scan" else []
    for child in plan.get("Plans", []):
        found.extend(_seq_scans(child))
    return found


@pytest.mark.parametrize("name", list(QUERIES))
async def test_the_limit_queries_use_an_index(database_url: str, name: str) -> None:
    query, params = QUERIES[name]
    async with await psycopg.AsyncConnection.connect(database_url, row_factory=dict_row) as conn:
        # EXPLAIN of a write does not run it; the transaction is rolled back regardless.
        await conn.execute("SET LOCAL enable_seqscan = off")
        cur = await conn.execute("EXPLAIN (FORMAT JSON) " + query, params)
        row = await cur.fetchone()
        assert row is not None
        plan = row["QUERY PLAN"][0]["Plan"]
        await conn.rollback()
    assert _seq_scans(plan) == [], plan
