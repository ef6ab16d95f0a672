"""Embeddings: text to vectors, for knowledge search and long-term memory.

``get_embedder(name)`` by a model name, as agents name chat models:

- ``local:wordllama-l2-256`` (the default): WordLlama's static token embeddings (256 dims, from
  the ``wordllama`` wheel, weights and tokenizer inside it), average-pooled and normalised.
  Offline, no torch, ~3,000 chunks a second on one core.
- ``openai:<model>`` or ``openai:<model>@<dims>`` (``text-embedding-3-*`` take a dimension):
  any OpenAI-compatible ``/embeddings`` endpoint (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``).

Every stored vector records the embedder's ``name``; vectors of two models are never compared.
"""

from __future__ import annotations

import asyncio
import re
import threading
from functools import cache
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings

DEFAULT_EMBEDDING_MODEL = "local:wordllama-l2-256"
EMBEDDING_MODEL_PATTERN = r"^(local:wordllama-l2-256|openai:[A-Za-z0-9._-]{1,100}(@[0-9]{1,5})?)$"
# The dimensions of OpenAI's models at their default size.
_OPENAI_DIMS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


class UnknownEmbeddingModel(ValueError):
    """A name no embedder answers to (or an OpenAI model whose dimension is not known)."""


class Embedder(Embeddings):
    """An embedding model with the name its vectors are recorded under and their size."""

    name: str
    dims: int


class WordLlamaEmbedder(Embedder):
    name = "local:wordllama-l2-256"
    dims = 256

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()

    def _loaded(self) -> Any:
        # Loaded on first use (about 0.2 s, 30 MB), once, whichever thread asks first.
        with self._lock:
            if self._model is None:
                import wordllama
                from wordllama import WordLlama

                # The wheel holds the weights and the tokenizer; pointing the cache at the
                # package makes the loader find both there instead of downloading them.
                package = Path(wordllama.__file__).parent
                self._model = WordLlama.load(cache_dir=package, disable_download=True)
            return self._model

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = self._loaded().embed(texts, norm=True)
        return [[float(x) for x in row] for row in vectors]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        return (await self.aembed_documents([text]))[0]


class OpenAIEmbedder(Embedder):
    def __init__(self, model: str, dims: int | None) -> None:
        from langchain_openai import OpenAIEmbeddings

        known = _OPENAI_DIMS.get(model)
        if dims is None and known is None:
            raise UnknownEmbeddingModel(
                f"openai:{model} needs its dimension: openai:{model}@<dims>"
            )
        self.name = f"openai:{model}" + (f"@{dims}" if dims is not None else "")
        self.dims = dims or known or 0
        # check_embedding_ctx_length=False: send the text itself, not tiktoken ids, which
        # OpenAI-compatible servers other than OpenAI's do not all take.
        self._client = OpenAIEmbeddings(
            model=model, dimensions=dims, check_embedding_ctx_length=False
        )

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._client.embed_documents(texts) if texts else []

    def embed_query(self, text: str) -> list[float]:
        return self._client.embed_query(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return await self._client.aembed_documents(texts) if texts else []

    async def aembed_query(self, text: str) -> list[float]:
        return await self._client.aembed_query(text)


@cache
def get_embedder(name: str = DEFAULT_EMBEDDING_MODEL) -> Embedder:
    """The embedder ``name`` names (one instance per name, shared)."""
    if not re.match(EMBEDDING_MODEL_PATTERN, name):
        raise UnknownEmbeddingModel(
            f"unknown embedding model {name!r}: use {DEFAULT_EMBEDDING_MODEL} or "
            "openai:<model>[@<dims>]"
        )
    if name == WordLlamaEmbedder.name:
        return WordLlamaEmbedder()
    model, _, dims = name.removeprefix("openai:").partition("@")
    return OpenAIEmbedder(model, int(dims) if dims else None)
