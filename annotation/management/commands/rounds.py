"""A campaign's rounds from the shell (docs/rounds.md): list them with their vMER, open the next
one against a target model, close the open one. The same services and selector as the REST
endpoints and the dashboard.

    python manage.py rounds CAMPAIGN                       # list, with vMER per round
    python manage.py rounds CAMPAIGN --open NAME@VERSION   # or a model version id
    python manage.py rounds CAMPAIGN --close N
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.models import Campaign
from counterpoint.errors import ServiceError


def _pct(x: Any) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


class Command(BaseCommand):
    help = "List a campaign's rounds (with vMER), open the next one, or close one."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("campaign", help="campaign name or id")
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--open", metavar="MODEL", help="target: NAME@VERSION or a model id")
        group.add_argument("--close", metavar="N", type=int, help="close round N")

    def handle(self, *args: Any, **opts: Any) -> None:
        from annotation.selectors_rounds import campaign_rounds
        from annotation.services.rounds import round_close, round_get, round_open
        from models_bridge.models import ModelVersion

        ref = opts["campaign"]
        campaign = (
            Campaign.objects.filter(pk=int(ref))
            if ref.isdigit()
            else Campaign.objects.filter(name=ref)
        ).first()
        if campaign is None:
            raise CommandError(f"no campaign {ref!r}")
        try:
            if opts["open"]:
                spec = opts["open"]
                name, sep, version = spec.rpartition("@")
                qs = (
                    ModelVersion.objects.filter(name=name, version=version)
                    if sep
                    else ModelVersion.objects.filter(pk=int(spec) if spec.isdigit() else 0)
                )
                target = qs.first()
                if target is None:
                    raise CommandError(f"no model version {spec!r}")
                opened = round_open(campaign=campaign, target=target)
                self.stdout.write(
                    self.style.SUCCESS(f"round {opened.number} is open against {target}")
                )
            elif opts["close"] is not None:
                closed = round_close(round=round_get(campaign=campaign, number=opts["close"]))
                self.stdout.write(self.style.SUCCESS(f"round {closed.number} is closed"))
        except ServiceError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        rows = campaign_rounds(campaign=campaign)
        if not rows:
            self.stdout.write(f"{campaign.name}: no rounds")
            return
        self.stdout.write(
            "round  status  target                      edits  verified  fooling  vMER [95% CI]            test acc"
        )
        for r in rows:
            ci = r["vmer_ci95"]
            vmer = _pct(r["vmer"]) + (f" [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else "")
            shown = f"{r['target']['name']}@{r['target']['version']}"
            self.stdout.write(
                f"{r['number']:>5}  {r['status']:<6}  {shown:<26}  {r['edits']:>5}  "
                f"{r['verified']:>8}  {r['fooling']:>7}  {vmer:<23}  {_pct(r['target_test_accuracy']):>8}"
            )
