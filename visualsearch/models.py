"""Stored image embeddings and the images that could not be embedded.

Vectors of every encoder live in one table with an untyped ``vector`` column, because
encoders differ in dimension. Each encoder gets its own *partial expression* HNSW index,
``((embedding::vector(dim)) vector_cosine_ops) WHERE encoder = 'name'`` (see
:mod:`visualsearch.services.vector_index`), so vectors of two encoders are never compared
and a query only walks the graph of its own encoder.
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
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["product", "encoder"], name="visualsearch_embedding_product_encoder"
            )
        ]
        indexes = [models.Index(fields=["encoder", "computed_at"])]

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
