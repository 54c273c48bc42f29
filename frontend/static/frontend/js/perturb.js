// The perturbation task page (/campaigns/<id>/perturbation/<study>/): one perturbed example at
// a time, the label and how sure the annotator is; no edit step (docs/perturbation.md). The
// lease decides which example at which level; the page never learns the level.
import { api } from "./api.js";
import { el, clear, uuid4, isTypingTarget, labelIndexForKey, pageConfig } from "./util.js";
import { labelButtons, errorSlot, showError, toast, banner, signInLink, helpDialog } from "./common_ui.js";
import { exampleView } from "./example_view.js";

const cfg = pageConfig();
const campaignId = Number(cfg.campaignId);
const studyId = Number(cfg.studyId);
const app = document.getElementById("app");
const topBanner = document.getElementById("ws-banner");
const progressEl = document.getElementById("ws-progress");
const CONFIDENCE = ["", "guessing", "unsure", "fairly sure", "sure", "certain"];
let S = null;

const help = helpDialog([
  [["1", "…", "9", ",", "0", ",", "a", ",", "b", "…"], "choose the answer"],
  [["Shift", "+", "1", "…", "5"], "how sure you are"],
  [["Ctrl", "+", "Enter"], "submit and go to the next"],
  [["?"], "show this help"],
]);

async function loadTask() {
  clear(app).append(el("p", { class: "loading muted" }, "Getting the next example…"));
  banner(topBanner, "");
  let task;
  try {
    task = await api("POST", `campaigns/${campaignId}/lease/`, { kind: "perturbation", study: studyId });
  } catch (err) {
    const actions = err.code === "not_authenticated" ? [signInLink()] : [el("a", { href: "/", class: "button-link secondary" }, "Back to campaigns")];
    clear(app).append(el("section", { class: "card narrow-wide" }, el("h1", {}, "Nothing to load"), el("p", {}, err.message), el("div", { class: "actions" }, actions)));
    return;
  }
  if (!task) {
    S = null;
    clear(app).append(el("section", { class: "card narrow-wide done", "data-state": "done" },
      el("h1", {}, "All done"),
      el("p", {}, "You have labelled every example of this study. Thank you."),
      el("div", { class: "actions" }, el("a", { href: "/", class: "button-link primary" }, "Back to campaigns"))));
    if (progressEl) progressEl.textContent = "";
    return;
  }
  setup(task);
}

function setup(task) {
  S = { task, key: uuid4(), label: "", confidence: null, started: performance.now(), submitting: false };
  const p = task.progress || {};
  if (progressEl) progressEl.textContent = `${p.done} of ${p.target} labelled`;
  const { campaign, example } = task;
  S.labels = labelButtons({ labels: campaign.label_space, name: "Your answer", onPick: pick });
  S.errLabel = errorSlot("err-label");
  S.errConfidence = errorSlot("err-confidence");
  S.errSubmit = errorSlot("err-submit");
  const conf = [1, 2, 3, 4, 5].map((n) => {
    const input = el("input", { type: "radio", name: "confidence", value: String(n), id: `conf-${n}`, onchange: () => { S.confidence = n; showError(S.errConfidence, ""); } });
    return el("label", { class: "seg", for: `conf-${n}`, title: `Shift+${n}` }, input, el("span", {}, `${n}`), el("span", { class: "seg-sub" }, CONFIDENCE[n]));
  });
  S.primary = el("button", { type: "button", class: "primary", id: "perturb-submit", onclick: submit, "aria-keyshortcuts": "Control+Enter" }, "Submit and next", el("span", { class: "kbd-hint" }, "Ctrl+Enter"));
  clear(app).append(el("div", { class: "ws perturb", dataset: { assignment: String(task.assignment.id) } },
    el("div", { class: "ws-head" },
      campaign.instructions_html ? el("details", { class: "instructions" }, el("summary", {}, "Instructions")) : ""),
    el("section", { class: "ws-left", "aria-label": "The example" }, exampleView(campaign.modalities, example.values)),
    el("section", { class: "ws-right" },
      el("p", { class: "muted" }, "Some examples are harder to read than others. Give your best answer."),
      el("fieldset", { class: "field", id: "field-label" }, el("legend", {}, "Your answer"), S.labels.node, S.errLabel),
      el("fieldset", { class: "field", id: "field-confidence" }, el("legend", {}, "How sure are you?", el("span", { class: "hint" }, " Shift+1…5")),
        el("div", { class: "segmented" }, conf), S.errConfidence),
      S.errSubmit,
      el("div", { class: "actions" }, S.primary))));
}

function pick(label) {
  S.label = label;
  S.labels.set(label);
  showError(S.errLabel, "");
}

async function submit() {
  if (!S || S.submitting) return;
  showError(S.errLabel, "");
  showError(S.errSubmit, "");
  if (!S.label) { showError(S.errLabel, "Choose an answer."); return; }
  if (S.confidence == null) { showError(S.errConfidence, "Say how sure you are."); return; }
  S.submitting = true;
  S.primary.disabled = true;
  try {
    await api("POST", `assignments/${S.task.assignment.id}/submit/`, {
      idempotency_key: S.key,
      label: S.label,
      confidence: S.confidence,
      time_spent_ms: Math.round(performance.now() - S.started),
    });
    toast("Recorded.");
    loadTask();
  } catch (err) {
    S.submitting = false;
    S.primary.disabled = false;
    if (err.code === "not_authenticated") banner(topBanner, err.message, { kind: "warn", actions: [signInLink()] });
    else if (/label/.test(err.code)) showError(S.errLabel, err.message);
    else showError(S.errSubmit, err.message);
  }
}

document.addEventListener("keydown", (e) => {
  if (e.defaultPrevented || !S) return;
  if (document.querySelector("dialog[open]") && e.key !== "?") return;
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); submit(); return; }
  if (isTypingTarget(e.target) || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === "?") { e.preventDefault(); help.toggle(); return; }
  if (e.shiftKey && /^[1-5]$/.test(e.code.replace("Digit", ""))) {
    const n = Number(e.code.replace("Digit", ""));
    const input = document.getElementById(`conf-${n}`);
    if (input) { e.preventDefault(); input.checked = true; input.dispatchEvent(new Event("change")); }
    return;
  }
  if (e.shiftKey) return;
  const i = labelIndexForKey(e.key);
  const labels = S.task.campaign.label_space;
  if (i >= 0 && i < labels.length) { e.preventDefault(); pick(labels[i]); }
});

document.getElementById("help-btn")?.addEventListener("click", () => help.toggle());

loadTask();
