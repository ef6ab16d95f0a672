"""Webhooks, for both APIs: which URLs a run may name, and how a run shows its delivery.

A run created with ``webhook`` (``POST /chats/{id}/messages``, or any Agent Protocol run) has
its final record POSTed there once it ends (``api.services.webhook_delivery``). The URL is
checked by the SSRF guard (``tools.net_guard``) when the run is created, before anything is
made, and again before every attempt. A server without ``SWITCHBOARD_WEBHOOK_SECRET`` signs
nothing, so it sends nothing either: such runs are refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from api.errors import InvalidInput
from api.settings import Settings
from api.state import AppState
from storage import webhooks as webhooks_store
from storage.rows import DeliveryStateRow, RunRow
from tools import net_guard

WEBHOOK_NOT_ALLOWED = "webhook_not_allowed"
WEBHOOKS_DISABLED = "webhooks_disabled"


async def destination(settings: Settings, url: str) -> net_guard.Destination:
    """Where a request for ``url`` may go (``net_guard.Refused`` when nowhere): the guard with
    this server's allowlist, the name's resolution bounded by the attempt time limit."""
    try:
        async with asyncio.timeout(settings.webhook_timeout_seconds):
            return await net_guard.check(url, allowed_hosts=settings.webhook_allowed_hosts)
    except TimeoutError:
        raise net_guard.Unresolvable("the URL's host did not resolve in time") from None


async def checked(settings: Settings, url: str | None) -> str | None:
    """``url`` if a run may name it as its webhook; a 422 otherwise (nothing is created)."""
    if url is None:
        return None
    if settings.webhook_secret is None:
        raise InvalidInput(
            "This server sends no webhooks (SWITCHBOARD_WEBHOOK_SECRET is not set)",
            code=WEBHOOKS_DISABLED,
        )
    try:
        await destination(settings, url)
    except net_guard.Refused as refused:
        raise InvalidInput(
            f"This webhook is not allowed: {refused.reason}", code=WEBHOOK_NOT_ALLOWED
        ) from None
    return url


def webhook_out(run: RunRow, delivery: DeliveryStateRow | None) -> dict[str, Any] | None:
    """A run's ``webhook`` as both APIs show it: ``None`` without one; ``pending`` with no
    attempts until the run has ended and been tried."""
    if run["webhook_url"] is None:
        return None
    if delivery is None:
        return {"url": run["webhook_url"], "status": "pending", "attempts": []}
    return {
        "url": run["webhook_url"],
        "status": delivery["status"],
        "attempts": delivery["attempts"],
    }


async def deliveries(state: AppState, runs: Sequence[RunRow]) -> dict[UUID, DeliveryStateRow]:
    """The deliveries of those runs that have one, by run id (a query only when one of them
    named a webhook)."""
    ids = [run["id"] for run in runs if run["webhook_url"] is not None]
    if not ids:
        return {}
    async with state.pool.connection() as conn:
        return await webhooks_store.states(conn, ids)
