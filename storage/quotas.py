"""Quotas: a user's own limits, and the check every run's insert makes (``quota_admit``).

The check is a function in Postgres (migration ``quotas_usage``), called in the transaction
that inserts the run, under a per-user lock: limits hold across API processes, and a refused
run leaves nothing behind (the transaction rolls back).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Literal, cast
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from storage.db import Conn

# The quotas, by the name each has in settings, overrides and refusal codes (``quota_<name>``).
QUOTAS = ("runs_per_minute", "tokens_per_day", "active_runs")
QuotaName = Literal["runs_per_minute", "tokens_per_day", "active_runs"]
# What quota_admit raises when it refuses.
REFUSED_SQLSTATE = "SBQ01"

ADMIT = "SELECT quota_admit(%(user_id)s, %(quotas)s)"
SELECT_OVERRIDES = """
SELECT runs_per_minute, tokens_per_day, active_runs FROM user_quotas WHERE user_id = %s
"""
# A row of nulls is removed: the user is back on the role's defaults.
UPSERT_OVERRIDES = """
INSERT INTO user_quotas (user_id, runs_per_minute, tokens_per_day, active_runs)
VALUES (%(user_id)s, %(runs_per_minute)s, %(tokens_per_day)s, %(active_runs)s)
ON CONFLICT (user_id) DO UPDATE SET
    runs_per_minute = excluded.runs_per_minute, tokens_per_day = excluded.tokens_per_day,
    active_runs = excluded.active_runs, updated_at = now()
"""
DELETE_OVERRIDES = "DELETE FROM user_quotas WHERE user_id = %s"


class QuotaExceeded(Exception):
    """A run refused by one of its user's quotas: ``quota`` (a name of ``QUOTAS``), its
    ``limit``, and ``retry_after``, the seconds until it frees."""

    def __init__(self, quota: QuotaName, limit: int, retry_after: int):
        super().__init__(f"quota_{quota}")
        self.quota = quota
        self.limit = limit
        self.retry_after = retry_after

    @property
    def code(self) -> str:
        return f"quota_{self.quota}"


def admit_params(quotas: dict[str, Any] | None) -> Jsonb:
    """``quota_admit``'s defaults: each role's limits (``{"user": {...}, "admin": {...}}``)."""
    return Jsonb(quotas or {})


def _exceeded(exc: psycopg.Error) -> QuotaExceeded | None:
    """``quota_admit``'s refusal as ``QuotaExceeded``; ``None`` for any other error."""
    diag = exc.diag
    quota = (diag.message_primary or "").removeprefix("quota_")
    if exc.sqlstate != REFUSED_SQLSTATE or quota not in QUOTAS:
        return None
    return QuotaExceeded(
        cast(QuotaName, quota), int(diag.message_hint or 0), int(diag.message_detail or 1)
    )


class Refusal:
    """What ``caught`` caught: ``check`` raises it once out of the pipeline (raised through
    the pipeline's exit, psycopg would log a warning about the aborted pipeline each time)."""

    def __init__(self) -> None:
        self.exceeded: QuotaExceeded | None = None

    def check(self) -> None:
        if self.exceeded is not None:
            raise self.exceeded


@contextlib.contextmanager
def caught() -> Iterator[Refusal]:
    """Catch ``quota_admit``'s refusal (a transaction it ends has rolled back) for ``check``."""
    refusal = Refusal()
    try:
        yield refusal
    except psycopg.Error as exc:
        refusal.exceeded = _exceeded(exc)
        if refusal.exceeded is None:
            raise


async def overrides(conn: Conn, user_id: UUID) -> dict[str, int | None]:
    """The user's own limits (``None``: the role's default)."""
    cur = await conn.execute(SELECT_OVERRIDES, (user_id,))
    row = await cur.fetchone()
    return {name: (row[name] if row else None) for name in QUOTAS}


async def set_overrides(conn: Conn, user_id: UUID, values: dict[str, int | None]) -> None:
    """Set the user's own limits (``None``: the role's default) to ``values``."""
    if all(values.get(name) is None for name in QUOTAS):
        await conn.execute(DELETE_OVERRIDES, (user_id,))
        return
    await conn.execute(
        UPSERT_OVERRIDES, {"user_id": user_id, **{name: values.get(name) for name in QUOTAS}}
    )
