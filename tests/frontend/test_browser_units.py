"""The pages' pure ES modules, run in real Chromium and checked against the server's own
definitions (annotation/minimality.py, itself tested against rapidfuzz): the live meters must
show exactly the figures the server will store."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from annotation.minimality import (
    edit_changed,
    image_minimality_arrays,
    text_minimality,
    token_key,
    tokenize,
)

pytestmark = [pytest.mark.browser]

PAIRS = [
    ("what color is the circle?", "what shape is the circle?"),
    ("is there a red shape?", "is there a blue shape?"),
    ("is there a red shape?", "is there shape"),
    ("is there a red shape?", "is there a red shape?"),
    ("", "something new"),
    ("a b c", ""),
    ("does the image contain a circle?", "does the image not contain a circle ?"),
    ("don't stop—ever!", "do not stop, ever..."),
    ("naïve café  déjà-vu", "naive cafe deja vu"),
    ("数字 123 and 4.5", "数字 124 and 4,5"),
    ("tab\tand\nnewline", "tab and newline"),
    ("under_score x_1", "under score x 1"),
    ("emoji 🙂 ok", "emoji 🙃 ok"),
    # No-op edits (issue 7 B4): case and spacing alone change nothing, here and on the server.
    ("is the shape red?", "Is the shape red?"),
    ("is the shape red?", "is the shape red? "),
    ("is the shape red?", "IS THE SHAPE   RED ?"),
    ("Straße ÉTÉ", "straße été"),
    ("is the shape red?", "Is the circle red?"),
]


def random_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    vocab = "what is the color shape of circle triangle rectangle red blue no yes ? , . !".split()
    out = []
    for _ in range(n):
        a = [rng.choice(vocab) for _ in range(rng.randint(0, 10))]
        b = list(a)
        for _ in range(rng.randint(0, 4)):
            op = rng.randrange(3)
            if op == 0 and b:
                b.pop(rng.randrange(len(b)))
            elif op == 1:
                b.insert(rng.randint(0, len(b)), rng.choice(vocab))
            elif b:
                b[rng.randrange(len(b))] = rng.choice(vocab)
        out.append((" ".join(a), rng.choice(["", " ", "  "]).join(b) if b else ""))
    return out


@pytest.fixture
def modules(page: Any) -> Any:
    page.goto("/accounts/login/")  # any same-origin page; the modules are static files
    return page


def test_text_figures_equal_the_servers(modules: Any) -> None:
    pairs = PAIRS + random_pairs(200)
    got = modules.evaluate(
        """async (pairs) => {
          const m = await import('/static/frontend/js/textdiff.js');
          return pairs.map(([a, b]) => ({
            tokens: m.tokenize(a).map(t => t.text),
            fig: m.textMinimality(a, b),
            segs: m.diffSegments(a, b),
          }));
        }""",
        pairs,
    )
    for (a, b), js in zip(pairs, got, strict=True):
        server = text_minimality(a, b)
        assert js["tokens"] == tokenize(a), (a, b)
        assert js["fig"]["token_distance"] == server["token_distance"], (a, b)
        assert js["fig"]["tokens"] == server["tokens"], (a, b)
        assert js["fig"]["minimality"] == pytest.approx(server["minimality"]), (a, b)
        assert js["fig"]["char_distance"] == server["char_distance"], (a, b)
        # The rendered diff holds both texts: kept + removed tokens are the original's,
        # kept + added tokens the edit's, in order.
        segs = js["segs"]
        before = "".join(s["text"] if s["kind"] != "ins" else " " for s in segs)
        after = "".join(s["text"] if s["kind"] != "del" else " " for s in segs)
        # Kept tokens show the edited spelling: equal up to token_key (case, NFC).
        assert [token_key(t) for t in tokenize(before)] == [token_key(t) for t in tokenize(a)], (
            a,
            b,
            segs,
        )
        assert tokenize(after) == tokenize(b), (a, b, segs)
        ndel = sum(len(tokenize(s["text"])) for s in segs if s["kind"] == "del")
        nins = sum(len(tokenize(s["text"])) for s in segs if s["kind"] == "ins")
        # Each change is a substitution (one del + one ins) or an insert or a delete.
        assert max(ndel, nins) <= server["token_distance"] <= ndel + nins, (a, b, segs)


def test_changed_pixels_and_mask_equal_the_servers(modules: Any) -> None:
    rng = np.random.default_rng(0)
    cases = []
    for h, w, n in [(64, 64, 0), (64, 64, 1), (64, 64, 37), (17, 29, 100), (8, 8, 64)]:
        orig = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        edit = orig.copy()
        idx = rng.choice(h * w, size=n, replace=False)
        for i in idx:
            ch = rng.integers(0, 3)
            edit[i // w, i % w, ch] ^= np.uint8(rng.integers(1, 256))  # one channel differs
        cases.append((orig, edit))

    def rgba(a: np.ndarray) -> list[int]:
        return (
            np.concatenate([a, np.full((*a.shape[:2], 1), 255, np.uint8)], axis=2).ravel().tolist()
        )

    got = modules.evaluate(
        """async (cases) => {
          const io = await import('/static/frontend/js/imageops.js');
          return cases.map(([o, e, w, h]) => {
            const a = new Uint8ClampedArray(o), b = new Uint8ClampedArray(e);
            const r = io.changedPixels(a, b, w, h);
            const mask = io.maskData(a, b);
            let white = 0;
            for (let p = 0; p < mask.length; p += 4) if (mask[p] === 255) white++;
            return { ...r, white };
          });
        }""",
        [(rgba(o), rgba(e), o.shape[1], o.shape[0]) for o, e in cases],
    )
    for (orig, edit), js in zip(cases, got, strict=True):
        server = image_minimality_arrays(orig, edit)
        assert js["count"] == server["changed_pixels"]
        assert js["fraction"] == pytest.approx(server["pixel_fraction"])
        assert js["white"] == server["changed_pixels"]
        if js["count"]:
            assert [js["bbox"][k] for k in ("x", "y", "w", "h")] == list(server["bbox"])
        else:
            assert js["bbox"] is None


def test_brush_and_box_geometry(modules: Any) -> None:
    got = modules.evaluate(
        """async () => {
          const io = await import('/static/frontend/js/imageops.js');
          const sizes = [1, 2, 3, 4, 5, 8].map(s => io.brushPixels(10, 10, s, 64, 64).length / 2);
          const edge = io.brushPixels(0, 0, 5, 64, 64).length / 2;
          const rect = io.rectFromCorners(50, 40, 10, 70, 64, 64);
          const data = new Uint8ClampedArray(64 * 64 * 4).fill(255);
          io.fillRect(data, 64, rect, [0, 0, 0]);
          const orig = new Uint8ClampedArray(64 * 64 * 4).fill(255);
          return { sizes, edge, rect, filled: io.changedPixels(orig, data, 64, 64).count,
                   bg: io.mostCommonColour(data), keys: [0, 8, 9, 10, 12, 35, 36].map(String) };
        }"""
    )
    # A 1-2 px brush is a square; from 3 px a disc inside the size x size square.
    assert got["sizes"][:2] == [1, 4]
    assert all(n <= s * s for n, s in zip(got["sizes"], [1, 2, 3, 4, 5, 8], strict=True))
    assert got["sizes"] == sorted(got["sizes"])
    assert got["edge"] < got["sizes"][4]  # clipped at the image border
    assert got["rect"] == {"x": 10, "y": 40, "w": 41, "h": 24}
    assert got["filled"] == 41 * 24
    assert got["bg"] == [255, 255, 255]


def test_label_shortcuts(modules: Any) -> None:
    got = modules.evaluate(
        """async () => {
          const u = await import('/static/frontend/js/util.js');
          const keys = Array.from({ length: 37 }, (_, i) => u.labelKey(i));
          return { keys, back: keys.map(k => k ? u.labelIndexForKey(k) : -1),
                   uuid: u.uuid4(), other: u.uuid4() };
        }"""
    )
    assert got["keys"][:13] == ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "a", "b", "c"]
    assert got["keys"][35] == "z" and got["keys"][36] == ""
    assert got["back"][:36] == list(range(36))
    import uuid

    assert uuid.UUID(got["uuid"]).version == 4 and got["uuid"] != got["other"]


def test_what_counts_as_a_text_change_is_the_servers(modules: Any) -> None:
    """textdiff.js `textChanged` (the editor's isChanged, which gates submit) is the server's
    edit_changed, so the meter can never say "0 words changed" of an edit the server keeps,
    nor let through one it refuses."""
    pairs = PAIRS + random_pairs(100, seed=7)
    pairs += [(a, b.upper()) for a, b in pairs[:40]] + [(a, a + " ") for a, _ in pairs[:40]]
    got = modules.evaluate(
        """async (pairs) => {
          const m = await import('/static/frontend/js/textdiff.js');
          return pairs.map(([a, b]) => [m.textChanged(a, b), m.textMinimality(a, b).token_distance]);
        }""",
        pairs,
    )
    for (a, b), (changed, distance) in zip(pairs, got, strict=True):
        server = text_minimality(a, b)
        assert changed == edit_changed("text", server), (a, b)
        assert distance == server["token_distance"], (a, b)
        assert changed == (distance > 0), (a, b)


def test_live_panel_separates_reaching_the_target_from_other_changes(modules: Any) -> None:
    """circle → rectangle while the target is triangle is "changed, not to target", never
    "reaches target"; the summary counts the three outcomes apart."""
    got = modules.evaluate(
        """async () => {
          const { LivePanel } = await import('/static/frontend/js/live_panel.js');
          const root = document.createElement('div');
          document.body.append(root);
          const panel = new LivePanel({ root, assignmentId: 1, targetLabel: () => 'triangle' });
          const probs = (top) => ({ circle: 0.1, rectangle: 0.1, triangle: 0.1, [top]: 0.7 });
          const model = (id, orig, draft, outcome) => ({
            id, name: 'm' + id, version: '1', status: 'ok',
            original_predicted_label: orig, predicted_label: draft,
            original_probabilities: probs(orig), probabilities: probs(draft),
            flipped: orig !== draft, outcome,
          });
          panel.render({ feedback: 'shown', target_label: 'triangle', models: [
            model(1, 'circle', 'rectangle', 'changed_not_target'),
            model(2, 'circle', 'triangle', 'reaches_target'),
            model(3, 'circle', 'circle', 'unchanged'),
            { id: 4, name: 'm4', status: 'unavailable' },
          ] }, 1);
          const rows = [...root.querySelectorAll('.live-model[data-status=ok]')].map((r) => ({
            outcome: r.dataset.outcome, flipped: r.dataset.flipped,
            badge: r.querySelector('.flip-badge').textContent,
          }));
          const summary = root.querySelector('.live-summary').textContent;
          root.remove();
          return { rows, summary };
        }"""
    )
    assert got["rows"] == [
        {"outcome": "changed_not_target", "flipped": "1", "badge": "⇄ changed, not to target"},
        {"outcome": "reaches_target", "flipped": "1", "badge": "✓ reaches target"},
        {"outcome": "unchanged", "flipped": "0", "badge": "same"},
    ]
    assert got["summary"] == (
        "1 of 3 models reach “triangle” · 1 changed to another answer · 1 unchanged · 1 unavailable."
    )
