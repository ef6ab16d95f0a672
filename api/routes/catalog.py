"""Read-only catalogs: interest areas and tools."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import CurrentUser, Pool
from api.schemas.onboarding import InterestAreaOut
from api.services import profiles
from tools import TOOLS

router = APIRouter(tags=["catalog"])


class ToolOut(BaseModel):
    name: str
    description: str
    parameters: dict[str, Any]


@router.get("/interest-areas", response_model=list[InterestAreaOut])
async def interest_areas(pool: Pool) -> Sequence[Mapping[str, Any]]:
    """The interest areas users choose from and agents are tagged with."""
    async with pool.connection() as conn:
        return await profiles.interest_areas(conn)


@router.get("/tools", response_model=list[ToolOut])
async def tools(_: CurrentUser) -> list[dict[str, Any]]:
    """The tools agents can enable, with the JSON schema of their arguments."""
    # Our tools are ``@tool`` functions: their call schema is a pydantic (v2) model, never a dict.
    return [
        {
            "name": name,
            "description": tool.description,
            "parameters": cast(type[BaseModel], tool.tool_call_schema).model_json_schema(),
        }
        for name, tool in sorted(TOOLS.items())
    ]
