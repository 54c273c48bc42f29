from __future__ import annotations

from typing import Any

from rest_framework import serializers

from annotation import policy
from annotation.markdown import instructions_html
from annotation.models import Campaign, Dataset, Example, Membership
from annotation.selectors import campaign_warnings
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


# What gold placement is derived from (with the secret, which is never serialized): an
# annotator who knew them could tell gold checks from real work.
MANAGER_ONLY_FIELDS = ("seed", "gold_rate", "warnings")


class CampaignSerializer(serializers.ModelSerializer):
    """Precondition for the manager-only fields: the instance carries `viewer_manages` (and
    `team_annotators`, `team_validator_eligible` for the warnings), as the campaign viewset's
    queryset annotates; without them the viewer is treated as an annotator."""

    dataset_name = serializers.CharField(source="dataset.name", read_only=True)
    model_ids: serializers.PrimaryKeyRelatedField = serializers.PrimaryKeyRelatedField(
        source="model_versions", many=True, read_only=True
    )
    pool_size = serializers.IntegerField(read_only=True, required=False)
    instructions_html = serializers.SerializerMethodField(
        help_text="the Markdown instructions rendered and sanitised, as annotators see them"
    )
    warnings = serializers.SerializerMethodField(
        help_text="for managers: problems with the campaign's setup, e.g. "
        '{"code": "team_too_small_for_validation", "message": ..., "details": {...}}'
    )

    def get_instructions_html(self, obj: Campaign) -> str:
        return instructions_html(obj.instructions)

    def get_warnings(self, obj: Campaign) -> list[dict[str, Any]]:
        return campaign_warnings(
            campaign=obj,
            annotators=getattr(obj, "team_annotators", 0) or 0,
            validator_eligible=getattr(obj, "team_validator_eligible", 0) or 0,
        )

    def to_representation(self, instance: Campaign) -> dict[str, Any]:
        data = super().to_representation(instance)
        if not getattr(instance, "viewer_manages", False):
            for field in MANAGER_ONLY_FIELDS:
                data.pop(field, None)
        return dict(data)

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
            "instructions_html",
            "warnings",
            "created_at",
        ]
        read_only_fields = [
            "id",
            "dataset_name",
            "model_ids",
            "pool_size",
            "instructions_html",
            "warnings",
            "created_at",
        ]
        extra_kwargs = {
            "validations_required": {
                "help_text": "how many distinct validators an edit needs; none of them may have "
                "been given its original to annotate (see warnings for a team too small)"
            }
        }


class CampaignWriteSerializer(serializers.ModelSerializer):
    # Checked by the service (services.campaigns._check_settings), so a bad value comes back
    # with the rule's own code (campaign_task_order, campaign_arm, ...) for the form's field.
    task_order = serializers.CharField(required=False)
    feedback_arm = serializers.CharField(required=False)
    status = serializers.CharField(required=False)

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
    label = serializers.CharField(required=False)  # type: ignore[assignment]
    metadata_field = serializers.CharField(
        required=False, help_text="only examples whose metadata has this key"
    )
    metadata_value = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="with metadata_field: only examples whose value there equals this "
        "(numbers and true/false match their JSON types too)",
    )
    limit = serializers.IntegerField(
        required=False, min_value=1, help_text="a random sample of this many of the matches"
    )
    sample_seed = serializers.IntegerField(
        required=False, help_text="seed of the sample (default: the campaign's seed)"
    )
    gold_fraction = serializers.FloatField(required=False, min_value=0, max_value=1, default=0.0)


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    arm = serializers.SerializerMethodField(
        help_text="the feedback arm that applies to this person now (the campaign's policy, "
        "or for a randomised campaign the arm drawn at invitation)"
    )

    def get_arm(self, obj: Membership) -> str:
        return policy.effective_arm(campaign_policy=obj.campaign.feedback_arm, member_arm=obj.arm)

    class Meta:
        model = Membership
        fields = ["id", "campaign", "user", "username", "role", "arm", "created_at"]
        read_only_fields = ["id", "campaign", "user", "username", "arm", "created_at"]


class MembershipCreateSerializer(serializers.Serializer):
    username = serializers.CharField()
    role = serializers.ChoiceField(choices=Membership.Role.choices)
