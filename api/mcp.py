"""``/mcp``: the agents as MCP tools, over the official MCP SDK's Streamable HTTP transport.

The bearer token is checked here, as every route of the API checks it, before the SDK sees the
request: no token, a bad one or a deleted account's is the API's 401 JSON. The tools and what
a call does are in ``api/services/mcp.py``.

Stateless: each POST is served on its own, with no MCP session kept in this process, so any
replica can answer any request (no sticky sessions behind a load balancer) and nothing is lost
when a process restarts; a conversation's state is its thread, in Postgres. The tools need
nothing a session would give (no server-to-client requests, no subscriptions). Answers are
plain JSON rather than SSE, since a call sends no progress before its answer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final
from uuid import UUID

import mcp_types as types
from fastapi import FastAPI
from fastapi.security.utils import get_authorization_scheme_param
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from starlette.datastructures import Headers
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from api.errors import INVALID_TOKEN, Unauthorized, Unavailable
from api.routes.meta import server_version
from api.services import api_keys
from api.services import mcp as service
from api.state import AppState
from storage import users as users_store

log = logging.getLogger(__name__)

PATH: Final = "/mcp"
# Where the authenticated user's id travels from the endpoint to the tool handlers: the SDK
# hands each handler the HTTP request it came with.
_USER: Final = "switchboard.user_id"
# How long shutdown waits for requests in flight to end, then for the SDK to stop.
CLOSE_SECONDS: Final = 10


class McpServer:
    """The MCP server of one app: its handlers and the SDK's session manager, running in a
    task of its own from ``open`` to ``aclose``."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        server: Server[Any] = Server(
            "switchboard",
            version=server_version(),
            instructions="Each tool is an agent of this Switchboard server. Call it with a "
            "message; to continue a conversation, pass the thread_id its last answer gave.",
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            # Every tool takes the same arguments: no tools/list (a query) to find them.
            get_tool_input_schema=lambda _name: service.INPUT_SCHEMA,
        )
        self.manager = StreamableHTTPSessionManager(
            app=server,
            stateless=True,
            json_response=True,
            max_request_body_size=state.settings.max_body_bytes,
        )
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        # Requests being served, and an event set whenever there are none.
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def open(self) -> None:
        started = asyncio.Event()
        self._task = asyncio.create_task(self._run(started), name="mcp")
        # The manager refuses requests until its task group exists.
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait({self._task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self._task.done():
            self._task.result()  # raises what stopped it

    async def _run(self, started: asyncio.Event) -> None:
        # Its own task: the SDK's task group must be left in the task that entered it, and a
        # lifespan's start and end may run in different tasks (a test's fixture does).
        async with self.manager.run():
            started.set()
            await self._stop.wait()

    async def aclose(self) -> None:
        """Take no more requests, let those in flight finish (their runs have ended: the
        runtime drained first), then stop the SDK's task group, which cancels what is left."""
        if self._task is None:
            return
        self._closing = True
        try:
            async with asyncio.timeout(CLOSE_SECONDS):
                await self._idle.wait()
        except TimeoutError:
            log.warning("MCP requests in flight after %s s: %d", CLOSE_SECONDS, self._in_flight)
        self._stop.set()
        try:
            async with asyncio.timeout(CLOSE_SECONDS):
                await self._task
        except TimeoutError:
            log.warning("the MCP endpoint did not stop within %s s", CLOSE_SECONDS)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done() and not self._closing

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request (counted, so that ``aclose`` can wait for it)."""
        self._in_flight += 1
        self._idle.clear()
        try:
            await self.manager.handle_request(scope, receive, send)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def _list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        offset = _offset(params.cursor if params is not None else None)
        try:
            agents, following = await service.tools_page(self.state, offset)
        except Exception as exc:
            # Not left to the SDK, which would send the exception's text.
            failed = service.explain(exc, "The tools could not be listed. Try again.")
            raise MCPError(types.INTERNAL_ERROR, failed) from None
        tools = [
            types.Tool(
                name=agent["slug"],
                title=agent["name"],
                description=service.description(agent),
                input_schema=service.INPUT_SCHEMA,
                output_schema=service.OUTPUT_SCHEMA,
            )
            for agent in agents
        ]
        cursor = str(following) if following is not None else None
        return types.ListToolsResult(tools=tools, next_cursor=cursor)

    async def _call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        assert ctx.request is not None  # the HTTP request, which the endpoint authenticated
        user_id: UUID = ctx.request.scope[_USER]
        try:
            answer = await service.call(self.state, user_id, params.name, params.arguments)
        except service.UnknownTool:
            # A protocol error, as the specification has it for a name no tool has.
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {params.name}") from None
        except service.ToolFailure as failure:
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=failure.message)], is_error=True
            )
        thread = str(answer.thread_id)
        return types.CallToolResult(
            content=[
                types.TextContent(type="text", text=answer.reply),
                # For hosts that show a model only the text: how to go on with the conversation.
                types.TextContent(type="text", text=f"thread_id: {thread}"),
            ],
            structured_content={
                "reply": answer.reply, "thread_id": thread, "run_id": str(answer.run_id)
            },
        )  # fmt: skip


def _offset(cursor: str | None) -> int:
    """The offset a ``tools/list`` cursor (one this server gave) stands for."""
    if cursor is None:
        return 0
    if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= 9):
        raise MCPError(types.INVALID_PARAMS, "Invalid cursor")
    return int(cursor)


async def _authenticate(state: AppState, headers: Headers) -> UUID:
    """The user of the request's bearer token or API key (``Authorization: Bearer`` or
    ``x-api-key``, as ``CurrentUser`` takes them): 401 for a missing or invalid credential,
    for a revoked or expired key, and for a deleted account's."""
    scheme, token = get_authorization_scheme_param(headers.get("authorization"))
    if scheme.lower() != "bearer" or not token:
        token = headers.get("x-api-key", "")
    if not token:
        raise Unauthorized()
    if api_keys.is_api_key(token):
        # A host configured once with a fixed header: the use a key is for.
        return (await api_keys.authenticate(state.pool, token))["id"]
    user_id = state.tokens.subject(token)
    if user_id is None:
        raise Unauthorized(INVALID_TOKEN)
    async with state.pool.connection() as conn:
        if await users_store.get(conn, user_id) is None:
            raise Unauthorized(INVALID_TOKEN)
    return user_id


class McpEndpoint:
    """The ASGI endpoint at ``/mcp``: authenticate, then hand the request to the SDK. What it
    raises before answering (a 401, the database unavailable) is answered by the app's error
    handlers, in the API's JSON shape."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state: AppState = scope["app"].state.switchboard
        user_id = await _authenticate(state, Headers(scope=scope))
        mcp = state.mcp
        if not mcp.running:
            raise Unavailable(
                "The server is shutting down; retry on another instance",
                headers={"Retry-After": "1"},
            )
        await mcp.handle({**scope, _USER: user_id}, receive, send)


def install(app: FastAPI) -> None:
    # POST only: stateless, there is no stream to GET (it would stay open, sending nothing,
    # until the client left) and no session to DELETE, and the transport's specification
    # allows a 405 for both. Not in the OpenAPI document: it is JSON-RPC, no REST operation.
    route = Route(PATH, McpEndpoint(), methods=["POST"], include_in_schema=False)
    app.router.routes.append(route)
