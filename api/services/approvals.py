"""Decisions on tool calls that wait for approval: they resume the paused turn as a new run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from api.errors import Conflict, InvalidInput
from api.services.messages import pending_approval, ready
from api.state import AppState
from graphs import approval
from graphs.events import EventSource
from storage.rows import RunRow


async def decide(
    state: AppState, user_id: UUID, chat_id: UUID, decisions: Sequence[Mapping[str, Any]]
) -> tuple[RunRow, EventSource]:
    """Resume the chat's paused turn with ``decisions`` (one per waiting tool call): 409
    ``no_approval_pending`` when none waits, 422 ``decisions_do_not_match`` when they do not
    answer each waiting call once."""
    _, chat, agent, personal = await ready(state, user_id, chat_id)
    calls = await pending_approval(state, chat)
    if not calls:
        raise Conflict("No tool call of this chat waits for approval", code="no_approval_pending")
    try:
        resume = approval.resume_value(calls, decisions)
    except approval.DecisionError as exc:
        raise InvalidInput(str(exc), code="decisions_do_not_match") from None
    return await state.runs.start(
        chat=chat, agent=agent, user_id=user_id, content="", profile=personal, resume=resume
    )
