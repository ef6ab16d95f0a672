"""What the health check asks of the server's parts."""

from __future__ import annotations

from api.state import AppState
from storage.db import ping


async def database_answers(state: AppState) -> bool:
    """Whether Postgres answers a query within 5 seconds."""
    return await ping(state.pool, seconds=5)
