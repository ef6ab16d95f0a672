// Drives a started Switchboard with @langchain/langgraph-sdk: pages assistants with the
// X-Pagination-Next header the client reads, and follows a thread's stream (joinStream) over
// a run started meanwhile. Prints one JSON object for the Python test to check.
// Usage: node pages_and_thread_stream.mjs URL TOKEN ASSISTANT
import { Client } from "@langchain/langgraph-sdk";

const [url, token, assistant] = process.argv.slice(2);
const client = new Client({
  apiUrl: url,
  apiKey: null,
  defaultHeaders: { Authorization: `Bearer ${token}` },
});

const first = await client.assistants.search({ limit: 2, includePagination: true });
const total = await client.assistants.count();
const last = await client.assistants.search({
  limit: 2,
  offset: total - 1,
  includePagination: true,
});

const thread = await client.threads.create();
const run = await client.runs.create(thread.thread_id, assistant, {
  input: { messages: [{ role: "user", content: "hello" }] },
  streamMode: ["updates"],
});
const events = [];
// The stream stays open for the thread's next run: leave it once this one is done.
const leave = new AbortController();
try {
  for await (const chunk of client.threads.joinStream(thread.thread_id, {
    lastEventId: `${run.run_id}:0`,
    signal: leave.signal,
  })) {
    events.push([chunk.event, chunk.id]);
    if (chunk.event === "metadata" && chunk.data.status === "run_done") leave.abort();
  }
} catch (error) {
  if (!leave.signal.aborted) throw error;
}
console.log(
  JSON.stringify({
    total,
    first: [first.assistants.length, first.next],
    last: [last.assistants.length, last.next],
    run_id: run.run_id,
    events,
  }),
);
