"""Health, info, OpenAPI and the error shape for routes that do not exist."""

from __future__ import annotations

import httpx

from tests.conftest import assert_error


async def test_healthz_checks_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_info_names_version_database_and_default_model(client: httpx.AsyncClient) -> None:
    response = await client.get("/info")
    assert response.status_code == 200
    assert response.json() == {
        "name": "switchboard",
        "version": "0.1.0",
        "database": "external",
        "default_model": "fake:echo",
    }


async def test_openapi_lists_the_routes(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in (
        "/auth/register",
        "/auth/login",
        "/auth/refresh",
        "/auth/logout",
        "/users/me",
        "/users/me/onboarding",
        "/users/me/onboarding-status",
        "/users/me/onboarding-options",
        "/users/me/professional-profile",
        "/interest-areas",
        "/agents/",
        "/agents/{agent_id}",
        "/chats/",
        "/chats/{chat_id}",
        "/healthz",
        "/info",
    ):
        assert path in paths, path
    login_body = paths["/auth/login"]["post"]["requestBody"]["content"]
    assert set(login_body) == {"application/json", "application/x-www-form-urlencoded"}


async def test_unknown_route_is_a_json_404(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/no-such-route"), 404, "not_found")


async def test_wrong_method_is_a_json_405(client: httpx.AsyncClient) -> None:
    assert_error(await client.delete("/interest-areas"), 405, "method_not_allowed")
