// Text counterfactual editor: the edited text, a live word-level diff against the original
// and the edit-size meter (docs/architecture.md "Counterfactual protocol": word Levenshtein / original token count).
import { el, clear } from "./util.js";
import { diffSegments, textChanged, textMinimality } from "./textdiff.js";
import { renderMeter } from "./meter.js";

export class TextEditor {
  constructor({ original, budget, label, initial, onChange, onCommit }) {
    this.original = String(original ?? "");
    this.budget = budget;
    this.onChange = onChange || (() => {});
    this.onCommit = onCommit || (() => {});
    const long = this.original.length > 120 || this.original.includes("\n");
    this.input = el(long ? "textarea" : "input", {
      id: "cf-text",
      class: "cf-text",
      spellcheck: "true",
      autocomplete: "off",
      rows: long ? "4" : undefined,
      "aria-describedby": "cf-text-diff cf-text-meter",
    });
    this.input.value = initial ?? this.original;
    this.diff = el("p", { id: "cf-text-diff", class: "diff", "aria-live": "polite" });
    this.meter = el("div", { id: "cf-text-meter", class: "meter" });
    this.node = el("div", { class: "texted" },
      el("div", { class: "texted-original" }, el("span", { class: "muted small" }, "Original: "), el("span", { class: "orig-text" }, this.original)),
      el("label", { for: "cf-text" }, `Your edited ${label.toLowerCase()}`),
      this.input,
      el("div", { class: "texted-row" },
        el("span", { class: "muted small" }, "Changes: "), this.diff,
        el("button", { type: "button", class: "linklike small", onclick: () => this.reset() }, "Reset to original")),
      this.meter);
    this.input.addEventListener("input", () => { this.update(); this.onCommit(); });
    this.update();
  }

  value() {
    return this.input.value;
  }

  setValue(v) {
    this.input.value = v;
    this.update();
  }

  reset() {
    this.setValue(this.original);
    this.onCommit();
    this.input.focus();
  }

  summary() {
    return textMinimality(this.original, this.value());
  }

  /** The server's rule (edit_no_change): case and spacing alone are no change. */
  isChanged() {
    return textChanged(this.original, this.value());
  }

  update() {
    const v = this.value();
    clear(this.diff);
    if (!textChanged(this.original, v)) {
      this.diff.append(el("span", { class: "muted" }, v === this.original ? "none yet" : "none yet (case and spacing do not count)"));
    }
    else {
      for (const s of diffSegments(this.original, v)) {
        if (s.kind === "same") this.diff.append(s.text);
        else if (s.kind === "del") this.diff.append(el("del", { "aria-label": `removed ${s.text}` }, s.text));
        else this.diff.append(el("ins", { "aria-label": `added ${s.text}` }, s.text));
      }
    }
    const m = this.summary();
    renderMeter(this.meter, {
      fraction: m.minimality,
      budget: this.budget,
      label: "Edit size",
      detail: `${m.token_distance} word${m.token_distance === 1 ? "" : "s"} changed of ${m.tokens}`,
    });
    this.onChange(m);
  }
}

/** Tabular editor: one input per feature; changed values highlighted; the meter is the
 * fraction of features changed (docs/architecture.md "Counterfactual protocol"). */
export class TabularEditor {
  constructor({ original, budget, label, initial, onChange, onCommit }) {
    this.original = { ...(original || {}) };
    this.budget = budget;
    this.onChange = onChange || (() => {});
    this.onCommit = onCommit || (() => {});
    this.inputs = {};
    const rows = Object.entries(this.original).map(([k, v], i) => {
      const numeric = typeof v === "number";
      const input = el("input", {
        id: `cf-tab-${i}`,
        type: numeric ? "number" : "text",
        step: numeric ? "any" : undefined,
        dataset: { feature: k },
      });
      const start = initial && k in initial ? initial[k] : v;
      input.value = String(start);
      input.addEventListener("input", () => { this.update(); this.onCommit(); });
      this.inputs[k] = input;
      return el("tr", {}, el("th", { scope: "row" }, el("label", { for: `cf-tab-${i}` }, k)),
        el("td", { class: "orig muted" }, String(v)), el("td", {}, input));
    });
    this.meter = el("div", { class: "meter" });
    this.node = el("div", { class: "tabed" },
      el("table", { class: "tabular editable" },
        el("caption", {}, `Edit the ${label.toLowerCase()} values`),
        el("thead", {}, el("tr", {}, el("th", {}, "feature"), el("th", {}, "original"), el("th", {}, "edited"))),
        el("tbody", {}, rows)),
      this.meter);
    this.update();
  }

  value() {
    const out = {};
    for (const [k, input] of Object.entries(this.inputs)) {
      const orig = this.original[k];
      if (typeof orig === "number") {
        const n = Number(input.value);
        out[k] = input.value.trim() === "" || !Number.isFinite(n) ? input.value : n;
      } else out[k] = input.value;
    }
    return out;
  }

  changedKeys() {
    const v = this.value();
    return Object.keys(this.original).filter((k) => v[k] !== this.original[k] && String(v[k]) !== String(this.original[k]));
  }

  summary() {
    const n = Object.keys(this.original).length;
    const changed = this.changedKeys().length;
    return { changed, features: n, fraction_changed: n ? changed / n : 0 };
  }

  isChanged() {
    return this.changedKeys().length > 0;
  }

  update() {
    const changed = new Set(this.changedKeys());
    for (const [k, input] of Object.entries(this.inputs)) input.closest("tr").classList.toggle("changed", changed.has(k));
    const s = this.summary();
    renderMeter(this.meter, { fraction: s.fraction_changed, budget: this.budget, label: "Features changed", detail: `${s.changed} of ${s.features} features changed` });
    this.onChange(s);
  }
}
