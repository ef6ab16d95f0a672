"""The v2 event stream (``POST /threads/{id}/stream/events``, ``POST /threads/{id}/commands``
and the WebSocket at ``/threads/{id}/stream/events``) against a started server: the official
JS client's v2 transports over SSE and over a WebSocket, a reconnect with ``since`` that loses
and repeats nothing, filters, refused commands and isolation between users."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from api.wire.v2 import Filter
from tests.protocol import Live, hi, http, live
from tests.sse import read_events

__all__ = ["http", "live"]

JS = Path(__file__).parent / "js"
ALL = ["lifecycle", "values", "updates", "messages", "custom", "input"]
SLOW_TEXT = " ".join(f"tok{i}" for i in range(200))
RUN_START = {"id": 1, "method": "run.start", "params": {"assistant_id": "t5", "input": hi()}}
# A 5-token answer of ``t5`` on a thread's v2 stream, (seq, method, data.event), all channels.
T5_EVENTS = [
    (1, "lifecycle", "running"),
    (2, "values", None),
    (3, "messages", "message-start"),
    (4, "messages", "content-block-start"),
    *[(seq, "messages", "content-block-delta") for seq in range(5, 10)],
    (10, "messages", "content-block-finish"),
    (11, "messages", "message-finish"),
    (12, "updates", None),
    (13, "values", None),
    (14, "lifecycle", "completed"),
]


@pytest.fixture(scope="module")
def node() -> str:
    binary = shutil.which("node")
    if binary is None:
        pytest.fail("Node.js is needed for the JS client test (Node 20 or later)")
    return binary


@pytest.mark.parametrize("kind", ["sse", "ws"])
def test_the_js_client_reconnects_with_since_and_loses_and_repeats_nothing(
    node: str, live: Live, kind: str
) -> None:
    token = live.user()["Authorization"].removeprefix("Bearer ")
    done = subprocess.run(
        [node, "--experimental-websocket", "v2_events.mjs", live.url, token, "slow", kind],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    run = result["runId"]
    whole = result["all"]["events"]
    # 207 is the model node's ``updates``, on no channel the client asked for.
    assert [seq for seq, *_ in whole] == [*range(1, 207), 208, 209]
    assert [e[1:] for e in whole[:5]] == [
        [f"{run}:1", "lifecycle", "running"],
        [f"{run}:2", "values", None],
        [f"{run}:3", "messages", "message-start"],
        [f"{run}:3.1", "messages", "content-block-start"],
        [f"{run}:3.2", "messages", "content-block-delta"],
    ]
    assert [e[2:] for e in whole[-5:]] == [
        ["messages", "content-block-delta"],
        ["messages", "content-block-finish"],
        ["messages", "message-finish"],
        ["values", None],
        ["lifecycle", "completed"],
    ]
    assert result["all"]["text"] == SLOW_TEXT
    # Left after 8 events; reconnected with since=8: the rest, each once, and nothing before.
    assert result["since"] == 8
    assert result["first"] == whole[:8]
    assert result["rest"]["events"] == whole[8:]
    assert result["rest"]["text"] == SLOW_TEXT.removeprefix("tok0 tok1 tok2 tok3")
    # The SDK's own projections assemble the next run's answer and final state.
    assert result["texts"] == [SLOW_TEXT]
    assert result["final"] == [
        ["human", "hi"], ["ai", SLOW_TEXT], ["human", "again"], ["ai", SLOW_TEXT],
    ]  # fmt: skip


async def _command(http: httpx.AsyncClient, headers: dict[str, str], thread: str, body: Any) -> Any:
    return await http.post(f"/threads/{thread}/commands", json=body, headers=headers)


async def _read(
    http: httpx.AsyncClient, headers: dict[str, str], thread: str, body: dict[str, Any], last: int
) -> list[tuple[int, str, Any]]:
    """The events a v2 stream sends until the one with seq ``last`` (which it must send)."""
    out: list[tuple[int, str, Any]] = []
    url = f"/threads/{thread}/stream/events"
    async with http.stream("POST", url, json=body, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = []
        async for line in response.aiter_lines():
            lines.append(line)
            if line == "":
                for sse_id, name, data in read_events(iter(lines)):
                    assert sse_id == data["seq"] and name == data["method"]
                    out.append((sse_id, name, data))
                lines = []
                if out and out[-1][0] == last:
                    return out
    raise AssertionError(f"the stream ended before seq {last}: {out}")


def _brief(events: list[tuple[int, str, Any]]) -> list[tuple[int, str, Any]]:
    return [(seq, name, data["params"]["data"].get("event")) for seq, name, data in events]


async def _finished_thread(live: Live, http: httpx.AsyncClient) -> tuple[dict[str, str], str]:
    """A user and their thread with one finished ``t5`` run, started by ``run.start``."""
    headers = live.user()
    thread = live.thread(headers, "t5")
    started = await _command(http, headers, thread, RUN_START)
    assert started.status_code == 200, started.text
    body = started.json()
    assert body == {
        "type": "success", "id": 1, "result": {"run_id": body["result"]["run_id"]},
        "meta": {"applied_through_seq": 0},
    }  # fmt: skip
    await _read(http, headers, thread, {"channels": ["lifecycle"]}, last=14)
    return headers, thread


async def test_channels_namespaces_and_since_filter_a_threads_events(
    live: Live, http: httpx.AsyncClient
) -> None:
    headers, thread = await _finished_thread(live, http)
    everything = await _read(http, headers, thread, {"channels": ALL}, last=14)
    assert _brief(everything) == T5_EVENTS
    run = (await http.get(f"/threads/{thread}/runs", headers=headers)).json()[0]["run_id"]
    assert [data["event_id"] for *_, data in everything][:5] == [
        f"{run}:1", f"{run}:2", f"{run}:3", f"{run}:3.1", f"{run}:3.2",
    ]  # fmt: skip
    assert everything[11][2]["params"]["node"] == "model"
    deltas = "".join(d["params"]["data"].get("delta", {}).get("text", "") for *_, d in everything)
    assert deltas == "tok0 tok1 tok2 tok3 tok4"
    assert everything[-1][2]["params"]["data"] == {"event": "completed", "graph_name": "agent"}

    lifecycle = await _read(http, headers, thread, {"channels": ["lifecycle"]}, last=14)
    assert _brief(lifecycle) == [(1, "lifecycle", "running"), (14, "lifecycle", "completed")]
    updates = await _read(http, headers, thread, {"channels": ["updates", "lifecycle"]}, last=14)
    assert [seq for seq, *_ in updates] == [1, 12, 14]
    after = await _read(
        http, headers, thread, {"channels": ["values", "lifecycle"], "since": 2}, last=14
    )
    assert [seq for seq, *_ in after] == [13, 14]
    # The root namespace as a prefix, no level below it: every event (all are the root's).
    rooted = await _read(
        http, headers, thread, {"channels": ALL, "namespaces": [[]], "depth": 0}, last=14
    )
    assert _brief(rooted) == T5_EVENTS

    # A second run numbers on from the first: one sequence for the thread.
    again = await _command(http, headers, thread, {**RUN_START, "id": 2})
    assert again.json()["id"] == 2
    second = await _read(http, headers, thread, {"channels": ["lifecycle"], "since": 14}, last=28)
    assert _brief(second) == [(15, "lifecycle", "running"), (28, "lifecycle", "completed")]
    # Without ``since``, a stream starts at the thread's current run (its newest, when none
    # is active): the SDK would take the first run's end for the end of the second.
    current = await _read(http, headers, thread, {"channels": ["lifecycle"]}, last=28)
    assert _brief(current) == [(15, "lifecycle", "running"), (28, "lifecycle", "completed")]
    # With ``since: 0``, from the thread's first event.
    everything = await _read(
        http, headers, thread, {"channels": ["lifecycle"], "since": 0}, last=28
    )
    assert [seq for seq, *_ in everything] == [1, 14, 15, 28]


def test_namespace_prefixes_match_segments_and_depth() -> None:
    def event(namespace: list[str], method: str = "values") -> dict[str, Any]:
        return {"method": method, "params": {"namespace": namespace, "data": {}}}

    child = event(["researcher:7f3a", "tools:1"])
    assert Filter(["values"], [["researcher"]]).matches(child)
    assert Filter(["values"], [["researcher:7f3a"]]).matches(child)
    assert not Filter(["values"], [["researcher:other"]]).matches(child)
    assert not Filter(["values"], [["writer"]]).matches(child)
    assert Filter(["values"], [["researcher"]], depth=1).matches(child)
    assert not Filter(["values"], [["researcher"]], depth=0).matches(child)
    assert not Filter(["values"], [[]], depth=1).matches(child)
    assert not Filter(["updates"]).matches(child)
    named = {"method": "custom", "params": {"namespace": [], "data": {"name": "progress"}}}
    assert Filter(["custom"]).matches(named)
    assert Filter(["custom:progress"]).matches(named)
    assert not Filter(["custom:other"]).matches(named)
    assert Filter(["input"]).matches(event([], "input.requested"))


async def test_bad_commands_and_filters_are_refused_and_change_nothing(
    live: Live, http: httpx.AsyncClient
) -> None:
    headers = live.user()
    thread = live.thread(headers, "t5")
    unknown = await _command(http, headers, thread, {"id": 7, "method": "state.get"})
    assert unknown.status_code == 400
    message = "Unknown protocol command: state.get"
    assert unknown.json() == {
        "type": "error", "id": 7, "error": "unknown_command", "message": message,
        "detail": message, "code": "unknown_command",
    }  # fmt: skip
    over_http = await _command(http, headers, thread, {"id": 8, "method": "subscription.subscribe"})
    assert (over_http.status_code, over_http.json()["error"]) == (400, "unsupported")
    no_assistant = await _command(http, headers, thread, {"id": 9, "method": "run.start"})
    assert no_assistant.status_code == 400
    assert no_assistant.json()["message"] == "run.start requires an assistant_id."
    assert no_assistant.json()["code"] == "invalid_argument"
    bad_input = await _command(
        http, headers, thread,
        {"id": 10, "method": "run.start", "params": {"assistant_id": "t5", "input": []}},
    )  # fmt: skip
    assert (bad_input.status_code, bad_input.json()["code"]) == (400, "invalid_argument")
    assert bad_input.json()["message"] == "run.start input: Input should be a valid dictionary"
    nobody = await _command(
        http, headers, thread, {"id": 11, "method": "run.start", "params": {"assistant_id": "x"}}
    )
    assert (nobody.status_code, nobody.json()["code"]) == (404, "assistant_not_found")
    for malformed in ({"id": "1", "method": "run.start"}, {"id": 1}, {"method": "run.start"}):
        refused = await _command(http, headers, thread, malformed)
        assert (refused.status_code, refused.json()["code"]) == (422, "validation_error")
    for bad in (
        {"channels": []}, {"channels": ["nope"]}, {}, {"channels": ["values"], "since": -1},
        {"channels": ["values"], "depth": "x"}, {"channels": ["values"], "namespaces": ["a"]},
    ):  # fmt: skip
        refused = await http.post(f"/threads/{thread}/stream/events", json=bad, headers=headers)
        assert (refused.status_code, refused.json()["code"]) == (422, "validation_error"), bad
    runs = await http.get(f"/threads/{thread}/runs", headers=headers)
    assert runs.json() == []


def _ws_url(live: Live, thread: str) -> str:
    return live.url.replace("http://", "ws://") + f"/threads/{thread}/stream/events"


async def _send(socket: ClientConnection, message: Any) -> list[dict[str, Any]]:
    """What the socket sends up to the answer to ``message`` (the answer last)."""
    await socket.send(message if isinstance(message, str | bytes) else json.dumps(message))
    received = []
    while True:
        item = json.loads(await socket.recv())
        received.append(item)
        if item["type"] in ("success", "error"):
            return received


async def _until(
    socket: ClientConnection, message: Any, last: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The answer to ``message`` and the events the socket sends until seq ``last``: a
    subscription's events already read by the socket come before its answer, the others after
    it (the socket reads the thread's logs from when it opens)."""
    received = await _send(socket, message)
    answer, events = received[-1], received[:-1]
    while not events or events[-1]["seq"] < last:
        events.append(json.loads(await socket.recv()))
    return answer, events


async def test_the_websocket_subscribes_replays_and_refuses_bad_commands(
    live: Live, http: httpx.AsyncClient
) -> None:
    headers, thread = await _finished_thread(live, http)
    async with connect(_ws_url(live, thread), additional_headers=headers) as socket:
        subscribe = {"id": 1, "method": "subscription.subscribe",
                     "params": {"channels": ["lifecycle"]}}  # fmt: skip
        answer, events = await _until(socket, subscribe, last=14)
        assert [(e["seq"], e["params"]["data"]["event"]) for e in events] == [
            (1, "running"), (14, "completed"),
        ]  # fmt: skip
        assert answer["type"] == "success"
        assert answer["result"]["replayed_events"] == 2 - len(
            [e for e in events if e["seq"] > answer["meta"]["applied_through_seq"]]
        )
        sub = answer["result"]["subscription_id"]
        # Every event is read now: a new subscription gets what it matches at once, before
        # its answer.
        since = await _send(socket, {"id": 2, "method": "subscription.reconnect",
                                     "params": {"channels": ["values"], "since": 2}})  # fmt: skip
        assert [e["seq"] for e in since[:-1]] == [13]
        assert since[-1]["result"]["replayed_events"] == 1
        assert since[-1]["meta"] == {"applied_through_seq": 14}
        gone = await _send(socket, {"id": 3, "method": "subscription.unsubscribe",
                                    "params": {"subscription_id": sub}})  # fmt: skip
        meta = {"applied_through_seq": 14}
        assert gone == [{"type": "success", "id": 3, "result": {}, "meta": meta}]
        again = await _send(socket, {"id": 4, "method": "subscription.unsubscribe",
                                     "params": {"subscription_id": sub}})  # fmt: skip
        assert again[-1]["error"] == "no_such_subscription"
        unknown = await _send(socket, {"id": 5, "method": "state.get", "params": {}})
        assert unknown == [{
            "type": "error", "id": 5, "error": "unknown_command",
            "message": "Unknown protocol command: state.get",
            "detail": "Unknown protocol command: state.get", "code": "unknown_command",
        }]  # fmt: skip
        garbage = await _send(socket, "{not json")
        assert (garbage[-1]["id"], garbage[-1]["error"]) == (None, "invalid_argument")
        binary = await _send(socket, b"\xff\x00")
        assert (binary[-1]["id"], binary[-1]["error"]) == (None, "invalid_argument")
        bad = await _send(socket, {"id": 6, "method": "subscription.subscribe",
                                   "params": {"channels": ["nope"]}})  # fmt: skip
        assert bad[-1]["error"] == "invalid_argument"
        # A run started on the socket streams to its subscriptions, numbered on.
        await _send(socket, {"id": 7, "method": "subscription.subscribe",
                             "params": {"channels": ["lifecycle"], "since": 14}})  # fmt: skip
        started, events = await _until(socket, {**RUN_START, "id": 8}, last=28)
        assert started["type"] == "success"
        # The values subscription (since 2) gets the second run's values too.
        assert [(e["seq"], e["method"]) for e in events] == [
            (15, "lifecycle"), (16, "values"), (27, "values"), (28, "lifecycle"),
        ]  # fmt: skip


async def test_another_users_thread_is_a_404_and_untouched(
    live: Live, http: httpx.AsyncClient
) -> None:
    owner, thread = await _finished_thread(live, http)
    stranger = live.user()
    streamed = await http.post(
        f"/threads/{thread}/stream/events", json={"channels": ["values"]}, headers=stranger
    )
    assert (streamed.status_code, streamed.json()) == (
        404, {"detail": "Thread not found", "code": "not_found"},
    )  # fmt: skip
    started = await _command(http, stranger, thread, RUN_START)
    assert (started.status_code, started.json()["code"]) == (404, "not_found")
    unknown = await _command(http, stranger, thread, {"id": 2, "method": "state.get"})
    assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")
    # Over a WebSocket: the socket opens as for a thread that does not exist yet, shows
    # nothing of it, and cannot start a run on it.
    async with connect(_ws_url(live, thread), additional_headers=stranger) as socket:
        got = await _send(socket, {"id": 1, "method": "subscription.subscribe",
                                   "params": {"channels": ALL}})  # fmt: skip
        assert len(got) == 1 and got[0]["result"]["replayed_events"] == 0
        refused = await _send(socket, RUN_START)
        assert refused == [{
            "type": "error", "id": 1, "error": "not_found",
            "message": "Thread or assistant not found.",
            "detail": "Thread or assistant not found.", "code": "not_found",
        }]  # fmt: skip
    runs = await http.get(f"/threads/{thread}/runs", headers=owner)
    assert len(runs.json()) == 1


async def test_no_token_is_a_401_over_http_and_a_4401_close_over_a_websocket(
    live: Live, http: httpx.AsyncClient
) -> None:
    headers, thread = await _finished_thread(live, http)
    for bad in ({}, {"Authorization": "Bearer not-a-token"}):
        streamed = await http.post(
            f"/threads/{thread}/stream/events", json={"channels": ["values"]}, headers=bad
        )
        assert (streamed.status_code, streamed.json()["code"]) == (401, "unauthorized")
        started = await _command(http, bad, thread, RUN_START)
        assert (started.status_code, started.json()["code"]) == (401, "unauthorized")
        async with connect(_ws_url(live, thread), additional_headers=bad) as socket:
            with pytest.raises(ConnectionClosed) as closed:
                await socket.recv()
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, "Not authenticated")
    runs = await http.get(f"/threads/{thread}/runs", headers=headers)
    assert len(runs.json()) == 1


async def test_an_interrupt_is_requested_and_answered_with_input_respond(
    live: Live, http: httpx.AsyncClient
) -> None:
    headers = live.user()
    thread = live.thread(headers, "hitl")
    start = {"id": 1, "method": "run.start",
             "params": {"assistant_id": "hitl", "input": hi("May I deploy?")}}  # fmt: skip
    assert (await _command(http, headers, thread, start)).status_code == 200
    channels = {"channels": ["lifecycle", "input"]}
    paused = await _read_until_terminal(http, headers, thread, channels)
    assert [(name, data["params"]["data"].get("event")) for _, name, data in paused] == [
        ("lifecycle", "running"), ("input.requested", None), ("lifecycle", "interrupted"),
    ]  # fmt: skip
    request = paused[1][2]["params"]["data"]
    assert request["payload"] == {"question": "May I deploy?"}
    reply = {"interrupt_id": request["interrupt_id"], "response": "yes, go"}
    answer = {"id": 2, "method": "input.respond", "params": reply}
    answered = await _command(http, headers, thread, answer)
    assert answered.json() == {
        "type": "success", "id": 2, "result": {}, "meta": {"applied_through_seq": 0},
    }  # fmt: skip
    since = paused[-1][0]
    resumed = await _read_until_terminal(
        http, headers, thread, {"channels": ["lifecycle", "values"], "since": since}
    )
    assert resumed[0][0] == since + 1
    assert resumed[-1][2]["params"]["data"]["event"] == "completed"
    final = resumed[-2][2]["params"]["data"]["messages"]
    assert [(m["type"], m["content"]) for m in final[-2:]] == [
        ("tool", "yes, go"),
        ("ai", "yes, go"),
    ]
    wrong = {"id": 3, "method": "input.respond", "params": {"response": "no id"}}
    refused = await _command(http, headers, thread, wrong)
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_argument")


async def _read_until_terminal(
    http: httpx.AsyncClient, headers: dict[str, str], thread: str, body: dict[str, Any]
) -> list[tuple[int, str, Any]]:
    """A v2 stream's events up to the next root ``lifecycle`` that ends a run."""
    out: list[tuple[int, str, Any]] = []
    url = f"/threads/{thread}/stream/events"
    async with http.stream("POST", url, json=body, headers=headers) as response:
        assert response.status_code == 200
        lines: list[str] = []
        async for line in response.aiter_lines():
            lines.append(line)
            if line != "":
                continue
            out.extend(read_events(iter(lines)))
            lines = []
            if out and out[-1][1] == "lifecycle" and out[-1][2]["params"]["data"]["event"] in (
                "completed", "failed", "interrupted",
            ):  # fmt: skip
                return out
    raise AssertionError(f"the stream ended first: {out}")


async def test_a_native_run_shows_its_lifecycle_and_deleting_the_thread_ends_the_streams(
    live: Live, http: httpx.AsyncClient
) -> None:
    headers = live.user()
    thread = live.thread(headers, "t5")
    sent = await http.post(f"/chats/{thread}/messages", json={"content": "hi"}, headers=headers)
    assert sent.status_code == 201
    events = await _read(http, headers, thread, {"channels": ALL}, last=2)
    assert _brief(events) == [(1, "lifecycle", "running"), (2, "lifecycle", "completed")]
    url = f"/threads/{thread}/stream/events"
    async with (
        connect(_ws_url(live, thread), additional_headers=headers) as socket,
        http.stream("POST", url, json={"channels": ALL}, headers=headers) as response,
    ):
        subscribe = {"id": 1, "method": "subscription.subscribe",
                     "params": {"channels": ["lifecycle"]}}  # fmt: skip
        await _until(socket, subscribe, last=2)
        deleted = await http.delete(f"/threads/{thread}", headers=headers)
        assert deleted.status_code == 204
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await socket.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404
        # The SSE stream ends too, after the events it had.
        body = [line async for line in response.aiter_lines()]
        assert [line for line in body if line.startswith("id: ")] == ["id: 1", "id: 2"]
