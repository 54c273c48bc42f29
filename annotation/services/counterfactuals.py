"""Counterfactual edits (docs/architecture.md "Counterfactual protocol"): check a submitted edit against the protocol, then store it.

`counterfactual_check` reads (the original image) but writes nothing, so a refused edit leaves
nothing behind; `counterfactual_store_media` writes the edited image (content-addressed, so a
retry or a later refusal costs at most an unreferenced file); `counterfactual_submit` creates
the row inside the caller's transaction. Model scores are not computed here: the submit path
never waits on a model; `edit_scores_enqueue` sends the stored edit to a scoring worker on
commit, and every writer of `CounterfactualEdit.scores` goes through `edit_scores_record`."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Subquery

from annotation import minimality
from annotation.models import Annotation, Assignment, Campaign, CounterfactualEdit, Example, Media
from annotation.schema import content_hash, tabular_value_check, text_value_check
from annotation.services.media import (
    CheckedImage,
    check_image_bytes,
    decode_data_url,
    media_read,
    media_store,
)
from annotation.services.rounds import open_round_query
from counterpoint.errors import Unavailable, ValidationFailed

logger = logging.getLogger(__name__)
# A float budget compared with a figure computed from integers: allow rounding noise only.
_EPS = 1e-12


@dataclass
class CheckedEdit:
    modality: str
    kind: str
    target_label: str
    edited_values: dict[str, Any]
    content_hash: str
    minimality: dict[str, Any]
    image: CheckedImage | None = None
    mask: CheckedImage | None = None
    media: dict[str, Media] = field(default_factory=dict)


def _image_sha(value: Any) -> Any:
    """An image value as stored (the sha256), whether given as the hash or as the Task's
    {"sha256", "url", …} object."""
    if isinstance(value, dict) and "sha256" in value:
        return value["sha256"]
    return value


def _over_budget(figure: float, budget: float | None) -> bool:
    return budget is not None and figure > float(budget) + _EPS


def _check_other_modalities(
    example: Example, modality: str, given: Any, dataset_kinds: dict[str, str]
) -> None:
    """When a client sends the full edited values, every modality but the edited one must be
    byte-identical to the original (compared by content hash)."""
    if given is None:
        return
    if not isinstance(given, dict):
        raise ValidationFailed(
            "counterfactual.values must map modality → value", code="counterfactual_invalid"
        )
    for name, value in given.items():
        if name == modality:
            continue
        if name not in dataset_kinds:
            raise ValidationFailed(
                f"counterfactual.values names unknown modality {name!r}",
                code="counterfactual_invalid",
            )
        original = example.values.get(name)
        if dataset_kinds[name] == "image":
            value = _image_sha(value)
        if content_hash({"v": value}) != content_hash({"v": original}):
            raise ValidationFailed(
                f"only {modality!r} may change; {name!r} differs from the original",
                code="counterfactual_other_modality_changed",
            )


def _original_media(sha256: str) -> Media:
    media = Media.objects.filter(sha256=sha256).first()
    if media is None:
        raise Unavailable(
            f"the original image {sha256[:12]}… is not in media storage", code="media_missing"
        )
    return media


def _original_image_bytes(media: Media) -> bytes:
    try:
        return media_read(media)
    except OSError:
        raise Unavailable(
            f"the original image {media.sha256[:12]}… cannot be read", code="media_missing"
        ) from None


def original_size(media: Media) -> tuple[int, int] | None:
    return (media.width, media.height) if media.width and media.height else None


def _no_change(kind: str, figures: dict[str, Any]) -> None:
    if not minimality.edit_changed(kind, figures):
        what = {
            "text": "the edited text has the same words as the original (case and spacing do not count)",
            "image": "the edited image has the same pixels as the original",
        }.get(kind, "the edited values are identical to the original")
        raise ValidationFailed(what, code=minimality.NO_CHANGE_CODE)


def counterfactual_check(
    *,
    campaign: Campaign,
    assignment: Assignment,
    example: Example,
    label: str,
    counterfactual: Any,
    tabular_mad: Any = None,
) -> CheckedEdit:
    """Check an edit against docs/architecture.md "Counterfactual protocol" and the campaign's settings. Raises ValidationFailed
    naming the broken rule. `tabular_mad(modality) → {feature: MAD}` is only called for a
    tabular edit."""
    dataset = campaign.dataset
    kinds = {m["name"]: m["kind"] for m in dataset.modalities}
    labels = list(dataset.label_space)
    if not isinstance(counterfactual, dict):
        raise ValidationFailed(
            "counterfactual must be an object or null", code="counterfactual_invalid"
        )

    modality = str(counterfactual.get("modality") or assignment.cf_modality or "")
    if assignment.cf_modality and modality != assignment.cf_modality:
        raise ValidationFailed(
            f"this task asks for an edit of {assignment.cf_modality!r}, not {modality!r}",
            code="counterfactual_modality_not_assigned",
        )
    editable = [m for m in campaign.editable_modalities if m in kinds]
    if modality not in editable:
        raise ValidationFailed(
            f"modality {modality!r} may not be edited in this campaign (editable: {', '.join(editable) or 'none'})",
            code="counterfactual_modality_not_editable",
        )

    target = str(counterfactual.get("target_label") or "")
    if not target and assignment.cf_target_label and assignment.cf_target_label != label:
        target = assignment.cf_target_label
    if target not in labels:
        raise ValidationFailed(
            f"target label {target!r} is not in the label space {labels}",
            code="target_label_not_in_label_space",
        )
    if target == label:
        raise ValidationFailed(
            f"the target label must differ from your label {label!r}: the edit has to change the answer",
            code="target_label_same_as_label",
        )
    # An assigned target binds unless the annotator's own label is that target (then no edit
    # can reach it, and any other target is fine).
    if (
        assignment.cf_target_label
        and assignment.cf_target_label != label
        and target != assignment.cf_target_label
    ):
        raise ValidationFailed(
            f"this task asks for an edit towards {assignment.cf_target_label!r}, not {target!r}",
            code="counterfactual_target_not_assigned",
        )

    _check_other_modalities(example, modality, counterfactual.get("values"), kinds)
    kind = kinds[modality]
    budget = (campaign.edit_budgets or {}).get(modality)
    original = example.values.get(modality)
    edited_values = dict(example.values)
    checked_image = checked_mask = None

    if kind == "text":
        value = text_value_check(counterfactual.get("value"), what="the edited text")
        original_text = original if isinstance(original, str) else ""
        figures = minimality.text_minimality(original_text, value)
        _no_change(kind, figures)
        if _over_budget(figures["minimality"], budget):
            raise ValidationFailed(
                f"the edit changes {figures['token_distance']} of {figures['tokens']} words "
                f"(minimality {figures['minimality']:.2f}), over the {modality} budget of {float(budget):.2f}",  # type: ignore[arg-type]
                code="counterfactual_over_budget",
                details={"figure": "minimality", "value": figures["minimality"], "budget": budget},
            )
        edited_values[modality] = value

    elif kind == "image":
        original_media = _original_media(str(original))
        # The header is checked against the original's size before anything is decoded.
        checked_image = check_image_bytes(
            decode_data_url(counterfactual.get("image"), what="counterfactual.image"),
            expect_size=original_size(original_media),
        )
        original_bytes = _original_image_bytes(original_media)
        try:
            figures = minimality.image_minimality(original_bytes, checked_image.data)
        except minimality.ImageSizeMismatch as exc:
            raise ValidationFailed(
                f"{exc}; the edited image must keep the original's width x height",
                code="image_wrong_size",
            ) from None
        _no_change(kind, figures)
        if _over_budget(figures["pixel_fraction"], budget):
            raise ValidationFailed(
                f"the edit changes {figures['pixel_fraction']:.1%} of the pixels, over the {modality} budget of "
                f"{float(budget):.1%}",  # type: ignore[arg-type]
                code="counterfactual_over_budget",
                details={
                    "figure": "pixel_fraction",
                    "value": figures["pixel_fraction"],
                    "budget": budget,
                },
            )
        if counterfactual.get("mask"):
            checked_mask = check_image_bytes(
                decode_data_url(counterfactual["mask"], what="counterfactual.mask"),
                expect_size=(checked_image.width, checked_image.height),
            )
        edited_values[modality] = checked_image.sha256

    else:  # tabular
        table = tabular_value_check(original, counterfactual.get("value"))
        mad = tabular_mad(modality) if tabular_mad is not None else {}
        figures = minimality.tabular_minimality(original, table, mad)
        _no_change(kind, figures)
        if _over_budget(figures["fraction_changed"], budget):
            raise ValidationFailed(
                f"the edit changes {len(figures['changed_features'])} of {figures['features']} features "
                f"({figures['fraction_changed']:.2f}), over the {modality} budget of {float(budget):.2f}",  # type: ignore[arg-type]
                code="counterfactual_over_budget",
                details={
                    "figure": "fraction_changed",
                    "value": figures["fraction_changed"],
                    "budget": budget,
                },
            )
        edited_values[modality] = table

    # Defence in depth: whatever path built edited_values, only `modality` may differ.
    for name in kinds:
        if name != modality and content_hash({"v": edited_values.get(name)}) != content_hash(
            {"v": example.values.get(name)}
        ):
            raise ValidationFailed(
                f"{name!r} would change", code="counterfactual_other_modality_changed"
            )
    return CheckedEdit(
        modality=modality,
        kind=kind,
        target_label=target,
        edited_values=edited_values,
        content_hash=content_hash(edited_values),
        minimality=figures,
        image=checked_image,
        mask=checked_mask,
    )


def counterfactual_store_media(*, checked: CheckedEdit) -> None:
    """Write the edited image (and mask) before the submit transaction: files are written
    outside it, and content addressing makes a repeat or an unused file harmless."""
    if checked.image is not None:
        checked.media["image"] = media_store(checked=checked.image)
    if checked.mask is not None:
        checked.media["mask"] = media_store(checked=checked.mask)


def counterfactual_submit(*, annotation: Annotation, checked: CheckedEdit) -> CounterfactualEdit:
    """Create the edit for a stored annotation (call inside the submit transaction). Its
    round is the campaign's open round, read by the INSERT itself (rounds.open_round_query)."""
    edit = counterfactual_edit_for(annotation=annotation, checked=checked)
    edit.round_id = Subquery(open_round_query(campaign_id=annotation.campaign_id))  # type: ignore[assignment]
    edit.save(force_insert=True)
    # The row holds the id the subquery found; the instance still holds the expression, so
    # the attribute is dropped and reads as a deferred field (loaded on first access).
    del edit.__dict__["round_id"]
    return edit


def counterfactual_edit_for(*, annotation: Annotation, checked: CheckedEdit) -> CounterfactualEdit:
    """The (unsaved) edit row for an annotation: the full edited values, hash, labels and
    minimality figures. Scores stay empty: a scoring worker fills them after commit."""
    return CounterfactualEdit(
        annotation=annotation,
        campaign_id=annotation.campaign_id,
        example_id=annotation.example_id,
        author_id=annotation.annotator_id,
        modality=checked.modality,
        edited_values=checked.edited_values,
        edited_media=checked.media.get("image"),
        mask_media=checked.media.get("mask"),
        content_hash=checked.content_hash,
        original_label=annotation.label,
        target_label=checked.target_label,
        minimality=checked.minimality,
    )


# --- model scores of edits ----------------------------------------------------------------


def _is_scored(entry: Any) -> bool:
    return isinstance(entry, dict) and "error" not in entry


def edit_scores_record(*, scores: Mapping[int, Mapping[str, Any]]) -> int:
    """Merge model scores into edits: `scores` maps edit id → {model version id (str): entry},
    an entry being {"original": summary, "edit": summary}, or {"error": {code, message}} when
    the model cannot take the edit. Read-modify-write of each edit's `scores` under a row lock
    (on SQLite the write lock taken at BEGIN), so writers for different models never drop each
    other's keys; a key that already holds scores is kept (same model, same inputs, same
    scores), an error entry is replaced. Returns how many edits changed."""
    ids = sorted(int(pk) for pk in scores)
    if not ids:
        return 0
    changed: list[CounterfactualEdit] = []
    with transaction.atomic():
        # Locked in id order, so two writers over overlapping edits cannot deadlock.
        for row in (
            CounterfactualEdit.objects.select_for_update()
            .filter(pk__in=ids)
            .only("id", "scores")
            .order_by("id")
        ):
            merged = dict(row.scores or {})
            new = {
                str(k): v for k, v in scores[row.pk].items() if not _is_scored(merged.get(str(k)))
            }
            if new:
                row.scores = {**merged, **new}
                changed.append(row)
        CounterfactualEdit.objects.bulk_update(changed, ["scores"], batch_size=500)
    return len(changed)


def edit_scores_pending(*, edit: CounterfactualEdit, model_ids: Iterable[int]) -> list[int]:
    """The models among `model_ids` (the campaign's active ones) with no entry for `edit` yet."""
    have = edit.scores or {}
    return [pk for pk in model_ids if str(pk) not in have]


def edit_scores_enqueue(*, edit: CounterfactualEdit | None) -> None:
    """Once the edit is committed, ask a scoring worker to score it against every campaign
    model. A broker that is down costs only the scores (they stay pending in the results, and
    a bulk job fills them), never the stored submission."""
    if edit is None:
        return
    from models_bridge.tasks import edit_score_task

    edit_id, campaign_id = edit.pk, edit.campaign_id
    queue = getattr(settings, "JOBS_QUEUE_OVERRIDE", "") or None
    options: dict[str, Any] = {"queue": queue} if queue else {}

    def send() -> None:
        # After commit, so the submit itself pays nothing; a campaign without models has
        # nothing to score and sends no message.
        if not Campaign.model_versions.through.objects.filter(
            campaign_id=campaign_id, modelversion__is_active=True
        ).exists():
            return
        try:
            edit_score_task.apply_async(args=[edit_id], **options)
        except Exception:
            logger.warning("could not send edit %s to scoring", edit_id, exc_info=True)

    transaction.on_commit(send)
