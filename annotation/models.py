"""The campaign domain (docs/architecture.md "Domain"). Every "one per" rule is a database
constraint; model methods compute from their own row only: behaviour lives in services/
(docs/architecture.md "Conventions")."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

MODALITY_KINDS = ("text", "image", "tabular")


class Media(models.Model):
    """A stored binary, content-addressed: identical bytes are stored once."""

    sha256 = models.CharField(max_length=64, unique=True)
    mime_type = models.CharField(max_length=100)
    size_bytes = models.PositiveBigIntegerField()
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    file = models.FileField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "media"

    def __str__(self) -> str:
        return f"{self.sha256[:12]} {self.mime_type} {self.width}x{self.height}"


class Dataset(models.Model):
    """A named collection with a schema: `modalities` is a list of
    {"name", "kind" in MODALITY_KINDS, optional "label"}; `label_space` an ordered list of labels."""

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    modalities = models.JSONField(default=list)
    label_space = models.JSONField(default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name

    def modality_names(self) -> list[str]:
        return [m["name"] for m in self.modalities]

    def modality_kind(self, name: str) -> str | None:
        for m in self.modalities:
            if m["name"] == name:
                return str(m["kind"])
        return None


class Example(models.Model):
    """One item: `values` maps modality name → value (text: the string; image: the Media
    sha256; tabular: {feature: number|string}). `content_hash` is the SHA-256 of the
    canonical JSON of `values`, so identical inputs share model scores."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="examples")
    external_id = models.CharField(max_length=255)
    values = models.JSONField()
    label = models.CharField(max_length=200, null=True, blank=True)
    split = models.CharField(max_length=50, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    content_hash = models.CharField(max_length=64, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset", "external_id"], name="example_unique_external_id"
            ),
        ]
        indexes = [
            models.Index(fields=["dataset", "split"], name="example_dataset_split"),
            models.Index(fields=["dataset", "label"], name="example_dataset_label"),
        ]

    def __str__(self) -> str:
        return f"{self.dataset_id}:{self.external_id}"


class ExampleMedia(models.Model):
    """Which example uses which stored image, in which modality: the index the media access
    rule (access.media_for_user) reads, since Example.values keeps the SHA-256 inside JSON
    where no index reaches. Written with the examples, by annotation.services.media."""

    example = models.ForeignKey(Example, on_delete=models.CASCADE, related_name="media_uses")
    media = models.ForeignKey(Media, on_delete=models.CASCADE, related_name="+", db_index=False)
    modality = models.CharField(max_length=100)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["example", "modality"], name="example_media_once_per_modality"
            ),
        ]
        indexes = [models.Index(fields=["media", "example"], name="example_media_by_media")]

    def __str__(self) -> str:
        return f"{self.example_id}.{self.modality} -> {self.media_id}"


class Campaign(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft"
        ACTIVE = "active"
        PAUSED = "paused"
        CLOSED = "closed"

    class FeedbackArm(models.TextChoices):
        SHOWN = "shown"
        HIDDEN = "hidden"
        RANDOMISED = "randomised"

    class TaskOrder(models.TextChoices):
        # policy.pool_ranks computes the pool's `rank` for each (docs/managing.md).
        RANDOM = "random", "seeded random"
        STRATIFIED = "stratified", "stratified by label"
        DISAGREEMENT = "disagreement", "models disagree most first"
        UNCERTAINTY = "uncertainty", "least confident first"

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="campaigns")
    name = models.CharField(max_length=200, unique=True)
    instructions = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    task_label = models.BooleanField(default=True)
    task_rationale = models.BooleanField(default=True)
    task_counterfactual = models.BooleanField(default=True)
    task_validation = models.BooleanField(default=True)
    redundancy = models.PositiveSmallIntegerField(default=3)
    editable_modalities = models.JSONField(default=list, blank=True)
    # modality name → budget: text as max word-level minimality (0..1), image as max
    # changed-pixel fraction (0..1), tabular as max fraction of features changed.
    edit_budgets = models.JSONField(default=dict, blank=True)
    balance_counterfactuals = models.BooleanField(default=False)
    feedback_arm = models.CharField(
        max_length=12, choices=FeedbackArm.choices, default=FeedbackArm.SHOWN
    )
    gold_rate = models.FloatField(default=0.0)
    lease_seconds = models.PositiveIntegerField(default=1800)
    validations_required = models.PositiveSmallIntegerField(default=3)
    validations_to_verify = models.PositiveSmallIntegerField(default=2)
    score_cap_per_assignment = models.PositiveIntegerField(default=500)
    # Per-question switches and wording overrides for the reliance questions (docs/architecture.md "Reliance questions").
    questions = models.JSONField(default=dict, blank=True)
    seed = models.IntegerField(default=0)
    task_order = models.CharField(
        max_length=12, choices=TaskOrder.choices, default=TaskOrder.RANDOM
    )
    # Keys gold placement with the seed (policy.is_gold_item, policy.want_gold) so the seed,
    # which managers pick and share, does not reveal the gold; set at creation, never shown.
    gold_secret = models.CharField(max_length=64, blank=True, default="")
    # People rules (docs/managing.md "People"): at most this many submitted annotate tasks
    # per annotator (None: no cap); a screening of this many gold items, passed at this
    # fraction correct, before any other task (0: no screening).
    task_cap = models.PositiveIntegerField(null=True, blank=True)
    screening_items = models.PositiveSmallIntegerField(default=0)
    screening_pass_mark = models.FloatField(default=0.8)
    model_versions = models.ManyToManyField(
        "models_bridge.ModelVersion", blank=True, related_name="campaigns"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(redundancy__gte=1), name="campaign_redundancy_positive"
            ),
            models.CheckConstraint(
                condition=Q(gold_rate__gte=0) & Q(gold_rate__lte=1),
                name="campaign_gold_rate_fraction",
            ),
            models.CheckConstraint(
                condition=Q(validations_to_verify__lte=models.F("validations_required")),
                name="campaign_verify_within_required",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class CampaignRound(models.Model):
    """A stage of a campaign's counterfactual collection (docs/rounds.md): edits submitted
    while it is open belong to it, and its verified edits that its target model gets wrong
    make its verified model error rate. `training` holds what train_round did with it (the
    old and new models' accuracies side by side); `trained_model` is the version it
    registered, at most one, so a second run registers nothing."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="rounds")
    number = models.PositiveIntegerField()
    target = models.ForeignKey(
        "models_bridge.ModelVersion", on_delete=models.PROTECT, related_name="+"
    )
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    # The target's accuracy on the dataset's test split, when measured (train_round measures it).
    target_accuracy = models.FloatField(null=True, blank=True)
    trained_model = models.ForeignKey(
        "models_bridge.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    training = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["campaign_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "number"], name="round_unique_number"),
            models.UniqueConstraint(
                fields=["campaign"],
                condition=Q(closed_at__isnull=True),
                name="round_one_open_per_campaign",
            ),
            models.CheckConstraint(condition=Q(number__gte=1), name="round_number_positive"),
            models.CheckConstraint(
                condition=Q(closed_at__isnull=True) | Q(closed_at__gte=models.F("opened_at")),
                name="round_closed_after_opened",
            ),
        ]

    def __str__(self) -> str:
        return f"round {self.number} of {self.campaign_id}"


class DashboardSnapshot(models.Model):
    """A campaign's dashboard figures as last computed (annotation/services/dashboard.py),
    one per campaign: requests serve it at once and ask for a refresh when it is older than
    DASHBOARD_CACHE_SECONDS. `requested_at` is set by the request that enqueued a refresh
    (so concurrent requests enqueue one), `claimed_at` / `claim_token` by the worker
    computing it (a conditional update: two workers never compute the same campaign at
    once; a claim older than DASHBOARD_REFRESH_EXPIRY_SECONDS is a dead worker's and is taken
    over, and the dead worker's late write matches no row)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    figures = models.JSONField(null=True, blank=True)
    computed_at = models.DateTimeField(null=True, blank=True)
    # The last annotation and edit ids the figures' statements read (None: there were none).
    last_annotation_id = models.BigIntegerField(null=True, blank=True)
    last_edit_id = models.BigIntegerField(null=True, blank=True)
    requested_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=32, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign"], name="dashboard_snapshot_one_per_campaign")
        ]

    def __str__(self) -> str:
        return f"dashboard of {self.campaign_id} at {self.computed_at}"


class CampaignExample(models.Model):
    """An example in a campaign's pool, with counters the assignment engine keeps (with F())."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="items")
    example = models.ForeignKey(Example, on_delete=models.CASCADE, related_name="campaign_items")
    is_gold = models.BooleanField(default=False)
    # A gold item's answer when the manager gave one (any example, labelled or not); empty:
    # the example's own label. Read only through selectors.gold_answer (the one rule).
    gold_answer = models.CharField(max_length=200, blank=True, default="")
    # A stable per-campaign random rank (seeded) so leasing order is reproducible.
    rank = models.PositiveIntegerField(default=0)
    completed = models.PositiveIntegerField(default=0)
    in_flight = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["campaign_id", "rank", "id"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "example"], name="campaign_example_unique"),
            # An answer belongs to a gold item: unmarking one clears it.
            models.CheckConstraint(
                condition=Q(gold_answer="") | Q(is_gold=True),
                name="campaign_example_answer_only_gold",
            ),
        ]
        indexes = [
            models.Index(fields=["campaign", "completed", "rank"], name="campaign_item_pool"),
            # The lease's partly-done tier reads only the rows with a slot taken through this
            # (completed in 1..redundancy-1, or completed 0 with an open lease), not the pool.
            models.Index(fields=["campaign", "completed", "in_flight"], name="campaign_item_load"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}/{self.example_id}"


class Membership(models.Model):
    class Role(models.TextChoices):
        MANAGER = "manager"
        ANNOTATOR = "annotator"
        VALIDATOR = "validator"

    class Arm(models.TextChoices):
        SHOWN = "shown"
        HIDDEN = "hidden"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices)
    # The feedback arm this person is in (fixed at invitation for randomised campaigns).
    arm = models.CharField(max_length=6, choices=Arm.choices, default=Arm.SHOWN)
    # A deactivated member keeps the row (and all their work) but the access helper no
    # longer sees the role: no leases, no pages of the campaign.
    active = models.BooleanField(default=True)
    # This annotator's own task cap (submitted annotate tasks); None: the campaign's
    # task_cap applies (policy.effective_task_cap decides).
    task_cap = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "user", "role"], name="membership_unique_role"
            ),
            models.CheckConstraint(
                condition=Q(task_cap__isnull=True) | Q(task_cap__gte=1),
                name="membership_task_cap_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.campaign_id}:{self.role}"


class Assignment(models.Model):
    """A lease of one example (kind annotate) or one edit (kind validate) to one annotator."""

    class Kind(models.TextChoices):
        ANNOTATE = "annotate"
        VALIDATE = "validate"
        # A perturbed example of a PerturbationStudy to label (docs/perturbation.md).
        PERTURBATION = "perturbation"

    class Status(models.TextChoices):
        ACTIVE = "active"
        SUBMITTED = "submitted"
        EXPIRED = "expired"
        SKIPPED = "skipped"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="assignments")
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.ANNOTATE)
    example = models.ForeignKey(Example, on_delete=models.CASCADE, related_name="assignments")
    edit = models.ForeignKey(
        "CounterfactualEdit",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="validation_assignments",
    )
    perturbed_item = models.ForeignKey(
        "PerturbedItem",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="assignments",
    )
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    is_gold = models.BooleanField(default=False)
    # For counterfactual tasks the engine may assign the cell to fill (quota balancing).
    cf_modality = models.CharField(max_length=100, blank=True, default="")
    cf_target_label = models.CharField(max_length=200, blank=True, default="")
    leased_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    submitted_at = models.DateTimeField(null=True, blank=True)
    skip_reason = models.TextField(blank=True)
    # Autosaved work in progress; kept even when the lease expires or a late submit is refused.
    draft = models.JSONField(default=dict, blank=True)
    draft_updated_at = models.DateTimeField(null=True, blank=True)
    attempts_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["id"]
        constraints = [
            # Never the same example twice to the same annotator for annotation.
            models.UniqueConstraint(
                fields=["campaign", "example", "annotator"],
                condition=Q(kind="annotate"),
                name="assignment_once_per_example_annotator",
            ),
            # Never the same edit twice to the same validator.
            models.UniqueConstraint(
                fields=["edit", "annotator"],
                condition=Q(kind="validate"),
                name="assignment_once_per_edit_validator",
            ),
            # At most one open lease per annotator, campaign and kind.
            models.UniqueConstraint(
                fields=["campaign", "annotator", "kind"],
                condition=Q(status="active"),
                name="assignment_one_open_lease",
            ),
            # Each base example at most once per person in a campaign's perturbation tasks
            # (the balanced design, docs/perturbation.md): never at two levels.
            models.UniqueConstraint(
                fields=["campaign", "example", "annotator"],
                condition=Q(kind="perturbation"),
                name="assignment_once_per_example_perturbation",
            ),
            models.CheckConstraint(
                condition=(
                    Q(kind="annotate") & Q(edit__isnull=True) & Q(perturbed_item__isnull=True)
                )
                | (Q(kind="validate") & Q(edit__isnull=False) & Q(perturbed_item__isnull=True))
                | (Q(kind="perturbation") & Q(edit__isnull=True) & Q(perturbed_item__isnull=False)),
                name="assignment_kind_matches_target",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "expires_at"], name="assignment_expiry"),
            models.Index(
                fields=["campaign", "annotator", "status"], name="assignment_by_annotator"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind}#{self.pk} ex={self.example_id} by {self.annotator_id} ({self.status})"


class Annotation(models.Model):
    class Reliance(models.TextChoices):
        # docs/architecture.md "Reliance questions": the plain-words answer is mapped; this is the stored category.
        SPECIALIZATION = "specialization"  # only one modality was needed (see reliance_modality)
        EQUIVALENCE = "equivalence"  # either alone would do (redundancy)
        SYNERGY = "synergy"  # both together, neither alone says anything
        COMPLEMENTARITY = "complementarity"  # each gave part of the answer (additive)
        TRANSFER = "transfer"  # one told how to read the other (reliance_modality = the guide)

    assignment = models.OneToOneField(
        Assignment, on_delete=models.CASCADE, related_name="annotation"
    )
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="annotations")
    example = models.ForeignKey(Example, on_delete=models.CASCADE, related_name="annotations")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="annotations"
    )
    label = models.CharField(max_length=200)
    confidence = models.PositiveSmallIntegerField(null=True, blank=True)
    rationale = models.TextField(blank=True)
    reliance = models.CharField(max_length=16, choices=Reliance.choices, blank=True, default="")
    reliance_modality = models.CharField(max_length=100, blank=True, default="")
    # [{"modality": m, "type": "span", "start": i, "end": j, "text": "..."} |
    #  {"modality": m, "type": "box", "x": .., "y": .., "w": .., "h": ..}] in source pixels/chars.
    evidence = models.JSONField(default=list, blank=True)
    time_spent_ms = models.PositiveIntegerField(default=0)
    is_gold = models.BooleanField(default=False)
    idempotency_key = models.CharField(max_length=100, null=True, blank=True)
    # SHA-256 of the canonical submitted body (services.assignments.request_hash): a replay of
    # the key with another body is refused. Empty on rows stored before it existed.
    request_hash = models.CharField(max_length=64, blank=True, default="")
    late = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["annotator", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="annotation_unique_idempotency_key",
            ),
            models.UniqueConstraint(
                fields=["campaign", "example", "annotator"], name="annotation_once_per_example"
            ),
            models.CheckConstraint(
                condition=Q(confidence__isnull=True)
                | (Q(confidence__gte=1) & Q(confidence__lte=5)),
                name="annotation_confidence_1_to_5",
            ),
        ]
        indexes = [models.Index(fields=["campaign", "example"], name="annotation_by_example")]

    def __str__(self) -> str:
        return f"annotation #{self.pk}: {self.label}"


class CounterfactualEdit(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        VERIFIED = "verified"
        DISPUTED = "disputed"

    annotation = models.OneToOneField(Annotation, on_delete=models.CASCADE, related_name="edit")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="edits")
    example = models.ForeignKey(Example, on_delete=models.CASCADE, related_name="edits")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="edits"
    )
    modality = models.CharField(max_length=100)
    # The full edited values (untouched modalities copied byte-identical), same shape as Example.values.
    edited_values = models.JSONField()
    edited_media = models.ForeignKey(
        Media, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    mask_media = models.ForeignKey(
        Media, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    content_hash = models.CharField(max_length=64, db_index=True)
    original_label = models.CharField(max_length=200)
    target_label = models.CharField(max_length=200)
    # docs/architecture.md "Counterfactual protocol" figures: text {token_distance, minimality, char_distance, tokens};
    # image {pixel_fraction, changed_pixels, bbox_area, bbox}; tabular {fraction_changed, scaled_l1}.
    minimality = models.JSONField(default=dict)
    # model version id (str) → {"original": {...}, "edit": {...}} score summaries.
    scores = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    validations_count = models.PositiveSmallIntegerField(default=0)
    validations_agree = models.PositiveSmallIntegerField(default=0)
    # The campaign's round open when the edit was stored (set by the insert itself, see
    # services.counterfactuals); None in a campaign without rounds.
    round = models.ForeignKey(
        CampaignRound, null=True, blank=True, on_delete=models.PROTECT, related_name="edits"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["campaign", "status"], name="edit_by_status")]

    def __str__(self) -> str:
        return f"edit #{self.pk} of {self.modality} -> {self.target_label} ({self.status})"


class Attempt(models.Model):
    """One scored draft of an edit, in order: the trajectory of the annotator's search."""

    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="attempts")
    seq = models.PositiveIntegerField()
    modality = models.CharField(max_length=100)
    value = models.JSONField(null=True, blank=True)
    media = models.ForeignKey(
        Media, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    content_hash = models.CharField(max_length=64)
    scores = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["assignment_id", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["assignment", "seq"], name="attempt_unique_seq")
        ]

    def __str__(self) -> str:
        return f"attempt {self.assignment_id}/{self.seq}"


class Validation(models.Model):
    assignment = models.OneToOneField(
        Assignment, on_delete=models.CASCADE, related_name="validation"
    )
    edit = models.ForeignKey(
        CounterfactualEdit, on_delete=models.CASCADE, related_name="validations"
    )
    validator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="validations"
    )
    label = models.CharField(max_length=200, blank=True, default="")
    broken = models.BooleanField(default=False)
    comment = models.TextField(blank=True)
    idempotency_key = models.CharField(max_length=100, null=True, blank=True)
    request_hash = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["edit", "validator"], name="validation_once_per_validator"
            ),
            models.UniqueConstraint(
                fields=["validator", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="validation_unique_idempotency_key",
            ),
        ]

    def __str__(self) -> str:
        return f"validation #{self.pk}: {self.label or 'broken'}"


class Job(models.Model):
    class Kind(models.TextChoices):
        IMPORT = "import"
        EXPORT = "export"
        SCORE = "score"
        ANALYSIS = "analysis"
        PERTURB = "perturb"

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    campaign = models.ForeignKey(
        Campaign, null=True, blank=True, on_delete=models.CASCADE, related_name="jobs"
    )
    dataset = models.ForeignKey(
        Dataset, null=True, blank=True, on_delete=models.CASCADE, related_name="jobs"
    )
    params = models.JSONField(default=dict, blank=True)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    log = models.JSONField(default=list, blank=True)
    result = models.JSONField(null=True, blank=True)
    result_file = models.FileField(max_length=255, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The running worker's lease: it refreshes heartbeat_at while it works; a delivery that
    # finds the heartbeat older than the lease takes the job over and gets a new claim_token,
    # so the lost worker's late writes (progress, finish) match nothing.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=32, blank=True, default="")

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["kind", "status"], name="job_kind_status")]

    def __str__(self) -> str:
        return f"{self.kind} job #{self.pk} ({self.status})"

    def progress_fraction(self) -> float:
        return self.progress_done / self.progress_total if self.progress_total else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.pk,
            "kind": self.kind,
            "status": self.status,
            "done": self.progress_done,
            "total": self.progress_total,
        }


class Invite(models.Model):
    """A one-time sign-up link into a campaign with a role: sent by e-mail when `email` is
    set, else handed out by the manager. Only the SHA-256 of the token is stored; the link
    works once (`used_at`) and until `expires_at`."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="invites")
    role = models.CharField(max_length=10, choices=Membership.Role.choices)
    email = models.EmailField(blank=True, default="")
    token_hash = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"invite {self.pk} to {self.campaign_id} as {self.role}"


class CrowdLink(models.Model):
    """A study link for a crowd platform (Prolific, MTurk): whoever opens
    /crowd/<id>/<token>/ with a worker id gets a password-less annotator account of the
    campaign. The token is kept (the manager copies the link again) and compared in
    constant time."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="crowd_links")
    name = models.CharField(max_length=100, default="Study link")
    token = models.CharField(max_length=64)
    worker_param = models.CharField(max_length=40, default="PROLIFIC_PID")
    study_param = models.CharField(max_length=40, default="STUDY_ID", blank=True)
    session_param = models.CharField(max_length=40, default="SESSION_ID", blank=True)
    completion_code = models.CharField(max_length=100, blank=True, default="")
    # Shown (and put into the redirect) when a worker fails the screening; empty: none.
    screening_fail_code = models.CharField(max_length=100, blank=True, default="")
    # http(s) only; "{code}" in it is replaced by the code the worker earned.
    completion_url = models.URLField(max_length=500, blank=True, default="")
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"crowd link {self.pk} of {self.campaign_id}"


class CrowdWorker(models.Model):
    """The platform ids of one crowd worker, attached to the account (and membership) the
    link made for them: one account per (link, worker id)."""

    link = models.ForeignKey(CrowdLink, on_delete=models.CASCADE, related_name="workers")
    membership = models.OneToOneField(
        Membership, null=True, on_delete=models.SET_NULL, related_name="crowd"
    )
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="crowd_worker"
    )
    worker_id = models.CharField(max_length=64)
    study_id = models.CharField(max_length=64, blank=True, default="")
    session_id = models.CharField(max_length=64, blank=True, default="")
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["link", "worker_id"], name="crowd_worker_once_per_link"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.worker_id}@{self.link_id}"


class PerturbationStudy(models.Model):
    """One perturbation of one modality of a campaign's examples along an ordered ladder of
    levels (annotation/perturbations.py; docs/perturbation.md). Its PerturbedItem rows are
    built by a Job of kind perturb; `status` says whether they are all there."""

    class Status(models.TextChoices):
        BUILDING = "building"
        READY = "ready"
        FAILED = "failed"

    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="perturbation_studies"
    )
    name = models.CharField(max_length=200)
    modality = models.CharField(max_length=100)
    perturbation = models.CharField(max_length=40)
    # Strictly increasing floats; the first is the perturbation's identity (level 0).
    levels = models.JSONField()
    seed = models.IntegerField(default=0)
    # The accuracy of guessing; None: 1 / |label space|.
    chance = models.FloatField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.BUILDING)
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "perturbation studies"
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "name"], name="perturbation_study_unique_name"
            ),
            models.CheckConstraint(
                condition=Q(chance__isnull=True) | (Q(chance__gt=0) & Q(chance__lt=1)),
                name="perturbation_study_chance_fraction",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.perturbation} of {self.modality})"


class PerturbedItem(models.Model):
    """One base example at one rung of a study's ladder: the full values humans and models
    see (same shape as Example.values, the studied modality replaced; an image as the stored
    Media's sha256, also in `media`), and their content hash, so model scores are shared with
    any identical input."""

    study = models.ForeignKey(PerturbationStudy, on_delete=models.CASCADE, related_name="items")
    example = models.ForeignKey(Example, on_delete=models.CASCADE, related_name="perturbed_items")
    level_index = models.PositiveSmallIntegerField()
    level = models.FloatField()
    # The example's place in the study (0..N-1, by example id), the column of the Latin square.
    position = models.PositiveIntegerField()
    values = models.JSONField()
    media = models.ForeignKey(
        Media, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    content_hash = models.CharField(max_length=64, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["study_id", "example_id", "level_index"]
        constraints = [
            models.UniqueConstraint(
                fields=["study", "example", "level_index"], name="perturbed_item_once_per_level"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.study_id}/{self.example_id}@{self.level_index}"


class PerturbationParticipant(models.Model):
    """An annotator's row of a study's Latin square: `slot` 0, 1, 2 … in the order people
    started the study, so consecutive participants see each example at consecutive levels."""

    study = models.ForeignKey(
        PerturbationStudy, on_delete=models.CASCADE, related_name="participants"
    )
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    slot = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["study_id", "slot"]
        constraints = [
            models.UniqueConstraint(
                fields=["study", "annotator"], name="perturbation_participant_once"
            ),
            models.UniqueConstraint(fields=["study", "slot"], name="perturbation_slot_once"),
        ]

    def __str__(self) -> str:
        return f"{self.annotator_id}@{self.study_id}#{self.slot}"


class PerturbationLabel(models.Model):
    """An annotator's label (and confidence) of one perturbed item: the human side of the
    study's curves. No edit step."""

    assignment = models.OneToOneField(
        Assignment, on_delete=models.CASCADE, related_name="perturbation_label"
    )
    study = models.ForeignKey(PerturbationStudy, on_delete=models.CASCADE, related_name="labels")
    item = models.ForeignKey(PerturbedItem, on_delete=models.CASCADE, related_name="labels")
    example = models.ForeignKey(Example, on_delete=models.CASCADE, related_name="+")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="perturbation_labels"
    )
    level_index = models.PositiveSmallIntegerField()
    label = models.CharField(max_length=200)
    confidence = models.PositiveSmallIntegerField(null=True, blank=True)
    is_gold = models.BooleanField(default=False)
    time_spent_ms = models.PositiveIntegerField(default=0)
    idempotency_key = models.CharField(max_length=100, null=True, blank=True)
    request_hash = models.CharField(max_length=64, blank=True, default="")
    late = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["study", "example", "annotator"], name="perturbation_label_once"
            ),
            models.UniqueConstraint(
                fields=["annotator", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="perturbation_label_unique_idempotency_key",
            ),
            models.CheckConstraint(
                condition=Q(confidence__isnull=True)
                | (Q(confidence__gte=1) & Q(confidence__lte=5)),
                name="perturbation_label_confidence_1_to_5",
            ),
        ]
        indexes = [models.Index(fields=["study", "level_index"], name="perturbation_label_level")]

    def __str__(self) -> str:
        return f"perturbation label #{self.pk}: {self.label}"
