"""Celery application for running jobs on workers across machines.

Used when ``LOOKALIKE_JOBS_BACKEND=celery``: ``celery -A config worker`` runs
``lookalike.jobs.tasks.run_job_task``, which calls the same service as the demo's worker.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("lookalike")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["lookalike.jobs"])
