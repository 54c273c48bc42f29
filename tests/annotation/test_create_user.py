"""manage.py create_user: accounts without a superuser shell, passwords through the validators."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

pytestmark = pytest.mark.django_db


def run(*args: str, stdin: str | None = None) -> str:
    out = io.StringIO()
    kwargs = {"stdin": io.StringIO(stdin)} if stdin is not None else {}
    call_command("create_user", *args, stdout=out, **kwargs)
    return out.getvalue()


def test_generated_password_is_printed_once_and_signs_in() -> None:
    out = run("ada", "--email", "ada@example.org")
    password = out.split("password: ")[1].strip()
    user = authenticate(username="ada", password=password)
    assert user is not None and not user.is_staff and user.email == "ada@example.org"


def test_staff_with_password_from_stdin() -> None:
    out = run("op", "--staff", "--password-from-stdin", stdin="correct horse battery 7\n")
    assert "created staff user 'op'" in out and "password:" not in out
    user = authenticate(username="op", password="correct horse battery 7")
    assert user is not None and user.is_staff


@pytest.mark.parametrize("password", ["short", "bob-the-builder-bob"])
def test_weak_password_is_refused_and_nothing_created(password: str) -> None:
    with pytest.raises(CommandError) as exc:
        run("bob-the-builder", "--password-from-stdin", stdin=password + "\n")
    assert "[user_password_invalid]" in str(exc.value)
    assert not get_user_model().objects.filter(username="bob-the-builder").exists()


def test_existing_username_is_a_named_error() -> None:
    run("ada")
    with pytest.raises(CommandError) as exc:
        run("ada")
    assert "[user_exists]" in str(exc.value)
    assert get_user_model().objects.filter(username="ada").count() == 1
