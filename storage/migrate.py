"""Numbered, append-only SQL migrations.

Each ``migrations/NNNN_name.sql`` file is one migration; its number is its version. Applied
versions are recorded in ``switchboard_migrations``. The whole upgrade runs under a Postgres
advisory lock, so several replicas starting at once apply each migration exactly once. A
migration is never edited after it has shipped: a change is a new file.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

from psycopg import AsyncConnection

log = logging.getLogger(__name__)

# Any fixed 64-bit number works; it only has to be the same in every replica.
ADVISORY_LOCK_KEY = 0x5357_4254_4348_0001
# LangGraph's checkpointer tables: its ``setup`` creates its version table with ``CREATE TABLE
# IF NOT EXISTS``, which two sessions running at once can both try (a unique violation).
CHECKPOINTER_LOCK_KEY = 0x5357_4254_4348_0003


@asynccontextmanager
async def advisory_lock(conn: AsyncConnection[Any], key: int) -> AsyncIterator[None]:
    """Hold the session-level advisory lock ``key`` on ``conn`` (autocommit) meanwhile.

    Taken by trying every 50 ms rather than by waiting in ``pg_advisory_lock``: LangGraph's
    setups build indexes ``CONCURRENTLY``, which waits for every transaction open when it
    starts, and a session blocked in ``pg_advisory_lock`` is one, waiting for the lock the
    index builder holds (Postgres reports the deadlock). Between tries nothing is open.
    """
    while True:
        cur = await conn.execute("SELECT pg_try_advisory_lock(%s) AS locked", (key,))
        row = await cur.fetchone()
        if (row["locked"] if isinstance(row, dict) else row[0]) if row else False:
            break
        await asyncio.sleep(0.05)
    try:
        yield
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS switchboard_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
SELECT_APPLIED = "SELECT version FROM switchboard_migrations"
INSERT_APPLIED = "INSERT INTO switchboard_migrations (version, name) VALUES (%s, %s)"

_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """Every migration shipped with the package, in version order."""
    found = []
    for entry in resources.files("storage.migrations").iterdir():
        match = _FILE_RE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migration numbers must be 1..N without gaps, found {versions}")
    return found


async def upgrade(conn: AsyncConnection) -> list[int]:
    """Apply pending migrations on ``conn`` (an autocommit connection).

    Returns:
        The versions applied by this call (empty when the schema was already current).
    """
    applied_now: list[int] = []
    await conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
    try:
        await conn.execute(CREATE_MIGRATIONS_TABLE)
        cur = await conn.execute(SELECT_APPLIED)
        done = {
            row[0] if isinstance(row, tuple) else row["version"] for row in await cur.fetchall()
        }
        for migration in load_migrations():
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(INSERT_APPLIED, (migration.version, migration.name))
            log.info("applied migration %04d_%s", migration.version, migration.name)
            applied_now.append(migration.version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
    return applied_now
