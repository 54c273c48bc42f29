"""The export's fast reads (annotation/services/exports.py): rows come as the database
driver's tuples, so the few conversions Django's converters would make are the export's own
(_db_iso, booleans); they give what the model's values give, and a batch's reads are one
query per table (plus the pairs' validations), pinned exactly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from annotation.models import Annotation, CounterfactualEdit, Membership, Validation
from annotation.services.exports import _db_iso, _iso, export_build, export_snapshot
from tests.annotation.annotator_helpers import add_annotators, member, text_campaign
from tests.annotation.export_helpers import do_work, unzip

PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(
    ("stored", "tz", "model_value"),
    [
        # SQLite: the text Django wrote (naive, in the connection's time zone)
        ("2026-12-01 14:16:12.123456", UTC, datetime(2026, 12, 1, 14, 16, 12, 123456, UTC)),
        ("2026-12-01 14:16:12", UTC, datetime(2026, 12, 1, 14, 16, 12, tzinfo=UTC)),
        ("2026-12-01 15:16:12.500000", PARIS, datetime(2026, 12, 1, 14, 16, 12, 500000, UTC)),
        # PostgreSQL: the driver's aware datetime, in any offset
        (
            datetime(2026, 12, 1, 16, 16, 12, 7, timezone(timedelta(hours=2))),
            UTC,
            datetime(2026, 12, 1, 14, 16, 12, 7, UTC),
        ),
        (datetime(2026, 12, 1, 14, 16, 12), UTC, datetime(2026, 12, 1, 14, 16, 12, tzinfo=UTC)),
    ],
)
def test_stored_datetimes_are_written_as_the_models_value(stored, tz, model_value):  # type: ignore[no-untyped-def]
    assert _db_iso(stored, tz) == _iso(model_value)
    assert _db_iso(None, UTC) == _iso(None) == ""


@pytest.mark.django_db
def test_rows_read_from_the_cursor_are_the_models_values(tmp_path: Path) -> None:
    campaign = text_campaign(4, redundancy=2, validations_required=1, validations_to_verify=1)
    users = add_annotators(campaign, 2)
    validator = member(campaign, "vic-validator", Membership.Role.VALIDATOR)
    do_work(campaign, users, validator)
    # A whole second: SQLite's text then has no fraction.
    first = Annotation.objects.filter(campaign=campaign).order_by("id").first()
    assert first is not None
    Annotation.objects.filter(pk=first.pk).update(
        created_at=datetime(2026, 12, 1, 9, 30, tzinfo=UTC), late=True
    )
    snap = export_snapshot(campaign=campaign)
    export_build(campaign=campaign, fmt="jsonl", snapshot=snap, dest=tmp_path / "a.zip")
    out = unzip(tmp_path / "a.zip", tmp_path / "x")
    rows = [json.loads(line) for line in (out / "annotations.jsonl").open()]
    by_id = {a.pk: a for a in Annotation.objects.filter(campaign=campaign)}
    assert len(rows) == len(by_id) == 2
    for row in rows:
        a = by_id[row["annotation_id"]]
        assert row["created_at"] == _iso(a.created_at)
        assert row["is_gold"] is a.is_gold and row["late"] is a.late  # JSON booleans
        assert row["evidence"] == a.evidence
    assert rows[0]["created_at"] == "2026-12-01T09:30:00+00:00" and rows[0]["late"] is True
    pairs = [json.loads(line) for line in (out / "pairs.jsonl").open()]
    edits = {e.pk: e for e in CounterfactualEdit.objects.filter(campaign=campaign)}
    assert len(pairs) == len(edits) == 2
    for pair in pairs:
        edit = edits[pair["edit_id"]]
        assert pair["created_at"] == _iso(edit.created_at)
        assert pair["minimality"] == edit.minimality
        votes = Validation.objects.filter(edit=edit).order_by("id")
        assert [v["created_at"] for v in pair["validations"]] == [_iso(v.created_at) for v in votes]
        assert all(v["broken"] is False for v in pair["validations"])
    assert sum(len(p["validations"]) for p in pairs) == 1


@pytest.mark.django_db
def test_a_batchs_validations_are_its_campaigns_only(tmp_path: Path) -> None:
    """Validations are read by the batch's edit id range: another campaign's edit inside
    that range keeps its validation to itself."""
    a = text_campaign(3, redundancy=1)
    b = text_campaign(3, redundancy=1, validations_required=1, validations_to_verify=1)
    do_work(a, add_annotators(a, 1))
    do_work(b, add_annotators(b, 1), member(b, "bo-validator", Membership.Role.VALIDATOR))
    do_work(a, add_annotators(a, 1, prefix="late"))
    ids = sorted(CounterfactualEdit.objects.values_list("id", "campaign_id"))
    assert [c for _, c in ids] == [a.pk, b.pk, a.pk]  # b's edit lies between a's
    assert Validation.objects.filter(edit__campaign=b).count() == 1
    export_build(
        campaign=a, fmt="jsonl", snapshot=export_snapshot(campaign=a), dest=tmp_path / "a.zip"
    )
    out = unzip(tmp_path / "a.zip", tmp_path / "x")
    pairs = [json.loads(line) for line in (out / "pairs.jsonl").open()]
    assert [p["validations"] for p in pairs] == [[], []]


@pytest.mark.django_db
def test_each_batch_is_one_query_per_table(tmp_path: Path, exact_queries) -> None:  # type: ignore[no-untyped-def]
    """10 annotations and 10 edits in batches of 4: three reads of annotations, three of
    edits and three of their validations; the rest is per export, whatever its size."""
    campaign = text_campaign(10, redundancy=1)
    do_work(campaign, add_annotators(campaign, 10))
    snap = export_snapshot(campaign=campaign)
    # the two row counts, model names, the campaign's models, agreement, and the datasheet's
    # counts of edits by status, of annotators and of the pool, and whether the campaign has
    # perturbation studies
    per_export = 9
    with exact_queries(per_export + 3 + 3 * 2):
        report = export_build(
            campaign=campaign, fmt="jsonl", snapshot=snap, dest=tmp_path / "a.zip", batch_rows=4
        )
    assert report.rows == {"annotations": 10, "pairs": 10}
