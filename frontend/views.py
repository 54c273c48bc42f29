"""Thin page views: they render a shell; the pages' ES modules talk to the REST API."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from annotation.access import campaign_for_user, campaigns_visible_to
from annotation.models import Campaign, CrowdWorker, Membership
from annotation.services.accounts import (
    client_address,
    login_failure_record,
    login_success_record,
    login_throttle_wait,
    token_revoke,
)
from counterpoint.errors import Forbidden, NotFound

Role = Membership.Role


@contextmanager
def page_errors() -> Iterator[None]:
    """The access helpers' 404/403 as page errors (the API turns them into JSON instead)."""
    try:
        yield
    except NotFound as exc:
        raise Http404(exc.message) from None
    except Forbidden as exc:
        raise PermissionDenied(exc.message) from None


def _campaign_or_page_error(request: HttpRequest, campaign_id: int, roles: list[str]) -> Campaign:
    with page_errors():
        return campaign_for_user(user=request.user, campaign_id=campaign_id, roles=roles)


def manage_context(
    request: HttpRequest, campaign_id: int, *, tab: str, campaign: Campaign | None = None
) -> dict[str, Any]:
    """The context every manager-console page (templates/frontend/manage/) starts from: the
    campaign, if the caller manages it (404/403 page errors otherwise), and the current tab.
    `campaign`: one an access helper already returned for this caller as its manager."""
    if campaign is None:
        campaign = _campaign_or_page_error(request, campaign_id, [Role.MANAGER])
    return {"campaign": campaign, "campaign_id_str": str(campaign.pk), "tab": tab}


@login_required
@ensure_csrf_cookie
def home(request: HttpRequest) -> HttpResponse:
    campaigns = list(
        campaigns_visible_to(user=request.user).select_related("dataset").order_by("name")
    )
    roles: dict[int, set[str]] = defaultdict(set)
    for campaign_id, role in Membership.objects.filter(
        user_id=int(request.user.pk or 0)
    ).values_list("campaign_id", "role"):
        roles[campaign_id].add(role)
    cards = []
    for c in campaigns:
        held = roles.get(c.pk, set())
        annotating = Role.ANNOTATOR in held and (c.task_label or c.task_counterfactual)
        cards.append(
            {
                "campaign": c,
                "roles": sorted(held),
                "can_annotate": annotating,
                "can_validate": bool(held & {Role.ANNOTATOR, Role.VALIDATOR}) and c.task_validation,
                "can_manage": Role.MANAGER in held or request.user.is_staff,
                "manage_url": f"/manage/campaigns/{c.pk}/",
                "active": c.status == Campaign.Status.ACTIVE,
            }
        )
    return render(
        request,
        "frontend/home.html",
        {"cards": cards, "can_manage_any": any(card["can_manage"] for card in cards)},
    )


@login_required
@ensure_csrf_cookie
def annotate(request: HttpRequest, campaign_id: int) -> HttpResponse:
    campaign = _campaign_or_page_error(request, campaign_id, [Role.ANNOTATOR])
    # Crowd workers end on the finish page (their completion code) instead of "all done".
    crowd = CrowdWorker.objects.filter(
        user_id=int(request.user.pk or 0), link__campaign=campaign
    ).exists()
    finish_url = f"/crowd/finish/{campaign.pk}/" if crowd else ""
    return render(
        request,
        "frontend/annotate.html",
        {"campaign": campaign, "kind": "annotate", "finish_url": finish_url},
    )


@login_required
@ensure_csrf_cookie
def validate(request: HttpRequest, campaign_id: int) -> HttpResponse:
    campaign = _campaign_or_page_error(request, campaign_id, [Role.ANNOTATOR, Role.VALIDATOR])
    return render(request, "frontend/validate.html", {"campaign": campaign, "kind": "validate"})


class LoginView(auth_views.LoginView):
    """Django's sign-in page, refusing (429) a username or address that used up its failed
    tries (the same counts as the token endpoint's)."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        username = request.POST.get("username", "")
        wait = login_throttle_wait(username=username, address=client_address(request))
        if wait:
            # An unbound form: a bound one would check the password when the page reads it.
            form = self.get_form_class()(request)
            context = self.get_context_data(form=form, throttled_minutes=-(-wait // 60))
            return render(request, str(self.template_name), context, status=429)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form: Any) -> HttpResponse:
        login_failure_record(
            username=self.request.POST.get("username", ""), address=client_address(self.request)
        )
        return super().form_invalid(form)

    def form_valid(self, form: Any) -> HttpResponse:
        login_success_record(username=form.get_user().get_username())
        return super().form_valid(form)


class LogoutView(auth_views.LogoutView):
    """Signing out also revokes the user's API token."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated:
            token_revoke(user=request.user)
        return super().post(request, *args, **kwargs)
