"""Knowledge documents of agents (admins write them) and files of chats (their owner's), and
searches over them.

An upload is read into text at once (``api/services/documents.py``): a bad file is refused
before anything is stored. The document is then stored ``pending`` and the indexer
(``api/services/knowledge_indexer.py``) is woken to split, embed and store its chunks.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, Final
from uuid import UUID

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.requests import Request

from api.errors import Conflict, InvalidInput, NotFound, UnsupportedMediaType
from api.schemas.knowledge import DocumentTextIn, SearchIn
from api.services import agents as agents_service
from api.services import chats as chats_service
from api.services import images as images_service
from api.services.documents import checked_text, parse
from api.state import AppState
from storage import knowledge as knowledge_store
from storage.rows import KnowledgeDocumentRow

MULTIPART: Final = "multipart/form-data"
JSON: Final = "application/json"
FILE_FIELD: Final = "file"


def document_out(row: KnowledgeDocumentRow) -> dict[str, Any]:
    return dict(row)


async def _upload(request: Request, *, image_limit: int | None = None) -> dict[str, Any]:
    """The document a request carries, read and checked: a multipart ``file`` (with an
    optional ``title``) or JSON ``{title, text}``; with ``image_limit`` (a chat's files), a
    PNG, JPEG, GIF or WebP image of at most that many bytes too."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == JSON:
        body = await request.body()
        try:
            pasted = DocumentTextIn.model_validate_json(body)
        except ValidationError as exc:
            problems = exc.errors(include_url=False, include_input=False, include_context=False)
            if any(problem["type"] == "json_invalid" for problem in problems):
                raise InvalidInput("The body is not valid JSON", code="invalid_json") from None
            raise RequestValidationError(
                [{**problem, "loc": ("body", *problem["loc"])} for problem in problems]
            ) from None
        text = checked_text(pasted.text)
        return {
            "title": pasted.title, "filename": None, "media_type": "text/plain",
            "bytes": len(pasted.text.encode()), "text": text,
            "content_hash": knowledge_store.content_hash(text),
        }  # fmt: skip
    if media_type != MULTIPART:
        raise UnsupportedMediaType(
            "Send a file as multipart/form-data (field `file`) or JSON {title, text}"
        )
    async with request.form(max_files=1, max_fields=10) as form:
        upload = form.get(FILE_FIELD)
        if not isinstance(upload, UploadFile):
            raise InvalidInput("The form needs a file in its `file` field", code="missing_file")
        title = form.get("title")
        if title is not None and not isinstance(title, str):
            raise InvalidInput("`title` must be text", code="invalid_title")
        data = await upload.read()
        filename = upload.filename or ""
    if title is not None:
        title = title.strip()
        if not title or len(title) > 200 or "\x00" in title:
            raise InvalidInput(
                "`title` must be 1 to 200 characters without NUL", code="invalid_title"
            )
    if "\x00" in filename or len(filename) > 255:
        raise InvalidInput("The file name is not usable", code="invalid_filename")
    stem = filename.rsplit("/", 1)[-1]
    named = {"title": title or stem.rsplit(".", 1)[0][:200] or "Untitled", "filename": stem}
    if image_limit is not None and images_service.is_image_name(filename):
        media_type = images_service.checked_image_file(filename, data, image_limit)
        return {
            **named, "media_type": media_type, "bytes": len(data), "text": "", "image": data,
            "content_hash": hashlib.sha256(data).digest(),
        }  # fmt: skip
    parsed = await asyncio.to_thread(parse, filename, data)
    return {
        **named, "media_type": parsed.media_type, "bytes": len(data), "text": parsed.text,
        "content_hash": knowledge_store.content_hash(parsed.text),
    }  # fmt: skip


async def _store(
    state: AppState, fields: dict[str, Any], *, agent_id: UUID | None, chat_id: UUID | None,
    user_id: UUID,
) -> KnowledgeDocumentRow:  # fmt: skip
    digest = fields["content_hash"]
    values = {**fields, "agent_id": agent_id, "chat_id": chat_id, "user_id": user_id}
    async with state.pool.connection() as conn:
        row = await knowledge_store.insert(conn, values)
        if row is None:
            existing = await knowledge_store.duplicate(
                conn, agent_id=agent_id, chat_id=chat_id, digest=digest
            )
            name = f"{existing['id']} ({existing['title']!r})" if existing else "another one"
            raise Conflict(
                f"The same content is already uploaded here: document {name}",
                code="duplicate_document",
            )
    state.indexer.wake()
    return row


# Agents' knowledge bases.


async def upload_to_agent(
    state: AppState, request: Request, agent_id: UUID, user_id: UUID
) -> KnowledgeDocumentRow:
    async with state.pool.connection() as conn:
        await agents_service.get(conn, agent_id)
    fields = await _upload(request)
    return await _store(state, fields, agent_id=agent_id, chat_id=None, user_id=user_id)


async def list_of_agent(state: AppState, agent_id: UUID) -> list[KnowledgeDocumentRow]:
    async with state.pool.connection() as conn:
        await agents_service.get(conn, agent_id)
        return await knowledge_store.list_for_agent(conn, agent_id)


async def delete_of_agent(state: AppState, agent_id: UUID, document_id: UUID) -> None:
    async with state.pool.connection() as conn:
        if not await knowledge_store.delete_of_agent(conn, document_id, agent_id):
            raise NotFound("Document not found")


async def search(state: AppState, agent_id: UUID, user_id: UUID, body: SearchIn) -> dict[str, Any]:
    """The agent's chunks nearest the query (every user may chat with every live agent) and,
    with ``chat_id``, the files of that chat when it is the caller's (404 otherwise)."""
    async with state.pool.connection() as conn:
        await agents_service.get(conn, agent_id)
        if body.chat_id is not None:
            await chats_service.get_owned(conn, body.chat_id, user_id)
    result = await state.runs.knowledge.search(
        query=body.query, k=body.k, agent_id=agent_id, chat_id=body.chat_id, user_id=user_id
    )
    return {"items": result.items, "indexing": result.indexing, "reindexing": result.reindexing}


# Chats' files.


async def upload_to_chat(
    state: AppState, request: Request, chat_id: UUID, user_id: UUID
) -> KnowledgeDocumentRow:
    async with state.pool.connection() as conn:
        await chats_service.get_owned(conn, chat_id, user_id)
    fields = await _upload(request, image_limit=state.settings.image_max_bytes)
    return await _store(state, fields, agent_id=None, chat_id=chat_id, user_id=user_id)


async def list_of_chat(state: AppState, chat_id: UUID, user_id: UUID) -> list[KnowledgeDocumentRow]:
    async with state.pool.connection() as conn:
        await chats_service.get_owned(conn, chat_id, user_id)
        return await knowledge_store.list_for_chat(conn, chat_id)


async def delete_of_chat(state: AppState, chat_id: UUID, user_id: UUID, document_id: UUID) -> None:
    async with state.pool.connection() as conn:
        await chats_service.get_owned(conn, chat_id, user_id)
        if not await knowledge_store.delete_of_chat(conn, document_id, chat_id):
            raise NotFound("File not found")
