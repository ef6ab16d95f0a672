"""Request bodies of the Agent Protocol's crons (as ``langgraph-sdk`` sends them).

A cron's run fields (``input``, ``config``, ``stream_mode`` …) follow the rules of a run's
(``RunCreate``): each tick starts a run made of them. Its schedule and timezone follow rules
the schema states in full (a pattern, an enumeration), so every body the schema admits passes
validation; what depends on the time of the request (an ``end_time`` already past) or on the
calendar (``0 0 30 2 *`` comes never) is checked when the cron is written, as a 422 with a code
of its own.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal
from uuid import UUID
from zoneinfo import available_timezones

from croniter import croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from api.schemas.common import JsonBool, JsonInt, NoNul, NulFree, SchemaOnly
from api.schemas.protocol import Limit, Metadata, Offset, SortOrder
from api.schemas.protocol_runs import BoundedMessages, RunConfig, WithMessages
from api.wire.protocol import STREAM_MODES

# The schedules Switchboard takes: standard cron's five fields (minute, hour, day of the
# month, month, day of the week: `*`, a value, a range `a-b`, each with an optional step `/n`,
# in comma-separated lists; months and weekdays also by their English abbreviations), or one of
# the `@` nicknames. croniter, which computes the ticks, takes each of them (and more: seconds,
# `L`, `W`, `#`, which this grammar leaves out).
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c}]" for c in word)


def _field(value: str) -> str:
    item = f"(?:\\*|{value}(?:-{value})?)(?:/[1-9][0-9]?)?"
    return f"{item}(?:,{item})*"


_VALUES = (
    "[0-5]?[0-9]",  # minute
    "(?:[01]?[0-9]|2[0-3])",  # hour
    "(?:0?[1-9]|[12][0-9]|3[01])",  # day of the month
    "(?:0?[1-9]|1[0-2]|" + "|".join(map(_any_case, _MONTHS)) + ")",
    "(?:0?[0-7]|" + "|".join(map(_any_case, _WEEKDAYS)) + ")",  # 0 and 7: Sunday
)
NICKNAMES: Final = ("yearly", "annually", "monthly", "weekly", "daily", "midnight", "hourly")
SCHEDULE_PATTERN: Final = (
    "^(?:@(?:" + "|".join(NICKNAMES) + ")|" + " +".join(map(_field, _VALUES)) + ")$"
)
_SCHEDULE = re.compile(SCHEDULE_PATTERN)


def _schedule(value: str) -> str:
    if not _SCHEDULE.fullmatch(value) or not croniter.is_valid(value):
        raise PydanticCustomError(
            "cron_schedule",
            "Should be a cron schedule: five fields (minute hour day-of-month month "
            "day-of-week), e.g. '*/5 * * * *', or @hourly, @daily, @weekly, @monthly, @yearly",
        )
    return value


def _schedule_schema(json_schema: dict[str, Any]) -> None:
    for variant in json_schema.get("anyOf", [json_schema]):
        if variant.get("type") == "string":
            variant["pattern"] = SCHEDULE_PATTERN
    json_schema["description"] = (
        "When runs start: a cron expression of five fields (minute, hour, day of the month, "
        "month, day of the week; `*`, values, ranges `a-b`, steps `/n`, lists; JAN-DEC and "
        "SUN-SAT), or `@hourly`, `@daily`, `@midnight`, `@weekly`, `@monthly`, `@yearly`, "
        "`@annually`. A schedule that never comes (`0 0 30 2 *`) is a 422 "
        "`schedule_never_fires`"
    )


Schedule = Annotated[
    str, Field(max_length=200), AfterValidator(_schedule), SchemaOnly(_schedule_schema)
]

# IANA time zones, as this machine's tz database names them (``zoneinfo``).
if TYPE_CHECKING:
    TimezoneName = str
else:
    TimezoneName = StrEnum("TimezoneName", {name: name for name in sorted(available_timezones())})
TIMEZONE_DESCRIPTION = "An IANA time zone the schedule is read in, e.g. `Europe/Lisbon`; null: UTC"

# An instant, RFC 3339 with its offset (an instant without one would be ambiguous), of a day
# that exists: the pattern knows the length of each month and the leap years.
_LEAP_YEAR = "(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)"
_DATE = (
    "(?!0000)(?:[0-9]{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    "|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))"
    f"|{_LEAP_YEAR}-02-29)"
)
INSTANT_PATTERN: Final = (
    f"^{_DATE}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]+)?"
    "(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
)
_INSTANT = re.compile(INSTANT_PATTERN)


def _instant(value: Any) -> datetime:
    if not isinstance(value, str) or not _INSTANT.fullmatch(value):
        raise PydanticCustomError(
            "datetime_type",
            "Should be a date-time with its offset, e.g. '2030-01-01T09:00:00Z'",
        )
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise PydanticCustomError(
            "datetime_from_date_parsing", "Should be a date-time that exists"
        ) from None
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        # Within a day of year 1 or 9999: as good as the first or the last instant.
        return (datetime.min if moment.year == 1 else datetime.max).replace(tzinfo=UTC)


EndTime = Annotated[
    datetime,
    PlainValidator(_instant),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "pattern": INSTANT_PATTERN,
            "description": "When the cron stops: no run starts after it. A date-time with its "
            "offset, in the future (one past is a 422 `end_time_passed`)",
        }
    ),
]

_STREAM_MODE = {"type": "string", "enum": list(STREAM_MODES)}
StreamModes = Annotated[
    list[str],
    WithJsonSchema(
        {
            "anyOf": [_STREAM_MODE, {"type": "array", "items": _STREAM_MODE, "maxItems": 7}],
            "description": "One stream mode or several (repeats count once), for the runs",
        }
    ),
]
Input = Annotated[dict[str, Any] | None, NulFree, BoundedMessages, WithMessages]
Interrupts = Literal["*"] | list[Annotated[str, NoNul]] | None
OnRunCompleted = Literal["delete", "keep"]
Strategy = Literal["reject", "enqueue", "interrupt", "rollback"]
# The fields of a cron that go into the runs it starts (its ``payload``), as ``RunCreate``
# names them.
RUN_FIELDS: Final = (
    "input", "config", "context", "stream_mode", "stream_subgraphs", "stream_resumable",
    "interrupt_before", "interrupt_after", "multitask_strategy",
)  # fmt: skip


class _Body(BaseModel):
    # What the SDK sends that Switchboard has no use for (webhook, durability,
    # checkpoint_during …) is accepted and ignored, as for runs.
    model_config = ConfigDict(extra="ignore")

    @field_validator("stream_mode", mode="before", check_fields=False)
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("stream_mode", check_fields=False)
    @classmethod
    def _known_modes(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        unknown = [mode for mode in value if mode not in STREAM_MODES]
        if unknown:
            raise ValueError(f"unknown stream mode {unknown[0]!r}; use {', '.join(STREAM_MODES)}")
        return list(dict.fromkeys(value)) or ["values"]

    def run_fields(self) -> dict[str, Any]:
        """What the runs are made of, as JSON (the cron's ``payload`` less its assistant)."""
        given = self.model_dump(mode="json", include=set(RUN_FIELDS), exclude_none=True)
        return {key: given[key] for key in RUN_FIELDS if key in given}


class CronFields(_Body):
    schedule: Schedule
    timezone: TimezoneName | None = Field(None, description=TIMEZONE_DESCRIPTION)
    end_time: EndTime | None = None
    assistant_id: Annotated[str, NoNul] = Field(
        min_length=1, max_length=200, description="An assistant's id or its graph name"
    )
    input: Input = None
    metadata: Metadata | None = Field(
        None, description="The runs' metadata; at most 16 KiB as JSON, nested at most 5 deep"
    )
    config: RunConfig | None = None
    context: Annotated[dict[str, Any] | None, NulFree] = None
    interrupt_before: Interrupts = None
    interrupt_after: Interrupts = None
    enabled: JsonBool = Field(True, description="A disabled cron starts no run")
    stream_mode: StreamModes = Field(default_factory=lambda: ["values"], max_length=7)
    stream_subgraphs: JsonBool = False
    stream_resumable: JsonBool = False


class CronCreate(CronFields):
    """A cron whose every tick starts a run on a new thread."""

    on_run_completed: OnRunCompleted = Field(
        "delete", description="What becomes of each run's thread once the run ended"
    )


class ThreadCronCreate(CronFields):
    """A cron whose every tick starts a run on the thread of the path."""

    multitask_strategy: Strategy = Field(
        "enqueue", description="What a tick does while the thread is busy, as for a run"
    )


class CronPatch(_Body):
    """A partial update: only the fields present change. `end_time: null` removes the end;
    any other null leaves the field as it is. `metadata` is merged into the cron's."""

    schedule: Schedule | None = None
    timezone: TimezoneName | None = Field(None, description=TIMEZONE_DESCRIPTION)
    end_time: EndTime | None = None
    input: Input = None
    metadata: Metadata | None = None
    config: RunConfig | None = None
    context: Annotated[dict[str, Any] | None, NulFree] = None
    interrupt_before: Interrupts = None
    interrupt_after: Interrupts = None
    on_run_completed: OnRunCompleted | None = Field(
        None, description="For a stateless cron; ignored on a thread's"
    )
    enabled: JsonBool | None = None
    stream_mode: StreamModes | None = Field(None, max_length=7)
    stream_subgraphs: JsonBool | None = None
    stream_resumable: JsonBool | None = None


CronField = Literal[
    "cron_id", "assistant_id", "thread_id", "on_run_completed", "end_time", "schedule",
    "timezone", "created_at", "updated_at", "user_id", "payload", "next_run_date", "metadata",
    "enabled",
]  # fmt: skip
Assistant = Annotated[
    str,
    NoNul,
    Field(
        min_length=1,
        max_length=200,
        description="An assistant's id or its graph name (an agent's slug)",
    ),
]


class CronCount(_Body):
    assistant_id: Assistant | None = None
    thread_id: UUID | None = None
    metadata: Metadata | None = Field(None, description="Crons whose metadata holds these pairs")


class CronSearch(CronCount):
    enabled: JsonBool | None = None
    limit: JsonInt = Limit
    offset: JsonInt = Offset
    sort_by: Literal[
        "cron_id", "assistant_id", "thread_id", "next_run_date", "end_time", "created_at",
        "updated_at",
    ] = "created_at"  # fmt: skip
    sort_order: SortOrder = "desc"
    select: list[CronField] | None = Field(None, max_length=14)


class Cron(BaseModel):
    """A cron, in the official server's shape (the routes build it: ``crons.cron_json``)."""

    cron_id: UUID
    assistant_id: UUID
    thread_id: UUID | None = Field(
        description="The thread every run is on; null for a stateless cron (a new thread each)"
    )
    on_run_completed: OnRunCompleted | None = Field(
        description="A stateless cron's: what becomes of each run's thread; null for a thread's"
    )
    end_time: datetime | None
    schedule: str
    timezone: str | None
    created_at: datetime
    updated_at: datetime
    user_id: str
    payload: dict[str, Any] = Field(
        description="What each run is made of: `assistant_id`, `input`, `config`, `stream_mode` …"
    )
    next_run_date: datetime | None = Field(
        description="When the next run starts; null when none will: no tick is left before "
        "`end_time`"
    )
    metadata: dict[str, Any]
    enabled: bool
