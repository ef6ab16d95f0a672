"""Images in messages: parts in, content blocks to the model, parts in every view of the chat,
and each bad image refused with nothing created."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import uuid
import zlib
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import psycopg
import pytest

from api.app import create_app
from api.schemas.events import MESSAGE
from graphs.images import ImageInfo, sniff
from storage import knowledge as knowledge_store
from storage.db import connection_kwargs
from tests.conftest import User, assert_error, make_settings, running
from tests.sse import parse

REPOSITORY_CONFIG = Path(__file__).resolve().parents[1] / "langgraph.json"


def png(width: int, height: int) -> bytes:
    """A real PNG: signature, IHDR, one IDAT of black RGB rows, IEND."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x00\x00\x00" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def jpeg(width: int, height: int) -> bytes:
    """A baseline JPEG's headers: SOI, a JFIF APP0 segment, a start of frame, EOI."""
    app0 = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00"
    return (
        b"\xff\xd8"
        + b"\xff\xe0"
        + struct.pack(">H", len(app0) + 2)
        + app0
        + b"\xff\xc0"
        + struct.pack(">H", len(sof0) + 2)
        + sof0
        + b"\xff\xd9"
    )


# The classic 1x1 transparent GIF.
GIF = bytes.fromhex(
    "4749463839610100010080000000000000ffffff21f90401000000002c00000000010001000002024401003b"
)


def data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


async def make_agent(client: httpx.AsyncClient, admin: User, model_name: str) -> str:
    body = {
        "name": f"Eyes {uuid.uuid4().hex[:6]}",
        "system_prompt": "Look.",
        "model_name": model_name,
    }
    response = await client.post("/agents/", json=body, headers=admin.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def open_chat(client: httpx.AsyncClient, user: User, agent_id: str) -> str:
    response = await client.post("/chats/", json={"agent_id": agent_id}, headers=user.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def send(client: httpx.AsyncClient, user: User, chat_id: str, content: Any) -> httpx.Response:
    return await client.post(
        f"/chats/{chat_id}/messages", json={"content": content}, headers=user.headers
    )


async def assert_untouched(client: httpx.AsyncClient, user: User, chat_id: str) -> None:
    """No run, no message, the chat as it was made."""
    runs = await client.get(f"/chats/{chat_id}/runs", headers=user.headers)
    assert runs.status_code == 200, runs.text
    assert runs.json()["items"] == []
    messages = await client.get(f"/chats/{chat_id}/messages", headers=user.headers)
    assert messages.json()["items"] == []
    chat = (await client.get(f"/chats/{chat_id}", headers=user.headers)).json()
    assert chat["message_count"] == 0


@pytest.fixture
async def echo_chat(client: httpx.AsyncClient, admin: User, user: User) -> str:
    return await open_chat(client, user, await make_agent(client, admin, "fake:echo"))


def test_the_bytes_say_the_type_and_size() -> None:
    assert sniff(png(3, 2)) == ImageInfo("image/png", 3, 2)
    assert sniff(jpeg(640, 480)) == ImageInfo("image/jpeg", 640, 480)
    assert sniff(GIF) == ImageInfo("image/gif", 1, 1)
    vp8x = b"RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x00\x00\x00\x00" + (
        (99).to_bytes(3, "little") + (49).to_bytes(3, "little")
    )
    assert sniff(vp8x) == ImageInfo("image/webp", 100, 50)
    assert sniff(b"hello world, no image here") is None
    assert sniff(png(1, 1)[:20]) is None
    assert sniff(b"\xff\xd8\xff\xe0\x00\x10JFIF") is None


async def test_an_image_message_round_trip(
    client: httpx.AsyncClient, user: User, echo_chat: str
) -> None:
    image = data_url("image/png", png(1, 1))
    photo = data_url("image/jpeg", jpeg(4, 3))
    parts = [
        {"type": "text", "text": "hi"},
        {"type": "image", "url": image},
        {"type": "text", "text": "and this"},
        {"type": "image", "url": photo},
    ]
    response = await send(client, user, echo_chat, parts)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "success"
    sent, answer = body["messages"]
    expected_parts = [
        {"type": "text", "text": "hi"},
        {"type": "image", "mime_type": "image/png", "url": image},
        {"type": "text", "text": "and this"},
        {"type": "image", "mime_type": "image/jpeg", "url": photo},
    ]
    assert sent["sender"] == "user"
    assert sent["content"] == "hi\nand this"
    assert sent["parts"] == expected_parts
    # The model got the images as content blocks: the fake describes what it received.
    assert (
        answer["content"] == 'You sent: text "hi", image/png 1x1, text "and this", image/jpeg 4x3'
    )
    assert "parts" not in answer

    listed = (await client.get(f"/chats/{echo_chat}/messages", headers=user.headers)).json()
    assert [m.get("parts") for m in listed["items"]] == [expected_parts, None]
    assert listed["items"][0] == sent
    state = (await client.get(f"/chats/{echo_chat}/state", headers=user.headers)).json()
    assert state["messages"][0]["parts"] == expected_parts
    chat = (await client.get(f"/chats/{echo_chat}", headers=user.headers)).json()
    assert chat["title"] == "hi and this"
    assert chat["message_count"] == 2

    # Text after an image message is text again, and the model sees the whole conversation.
    plain = await send(client, user, echo_chat, "plain")
    assert [m["content"] for m in plain.json()["messages"]] == ["plain", "You said: plain"]
    assert "parts" not in plain.json()["messages"][0]


async def test_the_stream_shows_the_parts(
    client: httpx.AsyncClient, user: User, echo_chat: str
) -> None:
    image = data_url("image/gif", GIF)
    response = await client.post(
        f"/chats/{echo_chat}/messages",
        json={"content": [{"type": "image", "url": image}]},
        headers={**user.headers, "Accept": "text/event-stream"},
    )
    assert response.status_code == 200, response.text
    events, _ = parse(response.text)
    messages = [e.data for e in events if e.event == "message"]
    assert [(m["sender"], m["content"], m.get("parts")) for m in messages] == [
        ("user", "", [{"type": "image", "mime_type": "image/gif", "url": image}]),
        ("agent", "You sent: image/gif 1x1", None),
    ]
    # The event schema (in the OpenAPI document) describes the parts exactly.
    schema = jsonschema_rs.Draft202012Validator(MESSAGE, validate_formats=True)
    for message in messages:
        assert schema.is_valid(message), message
    for bad in (
        [{"type": "image", "url": image}],
        [{"type": "image", "mime_type": "image/bmp", "url": image}],
        [{"type": "text"}],
        [{"type": "text", "text": "x", "extra": 1}],
    ):
        assert not schema.is_valid({**messages[0], "parts": bad}), bad


async def test_export_shows_the_parts_and_import_brings_them_back(
    client: httpx.AsyncClient, user: User, echo_chat: str
) -> None:
    image = data_url("image/png", png(2, 2))
    parts = [{"type": "text", "text": "look"}, {"type": "image", "url": image}]
    assert (await send(client, user, echo_chat, parts)).status_code == 201
    exported = await client.get(
        f"/chats/{echo_chat}/export", params={"format": "jsonl"}, headers=user.headers
    )
    assert exported.status_code == 200, exported.text
    records = [json.loads(line) for line in exported.text.splitlines()]
    expected_parts = [
        {"type": "text", "text": "look"},
        {"type": "image", "mime_type": "image/png", "url": image},
    ]
    assert [r.get("parts") for r in records[1:]] == [expected_parts, None]
    assert records[1]["content"] == "look"

    imported = await client.post(
        "/chats/import",
        content=exported.content,
        headers={**user.headers, "Content-Type": "application/jsonl"},
    )
    assert imported.status_code == 201, imported.text
    new_id = imported.json()["chats"][0]["id"]
    messages = (await client.get(f"/chats/{new_id}/messages", headers=user.headers)).json()
    assert [(m["content"], m.get("parts")) for m in messages["items"]] == [
        ("look", expected_parts),
        ('You sent: text "look", image/png 2x2', None),
    ]

    # An imported image is checked like a sent one.
    bad = {
        **records[1],
        "parts": [
            {"type": "image", "mime_type": "image/png", "url": "data:image/png;base64,aGVsbG8="}
        ],
    }
    refused = await client.post(
        "/chats/import",
        content="".join(json.dumps(r) + "\n" for r in [records[0], bad]),
        headers={**user.headers, "Content-Type": "application/jsonl"},
    )
    assert_error(refused, 422, "invalid_image")


NOT_AN_IMAGE = base64.b64encode(b"hello, I am text pretending to be a picture").decode()
BAD_PARTS = [
    ("not base64", "data:image/png;base64,not*base64!", "invalid_base64"),
    ("wrong magic", f"data:image/png;base64,{NOT_AN_IMAGE}", "invalid_image"),
    ("a JPEG said to be a PNG", data_url("image/png", jpeg(2, 2)), "invalid_image"),
    ("an unsupported type", data_url("image/bmp", b"BM" + b"\x00" * 60), "validation_error"),
    ("no data URL", "https://example.org/cat.png", "validation_error"),
]


@pytest.mark.parametrize(("case", "url", "code"), BAD_PARTS, ids=[c[0] for c in BAD_PARTS])
async def test_a_bad_image_is_refused_and_nothing_is_created(
    client: httpx.AsyncClient, user: User, echo_chat: str, case: str, url: str, code: str
) -> None:
    parts = [{"type": "text", "text": "see"}, {"type": "image", "url": url}]
    body = assert_error(await send(client, user, echo_chat, parts), 422)
    assert body["code"] == code, (case, body)
    await assert_untouched(client, user, echo_chat)


async def test_malformed_parts_are_refused(
    client: httpx.AsyncClient, user: User, echo_chat: str
) -> None:
    image = data_url("image/png", png(1, 1))
    for content in (
        [],
        [{"type": "text", "text": "  "}],
        [{"type": "video", "url": image}],
        [{"type": "image", "url": image, "file_id": str(uuid.uuid4())}],
        [{"type": "image"}],
        [{"type": "text", "text": "x"}] * 9,
    ):
        assert_error(await send(client, user, echo_chat, content), 422, "validation_error")
    five = [{"type": "image", "url": image}] * 5
    body = assert_error(await send(client, user, echo_chat, five), 422, "too_many_images")
    assert body["detail"] == "A message holds at most 4 images, not 5"
    await assert_untouched(client, user, echo_chat)


async def test_an_image_over_the_limit_is_refused(
    database_url: str, client: httpx.AsyncClient, user: User, echo_chat: str
) -> None:
    async with running(create_app(make_settings(database_url, image_max_bytes=2048))) as small:
        fits = await send(
            small, user, echo_chat, [{"type": "image", "url": data_url("image/png", png(1, 1))}]
        )
        assert fits.status_code == 201, fits.text
        big = png(1, 1) + b"\x00" * 2048
        body = assert_error(
            await send(
                small, user, echo_chat, [{"type": "image", "url": data_url("image/png", big)}]
            ),
            422,
            "image_too_large",
        )
        assert body["detail"] == "Part 0: an image may have at most 2048 bytes"
        runs = (await small.get(f"/chats/{echo_chat}/runs", headers=user.headers)).json()
        assert len(runs["items"]) == 1


async def test_a_model_that_cannot_see_images_refuses_them(
    client: httpx.AsyncClient, admin: User, user: User
) -> None:
    chat_id = await open_chat(client, user, await make_agent(client, admin, "local:smollm2"))
    parts = [
        {"type": "text", "text": "hi"},
        {"type": "image", "url": data_url("image/png", png(1, 1))},
    ]
    body = assert_error(await send(client, user, chat_id, parts), 422, "model_cannot_see_images")
    assert body["detail"] == (
        "This chat's agent uses local:smollm2, which cannot see images: send text only"
    )
    await assert_untouched(client, user, chat_id)


async def upload(
    client: httpx.AsyncClient, user: User, chat_id: str, name: str, data: bytes
) -> httpx.Response:
    return await client.post(
        f"/chats/{chat_id}/files", files={"file": (name, data)}, headers=user.headers
    )


async def test_an_image_file_of_the_chat_is_shown_by_its_id(
    client: httpx.AsyncClient, database_url: str, user: User, echo_chat: str
) -> None:
    picture = png(2, 2)
    uploaded = await upload(client, user, echo_chat, "cat.PNG", picture)
    assert uploaded.status_code == 202, uploaded.text
    image = uploaded.json()
    assert (image["title"], image["filename"], image["media_type"], image["bytes"]) == (
        "cat", "cat.PNG", "image/png", len(picture),
    )  # fmt: skip
    # Nothing to index: it is ready at once, with no chunks and no embedding model.
    assert (image["status"], image["chunk_count"], image["embedding_model"]) == ("indexed", 0, None)
    sent = await send(
        client, user, echo_chat,
        [{"type": "text", "text": "this one"}, {"type": "image", "file_id": image["id"]}],
    )  # fmt: skip
    assert sent.status_code == 201, sent.text
    question, answer = sent.json()["messages"]
    assert answer["content"] == 'You sent: text "this one", image/png 2x2'
    assert question["parts"][1] == {
        "type": "image", "mime_type": "image/png", "url": data_url("image/png", picture),
    }  # fmt: skip
    # The same bytes again are the same file; the indexer never takes an image, even when
    # every document is due to be indexed again with another model.
    again = await upload(client, user, echo_chat, "again.png", picture)
    assert assert_error(again, 409, "duplicate_document")["detail"] == (
        f"The same content is already uploaded here: document {image['id']} ('cat')"
    )
    async with await psycopg.AsyncConnection.connect(database_url, **connection_kwargs()) as conn:
        await conn.execute("DELETE FROM knowledge_documents WHERE id <> %s", (image["id"],))
        claimed = await knowledge_store.claim(
            conn, worker_id="test", model="another:model", stale_seconds=0
        )
    assert claimed is None
    listed = (await client.get(f"/chats/{echo_chat}/files", headers=user.headers)).json()
    assert [(f["id"], f["status"]) for f in listed["items"]] == [(image["id"], "indexed")]


BAD_FILES = [
    ("wrong magic", "a.png", b"hello, I am text", "invalid_image"),
    ("a JPEG named .png", "a.png", jpeg(2, 2), "invalid_image"),
    ("a PNG named .gif", "a.gif", png(1, 1), "invalid_image"),
    ("empty", "a.webp", b"", "invalid_image"),
    ("over the limit", "a.png", png(1, 1) + b"\x00" * 4096, "image_too_large"),
]


@pytest.mark.parametrize(("case", "name", "data", "code"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
async def test_a_bad_image_file_is_refused_and_stores_nothing(
    database_url: str, user: User, echo_chat: str, case: str, name: str, data: bytes, code: str
) -> None:
    async with running(create_app(make_settings(database_url, image_max_bytes=4096))) as small:
        body = assert_error(await upload(small, user, echo_chat, name, data), 422, code)
        assert body["code"] == code, case
        listed = (await small.get(f"/chats/{echo_chat}/files", headers=user.headers)).json()
        assert listed["items"] == []


async def test_images_are_chat_files_only_and_documents_are_no_images(
    client: httpx.AsyncClient, user: User, other_user: User, admin: User, echo_chat: str
) -> None:
    agent_id = await make_agent(client, admin, "fake:echo")
    knowledge = await client.post(
        f"/agents/{agent_id}/knowledge",
        files={"file": ("cat.png", png(1, 1))},
        headers=admin.headers,
    )
    assert_error(knowledge, 415, "unsupported_media_type")
    document = await client.post(
        f"/chats/{echo_chat}/files",
        json={"title": "Notes", "text": "Some notes about cats."},
        headers=user.headers,
    )
    assert document.status_code == 202, document.text
    file_id = document.json()["id"]
    body = assert_error(
        await send(client, user, echo_chat, [{"type": "image", "file_id": file_id}]),
        422,
        "file_not_an_image",
    )
    assert body["detail"] == (
        "Part 0: this file is a document, not an image; upload the image as a file of the "
        "chat, or send it as a data URL"
    )
    # A file of another chat (here another user's) is no file of this one.
    picture = (await upload(client, user, echo_chat, "cat.gif", GIF)).json()["id"]
    theirs = await open_chat(client, other_user, agent_id)
    for name in (file_id, picture):
        assert_error(
            await send(client, other_user, theirs, [{"type": "image", "file_id": name}]),
            422,
            "file_not_found",
        )
    assert_error(
        await send(client, user, echo_chat, [{"type": "image", "file_id": str(uuid.uuid4())}]),
        422,
        "file_not_found",
    )
    await assert_untouched(client, user, echo_chat)
    await assert_untouched(client, other_user, theirs)


async def test_a_large_image_is_checked_off_the_event_loop_and_sent(
    client: httpx.AsyncClient, user: User, echo_chat: str
) -> None:
    # 1.5 MiB: past the size checked in a worker thread, within the default limit (the body
    # too is past the default 1 MiB body limit, which this route raises for images).
    image = data_url("image/png", png(640, 480) + b"\x00" * (3 * 512 * 1024))
    response = await send(client, user, echo_chat, [{"type": "image", "url": image}])
    assert response.status_code == 201, response.text
    assert response.json()["messages"][1]["content"] == "You sent: image/png 640x480"
    assert response.json()["messages"][0]["parts"][0]["url"] == image


async def test_regenerate_answers_the_images_again(
    client: httpx.AsyncClient, user: User, echo_chat: str
) -> None:
    image = data_url("image/png", png(5, 7))
    sent = await send(client, user, echo_chat, [{"type": "image", "url": image}])
    question = sent.json()["messages"][0]
    again = await client.post(
        f"/chats/{echo_chat}/messages/{question['id']}/regenerate", headers=user.headers
    )
    assert again.status_code == 201, again.text
    assert [(m["id"], m["content"], m.get("parts")) for m in again.json()["messages"]] == [
        (question["id"], "", [{"type": "image", "mime_type": "image/png", "url": image}]),
        (again.json()["messages"][1]["id"], "You sent: image/png 5x7", None),
    ]


async def test_a_fork_edit_keeps_the_images_or_replaces_them_with_parts(
    client: httpx.AsyncClient, admin: User, user: User, echo_chat: str
) -> None:
    image = data_url("image/png", png(5, 7))
    sent = await send(
        client, user, echo_chat, [{"type": "text", "text": "old"}, {"type": "image", "url": image}]
    )
    question = sent.json()["messages"][0]

    async def fork(content: Any, chat_id: str = echo_chat) -> httpx.Response:
        body = {"edit": {"message_id": question["id"], "content": content}}
        return await client.post(f"/chats/{chat_id}/fork", json=body, headers=user.headers)

    kept = await fork("new words")
    assert kept.status_code == 201, kept.text
    assert [m["content"] for m in kept.json()["run"]["messages"]] == [
        "new words", 'You sent: text "new words", image/png 5x7',
    ]  # fmt: skip
    assert kept.json()["run"]["messages"][0]["parts"][1]["url"] == image
    replaced = await fork([{"type": "image", "url": data_url("image/gif", GIF)}])
    assert replaced.status_code == 201, replaced.text
    assert replaced.json()["run"]["messages"][1]["content"] == "You sent: image/gif 1x1"
    # New parts are checked as a message's: a bad one makes no fork.
    before = (await client.get("/chats/", headers=user.headers)).json()["total"]
    bad = await fork([{"type": "image", "url": f"data:image/png;base64,{NOT_AN_IMAGE}"}])
    assert_error(bad, 422, "invalid_image")
    assert (await client.get("/chats/", headers=user.headers)).json()["total"] == before
    # The original is as it was.
    page = (await client.get(f"/chats/{echo_chat}/messages", headers=user.headers)).json()
    assert [m["content"] for m in page["items"]] == ["old", 'You sent: text "old", image/png 5x7']


async def test_a_replay_sends_the_images_again_to_a_model_that_sees_them(
    client: httpx.AsyncClient, admin: User, user: User, echo_chat: str
) -> None:
    image = data_url("image/jpeg", jpeg(8, 6))
    await send(
        client, user, echo_chat, [{"type": "text", "text": "see"}, {"type": "image", "url": image}]
    )
    blind = await make_agent(client, admin, "local:smollm2")
    refused = await client.post(
        f"/chats/{echo_chat}/replays", json={"agent_id": blind}, headers=user.headers
    )
    assert_error(refused, 422, "model_cannot_see_images")
    refused = await client.post(
        f"/chats/{echo_chat}/replays", json={"model_name": "local:smollm2"}, headers=user.headers
    )
    assert_error(refused, 422, "model_cannot_see_images")
    assert (await client.get(f"/chats/{echo_chat}/replays", headers=user.headers)).json()[
        "total"
    ] == 0

    created = await client.post(
        f"/chats/{echo_chat}/replays", json={"model_name": "fake:echo"}, headers=user.headers
    )
    assert created.status_code == 202, created.text
    [turn] = created.json()["turns"]
    assert turn["message"]["parts"] == [
        {"type": "text", "text": "see"}, {"type": "image", "mime_type": "image/jpeg", "url": image},
    ]  # fmt: skip
    for _ in range(1200):
        done = (await client.get(f"/replays/{created.json()['id']}", headers=user.headers)).json()
        if done["status"] not in ("pending", "running"):
            break
        await asyncio.sleep(0.05)
    assert done["status"] == "done", done
    assert done["turns"][0]["new"]["content"] == 'You sent: text "see", image/jpeg 8x6'


async def test_the_default_model_decides_and_a_graph_of_your_own_is_not_refused(
    database_url: str, client: httpx.AsyncClient, admin: User, user: User
) -> None:
    settings = make_settings(
        database_url, default_model="local:smollm2", graphs_config=REPOSITORY_CONFIG
    )
    parts = [
        {"type": "text", "text": "q"},
        {"type": "image", "url": data_url("image/png", png(1, 1))},
    ]
    async with running(create_app(settings)) as served:
        # An agent without a model of its own uses the server's default, here text only.
        plain = await served.post(
            "/agents/", json={"name": "Default", "system_prompt": "Hi."}, headers=admin.headers
        )
        assert plain.status_code == 201, plain.text
        chat_id = await open_chat(served, user, plain.json()["id"])
        assert_error(await send(served, user, chat_id, parts), 422, "model_cannot_see_images")
        await assert_untouched(served, user, chat_id)
        # A graph of langgraph.json picks its own models: its messages are not judged here
        # (the example graph answers with `fake:echo`, which describes what it saw).
        listed = await served.get("/agents/", params={"limit": 100}, headers=user.headers)
        research = next(a for a in listed.json()["items"] if a["slug"] == "research")
        graph_chat = await open_chat(served, user, research["id"])
        answered = await send(served, user, graph_chat, parts)
        assert answered.status_code == 201, answered.text
        assert answered.json()["messages"][-1]["content"] == 'You sent: text "q", image/png 1x1'


# The Agent Protocol: images in a run's input messages, in the shapes LangChain and the SDKs'
# clients send, are checked as the native API checks a message's parts.


async def protocol_wait(
    client: httpx.AsyncClient, user: User, agent_id: str, content: Any, thread_id: str
) -> httpx.Response:
    body = {
        "assistant_id": agent_id,
        "input": {"messages": [{"role": "user", "content": content}]},
        "if_not_exists": "create",
    }
    return await client.post(f"/threads/{thread_id}/runs/wait", json=body, headers=user.headers)


async def test_protocol_inputs_carry_images_in_every_inline_shape(
    client: httpx.AsyncClient, admin: User, user: User
) -> None:
    agent_id = await make_agent(client, admin, "fake:echo")
    payload = base64.b64encode(png(2, 3)).decode()
    shapes = [
        {"type": "image", "base64": payload, "mime_type": "image/png"},
        {"type": "image", "source_type": "base64", "data": payload, "mime_type": "image/png"},
        {"type": "image", "url": f"data:image/png;base64,{payload}"},
        {"type": "image_url", "image_url": {"url": data_url("image/gif", GIF)}},
    ]
    thread_id = str(uuid.uuid4())
    content = [{"type": "text", "text": "look"}, *shapes]
    answer = await protocol_wait(client, user, agent_id, content, thread_id)
    assert answer.status_code == 200, answer.text
    said = answer.json()["messages"][-1]["content"]
    assert said == 'You sent: text "look", ' + ", ".join(["image/png 2x3"] * 3 + ["image/gif 1x1"])
    # The native view of the same thread shows each image as a part.
    page = (await client.get(f"/chats/{thread_id}/messages", headers=user.headers)).json()
    shown = page["items"][0]["parts"]
    assert [p.get("url") for p in shown] == [
        None, *[f"data:image/png;base64,{payload}"] * 3, data_url("image/gif", GIF),
    ]  # fmt: skip


PROTOCOL_BAD = [
    ("not base64", {"type": "image", "base64": "no*pe", "mime_type": "image/png"},
     "invalid_base64"),
    ("wrong magic", {"type": "image", "base64": NOT_AN_IMAGE, "mime_type": "image/png"},
     "invalid_image"),
    ("no type", {"type": "image", "base64": base64.b64encode(GIF).decode()}, "invalid_image"),
    ("a GIF said to be a PNG", {"type": "image_url", "image_url": data_url("image/png", GIF)},
     "invalid_image"),
    ("a web URL", {"type": "image_url", "image_url": {"url": "https://example.org/a.png"}},
     "image_not_inline"),
    ("a file id", {"type": "image", "file_id": "file-abc"}, "image_not_inline"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "block", "code"), PROTOCOL_BAD, ids=[c[0] for c in PROTOCOL_BAD])
async def test_a_bad_protocol_image_is_refused_and_creates_no_thread(
    client: httpx.AsyncClient, admin: User, user: User, case: str, block: dict, code: str
) -> None:
    agent_id = await make_agent(client, admin, "fake:echo")
    thread_id = str(uuid.uuid4())
    refused = await protocol_wait(client, user, agent_id, [block], thread_id)
    body = assert_error(refused, 422, code)
    assert body["detail"].startswith("input.messages[0].content[0]: "), (case, body)
    assert_error(await client.get(f"/threads/{thread_id}", headers=user.headers), 404)


async def test_protocol_image_limits_follow_the_native_ones(
    database_url: str, client: httpx.AsyncClient, admin: User, user: User
) -> None:
    eyes = await make_agent(client, admin, "fake:echo")
    blind = await make_agent(client, admin, "local:smollm2")
    image = {"type": "image_url", "image_url": {"url": data_url("image/png", png(1, 1))}}
    five = assert_error(
        await protocol_wait(client, user, eyes, [image] * 5, str(uuid.uuid4())),
        422,
        "too_many_images",
    )
    assert five["detail"] == "input.messages[0]: a message holds at most 4 images, not 5"
    cannot = await protocol_wait(client, user, blind, [image], str(uuid.uuid4()))
    assert_error(cannot, 422, "model_cannot_see_images")
    # Stateless runs and a command's update are checked the same, and a cron's input once.
    stateless = await client.post(
        "/runs/wait",
        json={"assistant_id": blind, "input": {"messages": [{"role": "user", "content": [image]}]}},
        headers=user.headers,
    )
    assert_error(stateless, 422, "model_cannot_see_images")
    # A batch is checked whole before any of its runs starts.
    batch = await client.post(
        "/runs/batch",
        json=[
            {"assistant_id": eyes, "input": {"messages": [{"role": "user", "content": "hi"}]}},
            {"assistant_id": blind,
             "input": {"messages": [{"role": "user", "content": [image]}]}},
        ],
        headers=user.headers,
    )  # fmt: skip
    assert_error(batch, 422, "model_cannot_see_images")
    cron = await client.post(
        "/runs/crons",
        json={"assistant_id": blind, "schedule": "0 0 * * *",
              "input": {"messages": [{"role": "user", "content": [image]}]}},
        headers=user.headers,
    )  # fmt: skip
    assert_error(cron, 422, "model_cannot_see_images")
    assert (await client.post("/runs/crons/count", json={}, headers=user.headers)).json() == 0
    threads = await client.post("/threads/search", json={}, headers=user.headers)
    assert threads.json() == []
    async with running(create_app(make_settings(database_url, image_max_bytes=2048))) as small:
        big = {"type": "image", "base64": base64.b64encode(png(1, 1) + b"\x00" * 2048).decode(),
               "mime_type": "image/png"}  # fmt: skip
        thread_id = str(uuid.uuid4())
        command = await small.post(
            f"/threads/{thread_id}/runs/wait",
            json={"assistant_id": eyes, "if_not_exists": "create",
                  "command": {"update": {"messages": [{"role": "user", "content": [big]}]}}},
            headers=user.headers,
        )  # fmt: skip
        body = assert_error(command, 422, "image_too_large")
        assert body["detail"] == (
            "command.update.messages[0].content[0]: an image may have at most 2048 bytes"
        )
        assert_error(await small.get(f"/threads/{thread_id}", headers=user.headers), 404)
