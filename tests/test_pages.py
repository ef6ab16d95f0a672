"""What a browser opens without the API's bearer header: the page and the documentation served
from local assets, and a run's stream opened with a short-lived stream token."""

from __future__ import annotations

import logging
import re
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI

from api.errors import INVALID_TOKEN
from api.pages import DOCS_ASSETS_PATH, PAGE_HEADERS
from api.security import ACCESS_LOG_REDACTION, redact_path
from tests.conftest import User, assert_error
from tests.sse import parse
from tests.test_messages import MakeAgent, make_agent, open_chat, stream

__all__ = ["make_agent"]


async def test_the_page_is_served_at_the_root_with_a_strict_policy(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for name, value in PAGE_HEADERS.items():
        assert page.headers[name] == value
    # Every script and stylesheet the page names is served here, with the same policy.
    assets = re.findall(r'(?:src|href)="(/web/[^"]+)"', page.text)
    assert assets, page.text
    for path in assets:
        asset = await client.get(path)
        assert asset.status_code == 200, path
        assert asset.headers["Content-Security-Policy"] == PAGE_HEADERS["Content-Security-Policy"]
    assert "http://" not in page.text and "https://" not in page.text


async def test_a_missing_asset_is_a_json_404(client: httpx.AsyncClient) -> None:
    missing = await client.get("/web/no-such-file.js")
    assert_error(missing, 404)
    traversal = await client.get("/web/..%2Fpages.py")
    assert traversal.status_code == 404
    assert "fastapi_offline" not in traversal.text and "import" not in traversal.text


@pytest.mark.parametrize(
    ("page", "asset"),
    [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")],
)
async def test_the_documentation_needs_no_internet(
    client: httpx.AsyncClient, page: str, asset: str
) -> None:
    html = (await client.get(page)).text
    assert f'src="{DOCS_ASSETS_PATH}/{asset}"' in html
    # Nothing is fetched from elsewhere: no CDN, no web fonts.
    assert not re.search(r'(?:src|href)="https?://', html), html
    served = await client.get(f"{DOCS_ASSETS_PATH}/{asset}")
    assert served.status_code == 200
    assert "javascript" in served.headers["content-type"]
    assert len(served.content) > 100_000
    # The document the page renders is there.
    assert (await client.get("/openapi.json")).json()["info"]["title"] == "Switchboard"


async def _finished_run(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> tuple[str, list]:
    agent = await make_agent("fake:tokens-5")
    chat_id = await open_chat(client, user, agent["id"])
    _, live, _ = await stream(client, user, chat_id, "go")
    return live[0].data["run_id"], live


async def test_a_stream_token_opens_that_runs_stream_without_a_header(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    run_id, live = await _finished_run(client, user, make_agent)
    issued = await client.post(f"/runs/{run_id}/stream-token", headers=user.headers)
    assert issued.status_code == 200, issued.text
    body = issued.json()
    assert body["expires_in"] == 60
    assert body["stream_url"] == f"/runs/{run_id}/stream?stream_token={body['token']}"
    whole = await client.get(body["stream_url"])
    assert whole.status_code == 200
    assert parse(whole.text)[0] == live
    # As an EventSource reconnects: the same URL, the last id in the header.
    resumed = await client.get(body["stream_url"], headers={"Last-Event-ID": "3"})
    assert parse(resumed.text)[0] == live[3:]
    by_query = await client.get(body["stream_url"] + "&last_event_id=5")
    assert parse(by_query.text)[0] == live[5:]
    # Reopened with a query, then reconnected by the EventSource itself: its header names the
    # later event, and that one counts (and the other way round).
    later = await client.get(
        body["stream_url"] + "&last_event_id=2", headers={"Last-Event-ID": "6"}
    )
    assert parse(later.text)[0] == live[6:]
    earlier = await client.get(
        body["stream_url"] + "&last_event_id=6", headers={"Last-Event-ID": "2"}
    )
    assert parse(earlier.text)[0] == live[6:]


async def test_a_stream_token_opens_nothing_else(
    app: FastAPI,
    client: httpx.AsyncClient,
    user: User,
    other_user: User,
    make_agent: MakeAgent,
) -> None:
    run_id, _ = await _finished_run(client, user, make_agent)
    other_run, _ = await _finished_run(client, other_user, make_agent)
    token = (await client.post(f"/runs/{run_id}/stream-token", headers=user.headers)).json()[
        "token"
    ]
    # Not another run, even one of the same user.
    second_run, _ = await _finished_run(client, user, make_agent)
    for run in (second_run, other_run):
        refused = await client.get(f"/runs/{run}/stream", params={"stream_token": token})
        assert assert_error(refused, 401, "unauthorized")["detail"] == INVALID_TOKEN
    # Not as a bearer token, anywhere.
    for path in ("/users/me", f"/runs/{run_id}", f"/runs/{run_id}/stream"):
        refused = await client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert assert_error(refused, 401, "unauthorized")["detail"] == INVALID_TOKEN
    # Not once it has expired, and not forged.
    codec = app.state.switchboard.tokens
    expired = codec.issue_stream(UUID(user.id), UUID(run_id), -10)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for bad in (expired, forged, "not-a-token", user.access_token):
        refused = await client.get(f"/runs/{run_id}/stream", params={"stream_token": bad})
        assert assert_error(refused, 401, "unauthorized")["detail"] == INVALID_TOKEN
    missing = await client.get(f"/runs/{run_id}/stream")
    assert assert_error(missing, 401, "unauthorized")["detail"] == "Not authenticated"


async def test_only_the_runs_owner_gets_a_stream_token(
    client: httpx.AsyncClient, user: User, other_user: User, make_agent: MakeAgent
) -> None:
    run_id, _ = await _finished_run(client, user, make_agent)
    assert_error(await client.post(f"/runs/{run_id}/stream-token", headers=other_user.headers), 404)
    assert_error(await client.post(f"/runs/{uuid4()}/stream-token", headers=user.headers), 404)
    assert_error(await client.post(f"/runs/{run_id}/stream-token"), 401)


def test_no_stream_token_reaches_a_log() -> None:
    path = "/runs/1/stream?last_event_id=4&stream_token=eyJhbGciOi.secret.sig&x=1"
    assert redact_path(path) == "/runs/1/stream?last_event_id=4&stream_token=<redacted>&x=1"
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:1", "GET", "/runs/1/stream?stream_token=abc.def", "1.1", 200), None,
    )  # fmt: skip
    ACCESS_LOG_REDACTION.filter(record)
    assert "abc.def" not in record.getMessage()
    assert "stream_token=<redacted>" in record.getMessage()
