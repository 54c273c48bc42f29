"""People pages without a browser: who may open them, what a bad link answers, and that a
refused form stores nothing."""

from __future__ import annotations

import pytest
from django.test import Client

from annotation.models import CrowdWorker, Invite
from annotation.services.people import crowd_link_create, invite_create
from tests.annotation.annotator_helpers import member, text_campaign
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def client_as(user) -> Client:  # type: ignore[no-untyped-def]
    c = Client()
    if user is not None:
        c.force_login(user)
    return c


@pytest.fixture
def campaign():  # type: ignore[no-untyped-def]
    return text_campaign(3, task_counterfactual=False, name="Pages")


def test_people_page_is_for_managers(campaign) -> None:  # type: ignore[no-untyped-def]
    url = f"/manage/campaigns/{campaign.pk}/people/"
    assert client_as(None).get(url).status_code == 302
    assert client_as(UserFactory(username="out")).get(url).status_code == 404
    assert client_as(member(campaign, "ann")).get(url).status_code == 403
    assert client_as(member(campaign, "mgr", "manager")).get(url).status_code == 200
    assert client_as(UserFactory(username="st", is_staff=True)).get(url).status_code == 200


def test_manager_cannot_invite_a_manager_from_the_page(campaign) -> None:  # type: ignore[no-untyped-def]
    c = client_as(member(campaign, "mgr", "manager"))
    r = c.post(
        f"/manage/campaigns/{campaign.pk}/people/", {"action": "signup_link", "role": "manager"}
    )
    assert r.status_code == 403 and b"only staff may grant the manager role" in r.content
    assert not Invite.objects.exists()


def test_bad_links_answer_named_pages(campaign) -> None:  # type: ignore[no-untyped-def]
    link = crowd_link_create(campaign=campaign, created_by=None)
    c = Client()
    assert c.get(f"/crowd/{link.pk}/wrong-token/?PROLIFIC_PID=abc").status_code == 404
    r = c.get(f"/crowd/{link.pk}/{link.token}/")
    assert r.status_code == 400 and b"PROLIFIC_PID" in r.content
    r = c.get(f"/crowd/{link.pk}/{link.token}/?PROLIFIC_PID=a%20b")
    assert r.status_code == 400 and not CrowdWorker.objects.exists()
    r = c.get(f"/crowd/{link.pk}/{link.token}/?PROLIFIC_PID=abc123")
    assert r.status_code == 302 and r["Location"] == f"/campaigns/{campaign.pk}/annotate/"
    link.active = False
    link.save()
    assert Client().get(f"/crowd/{link.pk}/{link.token}/?PROLIFIC_PID=abc123").status_code == 404
    assert Client().get("/signup/not-a-token/").status_code == 404
    # The finish page is for study participants only.
    assert (
        client_as(member(campaign, "ann")).get(f"/crowd/finish/{campaign.pk}/").status_code == 403
    )


def test_mail_that_cannot_be_sent_is_a_named_error(campaign, settings) -> None:  # type: ignore[no-untyped-def]
    from counterpoint.errors import Unavailable
    from tests.tooling import free_port

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2
    with pytest.raises(Unavailable) as exc:
        invite_create(
            campaign=campaign,
            role="annotator",
            created_by=None,
            link_base="http://x",
            email="a@b.org",
        )
    assert exc.value.code == "invite_mail_failed"
    assert Invite.objects.filter(pk=exc.value.details["invite"]).exists()


def test_finish_is_a_form_with_a_csrf_token(campaign) -> None:  # type: ignore[no-untyped-def]
    from annotation.models import Campaign

    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.ACTIVE)
    link = crowd_link_create(campaign=campaign, created_by=None, completion_code="F1")
    c = Client(enforce_csrf_checks=True)
    assert c.get(f"/crowd/{link.pk}/{link.token}/?PROLIFIC_PID=formworker").status_code == 302
    page = c.get(f"/campaigns/{campaign.pk}/annotate/").content.decode()
    assert f'<form method="post" action="/crowd/finish/{campaign.pk}/"' in page
    assert 'id="crowd-finish"' in page and "csrfmiddlewaretoken" in page
    # Posted from elsewhere (no token): refused, nothing recorded.
    assert c.post(f"/crowd/finish/{campaign.pk}/").status_code == 403
    assert CrowdWorker.objects.get(worker_id="formworker").finished_at is None
    token = c.cookies["csrftoken"].value
    r = c.post(f"/crowd/finish/{campaign.pk}/", {"csrfmiddlewaretoken": token})
    assert r.status_code == 303 and r["Location"] == f"/crowd/finish/{campaign.pk}/"
    assert CrowdWorker.objects.get(worker_id="formworker").finished_at is not None
    assert b"F1" in c.get(r["Location"]).content


def test_member_cap_form_on_the_people_page(campaign) -> None:  # type: ignore[no-untyped-def]
    from annotation.models import Membership

    boss = member(campaign, "capboss", "manager")
    ann = member(campaign, "capped")
    mid = Membership.objects.get(campaign=campaign, user=ann).pk
    url = f"/manage/campaigns/{campaign.pk}/people/"
    c = client_as(boss)
    r = c.post(url, {"action": "member_cap", "membership": mid, "member_task_cap": "abc"})
    assert r.status_code == 400 and b"whole number of tasks" in r.content
    assert Membership.objects.get(pk=mid).task_cap is None
    r = c.post(url, {"action": "member_cap", "membership": mid, "member_task_cap": "7"})
    assert r.status_code == 200 and b"capped may do at most 7 tasks." in r.content
    assert Membership.objects.get(pk=mid).task_cap == 7
    bid = Membership.objects.get(campaign=campaign, user=boss).pk
    r = c.post(url, {"action": "member_cap", "membership": bid, "member_task_cap": "7"})
    assert r.status_code in (400, 403) and Membership.objects.get(pk=bid).task_cap is None
