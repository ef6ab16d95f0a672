"""Read-only catalogs: interest areas, tools and model providers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import CurrentUser, Pool, SettingsDep
from api.schemas.onboarding import InterestAreaOut
from api.services import mcp_servers, profiles
from graphs.models import provider_status
from tools import TOOLS, mcp
from tools.plugins import parameters, source_of

router = APIRouter(tags=["catalog"])


class ToolOut(BaseModel):
    name: str
    description: str
    parameters: dict[str, Any]
    package: str = Field(
        description="The package the tool comes from: `switchboard` for a built-in tool, else "
        "the plugin's distribution (a `switchboard.tools` entry point), or `mcp:<server>` for "
        "a registered MCP server's tool"
    )
    version: str = Field(
        description="That package's installed version (an MCP server's: when its tools were "
        "last listed)"
    )


@router.get("/interest-areas", response_model=list[InterestAreaOut])
async def interest_areas(pool: Pool) -> Sequence[Mapping[str, Any]]:
    """The interest areas users choose from and agents are tagged with."""
    async with pool.connection() as conn:
        return await profiles.interest_areas(conn)


@router.get("/tools", response_model=list[ToolOut])
async def tools(_: CurrentUser, pool: Pool) -> list[dict[str, Any]]:
    """The tools agents can enable, with the JSON schema of their arguments and the package
    (built in, or a plugin) each comes from; then the tools of registered MCP servers, as
    `mcp:<server>/<tool>` from package `mcp:<server>`, as of their last refresh."""
    async with pool.connection() as conn:
        servers = await mcp_servers.catalog(conn)
    return [
        *(
            {
                "name": name,
                "description": tool.description,
                "parameters": parameters(tool),
                "package": source_of(name).package,
                "version": source_of(name).version,
            }
            for name, tool in sorted(TOOLS.items())
        ),
        *(
            {
                "name": mcp.qualified(server["name"], tool["name"]),
                "description": tool["description"],
                "parameters": tool["input_schema"],
                "package": f"mcp:{server['name']}",
                "version": server["refreshed_at"].isoformat() if server["refreshed_at"] else "",
            }
            for server in servers
            for tool in server["tools"] or []
        ),
    ]


class ProviderOut(BaseModel):
    name: str = Field(description="The `provider` of a `provider:model` model name")
    installed: bool = Field(
        description="Whether its integration package is installed: agents may use its models"
    )
    package: str = Field(description="The package that makes it usable (`pip install` it)")
    credentials_present: bool = Field(
        description="Whether the environment variables it needs are set (their values are "
        "never shown); `true` for a provider that needs none"
    )
    env: list[str] = Field(description="The environment variables it reads")


class ModelsOut(BaseModel):
    providers: list[ProviderOut]
    default_model: str = Field(description="The model of agents that name none")


@router.get("/models", response_model=ModelsOut)
async def models(_: CurrentUser, settings: SettingsDep) -> dict[str, Any]:
    """The model providers this server knows, whether each is installed and has its
    credentials, and the default model."""
    return {"providers": provider_status(), "default_model": settings.effective_default_model}
