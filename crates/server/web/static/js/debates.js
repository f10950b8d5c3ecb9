// The reader's own debates, a page at a time.
import "./site.js";
import { $, el, api, runPage } from "./common.js";

async function debates() {
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
      if (d.removed) meta.append(el("span", "Removed by the editors", "badge removed"));
      else if (winner) meta.append(el("span", winner, "winner-note"));
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
}

runPage(debates);
