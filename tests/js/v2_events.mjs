// Drives a started Switchboard with @langchain/langgraph-sdk's v2 transport (ThreadStream over
// SSE or a WebSocket): starts a run on a new thread, leaves after a few events, reconnects with
// `since` (the last seq it got) and reads on to the run's end; then reads the whole thread once
// more for reference. Prints one JSON object for the Python test to check.
// Usage: node --experimental-websocket v2_events.mjs URL TOKEN ASSISTANT sse|ws
import {
  Client,
  ProtocolSseTransportAdapter,
  ProtocolWebSocketTransportAdapter,
} from "@langchain/langgraph-sdk";

const [url, token, assistant, kind] = process.argv.slice(2);
const auth = { Authorization: `Bearer ${token}` };
const client = new Client({ apiUrl: url, apiKey: null, defaultHeaders: auth });
const CHANNELS = ["lifecycle", "values", "messages"];
const FIRST = 8; // events read before leaving

// The browser-safe WebSocket transport sends no headers itself: the factory does (Node's
// WebSocket takes them).
const factory = (socketUrl) => new WebSocket(socketUrl, { headers: auth });
const transport = (threadId) =>
  kind === "ws"
    ? new ProtocolWebSocketTransportAdapter({ apiUrl: url, threadId, webSocketFactory: factory })
    : new ProtocolSseTransportAdapter({ apiUrl: url, threadId, defaultHeaders: auth });

const brief = (e) => [e.seq, e.event_id, e.method, e.params.data.event ?? null];
const ends = (e) =>
  e.method === "lifecycle" &&
  e.params.namespace.length === 0 &&
  ["completed", "failed", "interrupted"].includes(e.params.data.event);

// 1. ThreadStream on a thread it names itself: run.start, then the first events.
const thread = client.threads.stream({ assistantId: assistant, transport: transport() });
const threadId = thread.threadId;
const started = thread.run.start({ input: { messages: [{ role: "user", content: "hi" }] } });
const subscription = await thread.subscribe(CHANNELS);
const { run_id: runId } = await started;
const first = [];
for await (const event of subscription) {
  first.push(brief(event));
  if (first.length === FIRST) break;
}
await thread.close();
const since = Math.max(...first.map((e) => e[0]));

// 2. Reconnect with `since`, on a new connection, to the run's end.
async function readFrom(since) {
  const out = [];
  let text = "";
  const t = transport(threadId);
  if (kind === "ws") {
    await t.open();
    const params = { channels: CHANNELS, ...(since != null ? { since } : {}) };
    const answer = await t.send({ id: 1, method: "subscription.subscribe", params });
    if (answer.type !== "success") throw new Error(JSON.stringify(answer));
    for await (const event of t.events()) {
      out.push(brief(event));
      if (event.params.data.event === "content-block-delta") text += event.params.data.delta.text;
      if (ends(event)) break;
    }
  } else {
    const handle = t.openEventStream({ channels: CHANNELS, ...(since != null ? { since } : {}) });
    await handle.ready;
    for await (const event of handle.events) {
      out.push(brief(event));
      if (event.params.data.event === "content-block-delta") text += event.params.data.delta.text;
      if (ends(event)) break;
    }
    handle.close();
  }
  await t.close();
  return { events: out, text };
}
const rest = await readFrom(since);
// 3. The whole thread, once more, from its first event.
const all = await readFrom(null);

// 4. A second run, read through the SDK's own projections: the assembled messages and the
// final state.
const second = client.threads.stream(threadId, {
  assistantId: assistant,
  transport: transport(threadId),
});
const again = second.run.start({ input: { messages: [{ role: "user", content: "again" }] } });
const messages = second.messages;
const output = second.output;
await again;
const texts = [];
for await (const message of messages) {
  texts.push(await message.text);
  break; // one answer; the projection stays open for the thread's next run
}
const state = await output;
await second.close();
const final = state.messages.map((m) => [m.getType(), typeof m.content === "string" ? m.content : m.text]);

console.log(JSON.stringify({ threadId, runId, since, first, rest, all, texts, final }));
