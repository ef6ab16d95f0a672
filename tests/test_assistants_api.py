"""Assistants (the Agent Protocol's agents): one set of rules with /agents, listings in SQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import User, assert_error

# Each is refused by the agent's own rules; the field is named in the 422.
BAD_CREATES = [
    ({"name": "   "}, "name"),
    ({"name": "nul\x00name"}, "name"),
    ({"description": "d" * 1001}, "description"),
    ({"config": {"configurable": {"system_prompt": "p" * 20_001}}}, "system_prompt"),
    (
        {"config": {"configurable": {"tools_enabled": ["calculator", "calculator"]}}},
        "tools_enabled",
    ),
    ({"config": {"configurable": {"model_name": "x"}}}, "model_name"),
]


async def _assistants(client: httpx.AsyncClient, user: User) -> list[dict[str, Any]]:
    found = await client.post("/assistants/search", json={"limit": 1000}, headers=user.headers)
    assert found.status_code == 200
    return found.json()


@pytest.mark.parametrize(("change", "field"), BAD_CREATES)
async def test_a_bad_assistant_is_a_422_naming_the_field_and_nothing_is_created(
    client: httpx.AsyncClient, admin: User, change: dict[str, Any], field: str
) -> None:
    before = await _assistants(client, admin)
    body = {"graph_id": before[0]["graph_id"], **change}
    refused = await client.post("/assistants", json=body, headers=admin.headers)
    problems = assert_error(refused, 422, "validation_error")["detail"]
    assert field in problems[0]["loc"], problems
    assert await _assistants(client, admin) == before


@pytest.mark.parametrize(("change", "field"), BAD_CREATES)
async def test_a_bad_assistant_patch_is_a_422_naming_the_field_and_changes_nothing(
    client: httpx.AsyncClient, admin: User, change: dict[str, Any], field: str
) -> None:
    target = (await _assistants(client, admin))[0]
    url = f"/assistants/{target['assistant_id']}"
    refused = await client.patch(url, json=change, headers=admin.headers)
    problems = assert_error(refused, 422, "validation_error")["detail"]
    assert field in problems[0]["loc"], problems
    assert (await client.get(url, headers=admin.headers)).json() == target


async def test_an_unknown_model_is_a_422_on_both_apis(
    client: httpx.AsyncClient, admin: User
) -> None:
    target = (await _assistants(client, admin))[0]
    unknown = {"config": {"configurable": {"model_name": "nowhere:model"}}}
    patched = await client.patch(
        f"/assistants/{target['assistant_id']}", json=unknown, headers=admin.headers
    )
    native = await client.put(
        f"/agents/{target['assistant_id']}",
        json={"model_name": "nowhere:model"},
        headers=admin.headers,
    )
    assert assert_error(patched, 422, "invalid_input") == assert_error(native, 422, "invalid_input")


async def test_search_filters_sorts_and_pages_in_the_database(
    client: httpx.AsyncClient, admin: User
) -> None:
    base = (await _assistants(client, admin))[0]["graph_id"]
    for name in ("Zeta probe", "alpha probe", "Mid probe"):
        made = await client.post(
            "/assistants", json={"graph_id": base, "name": name}, headers=admin.headers
        )
        assert made.status_code == 200, made.text
    query = {"name": "PROBE", "sort_by": "name", "sort_order": "asc"}
    page = await client.post(
        "/assistants/search", json={**query, "limit": 2, "offset": 1}, headers=admin.headers
    )
    # Code-point order: capitals first.
    assert [a["name"] for a in page.json()] == ["Zeta probe", "alpha probe"]
    newest = await client.post(
        "/assistants/search", json={"name": "probe", "limit": 1}, headers=admin.headers
    )
    assert [a["name"] for a in newest.json()] == ["Mid probe"]
    count = await client.post("/assistants/count", json={"name": "probe"}, headers=admin.headers)
    assert count.json() == 3
    by_graph = await client.post(
        "/assistants/count", json={"graph_id": "no-such-graph"}, headers=admin.headers
    )
    assert by_graph.json() == 0
    with_metadata = await client.post(
        "/assistants/search", json={"metadata": {"k": "v"}}, headers=admin.headers
    )
    assert with_metadata.json() == []
