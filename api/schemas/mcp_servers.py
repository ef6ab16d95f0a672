"""MCP server registrations (Switchboard as an MCP client) and what the API shows of them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field, StringConstraints

from api.schemas.common import NoNul, RequestModel, SchemaOnly, text_rules
from tools.mcp import SERVER_NAME

ServerName = Annotated[
    str,
    StringConstraints(pattern=SERVER_NAME.pattern),
    Field(description="Lower-case letters, digits, `_` and `-`; agents name its tools "
          "`mcp:<name>/<tool>`"),
]  # fmt: skip
# An HTTP header's name (an RFC 9110 token) and a value without line breaks or NUL.
HeaderName = Annotated[str, StringConstraints(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")]
HeaderValue = Annotated[str, StringConstraints(pattern=r"^[\t\x20-\x7e]{0,4096}$")]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")]
EnvValue = Annotated[str, text_rules(max_length=4096, strip=False), NoNul]
Argument = Annotated[str, text_rules(max_length=4096, strip=False), NoNul]
McpUrl = Annotated[
    str, Field(min_length=1, max_length=2048, json_schema_extra={"format": "uri"}), NoNul
]


def _only_named_keys(schema: dict[str, Any]) -> None:
    # A key that does not match the key pattern is refused, as the schema should say.
    schema["additionalProperties"] = False


OnlyNamedKeys = SchemaOnly(_only_named_keys)
Command = Annotated[str, text_rules(min_length=1, max_length=1024, strip=False), NoNul]


class HttpServerCreate(RequestModel):
    name: ServerName
    transport: Literal["streamable_http"]
    url: McpUrl = Field(
        description="The server's MCP endpoint: an http(s) URL without user info whose host "
        "resolves only to public addresses (or is on `SWITCHBOARD_MCP_ALLOWED_HOSTS`); "
        "otherwise a 422 `mcp_url_not_allowed`",
    )
    headers: Annotated[dict[HeaderName, HeaderValue], OnlyNamedKeys] = Field(
        default_factory=dict,
        max_length=20,
        description="Sent with every request (e.g. `Authorization`). Kept secret: the API "
        "shows their names only",
    )


class StdioServerCreate(RequestModel):
    name: ServerName
    transport: Literal["stdio"]
    command: Command = Field(
        description="The executable to run on this host: one of "
        "`SWITCHBOARD_MCP_STDIO_COMMANDS`, otherwise a 422 `mcp_command_not_allowed`"
    )
    args: list[Argument] = Field(default_factory=list, max_length=50)
    env: Annotated[dict[EnvName, EnvValue], OnlyNamedKeys] = Field(
        default_factory=dict,
        max_length=50,
        description="Environment variables of the process. Kept secret: the API shows their "
        "names only",
    )


McpServerCreate = Annotated[HttpServerCreate | StdioServerCreate, Field(discriminator="transport")]


class McpToolOut(BaseModel):
    name: str = Field(description="The tool's name on its server")
    enable_as: str = Field(description="The name agents enable it by in `tools_enabled`")
    description: str
    input_schema: dict[str, Any]


class McpServerOut(BaseModel):
    id: UUID
    name: str
    transport: Literal["streamable_http", "stdio"]
    url: str | None
    header_names: list[str] = Field(description="The names of its headers (values are secret)")
    command: str | None
    args: list[str]
    env_names: list[str] = Field(description="The names of its environment variables")
    tools: list[McpToolOut] | None = Field(
        description="The tools it listed at its last refresh; null before the first"
    )
    refreshed_at: datetime | None
    created_at: datetime
