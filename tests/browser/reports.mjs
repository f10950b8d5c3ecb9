// Reports and takedown in Chromium: a visitor reports a shared debate, an editor finds it in
// the queue with its reason and hides it, the link then says it was removed, its owner reads
// why, and the audit log lists the action. Run by tests/integration/browser.rs.
import { BASE, PHONE, DESKTOP, browser, check, step, session, noSidewaysScroll, contrast, shoot } from "./support.mjs";

const SHARE = BASE + process.env.SHARE_PATH;
const DEBATE = process.env.DEBATE_ID;
const WHY = "It singles out a people with contempt.";

async function signIn(page, email, password, next) {
  await page.goto(`${BASE}/login?next=${encodeURIComponent(next)}`);
  await page.locator("input[name=email]").fill(email);
  await page.locator("input[name=password]").fill(password);
  await page.getByTestId("login-submit").click();
  await page.waitForURL(BASE + next);
}

step("a visitor with the link reports the debate, by keyboard, at phone width");
const visitor = await session(PHONE);
{
  const { page } = visitor;
  await page.goto(SHARE);
  const report = page.getByTestId("report");
  await report.waitFor();
  await report.locator("summary").focus();
  await page.keyboard.press("Enter");
  await page.getByRole("radio", { name: "Hateful" }).check();
  await page.getByLabel("Anything the editors should know").fill("It mocks a whole people in round two.");
  await shoot(page, "report-phone");
  await page.getByRole("button", { name: "Send to the editors" }).click();
  const answer = page.getByTestId("report-answer");
  await answer.waitFor();
  check((await answer.innerText()).includes("the editors will look at it"), "the visitor sees it was received");
  await noSidewaysScroll(page, "the shared debate with its report control");
  await contrast(page, "the shared debate with its report control");
}

for (const [width, name] of [[PHONE, "phone"], [DESKTOP, "desktop"]]) {
  step(`an editor sees the report in the queue at ${name} width`);
  const { page } = await session(width);
  await signIn(page, process.env.EDITOR_EMAIL, process.env.EDITOR_PASSWORD, "/editor");
  await page.getByTestId("reports-link").click();
  await page.waitForURL(`${BASE}/editor/reports`);
  const kase = page.locator(`[data-testid=case][data-run="${DEBATE}"]`);
  await kase.waitFor();
  const reasons = await kase.getByTestId("reasons").innerText();
  check(/hateful\s*×\s*1/.test(reasons), "the reason is counted: " + reasons);
  check((await kase.innerText()).includes("It mocks a whole people"), "the visitor's note is there");
  check((await kase.locator(".speech-context").count()) === 4, "the four speeches are there in context");
  await noSidewaysScroll(page, "the queue");
  await contrast(page, "the queue");
  await shoot(page, `queue-${name}`);
  if (name === "desktop") {
    step("the editor hides it, with a note for its owner");
    await kase.getByLabel("Note").fill(WHY);
    await kase.getByTestId("hide").click();
    await kase.locator(".resolved").waitFor();
    check((await kase.innerText()).includes("Hidden everywhere"), "the editor sees it is done");
    await shoot(page, "queue-hidden-desktop");

    step("the audit log lists the action");
    await page.goto(`${BASE}/editor/audit`);
    const entry = page.locator("[data-testid=audit-entry][data-action=hide]").first();
    const text = await entry.innerText();
    check(text.includes(DEBATE) && text.includes(process.env.EDITOR_EMAIL) && text.includes(WHY), "the entry says who, what and why: " + text);
    await noSidewaysScroll(page, "the audit log");
    await contrast(page, "the audit log");
    await shoot(page, "audit-desktop");
    await page.setViewportSize(PHONE);
    await noSidewaysScroll(page, "the audit log at phone width");
    await shoot(page, "audit-phone");
  }
  await page.context().close();
}

step("the link now says the debate was removed, and shows none of it");
{
  const { page } = visitor;
  const response = await page.goto(SHARE);
  check(response.status() === 410, "the shared page answers 410: " + response.status());
  const said = await page.getByTestId("removed").innerText();
  check(said.includes("removed by the editors"), "the visitor is told: " + said);
  check(!said.includes(WHY), "the editors' note is for the owner only");
  check((await page.locator("[data-testid=turn]").count()) === 0, "no speech is left");
  await contrast(page, "the removed page");
  await shoot(page, "removed-phone");
}

step("its owner reads why on their own page");
{
  const { page } = await session(DESKTOP);
  await signIn(page, process.env.OWNER_EMAIL, process.env.OWNER_PASSWORD, `/debates/${DEBATE}`);
  const said = await page.getByTestId("removed").innerText();
  check(said.includes(WHY), "the owner is told why: " + said);
  await shoot(page, "removed-owner-desktop");
  await page.goto(`${BASE}/debates`);
  await page.locator(".debate-item").first().waitFor();
  const listed = await page.locator(".debate-item").first().innerText();
  check(/removed/i.test(listed), "the owner's list marks it removed: " + listed);
  await shoot(page, "debates-removed-desktop");
}

await browser.close();
console.log("all report checks passed");
