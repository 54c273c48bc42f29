// Home: fill each campaign card's progress from GET /campaigns/{id}/me/.
import { api } from "./api.js";

for (const card of document.querySelectorAll(".campaign-card")) {
  const progs = card.querySelectorAll(".prog");
  if (!progs.length) continue;
  api("GET", `campaigns/${card.dataset.campaignId}/me/`).then((me) => {
    for (const prog of progs) {
      const kind = prog.dataset.kind;
      const info = (me && me[kind]) || {};
      const done = info.done || 0;
      const total = kind === "annotate" ? info.target : done + (info.available || 0);
      const fig = prog.querySelector(".prog-figure");
      if (kind === "annotate") fig.textContent = total ? `${done} of ${total}` : `${done}`;
      else fig.textContent = info.available ? `${done} · ${info.available} waiting` : `${done}`;
      const frac = total ? Math.min(1, done / total) : 0;
      prog.querySelector(".prog-fill").style.width = `${(frac * 100).toFixed(1)}%`;
      if (info.open_assignment) fig.textContent += " · task open";
    }
  }).catch(() => {
    for (const prog of progs) prog.querySelector(".prog-figure").textContent = "";
  });
}
