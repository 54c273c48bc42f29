"""People rules (issue 8 §2): task caps and screening on both lease paths (run this file on
SQLite and on PostgreSQL), deactivation and removal, invites and crowd links through the
services and the REST API, with the permission rules and exact query pins."""

from __future__ import annotations

import pytest
from django.core import mail
from django.db import IntegrityError, transaction

from annotation import policy
from annotation.models import Assignment, CampaignExample, CrowdWorker, Invite, Membership
from annotation.services.annotations import annotation_submit
from annotation.services.assignments import assignment_lease
from annotation.services.campaigns import membership_remove, membership_set_active
from annotation.services.people import (
    campaign_people_rules_set,
    crowd_enter,
    crowd_finish,
    crowd_link_create,
    crowd_link_for_token,
    invite_accept,
    invite_create,
)
from counterpoint.errors import Conflict, NotFound, TooManyRequests, ValidationFailed
from tests.annotation.annotator_helpers import member, text_campaign
from tests.conftest import client_for
from tests.factories import UserFactory

ANNOTATE = Assignment.Kind.ANNOTATE


def label_campaign(n: int = 6, **fields):  # type: ignore[no-untyped-def]
    fields.setdefault("task_counterfactual", False)
    fields.setdefault("task_rationale", False)
    return text_campaign(n, **fields)


def lease(campaign, user):  # type: ignore[no-untyped-def]
    return assignment_lease(campaign=campaign, annotator=user, kind=ANNOTATE).assignment


def submit(assignment, label: str | None = None) -> None:  # type: ignore[no-untyped-def]
    truth = assignment.example.label or "yes"
    annotation_submit(assignment=assignment, label=label or truth, confidence=4)


# --- pure rules ------------------------------------------------------------------------------


def test_screening_status_rule() -> None:
    s = policy.screening_status
    assert s(answers=[], items=0, pass_mark=0.8) == "off"
    assert s(answers=[True], items=3, pass_mark=0.66) == "pending"
    assert s(answers=[True, True], items=3, pass_mark=0.66) == "pending"
    assert s(answers=[True, True, False], items=3, pass_mark=0.66) == "passed"
    # Out of reach after two misses of three at a 2/3 mark: failed at once.
    assert s(answers=[False, False], items=3, pass_mark=0.66) == "failed"
    assert s(answers=[True, True, True, True, False], items=5, pass_mark=0.8) == "passed"
    assert s(answers=[True, True, True, False, False], items=5, pass_mark=0.8) == "failed"
    # Answers past the screening do not count.
    assert s(answers=[True, False, False, False], items=1, pass_mark=1.0) == "passed"


def test_gold_preferences() -> None:
    assert policy.gold_preferences(want=None) == [None]
    assert policy.gold_preferences(want=True) == [True, False]
    assert policy.gold_preferences(want=False, gold_only=True) == [True]


# --- caps and screening on the lease (both paths: run on SQLite and PostgreSQL) ---------------


@pytest.mark.django_db(transaction=True)
def test_task_cap_refuses_with_a_named_code() -> None:
    campaign = label_campaign(6, redundancy=2)
    campaign_people_rules_set(campaign=campaign, task_cap=2)
    ana = member(campaign, "cap-ana")
    for _ in range(2):
        submit(lease(campaign, ana))
    with pytest.raises(Conflict) as exc:
        lease(campaign, ana)
    assert exc.value.code == "task_cap_reached"
    assert exc.value.details == {"cap": 2, "done": 2, "source": "campaign"}
    assert "this campaign allows per person" in exc.value.message
    # Nothing was leased by the refused call.
    assert Assignment.objects.filter(annotator=ana).count() == 2
    # Lifting the cap lets them go on.
    campaign_people_rules_set(campaign=campaign, task_cap=None)
    assert lease(campaign, ana) is not None


@pytest.mark.django_db(transaction=True)
def test_cap_still_returns_the_open_lease() -> None:
    campaign = label_campaign(4)
    ana = member(campaign, "cap-open")
    open_one = lease(campaign, ana)
    campaign_people_rules_set(campaign=campaign, task_cap=1)
    assert lease(campaign, ana).pk == open_one.pk


@pytest.mark.django_db(transaction=True)
def test_screening_gives_only_gold_then_real_tasks_when_passed() -> None:
    campaign = label_campaign(8, redundancy=3, gold=lambda i: i < 3)
    campaign_people_rules_set(campaign=campaign, screening_items=2, screening_pass_mark=1.0)
    ana = member(campaign, "screen-pass")
    for _ in range(2):
        a = lease(campaign, ana)
        assert a.is_gold, "a screening lease is a gold item"
        submit(a)
    after = lease(campaign, ana)
    # Past the screening: gold mixing is off (gold_rate 0), so the pool order decides; the
    # third gold item is not forced any more.
    assert after is not None
    seen = list(
        Assignment.objects.filter(annotator=ana).order_by("id").values_list("is_gold", flat=True)
    )
    assert seen[:2] == [True, True]


@pytest.mark.django_db(transaction=True)
def test_screening_failed_ends_work_and_stops_at_gold_only() -> None:
    campaign = label_campaign(8, redundancy=3, gold=lambda i: i < 2)
    campaign_people_rules_set(campaign=campaign, screening_items=2, screening_pass_mark=1.0)
    ana = member(campaign, "screen-fail")
    a = lease(campaign, ana)
    assert a.is_gold
    submit(a, label="no" if a.example.label == "yes" else "yes")
    with pytest.raises(Conflict) as exc:
        lease(campaign, ana)
    assert exc.value.code == "screening_failed"
    # Screening without gold left: nothing (never a real task) for someone still pending.
    ben = member(campaign, "screen-pending")
    CampaignExample.objects.filter(campaign=campaign, is_gold=True).update(completed=3)
    assert lease(campaign, ben) is None


@pytest.mark.django_db(transaction=True)
def test_rules_cost_one_query_for_the_cap_and_one_for_the_screening(
    django_assert_num_queries,
) -> None:  # type: ignore[no-untyped-def]
    from annotation.selectors_people import annotator_standing

    campaign = label_campaign(2)
    ana = member(campaign, "rules-q")
    # The cap query runs always (the member may have their own cap); no count without a cap.
    with django_assert_num_queries(1):
        assert annotator_standing(campaign=campaign, annotator_id=ana.pk).done is None
    campaign_people_rules_set(campaign=campaign, task_cap=3, screening_items=2)
    with django_assert_num_queries(2):
        annotator_standing(campaign=campaign, annotator_id=ana.pk)


# --- remove and deactivate ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_remove_releases_open_lease_and_keeps_work() -> None:
    campaign = label_campaign(4, redundancy=1)
    ana = member(campaign, "leaver")
    submit(lease(campaign, ana))
    held = lease(campaign, ana)
    item = CampaignExample.objects.get(campaign=campaign, example_id=held.example_id)
    assert item.in_flight == 1
    membership_remove(membership=Membership.objects.get(campaign=campaign, user=ana))
    held.refresh_from_db()
    item.refresh_from_db()
    assert held.status == Assignment.Status.EXPIRED and item.in_flight == 0
    assert ana.annotations.count() == 1
    # The slot is someone else's now.
    ben = member(campaign, "taker")
    assert lease(campaign, ben) is not None


@pytest.mark.django_db
def test_deactivated_member_is_an_outsider_and_comes_back(api) -> None:  # type: ignore[no-untyped-def]
    campaign = label_campaign(3)
    ana = member(campaign, "sleeper")
    m = Membership.objects.get(campaign=campaign, user=ana)
    membership_set_active(membership=m, active=False)
    r = api(ana).post(
        f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "annotate"}, format="json"
    )
    assert r.status_code == 404
    membership_set_active(membership=m, active=True)
    r = api(ana).post(
        f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "annotate"}, format="json"
    )
    assert r.status_code == 200


# --- invites --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_invite_by_mail_once_hashed_and_expiring(settings) -> None:  # type: ignore[no-untyped-def]
    campaign = label_campaign(2)
    invite, url = invite_create(
        campaign=campaign, role="annotator", created_by=None, link_base="http://t", email="a@b.org"
    )
    token = url.rstrip("/").rsplit("/", 1)[1]
    assert token not in invite.token_hash and len(invite.token_hash) == 64
    assert len(mail.outbox) == 1 and url in mail.outbox[0].body
    with pytest.raises(ValidationFailed) as exc:
        invite_accept(token=token, username="newbie", password="123")
    assert exc.value.code == "user_password_invalid"
    assert not Invite.objects.get(pk=invite.pk).used_at
    user = invite_accept(token=token, username="newbie", password="a long s3cret phrase")
    assert Membership.objects.filter(campaign=campaign, user=user, role="annotator").exists()
    assert user.email == "a@b.org"
    with pytest.raises(Conflict) as exc:
        invite_accept(token=token, username="twice", password="a long s3cret phrase")
    assert exc.value.code == "invite_used"
    with pytest.raises(NotFound):
        invite_accept(token="nope", username="x", password="a long s3cret phrase")
    _, url2 = invite_create(
        campaign=campaign, role="validator", created_by=None, link_base="http://t"
    )
    Invite.objects.filter(email="").update(expires_at="2000-01-01T00:00:00Z")
    with pytest.raises(Conflict) as exc:
        invite_accept(
            token=url2.rstrip("/").rsplit("/", 1)[1],
            username="late",
            password="a long s3cret phrase",
        )
    assert exc.value.code == "invite_expired"


# --- crowd links ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_crowd_link_rules() -> None:
    campaign = label_campaign(2)
    with pytest.raises(ValidationFailed) as exc:
        crowd_link_create(campaign=campaign, created_by=None, completion_url="javascript:alert(1)")
    assert exc.value.code == "crowd_completion_url"
    link = crowd_link_create(
        campaign=campaign,
        created_by=None,
        completion_code="C0DE",
        completion_url="https://app.prolific.com/submissions/complete?cc={code}",
    )
    with pytest.raises(NotFound):
        crowd_link_for_token(
            link_id=link.pk, token=link.token[:-1] + ("y" if link.token.endswith("x") else "x")
        )
    assert crowd_link_for_token(link_id=link.pk, token=link.token) == link
    params = {"PROLIFIC_PID": "5f0c0ffee0c0ffee0c0ffee0", "STUDY_ID": "s1", "SESSION_ID": "x1"}
    w = crowd_enter(link=link, params=params, address="1.2.3.4")
    assert not w.user.has_usable_password()
    assert (w.study_id, w.session_id) == ("s1", "x1")
    assert w.membership.role == "annotator"
    again = crowd_enter(link=link, params={**params, "SESSION_ID": "x2"}, address="1.2.3.4")
    assert again.user_id == w.user_id and again.session_id == "x2"
    for bad in ("", "a" * 65, "../etc", "a b", "é"):
        with pytest.raises(ValidationFailed) as exc:
            crowd_enter(link=link, params={"PROLIFIC_PID": bad}, address="1.2.3.4")
        assert exc.value.code == "crowd_worker_id_invalid"
    with pytest.raises(IntegrityError), transaction.atomic():
        CrowdWorker.objects.create(link=link, user=UserFactory(), worker_id=w.worker_id)
    end = crowd_finish(worker=w)
    assert end.code == "C0DE"
    assert end.redirect_url == "https://app.prolific.com/submissions/complete?cc=C0DE"


@pytest.mark.django_db
def test_crowd_accounts_throttled_per_address(settings) -> None:  # type: ignore[no-untyped-def]
    settings.CROWD_ACCOUNTS_PER_ADDRESS_PER_HOUR = 2
    campaign = label_campaign(2)
    link = crowd_link_create(campaign=campaign, created_by=None, preset="mturk")
    for i in range(2):
        crowd_enter(link=link, params={"workerId": f"W{i}"}, address="9.9.9.9")
    with pytest.raises(TooManyRequests):
        crowd_enter(link=link, params={"workerId": "W3"}, address="9.9.9.9")
    # A returning worker is not a new account: not throttled.
    crowd_enter(link=link, params={"workerId": "W0"}, address="9.9.9.9")
    crowd_enter(link=link, params={"workerId": "W4"}, address="8.8.8.8")


@pytest.mark.django_db(transaction=True)
def test_screened_out_worker_gets_the_other_code() -> None:
    campaign = label_campaign(6, gold=lambda i: i < 2)
    campaign_people_rules_set(campaign=campaign, screening_items=1, screening_pass_mark=1.0)
    link = crowd_link_create(
        campaign=campaign, created_by=None, completion_code="OK1", screening_fail_code="NO1"
    )
    w = crowd_enter(link=link, params={"PROLIFIC_PID": "bad1"}, address="1.1.1.1")
    a = lease(campaign, w.user)
    submit(a, label="no" if a.example.label == "yes" else "yes")
    end = crowd_finish(worker=w)
    assert (end.outcome, end.code, end.redirect_url) == ("screened_out", "NO1", "")


# --- REST API: permissions and query pins -----------------------------------------------------


@pytest.fixture
def team():  # type: ignore[no-untyped-def]
    campaign = label_campaign(4, gold=lambda i: i < 2)
    campaign_people_rules_set(campaign=campaign, screening_items=1)
    people = {
        "manager": member(campaign, "pm-manager", "manager"),
        "annotator": member(campaign, "pm-annotator"),
        "validator": member(campaign, "pm-validator", "validator"),
        "outsider": UserFactory(username="pm-outsider"),
        "staff": UserFactory(username="pm-staff", is_staff=True),
    }
    return campaign, people


ENDPOINTS = ["people/", "people/rules/", "invites/", "crowd-links/"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "who,status",
    [("manager", 200), ("staff", 200), ("annotator", 403), ("validator", 403), ("outsider", 404)],
)
def test_people_endpoints_are_manager_only(team, who, status) -> None:  # type: ignore[no-untyped-def]
    campaign, people = team
    client = client_for(people[who])
    for path in ENDPOINTS:
        assert client.get(f"/api/v1/campaigns/{campaign.pk}/{path}").status_code == status, path
    r = client.post(
        f"/api/v1/campaigns/{campaign.pk}/invites/", {"role": "annotator"}, format="json"
    )
    assert r.status_code == (201 if status == 200 else status)
    r = client.post(f"/api/v1/campaigns/{campaign.pk}/crowd-links/", {}, format="json")
    assert r.status_code == (201 if status == 200 else status)


@pytest.mark.django_db
def test_invites_follow_the_grant_rules(team, settings) -> None:  # type: ignore[no-untyped-def]
    campaign, people = team
    m = client_for(people["manager"])
    r = m.post(f"/api/v1/campaigns/{campaign.pk}/invites/", {"role": "manager"}, format="json")
    assert r.status_code == 403 and r.json()["error"]["code"] == "role_grant_forbidden"
    assert not Invite.objects.filter(role="manager").exists()
    r = client_for(people["staff"]).post(
        f"/api/v1/campaigns/{campaign.pk}/invites/", {"role": "manager"}, format="json"
    )
    assert r.status_code == 201 and "/signup/" in r.json()["url"]
    settings.MANAGERS_MAY_GRANT_MANAGER = True
    r = m.post(
        f"/api/v1/campaigns/{campaign.pk}/invites/",
        {"role": "manager", "email": "x@y.org"},
        format="json",
    )
    assert r.status_code == 201
    r = m.post(
        f"/api/v1/campaigns/{campaign.pk}/invites/",
        {"role": "annotator", "email": "nope"},
        format="json",
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invite_email_invalid"
    # The list never shows a token or its hash.
    body = m.get(f"/api/v1/campaigns/{campaign.pk}/invites/").json()
    assert body and all("token" not in str(row) for row in body)


@pytest.mark.django_db
def test_deactivate_a_manager_needs_staff(team) -> None:  # type: ignore[no-untyped-def]
    campaign, people = team
    other = member(campaign, "pm-manager2", "manager")
    mid = Membership.objects.get(campaign=campaign, user=other).pk
    m = client_for(people["manager"])
    r = m.patch(f"/api/v1/campaigns/{campaign.pk}/people/{mid}/", {"active": False}, format="json")
    assert r.status_code == 403 and r.json()["error"]["code"] == "role_grant_forbidden"
    aid = Membership.objects.get(campaign=campaign, user=people["annotator"]).pk
    r = m.patch(f"/api/v1/campaigns/{campaign.pk}/people/{aid}/", {"active": False}, format="json")
    assert r.status_code == 200 and r.json()["active"] is False


@pytest.mark.django_db
def test_rules_api_validates(team) -> None:  # type: ignore[no-untyped-def]
    campaign, people = team
    m = client_for(people["manager"])
    url = f"/api/v1/campaigns/{campaign.pk}/people/rules/"
    assert (
        m.patch(url, {"task_cap": 0}, format="json").json()["error"]["code"] == "task_cap_invalid"
    )
    assert (
        m.patch(url, {"screening_pass_mark": 2}, format="json").json()["error"]["code"]
        == "screening_invalid"
    )
    assert m.patch(url, {"task_cap": "x"}, format="json").status_code == 400
    r = m.patch(
        url, {"task_cap": 5, "screening_items": 2, "screening_pass_mark": 0.5}, format="json"
    )
    assert r.json() == {"task_cap": 5, "screening_items": 2, "screening_pass_mark": 0.5}
    r = m.post(
        f"/api/v1/campaigns/{campaign.pk}/crowd-links/",
        {"completion_url": "ftp://x"},
        format="json",
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "crowd_completion_url"


@pytest.mark.django_db
@pytest.mark.parametrize("extra", [0, 5])
def test_people_list_query_count_is_fixed(team, extra, django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    campaign, people = team
    link = crowd_link_create(campaign=campaign, created_by=None)
    for i in range(extra):
        crowd_enter(link=link, params={"PROLIFIC_PID": f"p{i}"}, address=f"10.0.0.{i}")
    client = client_for(people["manager"])
    # session/auth is forced: 1 access helper + memberships + done + validated + gold answers
    with django_assert_num_queries(5):
        r = client.get(f"/api/v1/campaigns/{campaign.pk}/people/")
    assert len(r.json()) == 3 + extra
    crowd_rows = [p for p in r.json() if p["crowd"]]
    assert len(crowd_rows) == extra
    with django_assert_num_queries(2):
        client.get(f"/api/v1/campaigns/{campaign.pk}/crowd-links/")
    with django_assert_num_queries(2):
        client.get(f"/api/v1/campaigns/{campaign.pk}/invites/")


# --- gold answers given by the manager, per-annotator caps, Finish mid-task ------------------


@pytest.mark.django_db(transaction=True)
def test_screening_people_rows_and_dashboard_read_the_managers_gold_answer() -> None:
    from annotation.selectors_dashboard import campaign_dashboard
    from annotation.selectors_people import people_rows
    from annotation.services.pool import campaign_gold_set

    campaign = label_campaign(8, redundancy=3, gold=lambda i: i < 2)
    campaign_people_rules_set(campaign=campaign, screening_items=2, screening_pass_mark=0.5)
    # The manager's answers are the opposite of the examples' labels.
    for item in CampaignExample.objects.filter(campaign=campaign, is_gold=True):
        flipped = "no" if item.example.label == "yes" else "yes"
        campaign_gold_set(campaign=campaign, example_ids=[item.example_id], answer=flipped)
    answers = dict(
        CampaignExample.objects.filter(campaign=campaign, is_gold=True).values_list(
            "example_id", "gold_answer"
        )
    )
    right, wrong = member(campaign, "gold-right"), member(campaign, "gold-wrong")
    for _ in range(2):
        a = lease(campaign, right)
        assert a.is_gold
        submit(a, label=answers[a.example_id])  # the manager's answer, not the label
        b = lease(campaign, wrong)
        submit(b, label=b.example.label)  # the example's label: wrong here
    assert not lease(campaign, right).is_gold  # passed: real tasks now
    with pytest.raises(Conflict) as exc:
        lease(campaign, wrong)
    assert exc.value.code == "screening_failed"
    rows = {r["username"]: r for r in people_rows(campaign=campaign)}
    assert (rows["gold-right"]["screening"], rows["gold-wrong"]["screening"]) == (
        "passed",
        "failed",
    )
    table = {r["annotator"]: r for r in campaign_dashboard(campaign=campaign)["annotators"]}
    assert table["gold-right"]["gold_accuracy"] == 1.0
    assert table["gold-wrong"]["gold_accuracy"] == 0.0


@pytest.mark.django_db(transaction=True)
def test_a_members_own_cap_wins_over_the_campaigns() -> None:
    from annotation.services.people import membership_task_cap_set

    campaign = label_campaign(8, redundancy=3)
    campaign_people_rules_set(campaign=campaign, task_cap=2)
    low, high, plain = (member(campaign, n) for n in ("cap-low", "cap-high", "cap-plain"))
    memberships = {m.user_id: m for m in Membership.objects.filter(campaign=campaign)}
    membership_task_cap_set(membership=memberships[low.pk], task_cap=1)
    membership_task_cap_set(membership=memberships[high.pk], task_cap=4)
    for user, cap, source in ((low, 1, "member"), (high, 4, "member"), (plain, 2, "campaign")):
        for _ in range(cap):
            submit(lease(campaign, user))
        with pytest.raises(Conflict) as exc:
            lease(campaign, user)
        assert exc.value.code == "task_cap_reached"
        assert exc.value.details == {"cap": cap, "done": cap, "source": source}
    # Cleared: the campaign's cap (2) holds again, which `high` is past already; without a
    # campaign cap, a member's own cap is the only one.
    membership_task_cap_set(membership=memberships[high.pk], task_cap=None)
    with pytest.raises(Conflict):
        lease(campaign, high)
    campaign_people_rules_set(campaign=campaign, task_cap=None)
    assert lease(campaign, high) is not None and lease(campaign, plain) is not None
    with pytest.raises(Conflict) as exc:
        lease(campaign, low)
    assert exc.value.details["source"] == "member"
    assert "1 task set for you" in exc.value.message


@pytest.mark.django_db
def test_member_cap_rules() -> None:
    from annotation.services.people import membership_task_cap_set

    campaign = label_campaign(2)
    ana, val = member(campaign, "mc-ana"), member(campaign, "mc-val", "validator")
    rows = {m.user_id: m for m in Membership.objects.filter(campaign=campaign)}
    for bad in (0, -1, 1_000_001):
        with pytest.raises(ValidationFailed) as exc:
            membership_task_cap_set(membership=rows[ana.pk], task_cap=bad)
        assert exc.value.code == "task_cap_invalid"
    with pytest.raises(ValidationFailed) as exc:
        membership_task_cap_set(membership=rows[val.pk], task_cap=3)
    assert exc.value.code == "task_cap_role"
    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.filter(pk=rows[ana.pk].pk).update(task_cap=0)


@pytest.mark.django_db(transaction=True)
def test_finish_mid_task_gives_the_task_back_at_once() -> None:
    campaign = label_campaign(1, redundancy=1)
    link = crowd_link_create(campaign=campaign, created_by=None, completion_code="DONE1")
    w = crowd_enter(link=link, params={"PROLIFIC_PID": "midtask1"}, address="3.3.3.3")
    held = lease(campaign, w.user)
    other = member(campaign, "next-in-line")
    assert lease(campaign, other) is None  # the only slot is taken
    end = crowd_finish(worker=w)
    assert end.code == "DONE1"
    held.refresh_from_db()
    assert held.status == Assignment.Status.EXPIRED
    item = CampaignExample.objects.get(campaign=campaign, example_id=held.example_id)
    assert (item.in_flight, item.completed) == (0, 0)
    assert lease(campaign, other).example_id == held.example_id


@pytest.mark.django_db
def test_member_cap_over_rest(team, exact_queries) -> None:  # type: ignore[no-untyped-def]
    campaign, people = team
    m = client_for(people["manager"])
    aid = Membership.objects.get(campaign=campaign, user=people["annotator"], role="annotator").pk
    vid = Membership.objects.get(campaign=campaign, user=people["validator"]).pk
    url = f"/api/v1/campaigns/{campaign.pk}/people/{aid}/"
    # access + membership + save + the people rows (memberships, done, validated, gold)
    with exact_queries(7):
        r = m.patch(url, {"task_cap": 3}, format="json")
    assert r.status_code == 200
    assert (r.json()["task_cap"], r.json()["own_task_cap"], r.json()["active"]) == (3, 3, True)
    campaign_people_rules_set(campaign=campaign, task_cap=10)
    rows = {p["id"]: p for p in m.get(f"/api/v1/campaigns/{campaign.pk}/people/").json()}
    assert rows[aid]["task_cap"] == 3 and rows[vid]["task_cap"] == 10
    r = m.patch(url, {"task_cap": None}, format="json")
    assert (r.json()["task_cap"], r.json()["own_task_cap"]) == (10, None)
    for body, code in (
        ({"task_cap": "x"}, "task_cap_invalid"),
        ({"task_cap": 0}, "task_cap_invalid"),
        ({"task_cap": True}, "task_cap_invalid"),
        ({}, "body_invalid"),
    ):
        r = m.patch(url, body, format="json")
        assert r.status_code == 400 and r.json()["error"]["code"] == code, body
    r = m.patch(f"/api/v1/campaigns/{campaign.pk}/people/{vid}/", {"task_cap": 2}, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "task_cap_role"
    r = client_for(people["annotator"]).patch(url, {"task_cap": 50}, format="json")
    assert r.status_code == 403
    assert Membership.objects.get(pk=aid).task_cap is None
