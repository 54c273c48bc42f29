"""python manage.py create_user NAME [--email E] [--staff] [--password-from-stdin]

Without --password-from-stdin a password is generated and printed once."""

from __future__ import annotations

import secrets
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.services.users import user_create
from counterpoint.errors import ServiceError


class Command(BaseCommand):
    # call_command(stdin=...) feeds the password the way a pipe would (as createsuperuser does).
    stealth_options = ("stdin",)
    help = (
        "Create a user account (staff with --staff). The password is read from stdin with "
        "--password-from-stdin, or generated and printed; it must pass the password validators."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--staff", action="store_true", help="the operator role: may grant manager roles"
        )
        parser.add_argument(
            "--password-from-stdin",
            action="store_true",
            help="read the password from the first line of stdin instead of generating one",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        generated = not opts["password_from_stdin"]
        if generated:
            password = secrets.token_urlsafe(12)
        else:
            # A password on the command line would be in the shell history and `ps`.
            stdin = opts.get("stdin") or sys.stdin
            password = stdin.readline().rstrip("\r\n")
        try:
            user = user_create(
                username=opts["username"],
                password=password,
                email=opts["email"],
                is_staff=opts["staff"],
            )
        except ServiceError as exc:
            raise CommandError(f"{exc.message} [{exc.code}]") from None
        role = "staff user" if user.is_staff else "user"
        self.stdout.write(f"created {role} {user.username!r}")
        if generated:
            self.stdout.write(f"password: {password}")
