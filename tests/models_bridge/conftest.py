"""Fixtures for the model bridge: a small real easy-VQA dataset (images from the easy-vqa
package), the reference packages, and a call-counting adapter wrapper."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import easy_vqa
import numpy as np
import pytest
from django.conf import settings

from annotation.models import Campaign, Dataset, Example, Membership
from annotation.schema import content_hash
from annotation.services.media import media_store_bytes
from models_bridge.adapters.base import Adapter, Batch
from models_bridge.services.loading import adapter_cache_clear, adapter_cache_put, adapter_for
from tests.annotation.annotator_helpers import annotate_body
from tests.conftest import client_for
from tests.factories import MembershipFactory, UserFactory

MODELS_DIR = Path(settings.MODELS_DIR)


def package_dir(name: str) -> Path:
    path = MODELS_DIR / name
    if not (path / "model.pt").exists():
        pytest.skip(f"reference package {name} is not trained yet (fixtures/models/{name})")
    return path


def reference_names() -> list[str]:
    """The model names (model.json `name`) of the reference packages, in REFERENCE_MODELS
    order: two folders hold two versions of easyvqa-cross-attention."""
    import json

    from models_bridge.services.registry import REFERENCE_MODELS

    return [
        json.loads((package_dir(n) / "model.json").read_text())["name"] for n in REFERENCE_MODELS
    ]


@pytest.fixture(autouse=True)
def _fresh_adapters():  # type: ignore[no-untyped-def]
    # Model version ids repeat across tests (rolled-back transactions), so the process
    # cache must not carry an adapter from one test into the next.
    adapter_cache_clear()
    yield
    adapter_cache_clear()


def easyvqa_dataset(*, n: int = 12, name: str = "easy-VQA-test") -> Dataset:
    texts, answers, image_ids = easy_vqa.get_test_questions()
    paths = easy_vqa.get_test_image_paths()
    ds = Dataset.objects.create(
        name=name,
        modalities=[{"name": "image", "kind": "image"}, {"name": "text", "kind": "text"}],
        label_space=list(easy_vqa.get_answers()),
    )
    for i in range(n):
        with open(paths[image_ids[i]], "rb") as fh:
            media = media_store_bytes(data=fh.read())
        values = {"image": media.sha256, "text": texts[i]}
        Example.objects.create(
            dataset=ds,
            external_id=f"test-{i}",
            values=values,
            label=answers[i],
            split="test",
            content_hash=content_hash(values),
        )
    return ds


@pytest.fixture
def evqa(db):  # type: ignore[no-untyped-def]
    return easyvqa_dataset()


@pytest.fixture
def evqa_campaign(evqa):  # type: ignore[no-untyped-def]
    from annotation.services.campaigns import campaign_add_examples, campaign_create

    # Randomised, so evqa_people's two annotators are in the two arms (drawn at invitation).
    campaign = campaign_create(
        dataset=evqa,
        name="evqa-campaign",
        status=Campaign.Status.ACTIVE,
        editable_modalities=["image", "text"],
        edit_budgets={"image": 0.25, "text": 0.5},
        feedback_arm=Campaign.FeedbackArm.RANDOMISED,
    )
    campaign_add_examples(campaign=campaign)
    return campaign


@pytest.fixture
def evqa_people(evqa_campaign):  # type: ignore[no-untyped-def]
    """manager, annotator (shown arm), hidden annotator (hidden arm), outsider."""
    manager = UserFactory(username="mia-manager")
    MembershipFactory(campaign=evqa_campaign, user=manager, role=Membership.Role.MANAGER)
    # The balanced draw at invitation puts two newcomers in different arms.
    arms = {}
    for name in ("sid-annotator", "hal-annotator"):
        user = UserFactory(username=name)
        m = MembershipFactory(campaign=evqa_campaign, user=user, role=Membership.Role.ANNOTATOR)
        arms[m.arm] = user
    shown, hidden = arms[Membership.Arm.SHOWN], arms[Membership.Arm.HIDDEN]
    outsider = UserFactory(username="oz-outsider")
    return {"manager": manager, "shown": shown, "hidden": hidden, "outsider": outsider}


def lease(campaign: Campaign, user: Any, *, skipped: bool = False):  # type: ignore[no-untyped-def]
    """The person's annotate assignment, leased through the assignment service (so its slot is
    counted like any other); `skipped`: then given back, for the tests of a closed task."""
    from annotation.services.assignments import assignment_lease, assignment_skip

    assignment = assignment_lease(campaign=campaign, annotator=user, kind="annotate").assignment
    assert assignment is not None, "the campaign's pool has nothing left for this person"
    if skipped:
        assignment_skip(assignment=assignment)
    return assignment


class CountingAdapter(Adapter):
    """Wraps a real adapter and counts the batches that reach the model."""

    def __init__(self, inner: Adapter) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.labels = inner.labels
        self.modalities = inner.modalities
        self.factorized = inner.factorized
        self.calls = 0
        self.rows = 0

    def prepare(self, batch: Batch) -> Any:
        return self.inner.prepare(batch)

    def run(self, prepared: Any) -> np.ndarray:
        self.calls += 1
        out = self.inner.run(prepared)
        self.rows += out.shape[0]
        return out

    def predict(self, batch: Batch) -> np.ndarray:
        return self.run(self.prepare(batch))


def counting(mv: Any) -> CountingAdapter:
    wrapper = CountingAdapter(adapter_for(mv))
    adapter_cache_put(mv, wrapper)
    return wrapper


def annotate_all(campaign: Any, user: Any, answers: list[str]) -> int:
    """Lease and submit until the pool has nothing left for `user`; the reliance answer is
    `answers[example id % len(answers)]` (so people agree on an example given the same list);
    returns how many were submitted."""
    client = client_for(user)
    done = 0
    while True:
        r = client.post(
            f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "annotate"}, format="json"
        )
        if r.status_code == 204:
            return done
        task = r.json()
        body = annotate_body(
            task, label="yes", target="no", reliance=answers[task["example"]["id"] % len(answers)]
        )
        r = client.post(
            f"/api/v1/assignments/{task['assignment']['id']}/submit/", body, format="json"
        )
        assert r.status_code == 201, r.content
        done += 1
