"""Prometheus metrics of this process, for administrators (and the Prometheus they equip)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from api.deps import AdminUser, State
from api.metrics import CONTENT_TYPE
from api.services import metrics as metrics_service

router = APIRouter(tags=["meta"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "This process's metrics in the Prometheus text format (version "
            "0.0.4); every metric is described in docs/metrics.md",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def metrics(state: State, _: AdminUser) -> Response:
    """Prometheus metrics of the process that answers: HTTP traffic by route template, runs,
    time to first token, streams, tokens, the pool, event logs, worker claims. Administrators
    only: the figures describe every user's activity."""
    return Response(await metrics_service.exposition(state), media_type=CONTENT_TYPE)
