from __future__ import annotations

from django.contrib import admin

from annotation import models as m


@admin.register(m.Media)
class MediaAdmin(admin.ModelAdmin):
    list_display = ("id", "sha256", "mime_type", "width", "height", "size_bytes", "created_at")
    search_fields = ("sha256",)


@admin.register(m.Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "created_at")
    search_fields = ("name",)


@admin.register(m.Example)
class ExampleAdmin(admin.ModelAdmin):
    list_display = ("id", "dataset", "external_id", "label", "split")
    list_filter = ("dataset", "split")
    search_fields = ("external_id",)
    list_select_related = ("dataset",)


class MembershipInline(admin.TabularInline):
    model = m.Membership
    extra = 0
    raw_id_fields = ("user",)


@admin.register(m.Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "dataset", "status", "redundancy", "feedback_arm")
    list_filter = ("status",)
    inlines = [MembershipInline]
    filter_horizontal = ("model_versions",)


@admin.register(m.CampaignExample)
class CampaignExampleAdmin(admin.ModelAdmin):
    list_display = ("id", "campaign", "example", "is_gold", "completed", "in_flight")
    list_filter = ("campaign", "is_gold")
    raw_id_fields = ("example",)


@admin.register(m.Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("id", "campaign", "user", "role", "arm")
    list_filter = ("role", "campaign")


@admin.register(m.Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ("id", "campaign", "kind", "example", "annotator", "status", "expires_at")
    list_filter = ("kind", "status", "campaign")
    raw_id_fields = ("example", "edit")


@admin.register(m.Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    list_display = ("id", "campaign", "example", "annotator", "label", "reliance", "created_at")
    list_filter = ("campaign", "reliance")
    raw_id_fields = ("assignment", "example")


@admin.register(m.CounterfactualEdit)
class CounterfactualEditAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "campaign",
        "example",
        "author",
        "modality",
        "original_label",
        "target_label",
        "status",
    )
    list_filter = ("campaign", "modality", "status")
    raw_id_fields = ("annotation", "example", "edited_media", "mask_media")


@admin.register(m.Attempt)
class AttemptAdmin(admin.ModelAdmin):
    list_display = ("id", "assignment", "seq", "modality", "created_at")
    raw_id_fields = ("assignment", "media")


@admin.register(m.Validation)
class ValidationAdmin(admin.ModelAdmin):
    list_display = ("id", "edit", "validator", "label", "broken", "created_at")
    raw_id_fields = ("assignment", "edit")


@admin.register(m.Job)
class JobAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "kind",
        "status",
        "progress_done",
        "progress_total",
        "created_by",
        "created_at",
    )
    list_filter = ("kind", "status")
