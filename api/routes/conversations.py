"""What people do with a finished conversation besides talking: feedback on its answers.
Included before the ``/chats`` router, so routes with a fixed segment where ``/chats/{chat_id}``
has its UUID (an export of every chat, chats shared with me: issue 13) can join it."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Response, status

from api.deps import CurrentUserId, State
from api.openapi import errors
from api.schemas.feedback import FeedbackIn, FeedbackOut
from api.services import feedback as feedback_service

router = APIRouter(prefix="/chats", tags=["conversations"])

MessageIdPath = Annotated[str, Path(min_length=1, max_length=200)]


@router.put(
    "/{chat_id}/messages/{message_id}/feedback",
    response_model=FeedbackOut,
    responses=errors(404, 422),
)
async def put_feedback(
    chat_id: UUID, message_id: MessageIdPath, body: FeedbackIn, user_id: CurrentUserId, state: State
) -> dict[str, Any]:
    """Vote on an agent message of your chat (`score` -1, 0 or 1, and an optional `comment`);
    a second vote replaces the first. It shows in the message's `metadata.feedback`, in
    exports and in replays. Another kind of message is a 422 `not_an_agent_message`."""
    return await feedback_service.put(
        state, user_id, chat_id, message_id, score=body.score, comment=body.comment
    )


@router.delete(
    "/{chat_id}/messages/{message_id}/feedback",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(404),
)
async def delete_feedback(
    chat_id: UUID, message_id: MessageIdPath, user_id: CurrentUserId, state: State
) -> Response:
    """Remove your vote; a message without one is a 404 `feedback_not_found`."""
    await feedback_service.delete(state, user_id, chat_id, message_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
