// A reader's session on Crossfire's pages, in Debian's Chromium through playwright-core.
// Run by tests/integration/browser.rs against a real `crossfire serve` and the fake model;
// every check throws on failure, so the process exits non-zero and the Rust test fails with
// the message.
import { readFile } from "node:fs/promises";
import { BASE, PHONE, DESKTOP, browser, check, step, session, noSidewaysScroll, contrast, inert, shoot } from "./support.mjs";

const HOSTILE = process.env.HOSTILE;
const STORY = "nk-troops-russia";

// --- Signed out: the whole story, and the invitation ---
step("a signed-out reader sees every section and the invitation");
const visitor = await session(PHONE);
{
  const { page } = visitor;
  await page.goto(`${BASE}/stories/${STORY}`);
  const sections = await page.getByTestId("story-section").evaluateAll((all) => all.map((s) => s.dataset.section));
  const expected = ["overview", "indicators", "people", "organizations", "timeline", "scenarios", "history", "sources"];
  check(JSON.stringify(sections) === JSON.stringify(expected), `sections in the seed's order: ${sections}`);
  const text = await page.locator("main").innerText();
  for (const needle of ["Kim Jong Un", "Korean People's Army", "Status:", "Discussed by:", "Why it's relevant today", "Cuban"]) {
    check(text.includes(needle), `the story page shows "${needle}"`);
  }
  const sources = page.locator("[data-section=sources] a");
  check((await sources.count()) >= 3, "sources are links");
  check((await sources.first().getAttribute("rel")) === "noopener noreferrer", "source links open with noopener noreferrer");
  const invite = page.getByTestId("signup-invite");
  check(await invite.isVisible(), "the invitation to sign up shows");
  check((await invite.innerText()).includes("Sign up"), "the invitation says Sign up");
  check(text.includes("Sign up to generate historical perspectives on this story."), "the seed's invitation text");
  check((await page.getByTestId("start-debate").count()) === 0, "no Start button for a signed-out reader");
  check((await page.getByTestId("persona-card").count()) >= 10, "the persona cards show to everyone");
  await noSidewaysScroll(page, "story page (signed out)");
  await page.goto(`${BASE}/`);
  check((await page.locator(".stories li").count()) >= 3, "the front page lists the stories");
  await noSidewaysScroll(page, "front page");
  await contrast(page, "front page");
  await page.goto(`${BASE}/stories/${STORY}`);
  await contrast(page, "story page (signed out)");
  await page.goto(`${BASE}/debates`);
  check(page.url().startsWith(`${BASE}/login?next=`), "My debates sends a signed-out reader to sign in");
}

// --- Sign up from the invitation, and come back to the story ---
step("sign up from the invitation and return to the story");
const reader = await session(PHONE);
const { page } = reader;
await page.goto(`${BASE}/stories/${STORY}`);
await page.getByTestId("signup-invite").click();
await page.waitForURL(/\/signup\?next=/);
const email = `reader-${Date.now()}@example.com`;
await page.getByTestId("signup-email").fill(email);
await page.getByTestId("signup-password").fill("correct horse battery");
await page.getByTestId("signup-submit").click();
await page.waitForURL(`${BASE}/stories/${STORY}`);
check((await page.locator("header.site").innerText()).includes(email), "the header names the reader");
await noSidewaysScroll(page, "story page (signed in)");
await contrast(page, "story page (signed in)");

// --- Pick two personas by card, pick a suggested motion, start ---
step("pick personas by card, search by tag, take a suggested motion");
await page.locator("#persona-search").fill("zzz-nobody");
check(await page.locator("#no-match").isVisible(), "a search that matches nothing says so");
await page.locator("#persona-search").fill("churchill");
const visible = await page.locator("[data-testid=persona-card]:visible").count();
check(visible === 1, `searching "churchill" leaves one card (${visible})`);
const churchill = page.locator('[data-testid=persona-card][data-persona="winston-churchill"]');
await churchill.getByTestId("pick-a").click();
await page.locator("#persona-search").fill("");
const douglass = page.locator('[data-testid=persona-card][data-persona="frederick-douglass"]');
await douglass.getByTestId("pick-b").click();
check((await churchill.getByTestId("pick-a").getAttribute("aria-pressed")) === "true", "Churchill is side A");
check((await page.locator("#picked-b").innerText()).includes("Douglass"), "the B slot names Douglass");
const prefilled = await page.getByTestId("motion").inputValue();
check(prefilled.length > 10, "the motion box is prefilled");
const suggestions = page.getByTestId("motion-suggestion");
check((await suggestions.count()) >= 2, "two or more alternative motions");
const suggestion = await suggestions.first().innerText();
await suggestions.first().click();
check((await page.getByTestId("motion").inputValue()) === suggestion, "a suggestion fills the motion box");
await page.setViewportSize(DESKTOP);
await page.evaluate(() => window.scrollTo(0, 0));
await shoot(page, "story-desktop");
await page.locator("#arena").scrollIntoViewIfNeeded();
await shoot(page, "arena-desktop");
await page.setViewportSize(PHONE);
await page.evaluate(() => window.scrollTo(0, 0));
await shoot(page, "story-phone");
await page.locator("#arena").scrollIntoViewIfNeeded();
await shoot(page, "arena-phone");
await page.getByTestId("start-debate").click();
await page.waitForURL(/\/debates\/[0-9a-f]{32}$/);
const debateUrl = page.url();
const debateId = debateUrl.split("/").pop();

// --- The live debate: vote before, watch, reload mid-way ---
step("vote before, watch the speeches stream, reload mid-debate");
check(await page.getByTestId("simulated-label").isVisible(), "the debate page says it is simulated");
check((await page.locator(".eyebrow a").getAttribute("href")) === `/stories/${STORY}`, "the story's title links back");
await page.locator('[data-testid=vote][data-phase=before][data-choice=a]').click();
await page.waitForFunction(() => document.querySelector("[data-testid=vote-result]").textContent.includes("100%"));
await page.locator('[data-testid=vote][data-phase=before][data-choice=undecided]').click();
await page.waitForFunction(() => {
  const b = document.querySelector('[data-testid=vote][data-phase=before][data-choice=undecided]');
  return b.getAttribute("aria-pressed") === "true";
});
check((await page.getByTestId("vote-result").innerText()).includes("undecided 100%"), "the vote before can change");
await page.waitForFunction(() => {
  const t = document.querySelector('[data-testid=turn][data-round="1"] .speech');
  return t && t.textContent.length > 5;
});
await shoot(page, "debate-phone");
check(!(await page.getByTestId("verdict").isVisible()), "reloaded before the verdict");
await page.reload();
await page.getByTestId("verdict").waitFor({ state: "visible", timeout: 60000 });
await page.waitForFunction(() => document.querySelector("#actions") && !document.querySelector("#actions").hidden);

step("four turns, each exactly as the transcript has it, claims marked");
const transcript = await page.evaluate(async (id) => (await fetch("/api/debates/" + id)).json(), debateId);
check(transcript.status === "done", "the debate finished: " + transcript.status);
const turns = await page.getByTestId("turn").evaluateAll((all) =>
  all.map((t) => ({ round: Number(t.dataset.round), speaker: t.dataset.speaker, text: t.querySelector(".speech").textContent })));
check(turns.length === 4, `four turns (${turns.length})`);
for (const round of transcript.rounds) {
  for (const turn of round.turns) {
    const shown = turns.find((t) => t.round === round.round && t.speaker === turn.speaker);
    check(shown && shown.text === turn.text, `round ${round.round} ${turn.speaker} shows its speech once, whole`);
  }
}
const restarted = page.locator('[data-testid=turn][data-round="1"][data-speaker=b]');
check((await restarted.getAttribute("data-restarts")) === "1", "Douglass's cut-off speech restarted, cleared");
const seen = await page.evaluate(() => window.__seen);
let shown = 0;
for (const [key, texts] of Object.entries(seen)) {
  const [round, speaker] = [Number(key[0]), key[1]];
  const final = transcript.rounds.find((r) => r.round === round).turns.find((t) => t.speaker === speaker).text;
  for (const text of texts) {
    check(final.startsWith(text.trim()), `round ${round} ${speaker} never shows more than its speech: "${text}"`);
    shown += 1;
  }
}
check(shown > 8, `the speeches streamed in pieces after the reload (${shown} states seen)`);
check((await page.getByTestId("unsupported").count()) >= 4, "unsupported claims are marked in the speeches");
check((await page.getByTestId("unsupported").first().innerText()) === "99,999", "the invented figure is the one marked");
check((await page.locator(".claims li").count()) >= 4, "and listed under them");

step("the verdict card: winner, bars per criterion and side, passes with reasons");
const winner = await page.getByTestId("winner").innerText();
check(/wins|tie/i.test(winner), "the winner is named: " + winner);
const bars = await page.getByTestId("score-bar").evaluateAll((all) => all.map((b) => b.dataset.speaker + ":" + b.dataset.criterion));
for (const side of ["a", "b"]) {
  for (const c of ["argument", "evidence", "rebuttal", "fidelity", "total"]) check(bars.includes(`${side}:${c}`), `a score bar for ${side} ${c}`);
}
check(await page.getByTestId("contested").isHidden() === !transcript.verdict.contested, "contested shows only when the passes disagreed");
check((await page.locator("details.pass").count()) === transcript.verdict.passes.length, "one disclosure per judging pass");
await page.locator("details.pass summary").first().click();
check((await page.locator("details.pass .reason").first().innerText()).length > 0, "a pass shows its reasons");
check((await page.locator("#verdict .models").innerText()).includes("judged by"), "the models used are named");
check((await page.locator("#verdict .sureness").innerText()).includes("of 40 points"), "the verdict says how sure it is");

step("vote after, see the swing");
check(await page.locator("#vote-before").isHidden(), "the vote before closed with the verdict");
await page.locator('[data-testid=vote][data-phase=after][data-choice=b]').click();
await page.waitForFunction(() => document.querySelector("[data-testid=vote-result]").textContent.includes("Swing"));
const result = await page.getByTestId("vote-result").innerText();
check(result.includes("+100 points"), "the swing to B is shown: " + result);
await noSidewaysScroll(page, "debate page");
await contrast(page, "debate page");
await page.locator("details.pass").nth(1).locator("summary").click();
await contrast(page, "debate page with the passes open");

step("motion respects prefers-reduced-motion");
const animation = () => getComputedStyle(document.querySelector(".dots"), "::after").animationName;
check((await page.evaluate(animation)) === "pulse", "the typing dots pulse by default");
await page.emulateMedia({ reducedMotion: "reduce" });
check((await page.evaluate(animation)) === "none", "and stand still when the reader asks for less motion");
await page.emulateMedia({ reducedMotion: "no-preference" });
await shoot(page, "verdict-phone", page.getByTestId("verdict"));
await page.setViewportSize(DESKTOP);
await page.evaluate(() => window.scrollTo(0, 0));
await shoot(page, "debate-desktop");
await shoot(page, "verdict-desktop", page.getByTestId("verdict"));
await page.setViewportSize(PHONE);

step("export Markdown");
const [download] = await Promise.all([page.waitForEvent("download"), page.getByTestId("export-md").click()]);
const markdown = await readFile(await download.path(), "utf8");
check(markdown.startsWith("# "), "the Markdown starts with the motion as a heading");
check(markdown.includes("Simulated") && markdown.includes("## Verdict"), "the Markdown has the label and the verdict");
check(markdown.includes(transcript.rounds[0].turns[0].text.slice(0, 20)), "the Markdown has the speeches");

step("share, and open the link signed out");
await page.getByTestId("share").click();
const shareLink = page.getByTestId("share-link");
await shareLink.waitFor();
const shareUrl = await shareLink.innerText();
check(shareUrl.startsWith(BASE + "/shared/"), "the share link: " + shareUrl);
{
  const { page: other } = visitor;
  await other.goto(shareUrl);
  await other.getByTestId("verdict").waitFor({ state: "visible" });
  check((await other.getByTestId("turn").count()) === 4, "the replay has the four turns");
  check(await other.getByTestId("simulated-label").isVisible(), "the replay says it is simulated");
  check((await other.getByTestId("share").count()) === 0, "the replay is read-only");
  const status = await other.evaluate(async (id) => (await fetch("/api/debates/" + id)).status, debateId);
  check(status === 401, "the debate itself stays private: " + status);
  const missing = await other.goto(`${BASE}/shared/not-a-token`);
  check(missing.status() === 404, "a made-up link is 404");
  await noSidewaysScroll(other, "shared replay");
}

step("rematch with the sides swapped");
await page.getByTestId("rematch").click();
await page.waitForURL((url) => url.href !== debateUrl && /\/debates\/[0-9a-f]{32}$/.test(url.href));
check((await page.locator(".faceoff .side-a .name").innerText()).includes("Douglass"), "Douglass is side A in the rematch");
check((await page.locator("#motion-title").innerText()) === transcript.motion, "the rematch keeps the motion");

step("my debates lists both, newest first, with the winner");
await page.goto(`${BASE}/debates`);
await page.locator(".debate-item").nth(1).waitFor();
const items = await page.locator(".debate-item").allInnerTexts();
check(items[0].startsWith("Frederick Douglass vs"), "the rematch is first: " + items[0]);
check(/won|tie/i.test(items[1]), "the finished debate shows its winner: " + items[1]);
await noSidewaysScroll(page, "my debates");
await contrast(page, "my debates");

step("a perspective streams, labelled simulated");
await page.goto(`${BASE}/stories/${STORY}`);
await page.locator('[data-testid=perspective-persona][data-persona="abraham-lincoln"]').click();
await page.getByTestId("start-perspective").click();
await page.waitForFunction(() => {
  const t = document.querySelector("[data-testid=perspective-text]");
  return t.getAttribute("aria-busy") === "false" && t.textContent.includes("Lincoln");
}, null, { timeout: 60000 });
check(await page.locator(".perspective-out [data-testid=simulated-label]").isVisible(), "the perspective is labelled simulated");
await page.reload();
await page.locator('[data-testid=perspective-persona][data-persona="abraham-lincoln"]').click();
await page.getByTestId("start-perspective").click();
await page.locator(".cached-note").waitFor({ state: "visible" });
check((await page.getByTestId("perspective-text").innerText()).includes("Lincoln"), "the cached perspective appears at once");

step("a debate that fails says why and offers to try again");
await page.goto(`${BASE}/stories/${STORY}`);
await page.locator('[data-testid=persona-card][data-persona="rachel-carson"]').getByTestId("pick-a").click();
await page.locator('[data-testid=persona-card][data-persona="adam-smith"]').getByTestId("pick-b").click();
await page.getByTestId("start-debate").click();
await page.waitForURL(/\/debates\/[0-9a-f]{32}$/);
const failedUrl = page.url();
await page.locator("#failure").waitFor({ state: "visible", timeout: 60000 });
check((await page.locator("#failure .reason").innerText()).startsWith("Reason: "), "the failure gives its reason");
await page.locator("#failure .try-again").click();
await page.waitForURL((url) => url.href !== failedUrl && /\/debates\/[0-9a-f]{32}$/.test(url.href));
check((await page.locator(".faceoff .side-a .name").innerText()).includes("Carson"), "trying again keeps the sides");

step("hostile story, persona and motion render as text");
await page.goto(`${BASE}/stories/hostile`);
check((await page.locator("h1").innerText()).includes("<script>window.__pwned=1</script>"), "the hostile title shows as text");
check((await page.locator(".dek").innerText()).includes("{{ 7*7 }}"), "template syntax shows as text");
check((await page.locator("[data-section=sources] a").count()) === 0, "a javascript: source is not a link");
await inert(page, "hostile story");
await noSidewaysScroll(page, "hostile story");
await page.locator('[data-testid=persona-card][data-persona="hostile-persona"]').getByTestId("pick-a").click();
await page.locator('[data-testid=persona-card][data-persona="winston-churchill"]').getByTestId("pick-b").click();
await page.getByTestId("motion").fill(HOSTILE.slice(0, 290));
await page.getByTestId("start-debate").click();
await page.waitForURL(/\/debates\/[0-9a-f]{32}$/);
check((await page.locator("#motion-title").innerText()).includes("{{ 7*7 }}"), "the hostile motion shows as text");
check((await page.locator(".faceoff .side-a .name").innerText()).includes("<img"), "the hostile name shows as text");
await page.getByTestId("verdict").waitFor({ state: "visible", timeout: 60000 });
check((await page.getByTestId("turn").first().innerText()).includes("<img"), "a speech quoting the hostile name shows it as text");
await inert(page, "hostile debate");
await noSidewaysScroll(page, "hostile debate");

step("an editor signs in and the editor page fits a phone");
{
  const { page: editor } = await session(PHONE);
  await editor.goto(`${BASE}/login?next=/editor`);
  await editor.locator("input[name=email]").fill(process.env.EDITOR_EMAIL);
  await editor.locator("input[name=password]").fill(process.env.EDITOR_PASSWORD);
  await editor.getByTestId("login-submit").click();
  await editor.waitForURL(`${BASE}/editor`);
  await editor.waitForFunction(() => document.querySelector("#lint-summary").textContent.includes("personas ok"));
  await noSidewaysScroll(editor, "editor page");
  await contrast(editor, "editor page");
  const liveBefore = await editor.locator("#live-summary").innerText();
  check(liveBefore.startsWith("Serving set "), "the editor sees which set is live: " + liveBefore);

  step("an editor drafts a persona: a typo located as they type, a trial, a save that goes live");
  await editor.locator("#file-select").selectOption("persona/george-orwell");
  await editor.locator("#open-form button[type=submit]").click();
  const draft = editor.locator("#draft-text");
  await editor.waitForFunction(() => document.querySelector("#draft-text").value.includes("id = \"george-orwell\""));
  const saved = await draft.inputValue();
  await draft.fill(saved.replace('role = "', "role = "));
  await editor.locator("#draft-problems pre.marked").waitFor();
  const located = await editor.locator("#draft-problems li button").first().innerText();
  check(/^line \d+, column \d+: /.test(located), "the typo is located: " + located);
  check((await editor.locator("#save-draft").isDisabled()), "a draft with problems cannot be saved");
  await editor.setViewportSize(DESKTOP);
  await shoot(editor, "editor-desktop");
  await editor.setViewportSize(PHONE);
  await noSidewaysScroll(editor, "editor page with a marked problem");
  await draft.fill(saved.replace('role = "', 'role = "Tried: '));
  await editor.locator("#draft-problems .ok-note").waitFor();
  await editor.locator("#draft-preview summary").click();
  check((await editor.locator("#preview").innerText()).includes("Tried: "), "the preview shows the draft's prompts");
  await editor.locator("#try-draft").click();
  await editor.waitForFunction(() => document.querySelector("#trial-turns .speech") && document.querySelector("#trial-turns .speech").textContent.includes("George Orwell"), null, { timeout: 60000 });
  await editor.locator("#save-draft").click();
  await editor.waitForFunction(() => document.querySelector("#saved-note").textContent.startsWith("Saved version"));
  await editor.waitForFunction((before) => document.querySelector("#live-summary").textContent !== before, liveBefore, { timeout: 10000 });
  check((await editor.locator("#saves li").first().textContent()).includes("by " + process.env.EDITOR_EMAIL), "the save is recorded with who made it");
  const role = await editor.evaluate(async () => (await (await fetch("/api/personas/george-orwell")).json()).role);
  check(role.startsWith("Tried: "), "the saved draft is live: " + role);
  await editor.locator("#run-probes").click();
  await editor.waitForFunction(() => document.querySelector("#probes").textContent.includes("positions "), null, { timeout: 60000 });
  check((await editor.locator("#probes details").count()) >= 4, "the scorecard lists each probe");
  await shoot(editor, "editor-phone");
  await editor.goto(`${BASE}/login`);
  await noSidewaysScroll(editor, "sign-in page");
  await contrast(editor, "sign-in page");
}

step("the daily limit says when it resets");
await page.goto(`${BASE}/stories/${STORY}`);
await page.locator('[data-testid=persona-card][data-persona="winston-churchill"]').getByTestId("pick-a").click();
await page.locator('[data-testid=persona-card][data-persona="george-kennan"]').getByTestId("pick-b").click();
await page.getByTestId("start-debate").click();
await page.waitForFunction(() => document.querySelector("#debate-form .error").textContent.includes("resets at"));
check(page.url() === `${BASE}/stories/${STORY}`, "the reader stays on the story");
check((await page.locator("#debate-form .error").innerText()).includes("daily limit"), "the message names the limit");

await browser.close();
console.log("all browser checks passed");
