from __future__ import annotations

from typing import Any

from rest_framework import serializers

from models_bridge.models import ModelVersion


class ModelVersionSerializer(serializers.ModelSerializer):
    dataset: serializers.PrimaryKeyRelatedField = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "name",
            "version",
            "kind",
            "description",
            "location",
            "remote_model_name",
            "package_sha256",
            "dataset",
            "labels",
            "label_map",
            "modalities",
            "factorized",
            "manifest",
            "is_active",
            "created_at",
        ]
        read_only_fields = fields


class ModelRegisterSerializer(serializers.Serializer):
    dataset = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=ModelVersion.Kind.choices)
    location = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")
    package = serializers.FileField(
        required=False, help_text="a package zip (model.json + model.pt)"
    )
    name = serializers.CharField(required=False, max_length=200)
    version = serializers.CharField(required=False, max_length=50)
    description = serializers.CharField(required=False, allow_blank=True)
    remote_model_name = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=200
    )
    labels = serializers.ListField(child=serializers.CharField(), required=False)
    label_map = serializers.DictField(child=serializers.CharField(), required=False)
    options = serializers.DictField(required=False)
    preprocessing = serializers.DictField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("package") is not None and attrs["kind"] != ModelVersion.Kind.TORCHSCRIPT:
            raise serializers.ValidationError("an uploaded package is a torchscript model")
        if attrs.get("package") is None and not attrs.get("location"):
            raise serializers.ValidationError("give a location or upload a package")
        return attrs


class ScoreRequestSerializer(serializers.Serializer):
    assignment = serializers.IntegerField()
    modality = serializers.CharField(max_length=100)
    value = serializers.JSONField(required=False)
    image = serializers.CharField(required=False, help_text="data:image/png;base64,...")
    target_label = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=200,
        help_text="the answer the edit aims at; each model's outcome is told against it",
    )


class CampaignModelsSerializer(serializers.Serializer):
    models = serializers.ListField(child=serializers.IntegerField(), allow_empty=True)


class BulkScoreSerializer(serializers.Serializer):
    model = serializers.IntegerField()
    target = serializers.ChoiceField(choices=["examples", "edits"], default="examples")


class ExampleScoreSerializer(serializers.Serializer):
    example = serializers.IntegerField()
    example_external_id = serializers.CharField()
    split = serializers.CharField()
    gold_label = serializers.CharField(allow_null=True)
    model = serializers.IntegerField()
    model_name = serializers.CharField()
    scored = serializers.BooleanField(help_text="false: no stored score yet (run a bulk job)")
    predicted_label = serializers.CharField(allow_null=True)
    probabilities = serializers.DictField(
        child=serializers.FloatField(), allow_null=True, help_text="over the dataset's labels"
    )
    correct = serializers.BooleanField(
        allow_null=True, help_text="predicted == gold; null when unscored or without gold"
    )
