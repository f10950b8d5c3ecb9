// Crossfire's pages: plain DOM, no framework. Every piece of text from the API goes in
// through textContent, never innerHTML, so nothing a user or a model writes becomes markup.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (className) node.className = className;
  return node;
}

/** An API call that failed: the service's message, status and (for 429) the wait. */
class ApiFailure extends Error {
  constructor(message, status, code, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

function here() {
  return location.pathname + location.search;
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
function explain(error) {
  if (error.status === 429 && error.retryAfter) {
    const at = new Date(Date.now() + error.retryAfter * 1000);
    const time = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    return `${error.message}. It resets at ${time} (in ${duration(error.retryAfter)}).`;
  }
  if (error instanceof ApiFailure) return error.message.charAt(0).toUpperCase() + error.message.slice(1) + ".";
  return "Something went wrong: " + error.message;
}

function duration(seconds) {
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.max(1, Math.round((seconds % 3600) / 60));
  return hours ? `${hours} h ${minutes} min` : `${minutes} min`;
}

function showError(root, error) {
  const box = $(".error", root);
  if (box) box.textContent = error ? explain(error) : "";
}

/** Follows a run's event stream; on a dropped connection the browser resumes it with
 * Last-Event-ID by itself, so no event arrives twice. */
function follow(path, handlers, onTrouble) {
  const source = new EventSource(path);
  for (const [name, handler] of Object.entries(handlers)) {
    source.addEventListener(name, (e) => handler(JSON.parse(e.data)));
  }
  source.addEventListener("done", () => source.close());
  source.onerror = () => { if (onTrouble) onTrouble(source.readyState); };
  source.onopen = () => { if (onTrouble) onTrouble(source.readyState); };
  return source;
}

const CRITERIA = ["argument", "evidence", "rebuttal", "fidelity"];

/** Speech text with the claims the story does not support marked inside it. */
function markedSpeech(node, text, unsupported) {
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
function claimList(unsupported) {
  const box = el("div", undefined, "claims");
  if (!unsupported || !unsupported.length) return box;
  box.append(el("p", "Not supported by the story:", "claims-head"));
  const list = el("ul");
  for (const claim of unsupported) list.append(el("li", claim));
  box.append(list);
  return box;
}

const pages = {
  story() {
    const story = $("#story").dataset.story;
    const signedIn = document.body.hasAttribute("data-signed-in");

    // Persona cards: pick one for each side; a persona cannot take both.
    const form = $("#debate-form");
    const picks = { a: null, b: null };
    const name = (id) => $(`[data-testid=persona-card][data-persona="${CSS.escape(id)}"] .name`).textContent;
    const render = () => {
      for (const side of ["a", "b"]) {
        form.elements[side].value = picks[side] || "";
        $("#picked-" + side).textContent = picks[side] ? name(picks[side]) : "choose below";
      }
      for (const card of $$("[data-testid=persona-card]", form)) {
        for (const side of ["a", "b"]) {
          const chosen = picks[side] === card.dataset.persona;
          $(`[data-side=${side}]`, card).setAttribute("aria-pressed", String(chosen));
          card.classList.toggle("picked-" + side, chosen);
        }
      }
    };
    form.addEventListener("click", (e) => {
      const button = e.target.closest("button[data-side]");
      if (!button) return;
      const id = button.closest("[data-testid=persona-card]").dataset.persona;
      const side = button.dataset.side;
      const other = side === "a" ? "b" : "a";
      picks[side] = picks[side] === id ? null : id;
      if (picks[other] === id) picks[other] = null;
      render();
    });
    $("#persona-search").addEventListener("input", (e) => {
      const words = e.target.value.toLowerCase().split(/\s+/).filter(Boolean);
      let shown = 0;
      for (const card of $$("[data-testid=persona-card]", form)) {
        const match = words.every((w) => card.dataset.search.includes(w));
        card.hidden = !match;
        if (match) shown += 1;
      }
      $("#no-match").hidden = shown > 0;
    });
    for (const chip of $$("[data-testid=motion-suggestion]", form)) {
      chip.addEventListener("click", () => {
        $("#motion").value = chip.textContent;
        $("#motion").focus();
      });
    }
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      showError(form);
      if (!picks.a || !picks.b) {
        $(".error", form).textContent = "Pick a persona for side A and one for side B.";
        return;
      }
      try {
        const body = { story, a: picks.a, b: picks.b, motion: $("#motion").value.trim() || undefined };
        const data = await api("POST", "/api/debates", body);
        location.href = "/debates/" + data.id;
      } catch (error) { showError(form, error); }
    });

    // Perspectives: pick a persona, then watch them write.
    const ask = $("#perspective-form");
    const start = $("[data-testid=start-perspective]", ask);
    const out = $(".perspective-out");
    const text = $("[data-testid=perspective-text]");
    ask.addEventListener("click", (e) => {
      const chip = e.target.closest("[data-testid=perspective-persona]");
      if (!chip) return;
      for (const c of $$("[data-testid=perspective-persona]", ask)) c.setAttribute("aria-pressed", String(c === chip));
      ask.elements.persona.value = chip.dataset.persona;
      $(".perspective-name").textContent = chip.dataset.name;
      if (start) start.disabled = false;
      if (!signedIn) $(".error", ask).textContent = "Sign up or sign in to ask for a perspective.";
    });
    ask.addEventListener("submit", async (e) => {
      e.preventDefault();
      showError(ask);
      out.hidden = false;
      text.textContent = "";
      $(".cached-note").hidden = true;
      const claims = $(".unsupported-list", out);
      claims.replaceChildren();
      claims.hidden = true;
      const finish = (d) => {
        markedSpeech(text, d.text, d.unsupported);
        claims.replaceChildren(claimList(d.unsupported));
        claims.hidden = !(d.unsupported && d.unsupported.length);
        text.setAttribute("aria-busy", "false");
      };
      try {
        const data = await api("POST", "/api/perspectives", { story, persona: ask.elements.persona.value });
        if (data.cached) {
          $(".cached-note").hidden = false;
          finish(data);
          return;
        }
        text.setAttribute("aria-busy", "true");
        text.classList.add("typing");
        follow(data.events, {
          reset: () => { text.textContent = ""; },
          token: (d) => text.append(d.text),
          turn_restart: () => { text.textContent = ""; },
          turn_end: (d) => { text.classList.remove("typing"); finish(d); },
          error: (d) => { text.classList.remove("typing"); $(".error", ask).textContent = "The perspective failed: " + d.message; },
        });
      } catch (error) { showError(ask, error); text.classList.remove("typing"); }
    });
  },

  async debate() {
    const root = $("#debate");
    const id = root.dataset.id;
    const shared = root.dataset.shared;
    const mine = root.hasAttribute("data-mine");
    const signedIn = document.body.hasAttribute("data-signed-in");
    const status = $("#status");
    const data = shared ? await api("GET", "/api/shared/" + shared) : await api("GET", "/api/debates/" + id);
    const names = { a: data.personas.a.name, b: data.personas.b.name };
    const view = debateView(root, names);

    const votes = voteBox(root, id, names, signedIn && (mine || Boolean(shared)));
    votes.show(data.votes);
    const finished = () => {
      $("#actions").hidden = false;
      if (mine) actions(root, data);
    };

    if (shared || !["queued", "running"].includes(data.status)) {
      // Finished: the transcript has everything the stream would show.
      view.fromTranscript(data);
      if (data.status === "failed") view.failed(data.error, mine ? () => rematch(data, false) : null);
      finished();
      return;
    }
    status.textContent = "Live";
    follow(`/api/debates/${id}/events`, {
      reset: () => view.clear(),
      turn_start: (d) => view.start(d.round, d.speaker),
      token: (d) => view.token(d.round, d.speaker, d.text),
      turn_restart: (d) => view.restart(d.round, d.speaker),
      turn_end: (d) => view.end(d.round, d.speaker, d),
      verdict: (v) => view.verdict(v, data.provenance),
      error: (d) => view.failed(d, mine ? () => rematch(data, false) : null),
      done: async (d) => {
        status.textContent = d.status === "done" ? "Finished." : "";
        const fresh = await api("GET", "/api/debates/" + id).catch(() => null);
        if (fresh) {
          Object.assign(data, fresh);
          votes.show(fresh.votes);
          if (fresh.verdict) view.verdict(fresh.verdict, fresh.provenance);
        }
        finished();
      },
    }, (state) => {
      if (state === EventSource.CONNECTING) status.textContent = "Reconnecting…";
      else if (state === EventSource.OPEN) status.textContent = "Live";
    });
  },

  async debates() {
    const list = $("#my-debates");
    let page = Number(new URLSearchParams(location.search).get("page")) || 1;
    const load = async () => {
      const data = await api("GET", "/api/debates?page=" + page);
      list.replaceChildren();
      if (!data.debates.length) {
        const item = el("li", "No debates yet. ", "muted");
        const link = el("a", "Pick a story to start one.");
        link.href = "/";
        item.append(link);
        list.append(item);
      }
      for (const d of data.debates) {
        const item = el("li", undefined, "debate-item");
        const link = el("a", `${d.personas.a.name} vs ${d.personas.b.name}`);
        link.href = "/debates/" + d.id;
        const winner = d.winner === "tie" ? "A tie" : d.winner ? d.personas[d.winner].name + " won" : null;
        const meta = el("p", undefined, "meta");
        meta.append(el("span", d.status, "badge status-" + d.status));
        if (winner) meta.append(el("span", winner, "winner-note"));
        meta.append(el("time", new Date(d.created_at).toLocaleString([], { dateStyle: "medium", timeStyle: "short" })));
        item.append(link, el("p", d.motion, "motion-line"), meta);
        list.append(item);
      }
      $("#newer").hidden = page <= 1;
      $("#older").hidden = !data.next_page;
      history.replaceState(null, "", page > 1 ? "?page=" + page : location.pathname);
    };
    $("#newer").addEventListener("click", () => { page -= 1; load(); });
    $("#older").addEventListener("click", () => { page += 1; load(); });
    await load();
  },

  login() {
    const form = $("#auth-form");
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      showError(form);
      const body = Object.fromEntries(new FormData(form).entries());
      try {
        await api("POST", "/api/auth/" + form.dataset.action, body);
        const next = form.dataset.next;
        location.href = next && next.startsWith("/") && !next.startsWith("//") ? next : "/";
      } catch (error) { showError(form, error); }
    });
  },

  async editor() {
    const refreshLive = async () => {
      try {
        const data = await api("GET", "/api/editor/lint");
        const live = data.live;
        $("#live-summary").textContent = `Serving set ${live.version} (since ${new Date(live.loaded_at).toLocaleString()}): ${live.stories} stories, ${live.personas} personas, templates ${live.templates.slice(0, 12)}.`;
        $("#live-rejected").hidden = !data.rejected;
        $("#live-problems").replaceChildren(...(data.rejected ? data.rejected.problems.map((p) => el("li", p.text)) : []));
        $("#left-out").replaceChildren(...data.left_out.map((p) => el("li", "Left out at start: " + p.text)));
      } catch (error) { $("#live-summary").textContent = explain(error); }
    };
    await refreshLive();
    try {
      const f = await api("GET", "/api/editor/fairness");
      const pct = (x) => (x === null || x === undefined ? "—" : Math.round(100 * x) + "%");
      $("#fairness-summary").textContent = f.debates
        ? `Over the latest ${f.debates} judged debates: the two passes agree ${pct(f.swap_agreement)} of the time; the side read first wins ${pct(f.first_position_wins)} of passes; side A wins ${pct(f.side_a_wins)}.`
        : "No judged debates yet.";
      const rows = $("#fairness-personas tbody");
      for (const p of f.personas) {
        const row = el("tr");
        row.append(el("td", p.id), el("td", String(p.debates)), el("td", pct(p.win_rate)));
        rows.append(row);
      }
      $("#fairness-personas").hidden = !f.personas.length;
    } catch (error) { $("#fairness-summary").textContent = explain(error); }
    try {
      const data = await api("GET", "/api/editor/personas");
      $("#lint-summary").textContent = `${data.ok.length} personas ok, ${data.problems.length} problem(s)`;
      for (const p of data.problems) $("#lint").append(el("li", p.text));
    } catch (error) { $("#lint-summary").textContent = explain(error); }

    const text = $("#draft-text");
    const context = $("#draft-context");
    let opened = null;
    let timer = null;
    let clean = false;
    const showProblems = (problems) => {
      const box = $("#draft-problems");
      box.replaceChildren();
      if (!problems.length) { box.append(el("p", "No problems: this draft would go live.", "ok-note")); return; }
      const lines = text.value.split("\n");
      const list = el("ul", undefined, "problems");
      for (const p of problems) {
        const item = el("li");
        const jump = el("button", p.line ? `line ${p.line}, column ${p.column}: ${p.message}` : p.message, "link");
        jump.type = "button";
        jump.addEventListener("click", () => {
          const offset = lines.slice(0, Math.max(0, p.line - 1)).reduce((n, l) => n + l.length + 1, 0) + Math.max(0, p.column - 1);
          text.focus();
          text.setSelectionRange(offset, offset + 1);
        });
        item.append(jump);
        if (p.line && lines[p.line - 1] !== undefined) {
          // The line, with a caret under the column: the problem marked in the text.
          item.append(el("pre", `${String(p.line).padStart(4)} | ${lines[p.line - 1]}\n       ${" ".repeat(Math.max(0, p.column - 1))}^`, "marked"));
        }
        list.append(item);
      }
      box.append(list);
    };
    const checkDraft = async () => {
      if (!opened) return;
      const body = { kind: opened.kind, name: opened.name, text: text.value, story: context.elements.story.value };
      const opponent = context.elements.opponent.value;
      if (opponent && opened.kind === "persona") body.opponent = opponent;
      try {
        const report = await api("POST", "/api/editor/drafts/check", body);
        clean = report.problems.length === 0;
        showProblems(report.problems);
        $("#draft-state").textContent = clean ? (report.version === opened.version ? "(as saved)" : "(edited)") : "(has problems)";
        $("#save-draft").disabled = !clean || report.version === opened.version;
        $("#try-draft").disabled = !clean || opened.kind !== "persona";
        const out = $("#preview");
        out.replaceChildren();
        for (const call of (report.preview ? report.preview.calls : [])) {
          out.append(el("h3", call.name));
          for (const m of call.messages) out.append(el("h4", m.role), el("pre", m.content));
        }
      } catch (error) { showError(context, error); }
    };
    text.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(checkDraft, 350); });
    context.addEventListener("change", checkDraft);
    const showSaves = (saves) => {
      $("#saves").replaceChildren(...saves.map((s) => el("li", `${s.version.slice(0, 12)} by ${s.by}, ${new Date(s.at).toLocaleString()}`)));
      if (!saves.length) $("#saves").append(el("li", "No saves through the editor yet.", "muted"));
    };
    const showCard = (card) => {
      const out = $("#probes");
      out.replaceChildren();
      if (!card) { out.append(el("p", "No scorecard yet.", "muted")); return; }
      out.append(el("p", `Scorecard of ${new Date(card.created_at).toLocaleString()}, version ${card.persona.version.slice(0, 12)}, by ${card.model}.`, "muted"));
      const c = card.comparison;
      if (c && c.regressions.length) {
        out.append(el("p", `Regressions since ${new Date(c.previous_at).toLocaleString()}:`, "error"));
        const list = el("ul", undefined, "problems");
        for (const r of c.regressions) list.append(el("li", `${r.id}: ${r.what}`));
        out.append(list);
      } else if (c) out.append(el("p", "No regressions since the scorecard before.", "ok-note"));
      out.append(el("p", card.rates.map((r) => `${r.category} ${r.passed}/${r.total}`).join(" · ")));
      for (const r of card.results) {
        const d = el("details");
        d.append(el("summary", `${r.pass ? "pass" : "FAIL"} · ${r.id}`), el("p", "Q: " + r.question), el("p", "A: " + r.answer), el("p", "→ " + r.reason, "muted"));
        out.append(d);
      }
    };
    $("#run-probes").addEventListener("click", async () => {
      showError(context);
      $("#probes").replaceChildren(el("p", "Asking the model…", "muted"));
      try {
        showCard(await api("POST", "/api/editor/probes/" + opened.name, { story: context.elements.story.value }));
      } catch (error) { $("#probes").replaceChildren(); showError(context, error); }
    });
    const openForm = $("#open-form");
    openForm.addEventListener("submit", async (e) => {
      e.preventDefault();
      showError(openForm);
      try {
        opened = await api("GET", "/api/editor/files/" + openForm.elements.file.value);
        $("#draft").hidden = false;
        $("#draft-name").textContent = opened.name;
        text.value = opened.text;
        showSaves(opened.saves);
        $("#saved-note").textContent = "";
        $("#probes-box").hidden = opened.kind !== "persona";
        if (opened.kind === "persona") {
          showCard(await api("GET", "/api/editor/probes/" + opened.name).catch(() => null));
        }
        await checkDraft();
      } catch (error) { showError(openForm, error); }
    });
    $("#save-draft").addEventListener("click", async () => {
      showError(context);
      try {
        const saved = await api("PUT", `/api/editor/files/${opened.kind}/${opened.name}`, { text: text.value, base_version: opened.version });
        opened.version = saved.version;
        $("#saved-note").textContent = `Saved version ${saved.version.slice(0, 12)}; the previous one is kept. It goes live in a moment.`;
        opened = { ...opened, ...(await api("GET", `/api/editor/files/${opened.kind}/${opened.name}`)) };
        showSaves(opened.saves);
        await checkDraft();
        setTimeout(refreshLive, 800);
      } catch (error) { showError(context, error); }
    });
    $("#try-draft").addEventListener("click", async () => {
      showError(context);
      const body = { name: opened.name, text: text.value, story: context.elements.story.value };
      if (context.elements.opponent.value) body.opponent = context.elements.opponent.value;
      const turns = $("#trial-turns");
      turns.replaceChildren();
      $("#trial-out").hidden = false;
      try {
        const accepted = await api("POST", "/api/editor/drafts/trial", body);
        const link = $("#trial-link");
        link.replaceChildren();
        if (body.opponent) {
          const a = el("a", "Open the trial debate");
          a.href = "/debates/" + accepted.id;
          link.append(a);
        }
        const boxes = new Map();
        const box = (d) => {
          const key = d.round + d.speaker;
          if (!boxes.has(key)) {
            const item = el("article", undefined, "turn side-" + (d.speaker === "b" ? "b" : "a"));
            item.append(el("h4", `Round ${d.round} · ${d.speaker === "solo" ? "perspective" : "side " + d.speaker.toUpperCase()}`), el("div", "", "speech"));
            turns.append(item);
            boxes.set(key, item);
          }
          return $(".speech", boxes.get(key));
        };
        follow(accepted.events, {
          token: (d) => box(d).append(d.text),
          turn_restart: (d) => { box(d).textContent = ""; },
          turn_end: (d) => { markedSpeech(box(d), d.text, d.unsupported); },
          verdict: (v) => turns.append(el("p", `Verdict: ${v.winner === "tie" ? "a tie" : "side " + v.winner.toUpperCase() + " wins"}, by ${Number(v.margin).toFixed(1)} of 40.`, "verdict-line")),
          error: (d) => turns.append(el("p", "The trial failed: " + d.message, "error")),
        });
      } catch (error) { showError(context, error); }
    });
  },
};

/** The rounds and verdict of a debate page, built from events or from a transcript. */
function debateView(root, names) {
  const turns = new Map();
  const column = (round, speaker) => $(`.round[data-round="${round}"] .column[data-speaker="${speaker}"]`, root);
  const turnOf = (round, speaker) => {
    const key = round + speaker;
    if (!turns.has(key)) {
      const box = el("article", undefined, "turn side-" + speaker);
      box.dataset.testid = "turn";
      box.dataset.round = String(round);
      box.dataset.speaker = speaker;
      box.setAttribute("aria-label", `${names[speaker]}, round ${round}`);
      const head = el("h3", names[speaker], "speaker");
      const speech = el("div", "", "speech");
      speech.setAttribute("aria-live", "polite");
      const typing = el("p", undefined, "typing-indicator");
      typing.append(el("span", `${names[speaker]} is speaking`, "visually-hidden"), el("span", "", "dots"));
      typing.hidden = true;
      box.append(head, speech, typing);
      column(round, speaker).append(box);
      turns.set(key, box);
    }
    return turns.get(key);
  };
  const view = {
    clear() {
      turns.clear();
      for (const c of $$(".column", root)) c.replaceChildren();
      $("#verdict").hidden = true;
    },
    start(round, speaker) {
      const box = turnOf(round, speaker);
      $(".typing-indicator", box).hidden = false;
      box.classList.add("speaking");
    },
    token(round, speaker, text) {
      const box = turnOf(round, speaker);
      $(".speech", box).append(text);
      $(".typing-indicator", box).hidden = false;
    },
    restart(round, speaker) {
      const box = turnOf(round, speaker);
      $(".speech", box).textContent = "";
      box.dataset.restarts = String(Number(box.dataset.restarts || 0) + 1);
      const note = $(".restart-note", box) || el("p", "", "restart-note muted");
      note.textContent = "The model stumbled; this speech is starting again.";
      box.insertBefore(note, $(".speech", box));
    },
    end(round, speaker, turn) {
      const box = turnOf(round, speaker);
      box.classList.remove("speaking");
      $(".typing-indicator", box).hidden = true;
      const note = $(".restart-note", box);
      if (note) note.remove();
      markedSpeech($(".speech", box), turn.text, turn.unsupported);
      const old = $(".claims", box);
      if (old) old.remove();
      box.append(claimList(turn.unsupported));
      if (turn.truncated && !$(".truncated", box)) box.append(el("p", "This speech reached its length limit and ends at its last full sentence.", "truncated muted"));
    },
    verdict(v, provenance) { renderVerdict(v, names, provenance); },
    failed(error, retry) {
      for (const t of turns.values()) { $(".typing-indicator", t).hidden = true; t.classList.remove("speaking"); }
      const box = $("#failure");
      box.hidden = false;
      $(".reason", box).textContent = (error && error.message) ? `Reason: ${error.message}.` : "The debate failed.";
      const again = $(".try-again", box);
      if (again && retry) again.onclick = retry;
      $("#status").textContent = "";
    },
    fromTranscript(t) {
      for (const round of t.rounds || []) {
        for (const turn of round.turns) view.end(round.round, turn.speaker, turn);
      }
      if (t.verdict) view.verdict(t.verdict, t.provenance);
    },
  };
  return view;
}

function renderVerdict(v, names, provenance) {
  const card = $("#verdict");
  card.hidden = false;
  $("[data-testid=winner]", card).textContent = v.winner === "tie" ? "A tie" : `${names[v.winner]} wins`;
  $("[data-testid=contested]", card).hidden = !v.contested;
  const margin = Number(v.margin || 0);
  const call = margin < 2 ? "a narrow call" : margin < 6 ? "a clear call" : "a wide margin";
  const methods = {
    expected: "scores weighted by the judge's own probabilities",
    likelihood: "scores from the judge model's likelihoods and the claim and era checks",
  };
  const method = methods[v.method] || "scores as the judge wrote them";
  $(".sureness", card).textContent = `By ${margin.toFixed(1)} of 40 points: ${call} (${method}).`;
  $(".low-confidence", card).hidden = !v.low_confidence;
  const bars = $("#bars", card);
  bars.replaceChildren();
  const legend = el("p", undefined, "legend");
  legend.append(el("span", names.a, "key side-a"), el("span", names.b, "key side-b"));
  bars.append(legend);
  for (const c of [...CRITERIA, "total"]) {
    const row = el("div", undefined, "bar-row" + (c === "total" ? " total" : ""));
    row.append(el("span", c === "total" ? "Total (of 40)" : c.charAt(0).toUpperCase() + c.slice(1), "criterion"));
    for (const side of ["a", "b"]) {
      const score = c === "total" ? v.scores[side].total : v.scores[side].criteria[c];
      const out = c === "total" ? 40 : 10;
      const bar = el("div", undefined, "bar side-" + side);
      bar.dataset.testid = "score-bar";
      bar.dataset.speaker = side;
      bar.dataset.criterion = c;
      bar.setAttribute("role", "img");
      bar.setAttribute("aria-label", `${names[side]}: ${c} ${score.toFixed(1)} of ${out}`);
      const track = el("span", undefined, "track");
      const fill = el("span", undefined, "fill");
      fill.style.width = Math.max(0, Math.min(100, (100 * score) / out)) + "%";
      track.append(fill);
      bar.append(track, el("span", score.toFixed(1), "value"));
      row.append(bar);
    }
    bars.append(row);
  }
  $(".rationale", card).textContent = v.rationale;
  const passes = $("#passes", card);
  passes.replaceChildren();
  (v.passes || []).forEach((pass, i) => {
    const details = el("details", undefined, "pass");
    const first = names[pass.order[0]];
    const winner = pass.winner === "tie" ? "a tie" : `${names[pass.winner]} wins`;
    details.append(el("summary", `Judging pass ${i + 1} (${first} shown first): ${winner}`));
    const table = el("table");
    const head = el("tr");
    head.append(el("th", "Criterion"), el("th", names.a), el("th", names.b));
    table.append(head);
    for (const c of CRITERIA) {
      const row = el("tr");
      row.append(el("th", c));
      for (const side of ["a", "b"]) {
        const cell = el("td");
        cell.append(el("strong", pass.scores[side][c].toFixed(1)), el("span", " " + (pass.reasons[side][c] || ""), "reason"));
        row.append(cell);
      }
      table.append(row);
    }
    details.append(table, el("p", pass.rationale, "pass-rationale"));
    passes.append(details);
  });
  if (provenance) {
    $(".models", card).textContent = `Speeches by ${provenance.model || "a language model"}; judged by ${provenance.judge_model || "a language model"}.`;
  }
}

/** The room's votes: buttons for the open phase, and the split before and after. */
function voteBox(root, id, names, mayVote) {
  const box = $("#votes", root);
  let tally = null;
  const split = (c) => {
    const total = c.a + c.b + c.undecided;
    if (!total) return "no votes yet";
    const pct = (n) => Math.round((100 * n) / total) + "%";
    return `${names.a} ${pct(c.a)}, undecided ${pct(c.undecided)}, ${names.b} ${pct(c.b)} (${total} vote${total === 1 ? "" : "s"})`;
  };
  const show = (t) => {
    tally = t;
    box.hidden = false;
    for (const phase of ["before", "after"]) {
      const section = $("#vote-" + phase, box);
      section.hidden = !(mayVote && t.open === phase);
      for (const b of $$("[data-testid=vote]", section)) b.setAttribute("aria-pressed", String(t.mine[phase] === b.dataset.choice));
    }
    let text = `Before: ${split(t.before)}.`;
    if (t.open === "after" || t.after.a + t.after.b + t.after.undecided) text += ` After: ${split(t.after)}.`;
    if (t.swing) {
      const sign = (x) => (x > 0 ? "+" : x < 0 ? "−" : "±") + Math.abs(x).toFixed(0);
      text += ` Swing: ${names.a} ${sign(t.swing.a)} points, ${names.b} ${sign(t.swing.b)} points.`;
    }
    $("[data-testid=vote-result]", box).textContent = text;
  };
  box.addEventListener("click", async (e) => {
    const button = e.target.closest("[data-testid=vote]");
    if (!button) return;
    showError(box);
    try {
      show(await api("POST", `/api/debates/${id}/votes`, { phase: button.dataset.phase, choice: button.dataset.choice }));
    } catch (error) { showError(box, error); }
  });
  return { show, get: () => tally };
}

/** Starts the same debate again: with the sides swapped for a rematch. */
async function rematch(t, swap = true) {
  const body = {
    story: t.story,
    a: swap ? t.personas.b.id : t.personas.a.id,
    b: swap ? t.personas.a.id : t.personas.b.id,
    motion: t.motion,
  };
  try {
    const data = await api("POST", "/api/debates", body);
    location.href = "/debates/" + data.id;
  } catch (error) { showError($("#actions"), error); $("#actions").hidden = false; }
}

/** The owner's buttons under a finished debate: share, rematch. */
function actions(root, t) {
  const box = $("#actions", root);
  const showLink = (url) => {
    const out = $(".share-link", box);
    out.replaceChildren(el("span", "Anyone with this link can read the debate: "));
    const link = el("a", new URL(url, location.origin).href);
    link.href = url;
    link.dataset.testid = "share-link";
    out.append(link);
  };
  if (t.share) showLink(t.share);
  $("#share", box).onclick = async () => {
    showError(box);
    try { showLink((await api("POST", `/api/debates/${t.id}/share`)).url); } catch (error) { showError(box, error); }
  };
  $("#rematch", box).onclick = () => rematch(t, true);
}

// Signing out ends the session on the server, then returns to the front page.
const signOut = $("#sign-out");
if (signOut) {
  signOut.addEventListener("click", async () => {
    await fetch("/api/auth/logout", { method: "POST", credentials: "same-origin" });
    location.href = "/";
  });
}

const page = pages[document.body.dataset.page];
if (page) Promise.resolve(page()).catch((error) => {
  const main = $("main");
  const box = el("p", explain(error), "error page-error");
  box.setAttribute("role", "alert");
  main.prepend(box);
});
