"""``current_datetime``: what time it is now, anywhere (models do not know the date)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from langchain_core.tools import tool
from pydantic import Field

from tools.errors import ToolInputError


def _now() -> datetime:
    """The current instant; tests replace it."""
    return datetime.now(UTC)


def describe(moment: datetime, timezone: str) -> str:
    """``2026-11-24T20:38:47+01:00 (Tuesday, Europe/Paris)`` for ``moment`` in ``timezone``."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolInputError(
            f"Unknown timezone {timezone!r}. Use an IANA name such as 'UTC', "
            "'Europe/Paris', 'America/Sao_Paulo' or 'Asia/Tokyo'."
        ) from None
    local = moment.astimezone(zone).replace(microsecond=0)
    return f"{local.isoformat()} ({local.strftime('%A')}, {timezone})"


@tool("current_datetime")
def current_datetime(
    timezone: Annotated[
        str,
        Field(
            description="IANA timezone name, e.g. 'UTC', 'Europe/Paris', 'America/New_York'.",
            max_length=64,
        ),
    ] = "UTC",
) -> str:
    """Get the current date and time in a timezone.

    Use it whenever the answer depends on today's date, the current time or the day of the week
    (you cannot know them otherwise). Returns ISO 8601 with the UTC offset, then the weekday and
    the timezone, e.g. "2026-11-24T20:38:47+01:00 (Tuesday, Europe/Paris)".
    """
    return describe(_now(), timezone.strip())
