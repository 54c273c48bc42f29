// The validator page (/campaigns/<id>/validate/): someone else's edited example alone (no
// original, no intended label), a label, a "broken / unreadable" flag and a comment (docs/
// architecture.md "Counterfactual protocol", step 6). Blind by construction: the task JSON holds only the edited values.
import { api } from "./api.js";
import { el, clear, uuid4, isTypingTarget, labelIndexForKey, pageConfig } from "./util.js";
import { labelButtons, errorSlot, showError, toast, banner, signInLink, helpDialog } from "./common_ui.js";
import { exampleView } from "./example_view.js";
import { DraftStore } from "./drafts.js";

const cfg = pageConfig();
const campaignId = Number(cfg.campaignId);
const app = document.getElementById("app");
const topBanner = document.getElementById("ws-banner");
const progressEl = document.getElementById("ws-progress");

const help = helpDialog([
  [["1", "…", "9", ",", "0", ",", "a", ",", "b", "…"], "choose the answer"],
  [["Shift", "+", "X"], "mark as broken / unreadable"],
  [["Ctrl", "+", "Enter"], "submit and go to the next"],
  [["Esc"], "leave the comment field"],
  [["?"], "show this help"],
]);

let S = null;

async function loadTask() {
  clear(app).append(el("p", { class: "loading muted" }, "Getting the next edit to check…"));
  banner(topBanner, "");
  let task;
  try {
    task = await api("POST", `campaigns/${campaignId}/lease/`, { kind: "validate" });
  } catch (err) {
    const actions = err.code === "not_authenticated" ? [signInLink()] : [el("a", { href: "/", class: "button-link secondary" }, "Back to campaigns")];
    clear(app).append(el("section", { class: "card narrow-wide" }, el("h1", {}, "Nothing to load"), el("p", {}, err.message), el("div", { class: "actions" }, actions)));
    return;
  }
  if (!task) {
    S = null;
    clear(app).append(el("section", { class: "card narrow-wide done", "data-state": "done" },
      el("h1", {}, "Nothing to check right now"),
      el("p", {}, "Every edit that needs a check has one for now. New edits arrive as annotators submit them."),
      el("div", { class: "actions" },
        el("button", { type: "button", class: "secondary", onclick: loadTask }, "Look again"),
        el("a", { href: "/", class: "button-link primary" }, "Back to campaigns"))));
    if (progressEl) progressEl.textContent = "";
    return;
  }
  setup(task);
}

function setup(task) {
  const drafts = new DraftStore({ userId: cfg.userId, assignmentId: task.assignment.id, serverDraft: task.draft });
  const d = drafts.load();
  S = { task, drafts, key: (d && d.idempotency_key) || uuid4(), label: (d && d.label) || "", broken: !!(d && d.broken), submitting: null };
  const p = task.progress || {};
  if (progressEl) progressEl.textContent = p.target ? `${p.done} of ${p.target} checked` : `${p.done || 0} checked`;
  const { campaign, example } = task;

  S.labels = labelButtons({ labels: campaign.label_space, name: "Your answer", onPick: pick });
  S.labels.set(S.label);
  S.brokenInput = el("input", { type: "checkbox", id: "broken", onchange: () => { S.broken = S.brokenInput.checked; showError(S.errLabel, ""); persist(); } });
  S.brokenInput.checked = S.broken;
  S.comment = el("textarea", { id: "comment", rows: "3", placeholder: "Optional: anything odd about this example?", oninput: persist });
  S.comment.value = (d && d.comment) || "";
  S.errLabel = errorSlot("err-label");
  S.errSubmit = errorSlot("err-submit");
  S.primary = el("button", { type: "button", class: "primary", onclick: submit, "aria-keyshortcuts": "Control+Enter" }, "Submit and next", el("span", { class: "kbd-hint" }, "Ctrl+Enter"));

  clear(app).append(el("div", { class: "ws validate", dataset: { assignment: String(task.assignment.id) } },
    el("div", { class: "ws-head" },
      campaign.instructions ? el("details", { class: "instructions" }, el("summary", {}, "Instructions"), el("div", { class: "instructions-body" }, campaign.instructions)) : ""),
    el("section", { class: "ws-left", "aria-label": "The example" }, exampleView(campaign.modalities, example.values)),
    el("section", { class: "ws-right" },
      el("p", { class: "muted" }, "Answer for this example as it is. Nothing else is known about it."),
      el("fieldset", { class: "field", id: "field-label" }, el("legend", {}, "Your answer"), S.labels.node, S.errLabel),
      el("div", { class: "field" }, el("label", { class: "check", for: "broken" }, S.brokenInput, el("span", {}, "Broken or unreadable — it cannot be answered"), el("span", { class: "hint" }, " Shift+X"))),
      el("div", { class: "field" }, el("label", { for: "comment" }, "Comment"), S.comment),
      S.errSubmit,
      el("div", { class: "actions" }, S.primary))));
  persist();
}

function pick(label) {
  S.label = label;
  S.labels.set(label);
  showError(S.errLabel, "");
  persist();
}

function persist() {
  if (!S || S.done) return;
  S.drafts.save({ v: 1, idempotency_key: S.key, label: S.label, broken: S.broken, comment: S.comment.value });
}

async function submit() {
  if (!S || S.submitting) return;
  showError(S.errLabel, "");
  showError(S.errSubmit, "");
  if (!S.label && !S.broken) {
    showError(S.errLabel, "Choose an answer, or mark the example as broken.");
    return;
  }
  S.primary.disabled = true;
  S.submitting = true;
  try {
    await api("POST", `assignments/${S.task.assignment.id}/submit/`, {
      idempotency_key: S.key,
      label: S.broken ? S.label || "" : S.label,
      broken: S.broken,
      comment: S.comment.value,
    });
    S.done = true;
    S.drafts.close();
    toast("Thanks — recorded.");
    loadTask();
  } catch (err) {
    S.submitting = null;
    S.primary.disabled = false;
    if (err.code === "not_authenticated") banner(topBanner, err.message, { kind: "warn", actions: [signInLink()] });
    else if (/label/.test(err.code)) showError(S.errLabel, err.message);
    else showError(S.errSubmit, err.message);
  }
}

document.addEventListener("keydown", (e) => {
  if (e.defaultPrevented || !S || S.done) return;
  if (document.querySelector("dialog[open]") && e.key !== "?") return;
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); submit(); return; }
  if (e.key === "Escape" && isTypingTarget(e.target)) { e.target.blur(); return; }
  if (isTypingTarget(e.target) || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === "?") { e.preventDefault(); help.toggle(); return; }
  if (e.shiftKey && (e.key === "X" || e.key === "x")) {
    e.preventDefault();
    S.brokenInput.checked = !S.brokenInput.checked;
    S.brokenInput.dispatchEvent(new Event("change"));
    return;
  }
  if (e.shiftKey) return;
  const i = labelIndexForKey(e.key);
  const labels = S.task.campaign.label_space;
  if (i >= 0 && i < labels.length) { e.preventDefault(); pick(labels[i]); }
});

document.getElementById("help-btn")?.addEventListener("click", () => help.toggle());

window.__counterpoint = { get state() { return S; } };

loadTask();
