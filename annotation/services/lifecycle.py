"""Campaign status transitions: start, pause, resume, close (the one rule; the PATCH of
`status` and the lifecycle endpoint both come here).

draft → active (start); active → paused (pause); paused → active (resume); draft, active or
paused → closed (close). Closed is final. What each does to open leases is said by
`lifecycle_effects`, which the confirmation dialog shows as the server words it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db import transaction

from annotation.models import Campaign
from counterpoint.errors import Conflict, ValidationFailed

Status = Campaign.Status

TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "start": (frozenset({Status.DRAFT}), Status.ACTIVE),
    "pause": (frozenset({Status.ACTIVE}), Status.PAUSED),
    "resume": (frozenset({Status.PAUSED}), Status.ACTIVE),
    "close": (frozenset({Status.DRAFT, Status.ACTIVE, Status.PAUSED}), Status.CLOSED),
}


def action_for(current: str, target: str) -> str | None:
    """The action moving `current` to `target`, or None when no transition does."""
    for action, (sources, dest) in TRANSITIONS.items():
        if current in sources and dest == target:
            return action
    return None


def _leases_text(n: int) -> str:
    return "no open leases" if n == 0 else "1 open lease" if n == 1 else f"{n} open leases"


def lifecycle_effects(*, status: str, open_leases: int) -> list[dict[str, Any]]:
    """Each action with whether it is allowed now and, in words, what it does to the open
    leases (`open_leases`: active assignments of the campaign)."""
    leases = _leases_text(open_leases)
    words = {
        "start": "Starting opens the campaign: annotators get tasks from the pool.",
        "pause": f"{leases.capitalize()}: pausing keeps them, and work already leased can "
        "still be submitted; no new tasks are handed out and live model feedback stops "
        "until you resume.",
        "resume": f"{leases.capitalize()}: resuming hands out tasks and live model feedback again.",
        "close": f"{leases.capitalize()}: closing expires them (autosaved drafts are kept) "
        "and refuses every further lease and submission. A closed campaign cannot be "
        "reopened.",
    }
    return [
        {
            "action": action,
            "to": dest,
            "allowed": status in sources,
            "message": words[action],
        }
        for action, (sources, dest) in TRANSITIONS.items()
    ]


def campaign_transition(*, campaign: Campaign, action: str) -> Campaign:
    """Apply a lifecycle action. 409 `campaign_transition_invalid` when the campaign's status
    does not allow it (checked again in the UPDATE, so two managers racing do one each)."""
    if action not in TRANSITIONS:
        raise ValidationFailed(
            f"action must be one of {sorted(TRANSITIONS)}, got {action!r}",
            code="campaign_action_unknown",
        )
    sources, dest = TRANSITIONS[action]
    with transaction.atomic():
        moved = Campaign.objects.filter(pk=campaign.pk, status__in=sources).update(status=dest)
    if not moved:
        current = Campaign.objects.filter(pk=campaign.pk).values_list("status", flat=True).first()
        raise Conflict(
            f"cannot {action} a campaign that is {current}",
            code="campaign_transition_invalid",
            details={"action": action, "status": current, "allowed_from": sorted(sources)},
        )
    campaign.status = dest
    if dest == Status.CLOSED:
        _expire_open_leases(campaign)
    return campaign


def _expire_open_leases(campaign: Campaign) -> None:
    """Every open lease of the campaign as if its time were up: the sweep's own expiry (slots
    back, drafts kept on the rows), run until none is left."""
    from annotation.services.assignments import SWEEP_BATCH, assignment_expire_stale

    end_of_time = datetime.max.replace(tzinfo=UTC)
    while assignment_expire_stale(campaign=campaign, now=end_of_time) >= SWEEP_BATCH:
        pass


def campaign_status_set(*, campaign: Campaign, status: str) -> Campaign:
    """Move to `status` through the action that leads there (no-op when already there)."""
    if status == campaign.status:
        return campaign
    action = action_for(campaign.status, status)
    if action is None:
        raise Conflict(
            f"a campaign that is {campaign.status} cannot become {status}",
            code="campaign_transition_invalid",
            details={"status": campaign.status, "to": status},
        )
    return campaign_transition(campaign=campaign, action=action)
