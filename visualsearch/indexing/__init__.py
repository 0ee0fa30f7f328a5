"""Embedding the catalogue's images into ``ProductEmbedding`` rows.

A reindex is a list of product ids worked through in batches: each batch's images are read,
hashed, decoded and embedded together, and its vectors replace the products' old ones of that
encoder (:mod:`.store`) in one committed transaction. A run that is killed therefore leaves
whole batches behind, and running it again (``--stale``, or a resumed job) carries on where
it stopped without embedding any product twice:

* ``stale`` works out what is missing or outdated from the database (no vector, another
  image name, other encoder weights) and, unless ``VISUALSEARCH_VERIFY_CHECKSUMS`` is off,
  from the image bytes (a file replaced in place);
* ``all`` re-embeds every vector computed before ``started_before`` (the job's start), so a
  resumed "all" skips what the first run finished;
* ``ids`` embeds the given products.

Images that cannot be read become ``IndexFailure`` rows and never stop a run; they are left
alone until the product's image changes. That includes images over
``VISUALSEARCH_MAX_CATALOGUE_PIXELS``, decompression bombs and whatever else a damaged file
makes a decoder raise: a run that stopped on one would stop on the same batch when resumed.
A batch holds its images as the encoders need them (:func:`.images.open_catalogue_image`,
under 2048 pixels a side), not at their full size.

On Celery workers a reindex job fans out (:func:`.service.reindex_fanned_out`): the job
works out the same list of products, cut into chunks of ``VISUALSEARCH_INDEX_CHUNK_SIZE``
keys, and each chunk (:func:`.service.embed_chunk`) is a task that any worker may run, in
committed batches as above. A chunk may be delivered twice (its worker died); it then skips
every product whose vector (or failure) was written since the job started, so nothing is
embedded twice, and it adds to the job's progress in the transaction of each batch, so
nothing is counted twice.

The modules, each building on those before it: :mod:`.images` (a catalogue image read and
decoded), :mod:`.state` (what is stale; the admin's counts), :mod:`.report` (what a run
did), :mod:`.pipeline` (the one loop that reads and embeds batches), :mod:`.store` (writing
vectors and failures), :mod:`.service` (the reindex entry points and their lock),
:mod:`.projection` (the projection fit), :mod:`.jobs` (the background jobs).
"""

from .images import open_catalogue_image
from .jobs import HANDLER, reindex_chunk, reindex_job, start_reindex
from .projection import reindex_with_projection, supports_projection
from .report import Report
from .service import LOCK_KEY, MODES, embed_chunk, reindex, reindex_fanned_out
from .state import Unindexed, check_ids, index_status, stale_products, why_unindexed, without_image

__all__ = [
    "HANDLER",
    "LOCK_KEY",
    "MODES",
    "Report",
    "Unindexed",
    "check_ids",
    "embed_chunk",
    "index_status",
    "open_catalogue_image",
    "reindex",
    "reindex_chunk",
    "reindex_fanned_out",
    "reindex_job",
    "reindex_with_projection",
    "stale_products",
    "start_reindex",
    "supports_projection",
    "why_unindexed",
    "without_image",
]
