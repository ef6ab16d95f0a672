"""What ``remember`` and ``recall`` share: whose memories a run may touch, and where they are.

The user is the one the server runs the graph for (``user_id`` of the run's context, a
``graphs.spec.AgentContext`` set by the server), never an argument the model passes, so no
tool call reaches another user's memories.
"""

from __future__ import annotations

from typing import Any

from langgraph.store.base import BaseStore

from storage.store import MEMORIES, user_namespace


def memory_namespace(runtime: Any) -> tuple[BaseStore, tuple[str, ...]]:
    """The run's store and its user's memories namespace (``runtime``: a ``ToolRuntime``)."""
    user_id = getattr(runtime.context, "user_id", None)
    if runtime.store is None or not user_id:
        # A graph run outside the server (no store, no user): nothing to remember into.
        raise RuntimeError("long-term memory needs the server's store and a user")
    return runtime.store, user_namespace(user_id, MEMORIES)
