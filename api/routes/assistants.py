"""Agent Protocol assistants: an assistant is an agent; its graph id is the agent's slug."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from api.deps import AdminUser, CurrentUser, State
from api.openapi import PAGINATED, errors
from api.schemas.agents import AgentCreate
from api.schemas.protocol import (
    AssistantCreate,
    AssistantPatch,
    AssistantSearch,
    AssistantVersionChange,
    AssistantVersionsSearch,
)
from api.schemas.protocol_out import Assistant, AssistantGraph, AssistantVersion, GraphSchema
from api.services import agents as agents_service
from api.services.threads import assistant_json, assistant_version_json, graph_of
from api.wire.protocol import json_response, jsonable, known_total, pagination_headers

router = APIRouter(prefix="/assistants", tags=["agent protocol: assistants"])


@router.post(
    "/search",
    response_model=list[Assistant],
    response_description="The assistants; with `select`, each has only the fields selected",
    responses={200: PAGINATED},
)
async def search_assistants(body: AssistantSearch, _: CurrentUser, state: State) -> JSONResponse:
    async with state.pool.connection() as conn:
        rows = await agents_service.search(conn, body)
        total = known_total(len(rows), body.offset, body.limit)
        if total is None:
            total = await agents_service.count_matching(conn, body)
    page = [assistant_json(row) for row in rows]
    if body.select:
        page = [{k: a[k] for k in body.select if k in a} for a in page]
    return json_response(page, pagination_headers(body.offset, body.limit, len(page), total))


@router.post("/count", response_model=int)
async def count_assistants(body: AssistantSearch, _: CurrentUser, state: State) -> JSONResponse:
    async with state.pool.connection() as conn:
        return json_response(await agents_service.count_matching(conn, body))


@router.get("/{assistant_id}", response_model=Assistant)
async def get_assistant(assistant_id: str, _: CurrentUser, state: State) -> JSONResponse:
    async with state.pool.connection() as conn:
        return json_response(
            assistant_json(await agents_service.find_assistant(conn, assistant_id))
        )


@router.get("/{assistant_id}/graph", response_model=AssistantGraph)
async def get_assistant_graph(
    assistant_id: str, _: CurrentUser, state: State, xray: bool | int = Query(False)
) -> JSONResponse:
    """The graph's nodes and edges, as LangGraph draws it."""
    async with state.pool.connection() as conn:
        agent = await agents_service.find_assistant(conn, assistant_id)
    drawable = graph_of(state, agent).get_graph(xray=xray)
    return json_response(jsonable(drawable.to_json()))


@router.get("/{assistant_id}/schemas", response_model=GraphSchema)
async def get_assistant_schemas(assistant_id: str, _: CurrentUser, state: State) -> JSONResponse:
    """JSON schemas of the graph's input, output, state, config and context."""
    async with state.pool.connection() as conn:
        agent = await agents_service.find_assistant(conn, assistant_id)
    graph = graph_of(state, agent)

    def schema(name: str) -> Any:
        method = getattr(graph, name, None)
        try:
            return jsonable(method()) if method is not None else None
        except Exception:
            return None

    output = schema("get_output_jsonschema")
    return json_response(
        {
            "graph_id": agent["slug"],
            "input_schema": schema("get_input_jsonschema"),
            "output_schema": output,
            "state_schema": output,
            "config_schema": schema("get_config_jsonschema"),
            "context_schema": schema("get_context_jsonschema"),
        }
    )


@router.post("", response_model=Assistant, responses=errors(404))
async def create_assistant(body: AssistantCreate, admin: AdminUser, state: State) -> JSONResponse:
    """A new assistant (admins): a copy of the agent `graph_id` names, with the changes given."""
    async with state.pool.connection() as conn:
        base = await agents_service.find_assistant(conn, body.graph_id)
        fields: dict[str, Any] = {
            "name": body.name or base["name"],
            "description": body.description
            if body.description is not None
            else base["description"],
            "system_prompt": base["system_prompt"],
            "model_name": base["model_name"],
            "tools_enabled": base["tools_enabled"],
            "tools_requiring_approval": base["tools_requiring_approval"],
            "interest_area_ids": base.get("interest_area_ids") or [],
        }
        if body.config and body.config.configurable:
            fields.update(body.config.configurable.model_dump(exclude_none=True))
        row = await agents_service.create(conn, AgentCreate.model_validate(fields), admin["id"])
    return json_response(assistant_json(row))


@router.patch("/{assistant_id}", response_model=Assistant)
async def patch_assistant(
    assistant_id: str, body: AssistantPatch, _: AdminUser, state: State
) -> JSONResponse:
    """Change an assistant (admins): name, description, `config.configurable` fields."""
    async with state.pool.connection() as conn:
        agent = await agents_service.find_assistant(conn, assistant_id)
        row = await agents_service.update(conn, agent["id"], body.agent_update())
    return json_response(assistant_json(row))


@router.delete("/{assistant_id}", status_code=204, response_class=Response)
async def delete_assistant(assistant_id: str, _: AdminUser, state: State) -> Response:
    """Retire an assistant (admins); its threads stay readable."""
    async with state.pool.connection() as conn:
        agent = await agents_service.find_assistant(conn, assistant_id)
        await agents_service.retire(conn, agent["id"])
    return Response(status_code=204)


@router.post(
    "/{assistant_id}/versions",
    response_model=list[AssistantVersion],
    responses={200: PAGINATED, **errors(404)},
)
async def get_assistant_versions(
    assistant_id: str, body: AssistantVersionsSearch, _: AdminUser, state: State
) -> JSONResponse:
    """Every definition the assistant has had, newest first (admins, as `GET
    /agents/{id}/versions`)."""
    async with state.pool.connection() as conn:
        agent = await agents_service.find_assistant(conn, assistant_id)
        # Versions carry no metadata, so only an empty filter matches (as in a search).
        rows, total = (
            await agents_service.versions_page(
                conn, agent["id"], limit=body.limit, offset=body.offset
            )
            if not body.metadata
            else ([], 0)
        )
    page = [assistant_version_json(agent, row) for row in rows]
    return json_response(page, pagination_headers(body.offset, body.limit, len(page), total))


@router.post("/{assistant_id}/latest", response_model=Assistant, responses=errors(404, 422))
async def set_latest_assistant_version(
    assistant_id: str, body: AssistantVersionChange, _: AdminUser, state: State
) -> JSONResponse:
    """Make version `version`'s definition current (admins). Unlike the official server, which
    moves a pointer, this records it as a new version, so the answer's `version` is the new
    number and history is never rewritten; runs use it from now on."""
    async with state.pool.connection() as conn:
        agent = await agents_service.find_assistant(conn, assistant_id)
        row = await agents_service.restore(conn, agent["id"], body.version)
    return json_response(assistant_json(row))
