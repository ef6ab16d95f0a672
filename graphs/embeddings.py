"""Embeddings: text to vectors (placeholder until ``graphs/embeddings.py`` lands from main).

The contract the memory store codes against: ``get_embedder(name) -> Embedder``, a LangChain
``Embeddings`` with ``name`` and ``dims``. This stand-in knows only the default local model;
the module on main (OpenAI models, validation of names) replaces it at the merge.
"""

from __future__ import annotations

import asyncio
import threading
from functools import cache
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings

DEFAULT_EMBEDDING_MODEL = "local:wordllama-l2-256"


class UnknownEmbeddingModel(ValueError):
    """A name no embedder answers to."""


class Embedder(Embeddings):
    """An embedding model with the name its vectors are recorded under and their size."""

    name: str
    dims: int


class WordLlamaEmbedder(Embedder):
    name = DEFAULT_EMBEDDING_MODEL
    dims = 256

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()

    def _loaded(self) -> Any:
        with self._lock:
            if self._model is None:
                import wordllama  # type: ignore[import-untyped]
                from wordllama import WordLlama

                package = Path(wordllama.__file__).parent
                self._model = WordLlama.load(cache_dir=package, disable_download=True)
            return self._model

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        return [[float(x) for x in row] for row in self._loaded().embed(texts, norm=True)]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        return (await self.aembed_documents([text]))[0]


@cache
def get_embedder(name: str = DEFAULT_EMBEDDING_MODEL) -> Embedder:
    """The embedder ``name`` names (one instance per name, shared)."""
    if name != DEFAULT_EMBEDDING_MODEL:
        raise UnknownEmbeddingModel(f"unknown embedding model {name!r}")
    return WordLlamaEmbedder()
