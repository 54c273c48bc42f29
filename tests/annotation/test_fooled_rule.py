"""One "model fooled" rule (selectors_results.edit_fooled) and its companions (scored,
flipped): the dashboard's per-model figures, the pair viewer's filter (edits_fooling), the
rounds' counts and the per-row reading (edit_models_fooled / entry_scored) agree on a
campaign worked through the services, with refused (error) entries and missing scores."""

from __future__ import annotations

import random

import pytest

from annotation.models import CounterfactualEdit, Membership
from annotation.selectors_dashboard import campaign_dashboard
from annotation.selectors_results import (
    edit_flipped,
    edit_models_fooled,
    edit_scored,
    edits_fooling,
    entry_prediction,
    entry_scored,
)
from annotation.services.counterfactuals import edit_scores_record
from tests.annotation.annotator_helpers import add_annotators, member, text_campaign
from tests.annotation.dashboard_helpers import annotate, model_attach, validate

pytestmark = pytest.mark.django_db


def _campaign():  # type: ignore[no-untyped-def]
    rng = random.Random(7)
    campaign = text_campaign(8, redundancy=3, validations_required=1, validations_to_verify=1)
    people = add_annotators(campaign, 3)
    models = [model_attach(campaign, "alpha"), model_attach(campaign, "beta")]
    for _ in range(8):
        for user in people:
            label = rng.choice(["yes", "no"])
            annotate(campaign, user, label, "no" if label == "yes" else "yes")
    edits = list(CounterfactualEdit.objects.filter(campaign=campaign).order_by("id"))
    assert len(edits) >= 12
    scores: dict[int, dict[str, object]] = {}
    for i, edit in enumerate(edits):
        entry: dict[str, object] = {}
        for j, mv in enumerate(models):
            kind = (i + j) % 4
            if kind == 0:
                continue  # not scored yet
            if kind == 1:  # the model refused the edit
                entry[str(mv.pk)] = {"error": {"code": "input_invalid", "message": "no"}}
                continue
            after = rng.choice(["yes", "no"])
            entry[str(mv.pk)] = {
                "original": {"predicted_label": rng.choice(["yes", "no"])},
                "edit": {"predicted_label": after},
            }
        if entry:
            scores[edit.pk] = entry
    edit_scores_record(scores=scores)
    validator = member(campaign, "val-1", Membership.Role.VALIDATOR)
    while validate(campaign, validator, rng.choice(["yes", "no"])):
        pass
    return campaign, models


def test_fooled_scored_flipped_agree_everywhere():
    campaign, models = _campaign()
    edits = list(CounterfactualEdit.objects.filter(campaign=campaign).order_by("id"))
    statuses = {e.status for e in edits}
    assert {"verified", "disputed"} <= statuses
    data = campaign_dashboard(campaign=campaign)
    dashboard = {m["model_id"]: m for m in data["models"]}
    for row in data["annotators"]:
        mine = [e for e in edits if e.author.username == row["annotator"]]
        assert row["model_fooling_edits"] == sum(1 for e in mine if edit_models_fooled(e))
    base = CounterfactualEdit.objects.filter(campaign=campaign)
    seen_fooled = 0
    for mv in models:
        key = str(mv.pk)
        per_row_fooled = [e.pk for e in edits if mv.pk in edit_models_fooled(e)]
        per_row_scored = [e.pk for e in edits if entry_scored((e.scores or {}).get(key))]
        per_row_flipped = [
            e.pk
            for e in edits
            if e.pk in per_row_scored
            and entry_prediction(e.scores[key], "edit")
            != entry_prediction(e.scores[key], "original")
        ]
        per_row_verified_scored = [
            e.pk for e in edits if e.pk in per_row_scored and e.status == "verified"
        ]
        orm_fooled = list(
            edits_fooling(base, model_id=mv.pk).order_by("id").values_list("id", flat=True)
        )
        orm_scored = list(
            base.filter(edit_scored(mv.pk)).order_by("id").values_list("id", flat=True)
        )
        orm_flipped = list(
            base.filter(edit_flipped(mv.pk)).order_by("id").values_list("id", flat=True)
        )
        assert orm_fooled == per_row_fooled
        assert orm_scored == per_row_scored
        assert orm_flipped == per_row_flipped
        row = dashboard[mv.pk]
        assert row["fooled"] == len(per_row_fooled)
        assert row["scored_edits"] == len(per_row_scored)
        assert row["flips"] == len(per_row_flipped)
        assert row["verified_scored"] == len(per_row_verified_scored)
        seen_fooled += len(per_row_fooled)
    # The campaign exercises the rule: some edits fool, some refused entries are verified.
    assert seen_fooled > 0
    assert any(
        e.status == "verified" and "error" in entry
        for e in edits
        for entry in (e.scores or {}).values()
    )
