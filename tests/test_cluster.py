"""Several processes: two API processes and a worker sharing Postgres and Redis.

API ``a`` only queues runs (``SWITCHBOARD_EXECUTE_RUNS=false``), so the worker executes what is
posted there; API ``b`` executes its own runs. Every process is real, on free ports, with Redis
from Debian's package. Event logs live in Redis Streams, so any API reads any run.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from redis.asyncio import Redis

from graphs.redis_logs import RedisEventLogs, RedisReader, stream_key
from storage.db import EmbeddedPostgres
from tests.conftest import JWT_SECRET, PASSWORD
from tests.servers import ADMIN, Server, Worker, clean_env, redis_server, stop_postgres
from tests.sse import read_events

SLOW = "fake:tokens-200@20"  # about 4 s: long enough to act on while it streams
FAST = "fake:tokens-200@1"
EVENTS = 200 + 4  # run, message (user), 200 tokens, message (agent), end


class Cluster:
    def __init__(self, stack: ExitStack, data_dir: Path, database_url: str):
        self.data_dir = data_dir
        self.redis_url = stack.enter_context(redis_server(data_dir))
        self.env = clean_env(
            DATABASE_URL=database_url,
            REDIS_URL=self.redis_url,
            SWITCHBOARD_JWT_SECRET=JWT_SECRET,
            SWITCHBOARD_ADMIN_EMAIL=ADMIN["email"],
            SWITCHBOARD_ADMIN_PASSWORD=ADMIN["password"],
            SWITCHBOARD_HEARTBEAT_SECONDS="0.5",
            SWITCHBOARD_SHUTDOWN_GRACE_SECONDS="1",
        )
        self.database_url = database_url
        a = Server(data_dir, {**self.env, "SWITCHBOARD_EXECUTE_RUNS": "false"})
        stack.callback(a.signal, 15)
        b = Server(data_dir, self.env)
        stack.callback(b.signal, 15)
        self.worker = self.start_worker()
        stack.callback(lambda: self.worker.stop())
        self.a = stack.enter_context(httpx.Client(base_url=a.url, timeout=30))
        self.b = stack.enter_context(httpx.Client(base_url=b.url, timeout=30))
        admin = self.a.post("/auth/login", json=ADMIN).json()
        admin_headers = {"Authorization": f"Bearer {admin['access_token']}"}
        self.agents = {
            model: self.a.post(
                "/agents/", json={"name": model, "model_name": model}, headers=admin_headers
            ).json()["id"]
            for model in (SLOW, FAST, "fake:echo")
        }

    def start_worker(self) -> Worker:
        return Worker(self.data_dir, self.env)

    def user(self) -> dict[str, str]:
        email = f"u-{uuid.uuid4().hex[:12]}@example.org"
        tokens = self.a.post(
            "/auth/register", json={"name": "U", "email": email, "password": PASSWORD}
        ).json()
        return {"Authorization": f"Bearer {tokens['access_token']}"}

    def chat(self, headers: dict[str, str], model: str) -> str:
        response = self.a.post("/chats/", json={"agent_id": self.agents[model]}, headers=headers)
        return response.json()["id"]

    def worker_of(self, run_id: str) -> str | None:
        with psycopg.connect(self.database_url) as conn:
            row = conn.execute("SELECT worker_id FROM runs WHERE id = %s", (run_id,)).fetchone()
        assert row is not None
        return row[0]


@pytest.fixture(scope="module")
def cluster(embedded_pg: EmbeddedPostgres) -> Iterator[Cluster]:
    name = f"switchboard_cluster_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(embedded_pg.uri(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    data_dir = Path(tempfile.mkdtemp(prefix="switchboard-cluster-", dir="/tmp"))
    try:
        with ExitStack() as stack:
            yield Cluster(stack, data_dir, embedded_pg.uri(name))
    finally:
        stop_postgres(data_dir / "pgdata")
        with psycopg.connect(embedded_pg.uri(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


SSE = {"Accept": "text/event-stream"}


def post_stream(http: httpx.Client, chat_id: str, headers: dict[str, str], **body: Any):
    return http.stream(
        "POST",
        f"/chats/{chat_id}/messages",
        json={"content": "go", **body},
        headers={**headers, **SSE},
    )


def replay(http: httpx.Client, run_id: str, headers: dict[str, str], after: int | None = None):
    extra = {"Last-Event-ID": str(after)} if after is not None else {}
    with http.stream("GET", f"/runs/{run_id}/stream", headers={**headers, **extra}) as response:
        assert response.status_code == 200, response.read()
        return list(read_events(response.iter_lines()))


def test_a_stream_started_on_one_api_is_resumed_on_the_other(cluster: Cluster) -> None:
    headers = cluster.user()
    rng = random.Random(7)
    pairs = [(cluster.a, cluster.b), (cluster.b, cluster.a)] * 10
    executors = set()
    for first, second in pairs:
        chat_id = cluster.chat(headers, FAST)
        cut = rng.randint(1, EVENTS - 1)
        seen = []
        with post_stream(first, chat_id, headers) as response:
            run_id = response.headers["Content-Location"].rsplit("/", 1)[1]
            for event in read_events(response.iter_lines()):
                seen.append(event)
                if len(seen) == cut:
                    break
        rest = replay(second, run_id, headers, after=seen[-1][0])
        whole = replay(second, run_id, headers)
        assert seen + rest == whole
        assert [e[0] for e in whole] == list(range(1, EVENTS + 1))
        assert whole[-1][1:] == ("end", whole[-1][2])
        assert whole[-1][2]["status"] == "success"
        executors.add(cluster.worker_of(run_id) == cluster.worker.worker_id)
    # Runs posted on "a" ran on the worker, those posted on "b" on "b" itself.
    assert executors == {True, False}


def test_the_worker_answers_a_message_posted_to_an_api_that_only_queues(
    cluster: Cluster,
) -> None:
    headers = cluster.user()
    chat_id = cluster.chat(headers, "fake:echo")
    response = cluster.a.post(
        f"/chats/{chat_id}/messages", json={"content": "hello there"}, headers=headers
    )
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["status"] == "success"
    assert [(m["sender"], m["content"]) for m in answer["messages"]] == [
        ("user", "hello there"),
        ("agent", "You said: hello there"),
    ]
    assert cluster.worker_of(answer["run_id"]) == cluster.worker.worker_id
    history = cluster.b.get(f"/chats/{chat_id}/messages", headers=headers).json()["items"]
    assert [m["content"] for m in history] == ["hello there", "You said: hello there"]


def test_cancel_through_another_api_stops_the_workers_run(cluster: Cluster) -> None:
    headers = cluster.user()
    chat_id = cluster.chat(headers, SLOW)
    events = []
    with post_stream(cluster.a, chat_id, headers) as response:
        run_id = response.headers["Content-Location"].rsplit("/", 1)[1]
        stream = read_events(response.iter_lines())
        for event in stream:
            events.append(event)
            if event[1] == "token":
                break
        cancel = cluster.b.post(f"/runs/{run_id}/cancel", headers=headers)
        events.extend(stream)
    assert cancel.status_code == 200
    assert cancel.json() == {"run_id": run_id, "status": "cancelled", "cancelled": True}
    assert events[-1][1:] == ("end", {"status": "cancelled", "usage": {}})
    tokens = sum(1 for e in events if e[1] == "token")
    assert 1 <= tokens < 200
    # The chat takes the next message at once, on either API.
    after = cluster.b.post(f"/chats/{chat_id}/messages", json={"content": "again"}, headers=headers)
    assert after.status_code == 201
    assert after.json()["status"] == "success"


def test_two_concurrent_posts_through_two_apis_one_is_rejected(cluster: Cluster) -> None:
    headers = cluster.user()
    chat_id = cluster.chat(headers, SLOW)

    def post(http: httpx.Client) -> httpx.Response:
        return http.post(f"/chats/{chat_id}/messages", json={"content": "x"}, headers=headers)

    with ThreadPoolExecutor(2) as pool:
        responses = list(pool.map(post, [cluster.a, cluster.b]))
    codes = sorted(r.status_code for r in responses)
    assert codes == [201, 409]
    winner = next(r for r in responses if r.status_code == 201).json()["run_id"]
    loser = next(r for r in responses if r.status_code == 409).json()
    assert loser["detail"] == f"The chat already has an active run: {winner}"


@pytest.mark.parametrize("strategy", ["interrupt", "rollback"])
def test_interrupt_and_rollback_reach_a_run_in_another_process(
    cluster: Cluster, strategy: str
) -> None:
    headers = cluster.user()
    chat_id = cluster.chat(headers, SLOW)
    first = []
    with post_stream(cluster.a, chat_id, headers, content="first") as response:
        stream = read_events(response.iter_lines())
        for event in stream:
            first.append(event)
            if event[1] == "token":
                break
        second = cluster.b.post(
            f"/chats/{chat_id}/messages",
            json={"content": "second", "multitask_strategy": strategy},
            headers=headers,
        )
        first.extend(stream)
    assert first[-1][2]["status"] == "interrupted"
    assert second.status_code == 201, second.text
    assert second.json()["status"] == "success"
    history = cluster.a.get(f"/chats/{chat_id}/messages", headers=headers).json()["items"]
    users = [m["content"] for m in history if m["sender"] == "user"]
    assert users == (["second"] if strategy == "rollback" else ["first", "second"])


def test_queued_runs_are_claimed_by_the_worker_in_order(cluster: Cluster) -> None:
    headers = cluster.user()
    chat_id = cluster.chat(headers, "fake:echo")
    with ThreadPoolExecutor(4) as pool:
        futures = []
        for i in range(4):
            body = {"content": f"m{i}", "multitask_strategy": "enqueue"}
            futures.append(
                pool.submit(
                    cluster.a.post, f"/chats/{chat_id}/messages", json=body, headers=headers
                )
            )
        answers = [f.result() for f in futures]
    assert [a.status_code for a in answers] == [201] * 4
    assert all(a.json()["status"] == "success" for a in answers)
    history = cluster.b.get(f"/chats/{chat_id}/messages", headers=headers).json()["items"]
    contents = [m["content"] for m in history]
    # Each answer directly follows its own message: runs never overlapped.
    assert [f"You said: {c}" for c in contents[0::2]] == contents[1::2]
    assert sorted(contents[0::2]) == ["m0", "m1", "m2", "m3"]
    with psycopg.connect(cluster.database_url) as conn:
        rows = conn.execute(
            "SELECT input->>'content', started_at FROM runs WHERE chat_id = %s "
            "ORDER BY created_at, id",
            (chat_id,),
        ).fetchall()
    # FIFO: runs started in the order they were queued, and that is the history's order.
    assert [r[0] for r in rows] == contents[0::2]
    assert [r[1] for r in rows] == sorted(r[1] for r in rows)


def test_a_killed_worker_leaves_no_run_behind(cluster: Cluster) -> None:
    headers = cluster.user()
    chat_id = cluster.chat(headers, SLOW)
    events = []
    with post_stream(cluster.a, chat_id, headers, content="doomed") as response:
        run_id = response.headers["Content-Location"].rsplit("/", 1)[1]
        stream = read_events(response.iter_lines())
        for event in stream:
            events.append(event)
            if event[1] == "token" and sum(e[1] == "token" for e in events) == 5:
                break
        cluster.worker.kill()
        # Recovery (any process's heartbeat) sees the dead pid and ends the stream.
        events.extend(stream)
    assert events[-1][1:] == ("end", {"status": "interrupted", "usage": {}})
    assert [e[0] for e in events] == list(range(1, len(events) + 1))
    run = cluster.b.get(f"/runs/{run_id}", headers=headers).json()
    assert run["status"] == "interrupted"

    cluster.worker = cluster.start_worker()
    response = cluster.a.post(
        f"/chats/{chat_id}/messages", json={"content": "next"}, headers=headers
    )
    assert response.status_code == 201
    assert response.json()["status"] == "success"
    history = cluster.a.get(f"/chats/{chat_id}/messages", headers=headers).json()["items"]
    assert [m["content"] for m in history if m["sender"] == "user"] == ["doomed", "next"]


# The Redis backend on its own, in this process.


@pytest.fixture
async def redis(data_dir: Path) -> Any:
    with redis_server(data_dir) as url:
        client = Redis.from_url(url, decode_responses=True)
        yield client
        await client.aclose()


async def test_redis_logs_mirror_the_local_log_and_expire_after_end(redis: Redis) -> None:
    async def active(_: uuid.UUID) -> bool:
        return True

    logs = RedisEventLogs(redis, active, retention_seconds=120)
    run_id = uuid.uuid4()
    run_log = logs.create(run_id)
    for i in range(300):
        run_log.append("token", {"delta": f"t{i}", "text": "é"})
    run_log.append("end", {"status": "success", "usage": {}})
    run_log.close()
    reader = RedisReader(redis, run_id, lambda: active(run_id))
    remote = [event async for event in reader.read(after=17)]
    assert remote == run_log.events[17:]
    ttl = await redis.ttl(stream_key(run_id))
    assert 0 < ttl <= 120


async def test_a_reader_resumed_at_or_past_the_end_gets_the_end_again(redis: Redis) -> None:
    async def active(_: uuid.UUID) -> bool:
        return True

    logs = RedisEventLogs(redis, active, retention_seconds=60)
    run_id = uuid.uuid4()
    run_log = logs.create(run_id)
    run_log.append("run", {})
    run_log.append("end", {"status": "success", "usage": {}})
    run_log.close()
    for _ in range(100):  # the flusher copies the log to Redis in the background
        if await redis.xlen(stream_key(run_id)) == 2:
            break
        await asyncio.sleep(0.02)
    for after in (2, 3, 10**18):
        reader = RedisReader(redis, run_id, lambda: active(run_id))
        events = [(e.id, e.event) async for e in reader.read(after=after)]
        assert events == [(2, "end")]
    reader = RedisReader(redis, run_id, lambda: active(run_id))
    assert [e.id async for e in reader.read(after=1)] == [2]


async def test_a_dead_runs_stream_gets_one_end(redis: Redis) -> None:
    async def inactive(_: uuid.UUID) -> bool:
        return False

    logs = RedisEventLogs(redis, inactive, retention_seconds=60)
    run_id = uuid.uuid4()
    key = stream_key(run_id)
    await redis.xadd(key, {"e": "run", "d": "{}"}, id="0-1")
    await redis.xadd(key, {"e": "token", "d": '{"delta":"a"}'}, id="0-2")
    await logs.end_orphan(run_id, "interrupted")
    await logs.end_orphan(run_id, "interrupted")
    reader = await logs.open(run_id, active=False)
    assert reader is not None
    events = [(e.id, e.event, e.data) async for e in reader.read()]
    assert events == [
        (1, "run", {}),
        (2, "token", {"delta": "a"}),
        (3, "end", {"status": "interrupted", "usage": {}}),
    ]
    # Expired (or never written) and no longer active: nothing to read.
    assert await logs.open(uuid.uuid4(), active=False) is None


def test_an_agent_protocol_run_is_executed_by_the_worker(cluster: Cluster) -> None:
    headers = cluster.user()
    chat_id = cluster.chat(headers, "fake:echo")
    body = {"assistant_id": cluster.agents["fake:echo"], "input": {"messages": [
        {"role": "user", "content": "via the queue"}]}, "stream_mode": ["updates"]}  # fmt: skip
    with cluster.a.stream(
        "POST", f"/threads/{chat_id}/runs/stream", json=body, headers=headers
    ) as response:
        events = list(read_events(response.iter_lines()))
    assert [e[1] for e in events] == ["metadata", "updates", "end"]
    assert events[1][2]["model"]["messages"][0]["content"] == "You said: via the queue"
    assert cluster.worker_of(events[0][2]["run_id"]) == cluster.worker.worker_id


def test_a_replay_posted_to_an_api_that_only_queues_runs_on_the_worker_with_its_model(
    cluster: Cluster,
) -> None:
    headers = cluster.user()
    chat_id = cluster.chat(headers, "fake:echo")
    for content in ("one", "two"):
        response = cluster.a.post(
            f"/chats/{chat_id}/messages", json={"content": content}, headers=headers
        )
        assert response.json()["status"] == "success", response.text
    created = cluster.a.post(
        f"/chats/{chat_id}/replays", json={"model_name": "fake:tokens-3"}, headers=headers
    )
    assert created.status_code == 202, created.text
    replay_id = created.json()["id"]
    for _ in range(600):
        done = cluster.b.get(f"/replays/{replay_id}", headers=headers).json()
        if done["status"] not in ("pending", "running"):
            break
        time.sleep(0.05)
    assert (done["status"], done["progress"]) == ("done", {"done": 2, "total": 2})
    # The override travels in the run's input, so the worker that claims it honours it.
    assert [t["new"]["content"] for t in done["turns"]] == ["tok0 tok1 tok2"] * 2
    for turn in done["turns"]:
        run = cluster.b.get(f"/runs/{turn['run_id']}", headers=headers).json()
        assert (run["status"], run["model_name"]) == ("success", "fake:tokens-3")
        assert cluster.worker_of(turn["run_id"]) == cluster.worker.worker_id
