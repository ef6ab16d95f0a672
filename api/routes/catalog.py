"""Read-only catalogs: interest areas and tools."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import CurrentUser, Pool
from api.schemas.onboarding import InterestAreaOut
from api.services import profiles
from tools import TOOLS
from tools.plugins import parameters, source_of

router = APIRouter(tags=["catalog"])


class ToolOut(BaseModel):
    name: str
    description: str
    parameters: dict[str, Any]
    package: str = Field(
        description="The package the tool comes from: `switchboard` for a built-in tool, else "
        "the plugin's distribution (a `switchboard.tools` entry point)"
    )
    version: str = Field(description="That package's installed version")


@router.get("/interest-areas", response_model=list[InterestAreaOut])
async def interest_areas(pool: Pool) -> Sequence[Mapping[str, Any]]:
    """The interest areas users choose from and agents are tagged with."""
    async with pool.connection() as conn:
        return await profiles.interest_areas(conn)


@router.get("/tools", response_model=list[ToolOut])
async def tools(_: CurrentUser) -> list[dict[str, Any]]:
    """The tools agents can enable, with the JSON schema of their arguments and the package
    (built in, or a plugin) each comes from."""
    return [
        {
            "name": name,
            "description": tool.description,
            "parameters": parameters(tool),
            "package": source_of(name).package,
            "version": source_of(name).version,
        }
        for name, tool in sorted(TOOLS.items())
    ]
