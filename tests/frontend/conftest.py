"""Browser-test fixtures: Debian's Chromium driven by Playwright against pytest-django's
live server, and an easy-VQA campaign with the reference models attached.

Chromium is never downloaded: when /usr/bin/chromium is missing the browser tests skip with
the reason printed (CI installs the package in .ci/run)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.tooling import CHROMIUM, CHROMIUM_ARGS, chromium_missing

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
PASSWORD = "pw-for-tests"  # tests.factories.UserFactory
VIEWPORT = {"width": 1280, "height": 800}


def chromium_missing_reason() -> str | None:
    if chromium_missing():
        return f"{CHROMIUM} is not installed (apt-get install chromium; .ci/run does this)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:  # pragma: no cover - playwright is a dev dependency
        return "playwright is not installed"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one test module. Module-scoped on purpose: Playwright's event loop stays
    registered on the thread while it runs, and tests after the browser modules must not see it."""
    reason = chromium_missing_reason()
    if reason:
        print(f"\nbrowser tests skipped: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop on the test thread; the ORM calls the tests
    # make between browser steps are plain synchronous code, so Django's async guard (which
    # sees that loop) does not apply. Only while this module's browser is up.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                yield b
            finally:
                b.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(browser: Any, live_server: Any, request: Any) -> Iterator[Any]:
    """A fresh browser context (own cookies and localStorage) at 1280x800. Uncaught page
    errors fail the test; a failing test leaves a screenshot and the console log."""
    context = browser.new_context(viewport=VIEWPORT, base_url=live_server.url)
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    errors: list[str] = []
    console: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    pg.on(
        "response",
        lambda r: (
            console.append(f"HTTP {r.status} {r.request.method} {r.url}")
            if r.status >= 400
            else None
        ),
    )
    pg.page_errors = errors  # type: ignore[attr-defined]
    try:
        yield pg
    finally:
        failed = getattr(request.node, "report_call", None)
        if failed is not None and failed.failed:
            try:
                shot(pg, f"FAILED-{request.node.name}")
            except Exception as exc:  # the page may be gone; the log still helps
                console.append(f"(no screenshot: {exc})")
            print("\n--- browser console ---\n" + "\n".join(console))
        context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def shot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def login(page: Any, username: str, password: str = PASSWORD, next_url: str = "/") -> None:
    """Sign in through the real login page."""
    page.goto(f"/accounts/login/?next={next_url}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state("domcontentloaded")
    assert "/accounts/login/" not in page.url, "login failed"


# --- data -----------------------------------------------------------------------------------


@dataclass
class FlipCase:
    """An easy-VQA example and a one-word edit of its question that flips the
    multiplicative reference model's prediction (found by scoring, not assumed)."""

    example: Any
    word: str
    replacement: str
    edited: str
    original_prediction: str
    edited_prediction: str


@dataclass
class EvqaWorld:
    dataset: Any
    models: list[Any]
    multiplicative: Any
    flip: FlipCase


def register_reference_models(dataset: Any) -> list[Any]:
    """The five reference models (models_bridge.services.registry.reference_models_register).
    While a package is still being trained, the ones present are registered one by one."""
    from counterpoint.errors import NotFound
    from models_bridge.models import ModelVersion
    from models_bridge.services.registry import model_register, reference_models_register

    try:
        return list(reference_models_register(dataset=dataset))
    except NotFound:
        from django.conf import settings

        found = []
        for pkg in sorted(Path(settings.MODELS_DIR).iterdir()):
            if (pkg / "model.json").exists() and (pkg / "model.pt").exists():
                found.append(
                    model_register(
                        dataset=dataset, kind=ModelVersion.Kind.TORCHSCRIPT, location=pkg.name
                    )
                )
        return found


def find_flip(dataset: Any, model: Any, examples: list[Any]) -> FlipCase:
    """The first example (in id order) whose one-word edit flips the model: preferably a
    "what ... color ..." question turned into a shape question (the natural edit), else any
    question with "color"/"shape" swapped."""
    from models_bridge.services.scoring import score

    ordered = sorted(examples, key=lambda e: e.pk)
    natural = [
        (ex, "color", "shape")
        for ex in ordered
        if re.match(r"^what\b.*\bcolor\b", ex.values["text"])
    ]
    fallback = [
        (ex, word, repl)
        for ex in ordered
        for word, repl in (("color", "shape"), ("shape", "color"))
        if re.search(rf"\b{word}\b", ex.values["text"])
    ]
    for ex, word, repl in natural + fallback:
        edited = re.sub(rf"\b{word}\b", repl, ex.values["text"], count=1)
        orig, new = score(model_version=model, inputs=[ex.values, {**ex.values, "text": edited}])
        if orig.predicted_label != new.predicted_label:
            return FlipCase(ex, word, repl, edited, orig.predicted_label, new.predicted_label)
    raise AssertionError("no one-word question edit flips the multiplicative model here")


@pytest.fixture
def evqa(transactional_db: Any) -> EvqaWorld:
    from annotation.services.imports import easyvqa_import

    report = easyvqa_import(split="test", limit=40, seed=0)
    dataset = report.dataset
    models = register_reference_models(dataset)
    mult = [m for m in models if "multiplicative" in m.name]
    if not mult:
        pytest.skip("the multiplicative reference model package is not available")
    flip = find_flip(dataset, mult[0], list(dataset.examples.all()))
    return EvqaWorld(dataset=dataset, models=models, multiplicative=mult[0], flip=flip)


def make_campaign(
    world: EvqaWorld, *, examples: list[Any], name: str = "Browser campaign", **fields: Any
) -> Any:
    from annotation.models import Campaign
    from annotation.services.campaigns import campaign_add_examples, campaign_create

    settings: dict[str, Any] = {
        "status": Campaign.Status.ACTIVE,
        "instructions": "Answer the question about the picture, then change one input a little.",
        "redundancy": 2,
        "edit_budgets": {"image": 0.2, "text": 0.5},
        "validations_required": 1,
        "validations_to_verify": 1,
    }
    settings.update(fields)
    campaign = campaign_create(dataset=world.dataset, name=name, **settings)
    campaign_add_examples(campaign=campaign, example_ids=[e.pk for e in examples])
    campaign.model_versions.add(*world.models)
    return campaign


def member(campaign: Any, username: str, *roles: str) -> Any:
    from annotation.services.campaigns import membership_add
    from tests.factories import UserFactory

    user = UserFactory(username=username)
    for role in roles:
        membership_add(campaign=campaign, user=user, role=role)
    return user
