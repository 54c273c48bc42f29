"""The repository explains itself: nothing points at files outside it, and every repository
path that code, comments and docs name exists (docs/architecture.md)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = {".py", ".md", ".js", ".css", ".html", ".toml", ".cfg", ".txt", ".example", ""}
OUTSIDE = re.compile(r"DESIGN\.md|DESIGN §|\.\./shared/|/work/(?:briefs|shared|main)\b")
REPO_PATH = re.compile(
    r"(?<![\w/.-])((?:annotation|counterpoint|models_bridge|frontend|tests|benchmarks|docs|fixtures)"
    r"/[\w/.-]*\.(?:py|md|js|css|html|json|toml))\b"
)
MD_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    out = []
    for name in listed:
        path = ROOT / name
        if path.suffix in TEXT_SUFFIXES and path.is_file() and not name.startswith("fixtures/"):
            out.append(path)
    return out


def test_nothing_points_outside_the_repository() -> None:
    me = Path(__file__).resolve()
    hits = [
        f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
        for p in _files()
        if p.resolve() != me
        for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert hits == []


def test_every_named_repository_path_exists() -> None:
    files = _files()
    # Template and static names are relative to their app folder (frontend/annotate.html is
    # frontend/templates/frontend/annotate.html): any tail of a repository path counts.
    tails = set()
    for f in files:
        parts = f.relative_to(ROOT).parts
        tails.update("/".join(parts[i:]) for i in range(len(parts)))
    missing = []
    for p in files:
        for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1):
            if "**moving**" in line:  # docs/architecture.md names where a rule is going
                continue
            for name in REPO_PATH.findall(line):
                name = name.rstrip(".")
                if name in tails or (ROOT / name).exists():
                    continue
                missing.append(f"{p.relative_to(ROOT)}:{n}: {name}")
    assert missing == []


def test_markdown_links_resolve() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = [
        f"{page.relative_to(ROOT)}: {target}"
        for page in pages
        for target in MD_LINK.findall(page.read_text())
        if "://" not in target and not (page.parent / target).exists()
    ]
    assert broken == []
