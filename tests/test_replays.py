"""Replays: a chat's user messages sent again to another agent or model, in the background, as
ordinary runs of a new chat, and compared turn by turn with the original."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from langchain_core.tools import tool

from api.services.comparison import similarity
from api.services.replay_driver import MAX_RESUMES
from tests.conftest import User, assert_error
from tests.test_history import get
from tests.test_messages import MakeAgent, make_agent, open_chat
from tools import TOOLS

__all__ = ["make_agent"]

# Each is a calculator call with `fake:tools`, answered with its result: "7", "4", "3".
QUESTIONS = ["7", "2+2", "3 * 1"]
# Token F1 of each original answer with `fake:echo`'s "You said: <question>":
# {7} vs {you, said, 7}; {4} vs {you, said, 2, 2}; {3} vs {you, said, 3, 1}.
ECHO_SIMILARITY = [0.5, 0.0, 0.4]
SLOW_MODEL = "fake:tokens-1000@20"  # twenty seconds a turn: stopped long before it ends


async def recorded_chat(
    client: httpx.AsyncClient, user: User, agent: dict[str, Any], questions: list[str]
) -> str:
    chat_id = await open_chat(client, user, agent["id"])
    for question in questions:
        response = await client.post(
            f"/chats/{chat_id}/messages", json={"content": question}, headers=user.headers
        )
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "success"
    return chat_id


async def replay(
    client: httpx.AsyncClient, user: User, chat_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(f"/chats/{chat_id}/replays", json=body, headers=user.headers)
    assert response.status_code == 202, response.text
    created = response.json()
    assert response.headers["location"] == f"/replays/{created['id']}"
    return created


async def wait_for(
    client: httpx.AsyncClient,
    user: User,
    replay_id: str,
    condition: Callable[[dict[str, Any]], bool],
) -> dict[str, Any]:
    """The replay once ``condition`` holds (a guard against hanging, not a timing check)."""
    for _ in range(1200):
        body = await get(client, user, f"/replays/{replay_id}")
        if condition(body):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"the replay never got there: {body}")


def ended(body: dict[str, Any]) -> bool:
    return body["status"] not in ("pending", "running")


def turn_costs(messages: list[dict[str, Any]]) -> list[tuple[dict[str, int], float | None]]:
    """Per user message of a chat: the tokens and model time of the agent messages after it,
    as `GET /chats/{id}/messages` shows them."""
    costs: list[tuple[dict[str, int], float | None]] = []
    latencies: list[list[float]] = []
    for message in messages:
        if message["sender"] == "user":
            costs.append(({"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}, None))
            latencies.append([])
        elif message["sender"] == "agent":
            for key, value in message["metadata"]["usage"].items():
                costs[-1][0][key] += value
            latencies[-1].append(message["metadata"]["latency_ms"])
    return [(usage, round(sum(ms), 1)) for (usage, _), ms in zip(costs, latencies, strict=True)]


def calls(answer: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(call["name"], call["args"]) for call in answer["tool_calls"]]


async def test_a_replay_on_another_model_answers_every_turn_and_compares_them(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    agent = await make_agent("fake:tools", ["calculator"])
    chat_id = await recorded_chat(client, user, agent, QUESTIONS)
    original = (await get(client, user, f"/chats/{chat_id}/messages"))["items"]
    answers = [m for m in original if m["sender"] == "agent" and not m["metadata"]["tool_calls"]]
    vote = await client.put(
        f"/chats/{chat_id}/messages/{answers[1]['id']}/feedback",
        json={"score": -1, "comment": "show your work"},
        headers=user.headers,
    )
    assert vote.status_code == 200, vote.text
    original = (await get(client, user, f"/chats/{chat_id}/messages"))["items"]

    created = await replay(client, user, chat_id, {"model_name": "fake:echo"})
    assert (created["status"], created["progress"]) == ("pending", {"done": 0, "total": 3})
    assert [t["status"] for t in created["turns"]] == ["pending"] * 3
    assert [t["run_id"] for t in created["turns"]] == [None] * 3
    done = await wait_for(client, user, created["id"], ended)

    target = done["target_chat_id"]
    assert (done["status"], done["error"]) == ("done", None)
    assert done["progress"] == {"done": 3, "total": 3}
    assert (done["source_chat_id"], done["agent_id"], done["model_name"]) == (
        chat_id, agent["id"], "fake:echo",
    )  # fmt: skip
    assert target not in (None, chat_id)
    assert done["started_at"] is not None and done["ended_at"] is not None
    turns = done["turns"]
    users = [m for m in original if m["sender"] == "user"]
    assert [(t["position"], t["message"]) for t in turns] == [
        (i, {"id": m["id"], "content": m["content"]}) for i, m in enumerate(users)
    ]
    assert [t["status"] for t in turns] == ["success"] * 3
    # Which turns differ, and by how much: exactly.
    assert [t["similarity"] for t in turns] == ECHO_SIMILARITY
    assert [t["original"]["content"] for t in turns] == ["7", "4", "3"]
    assert [t["new"]["content"] for t in turns] == [f"You said: {q}" for q in QUESTIONS]
    assert [calls(t["original"]) for t in turns] == [
        [("calculator", {"expression": q})] for q in QUESTIONS
    ]
    assert [calls(t["new"]) for t in turns] == [[], [], []]
    assert [t["original"]["message_id"] for t in turns] == [a["id"] for a in answers]
    assert {(t["original"]["model"], t["new"]["model"]) for t in turns} == {
        ("fake:tools", "fake:echo")
    }
    # The original answers' feedback, as it is now.
    feedback = [t["original"]["feedback"] for t in turns]
    assert (feedback[0], feedback[2]) == (None, None)
    assert feedback[1] == {
        k: vote.json()[k] for k in ("score", "comment", "created_at", "updated_at")
    }
    assert "feedback" not in turns[0]["new"]

    # Tokens and model time of each side are what each chat's messages say.
    replayed = (await get(client, user, f"/chats/{target}/messages"))["items"]
    for side, messages in (("original", original), ("new", replayed)):
        costs = [(t[side]["usage"], t[side]["latency_ms"]) for t in turns]
        assert costs == turn_costs(messages), side
        assert all(usage["total_tokens"] > 0 and ms is not None for usage, ms in costs)
    # The new chat holds each user message once, with its original's id, and the answers.
    assert [(m["sender"], m["id"], m["content"]) for m in replayed] == [
        pair
        for t in turns
        for pair in (
            ("user", t["message"]["id"], t["message"]["content"]),
            ("agent", t["new"]["message_id"], t["new"]["content"]),
        )
    ]
    # Each turn was an ordinary run of the new chat, on the replay's model.
    runs = await get(client, user, f"/chats/{target}/runs")
    assert runs["total"] == 3
    assert sorted(r["id"] for r in runs["items"]) == sorted(t["run_id"] for t in turns)
    for run in runs["items"]:
        assert (run["status"], run["model_name"], run["agent_id"]) == (
            "success", "fake:echo", agent["id"],
        )  # fmt: skip
    chat = await get(client, user, f"/chats/{target}")
    assert (chat["agent_id"], chat["message_count"]) == (agent["id"], 6)
    # The original is not touched; the agent's own model is unchanged for its next message.
    assert (await get(client, user, f"/chats/{chat_id}/messages"))["items"] == original
    again = await client.post(
        f"/chats/{target}/messages", json={"content": "2*5"}, headers=user.headers
    )
    assert again.json()["messages"][-1]["content"] == "10"

    listing = await get(client, user, f"/chats/{chat_id}/replays")
    assert (listing["total"], listing["limit"], listing["offset"]) == (1, 20, 0)
    assert listing["items"] == [{k: v for k, v in done.items() if k != "turns"}]
    assert (await get(client, user, f"/chats/{target}/replays"))["total"] == 0


async def test_a_replay_against_another_agent(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    agent = await make_agent("fake:tools", ["calculator"])
    chat_id = await recorded_chat(client, user, agent, QUESTIONS)
    twin = await make_agent("fake:tools", ["calculator"], name="Twin")
    echo = await make_agent("fake:echo", name="Echo")

    same = await replay(client, user, chat_id, {"agent_id": twin["id"]})
    same = await wait_for(client, user, same["id"], ended)
    assert (same["status"], same["agent_id"], same["model_name"]) == ("done", twin["id"], None)
    assert [t["similarity"] for t in same["turns"]] == [1.0, 1.0, 1.0]
    assert [calls(t["new"]) for t in same["turns"]] == [calls(t["original"]) for t in same["turns"]]
    assert [t["new"]["content"] for t in same["turns"]] == ["7", "4", "3"]
    chat = await get(client, user, f"/chats/{same['target_chat_id']}")
    assert chat["agent_id"] == twin["id"]

    other = await replay(client, user, chat_id, {"agent_id": echo["id"]})
    other = await wait_for(client, user, other["id"], ended)
    assert [t["similarity"] for t in other["turns"]] == ECHO_SIMILARITY
    run = await get(client, user, f"/runs/{other['turns'][0]['run_id']}")
    assert (run["agent_id"], run["model_name"]) == (echo["id"], "fake:echo")
    # Another agent on another model: the echo agent's prompt, with the tools model.
    both = await replay(client, user, chat_id, {"agent_id": echo["id"], "model_name": "fake:tools"})
    both = await wait_for(client, user, both["id"], ended)
    assert [t["new"]["content"] for t in both["turns"]] == ["I have no tools enabled."] * 3
    assert [t["similarity"] for t in both["turns"]] == [0.0, 0.0, 0.0]

    listing = await get(client, user, f"/chats/{chat_id}/replays", limit=2)
    assert listing["total"] == 3
    assert [r["id"] for r in listing["items"]] == [both["id"], other["id"]]
    rest = await get(client, user, f"/chats/{chat_id}/replays", limit=2, offset=2)
    assert [r["id"] for r in rest["items"]] == [same["id"]]


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> tuple[asyncio.Queue[str], asyncio.Semaphore]:
    """A tool ``gate`` that says when it is called (the queue) and answers once let through
    (one release of the semaphore per call)."""
    called: asyncio.Queue[str] = asyncio.Queue()
    passes = asyncio.Semaphore(0)

    @tool("gate")
    async def gate_tool(text: str) -> str:
        """Waits to be let through."""
        await called.put(text)
        await passes.acquire()
        return f"passed {text}"

    monkeypatch.setitem(TOOLS, "gate", gate_tool)
    return called, passes


async def test_progress_and_status_move_turn_by_turn(
    client: httpx.AsyncClient,
    user: User,
    make_agent: MakeAgent,
    gate: tuple[asyncio.Queue[str], asyncio.Semaphore],
) -> None:
    called, passes = gate
    chat_id = await recorded_chat(client, user, await make_agent("fake:echo"), ["a", "b"])
    gated = await make_agent("fake:tools", ["gate"], name="Gated")
    created = await replay(client, user, chat_id, {"agent_id": gated["id"]})
    assert (created["status"], created["progress"]) == ("pending", {"done": 0, "total": 2})

    assert await asyncio.wait_for(called.get(), 30) == "a"
    first = await get(client, user, f"/replays/{created['id']}")
    assert (first["status"], first["progress"]) == ("running", {"done": 0, "total": 2})
    assert [t["status"] for t in first["turns"]] == ["running", "pending"]
    assert first["turns"][0]["new"] is None and first["turns"][1]["run_id"] is None
    assert first["started_at"] is not None and first["ended_at"] is None
    run = await get(client, user, f"/runs/{first['turns'][0]['run_id']}")
    assert run["status"] == "running"

    passes.release()
    assert await asyncio.wait_for(called.get(), 30) == "b"
    second = await get(client, user, f"/replays/{created['id']}")
    assert (second["status"], second["progress"]) == ("running", {"done": 1, "total": 2})
    assert [t["status"] for t in second["turns"]] == ["success", "running"]
    assert second["turns"][0]["new"]["content"] == "passed a"
    assert calls(second["turns"][0]["new"]) == [("gate", {"text": "a"})]
    # "You said: a" against "passed a".
    assert second["turns"][0]["similarity"] == 0.4

    passes.release()
    last = await wait_for(client, user, created["id"], ended)
    assert (last["status"], last["progress"]) == ("done", {"done": 2, "total": 2})
    assert [t["status"] for t in last["turns"]] == ["success", "success"]
    assert last["ended_at"] is not None


async def test_cancel_stops_the_run_in_flight_and_sends_nothing_more(
    app: FastAPI, client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    chat_id = await recorded_chat(client, user, await make_agent("fake:echo"), QUESTIONS)
    created = await replay(client, user, chat_id, {"model_name": SLOW_MODEL})
    going = await wait_for(
        client, user, created["id"], lambda r: r["turns"][0]["status"] == "running"
    )
    run_id = going["turns"][0]["run_id"]

    response = await client.post(f"/replays/{created['id']}/cancel", headers=user.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"replay_id": created["id"], "status": "cancelled", "cancelled": True}
    # Its driver has nothing left to do once it has seen the end of its run.
    driver = app.state.switchboard.replays.tasks.get(uuid.UUID(created["id"]))
    if driver is not None:
        await asyncio.wait_for(driver, 30)

    stopped = await get(client, user, f"/replays/{created['id']}")
    assert (stopped["status"], stopped["progress"]) == ("cancelled", {"done": 0, "total": 3})
    assert stopped["ended_at"] is not None
    assert [t["status"] for t in stopped["turns"]] == ["cancelled", "pending", "pending"]
    assert [t["run_id"] for t in stopped["turns"]] == [run_id, None, None]
    assert [t["similarity"] for t in stopped["turns"]] == [None, None, None]
    assert (await get(client, user, f"/runs/{run_id}"))["status"] == "cancelled"
    runs = await get(client, user, f"/chats/{stopped['target_chat_id']}/runs")
    assert [r["id"] for r in runs["items"]] == [run_id]

    again = await client.post(f"/replays/{created['id']}/cancel", headers=user.headers)
    assert again.json() == {"replay_id": created["id"], "status": "cancelled", "cancelled": False}
    # The chat it wrote to is an ordinary chat, usable at once.
    answer = await client.post(
        f"/chats/{stopped['target_chat_id']}/messages", json={"content": "hi"}, headers=user.headers
    )
    assert answer.json()["status"] == "success"


async def test_a_replay_whose_chat_is_deleted_fails_and_keeps_its_report(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    chat_id = await recorded_chat(client, user, await make_agent("fake:echo"), QUESTIONS)
    created = await replay(client, user, chat_id, {"model_name": SLOW_MODEL})
    going = await wait_for(
        client, user, created["id"], lambda r: r["turns"][0]["status"] == "running"
    )
    deleted = await client.delete(f"/chats/{going['target_chat_id']}", headers=user.headers)
    assert deleted.status_code == 204

    failed = await wait_for(client, user, created["id"], ended)
    assert (failed["status"], failed["error"]) == ("failed", "The replay's chat was deleted")
    assert failed["target_chat_id"] is None
    # Deleting the chat cancelled the run in flight; whether the replay saw that end before it
    # saw the chat gone (cancelled) or not (interrupted: it stopped following it) is a race.
    assert failed["turns"][0]["status"] in ("cancelled", "interrupted")
    assert [t["status"] for t in failed["turns"][1:]] == ["pending", "pending"]
    assert [t["similarity"] for t in failed["turns"]] == [None, None, None]
    assert [t["message"]["content"] for t in failed["turns"]] == QUESTIONS
    # The original, and its list of replays, are still there.
    assert (await get(client, user, f"/chats/{chat_id}/replays"))["total"] == 1


async def test_bad_requests_are_clear_errors_and_create_nothing(
    client: httpx.AsyncClient, user: User, admin: User, make_agent: MakeAgent
) -> None:
    agent = await make_agent("fake:echo")
    chat_id = await recorded_chat(client, user, agent, ["hello"])
    empty = await open_chat(client, user, agent["id"])
    retired = await make_agent("fake:echo", name="Retired")
    assert (await client.delete(f"/agents/{retired['id']}", headers=admin.headers)).is_success
    before = await get(client, user, "/chats/")

    async def post(chat: str, body: Any) -> httpx.Response:
        return await client.post(f"/chats/{chat}/replays", json=body, headers=user.headers)

    for body in (
        {},
        {"agent_id": None},
        {"model_name": None},
        {"agent_id": agent["id"], "model_name": None},
        {"agent_id": "not-a-uuid"},
        {"model_name": "fake:echo", "extra": 1},
        [],
    ):
        assert_error(await post(chat_id, body), 422, "validation_error")
    for model in (
        "nope:echo",
        "fake:unknown",
        "echo",
        " fake:echo",
        "fake:echo\n",
        "fake:tokens-1234567",
    ):
        problems = assert_error(await post(chat_id, {"model_name": model}), 422)["detail"]
        assert [p["loc"] for p in problems] == [["body", "model_name"]], model
    unknown_model = assert_error(await post(chat_id, {"model_name": "nope:x"}), 422)
    assert "unknown model provider 'nope'" in unknown_model["detail"][0]["msg"]

    missing = await post(chat_id, {"agent_id": str(uuid.uuid4())})
    assert assert_error(missing, 404, "agent_not_found")["detail"] == "`agent_id` names no agent"
    assert_error(await post(chat_id, {"agent_id": retired["id"]}), 409, "conflict")
    nothing = assert_error(await post(empty, {"model_name": "fake:echo"}), 409, "nothing_to_replay")
    assert nothing["detail"] == "This chat has no user message to replay"
    assert_error(await post(str(uuid.uuid4()), {"model_name": "fake:echo"}), 404, "not_found")

    # A chat whose answer is still being written.
    slow = await make_agent(SLOW_MODEL, name="Slow")
    busy = await open_chat(client, user, slow["id"])
    sending = asyncio.create_task(
        client.post(f"/chats/{busy}/messages", json={"content": "go"}, headers=user.headers)
    )
    for _ in range(600):
        runs = await get(client, user, f"/chats/{busy}/runs")
        if runs["items"] and runs["items"][0]["status"] == "running":
            break
        await asyncio.sleep(0.05)
    active = assert_error(await post(busy, {"agent_id": agent["id"]}), 409, "conflict")
    assert active["detail"] == "The chat has an active run; replay it once the run has ended"
    cancelled = await client.post(f"/runs/{runs['items'][0]['id']}/cancel", headers=user.headers)
    assert cancelled.json()["cancelled"] is True
    await sending

    after = await get(client, user, "/chats/")
    assert after["total"] == before["total"] + 1  # the busy chat, and nothing else
    for chat in (chat_id, empty, busy):
        assert (await get(client, user, f"/chats/{chat}/replays"))["total"] == 0


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ("", "", 1.0),
        ("42", "", 0.0),
        ("Hello, world!", "hello   WORLD", 1.0),
        ("7", "You said: 7", 0.5),
        ("the cat the", "the the dog", 0.6667),
        ("a b c", "d e f", 0.0),
        ("x", "x x", 0.6667),
    ],
)
def test_similarity_is_token_f1(first: str, second: str, expected: float) -> None:
    assert similarity(first, second) == expected
    assert similarity(second, first) == expected


async def test_an_orphaned_replay_is_adopted_and_one_that_keeps_crashing_is_interrupted(
    app: FastAPI,
    client: httpx.AsyncClient,
    user: User,
    make_agent: MakeAgent,
    database_url: str,
    gate: tuple[asyncio.Queue[str], asyncio.Semaphore],
) -> None:
    called, passes = gate
    state = app.state.switchboard
    chat_id = await recorded_chat(client, user, await make_agent("fake:echo"), ["a", "b"])
    gated = await make_agent("fake:tools", ["gate"], name="Gated")
    created = await replay(client, user, chat_id, {"agent_id": gated["id"]})
    assert await asyncio.wait_for(called.get(), 30) == "a"
    first = (await get(client, user, f"/replays/{created['id']}"))["turns"][0]

    # Its process "dies" in the middle of the first turn: the driver goes, the run is cut
    # short (as recovery marks a dead process's run), and the replay names a pid that is gone.
    driver = state.replays.tasks[uuid.UUID(created["id"])]
    driver.cancel()
    await asyncio.gather(driver, return_exceptions=True)
    await state.runs.stop(uuid.UUID(first["run_id"]), "interrupted")
    dead = f"{socket.gethostname()}:99999999"
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as db:
        await db.execute("UPDATE replays SET worker_id = %s", (dead,))

    # (The heartbeat may adopt it first: either way, this process drives it again.)
    await state.replays.adopt()
    assert uuid.UUID(created["id"]) in state.replays.tasks
    # The cut turn is answered again, from just before its message.
    assert await asyncio.wait_for(called.get(), 30) == "a"
    passes.release()
    assert await asyncio.wait_for(called.get(), 30) == "b"
    passes.release()
    done = await wait_for(client, user, created["id"], ended)
    assert (done["status"], done["progress"]) == ("done", {"done": 2, "total": 2})
    assert [t["new"]["content"] for t in done["turns"]] == ["passed a", "passed b"]
    assert done["turns"][0]["run_id"] != first["run_id"]
    messages = (await get(client, user, f"/chats/{done['target_chat_id']}/messages"))["items"]
    assert [m["content"] for m in messages if m["sender"] == "user"] == ["a", "b"]
    runs = (await get(client, user, f"/chats/{done['target_chat_id']}/runs"))["items"]
    assert sorted(r["status"] for r in runs) == ["interrupted", "success", "success"]

    # A replay whose process died MAX_RESUMES times in a row is not resumed once more.
    again = await replay(client, user, chat_id, {"agent_id": gated["id"]})
    assert await asyncio.wait_for(called.get(), 30) == "a"
    driver = state.replays.tasks[uuid.UUID(again["id"])]
    driver.cancel()
    await asyncio.gather(driver, return_exceptions=True)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as db:
        await db.execute(
            "UPDATE replays SET worker_id = %s, resumes = %s WHERE id = %s",
            (dead, MAX_RESUMES, again["id"]),
        )
    assert await state.replays.adopt() == []
    stopped = await get(client, user, f"/replays/{again['id']}")
    assert (stopped["status"], stopped["error"]) == (
        "interrupted", f"Its process stopped {MAX_RESUMES + 1} times before a turn ended",
    )  # fmt: skip
    assert [t["status"] for t in stopped["turns"]] == ["interrupted", "pending"]
    passes.release()
