"""Sharing a chat read-only: with other registered users (by email), and by a public link.

Only the owner manages a chat's shares and link (``get_owned``): to anyone else, its viewers
included, those routes answer 404 as for a chat that does not exist. Viewers read through
``chats.get_readable``; every write and run keeps ``get_owned``, so a revoked share is a 404
on the very next request.
"""

from __future__ import annotations

from typing import Any, Final
from uuid import UUID

from api.errors import Conflict, NotFound, TooManyRequests
from api.security import hash_share_token, new_share_token
from api.services.chats import chat_out, get_owned
from api.services.messages import snapshot_messages
from api.state import AppState
from storage import rate_limits as rate_limits_store
from storage import runs as runs_store
from storage import shares as shares_store
from storage import users as users_store
from storage.db import Conn
from storage.rows import SharedChatRow, ShareRow
from storage.types import ShareRole

USER_NOT_FOUND: Final = "user_not_found"
CANNOT_SHARE_WITH_SELF: Final = "cannot_share_with_self"
SHARE_NOT_FOUND: Final = "share_not_found"
SHARE_LINK_NOT_FOUND: Final = "share_link_not_found"
# The window of ``shares_per_minute``, counted per user (the rate-limit table's client key).
SHARE_WINDOW_SECONDS: Final = 60


def share_out(row: ShareRow) -> dict[str, Any]:
    return {k: row[k] for k in ("user_id", "email", "role", "created_at")}


def shared_chat_out(row: SharedChatRow) -> dict[str, Any]:
    return {
        **chat_out(row),
        "access": row["role"],
        "owner": {"id": row["user_id"], "name": row["owner_name"]},
        "shared_at": row["shared_at"],
    }


async def share(
    state: AppState, owner_id: UUID, chat_id: UUID, email: str, role: ShareRole
) -> tuple[dict[str, Any], bool]:
    """Share the owner's chat with the user who has ``email``; ``True`` if it was not shared
    with them before (sharing again changes nothing but the role)."""
    async with state.pool.connection() as conn:
        await get_owned(conn, chat_id, owner_id)
        # Each answer says whether an email has an account (as registering does): counted
        # per user, before the lookup, so the limit bounds how fast anyone can learn that.
        hits, retry_after = await rate_limits_store.hit(
            conn, "share", str(owner_id), SHARE_WINDOW_SECONDS
        )
        if hits > state.settings.shares_per_minute:
            raise TooManyRequests(
                "Too many shares; try again later", headers={"Retry-After": str(retry_after)}
            )
        user = await users_store.get_by_email(conn, email)
        # The email is not repeated: the caller has it, and logs of answers should not.
        if user is None:
            raise NotFound("No account has this email", code=USER_NOT_FOUND)
        if user["id"] == owner_id:
            # Well-formed, and a share to anyone else: it conflicts with who owns the chat.
            raise Conflict(
                "This is your own chat; share it with someone else", code=CANNOT_SHARE_WITH_SELF
            )
        row = await shares_store.upsert(
            conn, chat_id=chat_id, owner_id=owner_id, user_id=user["id"], role=role
        )
    if row is None:
        raise NotFound("Chat not found")
    return share_out(row), row.get("created", False)


async def shares(
    conn: Conn, owner_id: UUID, chat_id: UUID, *, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """Whom the owner's chat is shared with, oldest share first, and with how many."""
    await get_owned(conn, chat_id, owner_id)
    rows, total = await shares_store.list_for_chat(conn, chat_id, limit=limit, offset=offset)
    return [share_out(row) for row in rows], total


async def revoke(conn: Conn, owner_id: UUID, chat_id: UUID, user_id: UUID) -> None:
    """Stop sharing the owner's chat with ``user_id``; their next read is a 404."""
    await get_owned(conn, chat_id, owner_id)
    if not await shares_store.delete(conn, chat_id, user_id):
        raise NotFound("This chat is not shared with that user", code=SHARE_NOT_FOUND)


async def shared_with(
    conn: Conn, user_id: UUID, *, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """A page of the chats shared with the user, most recently active first."""
    rows, total = await shares_store.shared_with(conn, user_id, limit=limit, offset=offset)
    return [shared_chat_out(row) for row in rows], total


async def _settled(state: AppState, chat_id: UUID) -> Any:
    """The chat's newest snapshot that no active run wrote (``None``: no messages yet).

    What a run in progress has checkpointed is not settled: a `rollback` deletes it, and a
    link must not point at a checkpoint that can vanish. So a link made while a run is going
    shows the chat as it was before that run. The tip is read before the active runs: a run
    that starts in between has not written it."""
    threads = state.runs.threads
    snapshot = await threads.snapshot(chat_id)
    async with state.pool.connection() as conn:
        active = {str(run_id) for run_id in await runs_store.active_run_ids(conn, chat_id)}
    while snapshot is not None and (snapshot.metadata or {}).get("run_id") in active:
        parent = snapshot.parent_config
        if parent is None:
            return None
        snapshot = await threads.snapshot(chat_id, parent["configurable"]["checkpoint_id"])
    return snapshot


async def create_link(state: AppState, owner_id: UUID, chat_id: UUID) -> dict[str, Any]:
    """A new public read-only link to the owner's chat as it is now, replacing the one it had
    (whose token stops working). The token is in this answer only."""
    async with state.pool.connection() as conn:
        await get_owned(conn, chat_id, owner_id)
    snapshot = await _settled(state, chat_id)
    token, token_hash = new_share_token()
    checkpoint_id = snapshot.config["configurable"]["checkpoint_id"] if snapshot else None
    async with state.pool.connection() as conn:
        row = await shares_store.upsert_link(
            conn,
            chat_id=chat_id,
            owner_id=owner_id,
            token_hash=token_hash,
            checkpoint_id=checkpoint_id,
        )
    if row is None:
        raise NotFound("Chat not found")
    return {
        "token": token,
        "url": f"/shared/{token}",
        "created_at": row["created_at"],
        "message_count": len(snapshot_messages(snapshot, chat_id)) if snapshot else 0,
    }


async def _link_messages(
    state: AppState, chat_id: UUID, checkpoint_id: str | None
) -> list[dict[str, Any]] | None:
    """The messages a link shows (feedback null); ``None`` if its checkpoint is gone,
    which only a rollback racing the link's creation can do."""
    if checkpoint_id is None:
        return []
    snapshot = await state.runs.threads.snapshot(chat_id, checkpoint_id)
    return snapshot_messages(snapshot, chat_id) if snapshot is not None else None


async def link(state: AppState, owner_id: UUID, chat_id: UUID) -> dict[str, Any]:
    """The owner's chat's link: when it was made and how many messages it shows."""
    async with state.pool.connection() as conn:
        await get_owned(conn, chat_id, owner_id)
        row = await shares_store.get_link(conn, chat_id)
    if row is None:
        raise NotFound("This chat has no share link", code=SHARE_LINK_NOT_FOUND)
    messages = await _link_messages(state, chat_id, row["checkpoint_id"])
    return {"created_at": row["created_at"], "message_count": len(messages or [])}


async def revoke_link(conn: Conn, owner_id: UUID, chat_id: UUID) -> None:
    await get_owned(conn, chat_id, owner_id)
    if not await shares_store.delete_link(conn, chat_id):
        raise NotFound("This chat has no share link", code=SHARE_LINK_NOT_FOUND)


async def open_link(state: AppState, token: str) -> dict[str, Any]:
    """What the link with ``token`` shows, to anyone: the chat's title, its agent's name and
    its messages as they were when the link was made. Feedback is the owner's own notes on
    the answers: ``metadata.feedback`` stays null."""
    async with state.pool.connection() as conn:
        row = await shares_store.open_link(conn, hash_share_token(token))
    if row is None:
        raise NotFound("Share link not found")
    messages = await _link_messages(state, row["chat_id"], row["checkpoint_id"])
    if messages is None:
        raise NotFound("Share link not found")
    return {
        "title": row["title"],
        "agent_name": row["agent_name"],
        "shared_at": row["created_at"],
        "messages": messages,
    }
