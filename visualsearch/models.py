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

Each row also copies its product's price (``product_price``), and a btree over
``(encoder, product_category, product_price)`` (and ``(encoder, product_price)``) makes a
selective filter a range scan of the vectors themselves: the exact plan reads each matching
vector once, where finding it through the product table cost an index probe per row, about
twice as much. The copies only choose candidates; every result is checked against the
product table.

The table keeps vectors up to ~8 KB inline in its pages (``toast_tuple_target = 8160``, set by
migration 0004) instead of in the TOAST table: the exact plan reads a few hundred vectors per
search, and fetching each from TOAST (an index probe and several chunks) cost three times as much.

Each row may also carry its vector's *centred sign bits* (``signs``: one bit a dimension, set
where the vector exceeds the mean of its encoder's vectors, :class:`VectorCentre`), which a
covering btree keeps beside the copies of category and price. A filter too selective for any
graph but too large to compare in full is then one index-only range scan that ranks by
Hamming distance, the nearest few re-ranked in full (:mod:`visualsearch.services.sign_bits`).
"""

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from pgvector.django import BitField, VectorField

from lookalike.conf import app_settings as lookalike_settings
from lookalike.jobs.models import Job


class SignBitsField(BitField):
    """A bit string of any length (``bit varying``): encoders differ in dimension, and
    pgvector's ``bit`` without a length would hold a single bit."""

    def db_type(self, connection):
        return "bit varying"


class ProductEmbedding(models.Model):
    # No index of its own: the unique (product, encoder) btree starts with the product, so it
    # serves the cascade and every lookup by product, and each write updates one btree less.
    product = models.ForeignKey(
        lookalike_settings.product_model_reference(),
        on_delete=models.CASCADE,
        related_name="visual_embeddings",
        verbose_name=_("product"),
        db_index=False,
    )
    encoder = models.CharField(_("encoder"), max_length=64)
    weights_hash = models.CharField(
        _("weights hash"),
        max_length=64,
        help_text=_("Encoder weights the vector came from; others make it stale."),
    )
    image_name = models.CharField(
        _("image name"),
        max_length=255,
        help_text=_("Storage name of the image; a new upload gets a new name."),
    )
    image_checksum = models.CharField(
        _("image checksum"), max_length=64, help_text=_("SHA-256 of the image bytes.")
    )
    # No dimensions: encoders differ. Queries and indexes cast to the encoder's dimension.
    embedding = VectorField(_("embedding"))
    # Copy of the product's category pk (see the module docstring); kept in step by indexing
    # and the product save signal, and by ``vector_index.sync_copies`` (run by every
    # ``reindex --stale``) after bulk edits.
    product_category = models.BigIntegerField(
        _("product category"), null=True, blank=True, editable=False
    )
    # Copy of the product's price (a double: rounding is monotonic, so a range on the copy
    # keeps every product in the same range on the product table), kept in step likewise.
    product_price = models.FloatField(_("product price"), null=True, blank=True, editable=False)
    # Centred sign bits of the vector (see the module docstring); NULL until its weights
    # have a centre.
    signs = SignBitsField(_("sign bits"), null=True, blank=True, editable=False)
    computed_at = models.DateTimeField(_("computed at"), default=timezone.now)

    class Meta:
        verbose_name = _("product embedding")
        verbose_name_plural = _("product embeddings")
        constraints = [
            models.UniqueConstraint(
                fields=["product", "encoder"], name="visualsearch_embedding_product_encoder"
            )
        ]
        indexes = [
            models.Index(fields=["encoder", "computed_at"]),
            # Selective filters scanned exactly, and the sizes of the categories (to decide
            # which ones get their own HNSW index), from the vectors' copies.
            models.Index(
                fields=["encoder", "product_category", "product_price"],
                name="visualsearch_emb_cat_price",
            ),
            models.Index(fields=["encoder", "product_price"], name="visualsearch_emb_price"),
            # The sign-bits plan: a range of category and price read from the index alone.
            models.Index(
                fields=["encoder", "product_category", "product_price"],
                include=["product_id", "signs", "weights_hash"],
                condition=models.Q(signs__isnull=False),
                name="visualsearch_emb_signs",
            ),
        ]

    def __str__(self):
        return gettext("%(encoder)s vector of product %(product)s") % {
            "encoder": self.encoder,
            "product": self.product_id,
        }


class VectorCentre(models.Model):
    """The mean of an encoder's vectors made by one set of weights: the point the sign bits
    of those vectors are taken around (:mod:`visualsearch.services.sign_bits`).

    Computed once per weights (the catalogue's mean moves little as it grows) and never
    changed, so every stored sign bit of those weights stays comparable with a query's.
    """

    encoder = models.CharField(_("encoder"), max_length=64)
    weights_hash = models.CharField(_("weights hash"), max_length=64)
    centre = VectorField(_("centre"))
    vectors = models.PositiveIntegerField(
        _("vectors"), help_text=_("How many vectors the mean was taken over.")
    )
    computed_at = models.DateTimeField(_("computed at"), default=timezone.now)

    class Meta:
        verbose_name = _("vector centre")
        verbose_name_plural = _("vector centres")
        constraints = [
            models.UniqueConstraint(
                fields=["encoder", "weights_hash"], name="visualsearch_centre_encoder_weights"
            )
        ]

    def __str__(self):
        return ngettext(
            "%(encoder)s centre of %(count)s vector",
            "%(encoder)s centre of %(count)s vectors",
            self.vectors,
        ) % {"encoder": self.encoder, "count": self.vectors}


class IndexFailure(models.Model):
    """A product image that could not be embedded; retried once its image changes."""

    product = models.ForeignKey(
        lookalike_settings.product_model_reference(),
        on_delete=models.CASCADE,
        related_name="visual_index_failures",
        verbose_name=_("product"),
    )
    encoder = models.CharField(_("encoder"), max_length=64)
    image_name = models.CharField(_("image name"), max_length=255)
    image_checksum = models.CharField(
        _("image checksum"),
        max_length=64,
        blank=True,
        help_text=_("Empty when the file itself could not be read."),
    )
    reason = models.TextField(_("reason"))
    failed_at = models.DateTimeField(_("failed at"), default=timezone.now)

    class Meta:
        verbose_name = _("index failure")
        verbose_name_plural = _("index failures")
        constraints = [
            models.UniqueConstraint(
                fields=["product", "encoder"], name="visualsearch_failure_product_encoder"
            )
        ]

    def __str__(self):
        return gettext("Product %(product)s (%(encoder)s): %(reason)s") % {
            "product": self.product_id,
            "encoder": self.encoder,
            "reason": self.reason,
        }


class IndexJob(Job):
    """Reindex jobs, the ``jobs.Job`` rows with the reindex lock key.

    A proxy, so that the "Visual index" admin page has its own place in the admin and its
    own ``visualsearch.reindex`` permission; the rows stay in the shared jobs table.
    """

    class Meta:
        proxy = True
        verbose_name = _("visual index")
        verbose_name_plural = _("visual index")
        permissions = [("reindex", _("Can start and resume visual reindexing"))]
