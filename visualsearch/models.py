"""Stored image embeddings and the images that could not be embedded.

Vectors of every encoder live in one table with an untyped ``vector`` column, because
encoders differ in dimension. Each encoder gets its own *partial expression* HNSW index,
``((embedding::vector(dim)) vector_cosine_ops) WHERE encoder = 'name'`` (see
:mod:`visualsearch.services.vector_index`), so vectors of two encoders are never compared
and a query only walks the graph of its own encoder.

Each row also carries a copy of its product's category (``product_category``), so that large
categories can have their own partial HNSW index (``... AND product_category = 7``): a filter on
a category far from the query defeats an iterative scan of the shared graph, but not a walk of
the category's own graph. The product table stays the truth: searches filter on it too, so a
stale copy can only cost a result, never show a product outside the filter.

The table keeps vectors up to ~8 KB inline in its pages (``toast_tuple_target = 8160``, set by
migration 0004) instead of in the TOAST table: the exact plan reads a few hundred vectors per
search, and fetching each from TOAST (an index probe and several chunks) cost three times as much.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone
from pgvector.django import VectorField

from jobs.models import Job


class ProductEmbedding(models.Model):
    product = models.ForeignKey(
        settings.LOOKALIKE_PRODUCT_MODEL,
        on_delete=models.CASCADE,
        related_name="visual_embeddings",
    )
    encoder = models.CharField(max_length=64)
    weights_hash = models.CharField(
        max_length=64, help_text="Encoder weights the vector came from; others make it stale."
    )
    image_name = models.CharField(
        max_length=255, help_text="Storage name of the image; a new upload gets a new name."
    )
    image_checksum = models.CharField(max_length=64, help_text="SHA-256 of the image bytes.")
    # No dimensions: encoders differ. Queries and indexes cast to the encoder's dimension.
    embedding = VectorField()
    # Copy of the product's category pk (see the module docstring); kept in step by indexing
    # and the product save signal, and by ``vector_index.sync_categories`` (run by every
    # ``reindex --stale``) after bulk edits.
    product_category = models.BigIntegerField(null=True, blank=True, editable=False)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["product", "encoder"], name="visualsearch_embedding_product_encoder"
            )
        ]
        indexes = [
            models.Index(fields=["encoder", "computed_at"]),
            # Sizes of the categories, to decide which ones get their own HNSW index.
            models.Index(fields=["encoder", "product_category"], name="visualsearch_emb_category"),
        ]

    def __str__(self):
        return f"{self.encoder} vector of product {self.product_id}"


class IndexFailure(models.Model):
    """A product image that could not be embedded; retried once its image changes."""

    product = models.ForeignKey(
        settings.LOOKALIKE_PRODUCT_MODEL,
        on_delete=models.CASCADE,
        related_name="visual_index_failures",
    )
    encoder = models.CharField(max_length=64)
    image_name = models.CharField(max_length=255)
    image_checksum = models.CharField(
        max_length=64, blank=True, help_text="Empty when the file itself could not be read."
    )
    reason = models.TextField()
    failed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["product", "encoder"], name="visualsearch_failure_product_encoder"
            )
        ]

    def __str__(self):
        return f"product {self.product_id} ({self.encoder}): {self.reason}"


class IndexJob(Job):
    """Reindex jobs, the ``jobs.Job`` rows with the reindex lock key.

    A proxy, so that the "Visual index" admin page has its own place in the admin and its
    own ``visualsearch.reindex`` permission; the rows stay in the shared jobs table.
    """

    class Meta:
        proxy = True
        verbose_name = "visual index"
        verbose_name_plural = "visual index"
        permissions = [("reindex", "Can start and resume visual reindexing")]
