// The editors' queue: hide, dismiss or restore a case, with a note.
import "./site.js";
import { $, $$, el, api, showError, runPage } from "./common.js";

function reports() {
  for (const form of $$("form.resolve")) {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const article = form.closest("article.case");
      const action = e.submitter ? e.submitter.value : "dismiss";
      const note = form.elements.note.value.trim();
      showError(form);
      for (const b of $$("button", form)) b.disabled = true;
      try {
        const done = await api("POST", `/api/editor/reports/${article.dataset.case}/resolve`, note ? { action, note } : { action });
        const said = { hidden: "Hidden everywhere.", dismissed: "Dismissed: it stays up.", restored: "Restored: it is up again." };
        article.replaceChildren(el("h2", $("h2", article).textContent), el("p", said[done.state] || done.state, "resolved"));
        article.dataset.state = done.state;
        $("#queue-status").textContent = said[done.state] || "";
      } catch (error) {
        showError(form, error);
        for (const b of $$("button", form)) b.disabled = false;
      }
    });
  }
}

runPage(reports);
