"""The Celery app. Queues: `scoring` (bulk model scoring), `analysis`, `io` (import/export);
workers pick queues with -Q, so scoring can scale apart from imports."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "counterpoint.settings")

app = Celery("counterpoint")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_routes = {
    "annotation.tasks.*": {"queue": "io"},
    "models_bridge.tasks.*": {"queue": "scoring"},
    "analysis.*": {"queue": "analysis"},
}
app.conf.beat_schedule = {
    "expire-stale-leases": {"task": "annotation.tasks.expire_stale_leases", "schedule": 60.0},
}
app.autodiscover_tasks()
