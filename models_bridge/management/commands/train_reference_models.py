"""Retrain the reference easy-VQA models into TorchScript packages.

    python manage.py train_reference_models [--out fixtures/models] [--seed 0]
                                            [--only NAME ...] [--epochs N]

All the work is in models_bridge.reference.train.train_all (pure PyTorch); this command
only parses arguments and prints the result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Train the reference easy-VQA models and write fixtures/models/<folder>/."

    def add_arguments(self, parser: CommandParser) -> None:
        from models_bridge.reference.train import MODEL_NAMES

        parser.add_argument("--out", default="fixtures/models", help="output directory")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--only",
            nargs="+",
            choices=MODEL_NAMES,
            metavar="NAME",
            help=f"train only these models ({', '.join(MODEL_NAMES)})",
        )
        parser.add_argument(
            "--epochs", type=int, default=None, help="override every model's epoch count"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # Imported here so that `manage.py help` does not pay for importing torch.
        from models_bridge.reference.train import train_all

        if options["epochs"] is not None and options["epochs"] < 1:
            raise CommandError("--epochs must be at least 1")
        results = train_all(
            Path(options["out"]),
            seed=options["seed"],
            epochs=options["epochs"],
            only=options["only"],
            log=lambda line: self.stdout.write(line),
        )
        for name, m in results.items():
            self.stdout.write(
                self.style.SUCCESS(
                    f"{name}: acc {m['test_accuracy']:.4f} "
                    f"(yes/no {m['test_accuracy_yes_no']:.4f}, colour "
                    f"{m['test_accuracy_colour']:.4f}, shape {m['test_accuracy_shape']:.4f}) "
                    f"{m['parameters']} params, {m['seconds']:.0f}s"
                )
            )
