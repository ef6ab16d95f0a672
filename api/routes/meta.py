"""Health and server information."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import State
from api.services.health import database_answers

router = APIRouter(tags=["meta"])


def server_version() -> str:
    try:
        return version("switchboard")
    except PackageNotFoundError:
        return "0.0.0+unknown"


@router.get("/healthz")
async def healthz(state: State) -> Any:
    """Liveness and database reachability."""
    if not await database_answers(state):
        return JSONResponse(
            status_code=503, content={"detail": "Database unavailable", "code": "unavailable"}
        )
    return {"status": "ok"}


@router.get("/info")
async def info(state: State) -> dict[str, Any]:
    """What this server is running: version, database kind and the default model."""
    return {
        "name": "switchboard",
        "version": server_version(),
        "database": state.settings.database_kind,
        "default_model": state.settings.effective_default_model,
    }
