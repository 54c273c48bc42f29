// Pieces shared by the annotator workspace and the validator page.
import { el, clear, labelKey, humanName } from "./util.js";

/** A radio-like group of label buttons with key hints. onPick(label). */
export function labelButtons({ labels, name, onPick, disabled = () => false }) {
  const group = el("div", { class: "label-grid", role: "radiogroup", "aria-label": name });
  const buttons = labels.map((label, i) => {
    const key = labelKey(i);
    return el("button", {
      type: "button",
      class: "label-btn",
      role: "radio",
      "aria-checked": "false",
      dataset: { label },
      "aria-keyshortcuts": key || undefined,
      onclick: () => { if (!disabled(label)) onPick(label); },
    }, key ? el("kbd", { "aria-hidden": "true" }, key) : "", el("span", { class: "label-text" }, humanName(label)));
  });
  group.append(...buttons);
  // Arrow keys move between buttons (roving focus, like a radio group).
  group.addEventListener("keydown", (e) => {
    const dirs = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
    if (!(e.key in dirs)) return;
    const i = buttons.indexOf(document.activeElement);
    if (i < 0) return;
    e.preventDefault();
    const cols = getComputedStyle(group).gridTemplateColumns.split(" ").length || 1;
    const step = e.key === "ArrowDown" || e.key === "ArrowUp" ? cols * dirs[e.key] : dirs[e.key];
    buttons[Math.max(0, Math.min(buttons.length - 1, i + step))].focus();
  });
  return {
    node: group,
    buttons,
    set(label) {
      for (const b of buttons) {
        const on = b.dataset.label === label;
        b.setAttribute("aria-checked", String(on));
        b.classList.toggle("chosen", on);
        b.tabIndex = on || (!label && b === buttons[0]) ? 0 : -1;
      }
      if (!label && buttons[0]) buttons[0].tabIndex = 0;
    },
    disable(label) {
      for (const b of buttons) {
        const off = b.dataset.label === label;
        b.disabled = off;
        b.title = off ? "This is your answer for the original; the edit must change it." : "";
      }
    },
  };
}

/** A field error slot next to a control. */
export function errorSlot(id) {
  return el("p", { class: "field-error", id, role: "alert", hidden: true });
}

export function showError(slot, message) {
  if (!slot) return;
  slot.textContent = message || "";
  slot.hidden = !message;
}

export function toast(message, kind = "ok") {
  let host = document.getElementById("toasts");
  if (!host) {
    host = el("div", { id: "toasts", class: "toasts", "aria-live": "polite" });
    document.body.append(host);
  }
  const t = el("div", { class: `toast ${kind}` }, message);
  host.append(t);
  setTimeout(() => t.remove(), 2600);
}

export function banner(node, message, { kind = "info", actions = [] } = {}) {
  clear(node);
  if (!message) { node.hidden = true; return; }
  node.hidden = false;
  node.className = `banner ${kind}`;
  node.append(el("span", {}, message), ...actions);
}

export function signInLink() {
  const next = encodeURIComponent(location.pathname + location.search);
  return el("a", { href: `/accounts/login/?next=${next}`, class: "button-link" }, "Sign in again");
}

const CONNECTORS = new Set(["+", "…", ",", "/", "or"]);

/** ["Ctrl", "+", "Enter"] → <kbd>Ctrl</kbd> + <kbd>Enter</kbd> (connectors stay text). */
function keysNode(parts) {
  return parts.map((p) => (CONNECTORS.has(p) ? ` ${p} ` : el("kbd", {}, p)));
}

/** A shortcut help dialog toggled with "?". rows: [[["Ctrl", "+", "Enter"], "what it does"], ...] */
export function helpDialog(rows) {
  const dlg = el("dialog", { class: "help", "aria-labelledby": "help-title" },
    el("h2", { id: "help-title" }, "Keyboard shortcuts"),
    el("table", {}, el("tbody", {}, rows.map(([k, what]) => el("tr", {}, el("th", { scope: "row" }, keysNode(k)), el("td", {}, what))))),
    el("form", { method: "dialog", class: "actions" }, el("button", { class: "primary", type: "submit" }, "Close")));
  document.body.append(dlg);
  return {
    toggle() { if (dlg.open) dlg.close(); else dlg.showModal(); },
    get open() { return dlg.open; },
  };
}
