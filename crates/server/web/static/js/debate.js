// The debate page, live or replayed: rounds, verdict, the room's votes, share, rematch and report.
import "./site.js";
import { $, $$, el, api, follow, showError, CRITERIA, markedSpeech, claimList, runPage } from "./common.js";
import { reportControl } from "./report.js";

async function debate() {
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
    const box = $("#actions");
    box.hidden = false;
    if (mine) actions(root, data);
    if ((mine || shared) && !$("[data-testid=report]", box)) {
      box.append(reportControl(shared ? `/api/shared/${shared}/reports` : `/api/debates/${id}/reports`));
    }
  };

  if (shared || !["queued", "running"].includes(data.status)) {
    // Finished: the transcript has everything the stream would show.
    view.fromTranscript(data);
    if (data.status === "failed") {
      view.failed(data.error, mine ? () => rematch(data, false) : null);
      if (mine) offerJudgeAgain(root, data, view);
    }
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
        if (mine && fresh.status === "failed") offerJudgeAgain(root, fresh, view);
      }
      finished();
    },
  }, (state) => {
    if (state === EventSource.CONNECTING) status.textContent = "Reconnecting…";
    else if (state === EventSource.OPEN) status.textContent = "Live";
  });
}

/** Whether all four speeches are there: a debate whose judging failed can be judged again. */
function fourSpeeches(t) {
  return (t.rounds || []).reduce((n, round) => n + round.turns.length, 0) === 4;
}

/** "Ask the judge again" under a debate whose four speeches stand without a verdict: only
 * the judging runs again, and its verdict streams in. */
function offerJudgeAgain(root, t, view) {
  const button = $(".judge-again", root);
  if (!button || t.verdict || !fourSpeeches(t)) return;
  button.hidden = false;
  button.onclick = async () => {
    const box = $("#failure");
    button.disabled = true;
    try {
      const accepted = await api("POST", `/api/debates/${t.id}/verdict`);
      box.hidden = true;
      $("#status").textContent = "The judge is reading the speeches again…";
      follow(accepted.events, {
        verdict: (v) => view.verdict(v, t.provenance),
        error: (d) => { view.failed(d, null); button.disabled = false; },
        done: (d) => { $("#status").textContent = d.status === "done" ? "Judged again." : ""; },
      });
    } catch (error) {
      $(".reason", box).textContent = "The judge could not start again: " + error.message + ".";
      button.disabled = false;
    }
  };
}

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
  $("[data-testid=low-confidence]", card).hidden = !v.low_confidence || Boolean(v.single_pass);
  $("[data-testid=single-pass]", card).hidden = !v.single_pass;
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

runPage(debate);
