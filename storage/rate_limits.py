"""Fixed-window request counters per (bucket, client address), shared by every API replica."""

from __future__ import annotations

from storage.db import Conn

# One statement per request: start a window, or count into the current one. Concurrent hits on
# the same row serialize on it, so the count is exact. ``retry_after`` is in whole seconds.
HIT = """
INSERT INTO auth_rate_limits AS r (bucket, client_key, hits, resets_at)
VALUES (%(bucket)s, %(client)s, 1, now() + make_interval(secs => %(window)s))
ON CONFLICT (bucket, client_key) DO UPDATE SET
    hits = CASE WHEN r.resets_at <= now() THEN 1 ELSE r.hits + 1 END,
    resets_at = CASE WHEN r.resets_at <= now() THEN EXCLUDED.resets_at ELSE r.resets_at END
RETURNING r.hits, greatest(1, ceil(extract(epoch FROM r.resets_at - now())))::int AS retry_after
"""
PRUNE = "DELETE FROM auth_rate_limits WHERE resets_at <= now()"


async def hit(conn: Conn, bucket: str, client_key: str, window_seconds: int) -> tuple[int, int]:
    """Count one request of ``client_key`` in ``bucket``.

    Returns:
        ``(requests in the current window including this one, seconds until it resets)``.
    """
    params = {"bucket": bucket, "client": client_key, "window": window_seconds}
    cur = await conn.execute(HIT, params)
    row = await cur.fetchone()
    assert row is not None
    if row["hits"] == 1:
        # A window started: at most once per address and window, drop the windows that are over.
        await conn.execute(PRUNE)
    return row["hits"], row["retry_after"]
