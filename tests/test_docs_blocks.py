"""Every code block in README.md and docs/*.md runs, as written.

Conventions (docs/architecture.md, "Documentation that runs"):
- ```sh / ```bash / ```shell blocks run with bash (`set -euo pipefail`), ```python blocks with
  `.venv/bin/python`, each in a fresh process, in page order, from a copy of the repository
  root (the repository's entries symlinked into a temporary folder, with `.venv` pointing at
  the interpreter running the tests), so files a block writes stay out of the checkout and
  the blocks of one page share them, the database and the media folder.
- ```json blocks must parse.
- `<!-- file: NAME -->` right before a block (any language) writes the block to NAME
  (relative to that folder) instead of running it: a schema file or a manifest the next
  blocks use.
- `<!-- not-run: reason -->` right before a block skips it; the reason is required. Used
  sparingly: commands that start servers, download, or run for minutes.
- Blocks in any other language (```text, output, an unlabeled sketch) are not run.
- A page whose blocks mention $COUNTERPOINT_URL gets a web server (runserver, the page's
  own database) and the variable set to it; a reader's shell has it unset and the block's
  `${COUNTERPOINT_URL:-http://127.0.0.1:8000}` falls back to `make serve`'s address.

The environment of a block is the reader's after installing: DEBUG=1, the embedded SQLite
database (already migrated, as `make demo` leaves it) and media under a temporary
COUNTERPOINT_VAR_DIR; nothing of the test run (DJANGO_SETTINGS_MODULE, DATABASE_URL,
CELERY_BROKER_URL) leaks in."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.tooling import free_port

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = {"sh", "bash", "shell"}
RUN = SHELL | {"python", "json"}
BLOCK_TIMEOUT_S = 600
SERVER_START_S = 60
# The test run's own configuration, which a reader's shell does not have.
NOT_INHERITED = (
    "DJANGO_SETTINGS_MODULE",
    "DATABASE_URL",
    "TEST_DATABASE_NAME",
    "CELERY_BROKER_URL",
    "CELERY_TASK_ALWAYS_EAGER",
    "COUNTERPOINT_VAR_DIR",
    "MEDIA_ROOT",
    "SECRET_KEY",
    "PYTHONPATH",
)

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)[^`]*$")
# A block that installs or serves would change the shared interpreter or never end: such a
# block must say not-run (checked before anything runs).
_MUST_NOT_RUN = re.compile(r"^\s*(make\b|pip3? install|\S*/pip3? install|playwright install)", re.M)
_DIRECTIVE = re.compile(r"^\s*<!--\s*(?P<kind>not-run|file)\s*:\s*(?P<arg>.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    not_run: str | None = None
    file: str | None = None

    def where(self) -> str:
        return f"{self.page}:{self.line} ({self.lang})"


def extract_blocks(text: str, page: str = "page") -> list[Block]:
    """The fenced blocks of a Markdown text, with the directive comment just above each."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang, start = m["fence"], m["info"].lower(), i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(
                lines[i][len(m["indent"]) :] if lines[i].startswith(m["indent"]) else lines[i]
            )
            i += 1
        i += 1  # the closing fence
        directive = None
        j = start - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        if j >= 0:
            directive = _DIRECTIVE.match(lines[j])
        not_run = file = None
        if directive and directive["kind"] == "not-run":
            not_run = directive["arg"]
            if not not_run:
                raise ValueError(f"{page}:{start + 1}: a not-run comment needs a reason")
        elif directive:
            file = directive["arg"]
        blocks.append(
            Block(page, start + 1, lang, "\n".join(body) + "\n", not_run=not_run, file=file)
        )
    return blocks


def _reader_env(var: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    env.update(
        {
            "DEBUG": "1",
            "COUNTERPOINT_VAR_DIR": str(var),
            "MEDIA_ROOT": str(var / "media"),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    env.pop("COUNTERPOINT_URL", None)
    return env


def _checkout_copy(target: Path) -> Path:
    """A folder that looks like the repository root to a reader: every top-level entry
    symlinked (not `var/`, `.venv`, `.git`), and `.venv` the interpreter running the tests."""
    target.mkdir()
    for entry in ROOT.iterdir():
        if entry.name in {".venv", "var", ".git", "artifacts"} or entry.name.endswith(".egg-info"):
            continue
        (target / entry.name).symlink_to(entry)
    in_venv = sys.prefix != sys.base_prefix
    if in_venv:
        (target / ".venv").symlink_to(sys.prefix)
    else:  # pragma: no cover - the suite runs inside a virtualenv
        (target / ".venv" / "bin").mkdir(parents=True)
        (target / ".venv" / "bin" / "python").symlink_to(sys.executable)
    return target


@pytest.fixture(scope="module")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated embedded database, copied for each page (migrating per page is slow)."""
    work = _checkout_copy(tmp_path_factory.mktemp("docs-template") / "repo")
    var = work.parent / "var"
    subprocess.run(
        [".venv/bin/python", "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=work,
        env=_reader_env(var),
        check=True,
        timeout=BLOCK_TIMEOUT_S,
    )
    return var


@pytest.fixture
def page_room(tmp_path: Path, migrated_db: Path) -> tuple[Path, dict[str, str]]:
    work = _checkout_copy(tmp_path / "repo")
    var = tmp_path / "var"
    shutil.copytree(migrated_db, var, symlinks=True)
    return work, _reader_env(var)


@pytest.fixture
def server_for(page_room: tuple[Path, dict[str, str]]) -> Iterator[object]:
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> str:
        work, env = page_room
        port = free_port()
        log = (work.parent / "server.log").open("wb")
        procs.append(
            subprocess.Popen(
                [".venv/bin/python", "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
                cwd=work,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{url}/accounts/login/", timeout=2).close()
                return url
            except OSError:
                if procs[-1].poll() is not None:
                    break
                time.sleep(0.2)
        raise AssertionError(
            f"the docs server did not start:\n{(work.parent / 'server.log').read_text()[-3000:]}"
        )

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait(timeout=10)


def _run(block: Block, work: Path, env: dict[str, str]) -> None:
    if block.lang == "json":
        try:
            json.loads(block.code)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"{block.where()}: not valid JSON: {exc}") from None
        if block.file is None:
            return
    if block.file is not None:
        target = work / block.file
        # Written beside the symlinked checkout, never through a symlink into it.
        if target.parent.resolve() != (work / Path(block.file).parent).absolute():
            raise AssertionError(
                f"{block.where()}: {block.file} would be written into the checkout"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block.code)
        return
    if block.lang in SHELL:
        argv = ["bash", "-c", "set -euo pipefail\n" + block.code]
    else:
        argv = [".venv/bin/python", "-c", block.code]
    try:
        proc = subprocess.run(
            argv, cwd=work, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{block.where()} ran over {BLOCK_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        raise AssertionError(
            f"{block.where()} exited {proc.returncode}\n--- block\n{block.code}"
            f"--- stdout (tail)\n{proc.stdout[-3000:]}\n--- stderr (tail)\n{proc.stderr[-3000:]}"
        )


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_block_of_the_page_runs(
    page: Path, page_room: tuple[Path, dict[str, str]], server_for: object
) -> None:
    blocks = [
        b for b in extract_blocks(page.read_text(), _page_id(page)) if b.lang in RUN or b.file
    ]
    runnable = [b for b in blocks if b.not_run is None]
    if not runnable:
        pytest.skip(f"{_page_id(page)} has no runnable blocks")
    unsafe = [b.where() for b in runnable if _MUST_NOT_RUN.search(b.code)]
    assert not unsafe, f"blocks that install or serve must be marked not-run: {unsafe}"
    work, env = page_room
    if any("COUNTERPOINT_URL" in b.code for b in runnable):
        env = {**env, "COUNTERPOINT_URL": server_for()}  # type: ignore[operator]
    for block in runnable:
        _run(block, work, env)


# --- the extractor itself ----------------------------------------------------------------------


def test_extractor_reads_languages_and_directives() -> None:
    text = "\n".join(
        [
            "intro",
            "```sh",
            "echo one",
            "```",
            "<!-- not-run: starts a server -->",
            "",
            "```bash",
            "make demo",
            "```",
            "<!-- file: data/schema.json -->",
            "```json",
            '{"a": 1}',
            "```",
            "```text",
            "output",
            "```",
            "   ```python",
            "   print(1)",
            "   ```",
        ]
    )
    blocks = extract_blocks(text)
    assert [(b.line, b.lang, b.not_run, b.file) for b in blocks] == [
        (2, "sh", None, None),
        (7, "bash", "starts a server", None),
        (11, "json", None, "data/schema.json"),
        (14, "text", None, None),
        (17, "python", None, None),
    ]
    assert blocks[0].code == "echo one\n" and blocks[4].code == "print(1)\n"
    with pytest.raises(ValueError, match="needs a reason"):
        extract_blocks("<!-- not-run: -->\n```sh\nls\n```\n")


def test_every_page_uses_the_directives_sparingly() -> None:
    """A not-run block says why; most runnable-language blocks do run."""
    blocks = [b for page in PAGES for b in extract_blocks(page.read_text(), _page_id(page))]
    runnable = [b for b in blocks if b.lang in RUN]
    skipped = [b for b in runnable if b.not_run is not None]
    assert all(b.not_run for b in skipped)
    assert len(skipped) * 3 <= len(runnable), [b.where() for b in skipped]
