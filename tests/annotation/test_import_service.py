"""The import services against a real database and a real MEDIA_ROOT: every bad input gives a
clear error and leaves the database and the media folder exactly as they were."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import easy_vqa
import pytest
from django.conf import settings

from annotation.models import Dataset, Example, Media
from annotation.schema import content_hash
from annotation.services.imports import easyvqa_import, manifest_import
from counterpoint.errors import Conflict, ValidationFailed
from tests.factories import UserFactory
from tests.fixtures_import.builders import (
    SCHEMA,
    bomb_png,
    data_uri,
    line,
    media_files,
    noisy_png,
    png,
    snapshot,
    truncated_png,
    write_images,
    write_jsonl,
)

pytestmark = pytest.mark.django_db


def run(path: Path, fmt: str = "jsonl", **kw: Any):
    kw.setdefault("dataset_name", "pets")
    kw.setdefault("modalities", SCHEMA["modalities"])
    kw.setdefault("label_space", SCHEMA["label_space"])
    return manifest_import(manifest_path=path, fmt=fmt, **kw)


def expect_invalid(path: Path, *, fmt: str = "jsonl", **kw: Any) -> list[dict[str, Any]]:
    """Runs an import that must fail; asserts nothing changed; returns the reported lines."""
    before = snapshot()
    with pytest.raises(ValidationFailed) as exc:
        run(path, fmt, **kw)
    assert snapshot() == before
    assert exc.value.code == "import_invalid"
    assert "nothing was imported" in exc.value.message
    return exc.value.details


# --- good imports -------------------------------------------------------------------------------


def test_manifest_import_stores_examples_and_media_once(tmp_path: Path) -> None:
    write_images(tmp_path, **{"a.png": png(), "same-bytes.png": png(), "b.png": png((0, 0, 255))})
    user = UserFactory()
    path = write_jsonl(
        tmp_path,
        [
            line("a", split="train", metadata={"source": "x"}),
            line("b", image="img/b.png", label="no"),
            line("c", image="img/same-bytes.png", label=None),
            line("d", image=data_uri(png((0, 0, 255)))),
        ],
    )
    report = run(path, created_by=user)
    assert (report.created, report.skipped_existing, report.errors) == (4, 0, [])
    assert (report.media_created, report.media_reused) == (2, 0)
    ds = Dataset.objects.get(name="pets")
    assert ds.created_by == user and ds.label_space == ["yes", "no"]
    rows = {e.external_id: e for e in Example.objects.filter(dataset=ds)}
    assert (
        rows["a"].split == "train"
        and rows["a"].metadata == {"source": "x"}
        and rows["c"].label is None
    )
    assert rows["a"].values["image"] == rows["c"].values["image"] != rows["b"].values["image"]
    assert rows["b"].values["image"] == rows["d"].values["image"]
    assert all(e.content_hash == content_hash(e.values) for e in rows.values())
    assert Media.objects.count() == 2
    for m in Media.objects.all():
        assert Path(m.file.name).name.startswith(m.sha256)
        assert (Path(settings.MEDIA_ROOT) / m.file.name).read_bytes() in (png(), png((0, 0, 255)))
    assert len([f for f in media_files() if f.endswith(".png")]) == 2


def test_rerun_is_a_no_op_and_new_lines_are_added(tmp_path: Path) -> None:
    write_images(tmp_path, **{"a.png": png()})
    path = write_jsonl(tmp_path, [line("a"), line("b")])
    run(path)
    before = snapshot()
    again = run(path)
    assert (again.created, again.skipped_existing) == (0, 2) and snapshot() == before
    path = write_jsonl(tmp_path, [line("a"), line("b"), line("c", image=data_uri(png((5, 5, 5))))])
    more = run(path)  # schema taken from the existing dataset
    assert (more.created, more.skipped_existing, more.media_created) == (1, 2, 1)


def test_existing_dataset_supplies_the_schema_and_must_match_it(tmp_path: Path) -> None:
    write_images(tmp_path, **{"a.png": png()})
    run(write_jsonl(tmp_path, [line("a")]))
    report = manifest_import(
        dataset_name="pets", manifest_path=write_jsonl(tmp_path, [line("b")]), fmt="jsonl"
    )
    assert report.created == 1
    before = snapshot()
    with pytest.raises(Conflict) as exc:
        run(write_jsonl(tmp_path, [line("c")]), label_space=["yes", "no", "maybe"])
    assert exc.value.code == "dataset_schema_mismatch" and snapshot() == before


def test_new_dataset_needs_a_schema(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path, [line("a")])
    for kw in ({"modalities": None}, {"label_space": None}):
        with pytest.raises(ValidationFailed) as exc:
            run(path, **kw)
        assert exc.value.code == "schema_missing"


def test_schema_file(tmp_path: Path) -> None:
    write_images(tmp_path, **{"a.png": png()})
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({**SCHEMA, "description": "pets"}))
    report = run(
        write_jsonl(tmp_path, [line("a")]), modalities=None, label_space=None, schema_path=schema
    )
    assert report.created == 1 and report.dataset.description == "pets"


def test_csv_import(tmp_path: Path) -> None:
    write_images(tmp_path, **{"a.png": png()})
    (tmp_path / "m.csv").write_text(
        "external_id,image,text,label,split,metadata.source\na,img/a.png,is it red?,yes,test,web\n"
    )
    report = run(tmp_path / "m.csv", "csv")
    assert report.created == 1
    ex = Example.objects.get()
    assert (ex.values["text"], ex.split, ex.metadata) == ("is it red?", "test", {"source": "web"})


# --- bad input: one test per rule, each showing nothing changed -------------------------------------


def _case(tmp_path: Path, name: str) -> tuple[Path, dict[str, Any]]:
    """Builds a manifest whose line 2 breaks rule `name` (line 1 is always good)."""
    write_images(
        tmp_path,
        **{
            "a.png": png(),
            "notimage.png": b"just some text",
            "empty.png": b"",
            "trunc.png": truncated_png(),
            "bomb.png": bomb_png(),
            "big.png": noisy_png((64, 64)),
        },
    )
    (tmp_path / "img" / "folder.png").mkdir()
    outside = tmp_path.parent / f"{tmp_path.name}-outside.png"
    outside.write_bytes(png())
    (tmp_path / "img" / "link.png").symlink_to(outside)
    good = line("good", image="img/a.png")
    kw: dict[str, Any] = {}
    bad: Any = {
        "json_malformed": '{"external_id": "x", "values": ',
        "record_not_object": '"just a string"',
        "field_missing": {"external_id": "x", "values": {"image": "img/a.png"}},
        "field_missing_id": {"values": {"image": "img/a.png", "text": "t"}},
        "modality_unknown": {
            "external_id": "x",
            "values": {"image": "img/a.png", "text": "t", "audio": "a"},
        },
        "label_unknown": line("x", label="maybe"),
        "external_id_duplicate": line("good"),
        "file_missing": line("x", image="img/nope.png"),
        "file_unreadable": line("x", image="img/folder.png"),
        "image_not_an_image": line("x", image="img/notimage.png"),
        "image_truncated": line("x", image="img/trunc.png"),
        "image_too_many_pixels": line("x", image="img/bomb.png"),
        "image_too_large": line("x", image="img/big.png"),
        "image_empty": line("x", image="img/empty.png"),
        "path_traversal": line("x", image=f"../{tmp_path.name}-outside.png"),
        "path_absolute": line("x", image=str(outside)),
        "path_symlink_escape": line("x", image="img/link.png"),
        "text_not_utf8": b'{"external_id": "x", "values": {"image": "img/a.png", "text": "caf\xe9"}}',
        "text_not_utf8_escape": '{"external_id": "x", "values": {"image": "img/a.png", "text": "\\udcff"}}',
        "text_too_long": line("x", text="y" * 101),
        "data_uri_invalid": line("x", image="data:image/png;base64,!!notbase64"),
    }[name]
    if name == "image_too_large":
        kw["max_bytes"] = len(png()) + 10  # the noisy PNG is far bigger than the plain one
    if name == "text_too_long":
        kw["max_text"] = 100
    return write_jsonl(tmp_path, [good, bad]), kw


BAD_CASES = {
    # rule name → (field, code)
    "json_malformed": ("line", "json_malformed"),
    "record_not_object": ("line", "record_not_object"),
    "field_missing": ("values.text", "field_missing"),
    "field_missing_id": ("external_id", "field_missing"),
    "modality_unknown": ("values.audio", "modality_unknown"),
    "label_unknown": ("label", "label_unknown"),
    "external_id_duplicate": ("external_id", "external_id_duplicate"),
    "file_missing": ("values.image", "file_missing"),
    "file_unreadable": ("values.image", "file_unreadable"),
    "image_not_an_image": ("values.image", "image_not_an_image"),
    "image_truncated": ("values.image", "image_truncated"),
    "image_too_many_pixels": ("values.image", "image_too_many_pixels"),
    "image_too_large": ("values.image", "image_too_large"),
    "image_empty": ("values.image", "image_empty"),
    "path_traversal": ("values.image", "path_traversal"),
    "path_absolute": ("values.image", "path_absolute"),
    "path_symlink_escape": ("values.image", "path_symlink_escape"),
    "text_not_utf8": ("line", "text_not_utf8"),
    "text_not_utf8_escape": ("values.text", "text_not_utf8"),
    "text_too_long": ("values.text", "text_too_long"),
    "data_uri_invalid": ("values.image", "data_uri_invalid"),
}


@pytest.mark.parametrize("name", sorted(BAD_CASES))
def test_bad_line_fails_the_whole_import_and_changes_nothing(
    tmp_path: Path, settings: Any, name: str
) -> None:
    path, kw = _case(tmp_path, name)
    if "max_bytes" in kw:
        settings.IMPORT_MAX_IMAGE_BYTES = kw["max_bytes"]
    if "max_text" in kw:
        settings.IMPORT_MAX_TEXT_CHARS = kw["max_text"]
    details = expect_invalid(path)
    field, code = BAD_CASES[name]
    assert [(d["line"], d["field"], d["code"]) for d in details] == [(2, field, code)], details
    assert details[0]["message"]
    assert not Dataset.objects.filter(name="pets").exists()


@pytest.mark.parametrize("name", sorted(BAD_CASES))
def test_skip_invalid_imports_the_good_line_and_reports_the_bad(
    tmp_path: Path, settings: Any, name: str
) -> None:
    path, kw = _case(tmp_path, name)
    if "max_bytes" in kw:
        settings.IMPORT_MAX_IMAGE_BYTES = kw["max_bytes"]
    if "max_text" in kw:
        settings.IMPORT_MAX_TEXT_CHARS = kw["max_text"]
    report = run(path, skip_invalid=True)
    assert report.created == 1 and [e["code"] for e in report.errors] == [BAD_CASES[name][1]]
    assert list(Example.objects.values_list("external_id", flat=True)) == ["good"]
    # Only the good line's image was stored.
    assert Media.objects.count() == 1 and len([f for f in media_files() if f.endswith(".png")]) == 1


def test_decompression_bomb_is_refused_from_the_header_under_our_own_cap(
    tmp_path: Path, settings: Any
) -> None:
    settings.IMPORT_MAX_IMAGE_PIXELS = 10_000  # below Pillow's own bomb limit, so this is our check
    write_images(tmp_path, **{"a.png": png(), "wide.png": bomb_png(200, 100)})
    details = expect_invalid(write_jsonl(tmp_path, [line("a"), line("b", image="img/wide.png")]))
    assert [(d["line"], d["code"]) for d in details] == [(2, "image_too_many_pixels")]
    assert "200x100" in details[0]["message"]


def test_non_utf8_csv_field(tmp_path: Path) -> None:
    write_images(tmp_path, **{"a.png": png()})
    (tmp_path / "m.csv").write_bytes(
        b"external_id,image,text\na,img/a.png,ok\nb,img/a.png,caf\xe9\n"
    )
    details = expect_invalid(tmp_path / "m.csv", fmt="csv")
    assert [(d["line"], d["field"], d["code"]) for d in details] == [(3, "text", "text_not_utf8")]


def test_empty_manifest(tmp_path: Path) -> None:
    (tmp_path / "m.jsonl").write_bytes(b"")
    details = expect_invalid(tmp_path / "m.jsonl")
    assert [d["code"] for d in details] == ["manifest_empty"]
    details = expect_invalid(tmp_path / "m.jsonl", skip_invalid=True)
    assert [d["code"] for d in details] == ["manifest_empty"]


def test_missing_manifest(tmp_path: Path) -> None:
    before = snapshot()
    with pytest.raises(ValidationFailed) as exc:
        run(tmp_path / "nope.jsonl")
    assert exc.value.code == "manifest_missing" and snapshot() == before


def test_all_lines_invalid_with_skip_invalid_still_fails(tmp_path: Path) -> None:
    details = expect_invalid(write_jsonl(tmp_path, ["{", "["]), skip_invalid=True)
    assert [d["line"] for d in details] == [1, 2]


def test_changed_example_against_the_database(tmp_path: Path) -> None:
    write_images(tmp_path, **{"a.png": png()})
    run(write_jsonl(tmp_path, [line("a"), line("b")]))
    details = expect_invalid(
        write_jsonl(tmp_path, [line("a"), line("b", text="a different question"), line("c")])
    )
    assert [(d["line"], d["field"], d["code"]) for d in details] == [
        (2, "external_id", "external_id_exists")
    ]
    assert "different content" in details[0]["message"]


def test_failure_while_writing_removes_the_files_it_wrote(tmp_path: Path) -> None:
    """Another process creates the dataset with another schema between validation and writing:
    the write transaction fails after media files were written; they must be gone again."""
    write_images(tmp_path, **{"a.png": png(), "b.png": png((1, 2, 3))})
    path = write_jsonl(tmp_path, [line("a"), line("b", image="img/b.png")])
    before_files = media_files()
    before = (Example.objects.count(), Media.objects.count())

    def meanwhile(done: int, total: int) -> None:
        if done == total and not Dataset.objects.filter(name="pets").exists():
            Dataset.objects.create(
                name="pets", modalities=[{"name": "text", "kind": "text"}], label_space=["x"]
            )

    with pytest.raises(Conflict) as exc:
        run(path, progress=meanwhile)
    assert exc.value.code == "dataset_schema_mismatch"
    assert (Example.objects.count(), Media.objects.count()) == before
    assert media_files() == before_files


def test_media_already_stored_is_reused(tmp_path: Path) -> None:
    from annotation.services.media import media_store_bytes

    media_store_bytes(data=png())
    write_images(tmp_path, **{"a.png": png()})
    report = run(write_jsonl(tmp_path, [line("a")]))
    assert (report.media_created, report.media_reused) == (0, 1) and Media.objects.count() == 1


# --- easy-VQA -------------------------------------------------------------------------------------------


def test_easyvqa_sample_matches_the_package_and_is_idempotent() -> None:
    texts, answers, image_ids = easy_vqa.get_test_questions()
    report = easyvqa_import(split="test", limit=40, seed=3)
    assert report.created == 40 and report.errors == []
    ds = report.dataset
    assert ds.name == "easy-VQA" and ds.label_space == easy_vqa.get_answers()
    assert ds.modalities == [
        {"name": "image", "kind": "image", "label": "Image"},
        {"name": "text", "kind": "text", "label": "Question"},
    ]
    for ex in Example.objects.filter(dataset=ds):
        i = int(ex.external_id.removeprefix("test-"))
        assert ex.split == "test" and ex.values["text"] == texts[i] and ex.label == answers[i]
        assert ex.metadata["image_id"] == image_ids[i]
        kind = ex.metadata["question_type"]
        assert kind == (
            "yes/no"
            if answers[i] in ("yes", "no")
            else "shape"
            if answers[i] in ("circle", "rectangle", "triangle")
            else "colour"
        )
        assert ex.content_hash == content_hash(ex.values)
        media = Media.objects.get(sha256=ex.values["image"])
        assert (media.width, media.height, media.mime_type) == (64, 64, "image/png")
    assert report.media_created == len(
        {
            image_ids[int(e.removeprefix("test-"))]
            for e in Example.objects.values_list("external_id", flat=True)
        }
    )
    before = snapshot()
    again = easyvqa_import(split="test", limit=40, seed=3)
    assert (again.created, again.skipped_existing) == (0, 40) and snapshot() == before


def test_easyvqa_changed_example_is_an_error() -> None:
    easyvqa_import(split="test", limit=5, seed=0)
    ex = Example.objects.order_by("id").first()
    ex.label = "teal" if ex.label != "teal" else "red"
    ex.save()
    before = snapshot()
    with pytest.raises(ValidationFailed) as exc:
        easyvqa_import(split="test", limit=5, seed=0)
    assert (
        exc.value.code == "import_invalid" and exc.value.details[0]["code"] == "external_id_exists"
    )
    assert snapshot() == before


@pytest.mark.slow
def test_easyvqa_whole_test_split_stores_each_image_once() -> None:
    texts, _, image_ids = easy_vqa.get_test_questions()
    report = easyvqa_import(split="test")
    assert report.created == len(texts) == Example.objects.count()
    assert report.media_created == len(set(image_ids)) == Media.objects.count()
    assert len([f for f in media_files() if f.endswith(".png")]) == len(set(image_ids))


@pytest.mark.django_db(transaction=True)
def test_media_files_are_written_before_the_rows_transaction_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite the write lock is taken at BEGIN: a file written inside the import's
    transaction would hold every lease and submit for as long as the I/O takes."""
    from django.db import connection

    from annotation.services import imports
    from annotation.services.media import media_store_bytes

    real = imports.write_media_file
    in_transaction: list[bool] = []

    def instrumented(rel_path: str, data: bytes) -> bool:
        in_transaction.append(connection.in_atomic_block)
        return real(rel_path, data)

    monkeypatch.setattr(imports, "write_media_file", instrumented)
    known = media_store_bytes(data=png((9, 9, 9)))
    (Path(settings.MEDIA_ROOT) / known.file.name).unlink()  # a stored row whose file was lost
    write_images(tmp_path, **{"a.png": png(), "b.png": png((1, 2, 3)), "c.png": png((9, 9, 9))})
    path = write_jsonl(
        tmp_path, [line("a"), line("b", image="img/b.png"), line("c", image="img/c.png")]
    )
    report = run(path)
    assert (report.created, report.media_created, report.media_reused) == (3, 2, 1)
    assert in_transaction == [False, False, False]
    for media in Media.objects.all():
        assert (Path(settings.MEDIA_ROOT) / media.file.name).is_file()
