"""Malformed input is a named 4xx in the API's error shape, and nothing is stored (issue 7
A7): deep JSON, lone surrogates, NUL characters, bad filters, ids past 64 bits, oversized
bodies. Runs on SQLite and on PostgreSQL (CI's run), where NUL and overflow used to fail."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from annotation.models import Annotation, Assignment, Membership
from tests.annotation.annotator_helpers import annotate_body, member, text_campaign
from tests.conftest import client_for

pytestmark = pytest.mark.django_db
HUGE = "99999999999999999999"  # 20 digits: past a signed 64-bit integer


def _setup() -> tuple[Any, Any, dict[str, Any]]:
    campaign = text_campaign(3)
    user = member(campaign, "ann-malformed")
    client = client_for(user)
    r = client.post(f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "annotate"}, format="json")
    assert r.status_code == 200, r.content
    return campaign, client, r.json()


def _raw_post(client: Any, path: str, raw: str | bytes) -> Any:
    return client.generic("POST", path, raw, content_type="application/json")


def _error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.content[:300]
    assert r["Content-Type"].startswith("application/json"), r["Content-Type"]
    err = r.json()["error"]
    assert err["code"] == code, err
    assert err["message"]
    return err


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda b: b.update(evidence=json.loads("[" * 60 + "]" * 60)), None),
        (lambda b: b.update(rationale="\ud800"), "json_invalid_unicode"),
        (lambda b: b.update(rationale="a\x00b"), "nul_in_text"),
        (lambda b: b["counterfactual"].update(value="what \x00 is it"), "nul_in_text"),
        (lambda b: b.update(**{"bad\x00key": 1}), "nul_in_text"),
    ],
    ids=["depth-ok", "surrogate", "nul", "nul-in-edit", "nul-in-key"],
)
def test_bad_strings_in_a_submit_are_named_and_store_nothing(mutate, code) -> None:  # type: ignore[no-untyped-def]
    _, client, task = _setup()
    body = annotate_body(task)
    mutate(body)
    # json.dumps writes "\ud800" and "\u0000" as escapes, exactly as a client would send them.
    r = _raw_post(
        client, f"/api/v1/assignments/{task['assignment']['id']}/submit/", json.dumps(body)
    )
    if code is None:  # 60 levels is within the bound; the rule that refuses it is evidence's
        _error(r, 400, "evidence_invalid")
    else:
        _error(r, 400, code)
    assert not Annotation.objects.exists()
    assert Assignment.objects.get(pk=task["assignment"]["id"]).status == "active"


def test_json_nested_5000_deep_is_json_too_deep_and_the_draft_is_untouched() -> None:
    _, client, task = _setup()
    aid = task["assignment"]["id"]
    assert (
        client.put(
            f"/api/v1/assignments/{aid}/draft/", {"draft": {"v": 1}}, format="json"
        ).status_code
        == 200
    )
    deep = '{"draft": ' + "[" * 5000 + "]" * 5000 + "}"
    r = client.generic(
        "PUT", f"/api/v1/assignments/{aid}/draft/", deep, content_type="application/json"
    )
    _error(r, 400, "json_too_deep")
    assert Assignment.objects.get(pk=aid).draft == {"v": 1}
    # 100 levels: under the interpreter's recursion limit, over the parser's bound.
    r = client.generic(
        "PUT",
        f"/api/v1/assignments/{aid}/draft/",
        '{"draft": ' + "[" * 100 + "]" * 100 + "}",
        content_type="application/json",
    )
    _error(r, 400, "json_too_deep")
    _error(_raw_post(client, f"/api/v1/assignments/{aid}/submit/", "{nope"), 400, "json_invalid")
    _error(
        _raw_post(client, f"/api/v1/assignments/{aid}/submit/", '{"a": NaN}'), 400, "json_invalid"
    )


def test_a_lone_surrogate_in_live_scoring_is_refused() -> None:
    _, client, task = _setup()
    r = _raw_post(
        client,
        "/api/v1/score/",
        json.dumps({"assignment": task["assignment"]["id"], "modality": "text", "value": "\udfff"}),
    )
    _error(r, 400, "json_invalid_unicode")


@pytest.mark.parametrize("value", ["abc", HUGE, "-1", "1.5", "१२"])
def test_the_example_filter_takes_ids_only(value: str) -> None:
    campaign = text_campaign(1)
    manager = member(campaign, "mgr-filter", Membership.Role.MANAGER)
    r = client_for(manager).get(f"/api/v1/campaigns/{campaign.pk}/annotations/?example={value}")
    _error(r, 400, "filter_invalid")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/campaigns/{id}/edits/?status=a%00b",
        "/api/v1/campaigns/{id}/annotations/?annotator=%00",
        "/api/v1/jobs/?kind=%00",
    ],
)
def test_nul_in_a_text_filter_is_refused(path: str) -> None:
    campaign = text_campaign(1)
    manager = member(campaign, "mgr-nul", Membership.Role.MANAGER)
    _error(client_for(manager).get(path.format(id=campaign.pk)), 400, "filter_invalid")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/campaigns/{huge}/"),
        ("get", "/api/v1/campaigns/{huge}/annotations/"),
        ("get", "/api/v1/campaigns/{huge}/progress/"),
        ("get", "/api/v1/campaigns/{huge}/me/"),
        ("post", "/api/v1/campaigns/{huge}/lease/"),
        ("get", "/api/v1/campaigns/{huge}/models/"),
        ("get", "/api/v1/datasets/{huge}/"),
        ("get", "/api/v1/jobs/{huge}/"),
        ("get", "/api/v1/models/{huge}/"),
        ("get", "/api/v1/assignments/{huge}/"),
        ("post", "/api/v1/assignments/{huge}/submit/"),
    ],
)
@pytest.mark.parametrize("who", ["member", "staff"])
def test_a_20_digit_id_is_a_json_404(method: str, path: str, who: str, staff) -> None:  # type: ignore[no-untyped-def]
    campaign = text_campaign(1)
    user = staff if who == "staff" else member(campaign, "mgr-huge", Membership.Role.MANAGER)
    client = client_for(user)
    url = path.format(huge=HUGE)
    r = client.post(url, {}, format="json") if method == "post" else client.get(url)
    _error(r, 404, "not_found")


def test_a_huge_id_in_the_body_is_a_json_404() -> None:
    _, client, _task = _setup()
    r = client.post(
        "/api/v1/score/", {"assignment": int(HUGE), "modality": "text", "value": "x"}, format="json"
    )
    _error(r, 404, "not_found")


def test_a_25_mb_body_is_a_json_413_request_too_large(settings) -> None:  # type: ignore[no-untyped-def]
    _, _client, task = _setup()
    user = Assignment.objects.get(pk=task["assignment"]["id"]).annotator
    # A real session client: the body goes through Django's request handling end to end.
    client = Client()
    client.force_login(user)
    body = json.dumps({"idempotency_key": "k", "rationale": "x" * (25 * 1024 * 1024)})
    r = client.post(
        f"/api/v1/assignments/{task['assignment']['id']}/submit/",
        body,
        content_type="application/json",
    )
    err = _error(r, 413, "request_too_large")
    assert err["details"] == {"max_bytes": settings.DATA_UPLOAD_MAX_MEMORY_SIZE}
    assert not Annotation.objects.exists()


def test_django_400_handler_answers_json_under_api_only(settings) -> None:  # type: ignore[no-untyped-def]
    """When Django itself refuses a request before any view (DEBUG off: handler400), /api/
    still answers in the error shape; pages keep the HTML page."""
    from django.core.exceptions import RequestDataTooBig
    from django.test import RequestFactory

    from counterpoint.errors import bad_request

    settings.DEBUG = False
    rf = RequestFactory()
    r = bad_request(rf.post("/api/v1/score/"), RequestDataTooBig("too big"))
    assert r.status_code == 413 and r["Content-Type"] == "application/json"
    assert json.loads(r.content)["error"]["code"] == "request_too_large"
    r = bad_request(rf.get("/api/v1/campaigns/"), None)
    assert (r.status_code, json.loads(r.content)["error"]["code"]) == (400, "bad_request")
    page = bad_request(rf.get("/campaigns/1/annotate/"), None)
    assert page.status_code == 400 and page["Content-Type"].startswith("text/html")
