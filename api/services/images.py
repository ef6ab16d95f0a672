"""Images in a message: the parts a client sent, checked, as the content blocks a model reads.

Nothing is created before every part passes: a bad part is a 422 naming the problem, and a
chat whose agent's model cannot see images refuses them before their bytes are even read.
"""

from __future__ import annotations

import asyncio
from typing import Any

from api.errors import InvalidInput
from api.schemas.messages import MAX_IMAGES, ImageFilePart, ImageUrlPart, MessagePart
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
            await _file(state, chat, part, at)
        elif isinstance(part, ImageUrlPart):
            check = (part.url, state.settings.image_max_bytes, f"Part {at}")
            # Decoding a few MiB takes tens of milliseconds: not on the event loop.
            big = len(part.url) > 256 * 1024
            out.append(await asyncio.to_thread(image_block, *check) if big else image_block(*check))
        else:
            out.append({"type": "text", "text": part.text})
    return out


def check_model(state: AppState, agent: AgentRow) -> None:
    """A 422 ``model_cannot_see_images`` unless the agent's model can be sent images."""
    model = agent["model_name"] or state.settings.effective_default_model
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


async def _file(state: AppState, chat: ChatRow, part: ImageFilePart, at: int) -> None:
    # Chat files keep the text extracted from documents, not their bytes, and no upload is an
    # image: a file of the chat is named, but it cannot be shown to the model.
    async with state.pool.connection() as conn:
        files = await knowledge_store.list_for_chat(conn, chat["id"])
    if not any(row["id"] == part.file_id for row in files):
        # A 422, not a 404: the chat (the path's object) is there; the body names nothing in it.
        raise InvalidInput(f"Part {at}: no file of this chat has this id", code="file_not_found")
    raise InvalidInput(
        f"Part {at}: this file is a document, not an image; send images as data URLs",
        code="file_not_an_image",
    )
