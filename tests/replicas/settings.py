"""Settings of the replica scenario processes: the reference shop's, on the test cluster's
primary (``DATABASE_URL``) and standby (``DATABASE_REPLICA_URLS``), with the pixel encoder
and jobs run inline."""

from config.settings import *  # noqa: F403

VISUALSEARCH_ENCODERS = {"pixel": "tests.visualsearch.encoders.PixelEncoder"}
VISUALSEARCH_ENCODER = "pixel"
VISUALSEARCH_INDEX_ON_SAVE = False
LOOKALIKE_JOBS_BACKEND = "inline"
# Long enough that the stopped replica is not tried again during the scenario.
LOOKALIKE_REPLICA_COOLDOWN = 60
