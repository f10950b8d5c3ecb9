// The editor's page: the live set, fairness, persona lint, and drafts checked, saved, probed and tried.
import "./site.js";
import { $, el, api, explain, follow, showError, markedSpeech, runPage } from "./common.js";

async function editor() {
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
}

runPage(editor);
