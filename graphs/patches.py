"""What Switchboard changes in LangGraph and LangSmith, installed by one explicit call.

Importing any module of the project changes nothing global: ``langgraph dev`` loading
``langgraph.json``, or a script importing ``graphs.build``, gets LangGraph exactly as installed.
The server and the worker call ``install()`` once at start. Each change relies on internals of
the releases named in ``SUPPORTED``, so ``install()`` checks the installed versions first and
refuses to start on others: an upgrade must be a decision (re-run ``tests/test_checkpoints.py``,
which fails if a change stops taking effect), never a silent slowdown or a silent loss of the
strict checkpoint decoding.

The changes:

- Strict msgpack (``LANGGRAPH_STRICT_MSGPACK``): reading a checkpoint can never rebuild an
  arbitrary class, so it can never execute code. LangGraph reads the environment variable once,
  when its serializer module is imported, which made this security setting depend on import
  order; the flags it sets are set here instead.
- The Postgres saver encodes every write and decodes every read's pending writes with
  ``asyncio.to_thread``. The payloads are a turn's deltas, encoded in well under a millisecond,
  and each hop cost more: a thread wake-up, a wait for the GIL of a busy process (up to its 5 ms
  switch interval), a wake-up of the loop. Its module sees an ``asyncio`` whose ``to_thread``
  calls inline.
- The saver's walk back to a delta channel's last snapshot reads pages of ``_DELTA_PAGE_SIZE``
  (1,024) checkpoints; ``storage.checkpoints.DELTA_PAGE_SIZE`` is just over the distance
  between snapshots, so a long chat's turn reads a hundred rows, not a thousand.
- ``create_agent`` wraps every middleware hook in LangSmith's ``traceable``, which sets up and
  closes a span in a worker thread even with tracing off: two hops per model call. With tracing
  off that set-up is a few dictionary reads, done on the loop.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Mapping
from importlib.metadata import version
from typing import Any, TypeVar

from langsmith.utils import tracing_is_enabled

T = TypeVar("T")

# Distribution -> the release series (major.minor) these changes were written and tested for.
SUPPORTED: dict[str, str] = {
    "langgraph": "1.2",
    "langgraph-checkpoint": "4.3",
    "langgraph-checkpoint-postgres": "3.2",
    "langsmith": "0.15",
}


class UnsupportedVersion(RuntimeError):
    """An installed release is not one the patches were written for."""


_installed = False


def check_versions(installed: Mapping[str, str]) -> None:
    """Raise ``UnsupportedVersion`` unless every distribution in ``SUPPORTED`` is in its series."""
    wrong = []
    for name, series in SUPPORTED.items():
        found = installed.get(name)
        if found is None or (found != series and not found.startswith(series + ".")):
            wrong.append(f"{name} {found or 'missing'} (written for {series}.x)")
    if wrong:
        raise UnsupportedVersion(
            "Switchboard's LangGraph changes do not support the installed "
            + ", ".join(wrong)
            + "; install the versions pyproject.toml pins, or update graphs/patches.py"
        )


def installed_versions() -> dict[str, str]:
    return {name: version(name) for name in SUPPORTED}


def install(installed: Mapping[str, str] | None = None) -> None:
    """Check the versions, then apply every change (once; later calls do nothing).

    ``installed`` replaces what ``importlib.metadata`` reports (for tests of the check).
    """
    global _installed
    check_versions(installed if installed is not None else installed_versions())
    if _installed:
        return
    import langgraph._internal._serde as graph_serde
    import langgraph.checkpoint.postgres.aio as postgres_saver
    import langgraph.checkpoint.serde._msgpack as msgpack_serde
    import langsmith

    from storage.checkpoints import DELTA_PAGE_SIZE

    msgpack_serde.STRICT_MSGPACK_ENABLED = True
    graph_serde.STRICT_MSGPACK_ENABLED = True
    postgres_saver.asyncio = _OnTheLoop()  # type: ignore[assignment]
    postgres_saver._DELTA_PAGE_SIZE = DELTA_PAGE_SIZE
    langsmith.set_runtime_overrides(aio_to_thread=_on_the_loop_unless_tracing)
    _installed = True


class _OnTheLoop:
    """What the saver's module sees as ``asyncio``: the real module, except that
    ``to_thread`` calls the function at once."""

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    @staticmethod
    async def to_thread(func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        return func(*args, **kwargs)


async def _on_the_loop_unless_tracing(
    default: Callable[..., Awaitable[Any]],
    ctx: contextvars.Context,
    func: Callable[..., Any],
    /,
    *args: Any,
    **kwargs: Any,
) -> Any:
    if tracing_is_enabled():
        return await default(ctx, func, *args, **kwargs)
    return ctx.run(func, *args, **kwargs)
