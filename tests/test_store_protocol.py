"""The Agent Protocol store through the official Python SDK (``langgraph-sdk``) on the app.

Two users share one store table; each sees only their own items and namespaces, whatever
namespace they name, and the ``("users", <id>)`` prefix the server adds never shows.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import psycopg
import pytest
from langgraph_sdk.errors import UnprocessableEntityError

from api.app import create_app
from tests.conftest import SDKFactory, User, assert_error, make_settings, running


async def _rows(database_url: str) -> list[tuple[str, str]]:
    async with await psycopg.AsyncConnection.connect(database_url) as db:
        cur = await db.execute("SELECT prefix, key FROM store ORDER BY prefix, key")
        return [(row[0], row[1]) for row in await cur.fetchall()]


async def test_put_get_search_delete_round_trip(
    sdk: SDKFactory, user: User, database_url: str
) -> None:
    alice = sdk(user)
    await alice.store.put_item(["notes", "work"], "n1", {"text": "quarterly report due friday"})
    await alice.store.put_item(["notes", "home"], "n2", {"text": "buy milk", "n": 2})

    item = await alice.store.get_item(["notes", "work"], "n1")
    assert item is not None
    assert item["namespace"] == ["notes", "work"]
    assert item["key"] == "n1"
    assert item["value"] == {"text": "quarterly report due friday"}
    assert set(item) == {"namespace", "key", "value", "created_at", "updated_at"}

    # Stored under the user's own prefix, which the answers never show.
    assert await _rows(database_url) == [
        (f"users.{user.id}.notes.home", "n2"),
        (f"users.{user.id}.notes.work", "n1"),
    ]

    found = await alice.store.search_items(["notes"])
    # Newest first without a query.
    assert [(i["namespace"], i["key"]) for i in found["items"]] == [
        (["notes", "home"], "n2"),
        (["notes", "work"], "n1"),
    ]
    assert [i["score"] for i in found["items"]] == [None, None]
    filtered = await alice.store.search_items(["notes"], filter={"n": {"$gte": 2}})
    assert [i["key"] for i in filtered["items"]] == ["n2"]
    # An empty prefix is all of the user's items.
    assert len((await alice.store.search_items([]))["items"]) == 2

    listed = await alice.store.list_namespaces()
    assert listed == {"namespaces": [["notes", "home"], ["notes", "work"]]}
    assert await alice.store.list_namespaces(max_depth=1) == {"namespaces": [["notes"]]}
    assert await alice.store.list_namespaces(suffix=["home"]) == {"namespaces": [["notes", "home"]]}

    # A put replaces the value; a delete removes the item and its vector.
    await alice.store.put_item(["notes", "work"], "n1", {"text": "report moved to monday"})
    replaced = await alice.store.get_item(["notes", "work"], "n1")
    assert replaced is not None and replaced["value"] == {"text": "report moved to monday"}
    await alice.store.delete_item(["notes", "work"], "n1")
    assert await alice.store.get_item(["notes", "work"], "n1") is None
    assert await _rows(database_url) == [(f"users.{user.id}.notes.home", "n2")]


async def test_another_user_sees_nothing_whatever_namespace_they_name(
    sdk: SDKFactory, user: User, other_user: User, database_url: str
) -> None:
    alice, bob = sdk(user), sdk(other_user)
    await alice.store.put_item(["memories"], "secret", {"text": "alice's bank pin is 1234"})
    await alice.store.put_item(["profile"], "p", {"text": "alice likes tea"})

    assert await bob.store.get_item(["memories"], "secret") is None
    # Alice's namespace spelled out in full is only a namespace within Bob's own.
    assert await bob.store.get_item(["users", user.id, "memories"], "secret") is None
    for prefix in ([], ["memories"], ["users"], ["users", user.id], ["users", user.id, "memories"]):
        assert (await bob.store.search_items(prefix))["items"] == []
        assert (await bob.store.search_items(prefix, query="bank pin"))["items"] == []
        assert await bob.store.list_namespaces(prefix=prefix or None) == {"namespaces": []}
    assert await bob.store.list_namespaces(suffix=["memories"]) == {"namespaces": []}
    assert await bob.store.list_namespaces(suffix=[user.id, "memories"]) == {"namespaces": []}

    # Bob's writes and deletes with Alice's names touch only Bob's namespace.
    await bob.store.delete_item(["memories"], "secret")
    await bob.store.delete_item(["users", user.id, "memories"], "secret")
    await bob.store.put_item(["users", user.id, "memories"], "secret", {"text": "overwritten"})
    mine = await alice.store.get_item(["memories"], "secret")
    assert mine is not None and mine["value"] == {"text": "alice's bank pin is 1234"}
    assert await bob.store.list_namespaces() == {"namespaces": [["users", user.id, "memories"]]}
    assert await alice.store.list_namespaces() == {"namespaces": [["memories"], ["profile"]]}
    assert await _rows(database_url) == sorted(
        [
            (f"users.{user.id}.memories", "secret"),
            (f"users.{user.id}.profile", "p"),
            (f"users.{other_user.id}.users.{user.id}.memories", "secret"),
        ]
    )


async def test_semantic_search_orders_by_relevance(sdk: SDKFactory, user: User) -> None:
    alice = sdk(user)
    facts = {
        "colour": "My favourite colour is blue",
        "city": "I live in Lisbon, Portugal",
        "allergy": "I am allergic to peanuts",
        "pet": "My dog is called Rex",
    }
    for key, text in facts.items():
        await alice.store.put_item(["facts"], key, {"text": text})
    # Not indexed: found by listing, never by a query.
    await alice.store.put_item(["facts"], "hidden", {"text": "peanuts peanuts"}, index=False)

    for query, best in [
        ("which colour do I like", "colour"),
        ("where do I live", "city"),
        ("what food allergy do I have", "allergy"),
        ("name of my pet", "pet"),
    ]:
        found = (await alice.store.search_items(["facts"], query=query, limit=4))["items"]
        assert found[0]["key"] == best, (query, found)
        scores = [i["score"] for i in found]
        assert len(found) == 4 and "hidden" not in [i["key"] for i in found]
        assert scores == sorted(scores, reverse=True) and scores[0] > scores[1]
    listed = await alice.store.search_items(["facts"], limit=10)
    assert {i["key"] for i in listed["items"]} == {*facts, "hidden"}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/store/items", {"namespace": ["a.b"], "key": "k", "value": {}}),
        ("PUT", "/store/items", {"namespace": [""], "key": "k", "value": {}}),
        ("PUT", "/store/items", {"namespace": [], "key": "k", "value": {}}),
        ("PUT", "/store/items", {"namespace": ["a\x00"], "key": "k", "value": {}}),
        ("PUT", "/store/items", {"namespace": [1], "key": "k", "value": {}}),
        ("PUT", "/store/items", {"namespace": ["x" * 101], "key": "k", "value": {}}),
        ("PUT", "/store/items", {"namespace": ["a"] * 11, "key": "k", "value": {}}),
        ("PUT", "/store/items", {"namespace": ["a"], "key": "", "value": {}}),
        ("PUT", "/store/items", {"namespace": ["a"], "key": "k\x00", "value": {}}),
        ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": [1]}),
        ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": "text"}),
        ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": {"t": "\x00"}}),
        ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": {"t": "x" * 300_000}}),
        ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": {}, "index": True}),
        ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": {}, "index": 0}),
        ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": {}, "ttl": -1}),
        ("PUT", "/store/items", {"namespace": ["a"], "key": "k"}),
        ("DELETE", "/store/items", {"namespace": ["a.b"], "key": "k"}),
        ("DELETE", "/store/items", {"namespace": ["a"]}),
        ("POST", "/store/items/search", {"namespace_prefix": ["a.b"]}),
        ("POST", "/store/items/search", {"limit": 0}),
        ("POST", "/store/items/search", {"limit": 1001}),
        ("POST", "/store/items/search", {"offset": -1}),
        ("POST", "/store/items/search", {"query": ""}),
        ("POST", "/store/items/search", {"filter": {"n": {"$regex": "x"}}}),
        ("POST", "/store/items/search", {"filter": {"n": {}}}),
        ("POST", "/store/items/search", {"filter": "n"}),
        ("POST", "/store/items/search", {"filter": {"": 1}}),
        ("POST", "/store/items/search", {"filter": {"n": {"": {}}}}),
        ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": {}, "ttl": 5e-324}),
        ("POST", "/store/namespaces", {"prefix": ["a.b"]}),
        ("POST", "/store/namespaces", {"suffix": [""]}),
        ("POST", "/store/namespaces", {"max_depth": 0}),
        ("POST", "/store/namespaces", {"limit": 0}),
        ("GET", "/store/items?namespace=a..b&key=k", None),
        ("GET", "/store/items?namespace=a&key=", None),
        ("GET", "/store/items?namespace=a", None),
        ("GET", "/store/items?namespace=a%00&key=k", None),
        ("GET", "/store/items?key=k", None),
    ],
)
async def test_bad_input_is_a_422_and_stores_nothing(
    client: httpx.AsyncClient,
    user: User,
    database_url: str,
    method: str,
    path: str,
    body: Any,
) -> None:
    response = await client.request(method, path, json=body, headers=user.headers)
    assert_error(response, 422, "validation_error")
    assert await _rows(database_url) == []


async def test_the_sdk_refuses_what_the_server_refuses(sdk: SDKFactory, user: User) -> None:
    alice = sdk(user)
    with pytest.raises(UnprocessableEntityError):
        await alice.store.search_items(["a"], limit=0)
    with pytest.raises(UnprocessableEntityError):
        await alice.store.list_namespaces(max_depth=0)


async def test_store_routes_need_a_token(client: httpx.AsyncClient) -> None:
    for method, path, body in [
        ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": {}}),
        ("GET", "/store/items?namespace=a&key=k", None),
        ("DELETE", "/store/items", {"namespace": ["a"], "key": "k"}),
        ("POST", "/store/items/search", {}),
        ("POST", "/store/namespaces", {}),
    ]:
        assert_error(await client.request(method, path, json=body), 401, "unauthorized")


async def test_what_the_schema_allows_is_taken(client: httpx.AsyncClient, user: User) -> None:
    # Bodies and queries schemathesis drew from the OpenAPI document that were refused.
    brief = {"namespace": ["b"], "key": "k", "value": {}, "ttl": 0.001}
    assert (await client.put("/store/items", json=brief, headers=user.headers)).status_code == 204
    put = {"namespace": ["n"], "key": "k", "value": {"n": 3}, "ttl": 600}
    assert (await client.put("/store/items", json=put, headers=user.headers)).status_code == 204
    got = await client.get(
        "/store/items", params={"namespace": "n", "key": "k", "refresh_ttl": "true"},
        headers=user.headers,
    )  # fmt: skip
    assert got.status_code == 200, got.text
    assert got.json()["value"] == {"n": 3}
    found = await client.post(
        "/store/items/search", json={"namespace_prefix": ["n"], "filter": {"n": {"$gte": 3}}},
        headers=user.headers,
    )  # fmt: skip
    assert [i["key"] for i in found.json()["items"]] == ["k"]


async def test_expired_items_are_deleted_by_the_sweep(user: User, database_url: str) -> None:
    app = create_app(make_settings(database_url, store_sweep_seconds=0.05))
    async with running(app) as client:
        for key, ttl in [("brief", 0.02), ("lasting", 600), ("forever", None)]:
            body = {"namespace": ["t"], "key": key, "value": {"text": key}, "ttl": ttl}
            response = await client.put("/store/items", json=body, headers=user.headers)
            assert response.status_code == 204, response.text
        prefix = f"users.{user.id}.t"
        # Not expired yet (1.2 s): swept or not, it stays.
        assert await _rows(database_url) == [
            (prefix, "brief"),
            (prefix, "forever"),
            (prefix, "lasting"),
        ]
        for _ in range(400):
            if len(await _rows(database_url)) == 2:
                break
            await asyncio.sleep(0.025)
        assert await _rows(database_url) == [(prefix, "forever"), (prefix, "lasting")]
        # Its vector went with it.
        async with await psycopg.AsyncConnection.connect(database_url) as db:
            cur = await db.execute("SELECT key FROM store_vectors ORDER BY key")
            assert await cur.fetchall() == [("forever",), ("lasting",)]
