"""Chats' threads in the checkpointer: compiled graphs, reads, summaries, deletion."""

from __future__ import annotations

from contextlib import aclosing
from dataclasses import replace
from typing import Any
from uuid import UUID

from langchain_core.messages import BaseMessage
from langgraph.channels import DeltaChannel

from graphs import approval
from graphs.build import GraphCache, thread_reader
from graphs.spec import AgentSpec
from storage import chats as chats_store
from storage import mcp_servers as mcp_servers_store
from storage.checkpoints import Checkpointer
from storage.db import Conn, PoolType
from storage.rows import AgentRow
from storage.store import Store
from tools import mcp


def thread_config(chat_id: UUID | str) -> dict[str, Any]:
    return {"configurable": {"thread_id": str(chat_id)}}


class Threads:
    """What the runtime and the API read of a thread, and the graphs that read it."""

    def __init__(
        self,
        pool: PoolType,
        checkpointer: Checkpointer,
        default_model: str,
        store: Store | None = None,
    ):
        self.pool = pool
        self.checkpointer = checkpointer
        self.default_model = default_model
        self.graphs = GraphCache(checkpointer, store=store)
        self._reader = thread_reader(checkpointer)
        # Writes as the model node: in a graph without the approval step, after which the
        # turn ends (in the reader, the approval step would be left to run next).
        self._writer = thread_reader(checkpointer, approval=False)

    def spec(self, agent: AgentRow, model_name: str | None = None) -> AgentSpec:
        """The definition an ``agents`` row describes, the server's default model filled in;
        with ``model_name``, the same agent on that model (a run's override)."""
        spec = AgentSpec.from_row(agent, self.default_model)
        return replace(spec, model_name=model_name) if model_name else spec

    async def run_graph(self, spec: AgentSpec) -> Any:
        """The graph a run of ``spec`` uses: with its MCP tools as their servers last listed
        them (read now, so a refresh in any process reaches the next run)."""
        wanted = [name for name in spec.tools if mcp.split(name) is not None]
        if not wanted:
            return self.graphs.get(spec)
        names = sorted({split[0] for name in wanted if (split := mcp.split(name))})
        async with self.pool.connection() as conn:
            servers = await mcp_servers_store.named(conn, names)
        key = tuple((s["id"], s["refreshed_at"]) for s in servers)
        return self.graphs.get(spec, mcp.tools_of(servers, wanted), key)

    def graph(self, agent: AgentRow) -> Any:
        """The agent's compiled graph, with the Postgres checkpointer (cached per version)."""
        return self.graphs.get(self.spec(agent))

    async def messages(self, chat_id: UUID | str) -> list[BaseMessage]:
        """The messages of a chat's thread, oldest first (as of its latest checkpoint)."""
        snapshot = await self.snapshot(chat_id)
        return list(snapshot.values.get("messages", [])) if snapshot is not None else []

    async def snapshot(self, chat_id: UUID | str, checkpoint_id: str | None = None) -> Any:
        """The thread's state at ``checkpoint_id`` (the latest without it); None when the
        thread has no such checkpoint (or none at all)."""
        config = thread_config(chat_id)
        if checkpoint_id is not None:
            config["configurable"]["checkpoint_id"] = checkpoint_id
        snapshot = await self._reader.aget_state(config)
        # LangGraph answers a missing checkpoint with an empty snapshot that has no creation time.
        return None if snapshot.created_at is None else snapshot

    async def history(
        self, chat_id: UUID | str, *, limit: int, before: str | None = None
    ) -> list[Any]:
        """Up to ``limit`` snapshots of the thread, newest first, older than ``before``."""
        before_config = None
        if before is not None:
            before_config = thread_config(chat_id)
            before_config["configurable"]["checkpoint_id"] = before
        states = self._reader.aget_state_history(
            thread_config(chat_id), before=before_config, limit=limit
        )
        async with aclosing(states):
            return [snapshot async for snapshot in states]

    async def chain(self, chat_id: UUID | str, checkpoint_id: str) -> list[str]:
        """A checkpoint of the thread and its ancestors (the branch it is on), newest first."""
        return await self.checkpointer.achain(str(chat_id), checkpoint_id)

    async def added_at(
        self, chat_id: UUID | str, tip: Any, message_id: str
    ) -> tuple[list[str], int]:
        """Where message ``message_id`` entered the branch that ends at snapshot ``tip``
        (which holds it): the branch's checkpoint ids newest first, and the index ``i`` of the
        newest one without the message, so ``chain[i - 1]`` added it (``len(chain)`` when even
        the oldest holds it).

        Messages only accumulate along a branch, so "holds the message" is true from the tip
        back to where it was added and false before: a binary search reads O(log n) states
        instead of every one."""
        chain = await self.chain(chat_id, tip.config["configurable"]["checkpoint_id"])
        low, high = 1, len(chain)
        while low < high:
            middle = (low + high) // 2
            snapshot = await self.snapshot(chat_id, chain[middle])
            held = (snapshot.values or {}).get("messages", []) if snapshot else []
            if any(m.id == message_id for m in held):
                low = middle + 1
            else:
                high = middle
        return chain, low

    async def pending_approval(self, chat_id: UUID | str) -> list[dict[str, Any]] | None:
        """The tool calls (``{id, name, args}``) the thread waits on a person's decision for;
        ``None`` when it waits on none (it may still wait on another interrupt)."""
        snapshot = await self.snapshot(chat_id)
        request = approval.request_in(snapshot.interrupts) if snapshot is not None else None
        if request is None:
            return None
        return approval.calls(request, snapshot.values.get("messages", []))

    async def summary(self, chat_id: UUID | str) -> tuple[int, bool]:
        """How many messages the thread holds, and whether it waits on an ``interrupt()``."""
        snapshot = await self._reader.aget_state(thread_config(chat_id))
        return len(snapshot.values.get("messages", [])), bool(snapshot.interrupts)

    async def refresh_summary(self, chat_id: UUID | str) -> None:
        """Recount a chat's messages from its thread, after a change outside any run."""
        count, paused = await self.summary(chat_id)
        async with self.pool.connection() as conn:
            await chats_store.update_summary(
                conn, UUID(str(chat_id)), message_count=count, title=None,
                thread_status="interrupted" if paused else "idle",
            )  # fmt: skip

    async def write(self, chat_id: UUID | str, messages: list[BaseMessage]) -> None:
        """Put ``messages`` into the empty thread of a new chat (an import), in one checkpoint.

        Written as the model node's output, the way a run leaves a finished turn: nothing is
        left to run (unless the last message asks for tools, which the next run's new input
        drops). Every agent's graph has the same channels, so the reader writes for any agent,
        and no model has to be built for it."""
        await self._writer.aupdate_state(
            thread_config(chat_id), {"messages": messages}, as_node="model"
        )

    def remember(self, checkpoint: dict[str, Any]) -> None:
        """Keep the thread's values at a checkpoint a run wrote: the next run of the chat
        starts from them instead of rebuilding the conversation from Postgres."""
        self.checkpointer.remember(checkpoint["config"], checkpoint["values"])

    async def delete(self, chat_id: UUID | str) -> None:
        """Every checkpoint of the thread."""
        await self.checkpointer.adelete_thread(str(chat_id))

    async def delete_in(self, conn: Conn, chat_id: UUID | str) -> None:
        """Every checkpoint of the thread, in the caller's transaction on ``conn``."""
        await self.checkpointer.adelete_thread_in(conn, str(chat_id))

    async def keep_latest_in(self, conn: Conn, chat_id: UUID | str) -> int:
        """Every checkpoint of the thread but its latest, whose state reads the same
        afterwards, in the caller's transaction on ``conn`` (which must keep runs off the
        thread meanwhile). How many checkpoints went."""
        snapshot = await self.snapshot(chat_id)
        if snapshot is None:
            return 0
        # The delta channels' values are rebuilt from the checkpoints about to go: they are
        # stored whole in the one that stays.
        deltas = {
            name: snapshot.values[name]
            for name, channel in self._reader.channels.items()
            if isinstance(channel, DeltaChannel) and name in snapshot.values
        }
        return await self.checkpointer.akeep_latest_in(conn, str(chat_id), deltas)

    async def forget_run(self, run_id: UUID, chat_id: UUID | str) -> None:
        """Every checkpoint one run wrote in its chat, as if it never ran (``rollback``)."""
        await self.checkpointer.adelete_for_runs([str(run_id)], thread_id=str(chat_id))

    async def copy(
        self, source: UUID | str, target: UUID | str, *, upto: str | None = None
    ) -> bool:
        """Copy a chat's thread into a new chat's: all of it, or with ``upto`` the branch that
        ends at that checkpoint; ``False`` when ``upto`` is no checkpoint of ``source``."""
        if upto is None:
            await self.checkpointer.acopy_thread(str(source), str(target))
            return True
        return await self.checkpointer.afork_thread(str(source), str(target), upto)
