"""Annotator API (contract: docs/annotator_api.md): lease, task, draft, submit,
skip, my progress. Thin views: access helper → one service → serialize. Every assignment
endpoint goes through access.assignment_for_user, so only the lease holder gets past it."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import (
    assignment_for_user,
    campaign_for_user,
    is_staff,
    perturbation_study_of,
)
from annotation.models import (
    Annotation,
    Assignment,
    CounterfactualEdit,
    Membership,
    PerturbationLabel,
    Validation,
)
from annotation.selectors import (
    feedback_for,
    member_context,
    my_campaign_status,
    tabular_mad,
    task_payload,
)
from annotation.selectors_perturbations import perturbation_task_payload
from annotation.services.annotations import annotation_submit
from annotation.services.assignments import (
    ROLES_FOR_KIND,
    assignment_draft_save,
    assignment_lease,
    assignment_skip,
)
from annotation.services.perturbation_tasks import perturbation_label_submit, perturbation_lease
from annotation.services.validations import validation_submit
from counterpoint.errors import ValidationFailed

_TASK = inline_serializer(
    "Task",
    {
        "assignment": serializers.DictField(),
        "campaign": serializers.DictField(),
        "example": serializers.DictField(),
        "counterfactual": serializers.DictField(),
        "progress": serializers.DictField(),
        "draft": serializers.DictField(),
        "draft_updated_at": serializers.DateTimeField(allow_null=True),
    },
)


def _body(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ValidationFailed("the request body must be a JSON object", code="body_invalid")
    return request.data


def perturbation_label_json(row: PerturbationLabel) -> dict[str, Any]:
    return {
        "id": row.pk,
        "assignment": row.assignment_id,
        "label": row.label,
        "confidence": row.confidence,
        "late": row.late,
        "created_at": row.created_at.isoformat(),
    }


def annotation_json(annotation: Annotation) -> dict[str, Any]:
    return {
        "id": annotation.pk,
        "assignment": annotation.assignment_id,
        "label": annotation.label,
        "confidence": annotation.confidence,
        "rationale": annotation.rationale,
        "reliance": annotation.reliance,
        "reliance_modality": annotation.reliance_modality,
        "evidence": annotation.evidence,
        "time_spent_ms": annotation.time_spent_ms,
        "late": annotation.late,
        "created_at": annotation.created_at.isoformat(),
    }


def edit_json(edit: CounterfactualEdit | None) -> dict[str, Any] | None:
    if edit is None:
        return None
    return {
        "id": edit.pk,
        "modality": edit.modality,
        "target_label": edit.target_label,
        "minimality": edit.minimality,
        "content_hash": edit.content_hash,
        "status": edit.status,
    }


def validation_json(validation: Validation) -> dict[str, Any]:
    return {
        "id": validation.pk,
        "label": validation.label,
        "broken": validation.broken,
        "comment": validation.comment,
    }


class LeaseView(APIView):
    @extend_schema(
        request=inline_serializer(
            "LeaseRequest", {"kind": serializers.ChoiceField(choices=Assignment.Kind.choices)}
        ),
        responses={200: _TASK, 204: OpenApiResponse(description="nothing left for this person")},
    )
    def post(self, request: Request, campaign_id: int) -> Response:
        kind = _body(request).get("kind") or Assignment.Kind.ANNOTATE
        if kind == Assignment.Kind.PERTURBATION:
            return _lease_perturbation(request, campaign_id)
        if kind not in ROLES_FOR_KIND:
            raise ValidationFailed(
                f"kind must be 'annotate' or 'validate', got {kind!r}", code="kind_unknown"
            )
        campaign = campaign_for_user(
            user=request.user, campaign_id=campaign_id, roles=ROLES_FOR_KIND[kind]
        )
        # The access helper checked the role for everyone but staff (who pass it without one).
        result = assignment_lease(
            campaign=campaign, annotator=request.user, kind=kind, verify_role=is_staff(request.user)
        )
        if result.assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        feedback = feedback_for(campaign=campaign, user_id=request.user.pk)
        return Response(
            task_payload(assignment=result.assignment, feedback=feedback, done=result.done)
        )


def _lease_perturbation(request: Request, campaign_id: int) -> Response:
    """kind perturbation: the next perturbed item of the study named by `study`
    (docs/perturbation.md); annotators only."""
    campaign = campaign_for_user(
        user=request.user, campaign_id=campaign_id, roles=[Membership.Role.ANNOTATOR]
    )
    study = perturbation_study_of(campaign=campaign, study_id=_body(request).get("study"))
    result = perturbation_lease(study=study, annotator=request.user)
    if result.assignment is None:
        return Response(status=status.HTTP_204_NO_CONTENT)
    result.assignment.campaign = campaign
    return Response(perturbation_task_payload(assignment=result.assignment))


class MyCampaignView(APIView):
    @extend_schema(
        responses=inline_serializer(
            "MyCampaign",
            {
                "roles": serializers.ListField(),
                "feedback": serializers.CharField(),
                "annotate": serializers.DictField(),
                "validate": serializers.DictField(),
            },
        )
    )
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = campaign_for_user(user=request.user, campaign_id=campaign_id)
        context = member_context(campaign=campaign, user=request.user)
        return Response(my_campaign_status(campaign=campaign, user=request.user, context=context))


class TaskView(APIView):
    @extend_schema(responses=_TASK)
    def get(self, request: Request, assignment_id: int) -> Response:
        assignment = assignment_for_user(
            user=request.user, assignment_id=assignment_id, with_draft=True
        )
        if assignment.kind == Assignment.Kind.PERTURBATION:
            return Response(perturbation_task_payload(assignment=assignment))
        feedback = feedback_for(campaign=assignment.campaign, user_id=request.user.pk)
        return Response(task_payload(assignment=assignment, feedback=feedback))


class DraftView(APIView):
    @extend_schema(
        request=inline_serializer("DraftRequest", {"draft": serializers.DictField()}),
        responses=inline_serializer("DraftSaved", {"saved_at": serializers.DateTimeField()}),
    )
    def put(self, request: Request, assignment_id: int) -> Response:
        assignment = assignment_for_user(user=request.user, assignment_id=assignment_id)
        saved_at = assignment_draft_save(assignment=assignment, draft=_body(request).get("draft"))
        return Response({"saved_at": saved_at.isoformat()})


class SubmitView(APIView):
    @extend_schema(
        request=inline_serializer("SubmitRequest", {"idempotency_key": serializers.CharField()}),
        responses={201: dict, 200: dict},
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        assignment = assignment_for_user(user=request.user, assignment_id=assignment_id)
        data = _body(request)
        if assignment.kind == Assignment.Kind.PERTURBATION:
            label, created = perturbation_label_submit(
                assignment=assignment,
                label=data.get("label", ""),
                confidence=data.get("confidence"),
                time_spent_ms=data.get("time_spent_ms", 0),
                idempotency_key=data.get("idempotency_key"),
            )
            code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
            return Response({"perturbation_label": perturbation_label_json(label)}, status=code)
        if assignment.kind == Assignment.Kind.VALIDATE:
            vresult = validation_submit(
                assignment=assignment,
                idempotency_key=data.get("idempotency_key"),
                label=data.get("label", ""),
                broken=data.get("broken", False),
                comment=data.get("comment", ""),
            )
            code = status.HTTP_201_CREATED if vresult.created else status.HTTP_200_OK
            return Response({"validation": validation_json(vresult.validation)}, status=code)
        dataset = assignment.campaign.dataset
        result = annotation_submit(
            assignment=assignment,
            idempotency_key=data.get("idempotency_key"),
            label=data.get("label", ""),
            confidence=data.get("confidence"),
            rationale=data.get("rationale", ""),
            reliance=data.get("reliance", ""),
            reliance_modality=data.get("reliance_modality", ""),
            evidence=data.get("evidence"),
            time_spent_ms=data.get("time_spent_ms", 0),
            counterfactual=data.get("counterfactual"),
            tabular_mad=lambda modality: tabular_mad(dataset=dataset, modality=modality),
        )
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(
            {"annotation": annotation_json(result.annotation), "edit": edit_json(result.edit)},
            status=code,
        )


class SkipView(APIView):
    @extend_schema(
        request=inline_serializer("SkipRequest", {"reason": serializers.CharField(required=False)}),
        responses=inline_serializer("Skipped", {"status": serializers.CharField()}),
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        assignment = assignment_for_user(user=request.user, assignment_id=assignment_id)
        reason = _body(request).get("reason", "")
        assignment_skip(assignment=assignment, reason=str(reason or ""))
        return Response({"status": Assignment.Status.SKIPPED})


class WhoAmIView(APIView):
    """The signed-in user. Also the "trivial authenticated endpoint" the lease benchmark
    measures as the server's ceiling (benchmarks/bench_lease.py)."""

    @extend_schema(
        responses=inline_serializer(
            "WhoAmI", {"id": serializers.IntegerField(), "username": serializers.CharField()}
        )
    )
    def get(self, request: Request) -> Response:
        return Response({"id": request.user.pk, "username": request.user.get_username()})


def register(router: Any, urlpatterns: list) -> None:
    from django.urls import path

    urlpatterns += [
        path("campaigns/<int:campaign_id>/lease/", LeaseView.as_view(), name="campaign-lease"),
        path("campaigns/<int:campaign_id>/me/", MyCampaignView.as_view(), name="campaign-me"),
        path("assignments/<int:assignment_id>/", TaskView.as_view(), name="assignment-detail"),
        path(
            "assignments/<int:assignment_id>/draft/", DraftView.as_view(), name="assignment-draft"
        ),
        path(
            "assignments/<int:assignment_id>/submit/",
            SubmitView.as_view(),
            name="assignment-submit",
        ),
        path("assignments/<int:assignment_id>/skip/", SkipView.as_view(), name="assignment-skip"),
        path("whoami/", WhoAmIView.as_view(), name="whoami"),
    ]
