"""Deleting an account, and everything of its user's with it (issue 14 item 8).

What goes, in this order:

0. The user's crons, so that none starts a run (on a new thread) while the rest goes.
1. Each chat of the user's, exactly as ``DELETE /chats/{id}`` deletes it (``chats.delete``):
   its active runs are stopped first, then the chat with its runs, feedback, shares, share
   link, replays and files (and their knowledge chunks), then every checkpoint of its thread.
2. In one transaction that holds the user's row locked, so that nothing referencing the user
   can be inserted meanwhile: every store item under ``("users", <id>)`` (memories and the
   Agent Protocol store's items), then the row, with what references it (refresh tokens,
   interests, shares of others' chats with them; ``ON DELETE CASCADE``). A chat created while
   step 1 ran is found here under the lock, and step 1 runs again for it.

What stays: the agents the user made as an admin and the agent documents they uploaded (an
agent's document outlives the admin who uploaded it; ``ON DELETE SET NULL``), and the login
failures recorded for their email (they age out with the login window).

Afterwards the user's access tokens are refused (every route reads the user, or answers 401
when its first statement finds no user), their refresh tokens are gone, and the email can
register again as a new account.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Final
from uuid import UUID

from api.errors import INVALID_TOKEN, Conflict, NotFound, Unauthorized
from api.services import auth as auth_service
from api.services import chats as chats_service
from api.state import AppState
from storage import chats as chats_store
from storage import crons as crons_store
from storage import store as store_db
from storage import users as users_store
from storage.rows import UserRow

log = logging.getLogger(__name__)

# Rounds of "delete the chats, then the user unless a chat appeared meanwhile": only a client
# creating chats as fast as they are deleted needs a second.
ROUNDS: Final = 5


async def delete(state: AppState, user: UserRow, password: str, *, client: str) -> None:
    """Delete ``user``'s account once ``password`` confirms it is them (403 otherwise, and
    nothing changes; 429 past the login limits)."""
    await auth_service.confirm_password(state, user, password, client=client)
    user_id = user["id"]
    async with state.pool.connection() as conn:
        await crons_store.delete_of_user(conn, user_id)
    for _ in range(ROUNDS):
        await _delete_chats(state, user_id)
        async with state.pool.connection() as conn, conn.transaction():
            if not await users_store.lock(conn, user_id):
                raise Unauthorized(INVALID_TOKEN)  # deleted meanwhile, by another request
            if await chats_store.ids_of_user(conn, user_id):
                continue  # created while the others were deleted: delete those too
            items = await store_db.delete_prefix(conn, store_db.user_namespace(user_id))
            await users_store.delete(conn, user_id)
        log.info("deleted user %s and %d store item(s) of theirs", user_id, items)
        return
    raise Conflict("Chats kept being created while the account was deleted; try again")


async def _delete_chats(state: AppState, user_id: UUID) -> None:
    async with state.pool.connection() as conn:
        chat_ids = await chats_store.ids_of_user(conn, user_id)
    for chat_id in chat_ids:
        with contextlib.suppress(NotFound):  # deleted meanwhile, by another request
            await chats_service.delete(state, user_id, chat_id)
