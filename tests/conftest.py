"""Shared fixtures: named personas (a manager, two annotators, a validator, an outsider, staff)
around one campaign, API clients logged in as each, and an isolated MEDIA_ROOT per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from annotation.models import Membership
from tests.factories import (
    CampaignFactory,
    DatasetFactory,
    ExampleFactory,
    MembershipFactory,
    UserFactory,
)


@pytest.fixture(autouse=True)
def _media_root(tmp_path: Path, settings: object) -> Iterator[Path]:
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = root  # type: ignore[attr-defined]
    yield root


@pytest.fixture(autouse=True)
def _fresh_redis_cache() -> Iterator[None]:
    # The database cache rolls back with each test; Redis (CACHE_URL) would carry throttle
    # and lockout counts from one test into the next.
    if "redis" in settings.CACHES["default"]["BACKEND"].lower():
        from django.core.cache import cache

        cache.clear()
    yield


@pytest.fixture
def exact_queries(django_assert_num_queries):  # type: ignore[no-untyped-def]
    """Exact query pins (never upper bounds). `postgres=` where PostgreSQL runs a path in fewer
    statements (the lease and the submit are single SQL statements there)."""

    def pin(sqlite: int, *, postgres: int | None = None):  # type: ignore[no-untyped-def]
        use_pg = postgres is not None and settings.DATABASE_IS_POSTGRES
        return django_assert_num_queries(postgres if use_pg else sqlite)

    return pin


def requires_postgres() -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not settings.DATABASE_IS_POSTGRES,
        reason="needs PostgreSQL row locking; set DATABASE_URL=postgres://... to run",
    )


@pytest.fixture
def dataset(db):  # type: ignore[no-untyped-def]
    return DatasetFactory()


@pytest.fixture
def campaign(dataset):  # type: ignore[no-untyped-def]
    return CampaignFactory(dataset=dataset)


@pytest.fixture
def examples(campaign):  # type: ignore[no-untyped-def]
    from annotation.services.campaigns import campaign_add_examples

    items = [ExampleFactory(dataset=campaign.dataset) for _ in range(5)]
    campaign_add_examples(campaign=campaign)
    return items


@pytest.fixture
def manager(campaign):  # type: ignore[no-untyped-def]
    user = UserFactory(username="maria-manager")
    MembershipFactory(campaign=campaign, user=user, role=Membership.Role.MANAGER)
    return user


@pytest.fixture
def annotator(campaign):  # type: ignore[no-untyped-def]
    user = UserFactory(username="ana-annotator")
    MembershipFactory(campaign=campaign, user=user, role=Membership.Role.ANNOTATOR)
    return user


@pytest.fixture
def annotator2(campaign):  # type: ignore[no-untyped-def]
    user = UserFactory(username="ben-annotator")
    MembershipFactory(campaign=campaign, user=user, role=Membership.Role.ANNOTATOR)
    return user


@pytest.fixture
def validator(campaign):  # type: ignore[no-untyped-def]
    user = UserFactory(username="vera-validator")
    MembershipFactory(campaign=campaign, user=user, role=Membership.Role.VALIDATOR)
    return user


@pytest.fixture
def outsider(db):  # type: ignore[no-untyped-def]
    return UserFactory(username="otto-outsider")


@pytest.fixture
def staff(db):  # type: ignore[no-untyped-def]
    return UserFactory(username="sam-staff", is_staff=True, is_superuser=True)


def client_for(user) -> APIClient:  # type: ignore[no-untyped-def]
    client = APIClient()
    if user is not None:
        client.force_authenticate(user=user)
    return client


@pytest.fixture
def api():  # type: ignore[no-untyped-def]
    return client_for
