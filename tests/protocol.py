"""A started server with agents for the Agent Protocol tests, and what they share."""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from tests.conftest import PASSWORD
from tests.servers import ADMIN, Server, admin_env, stop_postgres

# Streams captured from the official langgraph-api 0.16.7 server (the project's reference
# samples), copied here so the framing checks run from any clone.
REFERENCE = Path(__file__).parent / "reference"
MODELS = {"t5": "fake:tokens-5", "slow": "fake:tokens-200@20", "hitl": "fake:tools"}
TOKENS = "tok0 tok1 tok2 tok3 tok4"


class Live:
    def __init__(self, server: Server, agents: dict[str, dict[str, Any]]):
        self.server = server
        self.url = server.url
        self.agents = agents

    def user(self) -> dict[str, str]:
        email = f"u-{uuid.uuid4().hex[:12]}@example.org"
        tokens = httpx.post(
            f"{self.url}/auth/register", json={"name": "U", "email": email, "password": PASSWORD}
        ).json()
        return {"Authorization": f"Bearer {tokens['access_token']}"}

    def client(self, headers: dict[str, str], **kwargs: Any) -> Any:
        return get_client(url=self.url, headers=headers, **kwargs)

    def thread(self, headers: dict[str, str], agent: str) -> str:
        response = httpx.post(
            f"{self.url}/chats/", json={"agent_id": self.agents[agent]["id"]}, headers=headers
        )
        return response.json()["id"]


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    data_dir = Path(tempfile.mkdtemp(prefix="switchboard-protocol-", dir="/tmp"))
    server = Server(data_dir, admin_env(data_dir))
    try:
        admin = httpx.post(f"{server.url}/auth/login", json=ADMIN).json()
        headers = {"Authorization": f"Bearer {admin['access_token']}"}
        agents = {}
        for name, model in MODELS.items():
            body = {"name": name, "model_name": model}
            if name == "hitl":
                body["tools_enabled"] = ["ask_human"]
            agents[name] = httpx.post(f"{server.url}/agents/", json=body, headers=headers).json()
        yield Live(server, agents)
    finally:
        server.signal(15)
        import os

        if os.environ.get("KEEP_LOG"):
            shutil.copy(server.log, os.environ["KEEP_LOG"])
        stop_postgres(data_dir / "pgdata")
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
async def http(live: Live) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
        yield client


async def parts(stream: AsyncIterator[Any]) -> list[tuple[str, Any]]:
    return [(part.event, part.data) async for part in stream]


def hi(text: str = "hi") -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def reference_events(name: str) -> list[tuple[str, Any]]:
    """(event, data) pairs of one captured stream of the official server."""
    events = []
    for block in (REFERENCE / f"langgraph-api-{name}.sse").read_text().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events
