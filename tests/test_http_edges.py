"""HTTP edges answered the way the rest of the API answers: JSON errors, honest ``Allow``
headers, redirects that do not reflect the ``Host`` header."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from tests.conftest import User, assert_error, make_settings


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/agents/", "GET, POST"),
        ("PATCH", "/agents/", "GET, POST"),
        ("GET", "/runs/wait", "POST"),
        ("GET", "/runs/stream", "POST"),
        ("DELETE", "/runs/wait", "POST"),
    ],
)
async def test_a_method_the_path_does_not_serve_is_a_405_listing_every_method_it_does(
    client: httpx.AsyncClient, user: User, method: str, path: str, allow: str
) -> None:
    response = await client.request(method, path, headers=user.headers)
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == allow


@pytest.mark.parametrize("run_id", ["not-a-uuid", "%0D", "%0A", "%09"])
async def test_a_malformed_run_id_is_still_a_422(
    client: httpx.AsyncClient, user: User, run_id: str
) -> None:
    # A line break or tab as the id once made a 405 allowing nothing: the path was matched
    # against routes after urlsplit had dropped it (schemathesis, DELETE .../runs/%0D).
    thread = "/threads/00000000-0000-0000-0000-000000000000"
    for method, path in [("GET", f"/runs/{run_id}"), ("DELETE", f"{thread}/runs/{run_id}")]:
        response = await client.request(method, path, headers=user.headers)
        assert_error(response, 422, "validation_error")


@pytest.mark.parametrize("value", [False, True, "5", 2.5])
async def test_paging_numbers_are_numbers(
    client: httpx.AsyncClient, user: User, value: Any
) -> None:
    for route in ("/assistants/search", "/threads/search"):
        response = await client.post(route, json={"offset": value}, headers=user.headers)
        assert_error(response, 422, "validation_error")


async def test_a_whole_number_written_with_a_point_is_an_integer(
    client: httpx.AsyncClient, user: User
) -> None:
    # JSON has one number type, and JSON Schema calls 2.0 an integer: so does the server.
    for route in ("/assistants/search", "/threads/search"):
        response = await client.post(route, json={"offset": 2.0}, headers=user.headers)
        assert response.status_code == 200, response.text


async def test_the_trailing_slash_redirect_names_a_path_not_the_callers_host(
    client: httpx.AsyncClient, user: User
) -> None:
    response = await client.get("/agents?limit=3", headers={**user.headers, "Host": "evil.example"})
    assert response.status_code == 307
    assert response.headers["location"] == "/agents/?limit=3"


@pytest.fixture
async def cors_app(database_url: str) -> Any:
    settings = make_settings(database_url, cors_origins=["https://app.example"])
    app: FastAPI = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


async def test_a_refused_cors_preflight_is_a_json_error(cors_app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=cors_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        preflight = {"Access-Control-Request-Method": "POST"}
        refused = await http.options(
            "/chats/", headers={"Origin": "https://evil.example", **preflight}
        )
        body = assert_error(refused, 400, "cors_rejected")
        assert body["detail"] == "Disallowed CORS origin"
        allowed = await http.options(
            "/chats/", headers={"Origin": "https://app.example", **preflight}
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
