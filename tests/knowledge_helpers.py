"""What the knowledge tests share: a small deterministic embedder (tests only: the product's
embedders are in ``graphs.embeddings``), files of every accepted type, and waiting for indexing."""

from __future__ import annotations

import asyncio
import hashlib
import io
import math
import re
from typing import Any

import httpx
from langchain_core.embeddings import Embeddings

from tests.conftest import User


class HashEmbedder(Embeddings):
    """Bag of words hashed into ``dims`` signed buckets, normalised: texts sharing words are
    close. ``gate``: while it is cleared, embedding documents waits (an indexer stuck in the
    middle of a document)."""

    def __init__(self, name: str, dims: int) -> None:
        self.name = name
        self.dims = dims
        self.gate = asyncio.Event()
        self.gate.set()
        self.calls = 0

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * self.dims
        for word in re.findall(r"\w+", text.lower()):
            digest = hashlib.sha256(word.encode()).digest()
            vector[digest[0] % self.dims] += 1.0 if digest[1] & 1 else -1.0
        norm = math.sqrt(sum(x * x for x in vector))
        if norm == 0:
            vector[0], norm = 1.0, 1.0
        return [x / norm for x in vector]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._vector(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        await self.gate.wait()
        return self.embed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        return self.embed_query(text)


def make_pdf(text: str) -> bytes:
    """A one-page PDF showing ``text`` (ASCII), with a correct cross-reference table."""
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    stream = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    )
    return out.getvalue()


def make_docx(paragraphs: list[str]) -> bytes:
    import docx

    document = docx.Document()
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


async def upload(
    client: httpx.AsyncClient, who: User, path: str, filename: str, data: bytes, **form: str
) -> httpx.Response:
    return await client.post(
        path, files={"file": (filename, data)}, data=form or None, headers=who.headers
    )


async def wait_indexed(
    client: httpx.AsyncClient, who: User, path: str, count: int | None = None
) -> list[dict[str, Any]]:
    """The documents at ``path`` (a listing route) once none is pending or indexing."""
    for _ in range(400):
        items = (await client.get(path, headers=who.headers)).json()["items"]
        if (count is None or len(items) == count) and all(
            item["status"] in ("indexed", "failed") for item in items
        ):
            return items
        await asyncio.sleep(0.025)
    raise AssertionError(f"never indexed: {items}")
