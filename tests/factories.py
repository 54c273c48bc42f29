"""factory_boy factories for the domain (docs/architecture.md "Conventions": factories, not JSON fixtures)."""

from __future__ import annotations

import io
from typing import Any

import factory
from django.contrib.auth import get_user_model
from PIL import Image

from annotation.models import Campaign, CampaignExample, Dataset, Example, Membership
from annotation.schema import content_hash
from annotation.services.campaigns import campaign_create, membership_add
from annotation.services.media import example_media_index, media_store_bytes


def png_bytes(color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")

    @factory.post_generation
    def password(self, create: bool, extracted: str | None, **kwargs: object) -> None:
        self.set_password(extracted or "pw-for-tests")
        if create:
            self.save(update_fields=["password"])


class DatasetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dataset

    name = factory.Sequence(lambda n: f"dataset-{n}")
    modalities = factory.LazyFunction(
        lambda: [{"name": "image", "kind": "image"}, {"name": "text", "kind": "text"}]
    )
    label_space = factory.LazyFunction(lambda: ["yes", "no", "red", "blue"])


class ExampleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Example
        skip_postgeneration_save = True

    dataset = factory.SubFactory(DatasetFactory)
    external_id = factory.Sequence(lambda n: f"ex-{n}")
    label = "yes"
    split = "test"

    @factory.lazy_attribute_sequence
    def values(self, n: int) -> dict[str, str]:
        media = media_store_bytes(data=png_bytes(((n * 37) % 256, (n * 91) % 256, 120)))
        return {"image": media.sha256, "text": f"is there a shape number {n}?"}

    @factory.lazy_attribute
    def content_hash(self) -> str:
        return content_hash(self.values)

    @factory.post_generation
    def media_index(self, create: bool, extracted: object, **kwargs: object) -> None:
        # As the import does: the media access rule finds images through this index.
        if create:
            example_media_index(dataset=self.dataset, examples=[self])


class CampaignFactory(factory.django.DjangoModelFactory):
    """Through campaign_create, so a test campaign is one the service can make (its settings
    checked, its gold secret drawn)."""

    class Meta:
        model = Campaign

    dataset = factory.SubFactory(DatasetFactory)
    name = factory.Sequence(lambda n: f"campaign-{n}")
    status = Campaign.Status.ACTIVE
    editable_modalities = factory.LazyFunction(lambda: ["image", "text"])
    edit_budgets = factory.LazyFunction(lambda: {"image": 0.25, "text": 0.5})

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> Campaign:
        return campaign_create(**kwargs)


class CampaignExampleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CampaignExample

    campaign = factory.SubFactory(CampaignFactory)
    example = factory.SubFactory(ExampleFactory)
    rank = factory.Sequence(lambda n: n)


class MembershipFactory(factory.django.DjangoModelFactory):
    """Through membership_add, so the arm is the one drawn at invitation."""

    class Meta:
        model = Membership

    campaign = factory.SubFactory(CampaignFactory)
    user = factory.SubFactory(UserFactory)
    role = Membership.Role.ANNOTATOR

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> Membership:
        return membership_add(**kwargs)
