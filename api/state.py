"""What the lifespan opens and every request shares."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from api.security import TokenCodec
from api.settings import Settings
from graphs.runtime import Runtime
from storage.db import EmbeddedPostgres


@dataclass
class AppState:
    settings: Settings
    pool: AsyncConnectionPool
    tokens: TokenCodec
    runs: Runtime
    embedded: EmbeddedPostgres | None = None
