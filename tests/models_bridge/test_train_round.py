"""train_round end to end on a small real campaign (docs/rounds.md): easy-VQA examples of both
splits, the multiplicative reference package as round 1's target, text edits verified by
validators and scored by the real model; one short epoch. Then: the next version registered
(through the registry's sandboxed check), round 1 closed with its report, round 2 open
against the new version; a second run registers nothing."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from annotation.models import Assignment, Campaign, CampaignRound, CounterfactualEdit
from annotation.models import Membership as M
from annotation.selectors_rounds import campaign_rounds
from annotation.services.campaigns import campaign_add_examples, campaign_create
from annotation.services.imports import easyvqa_import
from annotation.services.rounds import round_open
from models_bridge.models import ModelVersion
from models_bridge.services.bulk import edit_score
from models_bridge.services.registry import model_register
from models_bridge.services.round_training import next_version, split_pairs
from tests.annotation.annotator_helpers import add_annotators, annotate_body, member
from tests.conftest import client_for
from tests.models_bridge.conftest import package_dir

pytestmark = pytest.mark.django_db(transaction=False)
TARGET = "easyvqa-multiplicative"


def _edit(campaign: Campaign, user: Any) -> int:
    client = client_for(user)
    task = client.post(
        f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "annotate"}, format="json"
    ).json()
    label = task["example"].get("label") or "no"
    target = "yes" if label != "yes" else "no"
    r = client.post(
        f"/api/v1/assignments/{task['assignment']['id']}/submit/",
        annotate_body(task, label=label, target=target),
        format="json",
    )
    assert r.status_code == 201, r.content
    return int(r.json()["edit"]["id"])


def _verify(campaign: Campaign, n: int) -> None:
    for i in range(n):
        client = client_for(member(campaign, f"val-{i}", M.Role.VALIDATOR))
        task = client.post(
            f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "validate"}, format="json"
        ).json()
        edit = CounterfactualEdit.objects.get(
            pk=Assignment.objects.get(pk=task["assignment"]["id"]).edit_id
        )
        r = client.post(
            f"/api/v1/assignments/{task['assignment']['id']}/submit/",
            {"idempotency_key": f"v-{i}", "label": edit.target_label, "broken": False},
            format="json",
        )
        assert r.status_code == 201, r.content


@pytest.fixture
def round_one() -> dict[str, Any]:
    package_dir(TARGET)
    dataset = easyvqa_import(split="test", limit=24, seed=0).dataset
    assert dataset is not None
    easyvqa_import(split="train", limit=48, seed=0)
    target = model_register(dataset=dataset, kind="torchscript", location=TARGET)
    campaign = campaign_create(
        dataset=dataset,
        name="rounds-e2e",
        status=Campaign.Status.ACTIVE,
        redundancy=1,
        editable_modalities=["text"],
        edit_budgets={"text": 0.5},
        validations_required=1,
        validations_to_verify=1,
    )
    campaign_add_examples(
        campaign=campaign,
        example_ids=list(dataset.examples.filter(split="test").values_list("id", flat=True)),
    )
    first = round_open(campaign=campaign, target=target)
    edit_ids = [_edit(campaign, u) for u in add_annotators(campaign, 4)]
    _verify(campaign, len(edit_ids))
    for pk in edit_ids:
        assert edit_score(edit_id=pk)["scored"] == [target.pk]
    return {"campaign": campaign, "target": target, "round": first, "edits": edit_ids}


def _run(campaign: Campaign, number: int, *extra: str) -> str:
    out = io.StringIO()
    call_command(
        "train_round",
        campaign.name,
        "--round",
        str(number),
        "--epochs",
        "1",
        "--pair-repeats",
        "2",
        *extra,
        stdout=out,
    )
    return out.getvalue()


def test_train_round_registers_the_next_version_and_opens_the_next_round(
    round_one: dict[str, Any],
) -> None:
    campaign, target = round_one["campaign"], round_one["target"]
    assert (
        CounterfactualEdit.objects.filter(round=round_one["round"], status="verified").count() == 4
    )
    printed = _run(campaign, 1)

    new = ModelVersion.objects.get(name=TARGET, version="2")
    assert new.manifest["training"]["source"] == {"campaign": campaign.pk, "round": 1}
    assert new.manifest["training"]["train_pairs"] == 3
    assert new.manifest["op_scan"]["policy_version"]  # passed the sandboxed allowlist check
    assert new.package_sha256 != target.package_sha256
    first = CampaignRound.objects.get(campaign=campaign, number=1)
    second = CampaignRound.objects.get(campaign=campaign, number=2)
    assert first.closed_at is not None and first.trained_model_id == new.pk
    assert second.closed_at is None and second.target_id == new.pk
    assert campaign.model_versions.filter(pk=new.pk).exists()
    report = first.training
    assert len(report["heldout_edit_ids"]) == 1 and len(report["train_edit_ids"]) == 3
    assert set(report["heldout_edit_ids"]) | set(report["train_edit_ids"]) == set(
        round_one["edits"]
    )
    acc = report["accuracy"]
    for figure in ("test", "heldout_pairs"):
        assert set(acc[figure]) == {"old", "new"}
        assert all(0.0 <= acc[figure][k] <= 1.0 for k in ("old", "new"))
    assert first.target_accuracy == acc["test"]["old"]
    assert second.target_accuracy == acc["test"]["new"]
    assert report["test_examples"] == 24
    # Printed side by side, and shown per round on the dashboard figures.
    assert "test split" in printed and "held-out pairs" in printed
    assert f"{TARGET}@1" in printed and f"{TARGET}@2" in printed
    rows = campaign_rounds(campaign=campaign)
    assert [r["target_test_accuracy"] for r in rows] == [acc["test"]["old"], acc["test"]["new"]]
    assert rows[0]["trained_model"]["id"] == new.pk

    # Again: nothing is trained or registered, and it says so.
    again = _run(campaign, 1)
    assert "already trained" in again
    assert ModelVersion.objects.filter(name=TARGET).count() == 2
    assert CampaignRound.objects.filter(campaign=campaign).count() == 2

    # Round 2 has no verified pairs yet: a named error, nothing written.
    with pytest.raises(CommandError, match="round_no_verified_pairs"):
        _run(campaign, 2)
    assert ModelVersion.objects.filter(name=TARGET).count() == 2


def test_pair_split_and_versions_are_deterministic() -> None:
    train, held = split_pairs(list(range(1, 21)), holdout=0.25, seed=3)
    assert (train, held) == split_pairs(list(range(20, 0, -1)), holdout=0.25, seed=3)
    assert len(held) == 5 and not set(train) & set(held)
    assert split_pairs([7, 8], holdout=0.1, seed=0)[1] != []  # one held out of two
    assert split_pairs([7], holdout=0.5, seed=0) == ([7], [])
    assert (next_version("1"), next_version("9"), next_version("v1")) == ("2", "10", "v1.1")


def test_finetune_is_reproducible_for_a_seed() -> None:
    """Two fine-tunes of the same package on the same rows with the same seed give the same
    weights; another seed gives others."""
    import torch

    from models_bridge.reference.finetune import finetune, load_module

    weights = (package_dir(TARGET) / "model.pt").read_bytes()
    g = torch.Generator().manual_seed(0)
    images = torch.randn(12, 3, 64, 64, generator=g)
    tokens = torch.randint(2, 20, (12, 16), generator=g)
    rows = list(range(12))

    def prepare(idx: Any) -> dict[str, Any]:
        return {"image": images[list(idx)], "text": tokens[list(idx)]}

    def run(seed: int) -> dict[str, Any]:
        module = load_module(weights)
        finetune(
            module, rows=rows, labels=[i % 13 for i in rows], prepare=prepare, epochs=2,
            seed=seed, batch_size=4, log=lambda _: None,
        )  # fmt: skip
        return {k: v.clone() for k, v in module.state_dict().items()}

    first, again, other = run(0), run(0), run(1)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)
