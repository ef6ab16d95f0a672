"""Images in a message: the parts a client sent, checked, as the content blocks a model reads.

Nothing is created before every part passes: a bad part is a 422 naming the problem, and a
chat whose agent's model cannot see images refuses them before their bytes are even read.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import PurePath
from typing import Any

from api.errors import InvalidInput
from api.schemas.messages import MAX_IMAGES, ImageFilePart, ImageUrlPart, MessagePart
from api.schemas.protocol_runs import RunCreate
from api.state import AppState
from graphs import images
from graphs.models import sees_images
from storage import knowledge as knowledge_store
from storage.rows import AgentRow, ChatRow


def text_of(parts: list[MessagePart]) -> str:
    """What the message says in words (its title, its ``content`` for clients that read only
    that)."""
    return "\n".join(
        part.text for part in parts if not isinstance(part, ImageUrlPart | ImageFilePart)
    )


async def blocks(
    state: AppState, chat: ChatRow, agent: AgentRow, parts: list[MessagePart]
) -> list[dict[str, Any]]:
    """The parts as LangChain content blocks, each image checked."""
    count = sum(isinstance(part, ImageUrlPart | ImageFilePart) for part in parts)
    if count > MAX_IMAGES:
        raise InvalidInput(
            f"A message holds at most {MAX_IMAGES} images, not {count}", code="too_many_images"
        )
    if count:
        check_model(state, agent)
    out: list[dict[str, Any]] = []
    for at, part in enumerate(parts):
        if isinstance(part, ImageFilePart):
            out.append(await _file(state, chat, part, at))
        elif isinstance(part, ImageUrlPart):
            check = (part.url, state.settings.image_max_bytes, f"Part {at}")
            # Decoding a few MiB takes tens of milliseconds: not on the event loop.
            big = len(part.url) > 256 * 1024
            out.append(await asyncio.to_thread(image_block, *check) if big else image_block(*check))
        else:
            out.append({"type": "text", "text": part.text})
    return out


def check_model(state: AppState, agent: AgentRow, model_name: str | None = None) -> None:
    """A 422 ``model_cannot_see_images`` unless the agent's model (or ``model_name``, the
    model a run uses instead) can be sent images."""
    model = model_name or agent["model_name"] or state.settings.effective_default_model
    # A graph of langgraph.json calls whatever models it likes: nothing here knows them.
    if agent["kind"] != "graph" and not sees_images(model):
        raise InvalidInput(
            f"This chat's agent uses {model}, which cannot see images: send text only",
            code="model_cannot_see_images",
        )


def image_block(url: str, limit: int | None, where: str) -> dict[str, Any]:
    """A data URL (its type already one of ``IMAGE_TYPES``) as an image content block, once its
    data is base64 of at most ``limit`` bytes of an image of that type."""
    header, _, payload = url.partition(",")
    declared = header.removeprefix("data:").removesuffix(";base64")
    too_large = InvalidInput(
        f"{where}: an image may have at most {limit} bytes", code="image_too_large"
    )
    # Checked on the text first: decoding a huge payload only to refuse it costs memory.
    if limit is not None and len(payload) > (limit + 2) // 3 * 4:
        raise too_large
    data = images.decode(payload)
    if data is None:
        raise InvalidInput(f"{where}: the data URL's data is not base64", code="invalid_base64")
    if limit is not None and len(data) > limit:
        raise too_large
    info = images.sniff(data)
    if info is None or info.mime_type != declared:
        raise InvalidInput(f"{where}: the data is not a {declared} image", code="invalid_image")
    return {"type": "image", "base64": payload, "mime_type": declared}


async def _file(state: AppState, chat: ChatRow, part: ImageFilePart, at: int) -> dict[str, Any]:
    """The image block of an image among the chat's files (checked when it was uploaded)."""
    async with state.pool.connection() as conn:
        found = await knowledge_store.image_of_chat(conn, part.file_id, chat["id"])
    if found is None:
        # A 422, not a 404: the chat (the path's object) is there; the body names nothing in it.
        raise InvalidInput(f"Part {at}: no file of this chat has this id", code="file_not_found")
    media_type, data = found
    if not data:
        # Chat files keep the text extracted from documents, not their bytes.
        raise InvalidInput(
            f"Part {at}: this file is a document, not an image; upload the image as a file "
            "of the chat, or send it as a data URL",
            code="file_not_an_image",
        )
    return {"type": "image", "base64": base64.b64encode(data).decode(), "mime_type": media_type}


# Images uploaded as files of a chat (``POST /chats/{id}/files``), by their names' extensions.
IMAGE_SUFFIXES = {
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
    ".webp": "image/webp",
}  # fmt: skip


def is_image_name(filename: str) -> bool:
    return PurePath(filename).suffix.lower() in IMAGE_SUFFIXES


def checked_image_file(filename: str, data: bytes, limit: int | None) -> str:
    """The media type of an uploaded image, once its bytes are an image of the type its name
    says, of at most ``limit`` bytes: a 422 ``image_too_large`` or ``invalid_image``."""
    if limit is not None and len(data) > limit:
        raise InvalidInput(f"An image may have at most {limit} bytes", code="image_too_large")
    declared = IMAGE_SUFFIXES[PurePath(filename).suffix.lower()]
    info = images.sniff(data)
    if info is None or info.mime_type != declared:
        raise InvalidInput(f"The file is not a {declared} image", code="invalid_image")
    return declared


# Agent Protocol inputs: messages as LangChain reads them, images among their content blocks in
# any of the shapes LangChain and the SDKs' clients send.


def _messages_of(sources: list[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
    """``(where, message)`` for each message a run's input or command update carries (the
    shapes ``api.schemas.protocol_runs`` bounds)."""
    for where, value in sources:
        updates = value if isinstance(value, list) else [value]
        for index, item in enumerate(updates):
            at = where if updates is not value else f"{where}[{index}]"
            if isinstance(item, dict):
                messages = item.get("messages")
            elif isinstance(item, list) and len(item) == 2 and item[0] == "messages":
                messages = item[1]
            else:
                continue
            listed = messages if isinstance(messages, list) else [messages]
            for number, message in enumerate(listed):
                yield f"{at}.messages[{number}]", message


async def check_protocol_images(
    state: AppState, agent: AgentRow, body: RunCreate | dict[str, Any] | None
) -> None:
    """The images of a protocol run's messages (``body``'s input and command update, or a
    cron's input) checked as the native API checks a message's: at most ``MAX_IMAGES`` each,
    real images of their declared type within the size limit, an agent whose model sees them.
    A 422 before anything is created."""
    sources: list[tuple[str, Any]]
    if isinstance(body, RunCreate):
        sources = [("input", body.input)]
        if body.command is not None:
            sources.append(("command.update", body.command.update))
    else:
        sources = [("input", body)]
    for where, message in _messages_of(sources):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        found = [
            (f"{where}.content[{at}]", block)
            for at, block in enumerate(content)
            if images.is_image(block)
        ]
        if len(found) > MAX_IMAGES:
            raise InvalidInput(
                f"{where}: a message holds at most {MAX_IMAGES} images, not {len(found)}",
                code="too_many_images",
            )
        if found:
            check_model(state, agent)
        for place, block in found:
            source = images.inline(block)
            if source is None:
                raise InvalidInput(
                    f"{place}: send an image inline: base64 with its mime_type, or a base64 "
                    "data URL",
                    code="image_not_inline",
                )
            payload, declared = source
            if declared not in images.IMAGE_TYPES:
                raise InvalidInput(
                    f"{place}: the image's mime_type must be one of "
                    f"{', '.join(images.IMAGE_TYPES)}",
                    code="invalid_image",
                )
            check = (f"data:{declared};base64,{payload}", state.settings.image_max_bytes, place)
            big = len(payload) > 256 * 1024
            await asyncio.to_thread(image_block, *check) if big else image_block(*check)
