"""docs/models.md runs as written: its fenced blocks are taken from the file and run in
order, the shell blocks by bash from a copy of the repository root (symlinks to its files,
its own var dir), the JSON blocks parsed. Nothing is paraphrased here: a block that stops
working fails this test."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

DOC = Path(settings.BASE_DIR) / "docs" / "models.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", flags=re.S | re.M)
# Blocks in these languages are shown, not run: file layouts and signatures.
SHOWN = {"text"}


def blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(DOC.read_text())]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def repo_copy(root: Path) -> Path:
    """The repository root as a reader has it after `make install-dev`, without touching the
    real one: symlinks to its top-level entries and to the project's virtualenv."""
    base = Path(settings.BASE_DIR)
    root.mkdir()
    for entry in base.iterdir():
        if entry.name in {"var", ".venv", ".git"}:
            continue
        (root / entry.name).symlink_to(entry)
    (root / ".venv").symlink_to(Path(sys.prefix))
    return root


def test_every_block_is_runnable_or_shown():
    langs = {lang for lang, _ in blocks()}
    assert langs <= {"sh", "json", "text"}, langs
    for lang, body in blocks():
        if lang == "json":
            json.loads(body)


def test_the_blocks_of_docs_models_run_as_written(tmp_path):
    root = repo_copy(tmp_path / "repo")
    var = tmp_path / "var"
    env = {
        k: v
        for k, v in os.environ.items()
        # The blocks use the embedded defaults; never the test run's database or broker.
        if k not in {"DATABASE_URL", "TEST_DATABASE_NAME", "CELERY_BROKER_URL", "MEDIA_ROOT"}
        and not k.startswith(("PYTEST", "DJANGO_"))
    }
    env.update(
        COUNTERPOINT_VAR_DIR=str(var),
        MEDIA_ROOT=str(var / "media"),
        PORT=str(free_port()),
        MLSERVER_PORT=str(free_port()),
    )
    env.pop("PYTHONPATH", None)
    outputs = []
    for lang, body in blocks():
        if lang != "sh":
            continue
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", body],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, (
            f"block failed:\n{body[:1500]}\n--- stdout\n{done.stdout[-2000:]}"
            f"\n--- stderr\n{done.stderr[-4000:]}"
        )
        outputs.append(done.stdout)
    text = "\n".join(outputs)
    assert "logits" in text
    for registered in ("my-vqa@1", "keyword@1", "additive-remote@1"):
        assert registered in text
    # What the REST block printed last is the health of the uploaded model.
    assert '"status":"ok"' in text.replace(" ", "")
    # The package was copied into managed storage; the folder it came from is not used.
    stored = list((var / "media" / "models").iterdir())
    assert len(stored) == 1 + 5  # my-vqa and the five reference packages of the demo
    assert not (root / "var").exists()


@pytest.mark.parametrize("name", ["encode_text", "encode_image"])
def test_the_interface_names_encoders_after_the_dataset_modalities(name):
    doc = DOC.read_text()
    assert "encode_<modality>" in doc and name in doc
