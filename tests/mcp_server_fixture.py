"""A real MCP server for tests/test_mcp_tools.py, built with the official SDK's ``MCPServer``
(FastMCP before mcp 2): ``python tests/mcp_server_fixture.py stdio``, or ``http <port>`` for
streamable HTTP on 127.0.0.1 (path ``/mcp``), which checks the ``Authorization`` header it
is started with (``MCP_FIXTURE_TOKEN``) when one is set."""

from __future__ import annotations

import os
import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("fixture")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
async def nap(seconds: float) -> str:
    """Sleep, then say so."""
    import anyio

    await anyio.sleep(seconds)
    return "rested"


@server.tool()
def shout(text: str) -> str:
    """The text in capitals."""
    return text.upper()


@server.tool()
def getenv(name: str) -> str:
    """An environment variable of this process ("" when unset)."""
    return os.environ.get(name, "")


def _http(port: int) -> None:
    import uvicorn
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    app = server.streamable_http_app()
    token = os.environ.get("MCP_FIXTURE_TOKEN")

    async def guarded(scope, receive, send):  # type: ignore[no-untyped-def]
        if token and scope["type"] == "http":
            if Request(scope).headers.get("authorization") != f"Bearer {token}":
                await JSONResponse({"error": "unauthorized"}, status_code=401)(scope, receive, send)
                return
        await app(scope, receive, send)

    uvicorn.run(guarded, host="127.0.0.1", port=port, log_level="warning", lifespan="on")


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        server.run("stdio")
    else:
        _http(int(sys.argv[2]))
