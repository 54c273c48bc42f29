from __future__ import annotations

from typing import Any

from rest_framework import serializers

from annotation.models import Campaign, Dataset, Example, Membership
from annotation.services.campaigns import SETTABLE_FIELDS


class DatasetSerializer(serializers.ModelSerializer):
    example_count = serializers.IntegerField(read_only=True, required=False)

    class Meta:
        model = Dataset
        fields = [
            "id",
            "name",
            "description",
            "modalities",
            "label_space",
            "example_count",
            "created_at",
        ]
        read_only_fields = ["id", "created_at", "example_count"]


class DatasetCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    modalities = serializers.JSONField(
        help_text='[{"name": "image", "kind": "image"}, {"name": "text", "kind": "text"}]'
    )
    label_space = serializers.ListField(child=serializers.CharField(), min_length=1)


def _example_values(example: Example, dataset: Dataset) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mod in dataset.modalities:
        value = example.values.get(mod["name"])
        if mod["kind"] == "image" and isinstance(value, str):
            out[mod["name"]] = {"sha256": value, "url": f"/media/{value}"}
        else:
            out[mod["name"]] = value
    return out


class ExampleSerializer(serializers.ModelSerializer):
    values = serializers.SerializerMethodField()

    class Meta:
        model = Example
        fields = ["id", "external_id", "values", "label", "split", "metadata", "content_hash"]

    def get_values(self, obj: Example) -> dict[str, Any]:
        return _example_values(obj, self.context["dataset"])


class CampaignSerializer(serializers.ModelSerializer):
    dataset_name = serializers.CharField(source="dataset.name", read_only=True)
    model_ids: serializers.PrimaryKeyRelatedField = serializers.PrimaryKeyRelatedField(
        source="model_versions", many=True, read_only=True
    )
    pool_size = serializers.IntegerField(read_only=True, required=False)

    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "dataset",
            "dataset_name",
            *SETTABLE_FIELDS,
            "model_ids",
            "pool_size",
            "created_at",
        ]
        read_only_fields = ["id", "dataset_name", "model_ids", "pool_size", "created_at"]


class CampaignWriteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Campaign
        fields = [
            f
            for f in CampaignSerializer.Meta.fields
            if f not in CampaignSerializer.Meta.read_only_fields
        ]
        extra_kwargs = {"dataset": {"required": True}}


class CampaignExamplesAddSerializer(serializers.Serializer):
    example_ids = serializers.ListField(child=serializers.IntegerField(), required=False)
    split = serializers.CharField(required=False)
    limit = serializers.IntegerField(required=False, min_value=1)
    gold_fraction = serializers.FloatField(required=False, min_value=0, max_value=1, default=0.0)


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "campaign", "user", "username", "role", "arm", "created_at"]
        read_only_fields = ["id", "campaign", "user", "username", "arm", "created_at"]


class MembershipCreateSerializer(serializers.Serializer):
    username = serializers.CharField()
    role = serializers.ChoiceField(choices=Membership.Role.choices)
