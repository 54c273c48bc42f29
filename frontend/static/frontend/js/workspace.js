// The annotator workspace (/campaigns/<id>/annotate/): lease a task, label it, say what was
// relied on, mark evidence, write a rationale, then (when the campaign asks) make a minimal
// counterfactual edit of one modality with live model feedback, and submit. Every change is
// autosaved; the idempotency key is made when the task loads and kept in the draft, so a
// double click or a retried request stores one submission.
// With data-preview="1" (the manager's /manage/campaigns/<id>/preview/) the same page runs
// over GET campaigns/<id>/preview/ and writes nothing: no lease, draft, live score or submit.
import { api } from "./api.js";
import { el, clear, uuid4, isTypingTarget, labelIndexForKey, pageConfig, humanName } from "./util.js";
import { DraftStore } from "./drafts.js";
import { labelButtons, errorSlot, showError, toast, banner, signInLink, helpDialog } from "./common_ui.js";
import { imageFigure, textBlock, tabularTable, modalityLabel, loadBitmap } from "./example_view.js";
import { TextEvidence, BoxEvidence, renderEvidenceList } from "./evidence.js";
import { TextEditor, TabularEditor } from "./text_editor.js";
import { ImageEditor } from "./image_editor.js";
import { LivePanel } from "./live_panel.js";
import { relianceOptions } from "./reliance.js";

const cfg = pageConfig();
const campaignId = Number(cfg.campaignId);
const finishUrl = cfg.finishUrl || "";
const userId = cfg.userId;
const app = document.getElementById("app");
const topBanner = document.getElementById("ws-banner");
const progressEl = document.getElementById("ws-progress");
const saveEl = document.getElementById("ws-save");
const preview = cfg.preview === "1";
const previewNav = document.getElementById("preview-nav");
let previewExample = new URLSearchParams(location.search).get("example");

/** The draft store of a preview: keeps nothing, anywhere. */
class NoDrafts {
  constructor() { this.key = ""; }
  load() { return null; }
  save() {}
  flush() { return Promise.resolve(); }
  close() {}
}

// Where a server rule's message is shown (the control it is about).
const ERROR_FIELD = {
  label_not_in_label_space: "label",
  label_required: "label",
  confidence_out_of_range: "confidence",
  reliance_unknown: "reliance",
  reliance_modality_required: "reliance",
  evidence_invalid: "evidence",
  target_label_not_in_label_space: "target",
  target_label_same_as_label: "target",
  counterfactual_modality_not_editable: "modality",
  counterfactual_modality_not_assigned: "modality",
  counterfactual_target_not_assigned: "target",
  rationale_too_long: "rationale",
};
const fieldForCode = (code) => ERROR_FIELD[code] || (/^(counterfactual_|image_|tabular_|text_)/.test(code) ? "editor" : "");
const LABEL_STEP_FIELDS = new Set(["label", "confidence", "reliance", "evidence", "rationale"]);

const help = helpDialog([
  [["1", "…", "9", ",", "0", ",", "a", ",", "b", "…"], "choose the answer (on the edit step: the target answer)"],
  [["Shift", "+", "1", "…", "5"], "how sure you are"],
  [["Ctrl", "+", "Enter"], "next step / submit"],
  [["Esc"], "leave a text field, so the keys above work again"],
  [["←", "→", "Space"], "on the question: move between words, mark one as evidence"],
  [["Enter", "←↑↓→", "Delete"], "on the image: add a box, move it (with Shift: resize), remove it"],
  [["←↑↓→", "Space", "[", "]"], "on the edit canvas: move the cursor, paint; brush size"],
  [["Ctrl", "+", "Z"], "undo an image edit (Ctrl + Shift + Z: redo)"],
  [["?"], "show this help"],
]);

let S = null; // the current task's state

function q(key, fallback) {
  // Campaign overrides of the reliance questions (docs/architecture.md "Reliance questions"): {key: false} or {key: {"enabled": false, "text": "..."}} or {key: "wording"}.
  const raw = S.task.campaign.questions ? S.task.campaign.questions[key] : undefined;
  if (raw === false) return { enabled: false, text: fallback };
  if (typeof raw === "string") return { enabled: true, text: raw };
  if (raw && typeof raw === "object") return { enabled: raw.enabled !== false, text: raw.text || raw.wording || fallback };
  return { enabled: true, text: fallback };
}

// ---------------------------------------------------------------------------------------
async function loadTask() {
  app.before(topBanner); // it lives in the task's head row while a task is shown
  if (saveEl) saveEl.textContent = "";
  clear(app).append(el("p", { class: "loading muted" }, "Getting your next task…"));
  banner(topBanner, "");
  let task;
  try {
    task = preview
      ? await api("GET", `campaigns/${campaignId}/preview/${previewExample ? `?example=${encodeURIComponent(previewExample)}` : ""}`)
      : await api("POST", `campaigns/${campaignId}/lease/`, { kind: "annotate" });
  } catch (err) {
    if (err.code === "task_cap_reached" || err.code === "screening_failed") return showEnd(err);
    return showFatal(err);
  }
  if (!task) return finishUrl ? location.assign(finishUrl) : showDone();
  if (preview) renderPreviewNav(task);
  const wasShowing = !!S;
  setup(task);
  // The next task after a submit: keyboard focus back to the top, shortcuts ready.
  if (wasShowing) document.getElementById("main").focus({ preventScroll: true });
}

function renderPreviewNav(task) {
  if (!previewNav) return;
  const ids = task.samples || [];
  const i = ids.indexOf(task.example.id);
  const go = (id) => { previewExample = String(id); history.replaceState(null, "", `?example=${id}`); S = null; loadTask(); };
  previewNav.replaceChildren(
    el("span", { class: "muted small" }, `Example ${task.example.id}${i >= 0 ? ` (sample ${i + 1} of ${ids.length})` : ""}`),
    el("button", { type: "button", class: "secondary", id: "preview-prev", disabled: i <= 0, onclick: () => go(ids[i - 1]) }, "← Previous"),
    el("button", { type: "button", class: "secondary", id: "preview-next", disabled: i < 0 || i >= ids.length - 1, onclick: () => go(ids[i + 1]) }, "Next →"));
}

function showFatal(err) {
  const actions = err.code === "not_authenticated" ? [signInLink()] : [el("button", { type: "button", class: "secondary", onclick: () => loadTask() }, "Try again")];
  clear(app).append(el("section", { class: "card narrow-wide" },
    el("h1", {}, err.code === "campaign_not_active" ? "This campaign is not open" : "The task could not be loaded"),
    el("p", {}, err.message), el("div", { class: "actions" }, actions, el("a", { href: "/", class: "button-link secondary" }, "Back to campaigns"))));
}

/** The people rules ended this person's work: crowd workers go to their completion code. */
function showEnd(err) {
  if (finishUrl) return location.assign(finishUrl);
  clear(app).append(el("section", { class: "card narrow-wide done", "data-state": err.code },
    el("h1", {}, err.code === "screening_failed" ? "The screening was not passed" : "You have done your share"),
    el("p", {}, err.message),
    el("div", { class: "actions" }, el("a", { href: "/", class: "button-link primary" }, "Back to campaigns"))));
  if (progressEl) progressEl.textContent = "";
}

function showDone() {
  clear(app).append(el("section", { class: "card narrow-wide done", "data-state": "done" },
    el("h1", {}, "All done here"),
    el("p", {}, "There is nothing left for you to annotate in this campaign right now. Thank you!"),
    el("div", { class: "actions" }, el("a", { href: "/", class: "button-link primary" }, "Back to campaigns"))));
  if (progressEl) progressEl.textContent = "";
}

function setup(task) {
  const campaign = task.campaign;
  const mods = campaign.modalities;
  const drafts = preview ? new NoDrafts() : new DraftStore({
    userId,
    assignmentId: task.assignment.id,
    serverDraft: task.draft,
    onStatus: saveStatus,
  });
  const saved = drafts.load();
  const d = saved && saved.v === 1 ? saved : null;
  S = {
    task,
    drafts,
    key: (d && d.idempotency_key) || uuid4(),
    step: "label",
    label: d ? d.label || "" : "",
    confidence: d ? d.confidence ?? null : null,
    relianceChoice: d ? d.reliance_choice || "" : "",
    evidence: d ? d.evidence || [] : [],
    rationale: d ? d.rationale || "" : "",
    cf: {
      modality: task.counterfactual.modality || (d && d.cf && d.cf.modality) || "",
      target: task.counterfactual.target_label || (d && d.cf && d.cf.target_label) || "",
      values: (d && d.cf && d.cf.values) || {},
    },
    timeMs: d ? d.time_spent_ms || 0 : 0,
    shownAt: performance.now(),
    visible: document.visibilityState === "visible",
    editors: {},
    submitting: null,
    errors: {},
    restored: !!d,
  };
  const editable = (campaign.editable_modalities || []).filter((n) => mods.some((m) => m.name === n));
  if (!S.cf.modality && editable.length === 1) S.cf.modality = editable[0];
  S.editable = editable;
  S.wantsEdit = !!(campaign.tasks && campaign.tasks.counterfactual) && editable.length > 0;
  progress();
  build();
  if (d && d.step === "edit" && S.wantsEdit) goStep("edit");
  else goStep("label");
  if (d) {
    const when = new Date(d.saved_at || Date.now());
    banner(topBanner, `Restored your unfinished work from ${when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}.`, {
      kind: "info",
      actions: [el("button", { type: "button", class: "linklike", onclick: startOver }, "Start over")],
    });
  }
  // Keep the key from the first moment: a crash before the first edit must not mint a new one.
  persist();
  watchLease(task);
}

let leaseTimer = 0;
/** Say so, calmly, when the lease runs out while the page is open (the work stays saved). */
function watchLease(task) {
  clearTimeout(leaseTimer);
  if (preview) return;
  const ms = Date.parse(task.assignment.expires_at) - Date.now();
  if (!Number.isFinite(ms)) return;
  const say = () => {
    if (S && S.task === task && !S.done) {
      banner(topBanner, "Your hold on this task has expired. Your work is saved; submitting still works while the example needs annotations.", { kind: "warn" });
    }
  };
  if (ms <= 0) say();
  else if (ms < 2 ** 31) leaseTimer = setTimeout(say, ms);
}

function startOver() {
  tick();
  const spent = S.timeMs; // the work is thrown away, the time spent on the task is not
  S.drafts.close();
  try { localStorage.removeItem(S.drafts.key); } catch (_) { /* ignore */ }
  const task = { ...S.task, draft: {} };
  setup(task);
  S.timeMs = spent;
  persist();
  banner(topBanner, "");
}

function progress() {
  const p = S.task.progress || {};
  if (progressEl) progressEl.textContent = p.target ? `${p.done} of ${p.target} done` : `${p.done || 0} done`;
}

function saveStatus(state, err) {
  if (!saveEl) return;
  const text = {
    unsaved: "Saving…",
    saving: "Saving…",
    saved: "All changes saved",
    offline: "Saved in this browser (server unreachable)",
    "signed-out": "Saved in this browser",
    rejected: "Saved in this browser only",
    closed: "",
  }[state] ?? "";
  if (saveEl && state === "rejected" && err) saveEl.title = err.message;
  saveEl.textContent = text;
  saveEl.dataset.state = state;
  if (state === "signed-out") banner(topBanner, err.message, { kind: "warn", actions: [signInLink()] });
}

// Time on task: the page's count resumes from the autosaved draft (so it adds up over reloads)
// and grows only while the page is visible. Whether the interval just ended counts is the
// visibility it had, not the one now: a visibilitychange (or the pagehide of a reload) runs
// after the state flipped, and reading it then dropped every visible stretch since the last
// change, so a task read for minutes and reloaded stored seconds.
function tick() {
  const now = performance.now();
  if (S.visible) S.timeMs += now - S.shownAt;
  S.shownAt = now;
  S.visible = document.visibilityState === "visible";
}

function collectDraft() {
  tick();
  const values = { ...S.cf.values };
  for (const [name, ed] of Object.entries(S.editors)) {
    if (ed.kind === "image") values[name] = ed.editor.isChanged() ? ed.editor.toPNG() : undefined;
    else values[name] = ed.editor.value();
  }
  S.cf.values = values;
  return {
    v: 1,
    idempotency_key: S.key,
    step: S.step,
    label: S.label,
    confidence: S.confidence,
    reliance_choice: S.relianceChoice,
    evidence: currentEvidence(),
    rationale: S.rationaleInput ? S.rationaleInput.value : S.rationale,
    cf: { modality: S.cf.modality, target_label: S.cf.target, values },
    time_spent_ms: Math.round(S.timeMs),
  };
}

function persist() {
  if (!S || S.done) return;
  S.drafts.save(collectDraft());
}

// ---------------------------------------------------------------------------------------
// The default evidence question names only the ways of marking this example's inputs have.
function evidenceAsk(mods) {
  const ways = [];
  if (mods.some((m) => m.kind === "text")) ways.push("click words");
  if (mods.some((m) => m.kind === "image")) ways.push("drag boxes on the image");
  if (!ways.length) return "What mattered?";
  const said = ways.join("; ");
  return `What mattered? ${said.charAt(0).toUpperCase()}${said.slice(1)}.`;
}

function build() {
  const { campaign, example } = S.task;
  const mods = campaign.modalities;
  S.ui = {};
  const left = el("section", { class: "ws-left", "aria-label": "The example" });
  const right = el("section", { class: "ws-right" });
  S.ui.left = left;
  S.ui.right = right;

  // Example, with evidence marking on the label step.
  const evidenceOn = campaign.tasks.rationale !== false && q("evidence", "").enabled;
  S.textEvidence = {};
  S.boxEvidence = {};
  S.ui.modalityNodes = {};
  const exampleNode = el("div", { class: "example" });
  for (const mod of mods) {
    const value = example.values[mod.name];
    const section = el("section", { class: `modality modality-${mod.kind}`, dataset: { modality: mod.name } },
      el("h2", { class: "modality-name" }, modalityLabel(mod)));
    const body = el("div", { class: "modality-body" });
    if (mod.kind === "image" && value) {
      const fig = imageFigure(mod, value);
      if (evidenceOn) S.boxEvidence[mod.name] = new BoxEvidence({ modality: mod.name, figure: fig, label: modalityLabel(mod), onChange: evidenceChanged });
      body.append(fig.node);
    } else if (mod.kind === "text") {
      if (evidenceOn) {
        const te = new TextEvidence({ modality: mod.name, text: value, label: modalityLabel(mod), onChange: evidenceChanged });
        S.textEvidence[mod.name] = te;
        body.append(te.node);
      } else body.append(textBlock(mod, value));
    } else if (mod.kind === "tabular") body.append(tabularTable(mod, value));
    section.append(body);
    S.ui.modalityNodes[mod.name] = { section, body, view: body.firstChild };
    exampleNode.append(section);
  }
  left.append(exampleNode);
  if (evidenceOn) {
    S.ui.evidenceList = el("div", { class: "evidence-list", "aria-live": "polite" });
    S.ui.evidenceBox = el("div", { class: "evidence" },
      el("h3", {}, q("evidence", evidenceAsk(mods)).text || evidenceAsk(mods)),
      S.ui.evidenceList, (S.ui.err_evidence = errorSlot("err-evidence")));
    left.append(S.ui.evidenceBox);
    for (const te of Object.values(S.textEvidence)) te.restore(S.evidence.filter((e) => e.type === "span" && e.modality === te.modality));
    for (const be of Object.values(S.boxEvidence)) be.restore(S.evidence.filter((e) => e.type === "box" && e.modality === be.modality));
    renderEvidence();
  }

  right.append(buildLabelStep(), buildEditStep());
  const tabs = S.wantsEdit
    ? el("div", { class: "steps", role: "tablist", "aria-label": "Steps" },
      (S.ui.tabLabel = el("button", { type: "button", role: "tab", id: "tab-label", "aria-controls": "step-label", onclick: () => goStep("label") }, el("span", { class: "step-n" }, "1"), " Answer")),
      (S.ui.tabEdit = el("button", { type: "button", role: "tab", id: "tab-edit", "aria-controls": "step-edit", onclick: () => goStep("edit") }, el("span", { class: "step-n" }, "2"), " Edit")))
    : "";
  let instructions = "";
  if (campaign.instructions_html) {
    const body = el("div", { class: "instructions-body md" });
    // Rendered and sanitised by the server (annotation.markdown.instructions_html).
    body.innerHTML = campaign.instructions_html;
    instructions = el("details", { class: "instructions" }, el("summary", {}, "Instructions"), body);
  } else if (campaign.instructions) {
    instructions = el("details", { class: "instructions" }, el("summary", {}, "Instructions"), el("div", { class: "instructions-body" }, campaign.instructions));
  }
  clear(app).append(el("div", { class: "ws", dataset: { assignment: String(S.task.assignment.id) } },
    el("div", { class: "ws-head" }, tabs, instructions, topBanner), left, right));
}

function evidenceChanged() {
  renderEvidence();
  showError(S.ui.err_evidence, "");
  persist();
}

function currentEvidence() {
  if (!S.textEvidence) return S.evidence;
  const out = [];
  for (const te of Object.values(S.textEvidence)) out.push(...te.spans());
  for (const be of Object.values(S.boxEvidence)) out.push(...be.list());
  return out;
}

function renderEvidence() {
  if (!S.ui.evidenceList) return;
  const mods = Object.fromEntries(S.task.campaign.modalities.map((m) => [m.name, m]));
  renderEvidenceList(S.ui.evidenceList, currentEvidence(), (item) => {
    if (item.type === "span") S.textEvidence[item.modality].removeSpan(item);
    else {
      const be = S.boxEvidence[item.modality];
      const i = be.boxes.findIndex((b) => b.x === item.x && b.y === item.y && b.w === item.w && b.h === item.h);
      if (i >= 0) be.remove(i);
    }
  }, (name) => modalityLabel(mods[name] || { name, kind: "" }));
}

function buildLabelStep() {
  const { campaign } = S.task;
  const mods = campaign.modalities;
  const step = el("div", { class: "step", id: "step-label", role: S.wantsEdit ? "tabpanel" : undefined, "aria-labelledby": S.wantsEdit ? "tab-label" : undefined });

  S.ui.labels = labelButtons({ labels: campaign.label_space, name: "Your answer", onPick: pickLabel });
  step.append(el("fieldset", { class: "field", id: "field-label" },
    el("legend", {}, q("label", "Your answer").text),
    S.ui.labels.node, (S.ui.err_label = errorSlot("err-label"))));
  S.ui.labels.set(S.label);

  if (q("confidence", "").enabled) {
    const names = ["", "guessing", "unsure", "fairly sure", "sure", "certain"];
    S.ui.conf = [1, 2, 3, 4, 5].map((n) => {
      const input = el("input", { type: "radio", name: "confidence", value: String(n), id: `conf-${n}`, onchange: () => { S.confidence = n; showError(S.ui.err_confidence, ""); persist(); } });
      if (S.confidence === n) input.checked = true;
      return el("label", { class: "seg", for: `conf-${n}`, title: `Shift+${n}` }, input, el("span", {}, `${n}`), el("span", { class: "seg-sub" }, names[n]));
    });
    step.append(el("fieldset", { class: "field", id: "field-confidence" },
      el("legend", {}, q("confidence", "How sure are you?").text, el("span", { class: "hint" }, " Shift+1…5")),
      el("div", { class: "segmented" }, S.ui.conf), (S.ui.err_confidence = errorSlot("err-confidence"))));
  }

  const rationaleOn = campaign.tasks.rationale !== false;
  // With one input there is nothing to compare: the reliance question only makes sense for two or more.
  if (rationaleOn && q("reliance", "").enabled && mods.length > 1) {
    const opts = relianceOptions(mods);
    S.relianceOpts = opts;
    const radios = opts.map((o, i) => {
      const input = el("input", { type: "radio", name: "reliance", value: o.id, id: `rel-${i}`, onchange: () => { S.relianceChoice = o.id; showError(S.ui.err_reliance, ""); persist(); } });
      if (S.relianceChoice === o.id) input.checked = true;
      return el("label", { class: "radio", for: `rel-${i}` }, input, el("span", {}, o.text));
    });
    step.append(el("fieldset", { class: "field", id: "field-reliance" },
      el("legend", {}, q("reliance", "Which inputs did you need to decide?").text),
      el("div", { class: "radio-grid" }, radios), (S.ui.err_reliance = errorSlot("err-reliance"))));
  }

  if (rationaleOn && q("rationale", "").enabled) {
    S.rationaleInput = el("textarea", { id: "rationale", rows: "2", placeholder: "A sentence is enough.", oninput: () => persist() });
    S.rationaleInput.value = S.rationale;
    step.append(el("div", { class: "field" }, el("label", { for: "rationale" }, q("rationale", "Why? (optional)").text), S.rationaleInput, (S.ui.err_rationale = errorSlot("err-rationale"))));
  } else S.rationaleInput = null;

  S.ui.labelPrimary = el("button", { type: "button", class: "primary", onclick: primaryAction, "aria-keyshortcuts": "Control+Enter" },
    S.wantsEdit ? "Next: make an edit →" : "Submit", el("span", { class: "kbd-hint" }, "Ctrl+Enter"));
  step.append(el("div", { class: "actions" }, skipControl(), S.ui.labelPrimary));
  return step;
}

function pickLabel(label) {
  S.label = label;
  S.ui.labels.set(label);
  showError(S.ui.err_label, "");
  if (S.ui.targets) S.ui.targets.disable(label);
  if (S.cf.target === label && !S.task.counterfactual.target_label) {
    S.cf.target = "";
    S.ui.targets.set("");
  }
  persist();
}

function pickTarget(label) {
  if (label === S.label) return;
  S.cf.target = label;
  S.ui.targets.set(label);
  showError(S.ui.err_target, "");
  if (S.live) S.live.retarget();
  persist();
}

function buildEditStep() {
  const { campaign } = S.task;
  const step = el("div", { class: "step", id: "step-edit", role: "tabpanel", "aria-labelledby": "tab-edit", hidden: true });
  if (!S.wantsEdit) return step;
  S.ui.answerSummary = el("p", { class: "answer-summary" });
  step.append(S.ui.answerSummary);

  const assignedMod = S.task.counterfactual.modality;
  const modsByName = Object.fromEntries(campaign.modalities.map((m) => [m.name, m]));
  if (assignedMod) {
    step.append(el("p", { class: "field assigned" }, "Edit the ", el("strong", {}, modalityLabel(modsByName[assignedMod]).toLowerCase()), " (assigned for this task)."));
  } else if (S.editable.length > 1) {
    const radios = S.editable.map((name) => {
      const input = el("input", { type: "radio", name: "cf-modality", value: name, id: `cfm-${name}`, onchange: () => chooseModality(name) });
      if (S.cf.modality === name) input.checked = true;
      return el("label", { class: "seg", for: `cfm-${name}` }, input, el("span", {}, modalityLabel(modsByName[name])));
    });
    step.append(el("fieldset", { class: "field", id: "field-modality" },
      el("legend", {}, "Which input will you change?"),
      el("div", { class: "segmented" }, radios), (S.ui.err_modality = errorSlot("err-modality"))));
  }

  S.ui.targets = labelButtons({ labels: campaign.label_space, name: "Answer after your edit", onPick: pickTarget, disabled: (l) => l === S.label || !!S.task.counterfactual.target_label });
  S.ui.targets.set(S.cf.target);
  S.ui.targets.disable(S.label);
  step.append(el("fieldset", { class: "field", id: "field-target" },
    el("legend", {}, S.task.counterfactual.target_label ? "Answer your edit must lead to (assigned)" : "Answer after your edit"),
    S.ui.targets.node, (S.ui.err_target = errorSlot("err-target"))));

  S.ui.live = el("section", { class: "live", id: "live-panel", "aria-label": "Live model feedback" });
  if (campaign.feedback !== "hidden" && preview) {
    S.live = null;
    step.append(el("p", { class: "muted small preview-live" }, "Live model feedback appears here for annotators: every attached model's prediction on their draft. The preview does not call the models."));
  } else if (campaign.feedback !== "hidden") {
    step.append(S.ui.live);
    S.live = new LivePanel({ root: S.ui.live, assignmentId: S.task.assignment.id, targetLabel: () => S.cf.target });
  } else {
    S.live = null;
    step.append(el("p", { class: "muted small hidden-arm" }, "Write the edit you believe changes the answer. (Model feedback is not shown in this campaign.)"));
  }
  S.ui.editPrimary = el("button", { type: "button", class: "primary", onclick: primaryAction, "aria-keyshortcuts": "Control+Enter" }, "Submit", el("span", { class: "kbd-hint" }, "Ctrl+Enter"));
  S.ui.err_submit = errorSlot("err-submit");
  step.append(S.ui.err_submit, el("div", { class: "actions" },
    el("button", { type: "button", class: "secondary", onclick: () => goStep("label") }, "← Back"),
    skipControl(), S.ui.editPrimary));
  return step;
}

function skipControl() {
  return el("button", { type: "button", class: "secondary skip-btn", onclick: openSkip }, "Skip…");
}

// ---------------------------------------------------------------------------------------
function goStep(step) {
  if (step === "edit" && !S.wantsEdit) return;
  S.step = step;
  const ws = app.querySelector(".ws");
  ws.dataset.step = step;
  document.getElementById("step-label").hidden = step !== "label";
  document.getElementById("step-edit").hidden = step !== "edit";
  if (S.ui.tabLabel) {
    S.ui.tabLabel.setAttribute("aria-selected", String(step === "label"));
    S.ui.tabEdit.setAttribute("aria-selected", String(step === "edit"));
  }
  if (S.ui.evidenceBox) S.ui.evidenceBox.hidden = step !== "label";
  if (step === "edit") {
    S.ui.answerSummary.replaceChildren("Your answer: ", el("strong", {}, S.label ? humanName(S.label) : "—"),
      " · ", el("button", { type: "button", class: "linklike", onclick: () => goStep("label") }, "change"));
    S.ui.targets.disable(S.label);
    if (S.cf.modality) showEditor(S.cf.modality);
    else showEditorPrompt();
  } else {
    restoreViews();
  }
  persist();
}

function restoreViews() {
  for (const [name, n] of Object.entries(S.ui.modalityNodes)) {
    n.section.classList.remove("editing");
    if (n.body.firstChild !== n.view) n.body.replaceChildren(n.view);
  }
}

function showEditorPrompt() {
  restoreViews();
}

function chooseModality(name) {
  S.cf.modality = name;
  showError(S.ui.err_modality, "");
  showEditor(name);
  persist();
}

async function showEditor(name) {
  const st = S; // the task this call belongs to: a slow image load must not leak into the next
  restoreViews();
  const mod = S.task.campaign.modalities.find((m) => m.name === name);
  const n = S.ui.modalityNodes[name];
  if (!mod || !n) return;
  n.section.classList.add("editing");
  const budget = (S.task.campaign.edit_budgets || {})[name];
  let ed = S.editors[name];
  if (!ed) {
    const original = S.task.example.values[name];
    const saved = S.cf.values[name];
    const common = { budget, label: modalityLabel(mod), onChange: () => {}, onCommit: () => editChanged(name) };
    if (mod.kind === "text") ed = { kind: "text", editor: new TextEditor({ ...common, original, initial: saved }) };
    else if (mod.kind === "tabular") ed = { kind: "tabular", editor: new TabularEditor({ ...common, original, initial: saved }) };
    else if (mod.kind === "image") {
      n.body.replaceChildren(el("p", { class: "muted" }, "Loading the image editor…"));
      const { bitmap, width, height } = await loadBitmap(original.url);
      if (S !== st) return;
      ed = { kind: "image", editor: new ImageEditor({ ...common, bitmap, width, height }) };
      if (saved) await ed.editor.restoreDataUrl(saved);
      if (S !== st) return;
    }
    if (!S.editors[name]) S.editors[name] = ed;
    ed = S.editors[name];
  }
  if (S !== st || S.cf.modality !== name || S.step !== "edit") return; // the annotator moved on
  S.ui.err_editor = S.ui.err_editor || errorSlot("err-editor");
  n.body.replaceChildren(ed.editor.node, S.ui.err_editor);
  if (ed.editor.isChanged()) scheduleScore(name);
}

function editChanged(name) {
  showError(S.ui.err_editor, "");
  scheduleScore(name);
  persist();
}

function scheduleScore(name) {
  if (!S.live) return;
  S.live.schedule(() => {
    const ed = S.editors[name];
    if (!ed || S.cf.modality !== name) return null;
    if (ed.kind === "image") return { modality: name, image: ed.editor.toPNG() };
    return { modality: name, value: ed.editor.value() };
  });
}

// ---------------------------------------------------------------------------------------
function primaryAction() {
  if (!S) return;
  if (S.step === "label" && S.wantsEdit) {
    if (!S.label) {
      showError(S.ui.err_label, "Choose an answer first.");
      S.ui.labels.buttons[0].focus();
      return;
    }
    goStep("edit");
    const first = document.querySelector("#step-edit input[name=cf-modality]:checked, #step-edit input[name=cf-modality]") || (S.cf.modality ? null : null);
    if (first && !S.cf.modality) first.focus();
    else if (S.editors[S.cf.modality] && S.editors[S.cf.modality].kind === "text") S.editors[S.cf.modality].editor.input.focus();
    return;
  }
  submit();
}

function clearErrors() {
  for (const k of ["label", "confidence", "reliance", "evidence", "rationale", "target", "modality", "editor", "submit"]) showError(S.ui[`err_${k}`], "");
}

function placeError(field, message) {
  if (LABEL_STEP_FIELDS.has(field) && S.step !== "label") goStep("label");
  if ((field === "target" || field === "modality" || field === "editor") && S.step !== "edit") goStep("edit");
  const slot = S.ui[`err_${field}`] || S.ui.err_submit || S.ui.err_label;
  showError(slot, message);
  slot.scrollIntoView({ block: "nearest" });
}

function buildBody() {
  const rel = (S.relianceOpts || []).find((o) => o.id === S.relianceChoice);
  const body = {
    idempotency_key: S.key,
    label: S.label,
    confidence: S.confidence,
    rationale: S.rationaleInput ? S.rationaleInput.value : "",
    reliance: rel ? rel.reliance : "",
    reliance_modality: rel ? rel.modality : "",
    evidence: currentEvidence(),
    time_spent_ms: Math.round(S.timeMs),
    counterfactual: null,
  };
  if (S.wantsEdit && S.cf.modality) {
    const ed = S.editors[S.cf.modality];
    const cf = { modality: S.cf.modality, target_label: S.cf.target };
    if (ed && ed.kind === "image") {
      cf.image = ed.editor.toPNG();
      cf.mask = ed.editor.maskPNG();
    } else if (ed) cf.value = ed.editor.value();
    else if (S.cf.values[S.cf.modality] !== undefined) {
      const v = S.cf.values[S.cf.modality];
      if (typeof v === "string" && v.startsWith("data:image/")) cf.image = v; else cf.value = v;
    }
    body.counterfactual = cf;
  }
  return body;
}

async function submit() {
  if (S.submitting) return S.submitting; // a double click stores one submission
  clearErrors();
  // Convenience checks only; the server enforces every rule (docs/architecture.md "Counterfactual protocol").
  if (!S.label) return placeError("label", "Choose an answer first.");
  if (S.wantsEdit) {
    if (!S.cf.modality) return placeError("modality", "Choose which input you will change.");
    if (!S.cf.target) return placeError("target", "Choose the answer your edit should lead to.");
    const ed = S.editors[S.cf.modality];
    if (!ed && S.cf.values[S.cf.modality] === undefined) return placeError("editor", "Make your edit first.");
    if (ed && !ed.editor.isChanged()) return placeError("editor", "Your edit does not change anything yet.");
  }
  tick();
  const body = buildBody();
  if (preview) {
    banner(topBanner, "Preview: an annotator's answer would be submitted now and the next task shown. Nothing was stored.", { kind: "info" });
    toast("Preview: nothing was submitted.");
    return;
  }
  const buttons = [S.ui.labelPrimary, S.ui.editPrimary].filter(Boolean);
  buttons.forEach((b) => { b.disabled = true; b.dataset.busy = "1"; });
  const assignmentId = S.task.assignment.id;
  S.submitting = (async () => {
    let result = null;
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        result = await api("POST", `assignments/${assignmentId}/submit/`, body);
        break;
      } catch (err) {
        // A lost connection may have stored the submission: retrying with the same key is safe.
        if (err.isNetwork && attempt < 2) { await new Promise((r) => setTimeout(r, 800 * (attempt + 1))); continue; }
        throw err;
      }
    }
    return result;
  })();
  try {
    const result = await S.submitting;
    S.done = true;
    S.drafts.close();
    const edit = result && result.edit;
    toast(edit ? "Submitted. Your edit goes to validators next." : "Submitted.");
    await loadTask();
  } catch (err) {
    S.submitting = null;
    buttons.forEach((b) => { b.disabled = false; delete b.dataset.busy; });
    persist();
    S.drafts.flush();
    if (err.code === "not_authenticated") {
      banner(topBanner, err.message, { kind: "warn", actions: [signInLink()] });
      return;
    }
    const field = fieldForCode(err.code);
    if (field) placeError(field, err.message);
    else if (err.code === "already_submitted" || err.code === "lease_expired_no_room") {
      banner(topBanner, err.message, { kind: "warn", actions: [el("button", { type: "button", class: "linklike", onclick: () => { S.done = true; S.drafts.close(); loadTask(); } }, "Go to the next task")] });
    } else placeError(S.step === "edit" ? "submit" : "label", err.message);
  } finally {
    if (S && S.done) S.submitting = null;
  }
}

// ---------------------------------------------------------------------------------------
function openSkip() {
  const reasons = ["The image is unreadable", "The text makes no sense", "I cannot answer this", "Other"];
  const other = el("input", { type: "text", id: "skip-other", placeholder: "Say why (optional)" });
  const dlg = el("dialog", { class: "skip-dialog", "aria-labelledby": "skip-title" });
  const form = el("form", { method: "dialog" },
    el("h2", { id: "skip-title" }, "Skip this task"),
    el("p", { class: "muted" }, "It goes back to the pool for someone else; you will not see it again."),
    el("fieldset", {}, el("legend", { class: "sr-only" }, "Reason"),
      reasons.map((r, i) => el("label", { class: "radio" }, el("input", { type: "radio", name: "skip-reason", value: r, checked: i === 0 }), el("span", {}, r)))),
    el("label", { for: "skip-other" }, "Details"), other,
    (S.ui.err_skip = errorSlot("err-skip")),
    el("div", { class: "actions" },
      el("button", { type: "button", class: "secondary", onclick: () => dlg.close() }, "Cancel"),
      el("button", { type: "submit", class: "primary", value: "skip" }, "Skip task")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const choice = form.querySelector("input[name=skip-reason]:checked").value;
    const reason = [choice, other.value.trim()].filter(Boolean).join(": ");
    if (preview) {
      dlg.close();
      toast("Preview: nothing was skipped.");
      return;
    }
    try {
      await api("POST", `assignments/${S.task.assignment.id}/skip/`, { reason });
      dlg.close();
      S.done = true;
      S.drafts.close();
      toast("Skipped.");
      loadTask();
    } catch (err) {
      showError(S.ui.err_skip, err.message);
    }
  });
  dlg.append(form);
  dlg.addEventListener("close", () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
}

// ---------------------------------------------------------------------------------------
document.addEventListener("keydown", (e) => {
  if (e.defaultPrevented || !S || S.done) return;
  if (document.querySelector("dialog[open]") && e.key !== "?") return;
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
    e.preventDefault();
    primaryAction();
    return;
  }
  if (e.key === "Escape" && isTypingTarget(e.target)) {
    e.target.blur();
    return;
  }
  if (isTypingTarget(e.target)) return;
  const ed = S.step === "edit" && S.editors[S.cf.modality];
  if ((e.ctrlKey || e.metaKey) && ed && ed.kind === "image" && (e.key === "z" || e.key === "Z" || e.key === "y")) {
    e.preventDefault();
    if (e.key === "y" || e.shiftKey) ed.editor.redo(); else ed.editor.undo();
    return;
  }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === "?") {
    e.preventDefault();
    help.toggle();
    return;
  }
  if (e.shiftKey && /^Digit[1-5]$/.test(e.code) && S.step === "label" && S.ui.conf) {
    e.preventDefault();
    const n = Number(e.code.slice(5));
    const input = document.getElementById(`conf-${n}`);
    input.checked = true;
    input.dispatchEvent(new Event("change"));
    return;
  }
  if (e.shiftKey) return;
  const i = labelIndexForKey(e.key);
  const labels = S.task.campaign.label_space;
  if (i >= 0 && i < labels.length) {
    e.preventDefault();
    if (S.step === "label") pickLabel(labels[i]);
    else if (!S.task.counterfactual.target_label) pickTarget(labels[i]);
  }
});

document.addEventListener("visibilitychange", () => {
  if (!S) return;
  tick();
  if (document.visibilityState === "hidden" && !S.done) {
    S.drafts.save(collectDraft());
    S.drafts.flush({ keepalive: true });
  }
});
window.addEventListener("pagehide", () => {
  if (S && !S.done) { S.drafts.save(collectDraft()); S.drafts.flush({ keepalive: true }); }
});

// Exposed for browser tests and the benchmark (read-only inspection).
document.getElementById("help-btn")?.addEventListener("click", () => help.toggle());

window.__counterpoint = { get state() { return S; } };

loadTask();
