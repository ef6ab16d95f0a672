"""Shared fixtures: one real embedded Postgres per test session, the real app over ASGI.

Every test starts from the same state: migrations applied, interest areas and seed agents
present, no users, chats or tokens (``_clean_database`` restores it before each test).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from langchain_core.tools import tool
from langgraph_sdk.client import LangGraphClient
from psycopg import sql as sql_text
from psycopg.rows import dict_row

from api.app import create_app
from api.bootstrap import upgrade_database
from api.services.auth import ensure_admin
from api.settings import Settings
from graphs import patches
from graphs.catalog import seed_agents
from storage.db import EmbeddedPostgres, connection_kwargs, start_embedded
from tests.servers import stop_postgres
from tools import TOOLS

TEST_DATABASE = "switchboard_test"
JWT_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"
ADMIN_EMAIL = "admin@example.org"
ADMIN_PASSWORD = "admin-password-1"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="session", autouse=True)
def _patches() -> None:
    # What the server and the worker do at start; tests that use graphs without the app too.
    patches.install()


@pytest.fixture(scope="session")
def embedded_pg() -> Any:
    # Under /tmp, not /root: pgserver runs Postgres as its own OS user when we are root.
    data_dir = Path(tempfile.mkdtemp(prefix="switchboard-tests-", dir="/tmp"))
    server: EmbeddedPostgres = start_embedded(data_dir)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
async def database_url(embedded_pg: EmbeddedPostgres) -> str:
    async with await psycopg.AsyncConnection.connect(embedded_pg.uri(), autocommit=True) as conn:
        await conn.execute(f"DROP DATABASE IF EXISTS {TEST_DATABASE}")
        await conn.execute(f"CREATE DATABASE {TEST_DATABASE}")
    url = embedded_pg.uri(TEST_DATABASE)
    await upgrade_database(url)
    return url


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Test settings; built explicitly so the developer's environment cannot leak in."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "jwt_secret": JWT_SECRET,
        "pool_min_size": 1,
        "pool_max_size": 10,
        "default_model": "fake:echo",
        "admin_email": None,
        "admin_password": None,
        # No cron starts a run by itself: a test drives the scheduler one round at a time
        # (``state.crons.step()``), or asks for a process whose scheduler runs.
        "cron_poll_seconds": 0,
        # No graph of the repository's langgraph.json is an agent unless a test asks for it.
        "graphs_config": None,
        # Nor does a thread expire by itself: a test drives a sweep (``state.thread_sweeper``).
        "thread_sweep_seconds": 0,
    }
    values.update(overrides)
    return Settings.model_validate(values)


async def _truncate(database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, **connection_kwargs()) as conn:
        cursor = await conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        )
        tables = sql_text.SQL(", ").join(
            sql_text.Identifier(row["tablename"]) for row in await cursor.fetchall()
        )
        # A background job of a running app (the knowledge indexer writing the seeded glossary's
        # chunks, a cron or webhook round) may hold a lock on one table and want another: a
        # TRUNCATE that locks tables one by one as it goes deadlocked with it (twice in one CI
        # run, five tries in a row). Taking every lock at once without waiting never holds one
        # lock while waiting for another, so it cannot deadlock; it is tried until the jobs'
        # short transactions let it in.
        while True:
            try:
                async with conn.transaction():
                    await conn.execute(
                        sql_text.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE NOWAIT").format(tables)
                    )
                    await conn.execute(
                        "TRUNCATE users, refresh_tokens, login_failures, auth_rate_limits,"
                        " user_interests, chats, agents, store CASCADE"
                    )
                break
            except psycopg.errors.LockNotAvailable:
                await asyncio.sleep(0.01)
        await seed_agents(conn)


@pytest.fixture(autouse=True)
async def _clean_database(database_url: str) -> None:
    await _truncate(database_url)


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run ``app``'s lifespan and give an HTTP client talking to it over ASGI."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://switchboard") as client:
            yield client


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://switchboard") as c:
        yield c


class User:
    """A registered user and what registering returned."""

    def __init__(self, body: dict[str, Any], password: str):
        self.body = body
        self.password = password
        self.id: str = body["user"]["id"]
        self.email: str = body["user"]["email"]
        self.access_token: str = body["access_token"]
        self.refresh_token: str = body["refresh_token"]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


RegisterFn = Callable[..., Awaitable[User]]


@pytest.fixture
def register(client: httpx.AsyncClient) -> RegisterFn:
    """Register a new user (unique email unless given) and return it."""

    async def _register(
        name: str = "Test User", email: str | None = None, password: str = PASSWORD
    ) -> User:
        email = email or f"user-{uuid.uuid4().hex[:12]}@example.org"
        response = await client.post(
            "/auth/register", json={"name": name, "email": email, "password": password}
        )
        assert response.status_code == 201, response.text
        return User(response.json(), password)

    return _register


@pytest.fixture
async def user(register: RegisterFn) -> User:
    return await register(name="Alice")


@pytest.fixture
async def other_user(register: RegisterFn) -> User:
    return await register(name="Bob")


@pytest.fixture
async def admin(app: FastAPI, client: httpx.AsyncClient) -> User:
    await ensure_admin(
        app.state.switchboard.pool, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, name="Admin"
    )
    response = await client.post(
        "/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 200, response.text
    return User(response.json(), ADMIN_PASSWORD)


SDKFactory = Callable[[User], LangGraphClient]


@pytest.fixture
async def sdk(app: FastAPI) -> AsyncIterator[SDKFactory]:
    """The official client of a user, talking to the app over ASGI."""
    opened: list[httpx.AsyncClient] = []

    def make(user: User) -> LangGraphClient:
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://switchboard",
            headers=user.headers,
        )
        opened.append(http)
        return LangGraphClient(http)

    yield make
    for http in opened:
        await http.aclose()


async def delete_user_row(database_url: str, user_id: str) -> None:
    """Delete a user's row behind the API's back. The cascade reaches the user's chat files,
    which the session app's knowledge indexer may be updating: a deadlock with it (seen in a
    helper's runs) is tried again."""
    for attempt in range(20):
        try:
            await sql(database_url, "DELETE FROM users WHERE id = %s", user_id)
            return
        except psycopg.errors.DeadlockDetected:
            if attempt == 19:
                raise
            await asyncio.sleep(0.05)


async def sql(database_url: str, query: str, *params: Any) -> list[dict[str, Any]]:
    """Rows of ``query`` on its own connection (what a test checks in Postgres itself)."""
    async with await psycopg.AsyncConnection.connect(
        database_url, autocommit=True, row_factory=dict_row
    ) as db:
        cur = await db.execute(query, params)  # type: ignore[arg-type]
        return await cur.fetchall() if cur.description else []


@pytest.fixture
async def interest_areas(client: httpx.AsyncClient) -> dict[str, str]:
    """The seeded catalog as ``{slug: id}``."""
    response = await client.get("/interest-areas")
    assert response.status_code == 200
    return {area["slug"]: area["id"] for area in response.json()}


@pytest.fixture
async def seeded_agents(client: httpx.AsyncClient, user: User) -> dict[str, dict[str, Any]]:
    """The seed agents as ``{slug: agent}``."""
    response = await client.get("/agents/", params={"limit": 100}, headers=user.headers)
    assert response.status_code == 200
    return {agent["slug"]: agent for agent in response.json()["items"]}


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    """The response is an error in the one JSON shape, with no internals leaking."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"detail", "code"}, body
    if code is not None:
        assert body["code"] == code, body
    text = response.text
    for leak in ("Traceback", "psycopg", 'File "', "Exception"):
        assert leak not in text, text
    return body


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data directory for a server started as a process; its Postgres is stopped after."""
    path = Path(tempfile.mkdtemp(prefix="switchboard-proc-", dir="/tmp"))
    try:
        yield path
    finally:
        stop_postgres(path / "pgdata")
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def slow_tool(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """A tool ``slow_lookup`` that takes 30 s; the event is set once a call of it started."""
    started = asyncio.Event()

    @tool("slow_lookup")
    async def slow_lookup(query: str) -> str:
        """Takes a long time."""
        started.set()
        await asyncio.sleep(30)
        return "never"

    monkeypatch.setitem(TOOLS, "slow_lookup", slow_lookup)
    return started
