"""Campaign setup in the browser (issue 8 §1), in real Chromium: create a campaign from the
form over an imported dataset, a refused setting shown at its field with the rule's code,
the pool by split and a seeded sample with gold items, the task order changed, the preview
of the annotator's page writing nothing, and the pause / close confirmations."""

from __future__ import annotations

from typing import Any

import pytest

from annotation import policy
from annotation.models import (
    Annotation,
    Assignment,
    Attempt,
    Campaign,
    CampaignExample,
    Membership,
)
from annotation.services.assignments import assignment_lease
from tests.annotation.annotator_helpers import add_annotators, text_campaign
from tests.factories import UserFactory
from tests.frontend.conftest import login, member, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _settings_loaded(page: Any) -> None:
    page.wait_for_selector("#lifecycle-actions button, #lifecycle-leases:not(:empty)")
    page.wait_for_function("() => document.getElementById('f-name').value !== ''")


def test_create_a_campaign_from_the_form_over_an_imported_dataset(
    page: Any, transactional_db: Any
) -> None:
    from annotation.services.imports import easyvqa_import
    from tests.frontend.conftest import register_reference_models

    dataset = easyvqa_import(split="test", limit=30, seed=0).dataset
    models = register_reference_models(dataset)
    UserFactory(username="rita", is_staff=True)  # the operator: sees every dataset
    login(page, "rita", next_url="/manage/")
    page.wait_for_selector("#manage-list p")
    shot(page, "manage-list-empty")
    page.click("#new-campaign")
    page.wait_for_selector("#f-dataset option[value]:not([value=''])", state="attached")
    page.select_option("#f-dataset", str(dataset.pk))
    page.wait_for_selector("#f-models input[data-model]")
    page.fill("#f-name", "Colours and shapes")
    page.fill(
        "#f-instructions",
        "# Look first\n\nAnswer **what the picture shows**, then change *one* input.\n\n"
        "<script>alert(1)</script>",
    )
    page.wait_for_selector("#instructions-preview strong")
    assert "<script" not in page.inner_html("#instructions-preview")
    page.fill("#f-redundancy", "2")
    page.select_option("#f-task_order", "stratified")
    page.uncheck("#f-edit-image")
    page.fill("#f-edit-text-budget", "0.3")
    chosen = models[:2]
    for mv in chosen:
        page.check(f"#f-model-{mv.pk}")
    page.uncheck("#f-q-confidence-on")
    page.fill("#f-q-reliance-text", "Which parts did you need?")
    shot(page, "manage-new-form")
    page.click("#save-campaign")
    page.wait_for_url("**/manage/campaigns/*/")
    _settings_loaded(page)
    campaign = Campaign.objects.get(name="Colours and shapes")
    assert page.url.endswith(f"/manage/campaigns/{campaign.pk}/")
    assert campaign.dataset_id == dataset.pk and campaign.status == Campaign.Status.DRAFT
    assert campaign.redundancy == 2 and campaign.task_order == "stratified"
    assert campaign.editable_modalities == ["text"] and campaign.edit_budgets == {"text": 0.3}
    assert campaign.questions == {
        "confidence": {"enabled": False, "text": ""},
        "reliance": {"enabled": True, "text": "Which parts did you need?"},
    }
    assert sorted(campaign.model_versions.values_list("id", flat=True)) == sorted(
        m.pk for m in chosen
    )
    assert Membership.objects.filter(campaign=campaign, role="manager").exists()
    shot(page, "manage-settings-created")
    page.goto("/manage/")
    page.wait_for_selector(f".manage-row[data-campaign-id='{campaign.pk}']")
    shot(page, "manage-list")


def test_a_refused_setting_is_shown_at_its_field_with_the_rule_code(
    page: Any, transactional_db: Any
) -> None:
    campaign = text_campaign(6, status=Campaign.Status.DRAFT, name="Rules")
    member(campaign, "max", Membership.Role.MANAGER)
    add_annotators(campaign, 2)  # 2 annotators < 3 validators needed: the warning shows
    login(page, "max", next_url=f"/manage/campaigns/{campaign.pk}/")
    _settings_loaded(page)
    page.wait_for_selector("#campaign-warnings [data-code='team_too_small_for_validation']")
    page.fill("#f-validations_required", "2")
    page.fill("#f-validations_to_verify", "4")
    page.click("#save-campaign")
    err = page.wait_for_selector("#err-validations_to_verify:not([hidden])")
    assert err.get_attribute("data-code") == "campaign_validation_rule"
    assert "cannot exceed" in err.inner_text()
    assert page.get_attribute("#f-validations_to_verify", "aria-invalid") == "true"
    shot(page, "manage-settings-field-error")
    campaign.refresh_from_db()
    assert (campaign.validations_required, campaign.validations_to_verify) == (3, 2)
    page.fill("#f-validations_to_verify", "1")
    page.click("#save-campaign")
    page.wait_for_selector("#err-validations_to_verify[hidden]", state="attached")
    page.wait_for_selector(".toast:has-text('Settings saved')")
    # The warning is recomputed with the saved rule: still short, now of 2 validators.
    page.wait_for_selector("#campaign-warnings .banner:has-text('needs 2 validators')")
    campaign.refresh_from_db()
    assert (campaign.validations_required, campaign.validations_to_verify) == (2, 1)


def test_pool_by_split_and_a_seeded_sample_and_gold_items(page: Any, transactional_db: Any) -> None:
    from tests.factories import DatasetFactory, ExampleFactory

    dataset = DatasetFactory(
        name="pool-set", modalities=[{"name": "text", "kind": "text"}], label_space=["yes", "no"]
    )
    for i in range(30):
        ExampleFactory(
            dataset=dataset,
            values={"text": f"question {i}"},
            label=["yes", "no"][i % 3 == 0],
            split="train" if i < 20 else "test",
            metadata={"source": "web" if i % 2 else "book"},
        )
    from annotation.services.campaigns import campaign_create

    boss = UserFactory(username="pia")
    campaign = campaign_create(dataset=dataset, name="Pool", created_by=boss, seed=5)
    login(page, "pia", next_url=f"/manage/campaigns/{campaign.pk}/pool/")
    page.wait_for_selector("#pool-split option[value='train']", state="attached")
    assert page.inner_text("#pool-count") == "0"
    page.select_option("#pool-split", "train")
    page.fill("#pool-limit", "8")
    page.fill("#pool-seed", "42")
    page.click("#pool-add")
    page.wait_for_function("() => document.getElementById('pool-count').textContent === '8'")
    in_pool = set(
        CampaignExample.objects.filter(campaign=campaign).values_list(
            "example__external_id", "example__split"
        )
    )
    assert len(in_pool) == 8 and {s for _, s in in_pool} == {"train"}
    assert page.locator("#pool-labels .prog").count() == len(
        set(
            CampaignExample.objects.filter(campaign=campaign).values_list(
                "example__label", flat=True
            )
        )
    )
    page.select_option("#pool-split", "")
    page.fill("#pool-limit", "")
    page.fill("#pool-seed", "")
    page.select_option("#pool-meta-field", "source")
    page.fill("#pool-meta-value", "book")
    books = {e.pk for e in dataset.examples.all() if e.metadata["source"] == "book"}
    before = set(
        CampaignExample.objects.filter(campaign=campaign).values_list("example_id", flat=True)
    )
    page.click("#pool-add")
    page.wait_for_function(
        f"() => document.getElementById('pool-count').textContent === '{len(before | books)}'"
    )
    assert (
        set(CampaignExample.objects.filter(campaign=campaign).values_list("example_id", flat=True))
        == before | books
    )
    first = sorted(books)[:2]
    page.fill("#gold-ids", ", ".join(str(i) for i in first))
    page.click("#gold-add")
    page.wait_for_selector(f"#gold-table tr[data-example='{first[1]}']")
    assert set(
        CampaignExample.objects.filter(campaign=campaign, is_gold=True).values_list(
            "example_id", flat=True
        )
    ) == set(first)
    page.fill("#gold-ids", "999999")
    page.click("#gold-add")
    err = page.wait_for_selector("#err-gold:not([hidden])")
    assert err.get_attribute("data-code") == "gold_not_in_pool"
    shot(page, "manage-pool")


def test_changing_the_task_order_reranks_the_pool(page: Any, transactional_db: Any) -> None:
    campaign = text_campaign(12, redundancy=1, status=Campaign.Status.ACTIVE, name="Order")
    member(campaign, "ola", Membership.Role.MANAGER)
    login(page, "ola", next_url=f"/manage/campaigns/{campaign.pk}/")
    _settings_loaded(page)
    page.select_option("#f-task_order", "stratified")
    page.click("#save-campaign")
    page.wait_for_selector(".toast")
    campaign.refresh_from_db()
    assert campaign.task_order == "stratified"
    rows = CampaignExample.objects.filter(campaign=campaign).values_list(
        "example_id", "example__label", "rank"
    )
    expected = policy.pool_ranks(
        [policy.RankInput(ex, label) for ex, label, _ in rows],
        order="stratified",
        seed=campaign.seed,
    )
    assert {ex: rank for ex, _, rank in rows} == expected
    page.goto(f"/manage/campaigns/{campaign.pk}/pool/")
    page.wait_for_selector("#pool-order:has-text('Stratified by label')")
    page.goto(f"/manage/campaigns/{campaign.pk}/")
    _settings_loaded(page)
    page.select_option("#f-task_order", "uncertainty")
    page.click("#save-campaign")
    page.wait_for_selector(".toast")
    page.goto(f"/manage/campaigns/{campaign.pk}/pool/")
    note = page.wait_for_selector("#pool-order:has-text('Least confident first')")
    assert "no models" in note.inner_text()
    shot(page, "manage-pool-task-order")


def test_the_preview_shows_the_annotator_page_and_writes_nothing(
    page: Any, transactional_db: Any
) -> None:
    from annotation.services.imports import easyvqa_import

    dataset = easyvqa_import(split="test", limit=12, seed=0).dataset
    from annotation.services.campaigns import campaign_add_examples, campaign_create

    boss = UserFactory(username="pam")
    campaign = campaign_create(
        dataset=dataset,
        name="Preview me",
        created_by=boss,
        instructions="Answer **the question**.\n\n- then edit *one* input",
        editable_modalities=["text"],
        edit_budgets={"text": 0.5},
    )
    campaign_add_examples(campaign=campaign)
    before = (Assignment.objects.count(), Annotation.objects.count(), Attempt.objects.count())
    login(page, "pam", next_url=f"/manage/campaigns/{campaign.pk}/preview/")
    page.wait_for_selector(".ws")
    assert "Preview." in page.inner_text("#preview-note")
    assert page.inner_html(".instructions-body").count("<strong>the question</strong>") == 1
    first = page.inner_text("#preview-nav")
    page.locator(".label-btn").first.click()
    page.click("#step-label button.primary")
    page.wait_for_selector("#step-edit:not([hidden])")
    assert "does not call the models" in page.inner_text("#step-edit")
    shot(page, "manage-preview")
    page.fill(
        "#step-edit textarea, #step-edit [contenteditable]", "what color is the shape?"
    ) if page.locator("#step-edit textarea").count() else None
    page.fill("#cf-text", "is there a circle?")
    page.locator("#step-edit .label-btn:not([disabled])").first.click()
    page.click("#step-edit button.primary")
    page.wait_for_selector(".toast:has-text('Preview: nothing was submitted')")
    page.click("#preview-next")
    page.wait_for_function(f"() => document.getElementById('preview-nav').innerText !== {first!r}")
    assert (
        Assignment.objects.count(),
        Annotation.objects.count(),
        Attempt.objects.count(),
    ) == before
    # Nothing kept in the browser either.
    assert (
        page.evaluate(
            "Object.keys(localStorage).filter(k => k.startsWith('counterpoint:draft')).length"
        )
        == 0
    )


def test_pause_and_close_confirm_what_happens_to_open_leases(
    page: Any, transactional_db: Any
) -> None:
    campaign = text_campaign(6, redundancy=1, status=Campaign.Status.ACTIVE, name="Lifecycle")
    member(campaign, "lea", Membership.Role.MANAGER)
    for user in add_annotators(campaign, 3):
        assignment_lease(campaign=campaign, annotator=user, kind="annotate")
    login(page, "lea", next_url=f"/manage/campaigns/{campaign.pk}/")
    _settings_loaded(page)
    page.click("#lifecycle-pause")
    msg = page.wait_for_selector("#lifecycle-message")
    assert msg.inner_text().startswith("3 open leases: pausing keeps them")
    shot(page, "manage-pause-dialog")
    page.click("#lifecycle-confirm")
    page.wait_for_selector("#lifecycle-status:has-text('Paused')")
    campaign.refresh_from_db()
    assert campaign.status == "paused"
    assert Assignment.objects.filter(campaign=campaign, status="active").count() == 3
    page.click("#lifecycle-close")
    msg = page.wait_for_selector("#lifecycle-message")
    assert "3 open leases: closing expires them (autosaved drafts are kept)" in msg.inner_text()
    shot(page, "manage-close-dialog")
    page.click("#lifecycle-confirm")
    page.wait_for_selector("#lifecycle-status:has-text('Closed')")
    assert Assignment.objects.filter(campaign=campaign, status="expired").count() == 3
    assert page.locator("#lifecycle-actions button").count() == 0
    shot(page, "manage-closed")
