"""Counterfactual edits (docs/architecture.md "Counterfactual protocol"): check a submitted edit against the protocol, then store it.

`counterfactual_check` reads (the original image) but writes nothing, so a refused edit leaves
nothing behind; `counterfactual_store_media` writes the edited image (content-addressed, so a
retry or a later refusal costs at most an unreferenced file); `counterfactual_submit` creates
the row inside the caller's transaction. Model scores are not computed here: the submit path
never waits on a model (bulk scoring fills `CounterfactualEdit.scores`)."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from annotation import minimality
from annotation.models import Annotation, Assignment, Campaign, CounterfactualEdit, Example, Media
from annotation.schema import content_hash
from annotation.services.media import CheckedImage, check_image_bytes, media_read, media_store
from counterpoint.errors import Unavailable, ValidationFailed

_DATA_URL = re.compile(
    r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?:;[\w-]+=[\w.-]+)*;base64,(?P<data>.*)$", re.DOTALL
)
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


def decode_data_url(value: Any, *, what: str) -> bytes:
    """Bytes of a `data:…;base64,…` URL (or of bare base64)."""
    if not isinstance(value, str) or not value:
        raise ValidationFailed(
            f"{what} must be a data:image/png;base64,… URL", code="image_not_an_image"
        )
    match = _DATA_URL.match(value)
    payload = match.group("data") if match else value
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationFailed(
            f"{what} is not valid base64 image data", code="image_not_an_image"
        ) from None


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


def _original_image_bytes(sha256: str) -> bytes:
    media = Media.objects.filter(sha256=sha256).first()
    if media is None:
        raise Unavailable(
            f"the original image {sha256[:12]}… is not in media storage", code="media_missing"
        )
    try:
        return media_read(media)
    except OSError:
        raise Unavailable(
            f"the original image {sha256[:12]}… cannot be read", code="media_missing"
        ) from None


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
        value = counterfactual.get("value")
        if not isinstance(value, str):
            raise ValidationFailed(
                "a text edit needs the edited text in counterfactual.value",
                code="counterfactual_invalid",
            )
        if len(value) > settings.IMPORT_MAX_TEXT_CHARS:
            raise ValidationFailed(
                f"the edited text has {len(value):,} characters, over the cap of {settings.IMPORT_MAX_TEXT_CHARS:,}",
                code="counterfactual_invalid",
            )
        original_text = original if isinstance(original, str) else ""
        if value == original_text:
            raise ValidationFailed(
                "the edited text is identical to the original", code="counterfactual_no_change"
            )
        figures = minimality.text_minimality(original_text, value)
        if _over_budget(figures["minimality"], budget):
            raise ValidationFailed(
                f"the edit changes {figures['token_distance']} of {figures['tokens']} words "
                f"(minimality {figures['minimality']:.2f}), over the {modality} budget of {float(budget):.2f}",  # type: ignore[arg-type]
                code="counterfactual_over_budget",
                details={"figure": "minimality", "value": figures["minimality"], "budget": budget},
            )
        edited_values[modality] = value

    elif kind == "image":
        checked_image = check_image_bytes(
            decode_data_url(counterfactual.get("image"), what="counterfactual.image")
        )
        original_bytes = _original_image_bytes(str(original))
        try:
            figures = minimality.image_minimality(original_bytes, checked_image.data)
        except minimality.ImageSizeMismatch as exc:
            raise ValidationFailed(
                f"{exc}; the edited image must keep the original's width x height",
                code="image_wrong_size",
            ) from None
        if figures["changed_pixels"] == 0:
            raise ValidationFailed(
                "the edited image has the same pixels as the original",
                code="counterfactual_no_change",
            )
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
                decode_data_url(counterfactual["mask"], what="counterfactual.mask")
            )
            if (checked_mask.width, checked_mask.height) != (
                checked_image.width,
                checked_image.height,
            ):
                raise ValidationFailed(
                    f"the mask is {checked_mask.width}x{checked_mask.height}, the image "
                    f"{checked_image.width}x{checked_image.height}",
                    code="image_wrong_size",
                )
        edited_values[modality] = checked_image.sha256

    else:  # tabular
        value = counterfactual.get("value")
        if not isinstance(value, dict) or not isinstance(original, dict):
            raise ValidationFailed(
                "a tabular edit needs {feature: value} in counterfactual.value",
                code="counterfactual_invalid",
            )
        if set(value) != set(original):
            missing, extra = sorted(set(original) - set(value)), sorted(set(value) - set(original))
            raise ValidationFailed(
                f"a tabular edit must give exactly the original's features (missing {missing}, unknown {extra})",
                code="counterfactual_invalid",
            )
        bad = [
            f
            for f, v in value.items()
            if not (v is None or isinstance(v, str | int | float | bool))
        ]
        if bad:
            raise ValidationFailed(
                f"features {bad} must be numbers or strings", code="counterfactual_invalid"
            )
        mad = tabular_mad(modality) if tabular_mad is not None else {}
        figures = minimality.tabular_minimality(original, value, mad)
        if not figures["changed_features"]:
            raise ValidationFailed(
                "the edited values are identical to the original", code="counterfactual_no_change"
            )
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
        edited_values[modality] = value

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
    """Create the edit for a stored annotation (call inside the submit transaction)."""
    edit = counterfactual_edit_for(annotation=annotation, checked=checked)
    edit.save(force_insert=True)
    return edit


def counterfactual_edit_for(*, annotation: Annotation, checked: CheckedEdit) -> CounterfactualEdit:
    """The (unsaved) edit row for an annotation: the full edited values, hash, labels and
    minimality figures. Scores stay empty: bulk scoring fills them, never the submit path."""
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
