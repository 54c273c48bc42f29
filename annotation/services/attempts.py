"""Attempts (docs/architecture.md "Domain"): each draft of an edit that was scored live, in order, with its
scores. The model bridge scores the draft; the row itself is the campaign domain's, written
here.

A draft image is never stored as Media (live scoring runs from the bytes in memory, and a
person may score dozens of drafts per task): the Attempt keeps the draft's content hash and,
for an image, `{"sha256", "width", "height", "bytes"}` of the draft, enough to tell which
draft a later submitted edit was, but not its pixels."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import F

from annotation.models import Assignment, Attempt
from counterpoint.errors import Conflict, ServiceError


class ScoreCapReached(ServiceError):
    http_status = 429
    default_code = "score_cap_reached"


def attempt_record(
    *,
    assignment: Assignment,
    cap: int,
    modality: str,
    value: Any,
    content_hash: str,
    scores: dict[str, Any],
) -> int:
    """Store one scored draft of `assignment` and return its seq (1, 2, 3 …). One short
    transaction, after the models have answered. Raises ScoreCapReached past `cap`, and
    Conflict `assignment_not_active` when the lease ended meanwhile."""
    with transaction.atomic():
        # The conditional increment is the seq allocator and the cap in one statement: it
        # row-locks the assignment until commit, so concurrent drafts get 1, 2, 3 … with
        # no gaps or repeats, and the cap cannot be overshot.
        bumped = Assignment.objects.filter(
            pk=assignment.pk, status=Assignment.Status.ACTIVE, attempts_count__lt=cap
        ).update(attempts_count=F("attempts_count") + 1)
        if not bumped:
            status = (
                Assignment.objects.filter(pk=assignment.pk).values_list("status", flat=True).first()
            )
            if status != Assignment.Status.ACTIVE:
                raise Conflict(
                    f"assignment {assignment.pk} is {status}, not active",
                    code="assignment_not_active",
                )
            raise ScoreCapReached(
                f"this task has used its {cap} scored drafts", code="score_cap_reached"
            )
        seq = (
            Assignment.objects.filter(pk=assignment.pk)
            .values_list("attempts_count", flat=True)
            .get()
        )
        Attempt.objects.create(
            assignment_id=assignment.pk,
            seq=seq,
            modality=modality,
            value=value,
            content_hash=content_hash,
            scores=scores,
        )
    return seq
