// Small DOM helpers shared by the views.

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function hue(seed) {
  let hash = 2166136261; // FNV-1a
  for (const char of String(seed)) hash = Math.imul(hash ^ char.codePointAt(0), 16777619) >>> 0;
  return (hash >>> 13) % 8;
}

function initials(name) {
  const words = String(name || "?").trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? words[0][0] + words[1][0] : (words[0] || "?").slice(0, 2);
  return letters.toUpperCase();
}

/** An agent's avatar: its picture (https or data URLs, as the page's CSP allows) or initials. */
export function avatar(agent, className = "avatar") {
  const root = el("span", `${className} hue-${hue(agent?.id ?? agent?.name ?? "")}`);
  root.setAttribute("aria-hidden", "true");
  const letters = el("span", "avatar-initials", initials(agent?.name));
  root.append(letters);
  const url = agent?.avatar_url;
  if (url && /^(https:|data:image\/)/i.test(url)) {
    const img = el("img");
    img.alt = "";
    img.referrerPolicy = "no-referrer";
    img.decoding = "async";
    img.addEventListener("load", () => root.classList.add("has-image"));
    img.addEventListener("error", () => img.remove());
    img.src = url;
    root.append(img);
  }
  return root;
}

export function isFake(model) {
  return typeof model === "string" && model.startsWith("fake:");
}

/** "just now", "5 min", "Mar 3": when a chat was last active, in the page's language. */
export function when(iso, locale) {
  if (!iso) return "";
  const date = new Date(iso);
  const seconds = (Date.now() - date.getTime()) / 1000;
  const rtf = new Intl.RelativeTimeFormat(locale, { numeric: "auto", style: "short" });
  if (seconds < 60) return rtf.format(0, "second");
  if (seconds < 3600) return rtf.format(-Math.floor(seconds / 60), "minute");
  if (seconds < 86400) return rtf.format(-Math.floor(seconds / 3600), "hour");
  return date.toLocaleDateString(locale, { month: "short", day: "numeric" });
}
