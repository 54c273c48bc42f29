// Live model panel (docs/architecture.md "Counterfactual protocol"): after an edit, score the draft against the campaign's
// models and show each model's probabilities on the draft beside its prediction on the
// original, and what its answer did: reaches the target, changed but not to the target, or
// unchanged. The server tells that outcome (live.answer_outcome) against the target sent
// with the draft; a new target re-asks. Hidden for annotators in the hidden-feedback arm.
//
// Timing: "idle-leading" debounce. The first edit after a quiet spell (≥ debounce) is scored at
// once, so a single change answers in one round trip; edits in quick succession are coalesced
// and the last one is scored `debounce` ms after typing stops. Stale answers are dropped:
// every request carries a sequence number and aborts the one before it.
import { api } from "./api.js";
import { el, clear, humanName } from "./util.js";

// What each outcome looks like; the words say what happened, the class only colours it.
export const OUTCOME_BADGE = {
  reaches_target: { cls: "yes", text: "✓ reaches target", title: "this model now gives the answer you are aiming for" },
  changed_not_target: { cls: "other", text: "⇄ changed, not to target", title: "this model changed its answer, but not to your target" },
  changed: { cls: "other", text: "⇄ changed", title: "this model changed its answer (choose a target to see whether it is yours)" },
  unchanged: { cls: "no", text: "same", title: "this model gives the same answer as on the original" },
};

/** The panel's one-line summary from the outcome counts. */
export function summaryText(counts, ok, unavailable, target) {
  const parts = [];
  const of = `of ${ok} model${ok === 1 ? "" : "s"}`;
  if (target) {
    parts.push(`${counts.reaches_target || 0} ${of} reach “${humanName(target)}”`);
    if (counts.changed_not_target) parts.push(`${counts.changed_not_target} changed to another answer`);
  } else {
    parts.push(`${counts.changed || 0} ${of} changed ${ok === 1 ? "its" : "their"} answer`);
  }
  parts.push(`${counts.unchanged || 0} unchanged`);
  if (unavailable) parts.push(`${unavailable} unavailable`);
  return `${parts.join(" · ")}.`;
}

export class LivePanel {
  constructor({ root, assignmentId, debounceMs = 300, targetLabel = () => "" }) {
    this.root = root;
    this.assignmentId = assignmentId;
    this.debounceMs = debounceMs;
    this.targetLabel = targetLabel;
    this.seq = 0;
    this.rendered = 0;
    this.renderCount = 0;
    this.lastEditAt = -Infinity;
    this.timer = 0;
    this.ctrl = null;
    this.payloadFn = null;
    this.last = null;
    this.summaryEl = el("p", { class: "live-summary", "aria-live": "polite" }, "Make an edit to see how the models respond.");
    this.list = el("div", { class: "live-models" });
    clear(root).append(
      el("div", { class: "live-head" }, el("h3", {}, "Models on your draft"), el("span", { class: "live-dot", "aria-hidden": "true" })),
      this.summaryEl,
      this.list,
    );
    root.dataset.state = "idle";
    root.dataset.seq = "0";
    root.dataset.renderCount = "0";
  }

  /** Call after every edit; payloadFn() returns {modality, value} | {modality, image} | null. */
  schedule(payloadFn) {
    this.payloadFn = payloadFn;
    const now = performance.now();
    const quiet = now - this.lastEditAt >= this.debounceMs && !this.timer;
    this.lastEditAt = now;
    clearTimeout(this.timer);
    this.timer = 0;
    if (quiet) this.fire();
    else this.timer = setTimeout(() => { this.timer = 0; this.fire(); }, this.debounceMs);
  }

  async fire() {
    const payload = this.payloadFn && this.payloadFn();
    if (!payload) return;
    const seq = ++this.seq;
    if (this.ctrl) this.ctrl.abort();
    const ctrl = new AbortController();
    this.ctrl = ctrl;
    this.root.dataset.state = "pending";
    this.root.dataset.seq = String(seq);
    performance.mark(`cp-score-start-${seq}`);
    try {
      const target = this.targetLabel() || "";
      const data = await api("POST", "score/", { assignment: this.assignmentId, target_label: target, ...payload }, { signal: ctrl.signal });
      if (seq !== this.seq) return; // a newer draft is on its way
      // Which draft the bars describe (text drafts), for tests and the benchmark.
      this.root.dataset.renderedFor = typeof payload.value === "string" ? payload.value : "";
      this.render(data, seq);
    } catch (err) {
      if (err && err.name === "AbortError") return;
      if (seq !== this.seq) return;
      this.showError(err);
    } finally {
      if (this.ctrl === ctrl) this.ctrl = null;
    }
  }

  /** The target changed: the outcomes were told against the old one, so ask again. */
  retarget() {
    if (!this.payloadFn || !this.last) return;
    clearTimeout(this.timer);
    this.timer = 0;
    this.fire();
  }

  showError(err) {
    this.root.dataset.state = "error";
    let msg = "Live feedback is unavailable right now. You can still submit your edit.";
    if (err.code === "throttled") {
      msg = "Live feedback is catching up…";
      clearTimeout(this.retry);
      this.retry = setTimeout(() => this.fire(), 1000);
    } else if (err.code === "score_cap_reached") {
      msg = `${err.message}. Live feedback has stopped for this task; you can still submit.`;
    } else if (err.code === "assignment_not_active") {
      msg = "Your hold on this task has expired, so live feedback stopped. You can still submit: it is accepted while the example needs annotations.";
    } else if (err.code === "not_authenticated") msg = err.message;
    else if (err.status === 400 || err.status === 409) msg = err.message;
    this.summaryEl.textContent = msg;
    this.list.classList.add("stale");
  }

  render(data, seq) {
    this.last = data;
    if (data.feedback === "hidden") {
      this.root.hidden = true;
      return;
    }
    const models = data.models || [];
    const target = this.targetLabel();
    clear(this.list);
    this.list.classList.remove("stale");
    if (models.length) this.list.append(el("div", { class: "live-row live-cols", "aria-hidden": "true" },
      el("span", {}, "model"), el("span", {}, "original → draft"),
      el("span", {}, target ? `“${humanName(target)}”` : "top answer"), el("span", {}, "")));
    const counts = { reaches_target: 0, changed_not_target: 0, changed: 0, unchanged: 0 };
    let ok = 0;
    for (const m of models) {
      if (m.status !== "ok") {
        this.list.append(el("article", { class: "live-model unavailable", dataset: { model: String(m.id), status: m.status } },
          el("div", { class: "live-row" },
            el("span", { class: "model-name", title: `${m.name} ${m.version || ""}` }, m.name),
            el("span", { class: "unavailable-note" }, "model unavailable right now; your work is not affected"))));
        continue;
      }
      ok++;
      counts[m.outcome] = (counts[m.outcome] || 0) + 1;
      this.list.append(this.modelCard(m, target));
    }
    if (!models.length) this.summaryEl.textContent = "No models are attached to this campaign.";
    else this.summaryEl.textContent = summaryText(counts, ok, models.length - ok, target);
    this.rendered = seq;
    this.renderCount++;
    this.root.dataset.state = "ok";
    this.root.dataset.rendered = String(seq);
    this.root.dataset.renderCount = String(this.renderCount);
    performance.mark(`cp-score-rendered-${seq}`);
    // "Bars updated" = the frame with the new bars is about to be painted.
    requestAnimationFrame(() => {
      this.root.dataset.paintedAt = String(performance.now());
      this.root.dataset.painted = String(seq);
    });
  }

  /** One row per model: name · original → draft prediction · the target label's bar ·
   * outcome badge; "all labels" expands the full distribution beside the original's. */
  modelCard(m, target) {
    const probs = m.probabilities || {};
    const orig = m.original_probabilities || {};
    const pct = (p) => `${Math.round((p || 0) * 100)}%`;
    const bar = (label, cls = "") => {
      const p = probs[label] || 0;
      const q = orig[label] || 0;
      return el("span", { class: `bar ${cls}`, role: "img", "aria-label": `${humanName(label)}: ${pct(p)} on your draft, ${pct(q)} on the original` },
        el("span", { class: "bar-fill", style: `width:${(p * 100).toFixed(1)}%` }),
        el("span", { class: "bar-orig", style: `left:${(q * 100).toFixed(1)}%`, title: `original ${pct(q)}` }));
    };
    const focus = target || m.predicted_label;
    const all = Object.keys(probs).sort((a, b) => (probs[b] || 0) - (probs[a] || 0));
    const more = el("div", { class: "all-bars", hidden: true },
      all.map((label) => el("div", { class: `bar-row${label === target ? " target" : ""}` },
        el("span", { class: "bar-label" }, humanName(label)), bar(label), el("span", { class: "bar-value" }, pct(probs[label])))));
    const toggle = el("button", {
      type: "button",
      class: "more-btn",
      "aria-expanded": "false",
      "aria-label": `All labels for ${m.name}`,
      title: "all labels",
      onclick: () => {
        more.hidden = !more.hidden;
        toggle.setAttribute("aria-expanded", String(!more.hidden));
      },
    }, "▸");
    const badge = OUTCOME_BADGE[m.outcome] || OUTCOME_BADGE.unchanged;
    return el("article", { class: `live-model${m.flipped ? " flipped" : ""} outcome-${m.outcome || "unchanged"}`, dataset: { model: String(m.id), status: "ok", flipped: m.flipped ? "1" : "0", outcome: m.outcome || "", predicted: m.predicted_label } },
      el("div", { class: "live-row" },
        el("span", { class: "model-name", title: `${m.name} ${m.version || ""}` }, toggle, m.name),
        el("span", { class: "pred-line" },
          el("span", { class: "muted" }, humanName(m.original_predicted_label ?? "–")),
          el("span", { class: "arrow", "aria-label": "then on your draft" }, " → "),
          el("strong", { class: m.flipped ? "changed" : "" }, humanName(m.predicted_label ?? "–")),
          el("span", { class: "muted" }, ` ${pct(probs[m.predicted_label])}`)),
        el("span", { class: "focus-bar", title: `${humanName(focus)}: ${pct(probs[focus])} (original ${pct(orig[focus])})` },
          bar(focus, target ? "target" : ""), el("span", { class: "bar-value" }, pct(probs[focus]))),
        el("span", { class: `flip-badge ${badge.cls}`, title: badge.title }, badge.text)),
      more);
  }
}
