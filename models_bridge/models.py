"""Registry of model versions and the score cache (docs/architecture.md "Domain", docs/models.md). No torch here: the
tables are plain data so every process can read them without loading a framework."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ModelVersion(models.Model):
    """A registered, immutable model. New weights make a new version."""

    class Kind(models.TextChoices):
        TORCHSCRIPT = "torchscript"
        ENTRYPOINT = "entrypoint"
        REMOTE = "remote"

    name = models.CharField(max_length=200)
    version = models.CharField(max_length=50)
    kind = models.CharField(max_length=12, choices=Kind.choices)
    description = models.TextField(blank=True)
    # torchscript: path of the package folder or zip; entrypoint: "package.module:factory";
    # remote: base URL of an Open Inference Protocol server.
    location = models.CharField(max_length=500)
    remote_model_name = models.CharField(max_length=200, blank=True)
    # SHA-256 of the package's files (torchscript), so "immutable" is checkable.
    package_sha256 = models.CharField(max_length=64, blank=True)
    dataset = models.ForeignKey(
        "annotation.Dataset",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="model_versions",
    )
    labels = models.JSONField(default=list)
    # model label → dataset label
    label_map = models.JSONField(default=dict, blank=True)
    modalities = models.JSONField(default=list)
    factorized = models.BooleanField(default=False)
    manifest = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="model_version_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


class Score(models.Model):
    """(model version, input hash) → outputs. Unique, so nothing is scored twice."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="scores")
    input_hash = models.CharField(max_length=64)
    logits = models.JSONField()
    probabilities = models.JSONField()
    predicted_label = models.CharField(max_length=200)
    latency_ms = models.FloatField(default=0.0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["model_version", "input_hash"], name="score_unique_input"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model_version_id}:{self.input_hash[:12]} -> {self.predicted_label}"


class AnalysisResult(models.Model):
    """One method's result of an analysis job (docs/analysis.md). Written once, never updated:
    the unique (job, method) makes a second run of the same method store nothing."""

    job = models.ForeignKey(
        "annotation.Job", on_delete=models.CASCADE, related_name="analysis_results"
    )
    method = models.CharField(max_length=50)
    result = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["job_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["job", "method"], name="analysis_result_once"),
        ]

    def __str__(self) -> str:
        return f"{self.method} of job {self.job_id}"


class AnalysisBlock(models.Model):
    """A row block of an exact EMAP grid, claimed by one worker at a time (conditional update)
    and kept with its partial sums once done, so a resumed job never recomputes it. Block -1
    is the combining step, claimed the same way so it runs once."""

    COMBINE = -1

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"

    job = models.ForeignKey("annotation.Job", on_delete=models.CASCADE, related_name="emap_blocks")
    block = models.IntegerField()
    start = models.PositiveIntegerField(default=0)
    stop = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    claim_token = models.CharField(max_length=32, blank=True, default="")
    claimed_at = models.DateTimeField(null=True, blank=True)
    # float64 row sums | column sums | total | diagonal (models_bridge.analysis.emap.BlockPartial)
    partial = models.BinaryField(null=True, blank=True)
    seconds = models.FloatField(default=0.0)
    computed_by = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["job_id", "block"]
        constraints = [
            models.UniqueConstraint(fields=["job", "block"], name="analysis_block_once"),
        ]

    def __str__(self) -> str:
        return f"block {self.block} of job {self.job_id} ({self.status})"
