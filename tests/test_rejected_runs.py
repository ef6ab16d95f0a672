"""A run the server refuses creates nothing: no thread, no run, on any route that could."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import User, assert_error

NUL_INPUT = {"messages": [{"role": "user", "content": "bad\x00input"}]}


async def _thread_count(client: httpx.AsyncClient, user: User) -> int:
    counted = await client.post("/threads/count", json={}, headers=user.headers)
    assert counted.status_code == 200
    return counted.json()


async def _assistant(client: httpx.AsyncClient, user: User) -> str:
    found = await client.post("/assistants/search", json={}, headers=user.headers)
    return found.json()[0]["graph_id"]


@pytest.mark.parametrize(
    ("route", "change"),
    [
        ("/threads/{id}/runs/wait", {"input": NUL_INPUT}),
        ("/threads/{id}/runs/stream", {"input": NUL_INPUT}),
        ("/threads/{id}/runs", {"input": NUL_INPUT}),
        ("/threads/{id}/runs", {"metadata": {"k": "v\x00"}, "input": {"messages": []}}),
        ("/threads/{id}/runs", {"metadata": {"k\x00": "v"}, "input": {"messages": []}}),
        ("/threads/{id}/runs", {"command": {"resume": ["x\x00"]}}),
        ("/runs/wait", {"input": NUL_INPUT}),
        ("/runs/stream", {"input": NUL_INPUT}),
        ("/runs/wait", {"context": {"deep": [{"er": "\x00"}]}}),
    ],
)
async def test_a_refused_run_leaves_no_thread(
    client: httpx.AsyncClient, user: User, route: str, change: dict[str, Any]
) -> None:
    thread_id = str(uuid.uuid4())
    before = await _thread_count(client, user)
    body = {"assistant_id": await _assistant(client, user), "if_not_exists": "create", **change}
    refused = await client.post(route.format(id=thread_id), json=body, headers=user.headers)
    problems = assert_error(refused, 422, "validation_error")["detail"]
    assert problems[0]["msg"].endswith("must not contain NUL characters"), problems
    assert await _thread_count(client, user) == before
    missing = await client.get(f"/threads/{thread_id}", headers=user.headers)
    assert_error(missing, 404)


async def test_a_run_refused_after_the_thread_was_made_removes_it(
    client: httpx.AsyncClient, user: User, app: Any
) -> None:
    """Refused by the runtime (it is shutting down) once the new thread exists: it goes."""
    thread_id = str(uuid.uuid4())
    before = await _thread_count(client, user)
    body = {"assistant_id": await _assistant(client, user), "if_not_exists": "create"}
    liveness = app.state.switchboard.runs.liveness
    liveness.accepting = False
    try:
        refused = await client.post(f"/threads/{thread_id}/runs", json=body, headers=user.headers)
    finally:
        liveness.accepting = True
    assert_error(refused, 503, "unavailable")
    assert await _thread_count(client, user) == before
    assert_error(await client.get(f"/threads/{thread_id}", headers=user.headers), 404)


@pytest.mark.parametrize("metadata", [{"k": "v\x00"}, {"nested": {"k\x00": 1}}])
async def test_a_thread_with_nul_in_its_metadata_is_refused(
    client: httpx.AsyncClient, user: User, metadata: dict[str, Any]
) -> None:
    before = await _thread_count(client, user)
    refused = await client.post("/threads", json={"metadata": metadata}, headers=user.headers)
    assert_error(refused, 422, "validation_error")
    assert await _thread_count(client, user) == before
