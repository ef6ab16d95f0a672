"""SIGTERM with runs in flight: they get a grace period, then every stream still gets ``end``."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from tests.servers import Server, admin_env, user_with_agent
from tests.test_resume import read_events


@pytest.mark.parametrize(
    ("model", "grace", "status"),
    [
        ("fake:tokens-400@50", "1", "interrupted"),  # 20 s of tokens: outlasts the grace
        ("fake:tokens-30@50", "10", "success"),  # 1.5 s: finishes within the grace
    ],
)
def test_sigterm_drains_runs_and_ends_every_stream(
    data_dir: Path, model: str, grace: str, status: str
) -> None:
    env = admin_env(data_dir, SWITCHBOARD_SHUTDOWN_GRACE_SECONDS=grace)
    server = Server(data_dir, env)
    http = httpx.Client(base_url=server.url, timeout=60)
    headers, agent = user_with_agent(http, model)
    chat = http.post("/chats/", json={"agent_id": agent["id"]}, headers=headers).json()

    events = []
    with http.stream(
        "POST",
        f"/chats/{chat['id']}/messages",
        json={"content": "go"},
        headers={**headers, "Accept": "text/event-stream"},
    ) as response:
        run_id = response.headers["location"].split("/")[2]
        for event in read_events(response.iter_lines()):
            events.append(event)
            if len(events) == 5:
                server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=30) == -signal.SIGTERM
    http.close()

    assert events[-1][1] == "end"
    assert events[-1][2]["status"] == status
    assert [e[0] for e in events] == list(range(1, len(events) + 1))

    server = Server(data_dir, env)
    run = httpx.get(f"{server.url}/runs/{run_id}", headers=headers).json()
    assert run["status"] == status
    server.stop_gracefully(signal.SIGTERM)
