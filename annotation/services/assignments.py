"""Leases (docs/architecture.md "Domain"): hand out the next example or edit, expire, skip, drafts.

Invariant kept here and in annotations/validations: for every pool row
`completed + in_flight ≤ redundancy`, where `in_flight` counts the example's ACTIVE annotate
leases. Every status change of an assignment is a conditional update on its old status
(`filter(status=…).update(…) == 1`), so each counter moves exactly once per transition.

Concurrency:
- PostgreSQL: the lease takes the first eligible pool row with `FOR UPDATE SKIP LOCKED`, so
  concurrent leases never wait on each other and never pick the same slot twice; the room
  test is re-checked by PostgreSQL on the locked (newest) row version. Every code path that
  raises an example's load (lease, late submit) holds that row's lock.
- Lock order is always assignment row → pool row / edit row (sweep, submit, skip), and the
  lease only locks pool rows it can skip, so no two transactions wait on each other in a
  cycle.
- SQLite: `transaction_mode=IMMEDIATE` makes every transaction take the write lock at BEGIN,
  so the same code runs serialised (SELECT … FOR UPDATE is ignored there).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, connection, models, transaction
from django.db.models import Case, Count, F, Q, Value, When
from django.utils import timezone

from annotation import policy
from annotation.models import (
    Assignment,
    Campaign,
    CampaignExample,
    CounterfactualEdit,
    Example,
    Membership,
)
from annotation.selectors import validatable_edits
from annotation.selectors_people import annotator_gate
from counterpoint.errors import Conflict, Forbidden, ValidationFailed

ACTIVE = Assignment.Status.ACTIVE
EXPIRED = Assignment.Status.EXPIRED
SUBMITTED = Assignment.Status.SUBMITTED
SKIPPED = Assignment.Status.SKIPPED
ANNOTATE = Assignment.Kind.ANNOTATE
VALIDATE = Assignment.Kind.VALIDATE

DRAFT_MAX_BYTES = 2 * 1024 * 1024
SWEEP_BATCH = 200
# The open-lease query also returns up to this many stale leases: enough to tell "sweep".
SWEEP_PROBE = 3
# Validation candidates are locked a batch at a time (their free slots are counted after
# the lock, see _lease_validation); a handful covers the common case in one round trip.
VALIDATION_BATCH = 16
# A lease that finds every free row locked by concurrent writers re-looks this many times,
# waiting 20, 40, 60, 80 ms (200 ms at most): those writers commit in milliseconds.
LOCKED_ROOM_RETRIES = 4
LOCKED_ROOM_WAIT_S = 0.02
ROLES_FOR_KIND: dict[str, tuple[str, ...]] = {
    ANNOTATE: (Membership.Role.ANNOTATOR,),
    VALIDATE: (Membership.Role.ANNOTATOR, Membership.Role.VALIDATOR),
}


@dataclass(frozen=True)
class LeaseResult:
    assignment: Assignment | None  # None: nothing left for this person
    created: bool
    # The annotator's submitted annotate tasks, when the lease statement counted them anyway
    # (saves the progress query); None otherwise.
    done: int | None = None


def lease_expiry(campaign: Campaign, now: datetime) -> datetime:
    return now + timedelta(seconds=campaign.lease_seconds)


# --- expiry -----------------------------------------------------------------------------------


def assignment_expire_stale(
    *, campaign: Campaign | None = None, now: datetime | None = None, limit: int = SWEEP_BATCH
) -> int:
    """Expire open leases past `expires_at` and return their slots to the pool. Safe to run
    from any number of processes at once (each claims different rows with SKIP LOCKED); run
    lazily by every lease and periodically for the whole site. Returns how many expired."""
    now = now or timezone.now()
    stale = Assignment.objects.filter(status=ACTIVE, expires_at__lt=now)
    if campaign is not None:
        stale = stale.filter(campaign=campaign)
    # Cheap unlocked probe first: the common answer is "none", and then no write
    # transaction (on SQLite: no write lock) is taken at all.
    if not stale.exists():
        return 0
    with transaction.atomic():
        rows = list(
            stale.select_for_update(skip_locked=True)
            .order_by("id")
            .values_list("id", "kind", "campaign_id", "example_id")[:limit]
        )
        if not rows:
            return 0
        Assignment.objects.filter(id__in=[r[0] for r in rows], status=ACTIVE).update(status=EXPIRED)
        per_item: dict[tuple[int, int], int] = {}
        for _, kind, campaign_id, example_id in rows:
            if kind == ANNOTATE:
                per_item[(campaign_id, example_id)] = per_item.get((campaign_id, example_id), 0) + 1
        # Sorted so concurrent sweepers lock pool rows in one order.
        for (campaign_id, example_id), n in sorted(per_item.items()):
            CampaignExample.objects.filter(campaign_id=campaign_id, example_id=example_id).update(
                in_flight=F("in_flight") - n
            )
    return len(rows)


# --- lease ------------------------------------------------------------------------------------


def _open_lease(
    *, campaign: Campaign, annotator: Any, kind: str, now: datetime
) -> tuple[Assignment | None, bool]:
    """(the annotator's open lease of this kind, whether the campaign has stale leases to
    sweep), in one query. The open lease is renewed if it ran past its expiry but was not
    swept yet: its slot is still counted as theirs, so renewing takes nothing from anyone."""
    asg = quote(Assignment._meta.db_table)
    with connection.cursor() as cursor:
        # Plain SQL: this runs on every lease call and needs two flags, not model objects.
        cursor.execute(
            f"""SELECT id, (annotator_id = %s AND kind = %s), (expires_at < %s) FROM {asg}
                WHERE campaign_id = %s AND status = %s
                  AND ((annotator_id = %s AND kind = %s) OR expires_at < %s)
                ORDER BY (annotator_id = %s AND kind = %s) DESC, id LIMIT {SWEEP_PROBE}""",
            [
                annotator.pk, kind, connection.ops.adapt_datetimefield_value(now),
                campaign.pk, ACTIVE,
                annotator.pk, kind, connection.ops.adapt_datetimefield_value(now),
                annotator.pk, kind,
            ],
        )  # fmt: skip
        rows = cursor.fetchall()
    mine = next((r[0] for r in rows if r[1]), None)
    stale = any(r[2] and not r[1] for r in rows)
    if mine is None:
        return None, stale
    current = Assignment.objects.select_related("example", "edit").get(pk=mine)
    current.campaign = campaign
    current.annotator = annotator
    if current.expires_at <= now:
        new_expiry = lease_expiry(campaign, now)
        if not Assignment.objects.filter(pk=current.pk, status=ACTIVE).update(
            expires_at=new_expiry
        ):
            return None, True  # swept meanwhile: its slot went back to the pool
        current.expires_at = new_expiry
    return current, stale


def _tasks_so_far(*, campaign: Campaign, annotator: Any) -> int:
    return Assignment.objects.filter(campaign=campaign, annotator=annotator, kind=ANNOTATE).count()


def _quota_filled(campaign: Campaign) -> dict[policy.Cell, int]:
    filled: dict[policy.Cell, int] = {}
    done = (
        CounterfactualEdit.objects.filter(campaign=campaign)
        .values_list("modality", "target_label")
        .annotate(n=Count("id"))
        .order_by()
    )
    leased = (
        Assignment.objects.filter(campaign=campaign, kind=ANNOTATE, status=ACTIVE)
        .exclude(cf_modality="")
        .values_list("cf_modality", "cf_target_label")
        .annotate(n=Count("id"))
        .order_by()
    )
    for modality, label, n in [*done, *leased]:
        filled[(modality, label)] = filled.get((modality, label), 0) + n
    return filled


def _quota_for(campaign: Campaign, example_label: str | None) -> policy.Cell | None:
    if not (campaign.balance_counterfactuals and campaign.task_counterfactual):
        return None
    names = campaign.dataset.modality_names()
    editable = [m for m in campaign.editable_modalities if m in names]
    # Balancing cannot see concurrent leases that have not committed yet; two simultaneous
    # leases may pick the same cell. The next lease sees both, so the imbalance is ≤ the
    # number of concurrent leases, not cumulative.
    return policy.quota_cell(
        modalities=editable,
        labels=list(campaign.dataset.label_space),
        filled=_quota_filled(campaign),
        exclude_label=example_label or None,
    )


def _pick_pool_item(
    *, campaign: Campaign, annotator: Any, gold: bool | None, gold_only: bool = False
) -> tuple[int, int, bool, str | None, Any] | None:
    """Lock and return (pool row id, example id, is_gold, example label, example values) of
    the first eligible pool row in policy order (policy.lease_sort_key), or None.

    The SQL twin of policy.order_pool (tests pin the two to the same sequence), run as one
    small query per tier (gold preference x partly done / fresh) instead of one sort over
    the whole pool: the fresh tier walks the (campaign, completed, rank) index in rank order,
    the partly-done tier touches the few rows with a slot taken; the example is joined for
    the one row returned. SKIP LOCKED makes concurrent leases pass each other."""
    # NOT IN over this person's examples: PostgreSQL hashes the subquery once per statement,
    # whatever its statistics say (a correlated NOT EXISTS turned into a per-row rescan of
    # the campaign's assignments while a fresh campaign's statistics were stale: 30x slower).
    # Any kind: a validation lease's example_id is the original of the edit, and someone who
    # validates an edit must not see its original (policy.validation_order, the other half).
    held = Assignment.objects.filter(campaign_id=campaign.pk, annotator_id=annotator.pk).values(
        "example_id"
    )
    pool = CampaignExample.objects.filter(campaign_id=campaign.pk)
    partly = (
        pool.filter(
            Q(completed__gt=0, completed__lt=campaign.redundancy) | Q(completed=0, in_flight__gt=0)
        )
        .alias(load=F("completed") + F("in_flight"))
        .filter(load__lt=campaign.redundancy)
    )
    fresh = pool.filter(completed=0, in_flight=0)
    for preference in policy.gold_preferences(want=gold, gold_only=gold_only):
        for tier in (partly, fresh):
            qs = tier if preference is None else tier.filter(is_gold=preference)
            row = (
                qs.exclude(example_id__in=held)
                .order_by("rank", "id")
                .select_for_update(skip_locked=True, of=("self",))
                .values_list("id", "example_id", "is_gold", "example__label", "example__values")
                .first()
            )
            if row is not None:
                return row
    return None


# --- PostgreSQL fast path ---------------------------------------------------------------------
# The lease and the submit are the two hot calls of the whole product. On PostgreSQL each is
# one SQL statement (data-modifying CTEs): lock the row, insert, move the counters, in one
# round trip and one implicit transaction, with no ORM query building on the way. The ORM
# path above does the same in steps and remains the reference (SQLite, rare branches);
# the same tests run against both.


def quote(name: str) -> str:
    return connection.ops.quote_name(name)


def insert_parts(
    instance: models.Model, *, sql_values: dict[str, str | tuple[str, Sequence[Any]]] | None = None
) -> tuple[str, str, list[Any]]:
    """(column list, value list, params) to INSERT `instance` (all concrete fields but the
    auto primary key, Python-side defaults applied), with some columns given as SQL
    expressions (`sql_values`: attname → SQL, or (SQL, its params)) instead of parameters.
    Built from the model's _meta, so a field added to the model later is inserted too."""
    sql_values = sql_values or {}
    cols: list[str] = []
    values: list[str] = []
    params: list[Any] = []
    for field in instance._meta.concrete_fields:
        if field.primary_key:
            continue
        cols.append(quote(str(field.column)))
        if field.attname in sql_values:
            given = sql_values[field.attname]
            if isinstance(given, tuple):
                values.append(given[0])
                params.extend(given[1])
            else:
                values.append(given)
        else:
            values.append("%s")
            params.append(field.get_db_prep_save(field.pre_save(instance, True), connection))
    return ", ".join(cols), ", ".join(values), params


def one_statement() -> AbstractContextManager[Any]:
    """A single statement is its own transaction in autocommit; inside a caller's transaction
    it gets a savepoint, so a failed statement (an IntegrityError) does not poison it."""
    return transaction.atomic() if connection.in_atomic_block else nullcontext()


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _lease_annotation_pg(
    *, campaign: Campaign, annotator: Any, now: datetime, gold: bool | None, gold_only: bool
) -> tuple[Assignment, int] | None:
    """Policy order as _pick_pool_item, then insert and count, in one statement per tier."""
    draft = Assignment(
        campaign=campaign,
        kind=ANNOTATE,
        annotator=annotator,
        leased_at=now,
        expires_at=lease_expiry(campaign, now),
    )
    cols, values, insert_params = insert_parts(
        draft, sql_values={"example_id": "picked.example_id", "is_gold": "picked.is_gold"}
    )
    tiers = {
        "partly": (
            "((ce.completed > 0 AND ce.completed < %s) OR (ce.completed = 0 AND ce.in_flight > 0))"
            " AND ce.completed + ce.in_flight < %s",
            [campaign.redundancy, campaign.redundancy],
        ),
        "fresh": ("ce.completed = 0 AND ce.in_flight = 0", []),
    }
    for attempt in range(LOCKED_ROOM_RETRIES + 1):
        leased = _lease_annotation_pg_once(
            campaign=campaign, annotator=annotator, draft=draft, gold=gold, tiers=tiers,
            gold_only=gold_only, cols=cols, values=values, insert_params=insert_params,
        )  # fmt: skip
        if leased is not None or attempt == LOCKED_ROOM_RETRIES:
            return leased
        # SKIP LOCKED also skips pool rows whose lease another request is writing this
        # instant. Near the end of a pool that can be the only room left: say "nothing left"
        # only once no row has room, waiting briefly (bounded) for those writers to commit.
        if not _room_left(campaign=campaign, annotator=annotator):
            return None
        time.sleep(LOCKED_ROOM_WAIT_S * (attempt + 1))
    return None


def _room_left(*, campaign: Campaign, annotator: Any) -> bool:
    """Whether some pool row still has a free slot for this annotator (no lock taken)."""
    ce, asg = (quote(m._meta.db_table) for m in (CampaignExample, Assignment))
    sql = f"""
        SELECT EXISTS (
            SELECT 1 FROM {ce} ce
            WHERE ce.campaign_id = %s AND ce.completed + ce.in_flight < %s
              AND ce.example_id NOT IN (
                SELECT a.example_id FROM {asg} a
                WHERE a.campaign_id = %s AND a.annotator_id = %s))"""
    with connection.cursor() as cursor:
        cursor.execute(sql, [campaign.pk, campaign.redundancy, campaign.pk, annotator.pk])
        return bool(cursor.fetchone()[0])


def _lease_annotation_pg_once(
    *,
    campaign: Campaign,
    annotator: Any,
    draft: Assignment,
    gold: bool | None,
    gold_only: bool,
    tiers: dict[str, tuple[str, list[Any]]],
    cols: str,
    values: str,
    insert_params: list[Any],
) -> tuple[Assignment, int] | None:
    ce, asg, ex = (quote(m._meta.db_table) for m in (CampaignExample, Assignment, Example))
    for preference in policy.gold_preferences(want=gold, gold_only=gold_only):
        for condition, tier_params in tiers.values():
            gold_sql = "" if preference is None else "AND ce.is_gold = %s"
            gold_params = [] if preference is None else [preference]
            sql = f"""
                WITH picked AS (
                    SELECT ce.id, ce.example_id, ce.is_gold FROM {ce} ce
                    WHERE ce.campaign_id = %s AND {condition} {gold_sql}
                      AND ce.example_id NOT IN (
                        SELECT a.example_id FROM {asg} a
                        WHERE a.campaign_id = %s AND a.annotator_id = %s)
                    ORDER BY ce.rank, ce.id LIMIT 1
                    FOR UPDATE OF ce SKIP LOCKED
                ), bumped AS (
                    UPDATE {ce} SET in_flight = {ce}.in_flight + 1 FROM picked WHERE {ce}.id = picked.id
                ), created AS (
                    INSERT INTO {asg} ({cols}) SELECT {values} FROM picked RETURNING id
                )
                SELECT created.id, picked.example_id, picked.is_gold, e.label, e.{quote("values")},
                  (SELECT count(*) FROM {asg} d WHERE d.campaign_id = %s AND d.annotator_id = %s
                     AND d.kind = %s AND d.status = %s)
                FROM created CROSS JOIN picked JOIN {ex} e ON e.id = picked.example_id"""
            params = [
                campaign.pk, *tier_params, *gold_params, campaign.pk, annotator.pk,
                *insert_params,
                campaign.pk, annotator.pk, ANNOTATE, SUBMITTED,
            ]  # fmt: skip
            with one_statement(), connection.cursor() as cursor:
                cursor.execute(sql, params)
                row = cursor.fetchone()
            if row is None:
                continue
            ident, example_id, is_gold, label, values_json, done = row
            draft.pk = ident
            draft.is_gold = is_gold
            draft.example = Example(
                pk=example_id,
                dataset_id=campaign.dataset_id,
                label=label,
                values=_json(values_json),
            )
            draft._state.adding = False
            draft._state.db = "default"
            return draft, int(done)
    return None


def _lease_annotation(
    *, campaign: Campaign, annotator: Any, now: datetime, gold_only: bool = False
) -> tuple[Assignment | None, int | None]:
    gold = None
    if campaign.gold_rate > 0 and not gold_only:
        gold = policy.want_gold(
            gold_rate=campaign.gold_rate,
            seed=campaign.seed,
            secret=campaign.gold_secret,
            annotator_id=annotator.pk,
            tasks_so_far=_tasks_so_far(campaign=campaign, annotator=annotator),
        )
    balancing = campaign.balance_counterfactuals and campaign.task_counterfactual
    if connection.vendor == "postgresql":
        # Balancing reads the example's label, so the cell is set right after, in the same
        # transaction; without it the lease is a single autocommit statement.
        with transaction.atomic() if balancing else nullcontext():
            leased = _lease_annotation_pg(
                campaign=campaign, annotator=annotator, now=now, gold=gold, gold_only=gold_only
            )
            if leased is None:
                return None, None
            assignment, done = leased
            cell = _quota_for(campaign, assignment.example.label)
            if cell:
                assignment.cf_modality, assignment.cf_target_label = cell
                assignment.save(update_fields=["cf_modality", "cf_target_label"])
            return assignment, done
    with transaction.atomic():
        picked = _pick_pool_item(
            campaign=campaign, annotator=annotator, gold=gold, gold_only=gold_only
        )
        if picked is None:
            return None, None
        item_id, example_id, is_gold, label, values = picked
        example = Example(pk=example_id, dataset_id=campaign.dataset_id, label=label, values=values)
        cell = _quota_for(campaign, example.label)
        assignment = Assignment.objects.create(
            campaign=campaign,
            kind=ANNOTATE,
            example=example,
            annotator=annotator,
            is_gold=is_gold,
            cf_modality=cell[0] if cell else "",
            cf_target_label=cell[1] if cell else "",
            leased_at=now,
            expires_at=lease_expiry(campaign, now),
        )
        CampaignExample.objects.filter(pk=item_id).update(in_flight=F("in_flight") + 1)
    return assignment, None


def _lease_validation(*, campaign: Campaign, annotator: Any, now: datetime) -> Assignment | None:
    if not campaign.task_validation:
        return None
    base = validatable_edits(campaign=campaign, validator_id=annotator.pk).order_by(
        "-validations_count", "id"
    )
    seen: list[int] = []
    with transaction.atomic():
        # Open validation leases are counted from the assignment rows, after the edit row is
        # locked: every transaction that adds a lease or a validation to an edit holds that
        # lock, so the count read in the next statement is current.
        waits = 0
        for _ in range(50):  # bounded: 50 batches of locked-but-full edits is pathological
            open_edits = base.exclude(pk__in=seen)
            batch = list(
                open_edits.select_for_update(skip_locked=True).values_list(
                    "id", "author_id", "validations_count", "example_id"
                )[:VALIDATION_BATCH]
            )
            if not batch:
                # SKIP LOCKED also skips edits whose validation lease another request is
                # writing this instant; before answering "nothing left", wait (bounded) for
                # those writers and look again.
                if waits < LOCKED_ROOM_RETRIES and open_edits.exists():
                    waits += 1
                    time.sleep(LOCKED_ROOM_WAIT_S * waits)
                    continue
                return None
            ids = [b[0] for b in batch]
            active = dict(
                Assignment.objects.filter(kind=VALIDATE, status=ACTIVE, edit_id__in=ids)
                .values_list("edit_id")
                .annotate(n=Count("id"))
                .order_by()
            )
            candidates = [
                policy.EditCandidate(
                    id=i,
                    author_id=a,
                    validations_count=c,
                    active_leases=active.get(i, 0),
                    example_id=e,
                )
                for i, a, c, e in batch
            ]
            ordered = policy.validation_order(
                candidates,
                validator_id=annotator.pk,
                validations_required=campaign.validations_required,
            )
            if ordered:
                chosen = ordered[0]
                example_id = next(b[3] for b in batch if b[0] == chosen.id)
                return Assignment.objects.create(
                    campaign=campaign,
                    kind=VALIDATE,
                    example_id=example_id,
                    edit_id=chosen.id,
                    annotator=annotator,
                    leased_at=now,
                    expires_at=lease_expiry(campaign, now),
                )
            seen += ids
    return None


def assignment_lease(
    *, campaign: Campaign, annotator: Any, kind: str, verify_role: bool = True
) -> LeaseResult:
    """The annotator's open lease of `kind` in the campaign, or a new one; `assignment=None`
    when nothing is left for them. `verify_role=False` only when the caller already checked
    the role (access.campaign_for_user with ROLES_FOR_KIND[kind]), which saves a query."""
    if kind not in ROLES_FOR_KIND:
        raise ValidationFailed(
            f"kind must be 'annotate' or 'validate', got {kind!r}", code="kind_unknown"
        )
    if (
        verify_role
        and not Membership.objects.filter(
            campaign=campaign, user_id=annotator.pk, role__in=ROLES_FOR_KIND[kind], active=True
        ).exists()
    ):
        wanted = " or ".join(ROLES_FOR_KIND[kind])
        raise Forbidden(
            f"{kind} tasks need the {wanted} role in this campaign", code="role_required"
        )
    if campaign.status != Campaign.Status.ACTIVE:
        raise Conflict(
            f"campaign {campaign.name!r} is {campaign.status}, not active",
            code="campaign_not_active",
        )
    now = timezone.now()
    current, stale = _open_lease(campaign=campaign, annotator=annotator, kind=kind, now=now)
    if current is not None:
        return LeaseResult(current, created=False)
    # Caps and screening are checked before (not inside) the lease statement, the same for
    # both lease paths; an open lease above was handed back whatever they say.
    gold_only = False
    if kind == ANNOTATE:
        gold_only = annotator_gate(campaign=campaign, annotator=annotator).screening_only
    if stale:
        assignment_expire_stale(campaign=campaign, now=now)
    done = None
    try:
        if kind == ANNOTATE:
            assignment, done = _lease_annotation(
                campaign=campaign, annotator=annotator, now=now, gold_only=gold_only
            )
        else:
            assignment = _lease_validation(campaign=campaign, annotator=annotator, now=now)
    except IntegrityError:
        # The same person leasing from two tabs at once: the one-open-lease constraint
        # let one transaction win; the other returns the winner's lease.
        current, _ = _open_lease(
            campaign=campaign, annotator=annotator, kind=kind, now=timezone.now()
        )
        if current is None:
            raise
        return LeaseResult(current, created=False)
    return LeaseResult(assignment, created=assignment is not None, done=done)


# --- submit (shared by annotations and validations) ----------------------------------------------

SUBMITTABLE_CAMPAIGN = {Campaign.Status.ACTIVE, Campaign.Status.PAUSED}


class AlreadySubmitted(Exception):
    """The assignment is already SUBMITTED (by this request's twin, or an earlier one)."""


def claim_for_submit(assignment: Assignment) -> str:
    """Move the assignment to SUBMITTED from whatever open status it has; returns that
    status (ACTIVE: it still holds its slot; EXPIRED: it must find room again). Locks the
    assignment row, the first lock of the submit transaction (see services.assignments)."""
    status = assignment.status
    for _ in range(3):
        if status in (ACTIVE, EXPIRED):
            if Assignment.objects.filter(pk=assignment.pk, status=status).update(
                status=SUBMITTED, submitted_at=timezone.now()
            ):
                return status
        elif status == SUBMITTED:
            raise AlreadySubmitted
        elif status == SKIPPED:
            raise Conflict(
                "this task was skipped; it can no longer be submitted", code="assignment_skipped"
            )
        status = Assignment.objects.filter(pk=assignment.pk).values_list("status", flat=True).get()
    raise Conflict("the task changed while submitting it; try again", code="assignment_busy")


def request_hash(payload: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a submitted body (sorted keys, no spaces), taken over
    what the client sent minus the idempotency key. `time_spent_ms` is left out too: it is a
    measurement the page takes again at every send, so a retry after a lost answer carries a
    larger figure for the same submission."""
    body = {k: v for k, v in payload.items() if k not in ("idempotency_key", "time_spent_ms")}
    blob = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


def stored_for_key(
    model: Any, *, owner_field: str, assignment: Assignment, key: str | None, body_hash: str
) -> Any:
    """The row (Annotation or Validation) an earlier submission of this assignment stored under
    `key`, for answering a retried request. Conflict when the key belongs to another task or
    came with another body (`idempotency_key_reused`), or when the task was already submitted
    under a different key."""
    found = None
    if key is not None:
        found = model.objects.filter(
            **{owner_field: assignment.annotator_id, "idempotency_key": key}
        ).first()
    if found is None or found.assignment_id != assignment.pk:
        if found is not None:
            raise Conflict(
                "this idempotency_key was already used for another task; send a fresh key",
                code="idempotency_key_reused",
            )
        raise Conflict("this task was already submitted", code="already_submitted")
    if found.request_hash and found.request_hash != body_hash:
        raise Conflict(
            "this idempotency_key was already used with a different body; the first one is "
            "stored, send a fresh key for a new submission",
            code="idempotency_key_reused",
            details={"stored_id": found.pk},
        )
    return found


def replay_after_integrity_error(
    model: Any, *, owner_field: str, assignment: Assignment, key: str | None, body_hash: str
) -> Any | None:
    """After a submit's insert hit a unique constraint: the stored row when a concurrent twin
    with the same key won (answered as a repeat, or refused when its body differs); None when
    the key did not cause it, and the caller re-raises."""
    if (
        key is None
        or not model.objects.filter(
            **{owner_field: assignment.annotator_id, "idempotency_key": key}
        ).exists()
    ):
        return None
    return stored_for_key(
        model, owner_field=owner_field, assignment=assignment, key=key, body_hash=body_hash
    )


# --- skip and drafts ---------------------------------------------------------------------------


def _release_slot(assignment: Assignment) -> None:
    if assignment.kind == ANNOTATE:
        CampaignExample.objects.filter(
            campaign_id=assignment.campaign_id, example_id=assignment.example_id
        ).update(in_flight=F("in_flight") - 1)


def assignment_skip(*, assignment: Assignment, reason: str = "") -> Assignment:
    """Give the task back: the slot returns to the pool for others, and the unique
    (example, annotator) row keeps it from ever being offered to this person again."""
    reason = (reason or "").strip()[:2000]
    for _ in range(3):  # status read → conditional update; retried if a sweep got in between
        status = Assignment.objects.filter(pk=assignment.pk).values_list("status", flat=True).get()
        if status == SUBMITTED:
            raise Conflict(
                "this task was already submitted; it cannot be skipped", code="already_submitted"
            )
        if status == SKIPPED:
            assignment.status = SKIPPED
            return assignment
        with transaction.atomic():
            if Assignment.objects.filter(pk=assignment.pk, status=status).update(
                status=SKIPPED, skip_reason=reason
            ):
                if status == ACTIVE:
                    _release_slot(assignment)
                assignment.status = SKIPPED
                assignment.skip_reason = reason
                return assignment
    raise Conflict("the task changed while skipping it; try again", code="assignment_busy")


def assignment_draft_save(*, assignment: Assignment, draft: Any) -> datetime:
    """Autosave work in progress. Allowed on an open lease and on an expired one (work is
    never lost); refused once submitted or skipped. Saving on an open lease also extends it:
    someone still typing is still working on it."""
    if not isinstance(draft, dict):
        raise ValidationFailed("draft must be a JSON object", code="draft_invalid")
    size = len(json.dumps(draft, separators=(",", ":")).encode("utf-8"))
    if size > DRAFT_MAX_BYTES:
        raise ValidationFailed(
            f"the draft is {size:,} bytes, over the cap of {DRAFT_MAX_BYTES:,} bytes",
            code="draft_too_large",
        )
    now = timezone.now()
    campaign = assignment.campaign
    updated = (
        Assignment.objects.filter(pk=assignment.pk)
        .filter(Q(status=ACTIVE) | Q(status=EXPIRED))
        .update(
            draft=draft,
            draft_updated_at=now,
            expires_at=Case(
                When(status=ACTIVE, then=Value(lease_expiry(campaign, now))),
                default=F("expires_at"),
            ),
        )
    )
    if not updated:
        status = Assignment.objects.filter(pk=assignment.pk).values_list("status", flat=True).get()
        if status == SKIPPED:
            raise Conflict(
                "this task was skipped; its draft can no longer change", code="assignment_skipped"
            )
        raise Conflict(
            "this task was already submitted; its draft can no longer change",
            code="already_submitted",
        )
    assignment.draft = draft
    assignment.draft_updated_at = now
    return now


def assignment_release_open(*, campaign: Campaign, annotator_id: int, kinds: list[str]) -> int:
    """Expire the person's open leases of `kinds` in the campaign now (they were removed or
    deactivated): the slots go back to the pool at once, the assignments (and their drafts)
    stay. Same transitions and counters as the sweep. Returns how many were released."""
    released = 0
    with transaction.atomic():
        rows = list(
            Assignment.objects.select_for_update()
            .filter(campaign_id=campaign.pk, annotator_id=annotator_id, status=ACTIVE)
            .filter(kind__in=kinds)
            .values_list("id", "kind", "example_id")
        )
        for ident, kind, example_id in rows:
            if Assignment.objects.filter(pk=ident, status=ACTIVE).update(status=EXPIRED):
                released += 1
                if kind == ANNOTATE:
                    CampaignExample.objects.filter(
                        campaign_id=campaign.pk, example_id=example_id
                    ).update(in_flight=F("in_flight") - 1)
    return released
