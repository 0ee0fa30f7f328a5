"""Settings of the visual-search app, read from Django settings on every access.

Each setting is a property so that ``override_settings`` and pytest-django's
``settings`` fixture take effect at once; nothing is copied into module constants.
All names carry the ``VISUALSEARCH_`` prefix in the project's settings.
"""

from pathlib import Path


class AppSettings:
    prefix = "VISUALSEARCH_"

    def _setting(self, name, default):
        from django.conf import settings

        return getattr(settings, self.prefix + name, default)

    # -- encoders ----------------------------------------------------------------
    @property
    def ENCODER(self):
        """Name of the encoder that indexing and search use (see ``visualsearch.encoders``)."""
        return self._setting("ENCODER", "efficientnet_lite0")

    @property
    def WEIGHTS(self):
        """Optional ``{encoder name: path to a local weights file}`` for torchvision backbones."""
        return self._setting("WEIGHTS", {})

    @property
    def ARTIFACT_DIR(self):
        """Where exported inference models and learned projections are cached."""
        from django.conf import settings

        default = Path(getattr(settings, "VAR_DIR", Path.cwd() / "var")) / "models"
        return Path(self._setting("ARTIFACT_DIR", default))

    @property
    def PROJECTION_PAIRS(self):
        """Products whose photos, distorted like a shopper's photo, teach the catalogue
        projection what to ignore (``reindex --fit-projection``); 0 fits the category stage
        only. Each costs a distortion and an embedding: 1,000 take about 30 s on 2 cores,
        and gave nearly the robustness of 3,000 on the demo catalogue."""
        return self._setting("PROJECTION_PAIRS", 1000)

    @property
    def RERANK_CANDIDATES(self):
        """How many of a photo search's nearest products are re-ranked by the projection's
        invariant similarity (when it has one); 0 switches re-ranking off. On the demo
        catalogue 200 found the photographed product in the top 10 a little more often than
        100 (0.945 against 0.940 of 1,000 distorted photos)."""
        return self._setting("RERANK_CANDIDATES", 200)

    @property
    def BATCH_SIZE(self):
        return self._setting("BATCH_SIZE", 32)

    @property
    def RUNTIME(self):
        """How encoders run their network: ``"auto"`` (OpenVINO, else ONNX Runtime, else torch
        eager, whichever loads first), ``"openvino"``, ``"onnxruntime"`` or ``"torch"``."""
        return self._setting("RUNTIME", "auto")

    @property
    def INFERENCE_THREADS(self):
        """Intra-op threads for encoder inference; ``None`` uses every CPU core."""
        return self._setting("INFERENCE_THREADS", None)

    # -- uploads (search by photo, page and API) ------------------------------------
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

    # -- indexing and search (visualsearch.services) -------------------------------
    @property
    def ENCODERS(self):
        """Extra encoders, ``{name: "dotted.path.Class"}``, added to the built-in registry."""
        return self._setting("ENCODERS", {})

    @property
    def INDEX_BATCH_SIZE(self):
        """Images read, embedded and written together per committed batch of a reindex."""
        return self._setting("INDEX_BATCH_SIZE", 64)

    @property
    def MAX_CATALOGUE_PIXELS(self):
        """Largest catalogue image in pixels (width x height); a larger one, or one whose
        decoding would take more memory than an RGB frame of this many pixels (4 bytes a
        pixel), becomes an ``IndexFailure`` and the reindex goes on. The default admits the
        61-megapixel originals of the largest full-frame cameras; decoding one takes up to
        256 MB once, and the batch keeps it reduced to under 2048 pixels a side."""
        return self._setting("MAX_CATALOGUE_PIXELS", 64_000_000)

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
    def EXACT_SEARCH_MAX_ROWS(self):
        """Filters matching at most this many products are searched exactly (btree + scan);
        above it the HNSW index is used. Exact search costs a few microseconds per row."""
        return self._setting("EXACT_SEARCH_MAX_ROWS", 2000)

    @property
    def CATEGORY_EXACT_SEARCH_MAX_ROWS(self):
        """The exact-plan threshold for a filter inside a category that has its own HNSW
        index. That graph holds only the category, so its walk is cheap near the query, but
        a narrow filter far from it (a price band of another category) makes the iterative
        scan fetch and check ten times more candidates than it returns; the exact range
        scan over the vectors' copies reads each matching vector once."""
        return self._setting("CATEGORY_EXACT_SEARCH_MAX_ROWS", 1500)

    @property
    def CATEGORY_FAR_EF_SEARCH(self):
        """``hnsw.ef_search`` when "similar to a product" searches another category's own
        graph than the product's: the query lies outside that graph, where many products
        are about equally far, so the walk needs a wider beam (bench, 10k-vector categories,
        1280-d, queries from another category: recall@10 0.967 at 200, 0.978 at 250, 0.991
        at 300, 0.999 at 400, the walk's time growing about in proportion)."""
        return self._setting("CATEGORY_FAR_EF_SEARCH", 300)

    @property
    def CATEGORY_INDEXES(self):
        """Give each category with more than ``EXACT_SEARCH_MAX_ROWS`` vectors its own HNSW
        index (see ``visualsearch.services.vector_index``); off: category filters use the
        shared graph, where a category far from the query is slow and misses neighbours
        (recall@10 0.76 at 100k rows) before the exact fallback."""
        return self._setting("CATEGORY_INDEXES", True)

    @property
    def EF_SEARCH(self):
        """``hnsw.ef_search`` for index searches (recall against latency, see the bench)."""
        return self._setting("EF_SEARCH", 100)

    @property
    def MAX_SCAN_TUPLES(self):
        """``hnsw.max_scan_tuples``: how far an iterative index scan goes under a filter."""
        return self._setting("MAX_SCAN_TUPLES", 20000)

    @property
    def HNSW_M(self):
        return self._setting("HNSW_M", 16)

    @property
    def HNSW_EF_CONSTRUCTION(self):
        return self._setting("HNSW_EF_CONSTRUCTION", 64)

    @property
    def API_PRODUCT_VIEWSET(self):
        """Dotted path of the viewset serving ``/api/products/{id}/similar/``.

        A project that installs a recommender can serve a subclass that blends other
        signals into the visual neighbours (``recommendations`` provides one).
        """
        return self._setting("API_PRODUCT_VIEWSET", "visualsearch.api.views.ProductViewSet")


app_settings = AppSettings()
