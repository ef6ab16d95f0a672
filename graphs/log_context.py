"""What every log line says it is about: the request, the user and the run it was written for.

Context variables, so each request's task (and each run's task, which starts with a copy of
the context of the request that made it) carries its own values without passing them around.
The API sets the request id (api/request_ids.py) and the user id (its auth dependency); the
run runtime sets the run id, and the user id again for runs a worker claimed. The formatters
of api/logs.py read them.
"""

from __future__ import annotations

from contextvars import ContextVar

request_id: ContextVar[str | None] = ContextVar("switchboard_request_id", default=None)
user_id: ContextVar[str | None] = ContextVar("switchboard_user_id", default=None)
run_id: ContextVar[str | None] = ContextVar("switchboard_run_id", default=None)


def current() -> dict[str, str | None]:
    """The ids the line being written belongs to (``None`` where unknown)."""
    return {"request_id": request_id.get(), "run_id": run_id.get(), "user_id": user_id.get()}
