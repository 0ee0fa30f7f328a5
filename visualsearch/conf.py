"""Settings of the visual-search app (``VISUALSEARCH_*``), read on every access.

One settings object, :data:`app_settings`, built from four groups: the encoders, indexing,
the search planner and the shopper-facing pages. Each setting is a property with its
default (:class:`lookalike.conf.AppSettings`), so ``override_settings`` and pytest-django's
``settings`` fixture take effect at once; nothing is copied into module constants, and a
project setting with the prefix that no property reads is reported by a system check
(``visualsearch.W002``). The measurements behind the planner's defaults are in
docs/figures.md and in ``bench/similar_search.py``.
"""

from pathlib import Path

from lookalike.conf import AppSettings


class EncoderSettings(AppSettings):
    """Which encoder embeds images, where it runs and what it caches."""

    @property
    def ENCODER(self):
        """Name of the encoder that indexing and search use (see ``visualsearch.encoders``)."""
        return self._setting("ENCODER", "efficientnet_lite0")

    @property
    def ENCODERS(self):
        """Extra encoders, ``{name: "dotted.path.Class"}``, added to the built-in registry."""
        return self._setting("ENCODERS", {})

    @property
    def WEIGHTS(self):
        """Optional ``{encoder name: path to a local weights file}`` for torchvision backbones."""
        return self._setting("WEIGHTS", {})

    @property
    def ARTIFACT_DIR(self):
        """Where exported inference models and learned projections are cached."""
        return Path(self._setting("ARTIFACT_DIR", self._var_path("models")))

    @property
    def RUNTIME(self):
        """How encoders run their network: ``"auto"`` (OpenVINO, else ONNX Runtime, else torch
        eager, whichever loads first), ``"openvino"``, ``"onnxruntime"`` or ``"torch"``."""
        return self._setting("RUNTIME", "auto")

    @property
    def OPENVINO_TELEMETRY(self):
        """Whether OpenVINO may run its usage telemetry in this process. Off by default:
        importing ``openvino`` otherwise sends an event to Google Analytics, from a process
        forked off a helper thread (:func:`visualsearch.encoders.runtimes.import_openvino`).
        ``True`` leaves it as OpenVINO's own ``opt_in_out`` command set it."""
        return self._setting("OPENVINO_TELEMETRY", False)

    @property
    def BATCH_SIZE(self):
        """Images one forward pass of the network takes."""
        return self._setting("BATCH_SIZE", 32)

    @property
    def INFERENCE_THREADS(self):
        """Intra-op threads for encoder inference; ``None`` uses every CPU core."""
        return self._setting("INFERENCE_THREADS", None)

    @property
    def PROJECTION_PAIRS(self):
        """Products whose photos, distorted like a shopper's photo, teach the catalogue
        projection what to ignore (``reindex --fit-projection``); 0 fits the category stage
        only. Each costs a distortion and an embedding (1,000 take about 30 s on 2 cores)."""
        return self._setting("PROJECTION_PAIRS", 1000)


class IndexingSettings(AppSettings):
    """Embedding the catalogue and building its HNSW graphs."""

    @property
    def INDEX_BATCH_SIZE(self):
        """Images read, embedded and written together per committed batch of a reindex."""
        return self._setting("INDEX_BATCH_SIZE", 64)

    @property
    def INDEX_CHUNK_SIZE(self):
        """Products per chunk when a reindex job fans out over Celery workers
        (``LOOKALIKE_JOBS_BACKEND = "celery"``): each chunk is one task, embedded in
        batches of ``INDEX_BATCH_SIZE``. Small enough that a chunk lost with its worker
        costs little to redo, large enough that a chunk's task overhead does not show."""
        return self._setting("INDEX_CHUNK_SIZE", 256)

    @property
    def MAX_CATALOGUE_PIXELS(self):
        """Largest catalogue image in pixels (width x height); a larger one, or one whose
        decoding would take more memory than an RGB frame of this many pixels (4 bytes a
        pixel), becomes an ``IndexFailure`` and the reindex goes on. The default admits the
        61-megapixel originals of the largest full-frame cameras; decoding one takes up to
        256 MB once, and the batch keeps it reduced to under 2048 pixels a side."""
        return self._setting("MAX_CATALOGUE_PIXELS", 64_000_000)

    @property
    def MAX_CATALOGUE_BYTES(self):
        """Largest catalogue image file in bytes: a reindex reads no more of a file than
        this (and one byte), and a larger file becomes an ``IndexFailure``. The default
        admits the largest full-frame cameras' JPEGs (about 40 MB) and keeps a gigabyte file
        that landed in the product photos from being read into memory."""
        return self._setting("MAX_CATALOGUE_BYTES", 64 * 2**20)

    @property
    def INDEX_ON_SAVE(self):
        """Queue a stale reindex job after a product with a new or changed image is saved."""
        return self._setting("INDEX_ON_SAVE", True)

    @property
    def VERIFY_CHECKSUMS(self):
        """Whether ``reindex --stale`` re-hashes image files to find images replaced in place.

        Without it, only a changed image *name* (every upload gets a new one) marks a
        vector stale, which spares reading every file of a large catalogue."""
        return self._setting("VERIFY_CHECKSUMS", True)

    @property
    def HNSW_M(self):
        """``m`` of the HNSW graphs built from now on."""
        return self._setting("HNSW_M", 16)

    @property
    def HNSW_EF_CONSTRUCTION(self):
        """``ef_construction`` of the HNSW graphs built from now on."""
        return self._setting("HNSW_EF_CONSTRUCTION", 64)


class SearchSettings(AppSettings):
    """The search planner's knobs (see :mod:`visualsearch.search`), read once per search."""

    @property
    def EXACT_SEARCH_MAX_ROWS(self):
        """Filters matching at most this many products are searched exactly; above it the
        HNSW index is used. Categories with more vectors get their own graph."""
        return self._setting("EXACT_SEARCH_MAX_ROWS", 2000)

    @property
    def CATEGORY_EXACT_SEARCH_MAX_ROWS(self):
        """The exact-plan threshold inside a category that has its own graph: a narrow filter
        far from the query makes that graph's iterative scan check many rows per result."""
        return self._setting("CATEGORY_EXACT_SEARCH_MAX_ROWS", 1500)

    @property
    def CATEGORY_INDEXES(self):
        """Give each category with more than ``EXACT_SEARCH_MAX_ROWS`` vectors its own HNSW
        graph (``visualsearch.services.vector_index``); off: category filters walk the
        shared graph, slow and short of neighbours for a category far from the query."""
        return self._setting("CATEGORY_INDEXES", True)

    @property
    def SIGN_BITS(self):
        """Keep centred sign bits of the vectors (``visualsearch.services.sign_bits``) and
        rank selective category filters by them: a category filter of more than the exact
        thresholds and at most ``SIGN_BITS_MAX_ROWS`` products, far from the query, where a
        graph walk finds too few of its neighbours (a category alone that has its own graph
        walks it: it is not counted)."""
        return self._setting("SIGN_BITS", True)

    @property
    def SIGN_BITS_MAX_ROWS(self):
        """The largest filter ranked by sign bits (a Hamming distance a row, ~0.4 µs); a
        larger one walks the category's graph."""
        return self._setting("SIGN_BITS_MAX_ROWS", 20000)

    @property
    def SIGN_BITS_RERANK(self):
        """How many of the nearest by sign bits are compared in full: recall against
        latency. A far filter of 10,000 of a million products (``bench/similar_search.py``,
        database p95): 1,000 gave recall@10 0.938 in 10.8-11.6 ms, 2,000 gave 0.9795 in
        16.5, 3,000 gave 0.9905 in 19.2."""
        return self._setting("SIGN_BITS_RERANK", 2000)

    @property
    def EF_SEARCH(self):
        """``hnsw.ef_search`` of graph walks: recall against latency."""
        return self._setting("EF_SEARCH", 100)

    @property
    def CATEGORY_FAR_EF_SEARCH(self):
        """``hnsw.ef_search`` when "similar to a product" walks another category's graph
        than the product's, where many products are about equally far from the query."""
        return self._setting("CATEGORY_FAR_EF_SEARCH", 300)

    @property
    def MAX_SCAN_TUPLES(self):
        """``hnsw.max_scan_tuples``: how far an iterative index scan goes under a filter
        before the exact plan answers instead."""
        return self._setting("MAX_SCAN_TUPLES", 20000)

    @property
    def DIM_PHOTO_LEVEL(self):
        """A shopper's photo whose brightest pixels (99th percentile of luminance, 0-255)
        stay below this is taken as shot in dim light and has its levels stretched before
        it is searched (:mod:`visualsearch.exposure`); ``None`` switches that off."""
        return self._setting("DIM_PHOTO_LEVEL", 130)

    @property
    def BLOCKY_PHOTO_RATIO(self):
        """A shopper's photo whose luminance jumps this many times more across the 8-pixel
        JPEG block grid than inside the blocks is taken as heavily compressed and lightly
        blurred before it is searched (:mod:`visualsearch.deblocking`); ``None`` switches
        that off."""
        return self._setting("BLOCKY_PHOTO_RATIO", 2.2)

    @property
    def RERANK_CANDIDATES(self):
        """How many of a photo search's nearest products are re-ranked by the projection's
        invariant similarity (when it has one); 0 switches re-ranking off."""
        return self._setting("RERANK_CANDIDATES", 200)

    @property
    def CATEGORY_PRIOR(self):
        """Weight of the category prior in photo search: each candidate's score gains this
        times the log-probability, under the projection's classifier, that the photo shows
        a product of the candidate's category (0 switches it off). On the demo catalogue
        0.02 raised category precision@10 from 0.837 to 0.849 with every kind of shopper
        photo found as often within one photo; larger weights kept more results in the
        predicted category but lost photographed products whose category it got wrong. The
        classifier is fitted with the projection (``reindex --all --fit-projection``): a
        projection fitted by an earlier release has none, and photo search goes without; so
        does photo search without re-ranking (no shopper-photo pairs in the projection, or
        ``RERANK_CANDIDATES`` 0), whose scores are on another scale."""
        return self._setting("CATEGORY_PRIOR", 0.02)

    @property
    def CATEGORY_PRIOR_MARGIN(self):
        """Candidates whose score is within this of a view's best one take no category
        prior: a photo that matches a product that closely has found it, whatever the
        classifier says of its category."""
        return self._setting("CATEGORY_PRIOR_MARGIN", 0.1)

    @property
    def CLOSE_MATCH_SCORE(self):
        """A photo whose best match scores below this is told that nothing in the shop looks
        much like it (the page's notice, the API's ``close_match``); ``None`` never tells.
        Read on the scale of the projection's re-ranking only (without it, ``close_match``
        is ``None``). ``manage.py calibrate_close_match`` measures it on a shop's own
        catalogue and suggests the highest threshold that tells at most 2% of shoppers'
        photos of its products; on the demo catalogue that was 0.18, which told 0.79-0.80 of
        photos of no product (a surface, a plain wall, a hand alone) and 1.2-2.1% of the
        product photos, most of which had not found their product in the top 10 either."""
        return self._setting("CLOSE_MATCH_SCORE", 0.18)

    @property
    def VECTOR_CACHE_SIZE(self):
        """Stored vectors each process keeps in memory for the code that reads many at once
        (the widgets' blend, photo-search re-ranking), served while the vectors' stamp stands
        and checked against their rows otherwise (``VECTOR_CACHE_MAX_AGE``): 10,000 vectors
        of 1,280 dimensions take 50 MB. 0 turns it off."""
        return self._setting("VECTOR_CACHE_SIZE", 10_000)

    @property
    def VECTOR_CACHE_MAX_AGE(self):
        """Seconds a process serves its copy of a vector without asking the database, while
        no write through this project has changed any (the ``visualsearch.vectors`` stamp);
        the bound on how late a raw SQL write from elsewhere is seen."""
        return self._setting("VECTOR_CACHE_MAX_AGE", 60)


class PageSettings(AppSettings):
    """The shopper-facing pages and API: uploads, photo search, results."""

    @property
    def MAX_UPLOAD_BYTES(self):
        """Largest photo a shopper may upload, in bytes; larger files are refused with a 400."""
        return self._setting("MAX_UPLOAD_BYTES", 10 * 1024 * 1024)

    @property
    def MAX_PIXELS(self):
        """Largest photo in pixels (width x height), checked from the header before decoding
        so that a small file that inflates to gigabytes (a decompression bomb) is refused.

        It also bounds the memory one upload takes: decoding may use at most what a plain
        RGB frame of this many pixels takes (4 bytes a pixel, 160 MB at the default), so
        formats that need more to decode are held to fewer pixels (a progressive JPEG without
        chroma subsampling to about 26 MP, WebP to 10 MP; see ``visualsearch.imaging``)."""
        return self._setting("MAX_PIXELS", 40_000_000)

    @property
    def UPLOAD_FORMATS(self):
        """Pillow format names accepted for uploads; anything else is refused with a 400."""
        return self._setting("UPLOAD_FORMATS", ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"))

    @property
    def STORE_UPLOADS(self):
        """Keep a copy of every uploaded query photo in default storage (off: photos are
        searched in memory and forgotten)."""
        return self._setting("STORE_UPLOADS", False)

    @property
    def UPLOAD_DIR(self):
        """Folder in default storage for stored query photos (``STORE_UPLOADS``)."""
        return self._setting("UPLOAD_DIR", "visualsearch/uploads")

    @property
    def PHOTO_SEARCH_CONCURRENCY(self):
        """Photo searches one process decodes and embeds at once; others wait (see
        :mod:`visualsearch.concurrency`). With the encoder using every core, a few suffice,
        and they bound the memory photo search takes whatever the server's thread count."""
        return self._setting("PHOTO_SEARCH_CONCURRENCY", 4)

    @property
    def PHOTO_SEARCH_WAIT_SECONDS(self):
        """How long a photo search waits for a free slot before the shopper is asked to try
        again (503 with ``Retry-After``)."""
        return self._setting("PHOTO_SEARCH_WAIT_SECONDS", 20)

    @property
    def PREVIEW_SIZE(self):
        """Longest side, in pixels, of the photo shown back to the shopper for cropping; the
        crop box is chosen on that preview, which is what a cropped search uploads again."""
        return self._setting("PREVIEW_SIZE", 1024)

    @property
    def RESULTS(self):
        """How many similar products the results pages show."""
        return self._setting("RESULTS", 12)

    @property
    def THROTTLE_CACHE(self):
        """Alias (in ``CACHES``) of the cache that counts photo searches per client, for
        the page and the API together. It must be shared by every process that serves the
        shop (a database or Redis cache): a per-process local-memory cache gives each
        worker its own allowance. The rate is DRF's ``DEFAULT_THROTTLE_RATES["image_search"]``
        (see :mod:`visualsearch.throttling`)."""
        return self._setting("THROTTLE_CACHE", "default")

    @property
    def API_PRODUCT_VIEWSET(self):
        """Dotted path of the viewset serving ``/api/products/{id}/similar/``.

        A project that installs a recommender can serve a subclass that blends other
        signals into the visual neighbours (``recommendations`` provides one).
        """
        return self._setting("API_PRODUCT_VIEWSET", "visualsearch.api.views.ProductViewSet")


class VisualSearchSettings(EncoderSettings, IndexingSettings, SearchSettings, PageSettings):
    prefix = "VISUALSEARCH_"


app_settings = VisualSearchSettings()
