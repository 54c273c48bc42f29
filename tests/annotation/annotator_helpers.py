"""Shared builders for the annotator-workflow tests (assignments, submit, validation,
concurrency, permissions)."""

from __future__ import annotations

import base64
import io
import uuid
from collections.abc import Callable
from typing import Any

from PIL import Image

from annotation.models import Campaign, Dataset, Example, Membership
from annotation.schema import content_hash
from annotation.services.campaigns import campaign_add_examples
from tests.factories import CampaignFactory, DatasetFactory, MembershipFactory, UserFactory


def text_campaign(
    n: int,
    *,
    redundancy: int = 3,
    labels: list[str] | None = None,
    gold: Callable[[int], bool] | None = None,
    **fields: Any,
) -> Campaign:
    """A text-only campaign of `n` examples (fast to build: no media). `gold(i)`: whether
    example i is a gold item (added to the pool as gold, through the service)."""
    dataset = DatasetFactory(
        modalities=[{"name": "text", "kind": "text"}], label_space=labels or ["yes", "no"]
    )
    Example.objects.bulk_create(
        [
            Example(
                dataset=dataset,
                external_id=f"t{i}",
                values={"text": f"is the shape number {i} red ?"},
                label="yes" if i % 2 else "no",
                content_hash=content_hash({"text": f"is the shape number {i} red ?"}),
            )
            for i in range(n)
        ]
    )
    fields.setdefault("editable_modalities", ["text"])
    fields.setdefault("edit_budgets", {"text": 0.5})
    campaign = CampaignFactory(dataset=dataset, redundancy=redundancy, **fields)
    if gold is not None:
        ids = list(
            Example.objects.filter(dataset=dataset).order_by("id").values_list("id", flat=True)
        )
        campaign_add_examples(
            campaign=campaign,
            example_ids=[x for i, x in enumerate(ids) if gold(i)],
            gold_fraction=1.0,
        )
    campaign_add_examples(campaign=campaign)
    return campaign


def add_annotators(
    campaign: Campaign, n: int, *, prefix: str = "ann", role: str = "annotator"
) -> list[Any]:
    users = []
    for i in range(n):
        user = UserFactory(username=f"{prefix}-{campaign.pk}-{i}")
        MembershipFactory(campaign=campaign, user=user, role=role)
        users.append(user)
    return users


def member(campaign: Campaign, username: str, role: str = Membership.Role.ANNOTATOR) -> Any:
    user = UserFactory(username=username)
    MembershipFactory(campaign=campaign, user=user, role=role)
    return user


def edited_text(text: str) -> str:
    """A one-word edit of a text that contains the word 'shape' or 'number'."""
    if "shape" in text:
        return text.replace("shape", "circle", 1)
    return text + " really"


def annotate_body(
    task: dict[str, Any],
    *,
    label: str = "no",
    target: str = "yes",
    key: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A valid submit body for an annotate Task with a text counterfactual."""
    text = task["example"]["values"]["text"]
    body: dict[str, Any] = {
        "idempotency_key": key or str(uuid.uuid4()),
        "label": label,
        "confidence": 4,
        "rationale": "the word decides it",
        "reliance": "specialization",
        "reliance_modality": "text",
        "evidence": [{"modality": "text", "type": "span", "start": 0, "end": 2}],
        "time_spent_ms": 1234,
        "counterfactual": {"modality": "text", "target_label": target, "value": edited_text(text)},
    }
    body.update(extra)
    return body


def png_data_url(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def dataset_of(campaign: Campaign) -> Dataset:
    return campaign.dataset


def _png(width: int, height: int, idat: bytes) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def bomb_png(width: int = 6300, height: int = 6300) -> bytes:
    """A real decompression bomb: about 115 KB of PNG that decodes to width x height RGB
    pixels (6300 x 6300: under the 40 M pixel cap, 119 MB decoded)."""
    import zlib

    z = zlib.compressobj(9)
    row = b"\x00" * (1 + width * 3)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    return _png(width, height, idat)


def undecodable_png(width: int = 6300, height: int = 6300) -> bytes:
    """A few dozen bytes whose header declares width x height but whose pixel data is not a
    zlib stream: opening it (the header) works, any full decode fails (image_truncated). A
    check that answers anything else for it has not decoded it."""
    return _png(width, height, b"\x78\x9c" + b"\xff" * 24)


def media_files(root: Any) -> list[str]:
    from pathlib import Path

    return sorted(str(p) for p in Path(root).rglob("*") if p.is_file())
