"""Reads of a campaign's rounds (docs/rounds.md): per round its target, its edits, and its
verified model error rate (vMER) with a seeded bootstrap interval.

vMER of a round = verified edits of the round that fool the round's target / verified edits
of the round the target has scored. "Fools" and "scored" are the pair viewer's rules,
selectors_results.edit_fooled / edit_verified_scored (the target's prediction on the edit
differs from the verified label); an edit the target has not scored yet (or could not) is
left out of both counts and reported as pending.
Queries: one for the rounds, one per round (rounds are few; the pin is exact in tests)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from django.db.models import Count, Q

from annotation.models import Campaign, CampaignRound, CounterfactualEdit
from annotation.selectors_results import edit_fooled, edit_verified_scored
from models_bridge.analysis.counterfactual import bootstrap_ratio

VMER_RESAMPLES = 1000


def vmer_interval(
    fooling: int, scored: int, *, seed: int | Sequence[int], resamples: int = VMER_RESAMPLES
) -> list[float] | None:
    """Percentile 95% bootstrap interval of fooling/scored over 0/1 outcomes, from
    numpy.random.default_rng(seed): the same counts and seed give the same interval."""
    if scored <= 0 or resamples <= 0:
        return None
    outcome = np.zeros(scored, dtype=np.float64)
    outcome[:fooling] = 1.0
    indices = np.random.default_rng(seed).integers(0, scored, size=(resamples, scored))
    ci = bootstrap_ratio(outcome, np.ones(scored, dtype=np.float64), indices)
    return [round(ci[0], 6), round(ci[1], 6)] if ci is not None else None


def _model(mv: Any) -> dict[str, Any] | None:
    if mv is None:
        return None
    return {"id": mv.pk, "name": mv.name, "version": mv.version}


def campaign_rounds(*, campaign: Campaign) -> list[dict[str, Any]]:
    """Every round of the campaign in order with its figures (an empty list: no rounds)."""
    verified = Q(status=CounterfactualEdit.Status.VERIFIED)
    out = []
    rounds = (
        CampaignRound.objects.filter(campaign=campaign)
        .select_related("target", "trained_model")
        .order_by("number")
    )
    for r in rounds:
        edits = CounterfactualEdit.objects.filter(round=r)
        c = edits.aggregate(
            edits=Count("id"),
            verified=Count("id", filter=verified),
            scored=Count("id", filter=edit_verified_scored(r.target_id)),
            fooling=Count("id", filter=edit_fooled(r.target_id)),
        )
        scored, fooled = c["scored"], c["fooling"]
        out.append(
            {
                "number": r.number,
                "status": "open" if r.closed_at is None else "closed",
                "target": _model(r.target),
                "opened_at": r.opened_at.isoformat(),
                "closed_at": r.closed_at.isoformat() if r.closed_at else None,
                "edits": c["edits"],
                "verified": c["verified"],
                "verified_scored": scored,
                "verified_pending_score": c["verified"] - scored,
                "fooling": fooled,
                "vmer": round(fooled / scored, 6) if scored else None,
                # Seeded by the campaign seed and the round number: reproducible, and one
                # round's interval does not move when another round gets edits.
                "vmer_ci95": vmer_interval(fooled, scored, seed=(campaign.seed % 2**32, r.number)),
                "target_test_accuracy": r.target_accuracy,
                "trained_model": _model(r.trained_model),
                "training": r.training or None,
            }
        )
    return out


def round_target_choices(*, campaign: Campaign) -> list[dict[str, Any]]:
    """The models a manager may pick as a round's target: the active versions registered for
    the campaign's dataset (round_open checks the one picked)."""
    from models_bridge.models import ModelVersion

    return [
        _model(mv)  # type: ignore[misc]
        for mv in ModelVersion.objects.filter(dataset=campaign.dataset, is_active=True).order_by(
            "name", "id"
        )
    ]
