// Word-level edit size and diff for the text editor (docs/architecture.md "Counterfactual protocol"). The server recomputes the
// same figures on submit; this copy only makes the meter live. Keep TOKEN_RE and tokenKey in
// step with the server's tokenizer and token_key (annotation/minimality.py): tokens are
// compared normalised (NFC, lower case), so a case-only or spacing-only change is no change,
// and the server refuses it as edit_no_change.

// Tokens: runs of word characters, and every other non-space character on its own, so
// "circle?" is ["circle", "?"]: the server's `\w+|[^\w\s]` (annotation/minimality.py).
export const TOKEN_RE = /[\p{L}\p{N}_]+|[^\s\p{L}\p{N}_]/gu;

/** [{text, start, end}] with character offsets into `text`. */
export function tokenize(text) {
  const out = [];
  for (const m of String(text).matchAll(TOKEN_RE)) {
    out.push({ text: m[0], start: m.index, end: m.index + m[0].length });
  }
  return out;
}

/** The form in which tokens are compared (the server's token_key). */
export function tokenKey(token) {
  return String(token).normalize("NFC").toLowerCase();
}

/** Normalised token keys of `text`. */
export function tokenKeys(text) {
  return tokenize(text).map((t) => tokenKey(t.text));
}

/** Whether `edited` changes `original` at all: some normalised token differs (the server's
 * minimality.edit_changed for text). */
export function textChanged(original, edited) {
  const a = tokenKeys(original);
  const b = tokenKeys(edited);
  return a.length !== b.length || a.some((t, i) => t !== b[i]);
}

/** Levenshtein distance between two sequences (strings or arrays) with unit costs. */
export function levenshtein(a, b) {
  const n = a.length;
  const m = b.length;
  if (n === 0) return m;
  if (m === 0) return n;
  let prev = new Array(m + 1);
  let cur = new Array(m + 1);
  for (let j = 0; j <= m; j++) prev[j] = j;
  for (let i = 1; i <= n; i++) {
    cur[0] = i;
    const ai = a[i - 1];
    for (let j = 1; j <= m; j++) {
      const cost = ai === b[j - 1] ? 0 : 1;
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[m];
}

/** Alignment of token sequences a → b as ops: {op: "equal"|"delete"|"insert"|"replace", a?, b?}.
 * Ties prefer replace over delete+insert, so one changed word reads as one change. */
export function diffTokens(a, b) {
  const n = a.length;
  const m = b.length;
  const d = Array.from({ length: n + 1 }, () => new Int32Array(m + 1));
  for (let i = 0; i <= n; i++) d[i][0] = i;
  for (let j = 0; j <= m; j++) d[0][j] = j;
  for (let i = 1; i <= n; i++) {
    for (let j = 1; j <= m; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
    }
  }
  const ops = [];
  let i = n;
  let j = m;
  while (i > 0 || j > 0) {
    if (i > 0 && j > 0 && d[i][j] === d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1)) {
      ops.push({ op: a[i - 1] === b[j - 1] ? "equal" : "replace", a: i - 1, b: j - 1 });
      i--; j--;
    } else if (i > 0 && d[i][j] === d[i - 1][j] + 1) {
      ops.push({ op: "delete", a: i - 1 });
      i--;
    } else {
      ops.push({ op: "insert", b: j - 1 });
      j--;
    }
  }
  return ops.reverse();
}

/** docs/architecture.md "Counterfactual protocol" text figures: token distance / original token count, and the character distance. */
export function textMinimality(original, edited) {
  const a = tokenKeys(original);
  const b = tokenKeys(edited);
  const distance = levenshtein(a, b);
  return {
    token_distance: distance,
    tokens: a.length,
    // An empty original counts as one token, as on the server, so the figure stays finite.
    minimality: distance / Math.max(a.length, 1),
    // Code points, not UTF-16 units, like Python's str.
    char_distance: levenshtein(Array.from(String(original)), Array.from(String(edited))),
  };
}

/** Segments for rendering the diff inline: [{kind: "same"|"del"|"ins", text}]. Spacing
 * follows the texts: a kept or added token gets the space the edited text has before it, a
 * removed one the space the original had, so the line reads naturally. */
export function diffSegments(original, edited) {
  original = String(original);
  edited = String(edited);
  const ta = tokenize(original);
  const tb = tokenize(edited);
  const ops = diffTokens(ta.map((t) => tokenKey(t.text)), tb.map((t) => tokenKey(t.text)));
  const spaced = (text, tok) => tok.start > 0 && /\s/u.test(text[tok.start - 1]);
  const segs = [];
  const push = (kind, text) => {
    const last = segs[segs.length - 1];
    if (last && last.kind === kind) last.text += text;
    else segs.push({ kind, text });
  };
  for (const o of ops) {
    if (o.op === "delete") {
      const tok = ta[o.a];
      if (segs.length && spaced(original, tok)) push("same", " ");
      push("del", tok.text);
      continue;
    }
    const tok = tb[o.b];
    const space = segs.length && (spaced(edited, tok) || segs[segs.length - 1].kind === "del") ? " " : "";
    if (o.op === "equal") {
      push("same", space + tok.text);
    } else if (o.op === "insert") {
      if (space) push("same", space);
      push("ins", tok.text);
    } else {
      if (space || (segs.length && spaced(original, ta[o.a]))) push("same", " ");
      push("del", ta[o.a].text);
      push("same", " ");
      push("ins", tok.text);
    }
  }
  return segs;
}
