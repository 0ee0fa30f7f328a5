"""What a reindex did: :class:`Report`, counted batch by batch while it runs, and the
``dict`` the commands, the admin and the job row read (:meth:`Report.as_dict`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields


@dataclass
class Report:
    """The counts of one reindex run.

    A field left at ``None`` belongs to another kind of run and is left out of
    :meth:`as_dict`: ``copies_synced`` is a plain or fanned-out reindex's, ``projection``
    to ``pairs`` a projection fit's, ``no_image`` and ``no_image_ids`` every mode's but
    ``"ids"``, ``chunks`` and ``deliveries`` a fanned-out reindex's.
    """

    mode: str
    encoder: str
    candidates: int = 0
    embedded: int = 0
    failed: int = 0
    #: Products that lost their image or were deleted meanwhile, or whose batch was
    #: embedded by two versions of the weights (they stay stale).
    skipped: int = 0
    #: Vectors of products that no longer have an image or are no longer indexed.
    removed: int = 0
    copies_synced: int | None = None
    projection: str | None = None
    fitted_on: int | None = None
    categories: int | None = None
    pairs: int | None = None
    no_image: int | None = None
    no_image_ids: list | None = None
    chunks: int | None = None
    deliveries: int | None = None
    #: What :func:`~visualsearch.indexing.service.ensure_indexes` made: ``index_created``
    #: (``None`` when the index was there) and ``category_indexes_created``.
    indexes: dict = field(default_factory=dict)
    seconds: float | None = None

    def count(self, batch):
        """Add one batch (:class:`~visualsearch.indexing.pipeline.EmbeddedBatch`)."""
        self.embedded += len(batch.images)
        self.failed += len(batch.failures)
        self.skipped += batch.skipped

    def as_dict(self) -> dict:
        """The result the reindex functions return, its keys in the order of the fields
        (the job row and the log show them so)."""
        result = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "indexes":
                result.update(value)
            elif value is not None:
                result[item.name] = value
        return result
