"""Settings of the Celery worker processes the tests start: the fault tests' (the test
database of the pytest process, ``LOOKALIKE_DB_NAME``; the slowed pixel encoder) with the
Celery backend, on the broker and queue the test names, so that runs never share a queue."""

import os
from pathlib import Path

from tests.faults.settings import *  # noqa: F403

LOOKALIKE_JOBS_BACKEND = "celery"
CELERY_BROKER_URL = os.environ["CELERY_BROKER_URL"]
CELERY_TASK_DEFAULT_QUEUE = os.environ["LOOKALIKE_CELERY_QUEUE"]
VISUALSEARCH_INDEX_CHUNK_SIZE = int(os.environ.get("VISUALSEARCH_INDEX_CHUNK_SIZE", "8"))
RECOMMENDATIONS_ARTIFACT_DIR = Path(os.environ["RECOMMENDATIONS_ARTIFACT_DIR"])
RECOMMENDATIONS_SIMULATION_DIR = RECOMMENDATIONS_ARTIFACT_DIR.parent / "simulation"
# Fail a fanned-out job quickly rather than wait 15 minutes if the test's chunks got lost.
LOOKALIKE_JOBS_CHUNK_STALL_SECONDS = 60
# A coordinator killed in a test is taken over a few seconds after its chunks end.
LOOKALIKE_JOBS_STALE_SECONDS = 3
