// Crossfire's shared page helpers: plain DOM, no framework. Every piece of text from the API goes in
// through textContent, never innerHTML, so nothing a user or a model writes becomes markup.

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

export function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (className) node.className = className;
  return node;
}

/** An API call that failed: the service's message, status and (for 429) the wait. */
export class ApiFailure extends Error {
  constructor(message, status, code, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

export function here() {
  return location.pathname + location.search;
}

export async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: body ? { "content-type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await response.json().catch(() => ({}));
  if (response.status === 401 && !path.startsWith("/api/auth/")) {
    location.href = "/login?next=" + encodeURIComponent(here());
    throw new ApiFailure("Sign in first.", 401, "unauthorized");
  }
  if (!response.ok) {
    const error = data.error || {};
    const retry = Number(response.headers.get("retry-after")) || undefined;
    throw new ApiFailure(error.message || response.statusText, response.status, error.code, retry);
  }
  return data;
}

/** A message a reader can act on. */
export function explain(error) {
  if (error.status === 429 && error.retryAfter) {
    const at = new Date(Date.now() + error.retryAfter * 1000);
    const time = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    return `${error.message}. It resets at ${time} (in ${duration(error.retryAfter)}).`;
  }
  if (error instanceof ApiFailure) return error.message.charAt(0).toUpperCase() + error.message.slice(1) + ".";
  return "Something went wrong: " + error.message;
}

export function duration(seconds) {
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.max(1, Math.round((seconds % 3600) / 60));
  return hours ? `${hours} h ${minutes} min` : `${minutes} min`;
}

export function showError(root, error) {
  const box = $(".error", root);
  if (box) box.textContent = error ? explain(error) : "";
}

/** Follows a run's event stream; on a dropped connection the browser resumes it with
 * Last-Event-ID by itself, so no event arrives twice. */
export function follow(path, handlers, onTrouble) {
  const source = new EventSource(path);
  for (const [name, handler] of Object.entries(handlers)) {
    source.addEventListener(name, (e) => handler(JSON.parse(e.data)));
  }
  source.addEventListener("done", () => source.close());
  source.onerror = () => { if (onTrouble) onTrouble(source.readyState); };
  source.onopen = () => { if (onTrouble) onTrouble(source.readyState); };
  return source;
}

export const CRITERIA = ["argument", "evidence", "rebuttal", "fidelity"];

/** Speech text with the claims the story does not support marked inside it. */
export function markedSpeech(node, text, unsupported) {
  const ranges = [];
  for (const claim of unsupported || []) {
    if (!claim) continue;
    let from = 0;
    for (;;) {
      const at = text.indexOf(claim, from);
      if (at < 0) break;
      ranges.push([at, at + claim.length]);
      from = at + claim.length;
    }
  }
  ranges.sort((x, y) => x[0] - y[0]);
  node.replaceChildren();
  let at = 0;
  for (const [start, end] of ranges) {
    if (start < at) continue;
    node.append(text.slice(at, start));
    const mark = el("mark", text.slice(start, end), "unsupported");
    mark.dataset.testid = "unsupported";
    mark.title = "Not in the story";
    node.append(mark);
    at = end;
  }
  node.append(text.slice(at));
}

/** The list of unsupported claims under a speech. */
export function claimList(unsupported) {
  const box = el("div", undefined, "claims");
  if (!unsupported || !unsupported.length) return box;
  box.append(el("p", "Not supported by the story:", "claims-head"));
  const list = el("ul");
  for (const claim of unsupported) list.append(el("li", claim));
  box.append(list);
  return box;
}

/** Runs a page's code; an error it throws asynchronously shows at the top of the page. */
export function runPage(page) {
  Promise.resolve(page()).catch((error) => {
    const main = $("main");
    const box = el("p", explain(error), "error page-error");
    box.setAttribute("role", "alert");
    main.prepend(box);
  });
}
