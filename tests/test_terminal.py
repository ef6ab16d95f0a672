"""The evaluator's terminal commands (``switchboard history|export|replay``) as a user runs
them: the real console script against a started server on the test database."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import JWT_SECRET, User
from tests.servers import SWITCHBOARD, Server, beside_the_tests, clean_env, free_port
from tests.test_history import get
from tests.test_messages import MakeAgent, make_agent, open_chat
from tests.test_replays import ECHO_SIMILARITY, QUESTIONS, recorded_chat

__all__ = ["make_agent"]


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[Server]:
    with beside_the_tests(database_url, JWT_SECRET) as started:
        yield started


async def switchboard(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # Wide enough that no table cell is cut; no session of `switchboard chat` unless given.
    config = env.pop("XDG_CONFIG_HOME", None) or tempfile.mkdtemp(prefix="sb-config-", dir="/tmp")
    environment = clean_env(COLUMNS="400", XDG_CONFIG_HOME=config, **env)
    return await asyncio.to_thread(
        subprocess.run, [SWITCHBOARD, *args], env=environment, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


async def _chat(client: httpx.AsyncClient, user: User, agent_id: str, turns: int) -> str:
    chat_id = await open_chat(client, user, agent_id)
    for turn in range(turns):
        sent = await client.post(
            f"/chats/{chat_id}/messages", json={"content": f"turn {turn}"}, headers=user.headers
        )
        assert sent.status_code == 201, sent.text
    return chat_id


async def test_history_lists_every_checkpoint_newest_first(
    server: Server, client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    agent = await make_agent("fake:echo")
    chat_id = await _chat(client, user, agent["id"], 2)
    history = await client.get(
        f"/chats/{chat_id}/history", params={"limit": 200}, headers=user.headers
    )
    checkpoints = [item["checkpoint_id"] for item in history.json()["items"]]

    done = await switchboard("history", chat_id, "--url", server.url, "--token", user.access_token)

    assert done.returncode == 0, done.stderr
    positions = [done.stdout.index(checkpoint) for checkpoint in checkpoints]
    assert positions == sorted(positions)  # in the server's order: newest first
    assert f"{len(checkpoints)} checkpoint(s)" in done.stdout
    limited = await switchboard(
        "history", chat_id, "--limit", "3", "--url", server.url, "--token", user.access_token
    )
    assert [c for c in checkpoints if c in limited.stdout] == checkpoints[:3]
    assert "3 checkpoint(s)" in limited.stdout


async def test_signing_in_with_an_email_and_a_password(
    server: Server, client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    agent = await make_agent("fake:echo")
    chat_id = await _chat(client, user, agent["id"], 1)
    done = await switchboard(
        "history", chat_id, "--url", server.url, "--email", user.email,
        SWITCHBOARD_PASSWORD=user.password,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "checkpoint(s)" in done.stdout
    wrong = await switchboard(
        "history", chat_id, "--url", server.url, "--email", user.email, "--password", "nope-nope"
    )
    assert wrong.returncode == 1
    assert wrong.stderr.startswith("error: Incorrect email or password")


async def test_the_chat_clients_session_signs_the_commands_in(
    server: Server, client: httpx.AsyncClient, user: User, make_agent: MakeAgent, tmp_path: Path
) -> None:
    agent = await make_agent("fake:echo")
    chat_id = await _chat(client, user, agent["id"], 1)
    config = tmp_path / "config"
    tokens = config / "switchboard" / "tokens.json"
    tokens.parent.mkdir(parents=True)
    # What `switchboard chat` leaves behind, its access token expired: the command refreshes it.
    expired = await client.post("/auth/refresh", json={"refresh_token": user.refresh_token})
    pair = expired.json()
    tokens.write_text(json.dumps({"servers": {server.url: {
        "email": user.email, "access_token": "expired.not-a.token",
        "refresh_token": pair["refresh_token"], "expires_at": 1,
    }}}))  # fmt: skip
    done = await switchboard("history", chat_id, "--url", server.url, XDG_CONFIG_HOME=str(config))
    assert done.returncode == 0, done.stderr
    assert "chat " + chat_id in done.stdout
    kept = json.loads(tokens.read_text())["servers"][server.url]
    # Rotated: the old refresh token is spent, the new pair is kept for the next command.
    assert kept["refresh_token"] != pair["refresh_token"]
    me = await client.get("/users/me", headers={"Authorization": f"Bearer {kept['access_token']}"})
    assert me.json()["email"] == user.email
    # A session is kept per server URL: another URL (here the same server by another name)
    # does not get it.
    other_url = server.url.replace("127.0.0.1", "localhost")
    elsewhere = await switchboard(
        "history", chat_id, "--url", other_url, XDG_CONFIG_HOME=str(config)
    )
    assert elsewhere.returncode == 1
    assert elsewhere.stderr.startswith("error: sign in with --token")


async def test_refusals_are_one_line_with_the_servers_code(
    server: Server, client: httpx.AsyncClient, user: User, other_user: User,
    make_agent: MakeAgent,
) -> None:  # fmt: skip
    agent = await make_agent("fake:echo")
    chat_id = await _chat(client, user, agent["id"], 1)

    stranger = await switchboard(
        "history", chat_id, "--url", server.url, "--token", other_user.access_token
    )
    assert (stranger.returncode, stranger.stderr) == (1, "error: Chat not found (not_found)\n")
    unsigned = await switchboard("history", chat_id, "--url", server.url)
    assert unsigned.returncode == 1
    assert unsigned.stderr.startswith("error: sign in with --token")
    nobody = f"http://127.0.0.1:{free_port()}"
    unreachable = await switchboard("history", chat_id, "--url", nobody, "--token", "x")
    assert (unreachable.returncode, unreachable.stderr) == (
        1, f"error: cannot reach {nobody} (ConnectError)\n"
    )  # fmt: skip
    bad_arguments = await switchboard("replay", chat_id, "--url", server.url)
    assert bad_arguments.returncode == 2  # neither --agent nor --model


async def test_replay_follows_to_the_end_and_prints_the_comparison(
    server: Server, client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    agent = await make_agent("fake:tools", ["calculator"], name="Calculating")
    await make_agent("fake:echo", name="Parrot")
    chat_id = await recorded_chat(client, user, agent, QUESTIONS)

    done = await switchboard(
        "replay", chat_id, "--agent", "parrot", "--url", server.url, "--token", user.access_token
    )

    assert done.returncode == 0, done.stderr
    replay_id = done.stdout.split()[1]
    report = await get(client, user, f"/replays/{replay_id}")
    assert report["status"] == "done"
    assert f"replay {replay_id}: done, 3/3 turns" in done.stdout
    rows = [line for line in done.stdout.splitlines() if line.startswith("│ ")]
    assert len(rows) == 3
    for row, question, score in zip(rows, QUESTIONS, ECHO_SIMILARITY, strict=True):
        cells = [cell.strip() for cell in row.strip("│ ").split("│")]
        assert cells[1] == question
        assert cells[3] == f"You said: {question}"
        assert cells[4] == "calculator → -"
        assert cells[5] == f"{score:.2f}"


async def test_replay_by_model_without_waiting_and_refusals(
    server: Server, client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    agent = await make_agent("fake:echo")
    chat_id = await recorded_chat(client, user, agent, ["hello"])
    connection = ("--url", server.url, "--token", user.access_token)

    started = await switchboard(
        "replay", chat_id, "--model", "fake:tools", "--no-wait", *connection
    )
    assert started.returncode == 0, started.stderr
    assert started.stdout.startswith("replay ") and started.stdout.endswith(" started\n")
    replays = await get(client, user, f"/chats/{chat_id}/replays")
    assert [r["id"] for r in replays["items"]] == [started.stdout.split()[1]]
    assert replays["items"][0]["model_name"] == "fake:tools"

    unknown = await switchboard("replay", chat_id, "--agent", "nobody", *connection)
    assert (unknown.returncode, unknown.stderr) == (1, "error: no agent named 'nobody'\n")
    bad_model = await switchboard("replay", chat_id, "--model", "acme:x", *connection)
    assert bad_model.returncode == 1
    assert bad_model.stderr.startswith("error: model_name: ")


def _without_export_time(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in record.items() if k != "exported_at"} for record in records]


async def test_export_writes_what_the_server_exports(
    server: Server, client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    agent = await make_agent("fake:tools", ["calculator"])
    chat_id = await recorded_chat(client, user, agent, QUESTIONS[:2])
    connection = ("--url", server.url, "--token", user.access_token)
    served = await client.get(f"/chats/{chat_id}/export", headers=user.headers)
    expected = _without_export_time([json.loads(line) for line in served.text.splitlines()])
    assert [r["type"] for r in expected] == ["chat"] + ["message"] * (len(expected) - 1)

    printed = await switchboard("export", chat_id, *connection)
    assert printed.returncode == 0, printed.stderr
    lines = [json.loads(line) for line in printed.stdout.splitlines()]
    assert _without_export_time(lines) == expected

    target = Path(tempfile.mkdtemp(dir="/tmp")) / "chat.json"
    try:
        written = await switchboard(
            "export", chat_id, "--format", "json", "-o", str(target), *connection
        )
        assert written.returncode == 0, written.stderr
        assert written.stdout == f"wrote {target} ({target.stat().st_size} bytes)\n"
        document = json.loads(target.read_text())
        messages = document.pop("messages")
        assert _without_export_time([document, *messages]) == expected
    finally:
        shutil.rmtree(target.parent)
