"""The reliance report's arithmetic (models_bridge/analysis/reliance.py) against exact
properties: counts, rates, κ against annotation.agreement.cohen_kappa, seeded intervals and
the disagreement order. Pure: no database."""

from __future__ import annotations

import math

import numpy as np
import pytest

from annotation.agreement import cohen_kappa
from models_bridge.analysis.reliance import (
    MIN_FOR_INTERVAL,
    TIED,
    UNANSWERED,
    RelianceEdit,
    RelianceExample,
    human_category,
    reliance_report,
)

MODS = ("image", "text")


def ex(pk, reliance, changed, *, gold="yes", pred="yes", image="yes", text="yes", score=0.0):  # type: ignore[no-untyped-def]
    return RelianceExample(
        example=pk,
        reliance=reliance,
        emap_changed=changed,
        interaction=score,
        predicted=pred,
        predicted_emap="no" if changed else pred,
        gold=gold,
        ablated={"image": image, "text": text},
    )


def test_human_category_is_the_majority_tie_or_unanswered() -> None:
    assert human_category({"synergy": 2, "equivalence": 1}) == "synergy"
    assert human_category({"synergy": 1, "equivalence": 1}) == TIED
    assert human_category({}) == UNANSWERED
    assert human_category({"synergy": 0}) == UNANSWERED


def test_per_category_rates_are_the_counts() -> None:
    examples = [
        ex(1, {"synergy": 2}, True, image="no"),  # image nulled: wrong
        ex(2, {"synergy": 1}, False, text="no"),
        ex(3, {"synergy": 3}, True),
        ex(4, {"equivalence": 1}, False),
        ex(5, {"equivalence": 1, "synergy": 1}, True),  # tied
        ex(6, {}, False),  # unanswered
    ]
    rep = reliance_report(examples, [], modalities=MODS, resamples=0)
    cats = rep["by_category"]
    assert set(cats) == {"synergy", "equivalence", TIED, UNANSWERED}
    assert sum(c["examples"] for c in cats.values()) == rep["examples"] == 6
    assert rep["answered"] == 5
    syn = cats["synergy"]
    assert syn["examples"] == 3
    assert syn["emap_changed"]["value"] == pytest.approx(2 / 3)
    assert syn["emap_changed"]["numerator"] == 2 and syn["emap_changed"]["denominator"] == 3
    assert syn["ablation"]["image"]["delta"]["value"] == pytest.approx(1 / 3)
    assert syn["ablation"]["text"]["delta"]["value"] == pytest.approx(1 / 3)
    assert syn["ablation"]["image"]["prediction_changed"]["value"] == pytest.approx(1 / 3)
    assert cats["equivalence"]["emap_changed"]["value"] == 0.0
    assert rep["overall"]["emap_changed"]["value"] == pytest.approx(3 / 6)
    assert syn["ablation"]["image"]["delta"]["ci95"] is None  # resamples=0


def test_ablation_delta_counts_only_examples_with_a_gold_label() -> None:
    examples = [ex(1, {"synergy": 1}, False, image="no"), ex(2, {"synergy": 1}, False, gold=None)]
    rep = reliance_report(examples, [], modalities=MODS, resamples=0)
    delta = rep["by_category"]["synergy"]["ablation"]["image"]["delta"]
    assert delta["value"] == 1.0 and delta["denominator"] == 1


def test_edit_flip_rates_per_modality_edited() -> None:
    examples = [ex(1, {"synergy": 1}, True), ex(2, {"equivalence": 1}, False)]
    edits = [
        RelianceEdit(10, 1, "text", "verified", "yes", "no"),  # flips
        RelianceEdit(11, 1, "text", "disputed", "yes", "yes"),
        RelianceEdit(12, 1, "image", "pending", None, None),  # not scored
        RelianceEdit(13, 2, "image", "verified", "yes", "no"),
        RelianceEdit(14, 99, "image", "verified", "yes", "no"),  # not analysed: left out
    ]
    rep = reliance_report(examples, edits, modalities=MODS, resamples=0)
    assert rep["edits"] == 4 and rep["edited_modalities"] == ["image", "text"]
    syn = rep["by_category"]["synergy"]["edits"]
    assert syn["text"]["model_flip_rate"]["value"] == 0.5
    assert syn["text"]["verified_rate"]["value"] == 0.5
    assert syn["image"]["edits"] == 1 and syn["image"]["model_flip_rate"]["value"] is None
    assert rep["by_category"]["equivalence"]["edits"]["image"]["model_flip_rate"]["value"] == 1.0
    assert rep["overall"]["edits"]["image"]["model_flip_rate"]["denominator"] == 1


def random_examples(n: int, seed: int) -> list[RelianceExample]:
    rng = np.random.default_rng(seed)
    cats = ["synergy", "equivalence", "specialization", "complementarity", "transfer"]
    out = []
    for i in range(n):
        votes: dict[str, int] = {}
        for _ in range(int(rng.integers(0, 4))):
            c = cats[int(rng.integers(0, len(cats)))]
            votes[c] = votes.get(c, 0) + 1
        out.append(ex(i, votes, bool(rng.integers(0, 2)), score=float(rng.random())))
    return out


def test_kappa_is_cohen_kappa_of_the_two_yes_no_vectors() -> None:
    examples = random_examples(80, 1)
    rep = reliance_report(examples, [], modalities=MODS, resamples=200, seed=3)
    humans, model = [], []
    for e in examples:
        c = human_category(e.reliance)
        if c in (TIED, UNANSWERED):
            continue
        humans.append(c == "synergy")
        model.append(e.emap_changed)
    k = rep["kappa"]
    assert k["n"] == len(humans)
    assert k["value"] == pytest.approx(cohen_kappa(humans, model), abs=1e-12)
    t = k["table"]
    assert sum(t.values()) == k["n"]
    assert t["both_yes"] == sum(1 for h, m in zip(humans, model, strict=True) if h and m)
    lo, hi = k["ci95"]
    assert lo <= k["value"] <= hi


def test_perfect_agreement_is_kappa_one() -> None:
    examples = [ex(i, {"synergy" if i % 2 else "equivalence": 2}, bool(i % 2)) for i in range(10)]
    rep = reliance_report(examples, [], modalities=MODS, resamples=50)
    assert rep["kappa"]["value"] == pytest.approx(1.0)
    assert rep["kappa"]["agreement"] == 1.0
    assert rep["disagreements"] == []


def test_intervals_are_seeded_contain_the_value_and_need_counts() -> None:
    examples = random_examples(60, 2)
    one = reliance_report(examples, [], modalities=MODS, resamples=300, seed=7)
    assert one == reliance_report(examples, [], modalities=MODS, resamples=300, seed=7)
    other = reliance_report(examples, [], modalities=MODS, resamples=300, seed=8)
    assert other["overall"]["emap_changed"]["ci95"] != one["overall"]["emap_changed"]["ci95"]
    for group in one["by_category"].values():
        fig = group["emap_changed"]
        if fig["denominator"] >= MIN_FOR_INTERVAL:
            lo, hi = fig["ci95"]
            assert lo <= fig["value"] <= hi
        else:
            assert fig["ci95"] is None
    # Input order does not matter.
    assert reliance_report(examples[::-1], [], modalities=MODS, resamples=300, seed=7) == one


def test_disagreements_biggest_first_with_what_each_said() -> None:
    examples = [
        ex(1, {"synergy": 2}, False, score=0.1),  # gap 1
        ex(2, {"equivalence": 2}, True, score=0.9),  # gap 1, larger interaction: first
        ex(3, {"synergy": 1, "equivalence": 1}, False),  # gap 0.5
        ex(4, {"synergy": 1, "equivalence": 2}, False),  # gap 1/3: not listed
        ex(5, {"synergy": 1}, True),  # agree
        ex(6, {}, True),  # nobody answered: not listed
    ]
    rep = reliance_report(examples, [], modalities=MODS, resamples=0, top=10)
    got = [(d["example"], d["disagreement"]) for d in rep["disagreements"]]
    assert got == [(2, 1.0), (1, 1.0), (3, 0.5)]
    first = rep["disagreements"][0]
    assert first["humans"]["category"] == "equivalence"
    assert first["model"]["uses_interaction"] is True
    assert first["kind"].startswith("the model uses the interaction")
    assert rep["disagreements"][1]["kind"].startswith("humans needed both")
    assert (
        len(reliance_report(examples, [], modalities=MODS, resamples=0, top=1)["disagreements"])
        == 1
    )


def test_no_answers_at_all_gives_no_kappa() -> None:
    rep = reliance_report([ex(1, {}, True), ex(2, {}, False)], [], modalities=MODS)
    assert rep["kappa"]["value"] is None and rep["kappa"]["n"] == 0
    assert not math.isnan(rep["overall"]["emap_changed"]["value"])


def test_a_result_of_an_unknown_method_gets_tables_in_a_fixed_column_order() -> None:
    from models_bridge.analysis.tables import result_tables, table_csv

    result = {
        "variant": "v",
        "pruning": [{"accuracy": 0.9, "heads_removed": 0}, {"heads_removed": 1, "accuracy": 0.7}],
        "importance": [{"drop": 0.2, "head": 0}],
        "by_label": {"yes": 0.5, "no": 0.25},
        "nested": {"a": {"b": 1}},
    }
    tables = {t.key: t for t in result_tables("heads", result)}
    assert list(tables) == ["summary", "by_label", "importance", "pruning"]
    assert tables["pruning"].columns == ["heads_removed", "accuracy"]
    assert tables["pruning"].rows == [[0, 0.9], [1, 0.7]]
    assert tables["importance"].columns == ["head", "drop"]
    assert tables["by_label"].rows == [["no", 0.25], ["yes", 0.5]]
    assert tables["summary"].rows == [["nested", '{"a":{"b":1}}'], ["variant", "v"]]
    assert table_csv(tables["pruning"]).splitlines() == ["heads_removed,accuracy", "0,0.9", "1,0.7"]
