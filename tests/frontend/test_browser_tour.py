"""The README's quick tour, end to end in real Chromium (issue 8 "Done when"): over a dataset
imported beforehand, a manager creates a campaign from the browser, fills its pool, starts
it, invites annotator A by e-mail and B through a Prolific study link; A signs up from the
mail and annotates, B annotates and finishes with the completion code; the manager watches
the dashboard count grow without a reload, reads the pair in the viewer, and downloads a
Parquet export (run by a real `celery worker`) that loads in `datasets` and pandas.
Screenshots: artifacts/screenshots/tour-*."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from annotation.models import Assignment, Campaign, CounterfactualEdit, CrowdWorker, Job
from tests.annotation.test_celery_worker import _database_url, _forget_queue, _stop_worker
from tests.factories import UserFactory
from tests.frontend.conftest import VIEWPORT, login, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

POOL = 4
CODE = "TOUR42"


def annotate_with_text_edit(page: Any) -> Assignment:
    """Label the task on screen, then turn its question into a one-word edit and submit."""
    page.wait_for_selector(".ws[data-assignment]")
    ident = page.get_attribute(".ws[data-assignment]", "data-assignment")
    label_btn = page.locator("#step-label .label-btn").first
    label = label_btn.get_attribute("data-label")
    label_btn.click()
    page.click("#step-label button.primary")
    page.wait_for_selector("#step-edit:not([hidden])")
    page.click("label[for=cfm-text]")
    page.locator(f"#step-edit .label-btn:not([data-label='{label}'])").first.click()
    words = page.input_value("#cf-text").split(" ")
    words[-1] = "object?" if words[-1] != "object?" else "thing?"
    page.fill("#cf-text", " ".join(words))
    page.click("#step-edit button.primary")
    page.wait_for_function(
        "id => !document.querySelector(`.ws[data-assignment='${id}']`)", arg=ident
    )
    return Assignment.objects.get(pk=int(ident))  # type: ignore[arg-type]


def start_worker(queue: str, log: Path, media_root: str) -> subprocess.Popen[bytes]:
    """A real `celery worker` on the broker this process sends to (the embedded filesystem
    transport, or Redis when CELERY_BROKER_URL says so), reading the test database."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "counterpoint.settings_test",
        "DATABASE_URL": _database_url(),
        "MEDIA_ROOT": media_root,
        "CELERY_TASK_ALWAYS_EAGER": "0",
    }
    cmd = [
        str(Path(sys.executable).with_name("celery")),
        "-A", "counterpoint", "worker", "-Q", queue,
        "--pool", "solo", "--concurrency", "1",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
        "--hostname", f"{queue}@localhost", "--loglevel", "INFO",
    ]  # fmt: skip
    root = Path(__file__).resolve().parents[2]
    with log.open("wb") as out:
        return subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)


def test_quick_tour(
    page: Any, browser: Any, live_server: Any, transactional_db: Any, settings: Any, tmp_path: Path
) -> None:
    import datasets
    import pandas as pd

    from annotation.services.imports import easyvqa_import

    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path / "mail")
    settings.DASHBOARD_CACHE_SECONDS = 0  # the count must follow each submit, not a cache
    # Every job of this test (edit scoring, the export) goes to a queue only its worker reads.
    queue = f"test-tour-{uuid.uuid4().hex[:12]}"
    settings.JOBS_QUEUE_OVERRIDE = queue
    # Imported beforehand, as `manage.py import_dataset easyvqa` does for a researcher.
    dataset = easyvqa_import(split="test", limit=12, seed=0).dataset
    UserFactory(username="rita", is_staff=True)  # the operator (`manager` in `make demo`)

    # 1. Create the campaign from the form.
    login(page, "rita", next_url="/manage/")
    page.click("#new-campaign")
    page.wait_for_selector("#f-dataset option[value]:not([value=''])", state="attached")
    page.select_option("#f-dataset", str(dataset.pk))
    page.fill("#f-name", "Tour campaign")
    page.fill("#f-instructions", "Answer the question, then change **one word** of it.")
    page.fill("#f-redundancy", "1")
    shot(page, "tour-01-new-campaign")
    page.click("#save-campaign")
    page.wait_for_url(re.compile(r".*/manage/campaigns/\d+/$"))
    campaign = Campaign.objects.get(name="Tour campaign")
    assert campaign.dataset_id == dataset.pk and campaign.status == Campaign.Status.DRAFT

    # 2. The pool: a seeded random sample of 4.
    page.click(".manage-tabs a:has-text('Pool')")
    page.wait_for_selector("#pool-count")
    page.fill("#pool-limit", str(POOL))
    page.fill("#pool-seed", "7")
    page.click("#pool-add")
    page.wait_for_function(
        "n => document.getElementById('pool-count').textContent === n", arg=str(POOL)
    )
    shot(page, "tour-02-pool")

    # 3. Start it.
    page.click(".manage-tabs a:has-text('Settings')")
    page.click("#lifecycle-start")
    page.wait_for_selector("#lifecycle-message")
    shot(page, "tour-03-start-dialog")
    page.click("#lifecycle-confirm")
    page.wait_for_selector("#lifecycle-status:has-text('Active')")
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.ACTIVE

    # 4. People: invite A by e-mail, make a Prolific study link for B.
    page.click(".manage-tabs a:has-text('People')")
    page.fill("#invite-email", "ada@example.org")
    page.select_option("#invite-role", "annotator")
    page.click("#invite-form button[type=submit]")
    page.wait_for_selector(".people-msg[data-kind=notice]")
    page.fill("#crowd-cc", CODE)
    page.click("#crowd-form button[type=submit]")
    page.wait_for_selector(".crowd-link")
    study_url = page.input_value(".crowd-link .copy-source")
    assert "(1 person per item)" in page.inner_text("#rules-form")
    page.screenshot(path=str(shot(page, "tour-04-people")), full_page=True)

    # 5. The dashboard, open while they work.
    page.click(".manage-tabs a:has-text('Dashboard')")
    page.wait_for_selector("#dashboard[data-loaded]")
    count = page.locator('[data-count="annotations"]')
    expect(count).to_have_text(re.compile(rf"^0 / {POOL}"))
    shot(page, "tour-05-dashboard-empty")

    # 6. A follows the mailed link, sets a password and annotates.
    (mail,) = list((tmp_path / "mail").iterdir())
    text = mail.read_text()
    assert "To: ada@example.org" in text
    signup = re.search(r"(http://\S+/signup/\S+/)", text).group(1)  # type: ignore[union-attr]
    ctx_a = browser.new_context(viewport=VIEWPORT, base_url=live_server.url)
    a = ctx_a.new_page()
    a.set_default_timeout(15_000)
    a.goto(signup)
    a.fill("#su-username", "ada")
    a.fill("#su-password", "violet kettle 42 harbour")
    a.fill("#su-password2", "violet kettle 42 harbour")
    shot(a, "tour-06-signup")
    a.click("form button[type=submit]")
    a.wait_for_url(f"**/campaigns/{campaign.pk}/annotate/")
    a.wait_for_selector(".ws[data-assignment]")
    a.wait_for_function(
        "() => [...document.querySelectorAll('.img-stage img')].some(i => i.naturalWidth > 0)"
    )
    shot(a, "tour-07-annotate")
    done_a = annotate_with_text_edit(a)
    assert done_a.annotator.username == "ada"
    expect(count).to_have_text(re.compile(rf"^1 / {POOL}"), timeout=20_000)
    ctx_a.close()

    # 7. B arrives from Prolific, annotates one task and finishes with the code.
    ctx_b = browser.new_context(viewport=VIEWPORT, base_url=live_server.url)
    b = ctx_b.new_page()
    b.set_default_timeout(15_000)
    b.goto(f"{study_url.split('?')[0]}?PROLIFIC_PID=5f0a1b2c3d4e&STUDY_ID=s1&SESSION_ID=x1")
    b.wait_for_url(f"**/campaigns/{campaign.pk}/annotate/")
    worker = CrowdWorker.objects.select_related("user").get(worker_id="5f0a1b2c3d4e")
    annotate_with_text_edit(b)
    b.wait_for_selector(".ws[data-assignment]")
    b.click("#crowd-finish")
    b.wait_for_url(f"**/crowd/finish/{campaign.pk}/")
    assert b.inner_text("#completion-code") == CODE
    shot(b, "tour-08-completion-code")
    ctx_b.close()
    worker.refresh_from_db()
    assert worker.finished_at is not None

    # 8. The dashboard followed, in the same document.
    expect(count).to_have_text(re.compile(rf"^2 / {POOL}"), timeout=20_000)
    assert page.evaluate("() => performance.getEntriesByType('navigation').length") == 1
    page.set_viewport_size({"width": 1280, "height": 1800})
    shot(page, "tour-09-dashboard")
    page.set_viewport_size(VIEWPORT)

    # 9. The pairs.
    edits = list(CounterfactualEdit.objects.filter(campaign=campaign))
    assert len(edits) == 2
    page.click(".manage-tabs a:has-text('Pairs')")
    page.wait_for_selector(".pair[data-edit] .side-original canvas")
    shot(page, "tour-10-pairs")

    # 10. Export as Parquet on a real worker, download, load.
    log = tmp_path / "worker.log"
    worker_proc = start_worker(queue, log, str(settings.MEDIA_ROOT))
    try:
        page.click(".manage-tabs a:has-text('Exports')")
        page.check("input[name=format][value=parquet]")
        page.click("#export-start")
        page.locator("#exports-table tbody tr").first.wait_for()
        job = Job.objects.get(kind=Job.Kind.EXPORT, campaign=campaign)
        row = f"tr[data-export-id='{job.pk}']"
        try:
            page.wait_for_selector(f"{row}[data-status=succeeded]", timeout=120_000)
        except Exception:
            pytest.fail(f"the export did not finish; worker log:\n{log.read_text()[-3000:]}")
    finally:
        _stop_worker(worker_proc)
        _forget_queue(queue)
    shot(page, "tour-11-export-done")
    with page.expect_download() as info:
        page.click(f"{row} a.export-download")
    archive = tmp_path / info.value.suggested_filename
    info.value.save_as(archive)
    out = tmp_path / "export"
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(out)
    pairs = datasets.load_dataset(
        "parquet", data_files=str(out / "pairs.parquet"), split="train", cache_dir=tmp_path / "c"
    )
    assert pairs.num_rows == 2
    assert isinstance(pairs.features["original_image"], datasets.Image)
    frame = pd.read_parquet(out / "annotations.parquet")
    assert set(frame["annotator"]) == {"ada", worker.user.username}
