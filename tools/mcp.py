"""MCP tools: the tools of MCP servers an admin registered, as LangChain tools (Switchboard as
an MCP *client*; the server side, ``/mcp``, is ``api/mcp.py``).

Agents enable them as ``mcp:<server>/<tool>``. A graph is built from the tool list the server
gave at its last refresh (names, descriptions, argument schemas), so building one never waits
on a server; each call opens a session to the server at call time. A server that is down, slow
or refuses answers the model an error it can read (``ToolInputError``), never a failed run.

This is a thin adapter over the official ``mcp`` SDK's ``Client``, not
``langchain-mcp-adapters``: every release of that package (0.3.x) requires ``mcp<2``, and the
server's own ``/mcp`` endpoint is built on ``mcp`` 2.

Where calls may go is a policy of the server's settings (``configure``): a streamable-HTTP URL
passes the SSRF guard (``tools.net_guard``) unless its host is allowlisted, and every request
of the session goes to the address that was checked; a stdio command runs on the host, so only
allowlisted executables run. Headers and environment values may hold secrets: they are never
logged, and errors name only the kind of failure.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2
from langchain_core.tools import BaseTool, StructuredTool
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from tools import net_guard
from tools.errors import ToolInputError

log = logging.getLogger("switchboard.tools.mcp")

PREFIX = "mcp:"
# A registered server's name, as it appears in ``mcp:<server>/<tool>``.
SERVER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
# What the MCP specification allows in a tool's name.
MCP_TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
# ``mcp:<server>/<tool>`` as agents name it.
# (``QUALIFIED_PATTERN``, without groups, is how a JSON schema states it.)
QUALIFIED_PATTERN = r"^mcp:[a-z0-9][a-z0-9_-]{0,39}/[A-Za-z0-9_.-]{1,128}$"
QUALIFIED = re.compile(r"^mcp:([a-z0-9][a-z0-9_-]{0,39})/([A-Za-z0-9_.-]{1,128})$")
# How many tools a refresh keeps (pages followed), and how much of a result goes to the model.
MAX_TOOLS = 256
MAX_RESULT_CHARS = 100_000


@dataclass(frozen=True)
class Policy:
    """Where MCP sessions may go, and how long one may take."""

    allowed_hosts: Collection[str] = ()
    stdio_commands: Collection[str] = ()
    timeout_seconds: float = 30


POLICY = Policy()


def configure(settings: Any) -> None:
    """Take the policy from the server's settings (at start, with the tool plugins)."""
    global POLICY
    POLICY = Policy(
        allowed_hosts=tuple(settings.mcp_allowed_hosts),
        stdio_commands=tuple(settings.mcp_stdio_commands),
        timeout_seconds=settings.mcp_timeout_seconds,
    )


class Unavailable(Exception):
    """The server could not be asked; ``reason`` is safe to show (no URL, header or output)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def qualified(server: str, tool: str) -> str:
    return f"{PREFIX}{server}/{tool}"


def split(name: str) -> tuple[str, str] | None:
    """``(server, tool)`` of an ``mcp:<server>/<tool>`` name; ``None`` for any other name."""
    match = QUALIFIED.match(name)
    return (match[1], match[2]) if match else None


def model_name(server: str, tool: str) -> str:
    """The name the model calls the tool by: providers accept ``[A-Za-z0-9_-]{1,64}`` only."""
    name = f"mcp_{server}_{tool}".replace(".", "_")
    if len(name) <= 64:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:55]}_{digest}"


class _PinnedTransport(httpx2.AsyncBaseTransport):
    """Sends every request of a session to the address the guard checked, whatever DNS says
    later; a request for another host (none is expected) is refused."""

    def __init__(self, destination: net_guard.Destination):
        self._inner = httpx2.AsyncHTTPTransport()
        self._host = destination.url.host
        self._address = destination.address
        self._https = destination.url.scheme == "https"

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.host != self._host:
            raise httpx2.ConnectError("request to a host that was not checked")
        if self._https:
            request.extensions["sni_hostname"] = self._host
        # The Host header was set from the original URL when the request was built.
        request.url = request.url.copy_with(host=self._address)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@asynccontextmanager
async def _session(server: Mapping[str, Any]) -> AsyncIterator[Client]:
    """An initialized session with ``server`` (an ``mcp_servers`` row)."""
    if server["transport"] == "stdio":
        command = server["command"]
        if command not in POLICY.stdio_commands:
            raise Unavailable("its command is not on the server's allowlist")
        params = StdioServerParameters(
            command=command, args=list(server["args"]), env=dict(server["env"]) or None
        )
        async with Client(stdio_client(params), cache=None) as client:
            yield client
        return
    try:
        destination = await net_guard.check(server["url"], allowed_hosts=POLICY.allowed_hosts)
    except net_guard.Refused as refused:
        raise Unavailable(f"its URL is not allowed ({refused.reason})") from None
    http = httpx2.AsyncClient(
        transport=_PinnedTransport(destination),
        headers=dict(server["headers"]),
        timeout=POLICY.timeout_seconds,
    )
    async with (
        http,
        Client(streamable_http_client(server["url"], http_client=http), cache=None) as client,
    ):
        yield client


def _failure(server: Mapping[str, Any], what: str, exc: BaseException) -> Unavailable:
    if isinstance(exc, Unavailable):
        return exc
    # The type only: messages of transport errors can carry the URL (and so a token in it).
    log.warning("MCP server %s: %s failed (%s)", server["name"], what, type(exc).__name__)
    if isinstance(exc, TimeoutError):
        return Unavailable(f"it did not answer within {POLICY.timeout_seconds:g} s")
    return Unavailable("it could not be reached or did not answer as an MCP server")


async def list_tools(server: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The tools ``server`` offers now: ``[{name, description, input_schema}]`` by name;
    ``Unavailable`` when it cannot be asked."""
    found: list[dict[str, Any]] = []
    try:
        with anyio.fail_after(POLICY.timeout_seconds):
            async with _session(server) as client:
                cursor: str | None = None
                while len(found) < MAX_TOOLS:
                    page = await client.list_tools(cursor=cursor)
                    found.extend(
                        {
                            "name": t.name,
                            "description": t.description or t.title or t.name,
                            "input_schema": t.input_schema or {"type": "object"},
                        }
                        for t in page.tools
                    )
                    cursor = page.next_cursor
                    if not cursor:
                        break
    except BaseException as exc:
        if not isinstance(exc, Exception):
            raise
        raise _failure(server, "listing tools", exc) from None
    skipped = [t["name"] for t in found if not MCP_TOOL_NAME.match(t["name"])]
    if skipped:
        log.warning("MCP server %s: tools with invalid names skipped: %s", server["name"], skipped)
    tools = {t["name"]: t for t in found[:MAX_TOOLS] if MCP_TOOL_NAME.match(t["name"])}
    return [tools[name] for name in sorted(tools)]


def _text(result: Any) -> str:
    parts: list[str] = []
    for block in result.content:
        text = getattr(block, "text", None)
        parts.append(text if isinstance(text, str) else f"[{getattr(block, 'type', 'content')}]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content))
    return "\n".join(parts)[:MAX_RESULT_CHARS]


async def call(server: Mapping[str, Any], tool: str, arguments: dict[str, Any]) -> str:
    """What ``tool`` of ``server`` answers ``arguments``, as text; ``ToolInputError`` (read by
    the model) when the server cannot be asked or the tool reports an error."""
    try:
        with anyio.fail_after(POLICY.timeout_seconds):
            async with _session(server) as client:
                result = await client.call_tool(tool, arguments)
    except BaseException as exc:
        if not isinstance(exc, Exception):
            raise
        reason = _failure(server, f"calling {tool}", exc).reason
        raise ToolInputError(
            f"the MCP server {server['name']} is unavailable: {reason}. Try again later, or "
            "answer without this tool."
        ) from None
    text = _text(result)
    if result.is_error:
        raise ToolInputError(f"the tool {tool} of MCP server {server['name']} failed: {text}")
    return text


def build(server: Mapping[str, Any], tool: Mapping[str, Any]) -> BaseTool:
    """The LangChain tool for ``tool`` (an entry of the server's refreshed list)."""
    name = tool["name"]

    async def run(**arguments: Any) -> str:
        return await call(server, name, arguments)

    return StructuredTool(
        name=model_name(server["name"], name),
        description=tool.get("description") or name,
        args_schema=dict(tool.get("input_schema") or {"type": "object", "properties": {}}),
        coroutine=run,
        metadata={"mcp_server": server["name"], "mcp_tool": name},
    )


def tools_of(servers: Collection[Mapping[str, Any]], names: Collection[str]) -> dict[str, BaseTool]:
    """The tools among ``names`` (``mcp:<server>/<tool>``) that ``servers`` listed at their
    last refresh, by those names. A name no longer listed is left out: the agent runs without
    it until the server lists it again."""
    by_name = {s["name"]: s for s in servers}
    found: dict[str, BaseTool] = {}
    for name in names:
        parts = split(name)
        if parts is None or parts[0] not in by_name:
            continue
        server = by_name[parts[0]]
        listed = {t["name"]: t for t in server["tools"] or []}
        if parts[1] in listed:
            found[name] = build(server, listed[parts[1]])
    return found
