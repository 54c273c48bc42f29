"""DB-free rules of annotation.importers: paths, image values, manifest records, CSV, schema
files, easy-VQA reading. No database, no MEDIA_ROOT writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from annotation.importers import errors as E
from annotation.importers.archive import extract_zip
from annotation.importers.easyvqa import choose, question_type, read_split
from annotation.importers.errors import FieldProblem
from annotation.importers.images import ImageReader, decode_data_uri
from annotation.importers.manifest import Schema, read_manifest
from annotation.importers.paths import resolve_inside
from annotation.importers.schema_file import (
    load_schema_file,
    parse_labels_flag,
    parse_modalities_flag,
)
from counterpoint.errors import ValidationFailed
from tests.fixtures_import.builders import (
    bomb_png,
    data_uri,
    line,
    png,
    truncated_png,
    write_images,
    write_jsonl,
)

SCHEMA = Schema(
    modalities=[{"name": "image", "kind": "image"}, {"name": "text", "kind": "text"}],
    label_space=["yes", "no"],
)
CAPS = {"max_bytes": 1_000_000, "max_pixels": 10_000_000}


def reader(base: Path | None, **caps: int) -> ImageReader:
    return ImageReader(base_dir=base, **{**CAPS, **caps})


def read(
    path: Path, fmt: str = "jsonl", *, schema: Schema = SCHEMA, max_text: int = 1000, **caps: int
):
    r = reader(path.parent, **caps)
    return read_manifest(
        path=path,
        fmt=fmt,
        schema=schema,
        images=r,
        max_text_chars=max_text,
        max_image_bytes=r.max_bytes,
    )


# --- paths ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("/etc/passwd", E.PATH_ABSOLUTE),
        ("C:/x.png", E.PATH_ABSOLUTE),
        ("../outside.png", E.PATH_TRAVERSAL),
        ("img/../../outside.png", E.PATH_TRAVERSAL),
        ("img\\..\\..\\x.png", E.PATH_TRAVERSAL),
        ("a\x00b.png", E.PATH_INVALID),
        ("   ", E.FIELD_MISSING),
    ],
)
def test_paths_that_leave_the_folder_are_refused(tmp_path: Path, value: str, code: str) -> None:
    with pytest.raises(FieldProblem) as exc:
        resolve_inside(tmp_path.resolve(), value)
    assert exc.value.code == code


def test_symlink_pointing_outside_is_refused_but_inside_is_fine(tmp_path: Path) -> None:
    base = tmp_path / "m"
    base.mkdir()
    secret = tmp_path / "secret.png"
    secret.write_bytes(png())
    (base / "evil.png").symlink_to(secret)
    (base / "ok.png").write_bytes(png())
    (base / "alias.png").symlink_to(base / "ok.png")
    with pytest.raises(FieldProblem) as exc:
        resolve_inside(base.resolve(), "evil.png")
    assert exc.value.code == E.PATH_SYMLINK_ESCAPE
    assert resolve_inside(base.resolve(), "alias.png") == (base / "ok.png").resolve()


def test_a_symlinked_folder_pointing_outside_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "m"
    base.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.png").write_bytes(png())
    (base / "img").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FieldProblem) as exc:
        resolve_inside(base.resolve(), "img/x.png")
    assert exc.value.code == E.PATH_SYMLINK_ESCAPE


# --- image values -------------------------------------------------------------------------------


def test_each_file_is_read_once_and_identical_bytes_decoded_once(tmp_path: Path) -> None:
    write_images(tmp_path, **{"a.png": png(), "b.png": png(), "c.png": png((1, 2, 3))})
    r = reader(tmp_path)
    infos = [
        r.read(v) for v in ["img/a.png", "img/a.png", "img/b.png", "img/c.png", data_uri(png())]
    ]
    assert r.files_read == 3
    assert r.images_decoded == 2  # a == b == the data URI; c differs
    assert infos[0].sha256 == infos[2].sha256 == infos[4].sha256 != infos[3].sha256
    assert (infos[0].width, infos[0].height, infos[0].mime_type) == (8, 8, "image/png")


@pytest.mark.parametrize(
    ("data", "code", "caps"),
    [
        (b"", "image_empty", {}),
        (b"plain text, not an image", "image_not_an_image", {}),
        (truncated_png(), "image_truncated", {}),
        (bomb_png(), "image_too_many_pixels", {}),
        (png(size=(20, 20)), "image_too_many_pixels", {"max_pixels": 399}),
        (png(size=(20, 20)), "image_too_large", {"max_bytes": 50}),
    ],
)
def test_bad_image_files(tmp_path: Path, data: bytes, code: str, caps: dict[str, int]) -> None:
    write_images(tmp_path, **{"x.png": data})
    with pytest.raises(FieldProblem) as exc:
        reader(tmp_path, **caps).read("img/x.png")
    assert exc.value.code == code, exc.value.message


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    (tmp_path / "img" / "folder.png").mkdir(parents=True)
    r = reader(tmp_path)
    with pytest.raises(FieldProblem) as exc:
        r.read("img/none.png")
    assert exc.value.code == E.FILE_MISSING
    with pytest.raises(FieldProblem) as exc:
        r.read("img/folder.png")
    assert exc.value.code == E.FILE_UNREADABLE


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_file_without_read_permission(tmp_path: Path) -> None:
    write_images(tmp_path, **{"x.png": png()})
    (tmp_path / "img" / "x.png").chmod(0)
    with pytest.raises(FieldProblem) as exc:
        reader(tmp_path).read("img/x.png")
    assert exc.value.code == E.FILE_UNREADABLE


def test_fifo_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    os.mkfifo(tmp_path / "img" / "pipe.png")
    with pytest.raises(FieldProblem) as exc:
        reader(tmp_path).read("img/pipe.png")
    assert exc.value.code == E.FILE_UNREADABLE


def test_data_uris() -> None:
    assert decode_data_uri(data_uri(png()), max_bytes=10_000) == png()
    for bad in ["data:image/png,rawbytes", "data:image/png;base64,@@@@", "data:nocomma"]:
        with pytest.raises(FieldProblem) as exc:
            decode_data_uri(bad, max_bytes=10_000)
        assert exc.value.code == E.DATA_URI_INVALID
    with pytest.raises(FieldProblem) as exc:
        decode_data_uri(data_uri(b"x" * 3000), max_bytes=1000)
    assert exc.value.code == "image_too_large"


def test_reread_file_must_still_hash_the_same(tmp_path: Path) -> None:
    write_images(tmp_path, **{"x.png": png()})
    r = ImageReader(base_dir=tmp_path, keep_bytes=0, **CAPS)
    info = r.read("img/x.png")
    assert info.data is None and info.load() == png()
    (tmp_path / "img" / "x.png").write_bytes(png((9, 9, 9)))
    with pytest.raises(ValidationFailed) as exc:
        info.load()
    assert exc.value.code == "image_changed"


# --- JSONL manifests ---------------------------------------------------------------------------


def test_good_manifest_with_path_and_data_uri(tmp_path: Path) -> None:
    write_images(tmp_path, **{"a.png": png()})
    path = write_jsonl(
        tmp_path,
        [
            line("a", split="test", metadata={"k": 1}),
            "",
            line("b", image=data_uri(png((0, 0, 255))), label=None),
        ],
    )
    result = read(path)
    assert result.errors == [] and result.fatal == []
    a, b = result.rows
    assert (a.line, a.external_id, a.label, a.split, a.metadata) == (
        1,
        "a",
        "yes",
        "test",
        {"k": 1},
    )
    assert (b.line, b.label, b.split) == (3, None, "")
    assert a.values["text"] == "is it red?" and len(a.values["image"]) == 64


@pytest.mark.parametrize(
    ("record", "field", "code"),
    [
        ("{not json", "line", E.JSON_MALFORMED),
        ("[1, 2]", "line", E.RECORD_NOT_OBJECT),
        (b"\xff\xfe not utf-8", "line", E.TEXT_NOT_UTF8),
        (
            '{"external_id": "x", "values": {"image": "img/a.png", "text": "\\udc80"}}',
            "values.text",
            E.TEXT_NOT_UTF8,
        ),
        (
            '{"external_id": "x", "values": {"image": "img/a.png", "text": "a\\u0000b"}}',
            "values.text",
            E.TEXT_NUL,
        ),
        ({"values": {"image": "img/a.png", "text": "t"}}, "external_id", E.FIELD_MISSING),
        ({"external_id": "x"}, "values", E.FIELD_MISSING),
        ({"external_id": "x", "values": {"image": "img/a.png"}}, "values.text", E.FIELD_MISSING),
        ({"external_id": "x", "values": "img/a.png"}, "values", E.FIELD_TYPE),
        (
            {"external_id": "x", "values": {"image": "img/a.png", "text": 5}},
            "values.text",
            E.FIELD_TYPE,
        ),
        (line("x", audio="a.wav"), "audio", E.FIELD_UNKNOWN),
        (
            {"external_id": "x", "values": {"image": "img/a.png", "text": "t", "audio": "a"}},
            "values.audio",
            E.MODALITY_UNKNOWN,
        ),
        (line("x", label="maybe"), "label", E.LABEL_UNKNOWN),
        (line("x", metadata=[1]), "metadata", E.FIELD_TYPE),
        (line("x", text="x" * 1001), "values.text", E.TEXT_TOO_LONG),
        (line("x" * 300), "external_id", E.FIELD_TOO_LONG),
        (line("x", image="../a.png"), "values.image", E.PATH_TRAVERSAL),
    ],
)
def test_each_bad_record_names_line_field_and_rule(
    tmp_path: Path, record, field: str, code: str
) -> None:
    write_images(tmp_path, **{"a.png": png()})
    path = write_jsonl(tmp_path, [line("ok"), record])
    result = read(path)
    assert [r.external_id for r in result.rows] == ["ok"]
    assert [(e.line, e.field, e.code) for e in result.errors] == [(2, field, code)], result.errors
    assert result.errors[0].message


def test_every_bad_line_is_reported_not_just_the_first(tmp_path: Path) -> None:
    write_images(tmp_path, **{"a.png": png()})
    path = write_jsonl(
        tmp_path,
        [
            line("a"),
            "{oops",
            line("a"),
            line("c", label="maybe", image="img/missing.png"),
            line("d"),
        ],
    )
    result = read(path)
    assert [r.external_id for r in result.rows] == ["a", "d"]
    assert sorted((e.line, e.field, e.code) for e in result.errors) == [
        (2, "line", E.JSON_MALFORMED),
        (3, "external_id", E.EXTERNAL_ID_DUPLICATE),
        (4, "label", E.LABEL_UNKNOWN),
        (4, "values.image", E.FILE_MISSING),
    ]
    dup = next(e for e in result.errors if e.code == E.EXTERNAL_ID_DUPLICATE)
    assert "line 1" in dup.message


def test_empty_manifest_is_fatal(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_bytes(b"")
    assert [e.code for e in read(path).fatal] == [E.MANIFEST_EMPTY]
    path.write_bytes(b"\n  \n")
    assert [e.code for e in read(path).fatal] == [E.MANIFEST_EMPTY]


def test_overlong_line_is_reported_and_skipped(tmp_path: Path) -> None:
    write_images(tmp_path, **{"a.png": png()})
    path = write_jsonl(tmp_path, ["x" * 2_000_000, line("a")])
    result = read(path, max_bytes=1000, max_text=10)
    assert [(e.line, e.code) for e in result.errors] == [(1, E.LINE_TOO_LONG)]
    assert [r.line for r in result.rows] == [2]


# --- CSV manifests -------------------------------------------------------------------------------


def test_csv_with_metadata_columns(tmp_path: Path) -> None:
    write_images(tmp_path, **{"a.png": png()})
    (tmp_path / "m.csv").write_text(
        "external_id,image,text,label,split,metadata,metadata.source\n"
        'a,img/a.png,"is it, red?",yes,test,"{""k"": 1}",web\n'
        'b,img/a.png,"multi\nline",,,,\n',
        encoding="utf-8",
    )
    result = read(tmp_path / "m.csv", "csv")
    assert result.errors == [] and result.fatal == []
    a, b = result.rows
    assert (a.line, a.values["text"], a.metadata, a.split) == (
        2,
        "is it, red?",
        {"k": 1, "source": "web"},
        "test",
    )
    assert (b.line, b.values["text"], b.label, b.metadata) == (3, "multi\nline", None, {})


def test_id_and_meta_spellings_are_accepted(tmp_path: Path) -> None:
    write_images(tmp_path, **{"a.png": png()})
    path = write_jsonl(
        tmp_path,
        [{"id": "a", "values": {"image": "img/a.png", "text": "t"}}, {**line("b"), "id": "b"}],
    )
    result = read(path)
    assert [r.external_id for r in result.rows] == ["a"]
    assert [(e.line, e.field, e.code) for e in result.errors] == [(2, "id", E.FIELD_UNKNOWN)]
    (tmp_path / "m.csv").write_text("id,image,text,meta.source\n1,img/a.png,t,web\n")
    (row,) = read(tmp_path / "m.csv", "csv").rows
    assert (row.external_id, row.metadata) == ("1", {"source": "web"})


def test_csv_header_problems_are_fatal(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("external_id,image,audio\na,img/a.png,x\n")
    fatal = read(tmp_path / "m.csv", "csv").fatal
    assert sorted((e.field, e.code) for e in fatal) == [
        ("audio", E.MODALITY_UNKNOWN),
        ("text", E.FIELD_MISSING),
    ]


def test_csv_bad_rows(tmp_path: Path) -> None:
    write_images(tmp_path, **{"a.png": png()})
    (tmp_path / "m.csv").write_bytes(
        b"external_id,image,text,label\n"
        b"a,img/a.png,fine,yes\n"
        b"b,img/a.png,bad \xff byte,yes\n"
        b"c,img/a.png,too,many,fields\n"
        b"d,img/a.png,x,maybe\n"
    )
    result = read(tmp_path / "m.csv", "csv")
    assert [r.external_id for r in result.rows] == ["a"]
    assert [(e.line, e.field, e.code) for e in result.errors] == [
        (3, "text", E.TEXT_NOT_UTF8),
        (4, "line", E.CSV_MALFORMED),
        (5, "label", E.LABEL_UNKNOWN),
    ]


# --- schema files and flags ------------------------------------------------------------------------


def test_schema_file_and_flags(tmp_path: Path) -> None:
    p = tmp_path / "schema.json"
    p.write_text(
        json.dumps({"modalities": ["image:image", "text:text"], "label_space": ["a", "b"]})
    )
    assert load_schema_file(p) == {
        "modalities": ["image:image", "text:text"],
        "label_space": ["a", "b"],
    }
    assert parse_modalities_flag("image:image, text:text") == ["image:image", "text:text"]
    assert parse_labels_flag("a,b ,c") == ["a", "b", "c"]
    assert parse_labels_flag('["a,1", "b"]') == ["a,1", "b"]
    for body in ["{bad", "[1]"]:
        p.write_text(body)
        with pytest.raises(ValidationFailed) as exc:
            load_schema_file(p)
        assert exc.value.code == E.SCHEMA_FILE_INVALID
    with pytest.raises(ValidationFailed):
        load_schema_file(tmp_path / "nope.json")


# --- archives --------------------------------------------------------------------------------------


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize("name", ["../evil.png", "/abs.png", "a/../../evil.png", "C:/x.png"])
def test_zip_slip_is_refused(tmp_path: Path, name: str) -> None:
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(ValidationFailed) as exc:
        extract_zip(
            archive=_zip(tmp_path / "a.zip", {name: b"x"}),
            target=target,
            max_files=10,
            max_total_bytes=1000,
            max_member_bytes=1000,
        )
    assert exc.value.code == E.ARCHIVE_UNSAFE_PATH
    assert not (tmp_path / "evil.png").exists()


def test_zip_limits(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    archive = _zip(tmp_path / "a.zip", {"img/a.png": png(), "big.bin": b"\0" * 5000})
    with pytest.raises(ValidationFailed) as exc:
        extract_zip(
            archive=archive,
            target=target,
            max_files=1,
            max_total_bytes=10**6,
            max_member_bytes=10**6,
        )
    assert exc.value.code == E.ARCHIVE_TOO_MANY_FILES
    with pytest.raises(ValidationFailed) as exc:
        extract_zip(
            archive=archive,
            target=target,
            max_files=10,
            max_total_bytes=1000,
            max_member_bytes=10**6,
        )
    assert exc.value.code == E.ARCHIVE_TOO_LARGE
    # An oversized member is cut just past the cap, so the image check will call it too large.
    n = extract_zip(
        archive=archive, target=target, max_files=10, max_total_bytes=10**6, max_member_bytes=100
    )
    assert n == 2 and (target / "big.bin").stat().st_size == 101
    assert (target / "img" / "a.png").read_bytes()[:8] == png()[:8]
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK not a zip")
    with pytest.raises(ValidationFailed) as exc:
        extract_zip(
            archive=bad, target=target, max_files=10, max_total_bytes=10, max_member_bytes=10
        )
    assert exc.value.code == E.ARCHIVE_INVALID


# --- easy-VQA ---------------------------------------------------------------------------------------


def test_question_types_follow_the_answer() -> None:
    assert [question_type(a) for a in ["yes", "no", "circle", "rectangle", "triangle", "teal"]] == [
        "yes/no",
        "yes/no",
        "shape",
        "shape",
        "shape",
        "colour",
    ]


def test_choose_is_seeded_sorted_and_bounded() -> None:
    assert choose(5, limit=None, seed=0) == [0, 1, 2, 3, 4]
    assert choose(5, limit=99, seed=0) == [0, 1, 2, 3, 4]
    a = choose(1000, limit=10, seed=7)
    assert a == choose(1000, limit=10, seed=7) == sorted(a) and len(set(a)) == 10
    assert a != choose(1000, limit=10, seed=8)
    with pytest.raises(ValidationFailed):
        choose(5, limit=0, seed=0)


def test_read_split_matches_the_package() -> None:
    import easy_vqa

    questions, paths = read_split("test")
    texts, answers, image_ids = easy_vqa.get_test_questions()
    assert len(questions) == len(texts)
    assert (questions[5].text, questions[5].answer, questions[5].image_id) == (
        texts[5],
        answers[5],
        image_ids[5],
    )
    assert set(paths) >= set(image_ids)
    with pytest.raises(ValidationFailed):
        read_split("validation")
