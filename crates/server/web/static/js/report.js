// The "Report" control under a debate or a perspective: a reason and an optional note, sent to
// the editors. A native <details> disclosure and a fieldset of radio buttons, so it works by
// keyboard and reads well to a screen reader.
import { el, api, explain } from "./common.js";

const REASONS = [
  ["hateful", "Hateful"],
  ["harassment", "Harassment"],
  ["sexual", "Sexual"],
  ["violent", "Violent"],
  ["misinformation", "Misinformation"],
  ["other", "Something else"],
];

let made = 0;

/** A report control that posts to `path`. */
export function reportControl(path) {
  const n = ++made;
  const box = el("details", null, "report");
  box.dataset.testid = "report";
  box.append(el("summary", "Report"));
  const form = el("form", null, "report-form");
  const reasons = el("fieldset");
  reasons.append(el("legend", "What is wrong with it?"));
  for (const [value, label] of REASONS) {
    const option = el("label", null, "choice");
    const radio = el("input");
    Object.assign(radio, { type: "radio", name: "reason", value, required: true });
    option.append(radio, " " + label);
    reasons.append(option);
  }
  const noteLabel = el("label", "Anything the editors should know (optional)", "wide");
  noteLabel.htmlFor = "report-note-" + n;
  const note = el("textarea");
  Object.assign(note, { id: "report-note-" + n, name: "note", rows: 3, maxLength: 1000 });
  const send = el("button", "Send to the editors");
  send.type = "submit";
  const answer = el("p", null, "report-answer");
  answer.setAttribute("role", "status");
  answer.dataset.testid = "report-answer";
  form.append(reasons, noteLabel, note, send);
  box.append(form, answer);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    send.disabled = true;
    try {
      const body = { reason: form.elements.reason.value };
      if (note.value.trim()) body.note = note.value;
      const receipt = await api("POST", path, body);
      form.hidden = true;
      answer.textContent = receipt.counted
        ? "Thank you: the editors will look at it."
        : "You reported this already: the editors have it.";
    } catch (error) {
      answer.textContent = explain(error);
    } finally {
      send.disabled = false;
    }
  });
  return box;
}
