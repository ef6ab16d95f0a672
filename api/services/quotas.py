"""Quotas per user (set by admins), usage reports and the operator's statistics.

The quotas themselves are enforced where every run is inserted (storage/runs.py calls
``quota_admit`` in the insert's transaction, storage/quotas.py); this reads and sets them.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from api.errors import InvalidInput, NotFound
from api.state import AppState
from storage import quotas as quotas_store
from storage import usage as usage_store
from storage import users as users_store
from storage.usage import COUNTS, GroupBy

# A report's default range: the last 30 UTC days, today included.
DEFAULT_DAYS = 30
# The longest range a report covers (days, both ends included).
MAX_DAYS = 366
USER_NOT_FOUND = "user_not_found"
INVALID_DATE_RANGE = "invalid_date_range"


def date_range(start: date | None, end: date | None) -> tuple[date, date]:
    """The range a report covers: ``end`` defaults to today (UTC), ``start`` to 29 days before
    ``end``; 422 ``invalid_date_range`` when ``start`` is after ``end`` or it spans more than
    ``MAX_DAYS`` days."""
    end = end or datetime.now(UTC).date()
    start = start or end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise InvalidInput("`from` is after `to`", code=INVALID_DATE_RANGE)
    if (end - start).days + 1 > MAX_DAYS:
        raise InvalidInput(
            f"The range covers more than {MAX_DAYS} days: ask for a shorter one",
            code=INVALID_DATE_RANGE,
        )
    return start, end


async def user_quotas(state: AppState, user_id: UUID) -> dict[str, Any]:
    """A user's own limits, their role's defaults and what applies; 404 for no such user."""
    async with state.pool.connection() as conn:
        user = await users_store.get(conn, user_id)
        if user is None:
            raise NotFound("No such user", code=USER_NOT_FOUND)
        overrides = await quotas_store.overrides(conn, user_id)
    defaults = state.settings.quota_defaults[user["role"]]
    effective = {
        name: overrides[name] if overrides[name] is not None else defaults[name]
        for name in quotas_store.QUOTAS
    }
    return {
        "user_id": user_id,
        "role": user["role"],
        "overrides": overrides,
        "defaults": defaults,
        "effective": effective,
    }


async def set_user_quotas(
    state: AppState, user_id: UUID, values: dict[str, int | None]
) -> dict[str, Any]:
    """Set a user's own limits (``None``: the role's default); they apply to the next run."""
    async with state.pool.connection() as conn, conn.transaction():
        if await users_store.get(conn, user_id) is None:
            raise NotFound("No such user", code=USER_NOT_FOUND)
        await quotas_store.set_overrides(conn, user_id, values)
    return await user_quotas(state, user_id)


def _totals(rows: list[dict[str, Any]]) -> dict[str, int]:
    return {key: sum(int(row[key]) for row in rows) for key in COUNTS}


async def user_usage(
    state: AppState, user_id: UUID, start: date | None, end: date | None
) -> dict[str, Any]:
    """The user's usage per day and model in the range, and its totals."""
    start, end = date_range(start, end)
    async with state.pool.connection() as conn:
        rows = await usage_store.user_days(conn, user_id, start, end)
    return {"from": start, "to": end, "items": rows, "totals": _totals(rows)}


async def admin_usage(
    state: AppState, group_by: GroupBy, start: date | None, end: date | None
) -> dict[str, Any]:
    """Everyone's usage in the range per user, agent or model, and its totals."""
    start, end = date_range(start, end)
    async with state.pool.connection() as conn:
        rows = await usage_store.grouped(conn, group_by, start, end)
    return {"from": start, "to": end, "group_by": group_by, "items": rows, "totals": _totals(rows)}


async def stats(state: AppState, start: date | None, end: date | None) -> dict[str, Any]:
    """Users and chats, the runs created in the range per status and per day, and the size
    of each table."""
    start, end = date_range(start, end)
    async with state.pool.connection() as conn:
        found = await usage_store.stats(conn, start, end)
    by_status: dict[str, int] = defaultdict(int)
    days: dict[date, dict[str, int]] = defaultdict(dict)
    for row in found["runs"]:
        by_status[row["status"]] += row["n"]
        days[row["day"]][row["status"]] = row["n"]
    tables = [{"name": row["name"], "bytes": row["bytes"]} for row in found["tables"]]
    return {
        "from": start,
        "to": end,
        "users": found["users"],
        "chats": found["chats"],
        "runs": sum(by_status.values()),
        "runs_by_status": dict(by_status),
        "runs_per_day": [
            {"day": day, "total": sum(counts.values()), "by_status": counts}
            for day, counts in sorted(days.items())
        ],
        "database_bytes": sum(table["bytes"] for table in tables),
        "tables": tables,
    }
