"""Images in messages: what their bytes are, and how a message's parts read as text.

A message with images is a HumanMessage whose content is a list of LangChain standard content
blocks: ``{"type": "text", "text"}`` and ``{"type": "image", "base64", "mime_type"}``. The
type of an image is read from its bytes (magic numbers and the header that gives its size), not
taken from the client's word: no image library is needed for the four types accepted.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")


@dataclass(frozen=True)
class ImageInfo:
    mime_type: str
    width: int
    height: int


def sniff(data: bytes) -> ImageInfo | None:
    """The type and size of an image of one of ``IMAGE_TYPES``, or None when the bytes are not
    one (or are cut short before the header that gives the size)."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
            width, height = struct.unpack(">II", data[16:24])
            return ImageInfo("image/png", width, height)
        if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
            width, height = struct.unpack("<HH", data[6:10])
            return ImageInfo("image/gif", width, height)
        if data.startswith(b"\xff\xd8\xff"):
            return _jpeg(data)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp(data)
    except struct.error:
        return None
    return None


def _jpeg(data: bytes) -> ImageInfo | None:
    # Walk the segments to the first start-of-frame marker, which holds the size.
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:
            at += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            at += 2
            continue
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return ImageInfo("image/jpeg", width, height)
        if length < 2:
            return None
        at += 2 + length
    return None


def _webp(data: bytes) -> ImageInfo | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return ImageInfo("image/webp", width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L" and data[20:21] == b"\x2f":
        (bits,) = struct.unpack("<I", data[21:25])
        return ImageInfo("image/webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return ImageInfo("image/webp", width, height)
    return None


def decode(text: str) -> bytes | None:
    """Strict base64 (the standard alphabet, padded), or None."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def is_image(block: Any) -> bool:
    """Whether a content block is an image, in LangChain's shape or OpenAI's."""
    return isinstance(block, dict) and block.get("type") in ("image", "image_url")


def has_images(content: Any) -> bool:
    return isinstance(content, list) and any(is_image(block) for block in content)


def inline(block: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """An image block's base64 data and the type it declares, when the image is in the block:
    LangChain's ``{type: image, base64, mime_type}`` (or its older ``source_type: base64``,
    ``data``), a base64 data URL in ``url``, or OpenAI's ``{type: image_url, image_url}``.
    None for an image elsewhere (a web URL, a provider's file id)."""
    if isinstance(block.get("base64"), str):
        return block["base64"], block.get("mime_type")
    if block.get("source_type") == "base64" and isinstance(block.get("data"), str):
        return block["data"], block.get("mime_type")
    url = block.get("image_url") if block.get("type") == "image_url" else block.get("url")
    if isinstance(url, Mapping):
        url = url.get("url")
    if isinstance(url, str) and url.startswith("data:"):
        header, _, payload = url.partition(",")
        if header.endswith(";base64"):
            return payload, header.removeprefix("data:").removesuffix(";base64")
    return None


def describe(blocks: Sequence[Any]) -> str:
    """A message's parts in words (what the ``fake:*`` models answer): ``text "hi", image/png
    1x1``."""
    said: list[str] = []
    for block in blocks:
        if isinstance(block, str):
            said.append(f'text "{block}"')
        elif isinstance(block, dict) and block.get("type") == "text":
            said.append(f'text "{block.get("text", "")}"')
        elif is_image(block):
            source = inline(block)
            data = decode(source[0]) if source is not None else None
            info = sniff(data) if data is not None else None
            said.append(f"{info.mime_type} {info.width}x{info.height}" if info else "an image")
    return ", ".join(said)
