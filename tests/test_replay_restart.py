"""A replay outlives its server: stopped (SIGTERM) or killed (SIGKILL) in the middle of a turn,
the next server on the same database resumes it, and no message reaches its chat twice."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import PASSWORD
from tests.servers import ADMIN, Server, admin_env

QUESTIONS = ["one", "two", "three"]
# Three seconds a turn: long enough to stop a server in the middle of one.
SLOW_MODEL = "fake:tokens-30@100"
SLOW_ANSWER = " ".join(f"tok{i}" for i in range(30))


def until(read: Callable[[], Any], condition: Callable[[Any], bool]) -> Any:
    """``read()`` once ``condition`` holds of it (a guard against hanging, not a timing check)."""
    for _ in range(1200):
        value = read()
        if condition(value):
            return value
        time.sleep(0.05)
    raise AssertionError(f"never got there: {value}")


def test_a_replay_resumes_after_a_stop_and_a_kill_and_sends_each_message_once(
    data_dir: Path,
) -> None:
    # No grace at shutdown: the run in flight is interrupted by the stop, not finished.
    env = admin_env(data_dir, SWITCHBOARD_SHUTDOWN_GRACE_SECONDS="0")
    server = Server(data_dir, env)
    http = httpx.Client(base_url=server.url, timeout=30)
    admin = http.post("/auth/login", json=ADMIN).json()
    agent = http.post(
        "/agents/",
        json={"name": "Echo", "model_name": "fake:echo"},
        headers={"Authorization": f"Bearer {admin['access_token']}"},
    ).json()
    account = {"name": "U", "email": "u@example.org", "password": PASSWORD}
    token = http.post("/auth/register", json=account).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    chat_id = http.post("/chats/", json={"agent_id": agent["id"]}, headers=headers).json()["id"]
    for question in QUESTIONS:
        sent = http.post(f"/chats/{chat_id}/messages", json={"content": question}, headers=headers)
        assert sent.json()["status"] == "success", sent.text
    created = http.post(
        f"/chats/{chat_id}/replays", json={"model_name": SLOW_MODEL}, headers=headers
    )
    assert created.status_code == 202, created.text
    replay_id, target = created.json()["id"], created.json()["target_chat_id"]

    def replay() -> dict[str, Any]:
        response = http.get(f"/replays/{replay_id}", headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    def in_the_chat(position: int) -> Callable[[], bool]:
        """Whether the turn's message has reached the replay's chat (its run has started to
        write the thread), so stopping now cuts a turn that left a trace."""
        message_id = replay()["turns"][position]["message"]["id"]

        def check() -> bool:
            page = http.get(f"/chats/{target}/messages", headers=headers).json()
            return any(m["id"] == message_id for m in page["items"])

        return check

    # Stopped in the middle of the second turn.
    until(replay, lambda r: r["turns"][1]["status"] == "running")
    until(in_the_chat(1), bool)
    server.stop_gracefully(signal.SIGTERM)
    server = Server(data_dir, env)
    http = httpx.Client(base_url=server.url, timeout=30)
    assert f"resuming replay {replay_id}" in server.log.read_text()
    # Resumed: killed in the middle of the third turn.
    until(replay, lambda r: r["turns"][2]["status"] == "running")
    until(in_the_chat(2), bool)
    assert server.signal(signal.SIGKILL) == -signal.SIGKILL
    server = Server(data_dir, env)
    http = httpx.Client(base_url=server.url, timeout=30)
    assert f"resuming replay {replay_id}" in server.log.read_text()

    done = until(replay, lambda r: r["status"] not in ("pending", "running"))
    assert (done["status"], done["progress"], done["error"]) == (
        "done", {"done": 3, "total": 3}, None,
    )  # fmt: skip
    turns = done["turns"]
    assert [t["status"] for t in turns] == ["success"] * 3
    assert [t["message"]["content"] for t in turns] == QUESTIONS
    assert [t["new"]["content"] for t in turns] == [SLOW_ANSWER] * 3
    assert [t["original"]["content"] for t in turns] == [f"You said: {q}" for q in QUESTIONS]
    assert [t["similarity"] for t in turns] == [0.0, 0.0, 0.0]
    # Each user message reached the chat once; the cut turns were answered again on a branch
    # just before their message, so the chat reads as if nothing had happened.
    messages = http.get(f"/chats/{target}/messages", headers=headers).json()["items"]
    assert [(m["sender"], m["id"], m["content"]) for m in messages] == [
        pair
        for t in turns
        for pair in (
            ("user", t["message"]["id"], t["message"]["content"]),
            ("agent", t["new"]["message_id"], SLOW_ANSWER),
        )
    ]
    # The two cut runs stay in the record as interrupted; each turn names the run that
    # answered it.
    runs = http.get(f"/chats/{target}/runs", headers=headers).json()["items"]
    assert sorted(r["status"] for r in runs) == ["interrupted"] * 2 + ["success"] * 3
    succeeded = {r["id"] for r in runs if r["status"] == "success"}
    assert {t["run_id"] for t in turns} == succeeded
    assert {r["model_name"] for r in runs} == {SLOW_MODEL}
    server.stop_gracefully(signal.SIGTERM)
