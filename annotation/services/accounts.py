"""Accounts: API tokens (issue, expiry, revocation) and sign-in throttling.

Sign-in throttling counts failed attempts per username and per client address in the shared
cache (settings.CACHES: the database or Redis, so every web process sees the same counts). A
window opens at the first failure and lasts LOGIN_FAILURE_WINDOW_S; once a username or an
address has used its failures, sign-in is refused, right password or not, until the window
ends. A success clears the username's count (not the address's: one valid account must not
reset an address that is guessing others)."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from rest_framework.authtoken.models import Token


def _now() -> float:
    return time.time()


# --- tokens -----------------------------------------------------------------------------


def token_expires_at(*, token: Token) -> datetime:
    return token.created + timedelta(hours=settings.API_TOKEN_TTL_HOURS)


def token_is_expired(*, token: Token) -> bool:
    return timezone.now() >= token_expires_at(token=token)


def token_issue(*, user: Any) -> Token:
    """The user's token; an expired one is replaced by a fresh key (a token is one per user)."""
    token, created = Token.objects.get_or_create(user=user)
    if not created and token_is_expired(token=token):
        token.delete()
        token = Token.objects.create(user=user)
    return token


def token_revoke(*, user: Any) -> int:
    """Delete the user's API token(s); the number deleted."""
    if not getattr(user, "pk", None):
        return 0
    deleted, _ = Token.objects.filter(user_id=user.pk).delete()
    return deleted


class RevokeTokensOnPasswordChange:
    """Listed in AUTH_PASSWORD_VALIDATORS for its `password_changed` hook, which Django calls
    after saving a new password on every path: our services, the password change and reset
    views, the admin's password form, `manage.py changepassword`. Those paths are Django's
    own, with no service of ours to call, so this hook is the one place they all pass."""

    def validate(self, password: str, user: Any = None) -> None:
        return None

    def password_changed(self, password: str, user: Any = None) -> None:
        if user is not None:
            token_revoke(user=user)

    def get_help_text(self) -> str:
        return ""


# --- sign-in throttling -------------------------------------------------------------------


@dataclass(frozen=True)
class _Counter:
    key: str
    limit: int


def _counters(*, username: str | None, address: str | None) -> list[_Counter]:
    out = []
    if username:
        # Case-folded so "Alice" and "alice" share a count; hashed to keep keys short and safe.
        digest = hashlib.sha256(username.strip().casefold().encode()).hexdigest()[:32]
        out.append(_Counter(f"login-fail:user:{digest}", settings.LOGIN_FAILURES_PER_USERNAME))
    if address:
        out.append(_Counter(f"login-fail:addr:{address}", settings.LOGIN_FAILURES_PER_ADDRESS))
    return out


def login_throttle_wait(*, username: str | None, address: str | None) -> int:
    """Seconds until this username and address may try to sign in again; 0: now."""
    now = _now()
    wait = 0.0
    for counter in _counters(username=username, address=address):
        state = cache.get(counter.key)
        if state and state[1] >= counter.limit:
            wait = max(wait, state[0] + settings.LOGIN_FAILURE_WINDOW_S - now)
    return int(wait) + 1 if wait > 0 else 0


def login_failure_record(*, username: str | None, address: str | None) -> None:
    """Count one failed sign-in. Read-modify-write, not atomic: concurrent failures may count
    once, which only lets a parallel burst past by its width (each try costs a password hash)."""
    now = _now()
    window = settings.LOGIN_FAILURE_WINDOW_S
    for counter in _counters(username=username, address=address):
        state = cache.get(counter.key)
        if not state or state[0] + window <= now:
            state = (now, 0)
        remaining = max(1, int(state[0] + window - now) + 1)
        cache.set(counter.key, (state[0], state[1] + 1), timeout=remaining)


def login_success_record(*, username: str) -> None:
    for counter in _counters(username=username, address=None):
        cache.delete(counter.key)


def client_address(request: Any) -> str:
    """The peer address. X-Forwarded-For is not trusted (any client can send it): behind a
    reverse proxy every client shares the proxy's address count unless the proxy setup puts
    the client's address in REMOTE_ADDR."""
    return str(request.META.get("REMOTE_ADDR") or "unknown")
