"""What the lifespan opens and every request shares."""

from __future__ import annotations

from dataclasses import dataclass

from api.security import TokenCodec
from api.settings import Settings
from graphs.runtime import Runtime
from storage.db import EmbeddedPostgres, PoolType


@dataclass
class AppState:
    settings: Settings
    pool: PoolType
    tokens: TokenCodec
    runs: Runtime
    embedded: EmbeddedPostgres | None = None
