"""Load photo search's network before the first shopper needs it.

An encoder loads its network on first use (:mod:`visualsearch.encoders`), so the first photo
search of a web process also loads the runtime, the weights and the catalogue projection,
and runs the network for the first time: several seconds on a small machine, which the
first shopper to upload a photo after a deployment would wait. A web process calls
:func:`warm_up_in_background` as it starts (the reference shop does in ``config/wsgi.py``);
pages are served meanwhile, and a photo search that arrives before the warm-up has finished
waits for the same load (the encoder's lock) instead of starting a second one.

Call it in the process that serves, after any fork: a server that imports the application
before forking its workers (gunicorn's ``--preload``) calls it from a ``post_fork`` hook. A
process forked from one that has loaded encoders forgets them (:mod:`visualsearch.encoders`)
and loads its own, so the master's warm-up would be lost on the workers, though harmless.

Only web processes need it: workers that reindex load the network for their first batch
anyway, and a process that never searches by photo keeps its memory.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
from PIL import Image

from .encoders import get_encoder
from .localisation import views_of

__all__ = ["warm_up", "warm_up_in_background"]

logger = logging.getLogger(__name__)


def _sample_photo(size=256, seed=0):
    """A photo with something in it (a dark shape on a grainy light backdrop), so that
    localisation and the foreground crop run as they do on a shopper's photo."""
    rng = np.random.default_rng(seed)
    pixels = rng.normal(225, 8, (size, size, 3))
    pixels[size // 4 : 3 * size // 4, size // 3 : 2 * size // 3] = 40
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def warm_up(encoder=None) -> float:
    """Load ``encoder`` (default: ``VISUALSEARCH_ENCODER``) and its projection, and run one
    photo through photo search's image path (finding its regions, embedding every view),
    without the database. Returns the seconds it took."""
    start = time.perf_counter()
    enc = get_encoder(encoder)
    views = [view for _box, view in views_of(_sample_photo())]
    enc.embed_versioned(views)
    return time.perf_counter() - start


def _warm_up_logged(encoder):
    try:
        seconds = warm_up(encoder)
    except Exception:
        # Nothing is lost: the first photo search loads the encoder (and reports what fails).
        logger.exception("Photo search could not be warmed up.")
    else:
        logger.info(
            "Photo search warmed up in %.1f s.", seconds, extra={"seconds": round(seconds, 2)}
        )


def warm_up_in_background(encoder=None) -> threading.Thread:
    """Start :func:`warm_up` in a daemon thread and return the thread; a failure is logged,
    never raised (the first photo search then loads the encoder as it would have)."""
    thread = threading.Thread(
        target=_warm_up_logged, args=(encoder,), name="visualsearch-warm-up", daemon=True
    )
    thread.start()
    return thread
