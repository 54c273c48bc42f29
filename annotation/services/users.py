"""Accounts created by the operator without a superuser shell (manage.py create_user)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from counterpoint.errors import Conflict, ValidationFailed

MAX_USERNAME = 150


def user_create(*, username: str, password: str, email: str = "", is_staff: bool = False) -> Any:
    """A new active user. The password must pass AUTH_PASSWORD_VALIDATORS (checked against the
    would-be user, so the similarity validator sees the username and email)."""
    User = get_user_model()
    username = (username or "").strip()
    if not username or len(username) > MAX_USERNAME:
        raise ValidationFailed(
            f"a username is 1 to {MAX_USERNAME} characters", code="user_username_invalid"
        )
    candidate = User(username=username, email=email, is_staff=is_staff)
    try:
        candidate.full_clean(exclude=["password"], validate_unique=False)
        validate_password(password, user=candidate)
    except ValidationError as exc:
        code = "user_password_invalid" if not hasattr(exc, "error_dict") else "user_invalid"
        raise ValidationFailed(
            " ".join(exc.messages), code=code, details={"messages": exc.messages}
        ) from None
    candidate.set_password(password)
    try:
        with transaction.atomic():
            candidate.save()
    except IntegrityError:
        raise Conflict(f"user {username!r} already exists", code="user_exists") from None
    return candidate
