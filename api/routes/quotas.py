"""Quotas and usage: your usage, and for admins each user's quotas, everyone's usage and the
server's statistics."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import BeforeValidator

from api.deps import AdminUser, CurrentUser, State
from api.openapi import errors
from api.schemas.quotas import AdminUsage, QuotasUpdate, Stats, UserQuotas, UserUsage
from api.services import quotas as service

router = APIRouter(tags=["quotas and usage"])

_RANGE = (
    "UTC days, both included: `to` defaults to today, `from` to 29 days before `to`; "
    "`from` after `to`, or a range of more than 366 days, is a 422 `invalid_date_range`"
)


def _iso_date(value: Any) -> Any:
    # Pydantic also reads a number as a Unix time (`to=0` is 1970-01-01): only the form the
    # schema states (`format: date`) is a date here.
    if isinstance(value, str) and not _ISO_DATE.fullmatch(value):
        raise ValueError("must be a date as YYYY-MM-DD")
    return value


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
Day = Annotated[date, BeforeValidator(_iso_date)]
From = Annotated[Day | None, Query(alias="from", description=f"The first day ({_RANGE})")]
To = Annotated[Day | None, Query(description="The last day")]
_NO_USER = "No such user (`user_not_found`)"


@router.get("/users/me/usage", response_model=UserUsage, responses=errors(422))
async def my_usage(
    user: CurrentUser, state: State, from_: From = None, to: To = None
) -> dict[str, Any]:
    """What your runs used per day and model (from each run's reported usage, estimated
    where the provider reported none), and the totals."""
    return await service.user_usage(state, user["id"], from_, to)


@router.get(
    "/admin/users/{user_id}/quotas",
    response_model=UserQuotas,
    responses={404: {**errors(404)[404], "description": _NO_USER}},
)
async def get_user_quotas(user_id: UUID, _: AdminUser, state: State) -> dict[str, Any]:
    """A user's own quotas, their role's defaults (settings) and what applies (admins)."""
    return await service.user_quotas(state, user_id)


@router.put(
    "/admin/users/{user_id}/quotas",
    response_model=UserQuotas,
    responses={404: {**errors(404)[404], "description": _NO_USER}},
)
async def put_user_quotas(
    user_id: UUID, body: QuotasUpdate, _: AdminUser, state: State
) -> dict[str, Any]:
    """Set a user's own quotas (admins): each one left out or `null` is the role's default.
    They apply from the user's next run."""
    return await service.set_user_quotas(state, user_id, body.model_dump())


@router.get("/admin/usage", response_model=AdminUsage, responses=errors(422))
async def usage(
    _: AdminUser,
    state: State,
    group_by: Annotated[
        Literal["user", "agent", "model"], Query(description="What each item sums")
    ] = "user",
    from_: From = None,
    to: To = None,
) -> dict[str, Any]:
    """Everyone's usage in the range, per user, agent or model, and the totals (admins)."""
    return await service.admin_usage(state, group_by, from_, to)


@router.get("/admin/stats", response_model=Stats, responses=errors(422))
async def stats(_: AdminUser, state: State, from_: From = None, to: To = None) -> dict[str, Any]:
    """Users, chats, the runs created in the range per status and per day, and the database's
    size by table (admins)."""
    return await service.stats(state, from_, to)
