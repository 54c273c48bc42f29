"""train_round (docs/rounds.md): fine-tune a round's target on the dataset's training split
plus the round's verified pairs, register the result as the target's next version, and move
the campaign to the next round against it.

Steps, none inside a transaction (training and scoring are slow; only the final record
is, in annotation.services.rounds.round_record_training):
1. The round's verified edits become pairs (edited values, verified label); a seeded part
   (`holdout`) is held out and never trained on.
2. The target's package (the registered, checked bytes) is loaded afresh and fine-tuned on
   the training split (all of it, or a seeded sample of `train_limit`) plus the training
   pairs, each repeated `pair_repeats` times, with the package's own preprocessing.
3. The module is written as a package (model.json of the parent with the new version and the
   training record) and registered through the registry (sandboxed op-allowlist check).
4. Old and new models are scored through the scoring service (Score cache) on the test split
   and on the held-out pairs; the figures are printed and stored on the round.

Idempotent: a round that has a trained model is reported, nothing is trained or registered
(`already_trained`). A version registered by an earlier, interrupted run of the same round
(its model.json names the campaign and round) is taken up instead of a second one."""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from annotation.models import CampaignRound, CounterfactualEdit, Example
from annotation.services.rounds import round_record_training
from counterpoint.errors import Conflict, ValidationFailed
from models_bridge.models import ModelVersion
from models_bridge.services.loading import adapter_for
from models_bridge.services.registry import model_register
from models_bridge.services.scoring import build_batch, score

TRAIN_SPLIT = "train"
TEST_SPLIT = "test"


@dataclass
class RoundTraining:
    round: CampaignRound
    model: ModelVersion | None
    next_round: CampaignRound | None
    report: dict[str, Any] = field(default_factory=dict)
    already_trained: bool = False


def next_version(version: str) -> str:
    """The version after `version`: "1" → "2"; a non-numeric one gets ".1" appended."""
    return str(int(version) + 1) if version.isdigit() else f"{version}.1"


def split_pairs(
    edit_ids: Sequence[int], *, holdout: float, seed: int
) -> tuple[list[int], list[int]]:
    """(training ids, held-out ids): a seeded draw of round(holdout·n) held out, at least one
    on each side when there are two or more pairs. Same ids and seed → same split."""
    if not 0 <= holdout < 1:
        raise ValidationFailed("holdout must be in [0, 1)", code="round_holdout")
    ids = sorted(edit_ids)
    k = round(holdout * len(ids))
    if len(ids) >= 2 and holdout > 0:
        k = min(max(k, 1), len(ids) - 1)
    held = set(random.Random(seed).sample(ids, k)) if k else set()
    return [i for i in ids if i not in held], sorted(held)


def _label_index(mv: ModelVersion) -> dict[str, int]:
    """dataset label → the model's label index (the first model label mapped onto it)."""
    out: dict[str, int] = {}
    for i, label in enumerate(mv.labels):
        out.setdefault(str(mv.label_map.get(label, label)), i)
    return out


def _accuracy(mv: ModelVersion, rows: Sequence[tuple[dict[str, Any], str]]) -> float | None:
    if not rows:
        return None
    results = score(model_version=mv, inputs=[values for values, _ in rows])
    hits = sum(r.predicted_label == label for r, (_, label) in zip(results, rows, strict=True))
    return round(hits / len(rows), 6)


def _training_rows(dataset_id: int, *, limit: int | None, seed: int) -> list[tuple[Any, str]]:
    rows = list(
        Example.objects.filter(dataset_id=dataset_id, split=TRAIN_SPLIT)
        .exclude(label=None)
        .order_by("id")
        .values_list("values", "label")
    )
    if limit is not None and limit < len(rows):
        rows = [rows[i] for i in sorted(random.Random(seed).sample(range(len(rows)), limit))]
    return [(values, str(label)) for values, label in rows]


def _test_rows(dataset_id: int) -> list[tuple[Any, str]]:
    return [
        (values, str(label))
        for values, label in Example.objects.filter(dataset_id=dataset_id, split=TEST_SPLIT)
        .exclude(label=None)
        .order_by("id")
        .values_list("values", "label")
    ]


def _tag(round: CampaignRound) -> dict[str, int]:
    return {"campaign": round.campaign_id, "round": round.number}


def round_train(
    *,
    round: CampaignRound,
    epochs: int = 1,
    seed: int = 0,
    holdout: float = 0.25,
    pair_repeats: int = 20,
    train_limit: int | None = None,
    lr: float = 1e-4,
    log: Callable[[str], None] = print,
) -> RoundTraining:
    """Train round `round` (see the module docstring). Raises ValidationFailed for a target
    that is not a TorchScript package, a round without verified pairs or a dataset without a
    training split; Conflict when the next version's name is taken by another model."""
    if round.trained_model_id is not None:
        following = CampaignRound.objects.filter(
            campaign_id=round.campaign_id, number=round.number + 1
        ).first()
        return RoundTraining(
            round, round.trained_model, following, dict(round.training), already_trained=True
        )
    if epochs < 1:
        raise ValidationFailed("epochs must be at least 1", code="round_epochs")
    if pair_repeats < 1:
        raise ValidationFailed("pair_repeats must be at least 1", code="round_pair_repeats")
    target = round.target
    campaign = round.campaign
    if target.kind != ModelVersion.Kind.TORCHSCRIPT:
        raise ValidationFailed(
            f"train_round fine-tunes TorchScript packages; {target} is a {target.kind} model",
            code="round_target_not_trainable",
        )
    pairs = list(
        CounterfactualEdit.objects.filter(round=round, status=CounterfactualEdit.Status.VERIFIED)
        .order_by("id")
        .values_list("id", "edited_values", "target_label")
    )
    if not pairs:
        raise ValidationFailed(
            f"round {round.number} of {campaign.name!r} has no verified pairs to train on",
            code="round_no_verified_pairs",
        )
    train_ids, held_ids = split_pairs([p[0] for p in pairs], holdout=holdout, seed=seed)
    by_id = {pk: (values, str(label)) for pk, values, label in pairs}
    train_rows = _training_rows(campaign.dataset_id, limit=train_limit, seed=seed)
    if not train_rows:
        raise ValidationFailed(
            f"dataset {campaign.dataset.name!r} has no labelled examples in split "
            f"{TRAIN_SPLIT!r}; import its training split first (docs/rounds.md)",
            code="round_no_training_split",
        )
    test_rows = _test_rows(campaign.dataset_id)
    held_rows = [by_id[i] for i in held_ids]

    version = next_version(target.version)
    existing = ModelVersion.objects.filter(name=target.name, version=version).first()
    training: dict[str, Any]
    if existing is not None:
        if (existing.manifest.get("training") or {}).get("source") != _tag(round):
            raise Conflict(
                f"{target.name}@{version} is already registered and was not trained from "
                f"round {round.number} of {campaign.name!r}",
                code="round_version_taken",
            )
        log(f"{existing} was registered by an earlier run of this round: taking it up")
        new_mv = existing
        training = dict(existing.manifest.get("training") or {})
    else:
        new_mv, training = _train_and_register(
            round=round,
            version=version,
            fit_rows=[*train_rows, *[by_id[i] for i in train_ids] * pair_repeats],
            counts={
                "train_examples": len(train_rows),
                "train_pairs": len(train_ids),
                "heldout_pairs": len(held_ids),
                "pair_repeats": pair_repeats,
            },
            epochs=epochs,
            seed=seed,
            lr=lr,
            log=log,
        )

    log(
        f"scoring {target} and {new_mv} on {len(test_rows)} test examples and {len(held_rows)} held-out pairs"
    )
    report = {
        **training,
        "holdout": holdout,
        "heldout_edit_ids": held_ids,
        "train_edit_ids": train_ids,
        "test_examples": len(test_rows),
        "old_model": {"id": target.pk, "name": target.name, "version": target.version},
        "new_model": {"id": new_mv.pk, "name": new_mv.name, "version": new_mv.version},
        "accuracy": {
            "test": {"old": _accuracy(target, test_rows), "new": _accuracy(new_mv, test_rows)},
            "heldout_pairs": {
                "old": _accuracy(target, held_rows),
                "new": _accuracy(new_mv, held_rows),
            },
        },
    }
    acc = report["accuracy"]["test"]
    row, following, recorded = round_record_training(
        round=round,
        trained_model=new_mv,
        training=report,
        target_accuracy=acc["old"],
        trained_accuracy=acc["new"],
    )
    if not recorded:
        return RoundTraining(
            row, row.trained_model, following, dict(row.training), already_trained=True
        )
    return RoundTraining(row, new_mv, following, report)


def _train_and_register(
    *,
    round: CampaignRound,
    version: str,
    fit_rows: list[tuple[Any, str]],
    counts: dict[str, int],
    epochs: int,
    seed: int,
    lr: float,
    log: Callable[[str], None],
) -> tuple[ModelVersion, dict[str, Any]]:
    import torch

    from models_bridge.adapters.torchscript import TorchScriptAdapter
    from models_bridge.reference.finetune import finetune, load_module, save_checked

    target = round.target
    adapter = adapter_for(target)
    if not isinstance(adapter, TorchScriptAdapter):
        raise ValidationFailed(f"{target} is not a TorchScript package", code="round_target")
    index = _label_index(target)
    usable = [(values, label) for values, label in fit_rows if label in index]
    if not usable:
        raise ValidationFailed(
            f"none of the training labels is one of {target}'s", code="round_no_training_split"
        )

    def prepare(rows: Sequence[tuple[Any, str]]) -> dict[str, torch.Tensor]:
        # The package's preprocessing on the dataset values, as scoring does (build_batch).
        return adapter.prepare(build_batch(target, [values for values, _ in rows]))

    module = load_module(adapter.package.weights)
    log(
        f"fine-tuning {target} on {len(usable)} rows ({counts['train_examples']} training "
        f"examples + {counts['train_pairs']} pairs x {counts['pair_repeats']}), "
        f"{epochs} epoch(s), seed {seed}"
    )
    fit = finetune(
        module,
        rows=usable,
        labels=[index[label] for _, label in usable],
        prepare=prepare,
        epochs=epochs,
        seed=seed,
        lr=lr,
        log=log,
    )
    training = {
        "source": _tag(round),
        "parent": {"id": target.pk, "name": target.name, "version": target.version},
        "seed": seed,
        "epochs": epochs,
        "optimizer": f"Adam(lr={lr})",
        **counts,
        "fit_rows": len(usable),
        "losses": fit["losses"],
        "seconds": fit["seconds"],
    }
    manifest = json.loads(adapter.package.manifest_bytes)
    manifest.update(
        version=version,
        description=(
            f"{manifest.get('description', '')} Fine-tuned from {target.name}@{target.version} "
            f"on round {round.number} of campaign {round.campaign.name!r} (docs/rounds.md)."
        ).strip(),
        training=training,
    )
    manifest.pop("metrics", None)  # the parent's figures; the new ones are on the round
    work = Path(tempfile.mkdtemp(prefix="round-", dir=_work_dir()))
    try:
        save_checked(module, work / "model.pt", prepare(usable[:8]), manifest.get("exports", []))
        (work / "model.json").write_text(json.dumps(manifest, indent=2) + "\n")
        new_mv = model_register(
            dataset=round.campaign.dataset, kind=ModelVersion.Kind.TORCHSCRIPT, location=str(work)
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"registered {new_mv} (id {new_mv.pk})")
    return new_mv, training


def _work_dir() -> str:
    path = Path(settings.MEDIA_ROOT) / "models"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)
