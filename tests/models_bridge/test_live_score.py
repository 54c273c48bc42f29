"""POST /api/v1/score/: the live feedback contract the annotator workspace codes against."""

from __future__ import annotations

import base64
import hashlib
import io

import pytest
from PIL import Image

from annotation.models import Assignment, Attempt, Campaign, Media
from annotation.services.campaigns import campaign_update
from models_bridge.services.registry import REFERENCE_MODELS, model_register
from tests.annotation.annotator_helpers import bomb_png, media_files, undecodable_png
from tests.conftest import client_for, requires_postgres
from tests.models_bridge.conftest import counting, lease, package_dir, reference_names

pytestmark = pytest.mark.django_db
URL = "/api/v1/score/"


def attach(campaign, names=("easyvqa-text-only", "easyvqa-image-only", "easyvqa-additive")):  # type: ignore[no-untyped-def]
    mvs = []
    for name in names:
        package_dir(name)
        mvs.append(model_register(dataset=campaign.dataset, kind="torchscript", location=name))
    campaign.model_versions.set(mvs)
    return mvs


def data_url(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_text_draft_answers_for_every_model_and_stores_an_attempt(evqa_campaign, evqa_people):
    mvs = attach(evqa_campaign)
    a = lease(evqa_campaign, evqa_people["shown"])
    r = client_for(evqa_people["shown"]).post(
        URL,
        {"assignment": a.pk, "modality": "text", "value": "what color is the circle?"},
        format="json",
    )
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["attempt"] == {"seq": 1}
    assert body["feedback"] == "shown"
    assert [m["id"] for m in body["models"]] == [mv.pk for mv in mvs]
    labels = set(evqa_campaign.dataset.label_space)
    for m in body["models"]:
        assert set(m) == {
            "id",
            "name",
            "version",
            "status",
            "probabilities",
            "predicted_label",
            "original_predicted_label",
            "original_probabilities",
            "flipped",
            "outcome",
            "latency_ms",
        }
        assert m["status"] == "ok"
        assert set(m["probabilities"]) <= labels
        assert sum(m["probabilities"].values()) == pytest.approx(1.0)
        assert m["predicted_label"] == max(m["probabilities"], key=m["probabilities"].get)
        assert m["original_predicted_label"] == max(
            m["original_probabilities"], key=m["original_probabilities"].get
        )
        assert m["flipped"] == (m["predicted_label"] != m["original_predicted_label"])
    # The image-only model reads no text: a text edit cannot move it.
    image_only = next(m for m in body["models"] if m["name"] == "easyvqa-image-only")
    assert image_only["probabilities"] == image_only["original_probabilities"]
    assert image_only["flipped"] is False
    attempt = Attempt.objects.get(assignment=a)
    assert (attempt.seq, attempt.modality, attempt.value) == (
        1,
        "text",
        "what color is the circle?",
    )
    assert set(attempt.scores) == {str(mv.pk) for mv in mvs}


def test_seq_counts_up_and_repeat_drafts_hit_the_cache(evqa_campaign, evqa_people):
    mvs = attach(evqa_campaign, names=("easyvqa-text-only",))
    counter = counting(mvs[0])
    a = lease(evqa_campaign, evqa_people["shown"])
    api = client_for(evqa_people["shown"])
    seqs = []
    for text in ["is there a circle?", "is there a circle?", "is there a triangle?"]:
        r = api.post(URL, {"assignment": a.pk, "modality": "text", "value": text}, format="json")
        assert r.status_code == 200
        seqs.append(r.json()["attempt"]["seq"])
    assert seqs == [1, 2, 3]
    # call 1: original + draft in one batch; call 2: all cached; call 3: only the new draft
    assert (counter.calls, counter.rows) == (2, 3)
    assert Assignment.objects.get(pk=a.pk).attempts_count == 3


def test_image_drafts_are_scored_from_memory_and_never_stored_as_media(
    evqa_campaign, evqa_people, _media_root
):
    attach(evqa_campaign)
    a = lease(evqa_campaign, evqa_people["shown"])
    api = client_for(evqa_people["shown"])
    media_before, files_before = Media.objects.count(), media_files(_media_root)
    shas = []
    for shade in range(5):  # five different drafts, as an annotator painting would send
        img = Image.new("RGB", (64, 64), (255, 255 - shade * 40, 255))
        r = api.post(
            URL, {"assignment": a.pk, "modality": "image", "image": data_url(img)}, format="json"
        )
        assert r.status_code == 200, r.content
        text_only = next(m for m in r.json()["models"] if m["name"] == "easyvqa-text-only")
        assert text_only["flipped"] is False  # the text model cannot see the image
        shas.append(hashlib.sha256(base64.b64decode(data_url(img).partition(",")[2])).hexdigest())
    assert Media.objects.count() == media_before
    assert media_files(_media_root) == files_before
    attempts = list(Attempt.objects.filter(assignment=a).order_by("seq"))
    assert [t.media_id for t in attempts] == [None] * 5
    # The Attempt keeps the draft's hash and size, not its pixels.
    assert [t.value["sha256"] for t in attempts] == shas
    assert all((t.value["width"], t.value["height"]) == (64, 64) for t in attempts)
    assert len({t.content_hash for t in attempts}) == 5


@pytest.mark.parametrize("make", [bomb_png, undecodable_png], ids=["bomb-115KB", "undecodable"])
def test_a_draft_bigger_than_the_original_is_refused_from_its_header(
    evqa_campaign, evqa_people, _media_root, make
):
    """6300 x 6300 is under the pixel cap but is not the original's 64 x 64: refused before
    decoding (the undecodable file would otherwise be image_truncated)."""
    attach(evqa_campaign, names=("easyvqa-image-only",))
    a = lease(evqa_campaign, evqa_people["shown"])
    files_before = media_files(_media_root)
    url = "data:image/png;base64," + base64.b64encode(make()).decode()
    r = client_for(evqa_people["shown"]).post(
        URL, {"assignment": a.pk, "modality": "image", "image": url}, format="json"
    )
    assert r.status_code == 400, r.content
    assert r.json()["error"]["code"] == "image_wrong_size"
    assert not Attempt.objects.exists()
    assert media_files(_media_root) == files_before


def test_outcome_is_told_against_the_target(evqa_campaign, evqa_people):
    """flipped means any change of answer; outcome separates reaching the target from
    changing to something else, and from no change."""
    attach(evqa_campaign)
    a = lease(evqa_campaign, evqa_people["shown"])
    api = client_for(evqa_people["shown"])
    for question in ("what color is the shape?", "what shape is in the image?", "is it blue?"):
        draft = {"assignment": a.pk, "modality": "text", "value": question}
        first = api.post(URL, draft, format="json").json()["models"]
        moved = [m for m in first if m["predicted_label"] != m["original_predicted_label"]]
        if moved:
            break
    still = [m for m in first if m["predicted_label"] == m["original_predicted_label"]]
    assert moved and still, first  # text models move on a new question; image-only cannot
    assert {m["outcome"] for m in moved} == {"changed"}  # no target chosen yet
    assert {m["outcome"] for m in still} == {"unchanged"}
    m = moved[0]
    labels = evqa_campaign.dataset.label_space
    elsewhere = next(
        x for x in labels if x not in (m["predicted_label"], m["original_predicted_label"])
    )
    for target, want in (
        (m["predicted_label"], "reaches_target"),
        (elsewhere, "changed_not_target"),
    ):
        r = api.post(URL, {**draft, "target_label": target}, format="json")
        assert r.status_code == 200, r.content
        got = {x["id"]: x for x in r.json()["models"]}
        assert got[m["id"]]["outcome"] == want
        assert got[m["id"]]["flipped"] is True
        assert all(got[x["id"]]["outcome"] == "unchanged" for x in still)
    stored = Attempt.objects.filter(assignment=a).order_by("seq").last().scores[str(m["id"])]
    assert (stored["outcome"], stored["target_label"]) == ("changed_not_target", elsewhere)
    r = api.post(URL, {**draft, "target_label": "purple"}, format="json")
    assert (r.status_code, r.json()["error"]["code"]) == (400, "target_label_not_in_label_space")


def test_answer_outcome_pairs():
    from models_bridge.services.live import answer_outcome

    assert answer_outcome(original="circle", draft="rectangle", target="triangle") == (
        "changed_not_target"
    )
    assert answer_outcome(original="circle", draft="triangle", target="triangle") == (
        "reaches_target"
    )
    assert answer_outcome(original="circle", draft="circle", target="triangle") == "unchanged"
    assert answer_outcome(original="triangle", draft="triangle", target="triangle") == "unchanged"
    assert answer_outcome(original="circle", draft="rectangle", target=None) == "changed"
    assert answer_outcome(original="circle", draft=None, target="triangle") is None


def test_tabular_and_text_value_rules_are_the_submit_paths():
    """Live drafts and submitted edits call the same checks (annotation.schema)."""
    from annotation.schema import tabular_value_check, text_value_check
    from counterpoint.errors import ValidationFailed

    for bad in (True, None, float("nan"), float("inf"), [1]):
        with pytest.raises(ValidationFailed) as exc:
            tabular_value_check({"a": 1}, {"a": bad})
        assert exc.value.code == "tabular_not_a_number"
    assert text_value_check("x" * 10_001) == "x" * 10_001  # 10,000 was live scoring's own cap


def test_live_text_cap_is_the_import_and_submit_cap(evqa_campaign, evqa_people, settings):
    attach(evqa_campaign, names=("easyvqa-image-only",))
    settings.IMPORT_MAX_TEXT_CHARS = 50
    a = lease(evqa_campaign, evqa_people["shown"])
    api = client_for(evqa_people["shown"])
    r = api.post(URL, {"assignment": a.pk, "modality": "text", "value": "y" * 51}, format="json")
    assert (r.status_code, r.json()["error"]["code"]) == (400, "text_too_long")
    r = api.post(URL, {"assignment": a.pk, "modality": "text", "value": "y" * 50}, format="json")
    assert r.status_code == 200, r.content


def test_hidden_arm_gets_no_model_outputs_but_the_attempt_is_stored(evqa_campaign, evqa_people):
    attach(evqa_campaign, names=("easyvqa-text-only",))
    a = lease(evqa_campaign, evqa_people["hidden"])
    r = client_for(evqa_people["hidden"]).post(
        URL, {"assignment": a.pk, "modality": "text", "value": "is there a circle?"}, format="json"
    )
    assert r.status_code == 200
    assert r.json() == {
        "attempt": {"seq": 1},
        "target_label": None,
        "feedback": "hidden",
        "models": [],
    }
    assert Attempt.objects.filter(assignment=a).count() == 1


def test_campaign_wide_hidden_arm(evqa_campaign, evqa_people):
    attach(evqa_campaign, names=("easyvqa-text-only",))
    campaign_update(campaign=evqa_campaign, feedback_arm=Campaign.FeedbackArm.HIDDEN)
    a = lease(evqa_campaign, evqa_people["shown"])
    r = client_for(evqa_people["shown"]).post(
        URL, {"assignment": a.pk, "modality": "text", "value": "x"}, format="json"
    )
    assert r.json()["feedback"] == "hidden" and r.json()["models"] == []


@pytest.mark.parametrize("who", ["shown", "outsider", "manager"])
def test_only_the_holder_may_score(evqa_campaign, evqa_people, who):
    attach(evqa_campaign, names=("easyvqa-text-only",))
    a = lease(evqa_campaign, evqa_people["hidden"])
    r = client_for(evqa_people[who]).post(
        URL, {"assignment": a.pk, "modality": "text", "value": "x"}, format="json"
    )
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    assert not Attempt.objects.exists()


def test_anonymous_is_refused(evqa_campaign, evqa_people):
    a = lease(evqa_campaign, evqa_people["shown"])
    r = client_for(None).post(
        URL, {"assignment": a.pk, "modality": "text", "value": "x"}, format="json"
    )
    assert r.status_code in (401, 403)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"modality": "audio", "value": "x"}, 400, "modality_unknown"),
        ({"modality": "text", "value": " ".join(["word"] * 17)}, 400, "text_too_long"),
        ({"modality": "text", "value": 42}, 400, "text_not_a_string"),
        (
            {"modality": "image", "image": "data:image/png;base64,!!!not-base64"},
            400,
            "data_uri_invalid",
        ),
        ({"modality": "image", "image": base64.b64encode(b"GIF89a-truncated").decode()}, 400, None),
        ({"modality": "image"}, 400, "image_empty"),
        ({"value": "x"}, 400, "invalid"),
    ],
)
def test_bad_drafts_are_clear_4xx_and_store_nothing(evqa_campaign, evqa_people, body, status, code):
    attach(evqa_campaign)
    a = lease(evqa_campaign, evqa_people["shown"])
    r = client_for(evqa_people["shown"]).post(URL, {"assignment": a.pk, **body}, format="json")
    assert r.status_code == status, r.content
    err = r.json()["error"]
    if code:
        assert err["code"] == code
    else:
        assert err["code"].startswith("image_")
    assert err["message"]
    assert not Attempt.objects.exists()
    assert Assignment.objects.get(pk=a.pk).attempts_count == 0


def test_modality_not_editable(evqa_campaign, evqa_people):
    attach(evqa_campaign, names=("easyvqa-text-only",))
    campaign_update(campaign=evqa_campaign, editable_modalities=["image"])
    a = lease(evqa_campaign, evqa_people["shown"])
    r = client_for(evqa_people["shown"]).post(
        URL, {"assignment": a.pk, "modality": "text", "value": "x"}, format="json"
    )
    assert (r.status_code, r.json()["error"]["code"]) == (400, "modality_not_editable")


def test_inactive_or_validate_assignments_are_refused(evqa_campaign, evqa_people):
    attach(evqa_campaign, names=("easyvqa-text-only",))
    a = lease(evqa_campaign, evqa_people["shown"], skipped=True)
    r = client_for(evqa_people["shown"]).post(
        URL, {"assignment": a.pk, "modality": "text", "value": "x"}, format="json"
    )
    assert (r.status_code, r.json()["error"]["code"]) == (409, "assignment_not_active")


def test_cap_per_assignment(evqa_campaign, evqa_people):
    attach(evqa_campaign, names=("easyvqa-text-only",))
    campaign_update(campaign=evqa_campaign, score_cap_per_assignment=2)
    a = lease(evqa_campaign, evqa_people["shown"])
    api = client_for(evqa_people["shown"])
    codes = [
        api.post(URL, {"assignment": a.pk, "modality": "text", "value": f"q {i}"}, format="json")
        for i in range(3)
    ]
    assert [r.status_code for r in codes] == [200, 200, 429]
    assert codes[2].json()["error"]["code"] == "score_cap_reached"
    assert Attempt.objects.filter(assignment=a).count() == 2


def test_failing_model_is_unavailable_while_others_answer(evqa_campaign, evqa_people, tmp_path):
    """A package whose weights changed on disk after registration refuses to load: that
    model answers unavailable, the others answer normally."""
    import shutil

    from django.conf import settings
    from django.test import override_settings

    models_dir = tmp_path / "models"
    for name in ("easyvqa-text-only", "easyvqa-image-only"):
        shutil.copytree(package_dir(name), models_dir / name)
    with override_settings(MODELS_DIR=models_dir):
        mvs = attach(evqa_campaign, names=("easyvqa-text-only", "easyvqa-image-only"))
        from models_bridge.services.loading import adapter_cache_clear

        adapter_cache_clear()
        # Damage the managed copy the version is registered at (the source folder no
        # longer matters once registered).
        from models_bridge.services.loading import resolve_location

        broken = next(mv for mv in mvs if mv.name == "easyvqa-image-only")
        (resolve_location(broken.location) / "model.pt").write_bytes(b"not torchscript any more")
        a = lease(evqa_campaign, evqa_people["shown"])
        r = client_for(evqa_people["shown"]).post(
            URL,
            {"assignment": a.pk, "modality": "text", "value": "is there a circle?"},
            format="json",
        )
    assert settings.MODELS_DIR != models_dir
    assert r.status_code == 200
    by_name = {m["name"]: m for m in r.json()["models"]}
    assert by_name["easyvqa-text-only"]["status"] == "ok"
    assert by_name["easyvqa-image-only"]["status"] == "unavailable"
    assert by_name["easyvqa-image-only"]["probabilities"] is None
    stored = Attempt.objects.get(assignment=a).scores[str(mvs[1].pk)]
    assert stored["status"] == "unavailable" and "changed" in stored["error"]


def test_all_five_reference_models_answer(evqa_campaign, evqa_people):
    for name in REFERENCE_MODELS:
        package_dir(name)
    from models_bridge.services.registry import reference_models_register

    mvs = reference_models_register(dataset=evqa_campaign.dataset)
    evqa_campaign.model_versions.set(mvs)
    a = lease(evqa_campaign, evqa_people["shown"])
    r = client_for(evqa_people["shown"]).post(
        URL,
        {"assignment": a.pk, "modality": "text", "value": "is there not a blue shape?"},
        format="json",
    )
    assert r.status_code == 200
    assert [m["name"] for m in r.json()["models"]] == reference_names()
    assert all(m["status"] == "ok" for m in r.json()["models"])


@requires_postgres()
@pytest.mark.django_db(transaction=True)
def test_concurrent_drafts_get_distinct_seqs_and_respect_the_cap(evqa_campaign, evqa_people):
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    attach(evqa_campaign, names=("easyvqa-text-only",))
    campaign_update(campaign=evqa_campaign, score_cap_per_assignment=6)
    a = lease(evqa_campaign, evqa_people["shown"])

    def post(i: int) -> tuple[int, int | None]:
        try:
            r = client_for(evqa_people["shown"]).post(
                URL,
                {"assignment": a.pk, "modality": "text", "value": f"is there shape {i}?"},
                format="json",
            )
            return r.status_code, (r.json().get("attempt") or {}).get("seq")
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(post, range(10)))
    ok = sorted(seq for status, seq in results if status == 200)
    assert ok == [1, 2, 3, 4, 5, 6]
    assert sorted(status for status, _ in results).count(429) == 4
    assert (
        list(Attempt.objects.filter(assignment=a).order_by("seq").values_list("seq", flat=True))
        == ok
    )


def test_live_scoring_is_throttled_per_user(evqa_campaign, evqa_people, settings):
    from django.core.cache import cache

    attach(evqa_campaign, names=("easyvqa-text-only",))
    cache.clear()
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"live_score": "2/minute"},
    }
    a = lease(evqa_campaign, evqa_people["shown"])
    b = lease(evqa_campaign, evqa_people["hidden"])
    shown, hidden = client_for(evqa_people["shown"]), client_for(evqa_people["hidden"])
    codes = [
        shown.post(
            URL, {"assignment": a.pk, "modality": "text", "value": "x"}, format="json"
        ).status_code
        for _ in range(3)
    ]
    assert codes == [200, 200, 429]
    # another person has their own budget
    assert (
        hidden.post(
            URL, {"assignment": b.pk, "modality": "text", "value": "x"}, format="json"
        ).status_code
        == 200
    )
    cache.clear()
