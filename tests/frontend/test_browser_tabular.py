"""The tabular editor (a dataset with a tabular modality): feature values as a form, changed
values highlighted, the meter as the fraction of features changed; the edit stored."""

from __future__ import annotations

from typing import Any

import pytest

from annotation.models import Campaign, CounterfactualEdit
from annotation.schema import content_hash
from annotation.services.campaigns import campaign_add_examples, campaign_create
from tests.factories import DatasetFactory, ExampleFactory
from tests.frontend.conftest import login, member, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_tabular_edit(page: Any, transactional_db: Any) -> None:
    dataset = DatasetFactory(
        name="vitals",
        modalities=[
            {"name": "vitals", "kind": "tabular", "label": "Vital signs"},
            {"name": "note", "kind": "text"},
        ],
        label_space=["healthy", "at risk"],
    )
    values = {"vitals": {"age": 61, "systolic": 150, "smoker": "yes"}, "note": "follow-up visit"}
    example = ExampleFactory(
        dataset=dataset, values=values, content_hash=content_hash(values), label="at risk"
    )
    for i in range(3):  # the dataset's spread of each feature (for the server's scaled L1)
        other = {"vitals": {"age": 40 + i, "systolic": 120 + 5 * i, "smoker": "no"}, "note": "x"}
        ExampleFactory(dataset=dataset, values=other, content_hash=content_hash(other))
    campaign = campaign_create(
        dataset=dataset,
        name="Tabular",
        status=Campaign.Status.ACTIVE,
        editable_modalities=["vitals"],
        edit_budgets={"vitals": 0.5},
    )
    campaign_add_examples(campaign=campaign, example_ids=[example.pk])
    ana = member(campaign, "ana", "annotator")

    login(page, "ana", next_url=f"/campaigns/{campaign.pk}/annotate/")
    page.wait_for_selector(".ws[data-assignment]")
    assert "systolic" in page.inner_text(".modality-tabular")
    page.keyboard.press("2")  # "at risk"
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("table.editable")  # the only editable modality: no choice to make
    page.keyboard.press("Escape")
    page.click("#step-edit .label-btn[data-label='healthy']")
    page.fill("input[data-feature='systolic']", "118")
    row = page.locator("tr", has=page.locator("input[data-feature='systolic']"))
    assert "changed" in (row.get_attribute("class") or "")
    meter = page.locator(".tabed .meter")
    assert float(meter.get_attribute("data-fraction")) == pytest.approx(1 / 3)
    page.wait_for_selector("#live-panel[data-state=ok]")
    assert "No models are attached" in page.inner_text("#live-panel")
    shot(page, "annotate-tabular-edit")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("[data-state=done]")
    edit = CounterfactualEdit.objects.get(author=ana)
    assert edit.modality == "vitals"
    assert edit.edited_values["vitals"] == {"age": 61, "systolic": 118, "smoker": "yes"}
    assert edit.edited_values["note"] == "follow-up visit"
    assert edit.minimality["fraction_changed"] == pytest.approx(1 / 3)
