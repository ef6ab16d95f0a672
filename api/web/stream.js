// Following one run's events. A message is sent with fetch (Accept: text/event-stream) and its
// body read as it arrives; if that connection drops, or the page is reloaded, the run is
// rejoined through a short-lived stream token and an EventSource after the last event id seen
// (the browser's own reconnects send Last-Event-ID; a new EventSource after an expired token
// says last_event_id in its URL). The run's events so far, compacted (an agent message's
// tokens merged, dropped once the message itself arrives), and the last event id are kept in
// sessionStorage, so a reloaded page shows the partial answer at once and asks only for what
// it has not seen.

import * as api from "./api.js";

const RUN_KEY = "switchboard.run";
const EVENTS = ["run", "message", "token", "tool_call", "tool_result", "error", "end"];
const SAVE_EVERY_MS = 100;

/** The run this tab was following when it was left: {chatId, runId, lastEventId, events}. */
export function savedRun() {
  try {
    const value = JSON.parse(sessionStorage.getItem(RUN_KEY));
    return value && value.runId && value.chatId ? value : null;
  } catch {
    return null;
  }
}

export function forgetRun() {
  sessionStorage.removeItem(RUN_KEY);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function online() {
  if (navigator.onLine) return Promise.resolve();
  return new Promise((resolve) => window.addEventListener("online", resolve, { once: true }));
}

let current = null;
window.addEventListener("pagehide", () => current?.save());

export class RunWatcher {
  /**
   * onEvent(type, data) for each event once (replays are skipped by event id);
   * onState("live" | "reconnecting" | "ended" | "lost").
   */
  constructor(chatId, { onEvent, onState }) {
    this.chatId = chatId;
    this.onEvent = onEvent;
    this.onState = onState;
    this.runId = null;
    this.lastEventId = 0;
    this.log = [];
    this.ended = false;
    this.closed = false;
    this.stopWanted = false;
    this.saveTimer = null;
    this.abort = new AbortController();
    this.source = null;
    this.unlisten = null;
    current = this;
  }

  /** Send a message; resolves once the server accepted it (throws its refusal), then streams. */
  async send(content) {
    const response = await api.request("POST", `/chats/${this.chatId}/messages`, {
      body: { content },
      accept: "text/event-stream",
      raw: true,
      signal: this.abort.signal,
    });
    this.onState("live");
    this.done = this.follow(response);
  }

  /** Rejoin a run: from a saved snapshot (its events shown again), else from its first event. */
  attach(runId, snapshot = null) {
    this.runId = runId;
    if (snapshot && snapshot.runId === runId) {
      this.log = snapshot.events || [];
      this.lastEventId = snapshot.lastEventId || 0;
      for (const event of this.log) this.onEvent(event.type, event.data);
    }
    this.done = this.resume(false);
    return this.done;
  }

  async follow(response) {
    try {
      for await (const event of api.readEvents(response)) {
        this.receive(event.type, event.data, event.id);
        if (this.ended || this.closed) return;
      }
    } catch {
      if (this.closed) return;
    }
    if (!this.ended && !this.closed) await this.resume(true);
  }

  receive(type, raw, id) {
    if (this.ended || this.closed || !EVENTS.includes(type)) return;
    const number = id === null || id === undefined || id === "" ? null : Number(id);
    if (number !== null && number <= this.lastEventId) return; // seen already (a replay)
    let data;
    try {
      data = JSON.parse(raw);
    } catch {
      return;
    }
    if (number !== null) this.lastEventId = number;
    if (type === "run") {
      this.runId = data.run_id;
      if (this.stopWanted) this.stop();
    }
    this.record(type, data);
    this.onEvent(type, data);
    if (type === "end") {
      this.ended = true;
      clearTimeout(this.saveTimer);
      forgetRun();
      this.source?.close();
      this.onState("ended");
    }
  }

  record(type, data) {
    if (type === "end") return;
    const last = this.log[this.log.length - 1];
    if (type === "token" && last?.type === "token" && last.data.message_id === data.message_id) {
      last.data = { ...last.data, delta: last.data.delta + data.delta };
    } else if (type === "message") {
      this.log = this.log.filter((e) => !(e.type === "token" && e.data.message_id === data.id));
      this.log.push({ type, data });
    } else {
      this.log.push({ type, data: { ...data } });
    }
    if (!this.saveTimer) this.saveTimer = setTimeout(() => this.save(), SAVE_EVERY_MS);
  }

  save() {
    clearTimeout(this.saveTimer);
    this.saveTimer = null;
    if (this.ended || !this.runId) return;
    const snapshot = {
      chatId: this.chatId,
      runId: this.runId,
      lastEventId: this.lastEventId,
      events: this.log,
    };
    try {
      sessionStorage.setItem(RUN_KEY, JSON.stringify(snapshot));
    } catch {
      // Storage full: a reload replays the run from its start instead.
      forgetRun();
    }
  }

  /** Follow the run through EventSources until its end, a new stream token for each. */
  async resume(dropped) {
    if (dropped) this.onState("reconnecting");
    let failures = 0;
    while (!this.closed && !this.ended) {
      if (!this.runId) {
        this.onState("lost");
        return;
      }
      try {
        const grant = await api.post(`/runs/${this.runId}/stream-token`);
        const outcome = await this.listen(grant.stream_url);
        if (outcome === "end" || outcome === "closed") return;
        failures = outcome === "progress" ? 0 : failures + 1;
      } catch (error) {
        if (error instanceof api.ApiError && error.status === 404) {
          this.onState("lost"); // the run or its events are gone
          return;
        }
        if (error instanceof api.SignedOut) return;
        failures += 1;
      }
      if (this.closed || this.ended) return;
      this.onState("reconnecting");
      await online();
      await sleep(Math.min(250 * 2 ** failures, 8000));
    }
  }

  listen(url) {
    return new Promise((resolve) => {
      const full = this.lastEventId > 0 ? `${url}&last_event_id=${this.lastEventId}` : url;
      const source = new EventSource(full);
      this.source = source;
      let progressed = false;
      const finish = (outcome) => {
        source.close();
        this.unlisten = null;
        resolve(outcome);
      };
      this.unlisten = () => finish("closed");
      source.addEventListener("open", () => this.onState("live"));
      for (const type of EVENTS) {
        source.addEventListener(type, (event) => {
          // "error" is also the EventSource's own connection error, an Event without data.
          if (!(event instanceof MessageEvent)) return;
          progressed = true;
          this.receive(type, event.data, event.lastEventId);
          if (this.ended) finish("end");
        });
      }
      source.addEventListener("error", (event) => {
        if (event instanceof MessageEvent) return;
        if (this.ended || this.closed) finish("end");
        else if (source.readyState === EventSource.CLOSED) finish(progressed ? "progress" : "failed");
        else this.onState("reconnecting"); // the browser retries by itself, with Last-Event-ID
      });
    });
  }

  /** Cancel the run (once its id is known). */
  async stop() {
    this.stopWanted = true;
    if (!this.runId || this.ended) return;
    await api.post(`/runs/${this.runId}/cancel`);
  }

  /** Stop following (the run goes on; its snapshot stays for a later visit). */
  close() {
    if (this.closed) return;
    this.save();
    this.closed = true;
    this.abort.abort();
    this.unlisten?.();
    this.source?.close();
    if (current === this) current = null;
  }
}
