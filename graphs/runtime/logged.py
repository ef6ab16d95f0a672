"""A run's task as its log lines see it: named by the run and its user, and its end told."""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import Any

from graphs import log_context
from graphs.runtime.types import RunContext
from graphs.tracing import traced_run

log = logging.getLogger("graphs.runtime.execution")


async def run(ctx: RunContext, work: Coroutine[Any, Any, None]) -> None:
    """Await ``work`` (the run's whole life) with the run's ids in the log context, inside the
    run's span when tracing is on (``graphs/tracing.py``).

    The task's context is its own copy, so these values end with it. A worker's run has no
    request behind it, and its user is known only from the run's row.
    """
    log_context.run_id.set(str(ctx.run_id))
    log_context.user_id.set(str(ctx.run["user_id"]))
    try:
        await traced_run(ctx, work)
    finally:
        # One line per run, whatever its end: what an operator follows a run by.
        log.info("run %s ended: %s", ctx.run_id, ctx.status)
