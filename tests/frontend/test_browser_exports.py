"""The exports page in real headless Chromium: a manager picks a format, starts an export,
watches its progress bar fill without a reload while a worker runs the job, and downloads
the archive; an annotator gets no page."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import pytest

from annotation.models import Job, Membership
from annotation.tasks import export_run
from tests.annotation.annotator_helpers import add_annotators, member, text_campaign
from tests.annotation.export_helpers import do_work
from tests.frontend.conftest import login, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_start_follow_and_download_an_export(page: Any, transactional_db: Any, tmp_path: Path):
    campaign = text_campaign(6, redundancy=2, name="Shapes study")
    member(campaign, "mona", Membership.Role.MANAGER)
    do_work(campaign, add_annotators(campaign, 4))

    login(page, "mona")
    page.goto(f"/manage/campaigns/{campaign.pk}/exports/")
    assert page.get_attribute(".manage-tabs a[aria-current=page]", "href").endswith("/exports/")
    page.wait_for_selector("#exports-empty:not([hidden])")
    shot(page, "exports-empty")

    page.check("input[name=format][value=parquet]")
    page.click("#export-start")
    row = page.locator("#exports-table tbody tr").first
    row.wait_for()
    assert row.get_attribute("data-status") == "pending"
    assert "parquet" in row.inner_text()
    shot(page, "exports-pending")

    job = Job.objects.get(kind=Job.Kind.EXPORT, campaign=campaign)
    export_run(job.pk)  # what the io worker does with the message the POST sent

    # The page polls: the same row turns into a finished export with a link, no reload.
    page.wait_for_selector(f"tr[data-export-id='{job.pk}'][data-status=succeeded]")
    link = page.locator(f"tr[data-export-id='{job.pk}'] a.export-download")
    assert link.is_visible()
    assert (
        page.get_attribute(f"tr[data-export-id='{job.pk}'] [role=progressbar]", "aria-valuenow")
        == "100"
    )
    assert "4 annotations · 4 pairs" in page.inner_text(f"tr[data-export-id='{job.pk}']")
    shot(page, "exports-done")

    with page.expect_download() as info:
        link.click()
    saved = tmp_path / info.value.suggested_filename
    info.value.save_as(saved)
    job.refresh_from_db()
    assert saved.name == Path(job.result_file.name).name
    with zipfile.ZipFile(saved) as zf:
        assert sorted(zf.namelist()) == ["README.md", "annotations.parquet", "pairs.parquet"]


def test_exports_page_is_for_managers(page: Any, transactional_db: Any):
    campaign = text_campaign(2, name="Closed room")
    member(campaign, "andy", Membership.Role.ANNOTATOR)
    login(page, "andy")
    response = page.goto(f"/manage/campaigns/{campaign.pk}/exports/")
    assert response is not None and response.status == 403
