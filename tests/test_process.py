"""The ``switchboard`` command as a user runs it: a real process, real signals, real restarts."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import httpx
from fastapi import FastAPI

from api.app import create_app
from tests.conftest import PASSWORD, make_settings, running
from tests.servers import SWITCHBOARD, Server, clean_env, free_port, postgres_running


def test_serve_on_embedded_postgres_survives_restart_and_stops_postgres_on_sigterm(
    data_dir: Path,
) -> None:
    env = clean_env(SWITCHBOARD_DATA_DIR=str(data_dir))
    pgdata = data_dir / "pgdata"

    server = Server(data_dir, env)
    assert postgres_running(pgdata)
    info = httpx.get(f"{server.url}/info").json()
    assert info["database"] == "embedded"
    registered = httpx.post(
        f"{server.url}/auth/register",
        json={"name": "Ann", "email": "ann@example.org", "password": PASSWORD},
    )
    assert registered.status_code == 201
    server.stop_gracefully(signal.SIGTERM)
    assert not postgres_running(pgdata), "SIGTERM must stop the embedded Postgres"

    # Ctrl+C is SIGINT: same clean stop, and the data is still there after a restart.
    server = Server(data_dir, env)
    login = httpx.post(
        f"{server.url}/auth/login", json={"email": "ANN@example.org", "password": PASSWORD}
    )
    assert login.status_code == 200
    assert login.json()["user"]["id"] == registered.json()["user"]["id"]
    server.stop_gracefully(signal.SIGINT)
    assert not postgres_running(pgdata)


def test_restart_after_kill_9_reuses_the_orphaned_postgres_then_stops_it(data_dir: Path) -> None:
    env = clean_env(SWITCHBOARD_DATA_DIR=str(data_dir))
    pgdata = data_dir / "pgdata"
    server = Server(data_dir, env)
    assert server.signal(signal.SIGKILL) == -signal.SIGKILL
    assert postgres_running(pgdata), "kill -9 leaves Postgres running (nothing could stop it)"

    server = Server(data_dir, env)
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    server.stop_gracefully(signal.SIGTERM)
    # The dead process's handle must not keep the server alive forever.
    assert not postgres_running(pgdata)


def test_cli_db_upgrade_and_create_admin(database_url: str, data_dir: Path) -> None:
    env = clean_env(DATABASE_URL=database_url)
    upgrade = subprocess.run(
        [SWITCHBOARD, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=60
    )
    assert upgrade.returncode == 0, upgrade.stderr
    assert "database is up to date" in upgrade.stdout

    def create_admin(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SWITCHBOARD, "users", "create-admin", "--email", "boss@example.org", *extra],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    too_short = create_admin("--password", "short")
    assert too_short.returncode == 2
    assert "at least 8 characters" in too_short.stderr

    created = create_admin("--password", "boss-password", "--name", "Boss")
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "admin boss@example.org: created"
    again = create_admin("--password", "boss-password")
    assert again.stdout.strip() == "admin boss@example.org: unchanged"


async def test_create_admin_promotes_an_existing_user(
    database_url: str, client: httpx.AsyncClient
) -> None:
    registered = await client.post(
        "/auth/register", json={"name": "Eve", "email": "eve@example.org", "password": PASSWORD}
    )
    assert registered.json()["user"]["role"] == "user"
    result = await asyncio.to_thread(
        subprocess.run,
        [SWITCHBOARD, "users", "create-admin", "--email", "EVE@example.org", "--password", "x" * 9],
        env=clean_env(DATABASE_URL=database_url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == "admin EVE@example.org: promoted", result.stderr
    # Promotion keeps the password the user chose.
    login = await client.post(
        "/auth/login", json={"email": "eve@example.org", "password": PASSWORD}
    )
    assert login.status_code == 200
    assert login.json()["user"]["role"] == "admin"


async def test_bootstrap_admin_from_settings(database_url: str) -> None:
    settings = make_settings(
        database_url, admin_email="root@example.org", admin_password="root-password"
    )
    async with running(create_app(settings)) as client:
        login = await client.post(
            "/auth/login", json={"email": "root@example.org", "password": "root-password"}
        )
    assert login.status_code == 200
    assert login.json()["user"]["role"] == "admin"


async def test_data_survives_a_new_app_instance(app: FastAPI, database_url: str) -> None:
    """A restart: a new app (new pool, migrations re-checked) on the same database."""
    async with running(create_app(make_settings(database_url))) as first:
        admin = await first.post(
            "/auth/register", json={"name": "A", "email": "a@example.org", "password": PASSWORD}
        )
        token = {"Authorization": f"Bearer {admin.json()['access_token']}"}
        agents = (await first.get("/agents/", headers=token)).json()["items"]
        chat = await first.post(
            "/chats/", json={"agent_id": agents[0]["id"], "title": "Kept"}, headers=token
        )
        assert chat.status_code == 201

    async with running(create_app(make_settings(database_url))) as second:
        # Access tokens are stateless JWTs signed with the same secret: still valid.
        me = await second.get("/users/me", headers=token)
        assert me.json()["email"] == "a@example.org"
        assert (await second.get("/agents/", headers=token)).json()["items"] == agents
        chats = (await second.get("/chats/", headers=token)).json()
        assert [c["id"] for c in chats["items"]] == [chat.json()["id"]]
        assert chats["items"][0]["title"] == "Kept"
        refreshed = await second.post(
            "/auth/refresh", json={"refresh_token": admin.json()["refresh_token"]}
        )
        assert refreshed.status_code == 200


def test_production_refuses_the_default_secret(data_dir: Path) -> None:
    result = subprocess.run(
        [SWITCHBOARD, "serve", "--port", str(free_port())],
        env=clean_env(SWITCHBOARD_ENV="production", SWITCHBOARD_DATA_DIR=str(data_dir)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "SWITCHBOARD_JWT_SECRET" in result.stderr
    assert not (data_dir / "pgdata").exists(), "it must refuse before starting anything"
