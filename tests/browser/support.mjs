// What the browser runs share: the browser, fresh sessions, checks that throw, and
// screenshots, readable-contrast and no-sideways-scroll checks at phone and desktop width.
import { chromium } from "playwright-core";
import { join } from "node:path";

export const BASE = process.env.BASE_URL;
const SHOTS = process.env.SCREENSHOTS;
export const PHONE = { width: 390, height: 844 };
export const DESKTOP = { width: 1280, height: 900 };

export function check(condition, message) {
  if (!condition) throw new Error("check failed: " + message);
}

export function step(name) {
  console.log("· " + name);
}

export const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
});

/** A fresh browser profile at a width; fails the run on any dialog or page error. Every
 * text a speech shows is recorded, to check later that none ever doubled. */
export async function session(viewport) {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  await context.addInitScript(() => {
    window.__seen = {};
    new MutationObserver((records) => {
      for (const r of records) {
        const speech = r.target.closest && r.target.closest(".speech");
        const turn = speech && speech.closest("[data-testid=turn]");
        if (!turn) continue;
        const key = turn.dataset.round + turn.dataset.speaker + ":" + (turn.dataset.restarts || 0);
        (window.__seen[key] = window.__seen[key] || []).push(speech.textContent);
      }
    }).observe(document, { subtree: true, childList: true, characterData: true });
  });
  const page = await context.newPage();
  page.on("dialog", (d) => { throw new Error("a dialog opened: " + d.message()); });
  page.on("pageerror", (e) => { throw new Error("script error on " + page.url() + ": " + e.message); });
  return { context, page };
}

/** Nothing on the page scrolls sideways. */
export async function noSidewaysScroll(page, what) {
  const [scroll, width] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  check(scroll <= width, `${what} scrolls sideways at ${width}px (content is ${scroll}px wide)`);
}

/** Every visible piece of text meets WCAG AA contrast against what is behind it. */
export async function contrast(page, what) {
  const bad = await page.evaluate(() => {
    const parse = (c) => {
      const m = c.match(/rgba?\(([^)]+)\)/);
      if (!m) return null;
      const p = m[1].split(/[\s,/]+/).filter(Boolean).map(Number);
      return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
    };
    const channel = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    const luminance = (c) => 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
    const behind = (node) => {
      for (let n = node; n; n = n.parentElement) {
        const c = parse(getComputedStyle(n).backgroundColor);
        if (c && c.a > 0.5) return c;
      }
      return { r: 255, g: 255, b: 255, a: 1 };
    };
    const out = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
      const text = walker.currentNode;
      const node = text.parentElement;
      if (!text.textContent.trim() || !node || !node.getClientRects().length) continue;
      if (node.closest(":disabled, .visually-hidden, .skip")) continue;
      const style = getComputedStyle(node);
      if (style.visibility === "hidden") continue;
      const [fg, bg] = [luminance(parse(style.color)), luminance(behind(node))];
      const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
      const size = parseFloat(style.fontSize);
      const large = size >= 24 || (Number(style.fontWeight) >= 700 && size >= 18.66);
      if (ratio < (large ? 3 : 4.5)) out.push(`${ratio.toFixed(2)}:1 "${text.textContent.trim().slice(0, 40)}"`);
    }
    return out;
  });
  check(bad.length === 0, `${what}: text below WCAG AA contrast: ${bad.slice(0, 5).join("; ")}`);
}

/** No hostile text ran as script. */
export async function inert(page, what) {
  const pwned = await page.evaluate(() => window.__pwned);
  check(pwned === undefined, `${what}: hostile text ran as script`);
}

/** A screenshot of the viewport, or of one element, once layout has settled. */
export async function shoot(page, name, element) {
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  const path = join(SHOTS, name + ".png");
  if (element) await element.screenshot({ path });
  else await page.screenshot({ path });
}

