"""The Agent Protocol's OpenAPI: every route documents what it answers, and real answers fit
those models (``api.schemas.protocol_out``) field for field."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import BaseModel, TypeAdapter

from api.schemas.events import PROTOCOL_EVENT, sse_content
from api.schemas.protocol_out import (
    Assistant,
    AssistantGraph,
    GraphSchema,
    Run,
    Thread,
    ThreadState,
    ThreadStateUpdateResponse,
)
from tests.conftest import User

PROTOCOL_PREFIXES = (
    "/assistants", "/threads", "/runs/stream", "/runs/wait", "/runs/batch", "/runs/cancel",
    "/runs/crons", "/store",
)  # fmt: skip
PROTOCOL_PATHS = {"/runs"}
METHODS = {"get", "post", "put", "patch", "delete"}


def _protocol_operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith(PROTOCOL_PREFIXES) or path in PROTOCOL_PATHS
        for method, operation in operations.items()
        if method in METHODS
    ]


def _documented(status: str, response: dict[str, Any]) -> bool:
    content = response.get("content")
    if status == "204":
        return not content
    if not content:
        return False
    if "text/event-stream" in content:
        return set(content) == {"text/event-stream"}
    # FastAPI writes an empty schema for a route that declares nothing.
    return bool(content.get("application/json", {}).get("schema"))


async def test_every_protocol_route_documents_its_answer(app: FastAPI) -> None:
    operations = _protocol_operations(app)
    assert len(operations) >= 31  # as of writing; a new one is checked too
    undocumented = []
    for method, path, operation in operations:
        answers = {s: r for s, r in operation["responses"].items() if s.startswith("2")}
        if not answers or not any(_documented(s, r) for s, r in answers.items()):
            undocumented.append(f"{method} {path}")
    assert undocumented == []

    paths = app.openapi()["paths"]

    def ok(path: str, method: str) -> dict[str, Any]:
        return paths[path][method]["responses"]

    assert ok("/threads/{thread_id}/runs/stream", "post")["200"]["content"] == sse_content(
        PROTOCOL_EVENT
    )
    assert set(ok("/threads/{thread_id}", "delete")) == {"204", "401", "404", "422", "503"}
    run = {"$ref": "#/components/schemas/Run"}
    assert ok("/threads/{thread_id}/runs/{run_id}/cancel", "post")["200"]["content"] == {
        "application/json": {"schema": run}
    }
    assert "content" not in ok("/threads/{thread_id}/runs/{run_id}/cancel", "post")["202"]
    values = ok("/runs/wait", "post")["200"]["content"]["application/json"]["schema"]
    assert (values["type"], values["additionalProperties"]) == ("object", True)
    count = ok("/threads/count", "post")["200"]["content"]["application/json"]["schema"]
    assert count["type"] == "integer"


def _fits(model: type[BaseModel], body: Any) -> Any:
    """``body`` validates against ``model`` and has exactly its fields (none undocumented)."""
    parsed = model.model_validate(body)
    assert set(body) == set(model.model_fields), model.__name__
    return parsed


def _fits_list(model: type[BaseModel], body: Any) -> list[Any]:
    parsed = TypeAdapter(list[model]).validate_python(body)  # type: ignore[valid-type]
    for item in body:
        assert set(item) == set(model.model_fields), model.__name__
    return parsed


async def test_real_answers_fit_the_models(
    client: httpx.AsyncClient, user: User, admin: User
) -> None:
    headers = user.headers
    created = await client.post(
        "/agents/",
        json={"name": "Asker", "model_name": "fake:tools", "tools_enabled": ["ask_human"]},
        headers=admin.headers,
    )
    assert created.status_code == 201, created.text
    asker = created.json()

    # Assistants.
    assistant = _fits(
        Assistant, (await client.get("/assistants/assistant", headers=headers)).json()
    )
    assert assistant.graph_id == "assistant"
    assert assistant.config.configurable.model_name is None
    found = (await client.post("/assistants/search", json={"limit": 100}, headers=headers)).json()
    assistants = _fits_list(Assistant, found)
    assert assistant in assistants
    assert str(asker["id"]) in {str(a.assistant_id) for a in assistants}
    count = (await client.post("/assistants/count", json={}, headers=headers)).json()
    assert count == len(assistants)
    graph = (await client.get("/assistants/asker/graph", headers=headers)).json()
    assert [n["id"] for n in _fits(AssistantGraph, graph).nodes] == [
        "__start__", "model", "tools", "__end__"
    ]  # fmt: skip
    schemas = (await client.get("/assistants/assistant/schemas", headers=headers)).json()
    assert _fits(GraphSchema, schemas).graph_id == "assistant"

    # A new thread, and its state before any run.
    response = await client.post("/threads", json={"metadata": {"project": "x"}}, headers=headers)
    assert response.status_code == 200, response.text
    new = _fits(Thread, response.json())
    thread_id = str(new.thread_id)
    assert (new.status, new.values, new.metadata, new.interrupts) == (
        "idle", {}, {"project": "x"}, {}
    )  # fmt: skip
    empty = _fits(
        ThreadState, (await client.get(f"/threads/{thread_id}/state", headers=headers)).json()
    )
    assert (empty.checkpoint.checkpoint_id, empty.created_at, empty.next) == (None, None, [])

    # A run waited for, then one in the background, joined.
    run_body = {
        "assistant_id": "assistant",
        "input": {"messages": [{"role": "user", "content": "one"}]},
    }
    waited = await client.post(f"/threads/{thread_id}/runs/wait", json=run_body, headers=headers)
    assert waited.status_code == 200, waited.text
    assert [m["content"] for m in waited.json()["messages"]] == ["one", "You said: one"]
    run_body["input"] = {"messages": [{"role": "user", "content": "two"}]}
    started = await client.post(f"/threads/{thread_id}/runs", json=run_body, headers=headers)
    assert started.status_code == 200, started.text
    background = _fits(Run, started.json())
    assert str(background.thread_id) == thread_id
    assert str(background.assistant_id) == str(assistant.assistant_id)
    assert background.status in {"pending", "running", "success"}
    assert background.kwargs.input == run_body["input"]
    joined = await client.get(
        f"/threads/{thread_id}/runs/{background.run_id}/join", headers=headers
    )
    assert [m["content"] for m in joined.json()["messages"]][-1] == "You said: two"

    # The thread, found and read.
    thread = _fits(Thread, (await client.get(f"/threads/{thread_id}", headers=headers)).json())
    assert thread.status == "idle"
    assert thread.metadata == {
        "project": "x", "graph_id": "assistant", "assistant_id": str(assistant.assistant_id)
    }  # fmt: skip
    assert [m["content"] for m in thread.values["messages"]] == [
        "one", "You said: one", "two", "You said: two"
    ]  # fmt: skip
    searched = (await client.post("/threads/search", json={}, headers=headers)).json()
    assert [str(t.thread_id) for t in _fits_list(Thread, searched)] == [thread_id]
    assert (await client.post("/threads/count", json={}, headers=headers)).json() == 1

    # Its state and history.
    state = _fits(
        ThreadState, (await client.get(f"/threads/{thread_id}/state", headers=headers)).json()
    )
    assert state.checkpoint.thread_id == thread_id
    assert state.next == [] and state.tasks == [] and state.interrupts == []
    assert state.created_at is not None and state.parent_checkpoint is not None
    history = (
        await client.get(f"/threads/{thread_id}/history", params={"limit": 100}, headers=headers)
    ).json()
    states = _fits_list(ThreadState, history)
    assert states[0].checkpoint == state.checkpoint
    assert states[-1].parent_checkpoint is None
    written = await client.post(
        f"/threads/{thread_id}/state",
        json={"values": {"messages": [{"role": "user", "content": "noted"}]}, "as_node": "model"},
        headers=headers,
    )
    assert written.status_code == 200, written.text
    update = _fits(ThreadStateUpdateResponse, written.json())
    assert update.checkpoint.thread_id == thread_id
    assert update.checkpoint.checkpoint_id not in {None, state.checkpoint.checkpoint_id}

    # Its runs.
    runs = _fits_list(Run, (await client.get(f"/threads/{thread_id}/runs", headers=headers)).json())
    assert len(runs) == 2
    assert runs[0].run_id == background.run_id  # newest first
    assert {(str(r.thread_id), r.status, r.multitask_strategy) for r in runs} == {
        (thread_id, "success", "enqueue")
    }
    one = (
        await client.get(f"/threads/{thread_id}/runs/{background.run_id}", headers=headers)
    ).json()
    run = _fits(Run, one)
    assert (run.run_id, str(run.thread_id), run.status) == (background.run_id, thread_id, "success")
    assert run.created_at == background.created_at
    assert run.updated_at >= run.created_at

    # A thread that waits for input: its interrupts, tasks and the run's state fit too.
    paused = (await client.post("/threads", json={}, headers=headers)).json()
    asked = {"assistant_id": "asker", "input": {"messages": [{"role": "user", "content": "Ship?"}]}}
    waited = await client.post(
        f"/threads/{paused['thread_id']}/runs/wait", json=asked, headers=headers
    )
    assert waited.status_code == 200, waited.text
    assert "__interrupt__" in waited.json()
    thread = _fits(
        Thread, (await client.get(f"/threads/{paused['thread_id']}", headers=headers)).json()
    )
    assert thread.status == "interrupted"
    [(task_id, interrupts)] = thread.interrupts.items()
    assert [i.value for i in interrupts] == [{"question": "Ship?"}]
    state = _fits(
        ThreadState,
        (await client.get(f"/threads/{paused['thread_id']}/state", headers=headers)).json(),
    )
    assert state.next == ["tools"]
    [task] = state.tasks
    assert (task.id, task.name, task.error, task.checkpoint, task.state) == (
        task_id, "tools", None, None, None
    )  # fmt: skip
    assert [i.value for i in task.interrupts] == [{"question": "Ship?"}]
    assert [i.id for i in state.interrupts] == [i.id for i in interrupts]
