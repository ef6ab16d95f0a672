"""A2A (Agent2Agent): ``POST /a2a/{assistant_id}`` (JSON-RPC 2.0: ``message/send``,
``message/stream``, ``tasks/get``, ``tasks/cancel``) and each assistant's agent card, at the
paths the official server serves them. Calls need the API's bearer token; a context is one of
the caller's threads, a task one of their runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from api.deps import CurrentUser, State
from api.errors import NotFound
from api.openapi import errors, schema_ref
from api.routes.meta import server_version
from api.schemas.a2a import RPC_BODY, STREAM_EVENT, AgentCard, RpcResponse
from api.schemas.events import sse_content
from api.services import a2a as service
from api.services import agents as agents_service
from api.wire import a2a as wire
from api.wire.a2a import Call, RpcError

router = APIRouter(tags=["a2a"])

_RPC_ANSWER = {
    "requestBody": RPC_BODY,
    "responses": {
        200: {
            "description": "A JSON-RPC response (errors included); `message/stream` answers "
            "a stream of them",
            "content": {
                "application/json": {"schema": schema_ref(RpcResponse, "serialization")},
                **sse_content(STREAM_EVENT),
            },
        },
        # The request body limit's answer, before JSON-RPC reads anything.
        **errors(413),
    },
}
_HANDLERS = {"message/send": service.send, "tasks/get": service.get, "tasks/cancel": service.cancel}


async def _card(state: Any, request: Request, assistant_id: str) -> JSONResponse:
    async with state.pool.connection() as conn:
        agent = await agents_service.find_assistant(conn, assistant_id)
    card = service.agent_card(agent, str(request.base_url), server_version())
    return JSONResponse(card)


@router.get("/.well-known/agent-card.json", response_model=AgentCard, responses=errors(404))
async def root_agent_card(
    request: Request,
    _: CurrentUser,
    state: State,
    assistant_id: Annotated[str, Query(min_length=1, max_length=200, pattern="^[^\x00]*$")],
) -> JSONResponse:
    """The agent card of the assistant `assistant_id` (its id or graph id)."""
    return await _card(state, request, assistant_id)


@router.get("/a2a/{assistant_id}/.well-known/agent-card.json", response_model=AgentCard)
async def agent_card(
    assistant_id: str, request: Request, _: CurrentUser, state: State
) -> JSONResponse:
    """The assistant's agent card, at its own well-known path."""
    return await _card(state, request, assistant_id)


@router.get("/a2a/{assistant_id}", response_model=AgentCard)
async def agent_card_at_endpoint(
    assistant_id: str, request: Request, _: CurrentUser, state: State
) -> JSONResponse:
    """The assistant's agent card, at its JSON-RPC endpoint (as the official server has it)."""
    return await _card(state, request, assistant_id)


@router.post("/a2a/{assistant_id}", response_model=RpcResponse, openapi_extra=_RPC_ANSWER)
async def call(assistant_id: str, request: Request, user: CurrentUser, state: State) -> Response:
    """A JSON-RPC 2.0 call to the assistant as an A2A agent. `message/send` starts a task (a
    run on the message's `contextId`, one of your threads, or a new one) and answers it once
    ended; `message/stream` streams it; `tasks/get` and `tasks/cancel` take its id."""
    try:
        rpc = wire.parse_call(await request.body())
    except RpcError as error:
        return wire.json_answer(wire.error_body(error.rpc_id, error))
    try:
        async with state.pool.connection() as conn:
            agent = await agents_service.find_assistant(conn, assistant_id)
    except NotFound:
        unknown = RpcError(wire.INVALID_PARAMS, f"Assistant not found: {assistant_id[:200]}")
        return _answer(rpc, unknown)
    if rpc.method == "message/stream":
        try:
            message = service.incoming(rpc.params)
            run, events = await service.start(state, user["id"], agent, message)
        except RpcError as error:
            return wire.stream_answer(_one(wire.error_body(rpc.id, error)))
        results = service.stream(run, events, message)
        return wire.stream_answer(_bodies(rpc, results), shutdown=state.runs.shutdown)
    try:
        result = await _HANDLERS[rpc.method](state, user["id"], agent, rpc.params)
    except RpcError as error:
        return _answer(rpc, error)
    return wire.json_answer(wire.result_body(rpc, result))


def _answer(rpc: Call, error: RpcError) -> Response:
    body = wire.error_body(rpc.id, error)
    if rpc.method == "message/stream":
        return wire.stream_answer(_one(body))
    return wire.json_answer(body)


async def _one(body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    yield body


async def _bodies(rpc: Call, results: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict]:
    async for result in results:
        yield wire.result_body(rpc, result)
