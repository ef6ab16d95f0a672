// Switchboard's chat page: plain ES modules on the public API, no build step.
//
// Views (location.hash): #/onboarding, #/new (agent picker), #/agent/<id> (a chat not sent
// yet), #/chats/<id>, #/chats (the list alone, on a phone). Signed out, the sign-in form.

import * as api from "./api.js";
import { t, tl, tla, tOr, apply, setLang, lang, onLangChange, duration } from "./i18n.js";
import { Conversation } from "./conversation.js";
import { RunWatcher, savedRun, forgetRun } from "./stream.js";
import { avatar, el, isFake, when } from "./ui.js";

const $ = (id) => document.getElementById(id);
const SKIPPED_ONBOARDING = "switchboard.onboarding-skipped";

const state = {
  info: null,
  user: null,
  profile: null,
  agents: new Map(),
  agentOrder: [],
  agentsLoaded: false,
  options: null,
  chats: [],
  chatsTotal: 0,
  chatsLoaded: false,
  filter: "active",
  query: "",
  chat: null, // the open chat (null in a draft: an agent picked, nothing sent yet)
  agent: null, // the open chat's agent
  conversation: null,
  watcher: null,
  streaming: false,
  creating: false,
  oldest: null,
  openSeq: 0,
  routed: false,
};

// ======================================================================== status and errors

function announce(text) {
  const status = $("status");
  status.textContent = "";
  // A new node each time, so the same words are announced again.
  requestAnimationFrame(() => {
    status.textContent = text;
  });
}

function banner(text) {
  const node = $("banner");
  node.textContent = text || "";
  node.hidden = !text;
}

function composerNotice(text, kind = "info") {
  const node = $("composer-notice");
  node.textContent = text || "";
  node.className = `notice notice-${kind}`;
  node.hidden = !text;
}

function describe(error) {
  if (error instanceof api.SignedOut) return t("auth.expired");
  if (error instanceof api.NetworkError) return t("err.network");
  if (error instanceof api.ApiError) {
    if (error.status === 429 && error.retryAfter !== null) {
      return t("err.rate_long", { time: duration(error.retryAfter) });
    }
    return error.detail;
  }
  return t("err.generic", { detail: error?.message ?? String(error) });
}

// A 429 or 503 waited out: say so, counting down, then retry.
api.hooks.wait = (seconds, status) =>
  new Promise((resolve) => {
    const key = status === 503 ? "err.unavailable" : "err.rate";
    let left = Math.max(1, Math.ceil(seconds));
    const target = $("view-chat").hidden ? banner : (s) => composerNotice(s, "warn");
    target(t(key, { s: left }));
    announce(t(key, { s: left }));
    const timer = setInterval(() => {
      left -= 1;
      if (left > 0) {
        target(t(key, { s: left }));
        return;
      }
      clearInterval(timer);
      target("");
      resolve();
    }, 1000);
  });

api.hooks.signedOut = () => {
  resetSession();
  showAuth();
  banner(t("auth.expired"));
};

// ======================================================================== views

const VIEWS = ["auth", "onboarding", "list", "agents", "chat"];

function showView(name, { sidebar = true } = {}) {
  for (const view of VIEWS) $(`view-${view}`).hidden = view !== name;
  document.body.dataset.view = name;
  $("sidebar").hidden = !sidebar;
  const signed = api.signedIn();
  $("sign-out").hidden = !signed;
  $("who").hidden = !signed || !state.user;
  if (signed && state.user) tl($("who"), "signed_in_as", { name: state.user.name });
  if (name !== "chat") leaveChat();
}

function focusHeading(id) {
  if (!state.routed) return; // the first view of a load keeps the browser's focus
  const heading = $(id);
  heading.setAttribute("tabindex", "-1");
  heading.focus({ preventScroll: false });
}

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

async function route() {
  banner("");
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  if (!api.signedIn()) {
    showAuth();
    state.routed = true;
    return;
  }
  try {
    await loadUser();
  } catch (error) {
    if (!(error instanceof api.SignedOut)) banner(describe(error));
    return;
  }
  const [page, id] = parts;
  if (page === "onboarding") {
    await showOnboarding();
  } else if (!state.user.onboarding_completed && !sessionStorage.getItem(SKIPPED_ONBOARDING)) {
    history.replaceState(null, "", "#/onboarding");
    await showOnboarding();
  } else {
    if (!state.chatsLoaded) loadChats().catch((error) => banner(describe(error)));
    if (page === "chats" && id) await showChat(id);
    else if (page === "agent" && id) await showDraft(id);
    else if (page === "chats") showList();
    else await showAgents();
  }
  state.routed = true;
}

async function loadUser() {
  if (state.user && state.profile) return;
  const [user, status, info] = await Promise.all([
    api.get("/users/me"),
    api.get("/users/me/onboarding-status"),
    state.info ? state.info : fetch("/info").then((r) => (r.ok ? r.json() : null)).catch(() => null),
  ]);
  state.user = user;
  state.profile = status.professional_profile;
  state.info = info;
  api.setUser(user);
}

function resetSession() {
  leaveChat();
  Object.assign(state, {
    user: null, profile: null, agents: new Map(), agentOrder: [], agentsLoaded: false,
    options: null, chats: [], chatsTotal: 0, chatsLoaded: false, chat: null, agent: null,
  });
  forgetRun();
  $("chat-list").replaceChildren();
}

// ======================================================================== sign in / sign up

let authMode = "signin";

function setAuthMode(mode) {
  authMode = mode;
  const signup = mode === "signup";
  $("tab-signin").setAttribute("aria-pressed", String(!signup));
  $("tab-signup").setAttribute("aria-pressed", String(signup));
  $("name-field").hidden = !signup;
  $("password-hint").hidden = !signup;
  $("auth-password").autocomplete = signup ? "new-password" : "current-password";
  tl($("auth-submit"), signup ? "auth.signup" : "auth.signin");
  $("auth-error").textContent = "";
  for (const input of $("auth-form").querySelectorAll("input")) input.removeAttribute("aria-invalid");
}

function showAuth() {
  showView("auth", { sidebar: false });
  document.title = t("app.name");
}

function invalid(input, message, errorNode) {
  input.setAttribute("aria-invalid", "true");
  errorNode.textContent = message;
  input.focus();
}

async function submitAuth(event) {
  event.preventDefault();
  const error = $("auth-error");
  error.textContent = "";
  const name = $("auth-name");
  const email = $("auth-email");
  const password = $("auth-password");
  for (const input of [name, email, password]) input.removeAttribute("aria-invalid");
  const signup = authMode === "signup";
  if (signup && !name.value.trim()) return invalid(name, `${t("auth.name")}?`, error);
  if (!email.value.trim() || !email.checkValidity()) return invalid(email, `${t("auth.email")}?`, error);
  if (!password.value || (signup && password.value.length < 8)) {
    return invalid(password, t("auth.password.hint"), error);
  }
  const submit = $("auth-submit");
  submit.disabled = true;
  tl(submit, "auth.working");
  try {
    if (signup) await api.signUp(name.value.trim(), email.value.trim(), password.value);
    else await api.signIn(email.value.trim(), password.value);
    password.value = "";
    state.user = null;
    state.profile = null;
    await route();
  } catch (err) {
    if (err instanceof api.ApiError && err.status === 401) error.textContent = t("auth.bad_credentials");
    else if (err instanceof api.ApiError && err.status === 409) error.textContent = t("auth.taken");
    else error.textContent = describe(err);
    if (err instanceof api.ApiError && err.status === 429 && err.retryAfter) {
      // Locked out: the button waits as long as the server said.
      setTimeout(() => {
        submit.disabled = false;
      }, err.retryAfter * 1000);
      tl(submit, signup ? "auth.signup" : "auth.signin");
      return;
    }
  }
  submit.disabled = false;
  tl(submit, signup ? "auth.signup" : "auth.signin");
}

// ======================================================================== onboarding

function chip(type, name, value, label, checked, title) {
  const wrap = el("label", "chip");
  const input = el("input");
  input.type = type;
  input.name = name;
  input.value = value;
  input.checked = checked;
  const text = el("span", null, label);
  if (title) wrap.title = title;
  wrap.append(input, text);
  return wrap;
}

function renderOnboarding() {
  const options = state.options;
  const profile = state.profile || {};
  const form = $("onb-form");
  const picked = (name) => [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((i) => i.value);
  const role = $("onb-role").value || profile.professional_role || "";
  const level = picked("experience_level")[0] ?? profile.experience_level;
  const style = picked("preferred_interaction_style")[0] ?? profile.preferred_interaction_style;
  const interests = form.querySelector('input[name="interest"]')
    ? picked("interest")
    : (profile.interests || []).map((i) => i.id);

  const select = $("onb-role");
  const placeholder = el("option", null, t("onb.role.choose"));
  placeholder.value = "";
  select.replaceChildren(placeholder, ...options.professional_roles.map((o) => {
    const option = el("option", null, tOr(`role.${o.value}`, o.label));
    option.value = o.value;
    return option;
  }));
  select.value = role;
  $("onb-levels").replaceChildren(...options.experience_levels.map((o) =>
    chip("radio", "experience_level", o.value, tOr(`level.${o.value}`, o.label), o.value === level)));
  $("onb-styles").replaceChildren(...options.interaction_styles.map((o) =>
    chip("radio", "preferred_interaction_style", o.value, tOr(`style.${o.value}`, o.label), o.value === style)));
  const collator = new Intl.Collator(lang());
  const areas = options.interest_areas
    .map((a) => ({ ...a, label: tOr(`area.${a.slug}`, a.name) }))
    .sort((a, b) => collator.compare(a.label, b.label));
  $("onb-interests").replaceChildren(...areas.map((a) =>
    chip("checkbox", "interest", a.id, a.label, interests.includes(a.id), a.description)));
}

async function showOnboarding() {
  showView("onboarding", { sidebar: false });
  document.title = `${t("onb.title")} · ${t("app.name")}`;
  if (!state.options) {
    try {
      state.options = await api.get("/users/me/onboarding-options");
    } catch (error) {
      $("onb-error").textContent = describe(error);
      return;
    }
    const profile = state.profile || {};
    $("onb-org").value = profile.organization || "";
    $("onb-use-cases").value = (profile.use_cases || []).join("\n");
    $("onb-goals").value = profile.goals || "";
  }
  renderOnboarding();
  focusHeading("onb-title");
}

async function submitOnboarding(event) {
  event.preventDefault();
  const form = $("onb-form");
  const error = $("onb-error");
  error.textContent = "";
  const value = (name) => form.querySelector(`input[name="${name}"]:checked`)?.value;
  const role = $("onb-role").value;
  const level = value("experience_level");
  const style = value("preferred_interaction_style");
  const interests = [...form.querySelectorAll('input[name="interest"]:checked')].map((i) => i.value);
  $("onb-role").removeAttribute("aria-invalid");
  if (!role) return invalid($("onb-role"), `${t("onb.role")}?`, error);
  if (!level) return invalid(form.querySelector('input[name="experience_level"]'), `${t("onb.experience")}?`, error);
  if (!interests.length) return invalid(form.querySelector('input[name="interest"]'), t("onb.interests.required"), error);
  if (!style) return invalid(form.querySelector('input[name="preferred_interaction_style"]'), `${t("onb.style")}?`, error);
  const useCases = $("onb-use-cases").value.split("\n").map((s) => s.trim()).filter(Boolean);
  const body = {
    professional_role: role,
    organization: $("onb-org").value.trim() || null,
    experience_level: level,
    interest_area_ids: interests,
    preferred_interaction_style: style,
    use_cases: useCases.length ? useCases : null,
    goals: $("onb-goals").value.trim() || null,
  };
  const submit = $("onb-submit");
  submit.disabled = true;
  try {
    const saved = await api.post("/users/me/onboarding", body);
    state.profile = saved.professional_profile;
    state.user = { ...state.user, onboarding_completed: true };
    api.setUser(state.user);
    state.agentsLoaded = false; // recommendations follow the new interests
    announce(t("onb.saved"));
    go("#/new");
  } catch (err) {
    error.textContent = describe(err);
  } finally {
    submit.disabled = false;
  }
}

// ======================================================================== agents

let agentsLoading = null;

function loadAgents() {
  if (state.agentsLoaded) return Promise.resolve();
  agentsLoading ??= fetchAgents().finally(() => {
    agentsLoading = null;
  });
  return agentsLoading;
}

async function fetchAgents() {
  const agents = [];
  for (let offset = 0; offset < 500; offset += 100) {
    const page = await api.get(`/agents/?recommended=true&limit=100&offset=${offset}`);
    agents.push(...page.items);
    if (agents.length >= page.total || !page.items.length) break;
  }
  state.agentOrder = agents.map((a) => a.id);
  for (const agent of agents) state.agents.set(agent.id, agent);
  state.agentsLoaded = true;
}

async function agentFor(id) {
  if (!id) return { id: "", name: "?" };
  if (state.agents.has(id)) return state.agents.get(id);
  try {
    const agent = await api.get(`/agents/${id}`);
    state.agents.set(id, agent);
    return agent;
  } catch {
    return { id, name: "?", model_name: null, retired: true };
  }
}

function modelOf(agent) {
  return agent?.model_name || state.info?.default_model || null;
}

function recommended(agent) {
  const mine = new Set((state.profile?.interests || []).map((i) => i.id));
  return agent.interest_area_ids.some((id) => mine.has(id));
}

function agentCard(agent) {
  const item = el("li");
  const card = el("a", "agent-card");
  card.href = `#/agent/${agent.id}`;
  card.dataset.id = agent.id;
  card.append(avatar(agent, "avatar avatar-lg"));
  const body = el("span", "agent-card-body");
  const head = el("span", "agent-card-head");
  head.append(el("span", "agent-name", agent.name));
  if (recommended(agent)) head.append(tl(el("span", "badge badge-rec"), "agents.recommended"));
  const model = modelOf(agent);
  if (isFake(model)) {
    const badge = tl(el("span", "badge badge-fake"), "chat.fake.short");
    badge.title = model;
    head.append(badge);
  }
  body.append(head);
  if (agent.description) body.append(el("span", "agent-desc", agent.description));
  if (agent.tools_enabled.length) {
    body.append(tl(el("span", "agent-tools"), "agents.tools", { tools: agent.tools_enabled.join(", ") }));
  }
  card.append(body);
  item.append(card);
  return item;
}

async function showAgents() {
  showView("agents");
  document.title = `${t("agents.title")} · ${t("app.name")}`;
  markCurrentChat(null);
  try {
    await loadAgents();
  } catch (error) {
    banner(describe(error));
    return;
  }
  renderAgents();
  focusHeading("agents-title");
}

function renderAgents() {
  const agents = state.agentOrder.map((id) => state.agents.get(id));
  // Recommended first (the API orders by overlap already; this keeps it true for ties).
  const ordered = [...agents.filter(recommended), ...agents.filter((a) => !recommended(a))];
  $("agent-list").replaceChildren(...ordered.map(agentCard));
  $("agents-empty").hidden = ordered.length > 0;
}

// ======================================================================== the chat list

let chatsSeq = 0;

/** A page of the chat list (the server filters by status and searches titles). */
async function loadChats({ more = false } = {}) {
  const seq = ++chatsSeq;
  // Each chat shows its agent: know them first.
  if (!state.agentsLoaded) await loadAgents().catch(() => {});
  const params = new URLSearchParams({
    status: state.filter,
    limit: "100",
    offset: String(more ? state.chats.length : 0),
  });
  if (state.query) params.set("q", state.query);
  const page = await api.get(`/chats/?${params}`);
  if (seq !== chatsSeq) return; // a later search or filter answered first
  state.chats = more ? [...state.chats, ...page.items] : page.items;
  state.chatsTotal = page.total;
  state.chatsLoaded = true;
  renderChats();
}

let openMenu = null;

function closeMenu({ focus = false } = {}) {
  if (!openMenu) return;
  const { toggle, menu } = openMenu;
  menu.hidden = true;
  toggle.setAttribute("aria-expanded", "false");
  if (focus) toggle.focus();
  openMenu = null;
}

function chatItem(chat) {
  const item = el("li", "chat-item");
  item.dataset.id = chat.id;
  const title = chat.title || t("nav.untitled");
  const agent = state.agents.get(chat.agent_id);
  const link = el("a", "chat-link");
  link.href = `#/chats/${chat.id}`;
  link.append(avatar(agent || { id: chat.agent_id, name: "?" }, "avatar avatar-sm"));
  const text = el("span", "chat-link-text");
  text.append(el("span", "chat-link-title", title));
  const sub = [agent?.name, when(chat.last_message_at || chat.created_at, lang())].filter(Boolean).join(" · ");
  text.append(el("span", "chat-link-sub", sub));
  link.append(text);
  if (state.chat?.id === chat.id) link.setAttribute("aria-current", "page");

  const toggle = el("button", "icon-btn menu-toggle");
  toggle.type = "button";
  toggle.setAttribute("aria-expanded", "false");
  toggle.setAttribute("aria-controls", `menu-${chat.id}`);
  tla(toggle, "aria-label", "nav.actions", { title });
  toggle.innerHTML = '<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><circle cx="5" cy="12" r="1.6"></circle><circle cx="12" cy="12" r="1.6"></circle><circle cx="19" cy="12" r="1.6"></circle></svg>';

  const menu = el("div", "menu");
  menu.id = `menu-${chat.id}`;
  menu.hidden = true;
  const action = (key, act) => {
    const button = tl(el("button", `menu-item menu-${act}`), key);
    button.type = "button";
    button.dataset.act = act;
    return button;
  };
  menu.append(
    action("nav.rename", "rename"),
    action(chat.status === "archived" ? "nav.unarchive" : "nav.archive", "archive"),
    action("nav.delete", "delete"),
  );
  toggle.addEventListener("click", (event) => {
    event.stopPropagation();
    const opening = menu.hidden;
    closeMenu();
    if (!opening) return;
    menu.hidden = false;
    toggle.setAttribute("aria-expanded", "true");
    openMenu = { toggle, menu };
    menu.querySelector("button").focus();
  });
  menu.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-act]");
    if (!button) return;
    event.stopPropagation();
    closeMenu();
    chatAction(button.dataset.act, chat, toggle);
  });
  item.append(link, toggle, menu);
  return item;
}

function renderChats() {
  const chats = state.chats;
  $("chat-list").replaceChildren(...chats.map(chatItem));
  const empty = $("chat-list-empty");
  empty.hidden = chats.length > 0;
  if (state.query) tl(empty, "nav.empty.search", { q: state.query });
  else tl(empty, state.filter === "archived" ? "nav.empty.archived" : "nav.empty");
  $("chat-list-more").hidden = state.chats.length >= state.chatsTotal;
}

function markCurrentChat(id) {
  for (const link of $("chat-list").querySelectorAll(".chat-link")) {
    if (link.closest(".chat-item").dataset.id === id) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

let searchTimer = null;

function onSearch() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(async () => {
    state.query = $("chat-search").value.trim();
    try {
      await loadChats();
    } catch (error) {
      banner(describe(error));
    }
  }, 200);
}

function setFilter(status) {
  state.filter = status;
  for (const button of document.querySelectorAll(".sidebar .seg")) {
    button.setAttribute("aria-pressed", String(button.dataset.status === status));
  }
  loadChats().catch((error) => banner(describe(error)));
}

async function chatAction(act, chat, toggle) {
  if (act === "rename") {
    const dialog = $("dlg-rename");
    $("rename-input").value = chat.title || "";
    $("rename-error").textContent = "";
    dialog.returnFocus = toggle;
    dialog.chat = chat;
    dialog.showModal();
    $("rename-input").select();
  } else if (act === "delete") {
    const dialog = $("dlg-delete");
    tl($("dlg-delete-body"), "dlg.delete.body", { title: chat.title || t("nav.untitled") });
    $("delete-error").textContent = "";
    dialog.returnFocus = toggle;
    dialog.chat = chat;
    dialog.showModal();
  } else if (act === "archive") {
    const archived = chat.status === "archived";
    try {
      await api.put(`/chats/${chat.id}`, { status: archived ? "active" : "archived" });
      announce(t(archived ? "st.unarchived" : "st.archived"));
      await loadChats();
      if (state.chat?.id === chat.id) {
        state.chat.status = archived ? "active" : "archived";
        renderChatState();
      }
      $("chat-search").focus();
    } catch (error) {
      banner(describe(error));
    }
  }
}

async function submitRename(event) {
  event.preventDefault();
  const dialog = $("dlg-rename");
  const title = $("rename-input").value.trim();
  if (!title) return invalid($("rename-input"), `${t("dlg.rename.label")}?`, $("rename-error"));
  try {
    const chat = await api.put(`/chats/${dialog.chat.id}`, { title });
    dialog.close();
    announce(t("st.renamed"));
    if (state.chat?.id === chat.id) {
      state.chat.title = chat.title;
      renderChatHeader();
    }
    await loadChats();
    focusChatToggle(chat.id, dialog);
  } catch (error) {
    $("rename-error").textContent = describe(error);
  }
}

async function submitDelete(event) {
  event.preventDefault();
  const dialog = $("dlg-delete");
  const chat = dialog.chat;
  try {
    await api.del(`/chats/${chat.id}`);
    dialog.close();
    announce(t("st.deleted"));
    const saved = savedRun();
    if (saved?.chatId === chat.id) forgetRun();
    await loadChats();
    if (state.chat?.id === chat.id) go("#/new");
    else $("chat-search").focus();
  } catch (error) {
    $("delete-error").textContent = describe(error);
  }
}

function focusChatToggle(id, dialog) {
  const toggle = $("chat-list").querySelector(`.chat-item[data-id="${id}"] .menu-toggle`);
  (toggle || dialog.returnFocus || $("chat-search")).focus();
}

function showList() {
  // On a phone, the list is a page of its own; on a wide screen the picker sits beside it.
  if (matchMedia("(max-width: 760px)").matches) {
    showView("list");
    markCurrentChat(null);
    document.title = `${t("nav.label")} · ${t("app.name")}`;
    if (state.routed) $("sidebar-title").focus();
    return;
  }
  showAgents();
}

// ======================================================================== a chat

function leaveChat() {
  if (state.watcher) {
    state.watcher.close();
    state.watcher = null;
  }
  state.streaming = false;
}

function renderChatHeader() {
  const agent = state.agent;
  const title = state.chat?.title || t("nav.untitled");
  const heading = $("chat-title");
  if (state.chat?.title) {
    delete heading.dataset.i18n;
    heading.textContent = title;
  } else {
    tl(heading, "nav.untitled");
  }
  tl($("chat-agent"), "chat.with", { name: agent.name });
  $("chat-avatar").replaceWith(Object.assign(avatar(agent, "avatar"), { id: "chat-avatar" }));
  const model = modelOf(agent);
  const notice = $("fake-notice");
  notice.hidden = !isFake(model);
  if (isFake(model)) tl(notice, "chat.fake", { model });
  tla($("composer-input"), "placeholder", "chat.placeholder", { name: agent.name });
  document.title = `${title} · ${t("app.name")}`;
}

function renderChatState() {
  const archived = state.chat?.status === "archived";
  $("composer-input").disabled = archived;
  $("send").disabled = archived || state.streaming;
  if (archived) composerNotice(t("chat.archived"), "warn");
  else if (state.agent?.retired) composerNotice(t("chat.retired"), "warn");
  else composerNotice("");
  $("chat-empty").hidden = !state.conversation?.empty;
}

function setStreaming(on) {
  state.streaming = on;
  const stop = $("stop");
  const hadFocus = document.activeElement === stop;
  stop.hidden = !on;
  stop.disabled = false;
  $("send").hidden = on;
  $("send").disabled = on || state.chat?.status === "archived";
  if (!on && hadFocus) $("composer-input").focus();
}

function openConversation(agent) {
  state.conversation = new Conversation($("chat-log"), agent);
  $("chat-log").replaceChildren();
  $("load-earlier").hidden = true;
  state.oldest = null;
}

/** Stop following another chat's run (it goes on) before this view draws into the log. */
function switchChat() {
  leaveChat();
  setStreaming(false);
  state.conversation = null;
  $("chat-log").replaceChildren();
  composerNotice("");
}

async function showDraft(agentId) {
  const seq = ++state.openSeq;
  showView("chat");
  switchChat();
  state.chat = null;
  markCurrentChat(null);
  try {
    await loadAgents();
  } catch (error) {
    banner(describe(error));
  }
  const agent = await agentFor(agentId);
  if (seq !== state.openSeq) return;
  state.agent = agent;
  openConversation(agent);
  renderChatHeader();
  renderChatState();
  $("composer-input").value = "";
  $("composer-input").focus();
}

async function showChat(chatId) {
  const seq = ++state.openSeq;
  showView("chat");
  switchChat();
  markCurrentChat(chatId);
  let chat;
  try {
    chat = await api.get(`/chats/${chatId}`);
  } catch (error) {
    if (seq !== state.openSeq) return;
    state.chat = null;
    if (error instanceof api.ApiError && (error.status === 404 || error.status === 422)) {
      history.replaceState(null, "", "#/new");
      await showAgents();
      banner(t("chat.not_found"));
    } else banner(describe(error));
    return;
  }
  if (state.agents.size === 0) await loadAgents().catch(() => {});
  const agent = await agentFor(chat.agent_id);
  if (seq !== state.openSeq) return;
  state.chat = chat;
  state.agent = agent;
  openConversation(agent);
  renderChatHeader();
  let page;
  try {
    page = await api.get(`/chats/${chatId}/messages?limit=100`);
  } catch (error) {
    banner(describe(error));
    return;
  }
  if (seq !== state.openSeq) return;
  state.conversation.history(page.items);
  state.oldest = page.items[0]?.id ?? null;
  $("load-earlier").hidden = !page.has_more;
  renderChatState();
  $("composer-input").focus({ preventScroll: true });
  await rejoin(chatId, seq);
}

async function loadEarlier() {
  if (!state.chat || !state.oldest || !state.conversation) return;
  try {
    const page = await api.get(`/chats/${state.chat.id}/messages?limit=100&before=${encodeURIComponent(state.oldest)}`);
    state.conversation.history(page.items, { before: true });
    state.oldest = page.items[0]?.id ?? state.oldest;
    $("load-earlier").hidden = !page.has_more;
  } catch (error) {
    banner(describe(error));
  }
}

/** A run of this chat still going (this tab's, saved before a reload, or any): follow it. */
async function rejoin(chatId, seq) {
  const saved = savedRun();
  if (saved && saved.chatId === chatId) {
    follow(chatId).attach(saved.runId, saved);
    return;
  }
  try {
    const runs = await api.get(`/chats/${chatId}/runs?limit=1`);
    const run = runs.items[0];
    if (seq !== state.openSeq || state.streaming) return;
    if (run && (run.status === "running" || run.status === "pending")) follow(chatId).attach(run.id);
  } catch {
    // Nothing to rejoin that we can see.
  }
}

function follow(chatId) {
  leaveChat();
  const conversation = state.conversation;
  const agent = state.agent;
  let reconnecting = false;
  const watcher = new RunWatcher(chatId, {
    onEvent: (type, data) => onRunEvent(conversation, agent, type, data),
    onState: (value) => {
      if (watcher !== state.watcher) return;
      if (value === "reconnecting" && !reconnecting) {
        reconnecting = true;
        composerNotice(t("chat.reconnecting"), "warn");
        announce(t("chat.reconnecting"));
      } else if (value === "live" && reconnecting) {
        reconnecting = false;
        composerNotice(t("chat.resumed"), "info");
        setTimeout(() => {
          if ($("composer-notice").textContent === t("chat.resumed")) renderChatState();
        }, 3000);
      } else if (value === "lost") {
        // The run's events are gone: show what the chat kept.
        forgetRun();
        setStreaming(false);
        conversation.finish();
        if (state.chat?.id === chatId) showChat(chatId);
      }
    },
  });
  state.watcher = watcher;
  setStreaming(true);
  conversation.thinking(true);
  $("chat-empty").hidden = true;
  announce(t("chat.answering", { name: agent.name }));
  return watcher;
}

function onRunEvent(conversation, agent, type, data) {
  switch (type) {
    case "message":
      conversation.message(data);
      break;
    case "token":
      conversation.token(data.message_id, data.delta);
      break;
    case "tool_call":
      conversation.toolCall(data);
      break;
    case "tool_result":
      conversation.toolResult(data);
      break;
    case "error":
      conversation.note("error", "chat.failed", { message: data.message });
      break;
    case "end": {
      conversation.finish();
      if (data.status === "cancelled") conversation.note("stopped", "chat.stopped");
      else if (data.status === "interrupted") conversation.note("stopped", "chat.interrupted");
      if (conversation === state.conversation) {
        setStreaming(false);
        renderChatState();
        const said = {
          success: t("chat.answered", { name: agent.name }),
          cancelled: t("chat.stopped"),
          interrupted: t("chat.interrupted"),
        };
        announce(said[data.status] ?? t("chat.failed", { message: data.status }));
        refreshAfterRun();
      }
      break;
    }
    default:
      break;
  }
}

async function refreshAfterRun() {
  // The chat's title is set by its first message; it moves to the top of the list.
  try {
    await loadChats();
    const chat = state.chats.find((c) => c.id === state.chat?.id);
    if (chat && state.chat && chat.title !== state.chat.title) {
      state.chat.title = chat.title;
      renderChatHeader();
    }
  } catch {
    // The list is refreshed on the next change.
  }
}

async function send(event) {
  event?.preventDefault();
  const input = $("composer-input");
  const text = input.value;
  if (!text.trim() || state.streaming || state.creating || !state.agent) return;
  if (!state.conversation || state.chat?.status === "archived") return;
  composerNotice("");
  let chatId = state.chat?.id;
  const conversation = state.conversation;
  if (!chatId) {
    // The first message of a draft makes the chat.
    state.creating = true;
    let chat;
    try {
      chat = await api.post("/chats/", { agent_id: state.agent.id });
    } catch (error) {
      composerNotice(describe(error), "error");
      return;
    } finally {
      state.creating = false;
    }
    if (conversation !== state.conversation) return; // the user went elsewhere meanwhile
    state.chat = chat;
    chatId = state.chat.id;
    history.replaceState(null, "", `#/chats/${chatId}`);
    loadChats().then(() => markCurrentChat(chatId)).catch(() => {});
  }
  const pending = conversation.pendingUser(text);
  input.value = "";
  const watcher = follow(chatId);
  try {
    await watcher.send(text);
  } catch (error) {
    if (watcher !== state.watcher) return;
    leaveChat();
    setStreaming(false);
    conversation.thinking(false);
    conversation.dropPending(pending);
    if (!input.value) input.value = text;
    renderChatState();
    const active = error instanceof api.ApiError && error.status === 409
      ? /active run: ([0-9a-f-]{36})/i.exec(error.detail) : null;
    if (active) {
      // Another tab (or client) is answering in this chat: show that answer.
      follow(chatId).attach(active[1]);
      composerNotice(t("chat.run_active"), "warn");
      announce(t("chat.run_active"));
    } else if (error instanceof api.ApiError && error.status === 409 && /archived/i.test(error.detail)) {
      composerNotice(t("chat.archived"), "warn");
    } else if (!(error instanceof api.SignedOut)) {
      composerNotice(describe(error), "error");
      announce(describe(error));
    }
  }
}

async function stop() {
  const stopButton = $("stop");
  stopButton.disabled = true;
  try {
    await state.watcher?.stop();
  } catch (error) {
    stopButton.disabled = false;
    composerNotice(describe(error), "error");
  }
}

// ======================================================================== start

function onLanguage() {
  $("lang").value = lang();
  if (!$("view-onboarding").hidden && state.options) renderOnboarding();
  if (state.chatsLoaded) renderChats();
  if (!$("view-agents").hidden && state.agentsLoaded) {
    const focused = document.activeElement?.closest?.(".agent-card")?.dataset.id;
    renderAgents();
    document.title = `${t("agents.title")} · ${t("app.name")}`;
    if (focused) $("agent-list").querySelector(`[data-id="${focused}"]`)?.focus();
  }
  if (!$("view-list").hidden) document.title = `${t("nav.label")} · ${t("app.name")}`;
  if (!$("view-chat").hidden && state.agent) {
    renderChatHeader();
    if (!state.streaming) renderChatState();
  }
  if (!$("view-auth").hidden) setAuthMode(authMode);
}

function wire() {
  $("lang").value = lang();
  $("lang").addEventListener("change", (event) => setLang(event.target.value));
  onLangChange(onLanguage);
  $("sign-out").addEventListener("click", async () => {
    resetSession();
    await api.signOut();
    history.replaceState(null, "", "#/");
    showAuth();
    $("auth-email").focus();
  });
  $("tab-signin").addEventListener("click", () => setAuthMode("signin"));
  $("tab-signup").addEventListener("click", () => setAuthMode("signup"));
  $("auth-form").addEventListener("submit", submitAuth);
  $("onb-form").addEventListener("submit", submitOnboarding);
  $("onb-skip").addEventListener("click", () => {
    sessionStorage.setItem(SKIPPED_ONBOARDING, "1");
    go("#/new");
  });
  $("chat-search").addEventListener("input", onSearch);
  for (const button of document.querySelectorAll(".sidebar .seg")) {
    button.addEventListener("click", () => setFilter(button.dataset.status));
  }
  $("chat-list-more").addEventListener("click", () => loadChats({ more: true }).catch((e) => banner(describe(e))));
  $("composer").addEventListener("submit", send);
  $("composer-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  $("stop").addEventListener("click", stop);
  $("load-earlier").addEventListener("click", loadEarlier);
  $("rename-form").addEventListener("submit", submitRename);
  $("delete-form").addEventListener("submit", submitDelete);
  for (const dialog of document.querySelectorAll("dialog")) {
    dialog.querySelector("[data-close]").addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => {
      if (dialog.returnFocus?.isConnected) dialog.returnFocus.focus();
      else if (dialog.chat) focusChatToggle(dialog.chat.id, dialog);
    });
  }
  document.addEventListener("click", (event) => {
    if (openMenu && !openMenu.menu.contains(event.target)) closeMenu();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && openMenu) {
      event.preventDefault();
      closeMenu({ focus: true });
    }
  });
  document.addEventListener("focusin", (event) => {
    if (openMenu && !openMenu.menu.contains(event.target) && event.target !== openMenu.toggle) closeMenu();
  });
  window.addEventListener("hashchange", route);
  // The skip link moves focus; it must not be taken for a route.
  document.querySelector(".skip-link").addEventListener("click", (event) => {
    event.preventDefault();
    $("main").focus();
  });
}

function start() {
  apply(document);
  wire();
  setAuthMode("signin");
  api.resume();
  route();
}

start();
