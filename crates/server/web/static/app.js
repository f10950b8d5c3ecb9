// Crossfire's pages: plain DOM, no framework. Every piece of text from the API goes in
// through textContent, never innerHTML, so nothing a user or a model writes becomes markup.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: body ? { "content-type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await response.json().catch(() => ({}));
  if (response.status === 401 && !path.startsWith("/api/auth/")) {
    location.href = "/login?next=" + encodeURIComponent(location.pathname);
    throw new Error("sign in first");
  }
  if (!response.ok) throw new Error((data.error && data.error.message) || response.statusText);
  return { status: response.status, data };
}

function formJson(form) {
  const data = Object.fromEntries(new FormData(form).entries());
  for (const key of Object.keys(data)) if (data[key] === "") delete data[key];
  return data;
}

function showError(form, error) {
  $(".error", form).textContent = error ? error.message : "";
}

// Follows a run's event stream; the browser resumes with Last-Event-ID on its own.
function follow(path, handlers) {
  const source = new EventSource(path);
  for (const [name, handler] of Object.entries(handlers)) {
    source.addEventListener(name, (e) => handler(JSON.parse(e.data)));
  }
  source.addEventListener("done", () => source.close());
  return source;
}

const pages = {
  story() {
    const arena = $("#debate-form");
    arena.addEventListener("submit", async (e) => {
      e.preventDefault();
      showError(arena);
      try {
        const body = { story: $("#arena").dataset.story, ...formJson(arena) };
        const { data } = await api("POST", "/api/debates", body);
        location.href = "/debates/" + data.id;
      } catch (error) { showError(arena, error); }
    });
    const ask = $("#perspective-form");
    ask.addEventListener("submit", async (e) => {
      e.preventDefault();
      showError(ask);
      const out = $("#perspective-text");
      out.textContent = "";
      try {
        const body = { story: $("#perspective").dataset.story, ...formJson(ask) };
        const { data } = await api("POST", "/api/perspectives", body);
        if (data.cached) { out.textContent = data.text; return; }
        follow(data.events, {
          reset: () => { out.textContent = ""; },
          token: (d) => out.append(d.text),
          turn_restart: () => { out.textContent = ""; },
          turn_end: (d) => { out.textContent = d.text; },
          error: (d) => showError(ask, new Error(d.message)),
        });
      } catch (error) { showError(ask, error); }
    });
  },

  async debate() {
    const id = $("#debate").dataset.id;
    const { data: t } = await api("GET", "/api/debates/" + id);
    $("#motion").textContent = t.motion;
    $("#name-a").textContent = t.personas.a.name;
    $("#name-b").textContent = t.personas.b.name;
    const turns = new Map();
    const turnOf = (d) => {
      const key = d.round + d.speaker;
      if (!turns.has(key)) {
        const box = el("article", undefined, "turn side-" + d.speaker);
        const kind = d.round === 1 ? "Opening" : "Rebuttal";
        box.append(el("h3", `Round ${d.round} · ${kind} · ${t.personas[d.speaker].name}`), el("p", "", "speech"));
        $("#turns").append(box);
        turns.set(key, box);
      }
      return turns.get(key);
    };
    $("#status").textContent = t.status === "done" || t.status === "failed" ? "" : "Live";
    follow(`/api/debates/${id}/events`, {
      // The service lost events it had streamed (a crash): the whole log follows.
      reset: () => { turns.clear(); $("#turns").replaceChildren(); },
      turn_start: (d) => turnOf(d),
      token: (d) => $(".speech", turnOf(d)).append(d.text),
      turn_restart: (d) => { $(".speech", turnOf(d)).textContent = ""; },
      turn_end: (d) => {
        const box = turnOf(d);
        $(".speech", box).textContent = d.text;
        if (d.unsupported.length) box.append(el("p", "Not in the story: " + d.unsupported.join(", "), "unsupported"));
      },
      verdict: (v) => {
        $("#verdict").hidden = false;
        const names = { a: t.personas.a.name, b: t.personas.b.name };
        $("#winner").textContent = v.winner === "tie"
          ? (v.contested ? "A tie — the judge's two passes disagreed" : "A tie")
          : names[v.winner] + " wins";
        for (const c of ["argument", "evidence", "rebuttal", "fidelity"]) {
          const row = el("tr");
          row.append(el("th", c), el("td", v.scores.a.criteria[c].toFixed(1)), el("td", v.scores.b.criteria[c].toFixed(1)));
          $("#scores").append(row);
        }
        const total = el("tr", undefined, "total");
        total.append(el("th", "total"), el("td", v.scores.a.total.toFixed(1)), el("td", v.scores.b.total.toFixed(1)));
        $("#scores").append(total);
        $("#rationale").textContent = v.rationale;
      },
      error: (d) => { $("#status").textContent = "Failed: " + d.message; },
      done: (d) => { if (d.status === "done") $("#status").textContent = ""; },
    });
  },

  async debates() {
    const list = $("#my-debates");
    const { data } = await api("GET", "/api/debates");
    list.textContent = "";
    if (!data.debates.length) list.append(el("li", "No debates yet: start one from a story.", "muted"));
    for (const d of data.debates) {
      const item = el("li");
      const link = el("a", `${d.personas.a.name} vs ${d.personas.b.name}`);
      link.href = "/debates/" + d.id;
      item.append(link, el("span", ` — ${d.motion} (${d.status})`, "muted"));
      list.append(item);
    }
  },

  login() {
    const form = $("#login-form");
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      showError(form);
      const action = e.submitter && e.submitter.value === "signup" ? "signup" : "login";
      try {
        await api("POST", "/api/auth/" + action, formJson(form));
        const next = new URLSearchParams(location.search).get("next");
        location.href = next && next.startsWith("/") && !next.startsWith("//") ? next : "/";
      } catch (error) { showError(form, error); }
    });
  },

  async editor() {
    try {
      const { data } = await api("GET", "/api/editor/personas");
      $("#lint-summary").textContent = `${data.ok.length} personas ok, ${data.problems.length} problem(s)`;
      for (const p of data.problems) $("#lint").append(el("li", p.text));
    } catch (error) { $("#lint-summary").textContent = error.message; }
    const form = $("#preview-form");
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      showError(form);
      const out = $("#preview");
      out.textContent = "";
      try {
        const { data } = await api("POST", "/api/editor/preview", formJson(form));
        for (const call of data.calls) {
          out.append(el("h3", call.name));
          for (const m of call.messages) out.append(el("h4", m.role), el("pre", m.content));
        }
      } catch (error) { showError(form, error); }
    });
  },
};

// The header names who is signed in, and signs them out.
async function account() {
  const link = $("#account");
  const response = await fetch("/api/auth/me", { credentials: "same-origin" });
  if (!response.ok) return;
  const user = await response.json();
  link.textContent = "Sign out " + user.email;
  link.addEventListener("click", async (e) => {
    e.preventDefault();
    await fetch("/api/auth/logout", { method: "POST", credentials: "same-origin" });
    location.href = "/";
  });
}
account().catch(() => {});

const page = pages[document.body.dataset.page];
if (page) Promise.resolve(page()).catch((error) => console.error(error));
