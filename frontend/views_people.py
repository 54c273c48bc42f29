"""People pages: the manager's people tab (members, invites, sign-up links, crowd links, the
people rules), the public sign-up page of an invite, and the crowd entry and finish pages.
Thin: every write is one service call; errors are the services' named messages."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_http_methods

from annotation.access import membership_grant_check
from annotation.api.people import crowd_link_json, site_origin
from annotation.models import CrowdWorker, Membership
from annotation.selectors_people import people_rows
from annotation.services.accounts import client_address
from annotation.services.campaigns import membership_remove, membership_set_active
from annotation.services.people import (
    PRESETS,
    campaign_people_rules_set,
    crowd_enter,
    crowd_finish,
    crowd_link_create,
    crowd_link_for_token,
    crowd_link_update,
    invite_accept,
    invite_create,
    invite_for_token,
    invite_revoke,
    membership_task_cap_set,
)
from counterpoint.errors import Forbidden, NotFound, ServiceError, ValidationFailed
from frontend.views import manage_context

Role = Membership.Role
PRESET_NAMES = {"mturk": "MTurk", "prolific": "Prolific"}


def team_counts(rows: list[dict[str, Any]]) -> str:
    """ "20 annotators · 1 manager": the members by role, the deactivated apart."""
    from annotation.selectors import count_of

    parts = []
    for role in (Role.ANNOTATOR, Role.VALIDATOR, Role.MANAGER):
        n = sum(1 for r in rows if r["role"] == role and r["active"])
        if n:
            parts.append(count_of(n, str(role)))
    off = sum(1 for r in rows if not r["active"])
    if off:
        parts.append(f"{off} deactivated")
    return " · ".join(parts)


_BACKEND = "django.contrib.auth.backends.ModelBackend"


def _int_or_none(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value.isdigit() and len(value) < 10 else None


def _people_action(request: HttpRequest, context: dict[str, Any]) -> dict[str, Any]:
    """Run the one service a posted form names; what to show afterwards."""
    campaign = context["campaign"]
    action = request.POST.get("action", "")
    post = request.POST
    shown: dict[str, Any] = {}
    if action in ("invite", "signup_link"):
        role = post.get("role", Role.ANNOTATOR)
        membership_grant_check(user=request.user, campaign=campaign, role=role, grantee_username="")
        invite, url = invite_create(
            campaign=campaign,
            role=role,
            email=post.get("email", "") if action == "invite" else "",
            created_by=request.user,
            link_base=site_origin(request),
        )
        if action == "invite":
            shown["notice"] = f"Invitation sent to {invite.email}."
        else:
            shown["new_signup_url"] = url
            shown["notice"] = (
                "Sign-up link created: it works once. Copy it now, it is not shown again."
            )
    elif action == "revoke_invite":
        invite = campaign.invites.filter(pk=_int_or_none(post.get("invite")) or 0).first()
        if invite is not None:
            invite_revoke(invite=invite)
            shown["notice"] = "Invite revoked."
    elif action == "crowd_link":
        preset = post.get("preset", "prolific")
        fields = {
            k: post.get(k, "") for k in ("completion_code", "screening_fail_code", "completion_url")
        }
        if post.get("worker_param"):
            fields.update(
                {k: post.get(k, "") for k in ("worker_param", "study_param", "session_param")}
            )
        crowd_link_create(campaign=campaign, created_by=request.user, preset=preset, **fields)
        shown["notice"] = "Study link created."
    elif action == "crowd_link_update":
        link = campaign.crowd_links.filter(pk=_int_or_none(post.get("link")) or 0).first()
        if link is None:
            raise NotFound("no such study link")
        fields = {
            k: post.get(k, "") for k in ("completion_code", "screening_fail_code", "completion_url")
        }
        fields["active"] = post.get("active") == "on"  # type: ignore[assignment]
        crowd_link_update(link=link, **fields)
        shown["notice"] = "Study link saved."
    elif action == "rules":
        campaign_people_rules_set(
            campaign=campaign,
            task_cap=_int_or_none(post.get("task_cap")),
            screening_items=_int_or_none(post.get("screening_items")) or 0,
            screening_pass_mark=(_int_or_none(post.get("screening_pass_percent")) or 0) / 100,
        )
        shown["notice"] = "Task cap and screening saved."
    elif action == "member_cap":
        membership = (
            campaign.memberships.select_related("user")
            .filter(pk=_int_or_none(post.get("membership")) or 0)
            .first()
        )
        if membership is None:
            raise NotFound("no such member")
        raw = (post.get("member_task_cap") or "").strip()
        cap = _int_or_none(raw)
        if raw and cap is None:
            raise ValidationFailed(
                "A task cap is a whole number of tasks (empty: the campaign's cap).",
                code="task_cap_invalid",
            )
        membership_grant_check(
            user=request.user,
            campaign=campaign,
            role=membership.role,
            grantee_username=membership.user.username,
        )
        membership_task_cap_set(membership=membership, task_cap=cap)
        name = membership.user.username
        shown["notice"] = (
            f"{name} may do at most {cap} task{'' if cap == 1 else 's'}."
            if cap is not None
            else f"{name} follows the campaign's task cap again."
        )
    elif action in ("deactivate", "activate", "remove"):
        membership = (
            campaign.memberships.select_related("user")
            .filter(pk=_int_or_none(post.get("membership")) or 0)
            .first()
        )
        if membership is None:
            raise NotFound("no such member")
        membership_grant_check(
            user=request.user,
            campaign=campaign,
            role=membership.role,
            grantee_username=membership.user.username,
            removing=action != "activate",
        )
        if action == "remove":
            membership_remove(membership=membership)
            shown["notice"] = (
                f"{membership.user.username} no longer has the {membership.role} role."
            )
        else:
            membership_set_active(membership=membership, active=action == "activate")
            shown["notice"] = f"{membership.user.username} is {action}d."
    return shown


@login_required
@ensure_csrf_cookie
@require_http_methods(["GET", "POST"])
def people(request: HttpRequest, campaign_id: int) -> HttpResponse:
    context = manage_context(request, campaign_id, tab="people")
    campaign = context["campaign"]
    status = 200
    if request.method == "POST":
        try:
            context.update(_people_action(request, context))
        except ServiceError as exc:
            context["error"] = exc.message
            status = 403 if isinstance(exc, Forbidden) else 400
    origin = site_origin(request)
    rows = people_rows(campaign=campaign)
    confirm = None
    if request.method == "GET" and request.GET.get("confirm") in ("remove", "deactivate"):
        wanted = _int_or_none(request.GET.get("membership"))
        confirm = next((r for r in rows if r["id"] == wanted), None)
        if confirm is not None:
            confirm = {**confirm, "action": request.GET["confirm"]}
    gold_items = campaign.items.filter(is_gold=True).count()
    context.update(
        {
            "rows": rows,
            "confirm": confirm,
            "invites": list(campaign.invites.select_related("accepted_by")[:50]),
            "links": [crowd_link_json(link, origin) for link in campaign.crowd_links.all()],
            "presets": [(p, PRESET_NAMES.get(p, p.capitalize())) for p in sorted(PRESETS)],
            "team_counts": team_counts(rows),
            "roles": [Role.ANNOTATOR, Role.VALIDATOR, Role.MANAGER],
            "gold_items": gold_items,
            "screening_short": campaign.screening_items > gold_items,
            "pass_percent": round(campaign.screening_pass_mark * 100),
            "now": timezone.now(),
            # Rows whose role the caller may not take away show no actions (the rule itself
            # is access.membership_grant_check, which every action runs).
            "may_change_managers": request.user.is_staff or settings.MANAGERS_MAY_GRANT_MANAGER,
        }
    )
    return render(request, "frontend/manage/people.html", context, status=status)


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest, token: str) -> HttpResponse:
    """The page a sign-up link opens: choose a username and password (the validators'
    messages on failure); the new account is signed in and sent to its campaign."""
    try:
        invite = invite_for_token(token=token)
    except ServiceError as exc:
        return render(
            request, "frontend/signup.html", {"dead": exc.message}, status=exc.http_status
        )
    context: dict[str, Any] = {"invite": invite, "campaign": invite.campaign}
    if request.method == "POST":
        username = request.POST.get("username", "")
        password = request.POST.get("password", "")
        if password != request.POST.get("password2", ""):
            context.update(error="The two passwords differ.", username=username)
            return render(request, "frontend/signup.html", context, status=400)
        try:
            user = invite_accept(
                token=token,
                username=username,
                password=password,
                email=request.POST.get("email", ""),
            )
        except ServiceError as exc:
            context.update(error=exc.message, username=username)
            return render(request, "frontend/signup.html", context, status=exc.http_status)
        login(request, user, backend=_BACKEND)
        if invite.role == Role.ANNOTATOR:
            return HttpResponseRedirect(f"/campaigns/{invite.campaign_id}/annotate/")
        if invite.role == Role.MANAGER:
            return HttpResponseRedirect(f"/manage/campaigns/{invite.campaign_id}/")
        return HttpResponseRedirect("/")
    return render(request, "frontend/signup.html", context)


def crowd_entry(request: HttpRequest, link_id: int, token: str) -> HttpResponse:
    """A study link (/crowd/<id>/<token>/?PROLIFIC_PID=…): sign the worker in (a first visit
    makes their account) and start the work."""
    try:
        link = crowd_link_for_token(link_id=link_id, token=token)
    except NotFound as exc:
        raise Http404(exc.message) from None
    try:
        worker = crowd_enter(link=link, params=request.GET, address=client_address(request))
    except ServiceError as exc:
        return render(
            request,
            "frontend/crowd_end.html",
            {"error": exc.message, "campaign": link.campaign},
            status=exc.http_status,
        )
    if request.user.is_authenticated and request.user.pk != worker.user_id:
        # Someone else's session in this browser: the worker's own replaces it.
        request.session.flush()
    login(request, worker.user, backend=_BACKEND)
    if worker.finished_at is not None:
        return HttpResponseRedirect(f"/crowd/finish/{link.campaign_id}/")
    return HttpResponseRedirect(f"/campaigns/{link.campaign_id}/annotate/")


@login_required
@require_http_methods(["GET", "POST"])
def crowd_finish_page(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """The end of a crowd worker's session: their completion code, and (when the manager set
    a completion URL) the way back to the platform."""
    worker = (
        CrowdWorker.objects.select_related("link__campaign")
        .filter(user_id=int(request.user.pk or 0), link__campaign_id=campaign_id)
        .first()
    )
    if worker is None:
        raise PermissionDenied("this page is for study participants of this campaign")
    end = crowd_finish(worker=worker)
    if request.method == "POST":
        # The Finish button (a form: ending a session and releasing its task is no link a
        # page elsewhere could fire); the code shows on the GET, which a reload repeats safely.
        return HttpResponseRedirect(request.path, status=303)
    context = {"campaign": worker.link.campaign, "end": end}
    return render(request, "frontend/crowd_end.html", context)
