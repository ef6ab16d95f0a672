"""The domain's closed sets of values, as stored in Postgres (each column has its CHECK)."""

from __future__ import annotations

from typing import Final, Literal

RunStatus = Literal["pending", "running", "success", "error", "cancelled", "interrupted"]
# A run is active (it holds or waits for its chat) in these; every other status is final.
ACTIVE: Final[tuple[RunStatus, RunStatus]] = ("pending", "running")
# What stopping a run ends it with: asked for (cancel) or pushed aside (interrupt, shutdown).
StopStatus = Literal["cancelled", "interrupted"]
# A replay: waiting for its first run, sending its turns, or ended (``interrupted``: its process
# kept dying, so it was not resumed again). Its turns take the statuses of their runs.
ReplayStatus = Literal["pending", "running", "done", "failed", "cancelled", "interrupted"]
REPLAY_ACTIVE: Final[tuple[ReplayStatus, ReplayStatus]] = ("pending", "running")
MultitaskStrategy = Literal["reject", "enqueue", "interrupt", "rollback"]
ChatStatus = Literal["active", "archived"]
# A thread between runs; "busy" is derived from its active runs, never stored.
ThreadStatus = Literal["idle", "interrupted", "error"]
UserRole = Literal["user", "admin"]
# What a chat's share grants; only reading, for now (``chat_shares.role``).
ShareRole = Literal["viewer"]
# A knowledge document: waiting to be indexed, being indexed, searchable, or given up on.
DocumentStatus = Literal["pending", "indexing", "indexed", "failed"]
# A run's webhook delivery: not sent yet (or to be tried again), received, or given up on.
DeliveryStatus = Literal["pending", "delivered", "failed"]
