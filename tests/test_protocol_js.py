"""The official JS client (``@langchain/langgraph-sdk`` from npm, pinned in tests/js) against a
started server: it streams a run and reads the thread's history, as a frontend would."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.protocol import TOKENS, Live, live

__all__ = ["live"]

JS = Path(__file__).parent / "js"


@pytest.fixture(scope="module")
def node() -> str:
    binary = shutil.which("node")
    if binary is None:
        pytest.fail("Node.js is needed for the JS client test (Node 20 or later)")
    if not (JS / "node_modules" / "@langchain" / "langgraph-sdk").exists():
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=JS, check=True
        )
    return binary


def test_the_js_client_streams_a_run_and_reads_the_history(node: str, live: Live) -> None:
    headers = live.user()
    token = headers["Authorization"].removeprefix("Bearer ")
    done = subprocess.run(
        [node, "stream_and_history.mjs", live.url, token, "t5"],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["events"] == ["metadata", "values", *["messages"] * 6, "values", "end"]
    assert result["text"] == TOKENS
    assert result["history"] == [2, 1, 0]
    assert result["final"] == [["human", "hello from js"], ["ai", TOKENS]]


def test_the_js_client_pages_searches_and_follows_a_threads_stream(node: str, live: Live) -> None:
    headers = live.user()
    token = headers["Authorization"].removeprefix("Bearer ")
    done = subprocess.run(
        [node, "pages_and_thread_stream.mjs", live.url, token, "t5"],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    # The server's agents and the three the tests made.
    assert result["total"] == 8
    assert result["first"] == [2, "2"]
    assert result["last"] == [1, None]
    run = result["run_id"]
    assert result["events"] == [
        ["metadata", f"{run}:1"], ["updates", f"{run}:2"], ["end", f"{run}:3"],
        ["metadata", f"{run}:4"],
    ]  # fmt: skip
