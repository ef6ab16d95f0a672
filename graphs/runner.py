"""Runs: an agent answering one message, as a background task writing to the run's event log.

The HTTP request that started a run is only a reader of its log, so a slow or vanished client
never slows or stops the run, and the answer is in the checkpoint whoever watches.

Native events (``data`` is one JSON object):
    ``run`` {run_id, chat_id, agent_id} · ``message`` {a complete Message} ·
    ``token`` {message_id, delta} · ``tool_call`` {message_id, tool_call_id, name, args} ·
    ``tool_result`` {tool_call_id, name, content, is_error} · ``error`` {code, message} ·
    ``end`` {status, usage}
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import anyio
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langgraph.types import Command
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from graphs.build import GraphCache, thread_reader
from graphs.events import EventLogs, EventSource, RunLog, read_all
from graphs.messages import USAGE_KEYS, to_api
from graphs.protocol import Translator, graph_modes, jsonable, stamp_messages
from graphs.spec import AgentContext, AgentSpec
from storage import agents as agents_store
from storage import chats as chats_store
from storage import runs as runs_store

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from graphs.redis_logs import ControlBus

log = logging.getLogger(__name__)

TITLE_LENGTH = 60


class ShuttingDown(Exception):
    """The server is shutting down and takes no new runs."""


class ChatBusy(Exception):
    """The chat already has an active run."""

    def __init__(self, active_run_id: UUID | None):
        super().__init__("chat has an active run")
        self.active_run_id = active_run_id


def title_from(text: str) -> str:
    """A chat title from its first message: the first line, cut at a word boundary."""
    line = " ".join(text.strip().split())
    if len(line) <= TITLE_LENGTH:
        return line
    cut = line[:TITLE_LENGTH].rsplit(" ", 1)[0]
    return (cut or line[:TITLE_LENGTH]) + "…"


def add_usage(total: dict[str, int], message: AIMessage) -> None:
    usage = message.usage_metadata
    if usage:
        for key in USAGE_KEYS:
            total[key] = total.get(key, 0) + int(usage.get(key, 0))


class RunManager:
    """Starts runs and owns their tasks and event logs in this process.

    Alone (no Redis), every run executes in the process that received its message and its
    events live in memory. With ``redis``, event logs are mirrored to Redis Streams and stop
    requests travel on a control channel, so any process can read or stop any run; with
    ``execute=False`` as well, this process only queues runs, and ``switchboard worker``
    processes (``work()``) claim and execute them.
    """

    def __init__(
        self,
        pool: AsyncConnectionPool,
        checkpointer: Any,
        *,
        default_model: str,
        retention_seconds: float = 600,
        heartbeat_seconds: float = 5,
        stale_seconds: float = 30,
        shutdown_grace_seconds: float = 30,
        redis: Redis | None = None,
        execute: bool = True,
    ):
        if not execute and redis is None:
            raise ValueError("a process that does not execute runs needs Redis to hand them over")
        self.pool = pool
        self.checkpointer = checkpointer
        self.default_model = default_model
        self.graphs = GraphCache(checkpointer)
        self.reader = thread_reader(checkpointer)
        self.execute = execute
        self.bus: ControlBus | None = None
        self.logs: EventLogs
        if redis is not None:
            # Imported here: the Redis client costs a single process ~7 MiB it never uses.
            from graphs.redis_logs import ControlBus, RedisEventLogs

            self.logs = RedisEventLogs(redis, self._is_active, retention_seconds)
            self.bus = ControlBus(redis, self._on_control)
        else:
            self.logs = EventLogs(retention_seconds)
        # Set when a queued run may have become claimable (queued, or a chat or slot freed).
        self._work_available = asyncio.Event()
        self._stops: set[asyncio.Task[Any]] = set()
        self.heartbeat_seconds = heartbeat_seconds
        self.stale_seconds = stale_seconds
        self.host = socket.gethostname()
        self.worker_id = f"{self.host}:{os.getpid()}"
        self._tasks: dict[UUID, asyncio.Task[None]] = {}
        self._cancelled: dict[UUID, str] = {}
        self._chat_freed: dict[str, asyncio.Event] = {}
        self._heartbeat: asyncio.Task[None] | None = None
        self.shutdown_grace_seconds = shutdown_grace_seconds
        # Set by the SSE layer when the server starts shutting down (SIGTERM).
        self.shutdown_event = anyio.Event()
        self.accepting = True
        self._draining: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Recover runs left behind by dead processes, then keep our own runs' heartbeat."""
        if self.bus is not None:
            await self.bus.open()
        await self.recover()
        self._heartbeat = asyncio.create_task(self._beat(), name="run-heartbeat")
        self._draining = asyncio.create_task(self._drain_on_shutdown(), name="run-drain")

    async def _drain_on_shutdown(self) -> None:
        await self.shutdown_event.wait()
        await self.drain()

    async def drain(self) -> None:
        """Stop taking runs, give active ones the grace period, then interrupt the rest.

        Interrupted runs still write their ``end`` event, so every open stream ends cleanly.
        """
        self.accepting = False
        tasks = list(self._tasks.values())
        if tasks:
            log.info(
                "shutting down: waiting up to %ss for %d run(s)",
                self.shutdown_grace_seconds,
                len(tasks),
            )
            _, pending = await asyncio.wait(tasks, timeout=self.shutdown_grace_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def recover(self) -> list[UUID]:
        """Mark interrupted the runs nobody is running any more; returns their ids.

        A run of a dead process on this host is found at once by its pid; one of another host
        by its heartbeat going stale.
        """
        async with self.pool.connection() as conn:
            dead = [
                row["id"]
                for row in await runs_store.active_on_host(conn, self.host)
                if row["worker_id"] != self.worker_id and not _pid_alive(row["worker_id"])
            ]
            rows = await runs_store.interrupt_stale(
                conn, dead_ids=dead, stale_seconds=self.stale_seconds
            )
        for row in rows:
            log.warning("run %s was left unfinished by a dead process: interrupted", row["id"])
            await self.logs.end_orphan(row["id"], "interrupted")
            await self._chat_is_free(str(row["chat_id"]))
        return [row["id"] for row in rows]

    async def _is_active(self, run_id: UUID) -> bool:
        async with self.pool.connection() as conn:
            run = await runs_store.get(conn, run_id)
        return run is not None and run["status"] in ("pending", "running")

    def _on_control(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "stop":
            self.cancel(UUID(message["run_id"]), status=message["status"])
        elif op == "freed":
            freed = self._chat_freed.get(message["chat_id"])
            if freed is not None:
                freed.set()
            self._work_available.set()
        elif op == "queued":
            self._work_available.set()

    async def _chat_is_free(self, chat_id: str) -> None:
        """Wake what waits for this chat: queued runs here, and (through Redis) elsewhere."""
        freed = self._chat_freed.pop(chat_id, None)
        if freed is not None:
            freed.set()
        self._work_available.set()
        if self.bus is not None:
            await self.bus.publish({"op": "freed", "chat_id": chat_id})

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                async with self.pool.connection() as conn:
                    await runs_store.heartbeat(conn, list(self._tasks))
                await self.recover()
            except Exception:
                log.exception("run heartbeat failed")

    def cancel(self, run_id: UUID, status: str = "cancelled") -> bool:
        """Stop a run of this process, ending it with ``status``; ``False`` if not running here."""
        task = self._tasks.get(run_id)
        if task is None or task.done():
            return False
        self._cancelled[run_id] = status
        task.cancel()
        return True

    async def stop(self, run_id: UUID, status: str = "cancelled") -> bool:
        """Stop a run wherever it is; ``False`` when no process could be told.

        A run of this process is cancelled at once. A queued run nobody has claimed is ended
        here, in Postgres. Otherwise the request goes to every process over Redis and the owner
        stops it; its ``end`` event tells the readers (and the caller) when that happened.
        """
        if self.cancel(run_id, status):
            return True
        async with self.pool.connection() as conn:
            run = await runs_store.stop_unclaimed(conn, run_id, status)
        if run is not None:
            # Nobody else will write this run's events: its readers get them from here.
            run_log = self.logs.create(run_id)
            run_log.append(*_first_event(run))
            run_log.append("end", {"status": status, "usage": {}})
            run_log.close()
            await self._chat_is_free(str(run["chat_id"]))
            return True
        if self.bus is None:
            return False
        await self.bus.publish({"op": "stop", "run_id": str(run_id), "status": status})
        return True

    def request_stop(self, run_id: UUID) -> None:
        """``stop`` from synchronous code (a client that disconnected), in the background."""
        self.background(self.stop(run_id))

    def background(self, work: Any) -> asyncio.Task[Any]:
        """Run ``work`` (a coroutine) past the request that asked for it; stopped at shutdown."""
        task = asyncio.get_running_loop().create_task(work)
        self._stops.add(task)
        task.add_done_callback(self._stops.discard)
        return task

    async def wait_ended(self, run_id: UUID, seconds: float) -> None:
        """Wait (at most ``seconds``) until the run's event log has its ``end``."""
        source = await self.logs.open(run_id, active=True)
        if source is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(read_all(source), seconds)

    async def _stop_running(self, chat_id: UUID, *, rollback: bool) -> None:
        """Interrupt the chat's running run (strategies ``interrupt`` and ``rollback``).

        ``rollback`` also removes every checkpoint the stopped run wrote, as if it never ran.
        """
        async with self.pool.connection() as conn:
            active = await runs_store.running_run_id(conn, chat_id)
        if active is None or not await self.stop(active, status="interrupted"):
            return
        await self.wait_ended(active, seconds=10)
        if rollback:
            await self.checkpointer.adelete_for_runs([str(active)])

    async def start(
        self,
        *,
        chat: dict[str, Any],
        agent: dict[str, Any],
        user_id: UUID,
        content: str,
        profile: dict[str, Any] | None,
        strategy: str = "reject",
    ) -> tuple[dict[str, Any], EventSource]:
        """Record a run answering ``content`` and start it in the background (or queue it).

        ``strategy`` says what happens when the chat already has an active run: ``reject``
        raises ``ChatBusy``; ``enqueue`` queues this run behind it; ``interrupt`` stops the
        running one (its checkpoints stay); ``rollback`` stops it and removes its checkpoints.
        Raises ``ShuttingDown`` once the server is draining.
        """
        payload = {"content": content, "profile": profile}
        return await self._start(chat, agent, user_id, payload, strategy)

    async def start_protocol(
        self,
        *,
        chat: dict[str, Any],
        agent: dict[str, Any],
        user_id: UUID,
        request: dict[str, Any],
        profile: dict[str, Any] | None,
        strategy: str = "enqueue",
    ) -> tuple[dict[str, Any], EventSource]:
        """A run of the Agent Protocol: ``request`` holds its input or command, stream modes,
        config, metadata, checkpoint and interrupt points (JSON, stored with the run)."""
        payload = {"kind": "protocol", **request, "profile": profile}
        return await self._start(chat, agent, user_id, payload, strategy)

    async def _start(
        self,
        chat: dict[str, Any],
        agent: dict[str, Any],
        user_id: UUID,
        payload: dict[str, Any],
        strategy: str,
    ) -> tuple[dict[str, Any], EventSource]:
        if not self.accepting:
            raise ShuttingDown()
        spec = AgentSpec.from_row(agent, self.default_model)
        if strategy in ("interrupt", "rollback"):
            await self._stop_running(chat["id"], rollback=strategy == "rollback")
        fields = {
            "chat_id": chat["id"],
            "user_id": user_id,
            "agent_id": agent["id"],
            "agent_version": agent["version"],
            "model_name": spec.model_name,
            "multitask_strategy": strategy,
            # Everything a worker needs to execute the run without this request.
            "input": Jsonb(payload),
            "worker_id": self.worker_id if self.execute else None,
        }
        async with self.pool.connection() as conn:
            if not self.execute:
                run = await runs_store.insert_pending(conn, if_free=strategy != "enqueue", **fields)
            else:
                queue = strategy == "enqueue"
                run = await runs_store.insert_starting(conn, queue=queue, **fields)
                if run is None and queue:
                    # A worker started a queued run of this chat meanwhile: queue behind it.
                    run = await runs_store.insert_pending(conn, **fields)
            if run is None:
                raise ChatBusy(await runs_store.active_run_id(conn, chat["id"]))
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
            user_id=str(user_id), chat_id=str(chat["id"]), profile=payload["profile"]
        )
        return run, self._launch(run, chat, spec, payload, context, needs_closing)

    def _launch(
        self,
        run: dict[str, Any],
        chat: dict[str, Any],
        spec: AgentSpec,
        payload: dict[str, Any],
        context: AgentContext,
        needs_closing: bool | None = None,
    ) -> RunLog:
        run_log = self.logs.create(run["id"])
        task = asyncio.create_task(
            self._execute(run, chat, spec, run_log, payload, context, needs_closing),
            name=f"run-{run['id']}",
        )
        self._tasks[run["id"]] = task
        task.add_done_callback(lambda _: self._tasks.pop(run["id"], None))
        return run_log

    async def work(self, concurrency: int, poll_seconds: float = 2.0) -> None:
        """Claim queued runs and execute them, up to ``concurrency`` at once (a worker).

        Woken by the control channel when a run is queued or a chat is freed, by our own runs
        ending, and by a slow poll in case a message was missed.
        """
        while self.accepting:
            self._work_available.clear()
            while len(self._tasks) < concurrency and self.accepting:
                async with self.pool.connection() as conn:
                    run = await runs_store.claim_next(conn, self.worker_id)
                if run is None:
                    break
                await self._launch_claimed(run)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._work_available.wait(), timeout=poll_seconds)

    async def _launch_claimed(self, run: dict[str, Any]) -> None:
        async with self.pool.connection() as conn:
            chat = await chats_store.get_owned(conn, run["chat_id"], run["user_id"])
            agent = await agents_store.get(conn, run["agent_id"], include_deleted=True)
        if chat is None or agent is None or not run["input"]:
            # Its chat was deleted meanwhile (which deletes the run too), or a foreign row.
            async with self.pool.connection() as conn:
                await runs_store.finish(
                    conn, run["id"], status="error", error="NothingToRun", usage=None
                )
            await self.logs.end_orphan(run["id"], "error")
            return
        spec = AgentSpec.from_row(agent, self.default_model)
        profile = run["input"].get("profile")
        context = AgentContext(
            user_id=str(run["user_id"]), chat_id=str(chat["id"]), profile=profile
        )
        self._launch(run, chat, spec, run["input"], context)

    async def _execute(
        self,
        run: dict[str, Any],
        chat: dict[str, Any],
        spec: AgentSpec,
        run_log: RunLog,
        payload: dict[str, Any],
        context: AgentContext,
        needs_closing: bool | None = None,
    ) -> None:
        chat_id = str(chat["id"])
        usage: dict[str, int] = {}
        tally = Tally(exact=run["multitask_strategy"] != "rollback")
        status, error = "success", None
        protocol = payload.get("kind") == "protocol"
        content = payload.get("content") or _first_text(payload.get("input"))
        run_log.append(*_first_event(run))
        try:
            if run["status"] == "pending":
                await self._wait_turn(run["id"], chat_id)
            graph = self.graphs.get(spec)
            if protocol:
                await self._stream_protocol(
                    graph, run, chat_id, spec, run_log, payload, context, usage, tally,
                    needs_closing,
                )  # fmt: skip
                return
            human = HumanMessage(
                content=content,
                id=str(uuid.uuid4()),
                response_metadata={"created_at": datetime.now(UTC).isoformat()},
            )
            # Thread order: answers to a stopped run's tool calls, then the new message.
            closing = await self._close_dangling_tool_calls(chat_id, needs_closing)
            tally.added += len(closing) + 1
            for message in closing:
                self._emit_message(run_log, message, chat_id, usage)
            run_log.append("message", to_api(human, chat_id))
            config = {
                "configurable": {"thread_id": chat_id},
                "run_id": run["id"],
                # Stamped on every checkpoint, so a rollback can find what this run wrote.
                "metadata": {"run_id": str(run["id"])},
            }
            async for mode, payload in graph.astream(
                {"messages": [*closing, human]},
                config=config,
                context=context,
                stream_mode=["messages", "updates", "checkpoints"],
            ):
                if mode == "messages":
                    chunk, _ = payload
                    if isinstance(chunk, AIMessageChunk) and (delta := chunk.text):
                        run_log.append("token", {"message_id": chunk.id, "delta": delta})
                elif mode == "checkpoints":
                    self._remember(payload)
                else:
                    tally.paused |= _pauses(payload)
                    for message in _updated_messages(payload):
                        tally.added += 1
                        self._emit_message(run_log, message, chat_id, usage)
        except asyncio.CancelledError:
            status = self._cancelled.pop(run["id"], "interrupted")
            error = None if status == "cancelled" else "Stopped before it finished"
            raise
        except Exception as exc:
            # The reason goes to the log, never to the client: it may hold internals.
            log.exception("run %s failed", run["id"])
            status, error = "error", f"{type(exc).__name__}"
            message = "The agent could not answer. Try again."
            if protocol:
                run_log.append("error", {"error": type(exc).__name__, "message": message})
            else:
                run_log.append("error", {"code": "run_failed", "message": message})
        finally:
            await asyncio.shield(
                self._finish(run, chat, run_log, status, error, usage, content, tally)
            )

    async def _stream_protocol(
        self,
        graph: Any,
        run: dict[str, Any],
        chat_id: str,
        spec: AgentSpec,
        run_log: RunLog,
        payload: dict[str, Any],
        context: AgentContext,
        usage: dict[str, int],
        tally: Tally,
        needs_closing: bool | None,
    ) -> None:
        """Run the graph as the Agent Protocol asks, writing the events it asked for."""
        command = payload.get("command")
        if command or payload.get("checkpoint_id"):
            # A command may rewrite the state, a fork starts elsewhere: count by reading.
            tally.exact = False
        if command:
            graph_input: Any = Command(
                resume=command.get("resume"),
                update=command.get("update"),
                goto=command.get("goto") or (),
            )
        else:
            graph_input = stamp_messages(payload.get("input"))
            if isinstance(graph_input, dict) and graph_input.get("messages"):
                closing = await self._close_dangling_tool_calls(chat_id, needs_closing)
                graph_input["messages"] = [*closing, *graph_input["messages"]]
                tally.added += len(graph_input["messages"])
        configurable: dict[str, Any] = {"thread_id": chat_id}
        if payload.get("checkpoint_id"):
            configurable["checkpoint_id"] = payload["checkpoint_id"]
        config: dict[str, Any] = {
            **(payload.get("config") or {}),
            "configurable": configurable,
            "run_id": run["id"],
            "metadata": {
                **(payload.get("metadata") or {}),
                "run_id": str(run["id"]),
                "thread_id": chat_id,
                "assistant_id": str(spec.id),
                "graph_id": spec.slug,
                "run_attempt": 1,
            },
        }
        requested = payload.get("stream_mode") or ["values"]
        subgraphs = bool(payload.get("stream_subgraphs"))
        translator = Translator(requested)
        options = {
            "config": config,
            "context": context,
            "stream_mode": [*graph_modes(requested), "checkpoints"],
            "subgraphs": subgraphs,
            "interrupt_before": payload.get("interrupt_before"),
            "interrupt_after": payload.get("interrupt_after"),
        }

        def emit(part: Any) -> None:
            namespace, (mode, data) = (part[0], part[1:]) if subgraphs else ((), part)
            if mode == "checkpoints":
                if not namespace:
                    self._remember(data)
                return
            if mode == "updates" and not namespace:
                tally.paused |= _pauses(data)
                for message in _updated_messages(data):
                    tally.added += 1
                    if isinstance(message, AIMessage):
                        add_usage(usage, message)
            for name, event_data, text in translator.feed(mode, data, tuple(namespace)):
                run_log.append(name, event_data, text)

        if "events" in requested:
            async for event in graph.astream_events(graph_input, version="v2", **options):
                run_log.append("events", jsonable(event))
                if event["event"] == "on_chain_stream" and not event.get("parent_ids"):
                    emit(event["data"]["chunk"])
        else:
            async for part in graph.astream(graph_input, **options):
                emit(part)

    def _remember(self, checkpoint: dict[str, Any]) -> None:
        """Keep the thread's values at a checkpoint the run wrote: the next run of the chat
        starts from them instead of rebuilding the conversation from Postgres."""
        remember = getattr(self.checkpointer, "remember", None)
        if remember is not None:
            remember(checkpoint["config"], checkpoint["values"])

    async def _wait_turn(self, run_id: UUID, chat_id: str) -> None:
        """Block a queued run until it is next in line and its chat is free, then claim it."""
        while True:
            freed = self._chat_freed.setdefault(chat_id, asyncio.Event())
            async with self.pool.connection() as conn:
                if await runs_store.claim_pending(conn, run_id, self.worker_id):
                    return
            # Woken when a run of this chat ends here; the timeout covers other processes.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(freed.wait(), timeout=1.0)

    @staticmethod
    def _emit_message(
        run_log: RunLog, message: BaseMessage, chat_id: str, usage: dict[str, int]
    ) -> None:
        if isinstance(message, AIMessage):
            add_usage(usage, message)
            for call in message.tool_calls:
                run_log.append(
                    "tool_call",
                    {
                        "message_id": message.id,
                        "tool_call_id": call["id"],
                        "name": call["name"],
                        "args": call["args"],
                    },
                )
        elif isinstance(message, ToolMessage):
            run_log.append(
                "tool_result",
                {
                    "tool_call_id": message.tool_call_id,
                    "name": message.name,
                    "content": message.text,
                    "is_error": message.status == "error",
                },
            )
        run_log.append("message", to_api(message, chat_id))

    async def _finish(
        self,
        run: dict[str, Any],
        chat: dict[str, Any],
        run_log: RunLog,
        status: str,
        error: str | None,
        usage: dict[str, int],
        content: str,
        tally: Tally,
    ) -> None:
        try:
            title = title_from(content) or None
            # Counted as they streamed on the common path; read back from the thread otherwise.
            counted = status == "success" and tally.exact
            paused, count = tally.paused, None
            if not counted:
                count, paused = await self._thread_summary(chat["id"])
            thread_status = "error" if status == "error" else "idle"
            if paused and status == "success":
                thread_status = "interrupted"
            async with self.pool.connection() as conn:
                await runs_store.finish_with_summary(
                    conn, run["id"], status=status, error=error, usage=usage,
                    added=tally.added, message_count=count, title=title,
                    thread_status=thread_status,
                )  # fmt: skip
        except Exception:
            log.exception("could not record the end of run %s", run["id"])
        finally:
            run_log.append("end", {"status": status, "usage": usage})
            run_log.close()
            await self._chat_is_free(str(chat["id"]))

    async def _close_dangling_tool_calls(
        self, chat_id: str, needs_closing: bool | None
    ) -> list[ToolMessage]:
        """Answers for tool calls a stopped run left unanswered, to add before the new message.

        A run cancelled or interrupted while a tool ran leaves an agent message whose tool calls
        have no result; providers such as OpenAI reject such a history, so each gets an error
        result saying the tool never finished. Reading the thread costs as much as the thread is
        long, so it is only read when the last run was stopped or the thread waits
        (``needs_closing``; asked here when not known yet).
        """
        if needs_closing is None:
            async with self.pool.connection() as conn:
                needs_closing = await chats_store.needs_closing(conn, chat_id)
        if not needs_closing:
            return []
        messages = await self.thread_messages(chat_id)
        last_ai = next(
            (i for i in range(len(messages) - 1, -1, -1) if isinstance(messages[i], AIMessage)),
            None,
        )
        if last_ai is None:
            return []
        answered = {m.tool_call_id for m in messages[last_ai + 1 :] if isinstance(m, ToolMessage)}
        now = datetime.now(UTC).isoformat()
        return [
            ToolMessage(
                content="Error: this tool call was stopped before it returned a result.",
                tool_call_id=call["id"],
                name=call["name"],
                status="error",
                id=str(uuid.uuid4()),
                response_metadata={"created_at": now},
            )
            for call in messages[last_ai].tool_calls
            if call["id"] not in answered
        ]

    async def thread_messages(self, chat_id: UUID | str) -> list[BaseMessage]:
        """The messages of a chat's thread, oldest first (as of its latest checkpoint)."""
        snapshot = await self.reader.aget_state({"configurable": {"thread_id": str(chat_id)}})
        return list(snapshot.values.get("messages", []))

    async def message_count(self, chat_id: UUID | str) -> int:
        return len(await self.thread_messages(chat_id))

    async def refresh_summary(self, chat_id: UUID | str) -> None:
        """Recount a chat's messages from its thread, after a change outside any run."""
        count, paused = await self._thread_summary(chat_id)
        async with self.pool.connection() as conn:
            await chats_store.update_summary(
                conn, UUID(str(chat_id)), message_count=count, title=None,
                thread_status="interrupted" if paused else "idle",
            )  # fmt: skip

    async def _thread_summary(self, chat_id: UUID | str) -> tuple[int, bool]:
        """How many messages the thread holds, and whether it waits on an ``interrupt()``."""
        snapshot = await self.reader.aget_state({"configurable": {"thread_id": str(chat_id)}})
        count = len(snapshot.values.get("messages", []))
        return count, bool(snapshot.interrupts)

    async def delete_thread(self, chat_id: UUID | str) -> None:
        await self.checkpointer.adelete_thread(str(chat_id))

    async def aclose(self) -> None:
        """Drain (grace period, then ``interrupted``) and stop the background tasks."""
        await self.drain()
        helpers = [t for t in (self._heartbeat, self._draining, *self._stops) if t is not None]
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        if self.bus is not None:
            await self.bus.aclose()
        await self.logs.aclose()


async def open_run_manager(
    settings: Any, pool: AsyncConnectionPool, *, execute: bool
) -> RunManager:
    """The run manager ``settings`` describe (a ``api.settings.Settings``), opened."""
    from graphs.redis_logs import connect
    from storage.checkpoints import Checkpointer

    redis = None
    if settings.redis_url:
        redis = connect(settings.redis_url)
        try:
            await redis.ping()
        except Exception as exc:
            await redis.aclose()
            # The URL may hold a password: name the failure, not the URL.
            reason = type(exc).__name__
            raise RuntimeError(f"Redis is unreachable at REDIS_URL ({reason})") from None
    manager = RunManager(
        pool,
        Checkpointer(pool),
        default_model=settings.effective_default_model,
        retention_seconds=settings.run_log_retention_seconds,
        heartbeat_seconds=settings.heartbeat_seconds,
        stale_seconds=settings.stale_seconds,
        shutdown_grace_seconds=settings.shutdown_grace_seconds,
        redis=redis,
        execute=execute,
    )
    await manager.open()
    return manager


@dataclass
class Tally:
    """What a run added to its thread, counted as it streamed (``exact``: nothing else did)."""

    exact: bool = True
    added: int = 0
    paused: bool = False


def _pauses(update: Any) -> bool:
    """Whether an ``updates`` stream item says the graph paused on ``interrupt()``."""
    return isinstance(update, dict) and "__interrupt__" in update


def _first_event(run: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``run`` for native runs; ``metadata`` for Agent Protocol runs, as the official server."""
    if (run.get("input") or {}).get("kind") == "protocol":
        return "metadata", {"run_id": str(run["id"]), "attempt": 1}
    return "run", {
        "run_id": str(run["id"]),
        "chat_id": str(run["chat_id"]),
        "agent_id": str(run["agent_id"]),
    }


def _first_text(value: Any) -> str:
    """The first message's text in a protocol input, for the chat's title."""
    messages = value.get("messages") if isinstance(value, dict) else None
    if not messages:
        return ""
    first = messages[0]
    content = first.get("content") if isinstance(first, dict) else getattr(first, "content", "")
    return content if isinstance(content, str) else ""


def _pid_alive(worker_id: str | None) -> bool:
    pid = (worker_id or "").rpartition(":")[2]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _updated_messages(update: Any) -> list[BaseMessage]:
    """The messages a node wrote, from one ``updates`` stream item."""
    found: list[BaseMessage] = []
    items = update if isinstance(update, list) else [update]
    for item in items:
        if not isinstance(item, dict):
            continue
        for node_update in item.values():
            values = node_update if isinstance(node_update, list) else [node_update]
            for value in values:
                if isinstance(value, dict):
                    found.extend(m for m in value.get("messages", []) if isinstance(m, BaseMessage))
    return found
