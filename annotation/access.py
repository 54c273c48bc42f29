"""One access helper per guarded object (docs/architecture.md "Conventions"). Views never check roles inline.

Rules: staff see everything; a campaign's managers manage it; annotators and validators see
only the campaigns they belong to and, inside them, only the assignments they hold. A
dataset is visible to staff, its creator and the managers of a campaign over it. Objects
the caller may not know about answer 404, not 403, so ids do not leak."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Exists, OuterRef, Q, QuerySet

from annotation.models import (
    Assignment,
    Attempt,
    Campaign,
    CounterfactualEdit,
    Dataset,
    ExampleMedia,
    Job,
    Media,
    Membership,
    PerturbationStudy,
    PerturbedItem,
)
from counterpoint.errors import Forbidden, NotFound
from counterpoint.parsers import parse_pk

User = AbstractBaseUser | AnonymousUser


def _uid(user: User) -> int:
    # 0 matches no row: ids start at 1, so an anonymous caller sees nothing.
    return int(user.pk) if getattr(user, "is_authenticated", False) and user.pk else 0


Role = Membership.Role


def is_staff(user: User) -> bool:
    return bool(getattr(user, "is_staff", False))


def campaigns_visible_to(*, user: User, roles: Iterable[str] | None = None) -> QuerySet[Campaign]:
    qs = Campaign.objects.all()
    if is_staff(user):
        return qs
    member = Membership.objects.filter(user_id=_uid(user), active=True)
    if roles is not None:
        member = member.filter(role__in=list(roles))
    return qs.filter(id__in=member.values("campaign_id"))


def campaign_for_user(
    *, user: User, campaign_id: int, roles: Iterable[str] | None = None
) -> Campaign:
    """The campaign if `user` holds one of `roles` in it (any role when None).
    404 when the user has no membership at all; 403 when a member lacks the role."""
    pk = parse_pk(campaign_id)
    if pk is None:
        raise NotFound(f"campaign {campaign_id} does not exist")
    # One query on the hot path (every lease): the caller's memberships carry the campaign.
    memberships = list(
        # A deactivated membership is no role at all: its holder is an outsider here.
        Membership.objects.select_related("campaign__dataset").filter(
            campaign_id=pk, user_id=_uid(user), active=True
        )
    )
    if not memberships:
        if is_staff(user):
            campaign = Campaign.objects.select_related("dataset").filter(pk=pk).first()
            if campaign is not None:
                return campaign
        raise NotFound(f"campaign {campaign_id} does not exist")
    campaign = memberships[0].campaign
    if is_staff(user):
        return campaign
    held = {m.role for m in memberships}
    if roles is not None and not held.intersection(roles):
        wanted = " or ".join(sorted(roles))
        raise Forbidden(
            f"this needs the {wanted} role in campaign {campaign_id}", code="role_required"
        )
    return campaign


def analysis_job_for_user(*, user: User, campaign_id: int, job_id: int) -> tuple[Campaign, Job]:
    """An analysis job of a campaign the user manages; 404 for a job of another campaign."""
    campaign = campaign_for_user(
        user=user, campaign_id=campaign_id, roles=[Membership.Role.MANAGER]
    )
    job = Job.objects.filter(
        pk=parse_pk(job_id) or 0, campaign_id=campaign.pk, kind=Job.Kind.ANALYSIS
    ).first()
    if job is None:
        raise NotFound(f"analysis {job_id} does not exist in campaign {campaign_id}")
    return campaign, job


def datasets_visible_to(*, user: User) -> QuerySet[Dataset]:
    qs = Dataset.objects.all()
    if is_staff(user):
        return qs
    managed = Membership.objects.filter(user_id=_uid(user), role=Role.MANAGER, active=True).values(
        "campaign__dataset_id"
    )
    return qs.filter(Q(created_by_id=_uid(user)) | Q(id__in=managed))


def dataset_for_user(*, user: User, dataset_id: int, write: bool = False) -> Dataset:
    try:
        dataset = datasets_visible_to(user=user).get(pk=parse_pk(dataset_id) or 0)
    except (Dataset.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"dataset {dataset_id} does not exist") from None
    if write and not (is_staff(user) or dataset.created_by_id == _uid(user)):
        raise Forbidden(
            "only the dataset's creator or staff may change it", code="dataset_owner_required"
        )
    return dataset


def can_manage_anything(user: User) -> bool:
    """Who may create datasets, campaigns and register models: staff and anyone who already
    manages a campaign, or holds the `annotation.add_dataset` permission."""
    if not getattr(user, "is_authenticated", False):
        return False
    if is_staff(user) or user.has_perm("annotation.add_dataset"):  # type: ignore[union-attr]
        return True
    return Membership.objects.filter(user_id=_uid(user), role=Role.MANAGER, active=True).exists()


def assignment_for_user(
    *, user: User, assignment_id: int, kind: str | None = None, with_draft: bool = False
) -> Assignment:
    """The assignment if `user` holds it. Someone else's assignment is a 404 (not theirs to
    know about). The caller decides what an inactive lease may still do. The autosaved draft
    (up to 2 MB with image data URLs) is loaded only when `with_draft`: submit, skip and live
    scoring never read it."""
    qs = Assignment.objects.select_related("campaign", "campaign__dataset", "example", "edit")
    if not with_draft:
        qs = qs.defer("draft")
    try:
        assignment = qs.get(pk=parse_pk(assignment_id) or 0, annotator_id=_uid(user))
    except (Assignment.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"assignment {assignment_id} is not one of yours") from None
    if kind is not None and assignment.kind != kind:
        raise NotFound(f"assignment {assignment_id} is not a {kind} task")
    return assignment


def membership_grant_check(
    *, user: User, campaign: Campaign, role: str, grantee_username: str, removing: bool = False
) -> None:
    """Who may grant (or take away) which role in `campaign` (README "Roles and who grants
    them"). Staff grant and remove anything. The manager role is granted and removed only by
    staff unless the operator sets MANAGERS_MAY_GRANT_MANAGER, then also by the campaign's
    managers. A campaign's managers grant and remove annotator and validator there. Nobody
    but staff changes their own roles upwards: a manager's own extra roles (annotating their
    campaign, validating it) would let them label what they then check.

    Precondition: `user` manages `campaign` (the caller has run campaign_for_user with the
    manager role). An unknown role passes here: the service refuses it with a named rule."""
    if is_staff(user):
        return
    if role == Role.MANAGER and not settings.MANAGERS_MAY_GRANT_MANAGER:
        verb = "remove" if removing else "grant"
        raise Forbidden(
            f"only staff may {verb} the manager role (MANAGERS_MAY_GRANT_MANAGER is off)",
            code="role_grant_forbidden",
        )
    if not removing and grantee_username == getattr(user, "username", None):
        raise Forbidden("nobody grants themselves a role", code="role_grant_self")


def media_for_user(*, user: User, sha256: str) -> Media:
    """The stored image if `user` may see something that uses it, else 404 (unknown and not
    allowed look the same, so addresses do not leak). Allowed: staff; whoever sees the
    dataset of an example using it (its creator, managers of a campaign over it); managers of
    a campaign whose edits or scored drafts use it; whoever holds or held an annotate task
    on an example using it, or wrote an edit or draft using it; a validator for the images of
    the edit they validate (not its mask), except the original of the edited modality
    (validation is blind).

    One query: the address lookup and every rule are EXISTS subqueries on indexed columns
    (ExampleMedia by media, the edits' and drafts' media foreign keys)."""
    media = Media.objects.filter(sha256=sha256)
    if not is_staff(user):
        uid = _uid(user)
        managed = campaigns_visible_to(user=user, roles=[Role.MANAGER]).values("id")
        used_by_example = ExampleMedia.objects.filter(media_id=OuterRef("pk"))
        in_edit = Q(edited_media_id=OuterRef("pk")) | Q(mask_media_id=OuterRef("pk"))
        validating = Assignment.objects.filter(
            kind=Assignment.Kind.VALIDATE, annotator_id=uid, example_id=OuterRef("example_id")
        ).exclude(edit__modality=OuterRef("modality"))
        media = media.filter(
            Exists(used_by_example.filter(example__dataset_id__in=datasets_visible_to(user=user)))
            | Exists(
                used_by_example.filter(
                    example__assignments__annotator_id=uid,
                    example__assignments__kind=Assignment.Kind.ANNOTATE,
                )
            )
            | Exists(used_by_example.filter(Exists(validating)))
            | Exists(
                CounterfactualEdit.objects.filter(in_edit).filter(
                    Q(campaign_id__in=managed) | Q(author_id=uid)
                )
            )
            # A validator sees what the validation task shows: the edited values, no mask.
            | Exists(
                CounterfactualEdit.objects.filter(
                    edited_media_id=OuterRef("pk"),
                    validation_assignments__annotator_id=uid,
                    validation_assignments__kind=Assignment.Kind.VALIDATE,
                )
            )
            | Exists(
                Attempt.objects.filter(media_id=OuterRef("pk")).filter(
                    Q(assignment__annotator_id=uid) | Q(assignment__campaign_id__in=managed)
                )
            )
            # Perturbed images: the managers of the study's campaign, and whoever holds or
            # held a perturbation task on that very item (not its other levels).
            | Exists(
                PerturbedItem.objects.filter(media_id=OuterRef("pk")).filter(
                    Q(study__campaign_id__in=managed)
                    | Q(
                        assignments__annotator_id=uid,
                        assignments__kind=Assignment.Kind.PERTURBATION,
                    )
                )
            )
        )
    found = media.first()
    if found is None:
        raise NotFound("no such media")
    return found


def export_for_user(*, user: User, campaign_id: int, export_id: int) -> Job:
    """An export job of `campaign_id` if `user` manages that campaign now (staff too): its
    archive holds every annotator's work, so starting it earlier is not enough. Annotators
    and validators get 403, outsiders and ids of other campaigns' jobs 404."""
    campaign = campaign_for_user(user=user, campaign_id=campaign_id, roles=[Role.MANAGER])
    job = (
        Job.objects.select_related("created_by")
        .filter(pk=parse_pk(export_id) or 0, campaign=campaign, kind=Job.Kind.EXPORT)
        .first()
    )
    if job is None:
        raise NotFound(f"export {export_id} does not exist in campaign {campaign_id}")
    return job


def perturbation_study_for_user(
    *, user: User, campaign_id: int, study_id: int
) -> PerturbationStudy:
    """A study of a campaign `user` manages (404 for outsiders and unknown ids, 403 for the
    campaign's annotators and validators)."""
    campaign = campaign_for_user(user=user, campaign_id=campaign_id, roles=[Role.MANAGER])
    pk = parse_pk(study_id)
    study = (
        PerturbationStudy.objects.select_related("campaign__dataset", "job")
        .filter(pk=pk, campaign=campaign)
        .first()
        if pk is not None
        else None
    )
    if study is None:
        raise NotFound(f"perturbation study {study_id} does not exist")
    return study


def perturbation_study_of(*, campaign: Campaign, study_id: object) -> PerturbationStudy:
    """A study of `campaign` (already access-checked), 404 otherwise."""
    pk = parse_pk(study_id)
    study = (
        PerturbationStudy.objects.filter(pk=pk, campaign=campaign).first()
        if pk is not None
        else None
    )
    if study is None:
        raise NotFound(f"perturbation study {study_id} does not exist in this campaign")
    study.campaign = campaign
    return study
