// The story page: persona cards and motion for a new debate, and a persona's perspective.
import "./site.js";
import { $, $$, api, follow, showError, markedSpeech, claimList, runPage } from "./common.js";
import { reportControl } from "./report.js";

function story() {
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
    const report = $(".perspective-report", out);
    report.replaceChildren();
    let id;
    const finish = (d) => {
      markedSpeech(text, d.text, d.unsupported);
      claims.replaceChildren(claimList(d.unsupported));
      claims.hidden = !(d.unsupported && d.unsupported.length);
      text.setAttribute("aria-busy", "false");
      report.replaceChildren(reportControl(`/api/perspectives/${id}/reports`));
    };
    try {
      const data = await api("POST", "/api/perspectives", { story, persona: ask.elements.persona.value });
      id = data.id;
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
}

runPage(story);
