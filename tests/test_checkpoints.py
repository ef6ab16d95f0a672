"""The checkpointer on the real Postgres: rebuilding long threads, and the decoded-blob cache."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import langgraph.checkpoint.postgres.aio as postgres_saver
import psycopg
import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from graphs.build import build_graph
from graphs.spec import AgentContext, AgentSpec
from storage import checkpoints
from storage.checkpoints import CachingSerializer, Checkpointer
from storage.db import open_pool

SPEC = AgentSpec(
    id=uuid.uuid4(), version=1, slug="cp", name="cp", system_prompt="",
    model_name="fake:echo", tools=(),
)  # fmt: skip
CONTEXT = AgentContext(user_id="u", chat_id="c", profile=None)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Any]:
    pool = await open_pool(database_url, min_size=1, max_size=2)
    yield pool
    await pool.close()


async def _thread(graph: Any, turns: int) -> dict[str, Any]:
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    for i in range(turns):
        await graph.ainvoke({"messages": [HumanMessage(f"m{i}")]}, config, context=CONTEXT)
    return config


def _expected(turns: int) -> list[str]:
    return [text for i in range(turns) for text in (f"m{i}", f"You said: m{i}")]


async def test_the_page_size_of_the_walk_back_to_a_snapshot_is_ours() -> None:
    assert postgres_saver._DELTA_PAGE_SIZE == checkpoints.DELTA_PAGE_SIZE == 128


async def test_a_walk_over_many_pages_rebuilds_the_same_messages(
    pool: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the page size, the walk back to the snapshot reads the whole history."""
    graph = build_graph(SPEC, Checkpointer(pool))
    config = await _thread(graph, 12)
    monkeypatch.setattr(postgres_saver, "_DELTA_PAGE_SIZE", 2)
    fresh = build_graph(SPEC, Checkpointer(pool))  # nothing cached: decodes from Postgres
    messages = (await fresh.aget_state(config)).values["messages"]
    assert [m.text for m in messages] == _expected(12)


async def test_a_blob_of_messages_is_decoded_once_for_every_later_read(
    pool: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = await _thread(build_graph(SPEC, Checkpointer(pool)), 40)  # past one snapshot
    decoded: list[int] = []
    original = JsonPlusSerializer.loads_typed

    def counting(self: JsonPlusSerializer, data: tuple[str, bytes]) -> Any:
        decoded.append(len(data[1] or b""))
        return original(self, data)

    monkeypatch.setattr(JsonPlusSerializer, "loads_typed", counting)
    reader = build_graph(SPEC, Checkpointer(pool))
    first = (await reader.aget_state(config)).values["messages"]
    big = [n for n in decoded if n >= checkpoints.CACHE_MIN_BYTES]
    assert max(big) > 10_000  # the snapshot of the 80 messages was among them
    decoded.clear()
    second = (await reader.aget_state(config)).values["messages"]

    assert [n for n in decoded if n >= checkpoints.CACHE_MIN_BYTES] == []
    assert [m.text for m in second] == _expected(40)
    assert [m.id for m in second] == [m.id for m in first]


async def test_the_cache_keeps_only_messages_and_stays_within_its_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(checkpoints, "CACHE_BYTES", 5_000)
    serde = CachingSerializer()
    big_dict = serde.dumps_typed({"x": "y" * 1_000})
    assert serde.decoded.entries == {}
    assert serde.loads_typed(big_dict) == {"x": "y" * 1_000}
    assert serde.decoded.entries == {}  # not messages: decoded as usual, every time

    blobs = [serde.dumps_typed([HumanMessage("w" * 1_000, id=str(i))]) for i in range(10)]
    assert 0 < serde.decoded.bytes <= 5_000
    newest = serde.loads_typed(blobs[-1])
    assert newest[0].id == "9"
    assert serde.loads_typed(blobs[-1]) is newest
    oldest = serde.loads_typed(blobs[0])  # evicted long ago: decoded again, correctly
    assert oldest[0].id == "0" and oldest[0].text == "w" * 1_000
    assert serde.decoded.bytes <= 5_000


async def test_what_no_run_or_read_used_for_a_while_is_forgotten(
    pool: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a load, the sweep forgets idle threads' cached values and decoded blobs (they pin
    the heap the load grew); a thread in use keeps its own."""
    now = [1_000.0]
    monkeypatch.setattr(checkpoints.time, "monotonic", lambda: now[0])
    saver = Checkpointer(pool)
    serde = saver.serde
    assert isinstance(serde, CachingSerializer)
    graph = build_graph(SPEC, saver)

    async def used(turns: int) -> dict[str, Any]:
        config = await _thread(graph, turns)
        state = await graph.aget_state(config)  # what a run leaves warm (graphs/runtime)
        saver.remember(dict(state.config), state.values)
        return config

    idle = await used(3)
    idle_entries = len(serde.decoded.entries)
    assert idle_entries > 0
    now[0] += 100
    busy = await used(3)
    busy_entries = len(serde.decoded.entries) - idle_entries
    assert busy_entries > 0
    now[0] += 10

    assert saver.forget_unused(50) == 1 + idle_entries
    assert list(saver._warm) == [busy["configurable"]["thread_id"]]
    assert len(serde.decoded.entries) == busy_entries
    assert all(used == 1_100.0 for _, _, used in serde.decoded.entries.values())
    assert saver.forget_unused(50) == 0
    # Forgotten is not lost: the idle thread is rebuilt from Postgres.
    messages = (await graph.aget_state(idle)).values["messages"]
    assert [m.text for m in messages] == _expected(3)
    now[0] += 100
    cached = len(serde.decoded.entries)
    assert saver.forget_unused(50) == cached + 1
    assert saver._warm == {} and serde.decoded.entries == {} and serde.decoded.bytes == 0


class _RecordingExecutor(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.submitted: list[str] = []

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.submitted.append(getattr(fn, "__qualname__", repr(fn)))
        return super().submit(fn, *args, **kwargs)


async def test_a_turn_runs_on_the_event_loop_without_thread_hops(pool: Any) -> None:
    """The saver's encoding and decoding and LangSmith's span set-up (tracing off) happen on
    the loop: a worker thread per write, read and model call cost more than the work."""
    graph = build_graph(SPEC, Checkpointer(pool))
    loop = asyncio.get_running_loop()
    recording = _RecordingExecutor()
    previous = loop._default_executor  # type: ignore[attr-defined]
    loop.set_default_executor(recording)
    try:
        config = await _thread(graph, 2)  # the second turn reads the first one's checkpoint
        messages = (await graph.aget_state(config)).values["messages"]
    finally:
        loop._default_executor = previous  # type: ignore[attr-defined]
        recording.shutdown()
    assert [m.text for m in messages] == _expected(2)
    assert recording.submitted == []


async def test_checkpoint_io_of_one_thread_does_not_wait_for_another_threads(
    pool: Any, database_url: str
) -> None:
    """No per-saver lock: a write blocked in Postgres leaves every other thread's reads free."""
    saver = Checkpointer(pool)
    graph = build_graph(SPEC, saver)
    config = await _thread(graph, 1)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as blocker:
        async with blocker.transaction():
            await blocker.execute("LOCK TABLE checkpoint_writes IN EXCLUSIVE MODE")
            other = {"configurable": {"thread_id": str(uuid.uuid4()), "checkpoint_ns": ""}}
            latest = await saver.aget_tuple(config)
            assert latest is not None
            blocked = asyncio.create_task(
                saver.aput_writes(latest.config, [("messages", [HumanMessage("x")])], "t1")
            )
            await asyncio.sleep(0.1)
            assert not blocked.done()  # waiting for the table lock, in Postgres
            # Reads of this thread and of another go ahead meanwhile.
            again = await asyncio.wait_for(saver.aget_tuple(config), 5)
            assert again is not None and again.checkpoint["id"] == latest.checkpoint["id"]
            assert await asyncio.wait_for(saver.aget_tuple(other), 5) is None
        await asyncio.wait_for(blocked, 5)
    assert blocked.exception() is None


@pytest.fixture
def walks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Thread ids whose messages were rebuilt from Postgres (the walk back to a snapshot)."""
    seen: list[str] = []
    original = postgres_saver.AsyncPostgresSaver.aget_delta_channel_history

    async def counting(self: Any, *, config: Any, channels: Any) -> Any:
        seen.append(config["configurable"]["thread_id"])
        return await original(self, config=config, channels=channels)

    monkeypatch.setattr(postgres_saver.AsyncPostgresSaver, "aget_delta_channel_history", counting)
    return seen


async def _remembering_turn(graph: Any, saver: Checkpointer, config: Any, text: str) -> None:
    """A turn as the run manager streams it: every checkpoint's values are remembered."""
    async for mode, payload in graph.astream(
        {"messages": [HumanMessage(text, id=str(uuid.uuid4()))]},
        config,
        context=CONTEXT,
        stream_mode=["checkpoints", "updates"],
    ):
        if mode == "checkpoints":
            saver.remember(payload["config"], payload["values"])


async def test_a_run_starts_from_the_values_the_last_run_left(pool: Any, walks: list[str]) -> None:
    saver = Checkpointer(pool)
    graph = build_graph(SPEC, saver)
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    for i in range(3):
        await _remembering_turn(graph, saver, config, f"m{i}")
    warm = (await graph.aget_state(config)).values["messages"]
    assert walks == []  # neither the second and third runs nor the read rebuilt anything

    cold = (await build_graph(SPEC, Checkpointer(pool)).aget_state(config)).values["messages"]
    assert walks == [config["configurable"]["thread_id"]]
    assert [(m.id, m.text) for m in warm] == [(m.id, m.text) for m in cold]
    assert [m.text for m in warm] == _expected(3)

    await saver.adelete_thread(config["configurable"]["thread_id"])
    assert config["configurable"]["thread_id"] not in saver._warm
    assert (await graph.aget_state(config)).values == {}


async def test_a_checkpoint_written_elsewhere_is_rebuilt_from_postgres(
    pool: Any, walks: list[str]
) -> None:
    """Another process's run moves the thread past what this one remembers."""
    here, there = Checkpointer(pool), Checkpointer(pool)
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    await _remembering_turn(build_graph(SPEC, here), here, config, "m0")
    await _remembering_turn(build_graph(SPEC, there), there, config, "m1")
    walks.clear()
    messages = (await build_graph(SPEC, here).aget_state(config)).values["messages"]
    assert [m.text for m in messages] == _expected(2)
    assert walks == [config["configurable"]["thread_id"]]


async def test_remembered_threads_stay_within_their_bounds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(checkpoints, "WARM_THREADS", 3)
    monkeypatch.setattr(checkpoints, "WARM_ITEMS", 30)
    saver = Checkpointer(None)
    for i in range(5):
        config = {"configurable": {"thread_id": f"t{i}", "checkpoint_id": f"c{i}"}}
        saver.remember(config, {"messages": [HumanMessage("x")] * 5})
    assert list(saver._warm) == ["t2", "t3", "t4"]  # the three newest threads
    saver.remember(
        {"configurable": {"thread_id": "big", "checkpoint_id": "c"}},
        {"messages": [HumanMessage("x")] * 20},
    )
    assert list(saver._warm) == ["t4", "big"]  # t3 too would be 33 items, over 30
    assert saver._warm_items == 6 + 21
    # A subgraph's checkpoint is not the thread's.
    saver.remember(
        {"configurable": {"thread_id": "t9", "checkpoint_id": "c", "checkpoint_ns": "x"}}, {}
    )
    assert "t9" not in saver._warm
