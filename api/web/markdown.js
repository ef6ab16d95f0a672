// Model output as Markdown, made safe: marked turns it into HTML, DOMPurify keeps only inert
// markup (no script, no event handler, no style, no form, no javascript: or other unsafe URL),
// and the result is inserted as a DOM fragment. The page's Content-Security-Policy is a second
// wall: even markup that slipped through could neither run nor load from elsewhere.

import { Marked } from "./vendor/marked.esm.js";
import DOMPurify from "./vendor/purify.es.mjs";

const marked = new Marked({ gfm: true, breaks: true, async: false });

const POLICY = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "option", "iframe",
    "frame", "object", "embed", "link", "meta", "base", "svg", "math", "video", "audio",
    "source", "picture", "dialog", "template"],
  FORBID_ATTR: ["style", "class", "id", "name", "srcset", "formaction", "action", "ping",
    "background", "autofocus", "tabindex"],
  ALLOW_DATA_ATTR: false,
  ALLOW_ARIA_ATTR: false,
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|#)/i,
  RETURN_DOM_FRAGMENT: true,
};

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    const href = node.getAttribute("href") || "";
    if (href.startsWith("#")) {
      node.removeAttribute("href"); // no jumping around the page from model output
    } else if (href) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer nofollow");
    }
  }
  if (node.tagName === "IMG") {
    const src = node.getAttribute("src") || "";
    if (!/^https:/i.test(src)) node.removeAttribute("src"); // only https images (CSP allows those)
    node.setAttribute("loading", "lazy");
    node.setAttribute("referrerpolicy", "no-referrer");
    if (!node.hasAttribute("alt")) node.setAttribute("alt", "");
  }
});

/** `text` as a sanitised DOM fragment. */
export function render(text) {
  const html = marked.parse(text ?? "");
  return DOMPurify.sanitize(html, POLICY);
}

/** Replace el's children with `text` rendered. */
export function renderInto(el, text) {
  el.replaceChildren(render(text));
}
