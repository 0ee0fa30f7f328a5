"""Settings of the processes the fault tests start and kill: the reference shop's, on the
test database of the pytest process that started them (``LOOKALIKE_DB_NAME``), with the
cheap pixel encoder slowed down so that a worker can be killed in the middle of a batch."""

from config.settings import *  # noqa: F403

VISUALSEARCH_ENCODERS = {"slowpixel": "tests.faults.encoders.SlowPixelEncoder"}
VISUALSEARCH_ENCODER = "slowpixel"
VISUALSEARCH_INDEX_BATCH_SIZE = 4
VISUALSEARCH_INDEX_ON_SAVE = False
LOOKALIKE_JOBS_BACKEND = "worker"
