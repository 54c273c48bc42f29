"""Page views (no browser): who gets which page and which buttons, and that the static ES
modules the pages load are all there and self-contained (no build step, nothing fetched from
the web)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from annotation.models import Campaign, Membership
from tests.factories import CampaignFactory, MembershipFactory

STATIC = Path(__file__).resolve().parents[2] / "frontend" / "static" / "frontend"


def signed_in(user: Any) -> Client:
    c = Client()
    c.force_login(user)
    return c


@pytest.mark.parametrize("path", ["/", "/campaigns/1/annotate/", "/campaigns/1/validate/"])
def test_pages_need_a_signed_in_user(db: Any, path: str) -> None:
    resp = Client().get(path)
    assert resp.status_code == 302
    assert resp["Location"].startswith("/accounts/login/?next=")


def test_login_page_signs_in_and_goes_home(annotator: Any) -> None:
    c = Client()
    page = c.get("/accounts/login/")
    assert page.status_code == 200
    assert b'id="id_username"' in page.content
    resp = c.post("/accounts/login/", {"username": annotator.username, "password": "pw-for-tests"})
    assert resp.status_code == 302 and resp["Location"] == "/"
    assert c.get("/").status_code == 200


def test_wrong_password_says_so(annotator: Any) -> None:
    resp = Client().post("/accounts/login/", {"username": annotator.username, "password": "nope"})
    assert resp.status_code == 200
    assert b"do not match" in resp.content


def test_home_shows_role_appropriate_buttons(
    campaign: Any, annotator: Any, validator: Any, manager: Any
) -> None:
    annotate = f"/campaigns/{campaign.pk}/annotate/".encode()
    validate = f"/campaigns/{campaign.pk}/validate/".encode()

    page = signed_in(annotator).get("/").content
    assert campaign.name.encode() in page
    assert annotate in page and validate in page

    page = signed_in(validator).get("/").content
    assert annotate not in page and validate in page

    page = signed_in(manager).get("/").content
    assert annotate not in page and validate not in page
    assert f'href="/manage/campaigns/{campaign.pk}/">Manage<'.encode() in page
    assert signed_in(manager).get(f"/manage/campaigns/{campaign.pk}/").status_code == 200


def test_home_lists_only_my_campaigns(campaign: Any, annotator: Any) -> None:
    other = CampaignFactory(name="someone-elses")
    page = signed_in(annotator).get("/").content
    assert campaign.name.encode() in page
    assert other.name.encode() not in page


def test_paused_campaign_offers_no_work(campaign: Any, annotator: Any) -> None:
    campaign.status = Campaign.Status.PAUSED
    campaign.save()
    page = signed_in(annotator).get("/").content
    assert f"/campaigns/{campaign.pk}/annotate/".encode() not in page
    assert b"Not open for work" in page


def test_validation_off_hides_validate(campaign: Any, annotator: Any) -> None:
    campaign.task_validation = False
    campaign.save()
    page = signed_in(annotator).get("/").content
    assert f"/campaigns/{campaign.pk}/validate/".encode() not in page


def test_workspace_shell_for_an_annotator(campaign: Any, annotator: Any) -> None:
    resp = signed_in(annotator).get(f"/campaigns/{campaign.pk}/annotate/")
    assert resp.status_code == 200
    html = resp.content.decode()
    assert f'data-campaign-id="{campaign.pk}"' in html
    assert f'data-user-id="{annotator.pk}"' in html
    assert 'src="/static/frontend/js/workspace.js"' in html and 'type="module"' in html
    assert "csrftoken" in resp.cookies  # the API calls need it


def test_workspace_refuses_a_validator_and_hides_from_outsiders(
    campaign: Any, validator: Any, outsider: Any
) -> None:
    assert signed_in(validator).get(f"/campaigns/{campaign.pk}/annotate/").status_code == 403
    assert signed_in(outsider).get(f"/campaigns/{campaign.pk}/annotate/").status_code == 404
    assert signed_in(outsider).get(f"/campaigns/{campaign.pk}/validate/").status_code == 404
    assert signed_in(outsider).get("/campaigns/999999/annotate/").status_code == 404


def test_validator_page_for_validators_and_annotators(
    campaign: Any, validator: Any, annotator: Any, manager: Any
) -> None:
    for user in (validator, annotator):
        resp = signed_in(user).get(f"/campaigns/{campaign.pk}/validate/")
        assert resp.status_code == 200
        assert 'src="/static/frontend/js/validate.js"' in resp.content.decode()
    assert signed_in(manager).get(f"/campaigns/{campaign.pk}/validate/").status_code == 403


def test_staff_may_open_any_campaign(campaign: Any, staff: Any) -> None:
    assert signed_in(staff).get(f"/campaigns/{campaign.pk}/annotate/").status_code == 200
    page = signed_in(staff).get("/").content
    assert f'href="/manage/campaigns/{campaign.pk}/">Manage<'.encode() in page


def test_a_member_with_two_roles_gets_both(campaign: Any, db: Any) -> None:
    m = MembershipFactory(campaign=campaign, role=Membership.Role.VALIDATOR)
    MembershipFactory(campaign=campaign, user=m.user, role=Membership.Role.ANNOTATOR)
    page = signed_in(m.user).get("/").content
    assert b"annotator, validator" in page


# --- static modules -----------------------------------------------------------------------

IMPORT = re.compile(r"""^\s*import\s[^'"]*?from\s+["'](?P<path>[^"']+)["']""", re.MULTILINE)


def test_every_module_import_resolves_to_a_local_file() -> None:
    modules = sorted((STATIC / "js").glob("*.js"))
    assert {p.name for p in modules} >= {"workspace.js", "validate.js", "home.js"}
    for module in modules:
        for m in IMPORT.finditer(module.read_text()):
            target = m.group("path")
            # Vendored libraries (frontend/static/frontend/vendor/) sit beside js/.
            assert target.startswith(("./", "../vendor/")), (
                f"{module.name}: {target} is not a relative local import"
            )
            assert (module.parent / target).is_file(), f"{module.name} imports missing {target}"


def test_nothing_is_loaded_from_the_web() -> None:
    for path in [*list((STATIC / "js").glob("*.js")), STATIC / "app.css"]:
        text = path.read_text()
        assert not re.search(r"(?:src|href|url|import)\W+https?://", text), path.name


def test_static_modules_are_served(client: Client, annotator: Any) -> None:
    for name in ("workspace.js", "validate.js", "textdiff.js", "image_editor.js"):
        resp = client.get(f"/static/frontend/js/{name}")
        assert resp.status_code == 200, name
        assert "javascript" in resp["Content-Type"]
