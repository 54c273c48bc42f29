"""Seed the demo: easy-VQA test split, a 300-example campaign, a manager and two annotators,
and the reference models attached for live feedback. The demo's `manager` is its operator:
a superuser, so the admin works for it (staff without permissions would see only "You don't
have permission" pages). Safe to run again: everything is
looked up before it is created, and passwords are kept in var/demo-credentials.json."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand
from django.db import transaction

from annotation.models import Campaign, Membership
from annotation.services.campaigns import campaign_add_examples, campaign_create, membership_add
from annotation.services.imports import easyvqa_import

CAMPAIGN_NAME = "easy-VQA demo"
PEOPLE = [
    ("manager", [Membership.Role.MANAGER], True),
    ("annotator1", [Membership.Role.ANNOTATOR, Membership.Role.VALIDATOR], False),
    ("annotator2", [Membership.Role.ANNOTATOR, Membership.Role.VALIDATOR], False),
]
INSTRUCTIONS = (
    "Answer the question about the picture. Then say what you needed to decide, and make the "
    "smallest change to ONE input — a word of the question or a patch of the image — so that "
    "the correct answer becomes the target you pick. Keep edits small: the meter shows your budget."
)


def _new_password(user: Any) -> str:
    """A random password that passes AUTH_PASSWORD_VALIDATORS (an all-digit draw is refused by
    the numeric validator, so draw again)."""
    while True:
        candidate = secrets.token_urlsafe(9)
        try:
            validate_password(candidate, user)
        except ValidationError:
            continue
        return candidate


class Command(BaseCommand):
    help = (
        "Create (or refresh) the demo campaign on easy-VQA with demo accounts and reference models."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--examples", type=int, default=300, help="campaign pool size (default 300)"
        )
        parser.add_argument("--split", default="test")

    def handle(self, *args: Any, **opts: Any) -> None:
        report = easyvqa_import(split=opts["split"], dataset_name="easy-VQA")
        dataset = report.dataset
        assert dataset is not None  # easyvqa_import always returns its dataset
        self.stdout.write(
            f"dataset {dataset.name}: {dataset.examples.count()} examples ({report.created} new)"
        )

        creds_path = Path(settings.VAR_DIR) / "demo-credentials.json"
        creds: dict[str, str] = json.loads(creds_path.read_text()) if creds_path.exists() else {}
        User = get_user_model()
        users = {}
        for username, _roles, is_admin in PEOPLE:
            user, created = User.objects.get_or_create(username=username)
            if created or username not in creds:
                creds[username] = _new_password(user)
                user.set_password(creds[username])
            user.is_staff = user.is_superuser = is_admin
            user.save()
            users[username] = user
        creds_path.parent.mkdir(parents=True, exist_ok=True)
        creds_path.write_text(json.dumps(creds, indent=2))
        creds_path.chmod(0o600)

        with transaction.atomic():
            campaign = Campaign.objects.filter(name=CAMPAIGN_NAME).first()
            if campaign is None:
                campaign = campaign_create(
                    dataset=dataset,
                    name=CAMPAIGN_NAME,
                    created_by=users["manager"],
                    instructions=INSTRUCTIONS,
                    status=Campaign.Status.ACTIVE,
                    redundancy=2,
                    edit_budgets={"image": 0.2, "text": 0.5},
                    validations_required=1,
                    validations_to_verify=1,
                    gold_rate=0.0,
                    seed=7,
                )
            if campaign.items.count() < opts["examples"]:
                campaign_add_examples(
                    campaign=campaign, split=opts["split"], limit=opts["examples"]
                )
            for username, roles, _staff in PEOPLE:
                for role in roles:
                    membership_add(campaign=campaign, user=users[username], role=role)

        attached = self._attach_models(campaign)
        self.stdout.write(
            f"campaign {campaign.name!r}: {campaign.items.count()} examples, "
            f"{attached} live models attached"
        )
        self.stdout.write(self.style.SUCCESS("Demo accounts (sign in at http://127.0.0.1:8000/):"))
        for username, roles, is_staff in PEOPLE:
            what = ", ".join(roles) + (" + admin" if is_staff else "")
            self.stdout.write(f"  {username:<11} password {creds[username]:<14} ({what})")

    def _attach_models(self, campaign: Campaign) -> int:
        from models_bridge.services.registry import reference_models_register

        versions = reference_models_register(dataset=campaign.dataset)
        campaign.model_versions.add(*versions)
        return campaign.model_versions.count()
