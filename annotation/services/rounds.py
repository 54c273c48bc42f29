"""Dynamic rounds (docs/rounds.md): a campaign's counterfactual collection in stages, each
against a target model version. Opening, closing and advancing rounds goes through these
functions; the database keeps the two "one per" rules (one number per campaign, at most one
open round per campaign), so two managers opening a round at once get one round and a 409.

Which round an edit belongs to is decided by `open_round_query`, inside the statement that
inserts the edit (services.counterfactuals, services.annotations), so a round that closes
while an edit is being submitted cannot be half-seen."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max, QuerySet
from django.utils import timezone

from annotation.models import Campaign, CampaignRound
from counterpoint.errors import Conflict, NotFound, ValidationFailed


def open_round_query(*, campaign_id: int) -> QuerySet[CampaignRound, Any]:
    """The id of the campaign's open round (no row when none is open), as a one-column query
    to embed in an INSERT: the one rule for "the round open at submission"."""
    return CampaignRound.objects.filter(campaign_id=campaign_id, closed_at__isnull=True).values(
        "id"
    )[:1]


def _check_target(*, campaign: Campaign, target: Any) -> None:
    from models_bridge.models import ModelVersion
    from models_bridge.services.registry import model_fits_dataset

    if not isinstance(target, ModelVersion) or not target.is_active:
        raise ValidationFailed(
            "a round's target must be an active registered model version", code="round_target"
        )
    try:
        model_fits_dataset(model_version=target, dataset=campaign.dataset)
    except ValidationFailed as exc:
        raise ValidationFailed(
            f"{target} cannot be a target in campaign {campaign.name!r}: {exc.message}",
            code="round_target",
        ) from None


def round_open(*, campaign: Campaign, target: Any, created_by: Any = None) -> CampaignRound:
    """Open the campaign's next round against `target` (which must fit the campaign's dataset)
    and add the target to the campaign's models, so every edit of the round is scored by it.
    Conflict `round_already_open` when a round is open: close it first."""
    _check_target(campaign=campaign, target=target)
    try:
        with transaction.atomic():
            # Locks the campaign row, so concurrent openers queue and number rounds in turn.
            Campaign.objects.select_for_update().filter(pk=campaign.pk).values("id").first()
            if CampaignRound.objects.filter(campaign=campaign, closed_at__isnull=True).exists():
                raise Conflict(
                    f"campaign {campaign.name!r} already has an open round; close it first",
                    code="round_already_open",
                )
            last = CampaignRound.objects.filter(campaign=campaign).aggregate(n=Max("number"))["n"]
            opened = CampaignRound.objects.create(
                campaign=campaign,
                number=(last or 0) + 1,
                target=target,
                opened_at=timezone.now(),
                created_by=created_by if getattr(created_by, "pk", None) else None,
            )
            campaign.model_versions.add(target)
    except IntegrityError:
        # The constraints caught a concurrent opener the lock did not (another database path).
        raise Conflict(
            f"campaign {campaign.name!r} already has an open round", code="round_already_open"
        ) from None
    return opened


def round_close(*, round: CampaignRound) -> CampaignRound:
    """Close an open round (edits submitted from now on belong to no round until the next one
    opens). Closing a closed round is a no-op."""
    CampaignRound.objects.filter(pk=round.pk, closed_at__isnull=True).update(
        closed_at=timezone.now()
    )
    round.refresh_from_db(fields=["closed_at"])
    return round


def round_get(*, campaign: Campaign, number: Any) -> CampaignRound:
    try:
        n = int(number)
    except (TypeError, ValueError):
        raise ValidationFailed(
            f"a round number is a positive integer, not {number!r}", code="round_number"
        ) from None
    found = CampaignRound.objects.filter(campaign=campaign, number=n).first()
    if found is None:
        raise NotFound(f"campaign {campaign.name!r} has no round {n}", code="round_not_found")
    return found


def round_record_training(
    *,
    round: CampaignRound,
    trained_model: Any,
    training: dict[str, Any],
    target_accuracy: float | None,
    trained_accuracy: float | None,
) -> tuple[CampaignRound, CampaignRound | None, bool]:
    """Store what train_round did with `round` and move the campaign on: the round is closed
    and round N+1 opened against the trained model, unless a later round exists already (then
    nothing opens). Under the round's row lock, so of two runs that both trained, the first
    to get here is recorded and the second (`recorded` False) changes nothing.

    Returns (round, next round or None, recorded)."""
    with transaction.atomic():
        row = CampaignRound.objects.select_for_update().get(pk=round.pk)
        if row.trained_model_id is not None:
            following = CampaignRound.objects.filter(
                campaign_id=row.campaign_id, number=row.number + 1
            ).first()
            return row, following, False
        now = timezone.now()
        row.trained_model = trained_model
        row.training = training
        row.target_accuracy = target_accuracy
        row.closed_at = row.closed_at or now
        row.save(update_fields=["trained_model", "training", "target_accuracy", "closed_at"])
        following = None
        later = CampaignRound.objects.filter(campaign_id=row.campaign_id, number__gt=row.number)
        open_now = CampaignRound.objects.filter(campaign_id=row.campaign_id, closed_at__isnull=True)
        if not later.exists() and not open_now.exists():
            following = CampaignRound.objects.create(
                campaign_id=row.campaign_id,
                number=row.number + 1,
                target=trained_model,
                opened_at=now,
                target_accuracy=trained_accuracy,
            )
            row.campaign.model_versions.add(trained_model)
    return row, following, True
