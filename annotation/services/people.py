"""People of a campaign without a shell (docs/managing.md "People"): invites by e-mail and
one-time sign-up links, crowd entry links (Prolific, MTurk) and the campaign's people rules
(task cap, screening).

Who may grant which role is access.membership_grant_check's to say; callers run it before
creating an invite (the invite carries the role, accepting it grants it through
membership_add)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import smtplib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotation.models import Campaign, CrowdLink, CrowdWorker, Invite, Membership
from annotation.selectors_people import annotator_standing
from annotation.services.assignments import ROLES_FOR_KIND, assignment_release_open
from annotation.services.campaigns import membership_add
from annotation.services.users import user_create
from counterpoint.errors import (
    Conflict,
    NotFound,
    ServiceError,
    TooManyRequests,
    Unavailable,
    ValidationFailed,
)

# Worker, study and session ids as the platforms issue them (Prolific: 24 hex characters,
# MTurk: 12-14 upper-case alphanumerics), with room for others; nothing else reaches a
# username or the database.
PLATFORM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PARAM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")
PRESETS: dict[str, dict[str, str]] = {
    "prolific": {
        "worker_param": "PROLIFIC_PID",
        "study_param": "STUDY_ID",
        "session_param": "SESSION_ID",
    },
    "mturk": {"worker_param": "workerId", "study_param": "hitId", "session_param": "assignmentId"},
}
OUTCOME_COMPLETED = "completed"
OUTCOME_SCREENED_OUT = "screened_out"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


# --- invites and sign-up links ----------------------------------------------------------------


def invite_create(
    *,
    campaign: Campaign,
    role: str,
    created_by: Any,
    link_base: str,
    email: str = "",
    ttl_hours: int | None = None,
) -> tuple[Invite, str]:
    """A one-time sign-up link (the invite and its URL; the token is in the URL only, the
    database keeps its hash). With `email`, the link is mailed there after the row is stored
    (through EMAIL_BACKEND; no mail is sent inside a transaction). `link_base` is the site's
    origin, e.g. "https://counterpoint.example.org"."""
    if role not in (Membership.Role.ANNOTATOR, Membership.Role.VALIDATOR, Membership.Role.MANAGER):
        raise ValidationFailed(
            f"role must be one of {Membership.Role.values}", code="membership_role"
        )
    email = (email or "").strip()
    if email:
        try:
            validate_email(email)
        except Exception:
            raise ValidationFailed(
                f"{email!r} is not an e-mail address", code="invite_email_invalid"
            ) from None
    hours = ttl_hours if ttl_hours is not None else settings.INVITE_TTL_HOURS
    if not 1 <= hours <= 24 * 90:
        raise ValidationFailed("an invite lasts 1 hour to 90 days", code="invite_ttl_invalid")
    token = secrets.token_urlsafe(32)
    invite = Invite.objects.create(
        campaign=campaign,
        role=role,
        email=email,
        token_hash=token_hash(token),
        expires_at=timezone.now() + timedelta(hours=hours),
        created_by=created_by,
    )
    url = f"{link_base.rstrip('/')}/signup/{token}/"
    if email:
        try:
            _send_invite(campaign=campaign, role=role, invite=invite, url=url, email=email)
        except (OSError, smtplib.SMTPException) as exc:
            # The invite stands (its link can be handed out another way); say why no mail.
            raise Unavailable(
                f"the invite was made but the mail could not be sent: {exc}",
                code="invite_mail_failed",
                details={"invite": invite.pk},
            ) from None
    return invite, url


def _send_invite(*, campaign: Campaign, role: str, invite: Invite, url: str, email: str) -> None:
    send_mail(
        subject=f"You are invited to {campaign.name} on Counterpoint",
        message=(
            f"You are invited to work on the campaign {campaign.name!r} as {role}.\n\n"
            f"Choose a username and password here (the link works once, until "
            f"{invite.expires_at:%Y-%m-%d %H:%M} UTC):\n\n{url}\n"
        ),
        from_email=None,
        recipient_list=[email],
    )


def invite_for_token(*, token: str) -> Invite:
    """The open invite of a sign-up link: 404 for an unknown token, 409 for a used or
    expired one."""
    invite = (
        Invite.objects.select_related("campaign").filter(token_hash=token_hash(token or "")).first()
    )
    if invite is None:
        raise NotFound("this sign-up link is not known", code="invite_unknown")
    if invite.used_at is not None:
        raise Conflict("this sign-up link was already used", code="invite_used")
    if invite.expires_at <= timezone.now():
        raise Conflict("this sign-up link has expired; ask for a new one", code="invite_expired")
    return invite


def invite_accept(*, token: str, username: str, password: str, email: str = "") -> Any:
    """Create the account (user_create: the password passes AUTH_PASSWORD_VALIDATORS) and
    grant the invite's role. Once: the invite is claimed by a conditional update first, so
    two submissions of one link make one account; the password is hashed outside any
    transaction (on SQLite a transaction holds the write lock) and a refused account gives
    the claim back."""
    invite = invite_for_token(token=token)
    if not Invite.objects.filter(pk=invite.pk, used_at=None).update(used_at=timezone.now()):
        raise Conflict("this sign-up link was already used", code="invite_used")
    try:
        user = user_create(username=username, password=password, email=email or invite.email)
    except ServiceError:
        Invite.objects.filter(pk=invite.pk, accepted_by=None).update(used_at=None)
        raise
    with transaction.atomic():
        membership_add(campaign=invite.campaign, user=user, role=invite.role)
        Invite.objects.filter(pk=invite.pk).update(accepted_by=user)
    return user


def invite_revoke(*, invite: Invite) -> None:
    """An unused invite stops working (it is marked used by nobody)."""
    Invite.objects.filter(pk=invite.pk, used_at=None).update(used_at=timezone.now())


# --- crowd links ----------------------------------------------------------------------------


def _check_link_fields(values: dict[str, Any]) -> dict[str, Any]:
    for key in ("worker_param", "study_param", "session_param"):
        if key in values:
            value = str(values[key] or "").strip()
            if (value or key == "worker_param") and not PARAM_NAME.match(value):
                raise ValidationFailed(
                    f"{key} must be a URL parameter name (a letter, then letters, digits or _)",
                    code="crowd_param_invalid",
                )
            values[key] = value
    if "completion_url" in values:
        url = str(values["completion_url"] or "").strip()
        parts = urlsplit(url)
        if url and (parts.scheme not in ("http", "https") or not parts.netloc):
            raise ValidationFailed(
                "the completion URL must be an http(s) address", code="crowd_completion_url"
            )
        values["completion_url"] = url
    for key in ("completion_code", "screening_fail_code"):
        if key in values:
            code = str(values[key] or "").strip()
            if len(code) > 100:
                raise ValidationFailed(
                    f"{key} is at most 100 characters", code="crowd_code_invalid"
                )
            values[key] = code
    return values


def crowd_link_create(
    *, campaign: Campaign, created_by: Any, preset: str = "prolific", **fields: Any
) -> CrowdLink:
    if preset not in PRESETS:
        raise ValidationFailed(
            f"preset must be one of {sorted(PRESETS)}", code="crowd_preset_unknown"
        )
    values = _check_link_fields({**PRESETS[preset], **fields})
    return CrowdLink.objects.create(
        campaign=campaign, created_by=created_by, token=secrets.token_urlsafe(24), **values
    )


def crowd_link_update(*, link: CrowdLink, **fields: Any) -> CrowdLink:
    values = _check_link_fields(dict(fields))
    for key, value in values.items():
        setattr(link, key, value)
    link.save(update_fields=list(values))
    return link


def crowd_link_for_token(*, link_id: Any, token: str) -> CrowdLink:
    """The active link, if `token` is its token (compared in constant time); otherwise one
    404 for unknown link, wrong token and switched-off link alike."""
    link = (
        CrowdLink.objects.select_related("campaign").filter(pk=int(link_id)).first()
        if str(link_id).isdigit() and len(str(link_id)) < 12
        else None
    )
    given = (token or "").encode("utf-8", "surrogatepass")
    expected = (link.token if link else "x" * 32).encode()
    if link is None or not hmac.compare_digest(given, expected) or not link.active:
        raise NotFound("this study link is not known or no longer open", code="crowd_link_unknown")
    return link


def _crowd_throttle(*, address: str) -> None:
    """New crowd accounts per client address per hour, in the shared cache: a link in the
    open must not become a way to fill the user table."""
    limit = settings.CROWD_ACCOUNTS_PER_ADDRESS_PER_HOUR
    key = f"crowd-new:{hashlib.sha256(address.encode()).hexdigest()[:32]}"
    cache.add(key, 0, timeout=3600)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=3600)
        count = 1
    if count > limit:
        raise TooManyRequests(
            "too many new study accounts from this address; try again within the hour",
            code="crowd_throttled",
        )


def crowd_enter(*, link: CrowdLink, params: Mapping[str, str], address: str) -> CrowdWorker:
    """The worker behind these URL parameters, signed up on first entry: an account without
    a password (it can only come back through the link), the annotator role, and the
    platform ids on the CrowdWorker row. One account per (link, worker id), by constraint."""
    worker_id = str(params.get(link.worker_param) or "")
    if not PLATFORM_ID.match(worker_id):
        raise ValidationFailed(
            f"the link needs a worker id in {link.worker_param} (1-64 letters, digits, - or _)",
            code="crowd_worker_id_invalid",
        )
    ids = {}
    for field, name in (("study_id", link.study_param), ("session_id", link.session_param)):
        value = str(params.get(name) or "") if name else ""
        if value and not PLATFORM_ID.match(value):
            raise ValidationFailed(
                f"{name} must be 1-64 letters, digits, - or _", code="crowd_param_invalid"
            )
        ids[field] = value
    found = (
        CrowdWorker.objects.select_related("user").filter(link=link, worker_id=worker_id).first()
    )
    if found is not None:
        # A returning worker keeps their account; a new session id (Prolific issues one per
        # try) replaces the old so the newest one is on record.
        if ids["session_id"] and ids["session_id"] != found.session_id:
            CrowdWorker.objects.filter(pk=found.pk).update(session_id=ids["session_id"])
            found.session_id = ids["session_id"]
        return found
    _crowd_throttle(address=address)
    User = get_user_model()
    try:
        with transaction.atomic():
            user = User(username=f"crowd-{link.pk}-{worker_id}")
            user.set_unusable_password()
            user.save()
            membership = membership_add(
                campaign=link.campaign, user=user, role=Membership.Role.ANNOTATOR
            )
            return CrowdWorker.objects.create(
                link=link, membership=membership, user=user, worker_id=worker_id, **ids
            )
    except IntegrityError:
        # The same worker opening the link twice at once: the first account wins.
        found = (
            CrowdWorker.objects.select_related("user")
            .filter(link=link, worker_id=worker_id)
            .first()
        )
        if found is None:
            raise Conflict(
                "an account with this worker's name exists already", code="crowd_username_taken"
            ) from None
        return found


@dataclass(frozen=True)
class CrowdEnd:
    outcome: str
    code: str
    redirect_url: str


def crowd_finish(*, worker: CrowdWorker) -> CrowdEnd:
    """The worker is done (their cap, the pool, the screening, or they pressed Finish): the
    code they earned and where the platform wants them sent. The first finish is recorded;
    later ones show the same code."""
    link = worker.link
    standing = annotator_standing(campaign=link.campaign, annotator_id=worker.user_id)
    screened_out = standing.screening == "failed"
    outcome = OUTCOME_SCREENED_OUT if screened_out else OUTCOME_COMPLETED
    code = link.completion_code
    if screened_out and link.screening_fail_code:
        code = link.screening_fail_code
    CrowdWorker.objects.filter(pk=worker.pk, finished_at=None).update(
        finished_at=timezone.now(), outcome=outcome
    )
    # A task left open when pressing Finish goes back to the pool now, not at its expiry.
    assignment_release_open(
        campaign=link.campaign, annotator_id=worker.user_id, kinds=list(ROLES_FOR_KIND)
    )
    url = link.completion_url.replace("{code}", quote(code, safe="")) if link.completion_url else ""
    return CrowdEnd(outcome=outcome, code=code, redirect_url=url)


# --- people rules ---------------------------------------------------------------------------


def _checked_cap(task_cap: Any) -> int | None:
    if task_cap is not None and not 1 <= int(task_cap) <= 1_000_000:
        raise ValidationFailed("the task cap is 1 to 1,000,000 or none", code="task_cap_invalid")
    return None if task_cap is None else int(task_cap)


def membership_task_cap_set(*, membership: Membership, task_cap: int | None) -> Membership:
    """One annotator's own task cap (None: the campaign's applies again); it may be above or
    below the campaign's. Applies to their next lease; an open lease and past work stay."""
    if membership.role != Membership.Role.ANNOTATOR:
        raise ValidationFailed(
            f"a task cap is for annotators: this member has the {membership.role} role here",
            code="task_cap_role",
        )
    membership.task_cap = _checked_cap(task_cap)
    membership.save(update_fields=["task_cap"])
    return membership


def campaign_people_rules_set(
    *,
    campaign: Campaign,
    task_cap: int | None = ...,  # type: ignore[assignment]
    screening_items: int | None = None,
    screening_pass_mark: float | None = None,
) -> Campaign:
    """Per-annotator task cap (None: no cap) and the screening (N gold items, pass mark as a
    fraction 0-1). Applies to the next lease; what was done stays."""
    changed = []
    if task_cap is not ...:
        campaign.task_cap = _checked_cap(task_cap)
        changed.append("task_cap")
    if screening_items is not None:
        if not 0 <= int(screening_items) <= 1000:
            raise ValidationFailed("screening items are 0 to 1000", code="screening_invalid")
        campaign.screening_items = int(screening_items)
        changed.append("screening_items")
    if screening_pass_mark is not None:
        if not 0 <= float(screening_pass_mark) <= 1:
            raise ValidationFailed("the pass mark is a fraction 0-1", code="screening_invalid")
        campaign.screening_pass_mark = float(screening_pass_mark)
        changed.append("screening_pass_mark")
    if changed:
        campaign.save(update_fields=changed)
    return campaign
