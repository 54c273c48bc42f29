"""Where an annotator stands against a campaign's people rules (task cap, screening): the one
function the lease (both of its paths), the crowd finish page and the people page read.

The screening counts an annotator's first `screening_items` gold annotations, oldest first
(policy.screening_status); gold answers are the examples' labels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from annotation import policy
from annotation.models import Annotation, Campaign
from counterpoint.errors import Conflict


@dataclass(frozen=True)
class Standing:
    done: int | None  # submitted annotate tasks; None when no rule needed the count
    cap: int | None
    screening: str  # policy.SCREENING_*
    screening_right: int = 0
    screening_answered: int = 0

    @property
    def cap_reached(self) -> bool:
        return self.cap is not None and self.done is not None and self.done >= self.cap

    @property
    def screening_only(self) -> bool:
        return self.screening == policy.SCREENING_PENDING


def screening_answers(*, campaign: Campaign, annotator_id: int) -> list[bool]:
    """Whether each of the annotator's first screening_items gold annotations was right."""
    rows = (
        Annotation.objects.filter(
            campaign_id=campaign.pk, annotator_id=annotator_id, assignment__is_gold=True
        )
        .order_by("id")
        .values_list("label", "example__label")[: campaign.screening_items]
    )
    return [label == gold for label, gold in rows]


def annotator_standing(*, campaign: Campaign, annotator_id: int) -> Standing:
    """No query when the campaign has neither a cap nor a screening (the common case on the
    lease's hot path); one per rule switched on otherwise."""
    done = None
    if campaign.task_cap is not None:
        done = Annotation.objects.filter(campaign_id=campaign.pk, annotator_id=annotator_id).count()
    if campaign.screening_items <= 0:
        return Standing(done=done, cap=campaign.task_cap, screening=policy.SCREENING_OFF)
    answers = screening_answers(campaign=campaign, annotator_id=annotator_id)
    return Standing(
        done=done,
        cap=campaign.task_cap,
        screening=policy.screening_status(
            answers=answers, items=campaign.screening_items, pass_mark=campaign.screening_pass_mark
        ),
        screening_right=sum(answers),
        screening_answered=len(answers),
    )


def annotator_gate(*, campaign: Campaign, annotator: Any) -> Standing:
    """The standing, or a named refusal when the annotator may lease no new annotate task:
    `screening_failed` (they did not reach the pass mark) or `task_cap_reached`."""
    standing = annotator_standing(campaign=campaign, annotator_id=int(annotator.pk))
    if standing.screening == policy.SCREENING_FAILED:
        raise Conflict(
            "The first check items did not reach the mark this campaign needs, so there are "
            "no more tasks for you here. Thank you for trying.",
            code="screening_failed",
            details={
                "right": standing.screening_right,
                "items": campaign.screening_items,
                "pass_mark": campaign.screening_pass_mark,
            },
        )
    if standing.cap_reached:
        raise Conflict(
            f"You have done the {standing.cap} task{'' if standing.cap == 1 else 's'} this "
            "campaign allows per person. Thank you!",
            code="task_cap_reached",
            details={"cap": standing.cap, "done": standing.done},
        )
    return standing


def people_rows(*, campaign: Campaign) -> list[dict[str, Any]]:
    """The campaign's members as the people page and GET /campaigns/<id>/people/ show them:
    one row per membership with its work and standing. Three queries whatever the team size
    (memberships with their users and crowd ids; work counts; first gold answers when the
    campaign has a screening)."""
    from django.db.models import Count

    from annotation.models import Membership, Validation

    members = list(
        Membership.objects.filter(campaign_id=campaign.pk)
        .select_related("user", "crowd")
        .order_by("role", "user__username", "id")
    )
    done = dict(
        Annotation.objects.filter(campaign_id=campaign.pk)
        .values_list("annotator_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    validated = dict(
        Validation.objects.filter(edit__campaign_id=campaign.pk)
        .values_list("validator_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    answers: dict[int, list[bool]] = {}
    if campaign.screening_items > 0:
        gold = (
            Annotation.objects.filter(campaign_id=campaign.pk, assignment__is_gold=True)
            .order_by("annotator_id", "id")
            .values_list("annotator_id", "label", "example__label")
        )
        for uid, label, truth in gold:
            got = answers.setdefault(uid, [])
            if len(got) < campaign.screening_items:
                got.append(label == truth)
    rows = []
    for m in members:
        crowd = getattr(m, "crowd", None)
        screening = policy.SCREENING_OFF
        if m.role == Membership.Role.ANNOTATOR:
            screening = policy.screening_status(
                answers=answers.get(m.user_id, []),
                items=campaign.screening_items,
                pass_mark=campaign.screening_pass_mark,
            )
        rows.append(
            {
                "id": m.pk,
                "user_id": m.user_id,
                "username": m.user.username,
                "email": m.user.email,
                "role": m.role,
                "arm": m.arm,
                "active": m.active,
                "annotations_done": done.get(m.user_id, 0),
                "validations_done": validated.get(m.user_id, 0),
                "task_cap": campaign.task_cap,
                "screening": screening,
                "crowd": None
                if crowd is None
                else {
                    "link": crowd.link_id,
                    "worker_id": crowd.worker_id,
                    "study_id": crowd.study_id,
                    "session_id": crowd.session_id,
                    "finished_at": crowd.finished_at,
                    "outcome": crowd.outcome,
                },
            }
        )
    return rows
