"""When runs start: one run at a time per chat, the multitask strategies, the queue, stops.

Postgres decides, not memory: a run is inserted ``running`` only when its chat is free (one
statement, under the chat's advisory lock, with a unique index on running runs), otherwise queued
(``pending``) or refused. A queued run waits in the process that queued it, or, with workers, in
Postgres until a worker claims it. A stop finds a run wherever it is: a task of this process, a
queued run nobody claimed (ended here), or another process's run (told over Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any
from uuid import UUID

from psycopg.types.json import Jsonb

from graphs.events import EventLogs, EventSource, read_all
from graphs.runtime.execution import Executor
from graphs.runtime.inputs import (
    InvalidRunInput,
    NativeInput,
    ProtocolInput,
    model_override,
    parse_input,
)
from graphs.runtime.liveness import Liveness
from graphs.runtime.threads import Threads
from graphs.runtime.types import ChatBusy, ShuttingDown, Starts, chat_gone_if_deleted
from graphs.spec import AgentContext
from storage import agents as agents_store
from storage import chats as chats_store
from storage import runs as runs_store
from storage.db import PoolType
from storage.rows import AgentRow, ChatRow, RunRow
from storage.types import MultitaskStrategy, StopStatus

if TYPE_CHECKING:
    from graphs.redis_logs import ControlBus

log = logging.getLogger(__name__)


class Scheduler:
    """Starts, queues, claims and stops runs for one process."""

    def __init__(
        self,
        pool: PoolType,
        threads: Threads,
        logs: EventLogs,
        executor: Executor,
        liveness: Liveness,
        *,
        bus: ControlBus | None,
        execute: bool,
    ) -> None:
        self.pool = pool
        self.threads = threads
        self.logs = logs
        self.executor = executor
        self.liveness = liveness
        self.bus = bus
        self.execute = execute
        self.quotas: dict[str, Any] = {}  # each role's, set by the API (storage/quotas.py)
        # Set when a queued run may have become claimable (queued, or a chat or slot freed).
        self._work_available = asyncio.Event()
        self._chat_freed: dict[str, asyncio.Event] = {}
        # Told of every run recorded in this process (a thread's stream waits for its next).
        self.starts = Starts()
        executor.wait_turn = self.wait_turn
        executor.on_ended = self.chat_is_free

    async def start(
        self,
        chat: ChatRow,
        agent: AgentRow,
        user_id: UUID,
        run_input: NativeInput | ProtocolInput,
        strategy: MultitaskStrategy,
        webhook_url: str | None = None,
    ) -> tuple[RunRow, EventSource]:
        if not self.liveness.accepting:
            raise ShuttingDown()
        spec = self.threads.spec(agent, model_override(run_input))
        if strategy in ("interrupt", "rollback"):
            async with self.pool.connection() as conn:
                running = await runs_store.running_run_id(conn, chat["id"])
            if running is not None:
                await self.stop(running, "interrupted", rollback=strategy == "rollback")
        worker_id = self.liveness.worker_id if self.execute else None
        # The insert's parameters (passed as keywords, beside the ``bool`` flags).
        fields: dict[str, Any] = {
            "chat_id": chat["id"],
            "user_id": user_id,
            "agent_id": agent["id"],
            "agent_version": agent["version"],
            "model_name": spec.model_name,
            "multitask_strategy": strategy,
            # Everything a worker needs to execute the run without this request.
            "input": Jsonb(run_input.model_dump(mode="json")),
            "worker_id": worker_id,
            "webhook_url": webhook_url,
            "quotas": self.quotas,
        }
        async with self.pool.connection() as conn:
            queue = strategy == "enqueue"
            with chat_gone_if_deleted():
                if not self.execute:
                    run = await runs_store.insert_pending(conn, if_free=not queue, **fields)
                else:
                    run = await runs_store.insert_starting(conn, queue=queue, **fields)
                    if run is None and queue:
                        # A worker started a queued run of this chat meanwhile: queue behind it.
                        run = await runs_store.insert_pending(conn, **fields)
            if run is None:
                raise ChatBusy(await runs_store.active_run_id(conn, chat["id"]))
        self.starts.announce(str(chat["id"]))
        # Known at insert time for a run that starts now; a queued one asks once it starts.
        needs_closing = run.pop("needs_closing", None)
        if run["status"] != "running":
            needs_closing = None
        if not self.execute:
            assert self.bus is not None
            await self.bus.publish({"op": "queued"})
            source = await self.logs.open(run["id"], active=True)
            assert source is not None
            return run, source
        context = AgentContext(
            user_id=str(user_id), chat_id=str(chat["id"]), profile=run_input.profile
        )
        ctx = self.executor.context(run, spec, run_input, context, needs_closing)
        return run, self.executor.launch(ctx)

    async def stop(
        self,
        run_id: UUID,
        status: StopStatus = "cancelled",
        *,
        wait: float | None = 10,
        rollback: bool = False,
    ) -> bool:
        """Stop a run wherever it is, wait (up to ``wait`` s) for its end, and with ``rollback``
        remove every checkpoint it wrote. ``False`` when no process could be told.

        A run of this process is cancelled at once. A queued run nobody has claimed is ended
        here, in Postgres. Otherwise the request goes to every process over Redis and the owner
        stops it; its ``end`` event tells the readers (and this wait) when that happened.
        """
        if not await self._tell_stop(run_id, status):
            # No process could be told: the one running it is gone, so recovery ends it.
            await self.liveness.recover()
            return False
        if wait or rollback:
            await self.wait_ended(run_id, seconds=wait or 10)
        if rollback:
            async with self.pool.connection() as conn:
                run = await runs_store.get(conn, run_id)
            if run is not None:
                await self.threads.forget_run(run_id, run["chat_id"])
                await self.threads.refresh_summary(run["chat_id"])
        return True

    async def _tell_stop(self, run_id: UUID, status: StopStatus) -> bool:
        if self.executor.cancel(run_id, status):
            return True
        async with self.pool.connection() as conn:
            run = await runs_store.stop_unclaimed(conn, run_id, status)
        if run is not None:
            # Nobody else will write this run's events: its readers get them from here.
            run_log = self.logs.create(run_id)
            self.executor.writers(run_log, run, _input_or_empty(run["input"])).opened()
            run_log.append("end", {"status": status, "usage": {}})
            run_log.close()
            self.executor.tell_ended(run)
            await self.chat_is_free(str(run["chat_id"]))
            return True
        if self.bus is None:
            return False
        await self.bus.publish({"op": "stop", "run_id": str(run_id), "status": status})
        return True

    async def stop_chat(self, chat_id: UUID, status: StopStatus = "cancelled") -> None:
        """Stop every active run of a chat (running or queued) and wait for their ends.

        Before a chat is deleted: a run left going would write checkpoints for a thread that
        no longer exists. Each run's readers get ``end`` with ``status``.
        """
        async with self.pool.connection() as conn:
            active = await runs_store.active_run_ids(conn, chat_id)
        told = [run_id for run_id in active if await self._tell_stop(run_id, status)]
        await asyncio.gather(*(self.wait_ended(run_id, seconds=10) for run_id in told))

    async def wait_ended(self, run_id: UUID, seconds: float) -> None:
        """Wait (at most ``seconds``) until the run's event log has its ``end``."""
        source = await self.logs.open(run_id, active=True)
        if source is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(read_all(source), seconds)

    def on_control(self, message: dict[str, Any]) -> None:
        """A message from another process on the control channel."""
        op = message.get("op")
        if op == "stop":
            self.executor.cancel(UUID(message["run_id"]), status=message["status"])
        elif op == "freed":
            freed = self._chat_freed.get(message["chat_id"])
            if freed is not None:
                freed.set()
            self._work_available.set()
        elif op == "queued":
            self._work_available.set()

    async def chat_is_free(self, chat_id: str) -> None:
        """Wake what waits for this chat: queued runs here, and (through Redis) elsewhere."""
        freed = self._chat_freed.pop(chat_id, None)
        if freed is not None:
            freed.set()
        self._work_available.set()
        if self.bus is not None:
            await self.bus.publish({"op": "freed", "chat_id": chat_id})

    async def wait_turn(self, run_id: UUID, chat_id: str) -> None:
        """Block a queued run until it is next in line and its chat is free, then claim it."""
        while True:
            freed = self._chat_freed.setdefault(chat_id, asyncio.Event())
            async with self.pool.connection() as conn:
                if await runs_store.claim_pending(conn, run_id, self.liveness.worker_id):
                    return
                run = await runs_store.get(conn, run_id)
            if run is None or run["status"] != "pending":
                # Deleted with its chat, or ended by someone else: nothing left to run.
                raise asyncio.CancelledError
            # Woken when a run of this chat ends here; the timeout covers other processes.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):  # not wait_for: see KnowledgeIndexer._loop
                    await freed.wait()

    async def work(self, concurrency: int, poll_seconds: float = 2.0) -> None:
        """Claim queued runs and execute them, up to ``concurrency`` at once (a worker).

        Woken by the control channel (a run queued, a chat freed), our runs ending, a slow poll.
        """
        while self.liveness.accepting:
            self._work_available.clear()
            while len(self.executor.tasks) < concurrency and self.liveness.accepting:
                async with self.pool.connection() as conn:
                    run = await runs_store.claim_next(conn, self.liveness.worker_id)
                if run is None:
                    break
                self.executor.observer.claimed(run)
                await self._launch_claimed(run)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll_seconds):  # not wait_for: KnowledgeIndexer._loop
                    await self._work_available.wait()

    async def _launch_claimed(self, run: RunRow) -> None:
        async with self.pool.connection() as conn:
            chat = await chats_store.get_owned(conn, run["chat_id"], run["user_id"])
            # The definition the run was recorded with: the agent may have changed while it
            # waited in the queue (a version from before versions were kept: the current one).
            agent = await agents_store.get_at_version(
                conn, run["agent_id"], run["agent_version"]
            ) or await agents_store.get(conn, run["agent_id"], include_deleted=True)
        error = None
        run_input = None
        if chat is None or agent is None or not run["input"]:
            # Its chat was deleted meanwhile (which deletes the run too), or a foreign row.
            error = "NothingToRun"
        else:
            try:
                run_input = parse_input(run["input"])
            except InvalidRunInput as exc:
                log.error("run %s has an input that does not parse (%s): ended", run["id"], exc)
                error = "InvalidRunInput"
        if error is not None:
            async with self.pool.connection() as conn:
                await runs_store.finish(conn, run["id"], status="error", error=error, usage=None)
            self.executor.tell_ended(run)
            await self.logs.end_orphan(run["id"], "error")
            await self.chat_is_free(str(run["chat_id"]))
            return
        assert chat is not None and agent is not None and run_input is not None
        context = AgentContext(
            user_id=str(run["user_id"]), chat_id=str(chat["id"]), profile=run_input.profile
        )
        spec = self.threads.spec(agent, model_override(run_input))
        self.executor.launch(self.executor.context(run, spec, run_input, context))


def _input_or_empty(raw: Any) -> NativeInput | ProtocolInput:
    """A stored input as its type, or an empty one of its kind: enough to open its log."""
    try:
        return parse_input(raw)
    except InvalidRunInput:
        if isinstance(raw, dict) and raw.get("kind") == "protocol":
            return ProtocolInput(kind="protocol")
        return NativeInput(content="")
