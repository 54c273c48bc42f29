"""Where an annotator stands against a campaign's people rules (task cap, screening): the one
function the lease (both of its paths), the crowd finish page and the people page read.

The screening counts an annotator's first `screening_items` gold annotations, oldest first
(policy.screening_status) against selectors.gold_answer (the manager's answer, else the
example's label). The task cap is the annotator's own or the campaign's
(policy.effective_task_cap)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Case, Count, IntegerField, OuterRef, Subquery, Value, When
from django.db.models.functions import Coalesce

from annotation import policy
from annotation.models import Annotation, Campaign, Membership
from annotation.selectors import gold_answer_of_annotation
from counterpoint.errors import Conflict


@dataclass(frozen=True)
class Standing:
    done: int | None  # submitted annotate tasks; None when no rule needed the count
    cap: int | None
    screening: str  # policy.SCREENING_*
    screening_right: int = 0
    screening_answered: int = 0
    own_cap: bool = False  # the cap is the annotator's own (set on their membership)

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
        .annotate(answer=gold_answer_of_annotation())
        .order_by("id")
        .values_list("label", "answer")[: campaign.screening_items]
    )
    return [label == gold for label, gold in rows]


def _done_count(*, campaign: Campaign) -> Subquery:
    return Subquery(
        Annotation.objects.filter(campaign_id=campaign.pk, annotator_id=OuterRef("user_id"))
        .order_by()
        .values("annotator_id")
        .annotate(n=Count("id"))
        .values("n")[:1],
        output_field=IntegerField(),
    )


def cap_and_done(*, campaign: Campaign, annotator_id: int) -> tuple[int | None, int | None, bool]:
    """(the cap that holds, submitted annotate tasks, whether the cap is the annotator's own),
    in one query: the annotator's membership with its own cap, and the count only when some
    cap applies (the CASE skips it otherwise). done is None when no cap applies."""
    done: Coalesce | Case = Coalesce(_done_count(campaign=campaign), Value(0))
    if campaign.task_cap is None:
        done = Case(When(task_cap__isnull=False, then=done), default=None)
    row = (
        Membership.objects.filter(
            campaign_id=campaign.pk, user_id=annotator_id, role=Membership.Role.ANNOTATOR
        )
        .annotate(done=done)
        .values_list("task_cap", "done")
        .first()
    )
    own, count = row if row is not None else (None, None)
    cap = policy.effective_task_cap(campaign_cap=campaign.task_cap, member_cap=own)
    if cap is not None and count is None:  # no annotator membership (staff): count alone
        count = Annotation.objects.filter(
            campaign_id=campaign.pk, annotator_id=annotator_id
        ).count()
    return cap, (count if cap is not None else None), own is not None


def annotator_standing(*, campaign: Campaign, annotator_id: int) -> Standing:
    """One query for the cap (the annotator's own or the campaign's, with the done count when
    one applies), one more when the campaign has a screening."""
    cap, done, own = cap_and_done(campaign=campaign, annotator_id=annotator_id)
    if campaign.screening_items <= 0:
        return Standing(done=done, cap=cap, screening=policy.SCREENING_OFF, own_cap=own)
    answers = screening_answers(campaign=campaign, annotator_id=annotator_id)
    return Standing(
        done=done,
        cap=cap,
        own_cap=own,
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
        tasks = f"{standing.cap} task{'' if standing.cap == 1 else 's'}"
        raise Conflict(
            f"You have done the {tasks} "
            + ("set for you" if standing.own_cap else "this campaign allows per person")
            + " in this campaign, so there are no more tasks for you here. Thank you!",
            code="task_cap_reached",
            details={
                "cap": standing.cap,
                "done": standing.done,
                "source": "member" if standing.own_cap else "campaign",
            },
        )
    return standing


def people_rows(*, campaign: Campaign) -> list[dict[str, Any]]:
    """The campaign's members as the people page and GET /campaigns/<id>/people/ show them:
    one row per membership with its work and standing. Three queries whatever the team size
    (memberships with their users and crowd ids; work counts; first gold answers when the
    campaign has a screening)."""
    from annotation.models import Validation

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
            .annotate(answer=gold_answer_of_annotation())
            .order_by("annotator_id", "id")
            .values_list("annotator_id", "label", "answer")
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
                "task_cap": policy.effective_task_cap(
                    campaign_cap=campaign.task_cap, member_cap=m.task_cap
                ),
                "own_task_cap": m.task_cap,
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
