// Drives a started Switchboard with @langchain/langgraph-sdk, as a frontend would: create a
// thread, stream a run (values + messages-tuple), read the thread's history. Prints one JSON
// object for the Python test to check. Usage: node stream_and_history.mjs URL TOKEN ASSISTANT
import { Client } from "@langchain/langgraph-sdk";

const [url, token, assistant] = process.argv.slice(2);
const client = new Client({
  apiUrl: url,
  apiKey: null,
  defaultHeaders: { Authorization: `Bearer ${token}` },
});

const thread = await client.threads.create({ metadata: { from: "js" } });
const events = [];
let text = "";
for await (const chunk of client.runs.stream(thread.thread_id, assistant, {
  input: { messages: [{ role: "user", content: "hello from js" }] },
  streamMode: ["values", "messages-tuple"],
})) {
  events.push(chunk.event);
  if (chunk.event === "messages") text += chunk.data[0].content;
}
const history = await client.threads.getHistory(thread.thread_id, { limit: 10 });
const state = await client.threads.getState(thread.thread_id);
console.log(
  JSON.stringify({
    thread_id: thread.thread_id,
    events,
    text,
    history: history.map((s) => (s.values.messages ?? []).length),
    final: state.values.messages.map((m) => [m.type, m.content]),
  }),
);
