"""Fine-tune a campaign round's target on the training split plus the round's verified
pairs, register it as the next version and open the next round against it (docs/rounds.md).

    python manage.py train_round CAMPAIGN --round N [--epochs 1] [--seed 0]
        [--holdout 0.25] [--pair-repeats 20] [--train-limit N] [--lr 1e-4]

All the work is models_bridge.services.round_training.round_train; this command parses
arguments and prints the old and new models' accuracies side by side. A round trained
before is reported and nothing is registered (exit 0)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.models import Campaign
from counterpoint.errors import ServiceError


def _pct(x: Any) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


class Command(BaseCommand):
    help = "Fine-tune round N's target on its verified pairs and open round N+1 against it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("campaign", help="campaign name or id")
        parser.add_argument("--round", type=int, required=True, dest="number")
        parser.add_argument("--epochs", type=int, default=1)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--holdout", type=float, default=0.25, help="share of the pairs held out"
        )
        parser.add_argument(
            "--pair-repeats",
            type=int,
            default=20,
            help="times each training pair is seen per epoch",
        )
        parser.add_argument(
            "--train-limit", type=int, default=None, help="a seeded sample of the training split"
        )
        parser.add_argument("--lr", type=float, default=1e-4)

    def handle(self, *args: Any, **opts: Any) -> None:
        from annotation.services.rounds import round_get
        from models_bridge.services.round_training import round_train

        ref = opts["campaign"]
        qs = (
            Campaign.objects.filter(pk=int(ref))
            if ref.isdigit()
            else Campaign.objects.filter(name=ref)
        )
        campaign = qs.first()
        if campaign is None:
            raise CommandError(f"no campaign {ref!r}")
        try:
            result = round_train(
                round=round_get(campaign=campaign, number=opts["number"]),
                epochs=opts["epochs"],
                seed=opts["seed"],
                holdout=opts["holdout"],
                pair_repeats=opts["pair_repeats"],
                train_limit=opts["train_limit"],
                lr=opts["lr"],
                log=lambda line: self.stdout.write(line),
            )
        except ServiceError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        r = result.round
        if result.already_trained:
            self.stdout.write(
                f"round {r.number} of {campaign.name!r} was already trained into "
                f"{result.model} (id {result.model.pk if result.model else '?'}): nothing registered"
            )
        acc = (result.report or {}).get("accuracy") or {}
        old = (result.report or {}).get("old_model") or {}
        new = (result.report or {}).get("new_model") or {}
        if acc:
            test, held = acc.get("test", {}), acc.get("heldout_pairs", {})
            width = max(len(f"{old.get('name')}@{old.get('version')}"), 12)
            self.stdout.write(f"{'model':<{width}}  test split  held-out pairs")
            for side, m in (("old", old), ("new", new)):
                name = f"{m.get('name')}@{m.get('version')}"
                self.stdout.write(
                    f"{name:<{width}}  {_pct(test.get(side)):>10}  {_pct(held.get(side)):>14}"
                )
            self.stdout.write(
                f"({result.report.get('test_examples')} test examples, "
                f"{len(result.report.get('heldout_edit_ids', []))} held-out pairs)"
            )
        if result.next_round is not None and not result.already_trained:
            self.stdout.write(
                self.style.SUCCESS(
                    f"round {r.number} closed; round {result.next_round.number} is open against "
                    f"{result.next_round.target}"
                )
            )
        elif not result.already_trained:
            self.stdout.write(
                f"round {r.number} recorded; a later round already exists, so none was opened"
            )
