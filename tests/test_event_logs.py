"""The in-process event logs: which logs are kept, and for how long."""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
import weakref

import pytest

from graphs import events
from graphs.events import EventLogs, Swept


class Clock:
    """``time.monotonic`` as the test sets it."""

    def __init__(self, now: float) -> None:
        self.now = now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock(1000.0)
    monkeypatch.setattr(time, "monotonic", lambda: clock.now)
    return clock


def _closed_log(logs: EventLogs) -> uuid.UUID:
    run_id = uuid.uuid4()
    log = logs.create(run_id)
    log.append("end", {"status": "success"})
    log.close()
    return run_id


async def test_only_the_newest_closed_logs_are_kept_and_open_ones_never_drop() -> None:
    logs = EventLogs(retention_seconds=600, max_closed=3)
    running = uuid.uuid4()
    logs.create(running)
    closed = [_closed_log(logs) for _ in range(5)]

    kept = [run_id for run_id in closed if logs.get(run_id) is not None]
    assert kept == closed[-3:]
    assert logs.get(running) is not None
    assert [e.event for e in logs.get(closed[-1]).events] == ["end"]


async def test_closed_logs_expire_after_the_retention_and_open_ones_stay(clock: Clock) -> None:
    logs = EventLogs(retention_seconds=60, max_closed=100)
    running = uuid.uuid4()
    logs.create(running)
    old = _closed_log(logs)
    clock.now += 30
    young = _closed_log(logs)

    clock.now += 31  # old closed 61 s ago, young 31 s ago
    assert logs.get(old) is None
    assert logs.get(young) is not None
    clock.now += 30
    assert logs.get(young) is None
    assert logs.get(running) is not None


async def test_a_log_closed_late_expires_after_younger_ones_closed_earlier(clock: Clock) -> None:
    """Expiry follows the order logs closed in, not the order their runs started."""
    logs = EventLogs(retention_seconds=10, max_closed=100)
    long_run = uuid.uuid4()
    long_log = logs.create(long_run)
    short = _closed_log(logs)
    clock.now += 8
    long_log.close()
    clock.now += 3  # short closed 11 s ago, the long run 3 s ago
    assert logs.get(short) is None
    assert logs.get(long_run) is long_log


async def test_a_packed_log_reads_the_same_events_and_the_same_bytes(clock: Clock) -> None:
    logs = EventLogs(retention_seconds=600)
    run_id = uuid.uuid4()
    log = logs.create(run_id)
    log.append("run", {"run_id": str(run_id)})
    # A subgraph's node name may hold spaces and digits: the packed frame keeps it whole.
    log.append("updates|a node 7:1", {"message_id": "m1", "delta": "héllo\n"})
    log.append("end", {"status": "success", "usage": {"total_tokens": 3}})
    log.close()
    before = [(e.id, e.event, e.data, e.json) for e in log.events]

    clock.now += 0.5
    logs.get(run_id)
    assert log._packed is None  # still as written: readers live at the end read it directly
    clock.now += 10
    assert logs.get(run_id) is log
    assert log._packed is not None

    assert [(e.id, e.event, e.data, e.json) for e in log.events] == before
    assert [(e.id, e.data) async for e in log.read(after=1)] == [b[:3:2] for b in before[1:]]
    assert len(log) == 3


async def test_a_packed_token_stream_is_a_fraction_of_its_bytes(clock: Clock) -> None:
    logs = EventLogs(retention_seconds=600)
    log = logs.create(uuid.uuid4())
    message_id = str(uuid.uuid4())
    for i in range(50):
        log.append("token", {"message_id": message_id, "delta": f" tok{i}"})
    log.append("end", {"status": "success", "usage": {}})
    log.close()
    raw = sum(len(e.json) for e in log.events)
    clock.now += 10
    logs.get(log.run_id)

    assert log._packed is not None and len(log._packed) < raw / 5
    events = log.since(48)
    assert [(e.id, e.event) for e in events] == [(49, "token"), (50, "token"), (51, "end")]
    assert events[1].data == {"message_id": message_id, "delta": " tok49"}
    assert log.since(51) == []


async def test_an_idle_process_expires_closed_logs_in_its_sweep(clock: Clock) -> None:
    """No run starts and nobody reads: the periodic sweep alone packs, then drops, closed logs."""
    logs = EventLogs(retention_seconds=60, max_closed=100)
    running = uuid.uuid4()
    logs.create(running)
    closed = [_closed_log(logs) for _ in range(5)]
    held = {run_id: logs._logs[run_id] for run_id in closed}

    clock.now += 2
    assert logs.sweep() == Swept(packed=5, dropped=0)
    assert all(log._packed is not None and log._events == [] for log in held.values())
    clock.now += 57  # closed 59 s ago: kept
    assert logs.sweep() == Swept(packed=0, dropped=0)
    assert set(logs._logs) == {running, *closed}

    clock.now += 2  # 61 s ago, and still no create() or get()
    assert logs.sweep() == Swept(packed=0, dropped=5)
    assert set(logs._logs) == {running}
    assert not logs._closed and not logs._unpacked
    assert logs.sweep() == Swept(packed=0, dropped=0)


async def test_a_swept_log_is_released_not_just_forgotten(clock: Clock) -> None:
    """Nothing else keeps a finished run's log (nor its events) once the sweep drops it."""
    logs = EventLogs(retention_seconds=10, max_closed=100)
    run_id = uuid.uuid4()
    log = logs.create(run_id)
    first = log.append("token", {"delta": "a"})
    log.append("end", {"status": "success"})
    log.close()
    assert log._on_close is None  # a closed log no longer points back at its EventLogs
    log_ref, event_ref = weakref.ref(log), weakref.ref(first)
    del log, first

    clock.now += 2
    assert logs.sweep() == Swept(packed=1, dropped=0)
    gc.collect()
    assert event_ref() is None  # packed: the Event objects are gone, the frames remain
    clock.now += 10
    assert logs.sweep() == Swept(packed=0, dropped=1)
    gc.collect()
    assert log_ref() is None
    assert logs._logs == {}


async def test_liveness_sweeps_idle_logs_and_gives_memory_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from graphs.runtime import liveness

    monkeypatch.setattr(events, "PACK_AFTER_SECONDS", 0.0)
    releases: list[str] = []
    monkeypatch.setattr(liveness, "release_memory", releases.append)
    logs = EventLogs(retention_seconds=0.05, max_closed=100)
    closed = [_closed_log(logs) for _ in range(3)]
    beats = liveness.Liveness(
        None, logs, {}, _nothing, heartbeat_seconds=60, stale_seconds=60,
        shutdown_grace_seconds=0, sweep_seconds=0.01, release_memory=True,
    )  # fmt: skip
    sweeper = asyncio.create_task(beats._sweep())
    try:
        for _ in range(200):
            if not logs._logs and releases:
                break
            await asyncio.sleep(0.01)
    finally:
        sweeper.cancel()
    assert all(run_id not in logs._logs for run_id in closed)
    assert releases and releases[0].endswith("run log(s) or cache entries let go")


async def test_caches_forgetting_idle_threads_is_enough_to_give_memory_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from graphs.runtime import liveness

    releases: list[str] = []
    monkeypatch.setattr(liveness, "release_memory", releases.append)
    forgotten = [0, 0, 7]  # what successive sweeps' forget_unused returns; then nothing
    beats = liveness.Liveness(
        None, EventLogs(retention_seconds=60), {}, _nothing, heartbeat_seconds=60,
        stale_seconds=60, shutdown_grace_seconds=0, sweep_seconds=0.01, release_memory=True,
        forget_unused=lambda: forgotten.pop(0) if forgotten else 0,
    )  # fmt: skip
    sweeper = asyncio.create_task(beats._sweep())
    try:
        for _ in range(200):
            if releases and not forgotten:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # later sweeps freed nothing: no more releases
    finally:
        sweeper.cancel()
    assert releases == ["7 run log(s) or cache entries let go"]


async def test_release_memory_collects_and_never_fails() -> None:
    from graphs.runtime import liveness

    class Cycle:
        def __init__(self) -> None:
            self.me = self

    Cycle()
    assert liveness.release_memory("test") >= 1
    assert liveness._trim() in (True, False, None)  # None off glibc


async def _nothing(chat_id: str) -> None:
    return None
