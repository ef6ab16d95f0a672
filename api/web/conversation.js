// The messages of the open chat in the DOM. Every change is keyed by the server's ids (message
// ids, tool call ids), so applying an event twice (history, then a replay of the run, then a
// snapshot) shows it once: a complete message replaces what was streamed for it, tokens of a
// message already complete are ignored, a tool call is drawn once.

import { t, tl } from "./i18n.js";
import { renderInto } from "./markdown.js";
import { avatar } from "./ui.js";

const el = (tag, className, text) => {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
};

function pretty(value) {
  if (typeof value === "string") {
    try {
      return JSON.stringify(JSON.parse(value), null, 2);
    } catch {
      return value;
    }
  }
  return JSON.stringify(value, null, 2);
}

export class Conversation {
  constructor(log, agent) {
    this.log = log;
    this.agent = agent;
    this.entries = new Map(); // message id -> {root, body, tools, meta, text, final, sender}
    this.tools = new Map(); // tool call id -> {details, state, result}
    this.pendingUsers = [];
    this.thinkingEl = null;
    this.frame = new Set();
    this.scrollBox = log.parentElement;
    this.follow = true;
    this.scrollBox.addEventListener("scroll", () => {
      const box = this.scrollBox;
      this.follow = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    });
  }

  get empty() {
    return this.entries.size === 0 && this.pendingUsers.length === 0;
  }

  scroll(force = false) {
    if (!force && !this.follow) return;
    requestAnimationFrame(() => {
      this.scrollBox.scrollTop = this.scrollBox.scrollHeight;
    });
  }

  /** Messages from GET /chats/{id}/messages, oldest first; `before` puts them above the rest. */
  history(messages, { before = false } = {}) {
    const anchor = before ? this.log.firstChild : null;
    const height = this.scrollBox.scrollHeight;
    for (const message of messages) this.message(message, anchor);
    if (before) this.scrollBox.scrollTop += this.scrollBox.scrollHeight - height;
    else this.scroll(true);
  }

  insert(node, anchor = null) {
    if (this.thinkingEl && !anchor) anchor = this.thinkingEl;
    this.log.insertBefore(node, anchor);
  }

  // ------------------------------------------------------------------ user messages

  userBubble(text) {
    const root = el("div", "msg msg-user");
    const who = el("span", "visually-hidden");
    tl(who, "chat.you");
    root.append(who, el("span", "visually-hidden", ": "));
    const body = el("div", "bubble", text);
    root.append(body);
    return root;
  }

  /** The user's message, shown at once; confirmed by its `message` event. */
  pendingUser(text) {
    const root = this.userBubble(text);
    root.classList.add("pending");
    this.insert(root);
    const pending = { root, text };
    this.pendingUsers.push(pending);
    this.scroll(true);
    return pending;
  }

  dropPending(pending) {
    pending.root.remove();
    this.pendingUsers = this.pendingUsers.filter((p) => p !== pending);
  }

  // ------------------------------------------------------------------ any message

  message(message, anchor = null) {
    if (message.sender === "user") return this.userMessage(message, anchor);
    if (message.sender === "tool") return this.toolMessage(message, anchor);
    return this.agentMessage(message, anchor);
  }

  userMessage(message, anchor) {
    if (this.entries.has(message.id)) return;
    // The message this page sent (by its text; else the oldest one waiting: the server may
    // have normalised it).
    let index = this.pendingUsers.findIndex((p) => p.text === message.content);
    if (index === -1 && this.pendingUsers.length) index = 0;
    let root;
    if (index !== -1 && !anchor) {
      root = this.pendingUsers[index].root;
      root.classList.remove("pending");
      this.pendingUsers.splice(index, 1);
    } else {
      root = this.userBubble(message.content);
      this.insert(root, anchor);
    }
    root.dataset.id = message.id;
    this.entries.set(message.id, { root, sender: "user", final: true });
    this.scroll();
  }

  agentEntry(id, anchor = null) {
    let entry = this.entries.get(id);
    if (entry) return entry;
    this.thinking(false);
    const root = el("div", "msg msg-agent");
    root.dataset.id = id;
    root.append(avatar(this.agent, "avatar avatar-sm"));
    const main = el("div", "msg-main");
    main.append(el("span", "visually-hidden", `${this.agent?.name ?? ""}: `));
    const tools = el("div", "tools");
    const body = el("div", "md");
    const meta = el("p", "msg-meta");
    main.append(tools, body, meta);
    root.append(main);
    this.insert(root, anchor);
    entry = { root, body, tools, meta, text: "", final: false, sender: "agent" };
    this.entries.set(id, entry);
    return entry;
  }

  agentMessage(message, anchor) {
    const entry = this.agentEntry(message.id, anchor);
    entry.final = true;
    entry.text = message.content || "";
    entry.root.classList.remove("streaming");
    entry.root.removeAttribute("aria-busy");
    this.frame.delete(entry);
    renderInto(entry.body, entry.text);
    entry.body.hidden = entry.text === "";
    for (const call of message.metadata?.tool_calls || []) {
      this.toolCall({ message_id: message.id, tool_call_id: call.id, name: call.name, args: call.args });
    }
    const meta = message.metadata || {};
    const parts = [];
    if (meta.model) parts.push(meta.model);
    if (meta.usage?.total_tokens) parts.push(t("chat.usage", { tokens: meta.usage.total_tokens }));
    entry.meta.textContent = entry.text ? parts.join(" · ") : "";
    entry.meta.hidden = !entry.meta.textContent;
    this.scroll();
  }

  toolMessage(message, anchor) {
    if (this.entries.has(message.id)) return;
    this.entries.set(message.id, { sender: "tool", final: true });
    const meta = message.metadata || {};
    this.toolResult({
      tool_call_id: meta.tool_call_id,
      name: meta.name,
      content: message.content,
      is_error: meta.is_error,
    }, anchor);
  }

  // ------------------------------------------------------------------ streaming

  token(messageId, delta) {
    const entry = this.agentEntry(messageId);
    if (entry.final) return;
    entry.text += delta;
    entry.root.classList.add("streaming");
    entry.root.setAttribute("aria-busy", "true");
    entry.body.hidden = false;
    this.draw(entry);
  }

  draw(entry) {
    // One Markdown render per frame, however many tokens arrived.
    if (this.frame.has(entry)) return;
    this.frame.add(entry);
    requestAnimationFrame(() => {
      if (!this.frame.delete(entry)) return;
      renderInto(entry.body, entry.text);
      this.scroll();
    });
  }

  toolCall(call, anchor = null) {
    if (this.tools.has(call.tool_call_id)) return;
    const entry = this.agentEntry(call.message_id, anchor);
    const details = el("details", "tool");
    const summary = el("summary");
    const icon = el("span", "tool-icon");
    icon.setAttribute("aria-hidden", "true");
    const label = tl(el("span", "tool-name"), "chat.tool_call", { name: call.name });
    const state = tl(el("span", "tool-state pending"), "chat.tool_pending");
    summary.append(icon, label, state);
    const body = el("div", "tool-body");
    body.append(tl(el("p", "tool-label"), "chat.tool_args"));
    const args = el("pre", "tool-args");
    args.append(el("code", null, pretty(call.args)));
    body.append(args);
    const resultLabel = tl(el("p", "tool-label"), "chat.tool_result");
    const result = el("pre", "tool-result");
    resultLabel.hidden = result.hidden = true;
    body.append(resultLabel, result);
    details.append(summary, body);
    details.dataset.toolCallId = call.tool_call_id;
    entry.tools.append(details);
    this.tools.set(call.tool_call_id, { details, state, result, resultLabel });
    this.scroll();
  }

  toolResult(data, anchor = null) {
    let tool = this.tools.get(data.tool_call_id);
    if (!tool) {
      // A result whose call is not shown (an older page): draw the call from the result.
      this.toolCall({ message_id: `tool-${data.tool_call_id}`, tool_call_id: data.tool_call_id,
        name: data.name, args: {} }, anchor);
      tool = this.tools.get(data.tool_call_id);
    }
    tool.result.replaceChildren(el("code", null, String(data.content ?? "")));
    tool.result.hidden = tool.resultLabel.hidden = false;
    tl(tool.resultLabel, data.is_error ? "chat.tool_error" : "chat.tool_result");
    tool.state.className = `tool-state ${data.is_error ? "failed" : "done"}`;
    if (data.is_error) tl(tool.state, "chat.tool_error");
    else {
      delete tool.state.dataset.i18n;
      tool.state.textContent = "✓";
    }
    tool.details.classList.toggle("tool-failed", Boolean(data.is_error));
    this.scroll();
  }

  /** The dots shown between sending and the first token. */
  thinking(on) {
    if (on && !this.thinkingEl) {
      const root = el("div", "msg msg-agent thinking");
      root.append(avatar(this.agent, "avatar avatar-sm"));
      const dots = el("div", "dots");
      dots.append(el("span"), el("span"), el("span"));
      root.append(dots);
      this.log.append(root);
      this.thinkingEl = root;
      this.scroll(true);
    } else if (!on && this.thinkingEl) {
      this.thinkingEl.remove();
      this.thinkingEl = null;
    }
  }

  note(kind, key, params) {
    const note = tl(el("p", `run-note run-note-${kind}`), key, params);
    this.insert(note);
    this.scroll();
  }

  /** The run ended: nothing streams any more. */
  finish() {
    this.thinking(false);
    for (const entry of this.entries.values()) {
      if (entry.sender !== "agent" || entry.final) continue;
      this.frame.delete(entry);
      renderInto(entry.body, entry.text);
      entry.root.classList.remove("streaming");
      entry.root.removeAttribute("aria-busy");
    }
    for (const pending of this.pendingUsers) pending.root.classList.remove("pending");
  }
}
