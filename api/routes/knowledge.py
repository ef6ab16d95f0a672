"""Knowledge: an agent's documents (admins), a chat's files (its owner), and searching them.

The upload routes read their body themselves (a multipart file or JSON ``{title, text}``) and
have a body limit of their own, ``SWITCHBOARD_KNOWLEDGE_MAX_BYTES``."""

from __future__ import annotations

from typing import Any, Final
from uuid import UUID

from fastapi import APIRouter, Request, Response, status

from api.deps import AdminUser, CurrentUser, CurrentUserId, State
from api.openapi import errors, schema_ref
from api.schemas.knowledge import DocumentList, DocumentOut, DocumentTextIn, SearchIn, SearchOut
from api.services import knowledge as knowledge_service
from api.services.knowledge import document_out

router = APIRouter(tags=["knowledge"])

AGENT_UPLOAD_PATH: Final = "/agents/{agent_id}/knowledge"
CHAT_UPLOAD_PATH: Final = "/chats/{chat_id}/files"

_UPLOAD_BODY = {
    "required": True,
    "description": "A file (`.txt`, `.md`, `.pdf`, `.docx`, `.html`) in the multipart field "
    "`file`, with an optional `title` (else the file's name); or JSON `{title, text}`. At most "
    "`SWITCHBOARD_KNOWLEDGE_MAX_BYTES` (10 MiB by default)",
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "title": {"type": "string", "minLength": 1, "maxLength": 200},
                },
            }
        },
        "application/json": {"schema": schema_ref(DocumentTextIn)},
    },
}


def _described(*statuses: tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    return {
        code: {**errors(code)[code], "description": description} for code, description in statuses
    }


_UPLOAD_ERRORS = _described(
    (400, "A body that is not valid multipart or JSON, or an unusable `Content-Length`"),
    (409, "The same text is already a document here (`duplicate_document`, naming it)"),
    (413, "The body is over `SWITCHBOARD_KNOWLEDGE_MAX_BYTES` (`payload_too_large`)"),
    (
        415,
        "Neither multipart nor JSON, or a file type not read here (`unsupported_media_type`)",
    ),
    (
        422,
        "A file that is not what its extension says or cannot be read "
        "(`unparseable_document`), holds no text (`empty_document`), no `file` field "
        "(`missing_file`), a bad `title`, or JSON that does not fit (`validation_error`)",
    ),
)


@router.post(
    AGENT_UPLOAD_PATH,
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DocumentOut,
    openapi_extra={"requestBody": _UPLOAD_BODY},
    responses=_UPLOAD_ERRORS,
)
async def upload_agent_document(
    agent_id: UUID, request: Request, admin: AdminUser, state: State
) -> dict[str, Any]:
    """Add a document to the agent's knowledge base (admins only). It is read at once (a bad
    file stores nothing) and indexed in the background: `status` goes `pending` → `indexing` →
    `indexed` (or `failed`)."""
    row = await knowledge_service.upload_to_agent(state, request, agent_id, admin["id"])
    return document_out(row)


@router.get(AGENT_UPLOAD_PATH, response_model=DocumentList)
async def list_agent_documents(agent_id: UUID, _: AdminUser, state: State) -> dict[str, Any]:
    """The agent's documents, oldest first, with their status (admins only)."""
    rows = await knowledge_service.list_of_agent(state, agent_id)
    return {"items": [document_out(row) for row in rows]}


@router.delete(
    AGENT_UPLOAD_PATH + "/{document_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
)
async def delete_agent_document(
    agent_id: UUID, document_id: UUID, _: AdminUser, state: State
) -> Response:
    """Delete a document and its chunks (admins only)."""
    await knowledge_service.delete_of_agent(state, agent_id, document_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(AGENT_UPLOAD_PATH + "/search", response_model=SearchOut)
async def search_agent_knowledge(
    agent_id: UUID, body: SearchIn, user: CurrentUser, state: State
) -> dict[str, Any]:
    """The `k` passages of the agent's knowledge base closest to `query` (by embedding; with
    `SWITCHBOARD_KNOWLEDGE_HYBRID`, fused with full-text matches); with `chat_id`, your chat's
    files too. `indexing`: some
    documents are not searchable yet; `reindexing`: some are being indexed again after a change
    of embedding model."""
    return await knowledge_service.search(state, agent_id, user["id"], body)


_CHAT_UPLOAD_BODY = {
    **_UPLOAD_BODY,
    "description": "A document (`.txt`, `.md`, `.pdf`, `.docx`, `.html`) or an image (`.png`, "
    "`.jpg`, `.jpeg`, `.gif`, `.webp`, at most `SWITCHBOARD_IMAGE_MAX_BYTES`) in the multipart "
    "field `file`, with an optional `title` (else the file's name); or JSON `{title, text}`. At "
    "most `SWITCHBOARD_KNOWLEDGE_MAX_BYTES` (10 MiB by default)",
}
_CHAT_UPLOAD_ERRORS = {
    **_UPLOAD_ERRORS,
    **_described(
        (
            422,
            "A file that is not what its extension says or cannot be read "
            "(`unparseable_document`, for an image `invalid_image`), holds no text "
            "(`empty_document`), an image over `SWITCHBOARD_IMAGE_MAX_BYTES` "
            "(`image_too_large`), no `file` field (`missing_file`), a bad `title`, or JSON that "
            "does not fit (`validation_error`)",
        )
    ),
}


@router.post(
    CHAT_UPLOAD_PATH,
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DocumentOut,
    openapi_extra={"requestBody": _CHAT_UPLOAD_BODY},
    responses=_CHAT_UPLOAD_ERRORS,
)
async def upload_chat_file(
    chat_id: UUID, request: Request, user_id: CurrentUserId, state: State
) -> dict[str, Any]:
    """Attach a file to your chat. A document: its agent's `knowledge_search` finds it in this
    chat only. An image (stored `indexed` at once, with no chunks): a message shows it to the
    model by its id, `{type: "image", file_id}`."""
    row = await knowledge_service.upload_to_chat(state, request, chat_id, user_id)
    return document_out(row)


@router.get(CHAT_UPLOAD_PATH, response_model=DocumentList)
async def list_chat_files(chat_id: UUID, user_id: CurrentUserId, state: State) -> dict[str, Any]:
    """Your chat's files, oldest first, with their status."""
    rows = await knowledge_service.list_of_chat(state, chat_id, user_id)
    return {"items": [document_out(row) for row in rows]}


@router.delete(
    CHAT_UPLOAD_PATH + "/{file_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
)
async def delete_chat_file(
    chat_id: UUID, file_id: UUID, user_id: CurrentUserId, state: State
) -> Response:
    """Delete a file of your chat and its chunks."""
    await knowledge_service.delete_of_chat(state, chat_id, user_id, file_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
