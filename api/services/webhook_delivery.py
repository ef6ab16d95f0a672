"""Delivering webhooks in the background: a run's final record, POSTed and signed.

A run that named a ``webhook`` gets a delivery row when it ends (``storage.webhooks``). Every
process that has ``SWITCHBOARD_WEBHOOK_SECRET`` (API processes and workers alike) runs this
job: it claims due deliveries (``FOR UPDATE SKIP LOCKED``, leased for one attempt's time, so
processes share the work and one that dies leaves its deliveries to the others), sends each
one, and records the attempt. A run ending in this process wakes it; otherwise it looks every
``POLL_SECONDS``. Deliveries live in Postgres, so they survive a restart.

Each attempt checks the URL with the SSRF guard again (the name may resolve elsewhere now) and
connects to the address it checked; redirects are not followed. A 2xx delivers; a connection
error, a timeout, a 429 or a 5xx is tried again after ``webhook_backoff_seconds``, doubling,
until ``webhook_max_attempts``; any other answer, or a URL the guard now refuses, fails at once.

What is sent: the run as ``GET`` shows it in the API that created it (``GET /runs/{id}`` for a
native run, ``GET /threads/{id}/runs/{id}`` for an Agent Protocol one), without its ``webhook``
field, as compact JSON; with ``X-Switchboard-Timestamp`` (Unix seconds) and
``X-Switchboard-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" under the secret>``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from datetime import UTC, datetime
from typing import Final
from uuid import UUID

import httpx
from fastapi.encoders import jsonable_encoder

from api.schemas.messages import RunOut
from api.services.background import BackgroundJob
from api.services.protocol_runs import run_json
from api.services.webhooks import WEBHOOK_NOT_ALLOWED, destination
from api.settings import Settings
from storage import webhooks as webhooks_store
from storage.db import PoolType
from storage.rows import ClaimedDeliveryRow, RunRow
from tools import net_guard

log = logging.getLogger(__name__)

POLL_SECONDS: Final = 2.0
# Deliveries one process sends at once (one claim).
BATCH: Final = 16
TIMESTAMP_HEADER: Final = "X-Switchboard-Timestamp"
SIGNATURE_HEADER: Final = "X-Switchboard-Signature"


def final_record(run: RunRow) -> bytes:
    """The body of a run's webhook: the run as its API's ``GET`` shows it, without ``webhook``."""
    if (run["input"] or {}).get("kind") == "protocol":
        shown = jsonable_encoder(run_json(run))
    else:
        shown = RunOut.model_validate(run).model_dump(mode="json")
    shown.pop("webhook", None)
    return json.dumps(shown, separators=(",", ":"), ensure_ascii=False).encode()


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=`` and the hex HMAC-SHA256, under ``secret``, of ``<timestamp>.<body>``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


class WebhookDeliverer(BackgroundJob):
    name = "webhook-deliverer"

    def __init__(
        self, pool: PoolType, settings: Settings, *, poll_seconds: float = POLL_SECONDS
    ) -> None:
        super().__init__(poll_seconds=poll_seconds)
        self.pool = pool
        self.settings = settings
        self._client: httpx.AsyncClient | None = None
        # Claimed and not recorded yet: let go of at shutdown, for the next process.
        self._in_flight: set[UUID] = set()
        self._retries: set[asyncio.TimerHandle] = set()

    @property
    def enabled(self) -> bool:
        return self.settings.webhook_secret is not None

    async def open(self) -> None:
        if not self.enabled:
            return
        self._client = httpx.AsyncClient(
            # Never a proxy from the environment (it would connect instead of us, to the name),
            # never a redirect (a URL nobody checked), never a connection kept for another
            # request (it was opened for one host's name, maybe another's certificate).
            trust_env=False,
            follow_redirects=False,
            timeout=self.settings.webhook_timeout_seconds,
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={"User-Agent": "switchboard-webhooks"},
        )
        await super().open()

    async def aclose(self) -> None:
        await super().aclose()
        for handle in self._retries:
            handle.cancel()
        if self._in_flight:
            try:
                async with self.pool.connection() as conn:
                    await webhooks_store.release(conn, list(self._in_flight))
            except Exception:
                log.warning("could not let go of webhook deliveries; retried after their lease")
        if self._client is not None:
            await self._client.aclose()

    async def step(self) -> bool:
        settings = self.settings
        async with self.pool.connection() as conn:
            claimed = await webhooks_store.claim_due(
                conn, limit=BATCH, lease_seconds=settings.webhook_timeout_seconds + 10
            )
        if not claimed:
            return False
        self._in_flight.update(row["run"]["id"] for row in claimed)
        sent = [self._deliver(row) for row in claimed]
        for failure in await asyncio.gather(*sent, return_exceptions=True):
            if isinstance(failure, Exception):
                # Not recorded (the database?): tried again once its lease has passed.
                log.error("could not record a webhook attempt (%s)", type(failure).__name__)
        return True

    async def _deliver(self, delivery: ClaimedDeliveryRow) -> None:
        run_id = delivery["run"]["id"]
        number = delivery["attempted"] + 1
        started = datetime.now(UTC)
        status_code, error, retry = await self._attempt(delivery)
        if status_code is not None and 200 <= status_code < 300:
            outcome = "delivered"
        elif retry and number < self.settings.webhook_max_attempts:
            outcome = "pending"
        else:
            outcome = "failed"
        retry_in = self.settings.webhook_backoff_seconds * 2 ** (number - 1)
        attempt = {"at": started.isoformat(), "status_code": status_code, "error": error}
        async with self.pool.connection() as conn:
            await webhooks_store.record_attempt(
                conn, run_id, attempt=attempt, status=outcome, retry_in=retry_in
            )
        self._in_flight.discard(run_id)
        answer = error or f"HTTP {status_code}"
        if outcome == "pending":
            log.info("webhook of run %s: attempt %d got %s; again in %g s",
                     run_id, number, answer, retry_in)  # fmt: skip
            self._wake_in(retry_in)
        elif outcome == "failed":
            log.warning("webhook of run %s failed after %d attempt(s): %s", run_id, number, answer)

    def run_ended(self, run: RunRow) -> None:
        """A run of this process ended: with a webhook, its delivery is due now."""
        if run["webhook_url"] is not None:
            self.wake()

    def _wake_in(self, seconds: float) -> None:
        """Look again when a retry this process scheduled is due (the poll would, later)."""
        handle: asyncio.TimerHandle

        def due() -> None:
            self._retries.discard(handle)
            self.wake()

        handle = asyncio.get_running_loop().call_later(seconds, due)
        self._retries.add(handle)

    async def _attempt(self, delivery: ClaimedDeliveryRow) -> tuple[int | None, str | None, bool]:
        """One POST: (status code, error, whether to try again). Never raises but to cancel."""
        assert self._client is not None and self.settings.webhook_secret is not None
        secret = self.settings.webhook_secret.get_secret_value()
        try:
            body = final_record(delivery["run"])
            async with asyncio.timeout(self.settings.webhook_timeout_seconds):
                target = await destination(self.settings, delivery["url"])
                url, headers, extensions = target.request()
                timestamp = str(int(time.time()))
                headers |= {
                    "Content-Type": "application/json",
                    TIMESTAMP_HEADER: timestamp,
                    SIGNATURE_HEADER: signature(secret, timestamp, body),
                }
                request = self._client.build_request(
                    "POST", url, content=body, headers=headers, extensions=extensions
                )
                # Streamed and closed unread: only the status matters, however long the body.
                response = await self._client.send(request, stream=True)
                await response.aclose()
        except net_guard.Unresolvable:
            return None, "name_not_resolved", True
        except net_guard.Refused:
            return None, WEBHOOK_NOT_ALLOWED, False
        except (TimeoutError, httpx.TimeoutException):
            return None, "Timeout", True
        except (httpx.TransportError, OSError) as exc:
            return None, type(exc).__name__, True
        except Exception as exc:
            log.exception("webhook of run %s: the attempt failed", delivery["run"]["id"])
            return None, type(exc).__name__, True
        code = response.status_code
        return code, None, code == 429 or code >= 500
