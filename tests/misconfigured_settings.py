"""The reference shop's settings with one mistake that Django meets while it starts, for
``manage.py check`` run in a subprocess (tests/test_catalogue.py): the check must report it
naming the setting, not crash with a traceback. ``LOOKALIKE_TEST_MISTAKE`` chooses it."""

import os

from config.settings import *  # noqa: F403

_MISTAKE = os.environ["LOOKALIKE_TEST_MISTAKE"]
if _MISTAKE == "no product model":
    # The plugins' models read it when they are imported, before any check runs.
    del LOOKALIKE_PRODUCT_MODEL  # noqa: F821
elif _MISTAKE == "api viewset":
    # ``manage.py check`` imports the URLconf, which imports the viewset.
    VISUALSEARCH_API_PRODUCT_VIEWSET = "nope.View"
else:
    raise ValueError(f"Unknown LOOKALIKE_TEST_MISTAKE {_MISTAKE!r}.")
