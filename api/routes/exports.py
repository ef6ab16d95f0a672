"""Chats as files: export one chat or all of yours, import an export (issue 13). Included
before the ``/chats`` router: ``/chats/export`` and ``/chats/import`` are not chat ids."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from api.deps import CurrentUser, CurrentUserId, State
from api.openapi import errors, schema_ref
from api.schemas.exports import (
    AgentMessageIn,
    ChatDocumentIn,
    ChatExport,
    ChatHeader,
    ChatHeaderIn,
    ImportOut,
    MessageRecord,
    ToolMessageIn,
    UserMessageIn,
)
from api.services import exports as exports_service
from api.services.exports import IMPORT_MEDIA_TYPES, JSON, JSONL

router = APIRouter(prefix="/chats", tags=["exports"])

IMPORT_PATH = "/chats/import"

_RECORDS = (
    'JSON Lines (one JSON object a line): a `ChatHeader` record (`type: "chat"`: the chat '
    'and its agent), then a `MessageRecord` (`type: "message"`) for each of its messages, '
    "oldest first, with their metadata (feedback in `metadata.feedback` of agent messages)"
)
_JSONL_CONTENT = {
    "schema": {"type": "string", "description": _RECORDS},
    # Each line's schema (OpenAPI 3.1 has no keyword for the items of a sequence).
    "x-records": {
        "oneOf": [
            schema_ref(ChatHeader, "serialization"),
            schema_ref(MessageRecord, "serialization"),
        ]
    },
}
# An export is for keeping, not for caches on the way.
_HEADERS = {"Cache-Control": "no-store"}
_DOWNLOAD = {
    "Content-Disposition": {
        "description": "`attachment` with a file name: `chats.jsonl`, `chat-<id>.jsonl` or "
        "`chat-<id>.json`",
        "schema": {"type": "string"},
    }
}


def _attachment(name: str) -> dict[str, str]:
    return {**_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'}


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Every chat of yours, oldest first: each chat's records, one chat "
            "after the other",
            "content": {JSONL: _JSONL_CONTENT},
            "headers": _DOWNLOAD,
        }
    },
)
async def export_all(
    user: CurrentUser,
    state: State,
    format_: Annotated[Literal["jsonl"], Query(alias="format")] = "jsonl",
) -> StreamingResponse:
    """All your chats as JSON Lines, streamed: each chat's header record, then its messages.
    `POST /chats/import` takes it back."""
    return StreamingResponse(
        exports_service.export_all(state, user["id"]),
        media_type=JSONL,
        headers=_attachment("chats.jsonl"),
    )


@router.get(
    "/{chat_id}/export",
    response_model=ChatExport,
    responses={
        200: {
            "description": "The chat: `format=jsonl` (default) as JSON Lines, `format=json` as "
            "one document, the header record with its `messages`",
            "content": {JSONL: _JSONL_CONTENT},
            "headers": _DOWNLOAD,
        },
        **errors(404),
    },
)
async def export_chat(
    chat_id: UUID,
    user_id: CurrentUserId,
    state: State,
    format_: Annotated[Literal["jsonl", "json"], Query(alias="format")] = "jsonl",
) -> Response:
    """Your chat, its agent (`version`, `system_prompt`, `model_name`, `tools_enabled`) and
    every message in order, with its metadata and feedback. `POST /chats/import` takes it
    back."""
    export = await exports_service.export_chat(state, user_id, chat_id)
    name = f"chat-{chat_id}.{format_}"
    if format_ == "json":
        return Response(export.model_dump_json(), media_type=JSON, headers=_attachment(name))
    body = b"".join(exports_service.jsonl(export))
    return Response(body, media_type=JSONL, headers=_attachment(name))


_IMPORT_BODY = {
    "required": True,
    "description": "An export: JSON Lines as `GET /chats/export` and `GET /chats/{id}/export` "
    "write them (several chats in one body, each `chat` record starting the next), or one chat "
    "as the JSON document `format=json` writes. Ids, times and counts are optional and not "
    "kept; at most `SWITCHBOARD_IMPORT_MAX_BYTES` (10 MiB by default)",
    "content": {
        media_type: {
            "schema": {
                "type": "string",
                "description": "JSON Lines: a `ChatHeaderIn` record starts each chat, a "
                "`UserMessageIn`, `AgentMessageIn` or `ToolMessageIn` record is each of its "
                "messages, oldest first",
            },
            "x-records": {
                "oneOf": [
                    schema_ref(m)
                    for m in (ChatHeaderIn, UserMessageIn, AgentMessageIn, ToolMessageIn)
                ]
            },
        }
        for media_type in IMPORT_MEDIA_TYPES
        if media_type != JSON
    }
    | {JSON: {"schema": schema_ref(ChatDocumentIn)}},
}


def _described(*statuses: tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    """``errors(...)`` with what these statuses mean on this route."""
    return {
        status: {**errors(status)[status], "description": description}
        for status, description in statuses
    }


@router.post(
    "/import",
    status_code=status.HTTP_201_CREATED,
    response_model=ImportOut,
    openapi_extra={"requestBody": _IMPORT_BODY},
    responses=errors(415, 422)
    | _described(
        (400, "An unusable `Content-Length` header (`bad_request`)"),
        (404, "A header's agent is no agent of this server by id or slug (`agent_not_found`)"),
        (409, "A header's agent has been retired (`agent_retired`)"),
        (413, "The body is over `SWITCHBOARD_IMPORT_MAX_BYTES` (`payload_too_large`)"),
    ),
)
async def import_chats(request: Request, user_id: CurrentUserId, state: State) -> dict[str, Any]:
    """New chats of yours from an export: new ids, the same messages in the same order with
    their metadata, the feedback recreated; each goes to the agent with the header's agent
    `id`, else its `slug` (404 `agent_not_found`; retired: 409 `agent_retired`). Everything is
    checked first, and a refused import creates nothing: 422 with its own `code` (naming the
    line) for a body that is not JSON Lines (`invalid_json`, `invalid_text`, `nul_character`,
    `empty_import`), records in the wrong place or of the wrong shape (`missing_header`,
    `misplaced_header`, `unknown_record_type`, `invalid_record`), or a tool result that
    answers no earlier tool call (`orphan_tool_result`, `duplicate_tool_call`)."""
    body = await request.body()
    chats = await exports_service.import_chats(
        state, user_id, body, request.headers.get("content-type")
    )
    return {"chats": chats}
