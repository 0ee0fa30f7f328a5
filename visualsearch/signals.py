"""Products get vectors without anyone running a command.

Saving a product whose image is new or changed queues one coalesced stale reindex job once
the transaction commits; nothing is embedded inside the request. A transaction saving
thousands of products queues a single job.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models.signals import post_save

from .conf import app_settings

logger = logging.getLogger(__name__)


def connect():
    post_save.connect(
        product_saved,
        sender=app_settings.PRODUCT_MODEL,
        dispatch_uid="visualsearch.product_saved",
    )


def product_saved(sender, instance, created=False, raw=False, update_fields=None, **kwargs):
    if raw:
        return
    if not created:
        _sync_copies(instance, update_fields)
    if not app_settings.INDEX_ON_SAVE:
        return
    image_attr = app_settings.PRODUCT_FIELDS["image"]
    if update_fields is not None and image_attr not in update_fields:
        return
    image = getattr(instance, image_attr)
    name = image.name if image else ""
    if not _needs_index(instance.pk, name, created):
        return
    queue_stale_reindex()


def _sync_copies(instance, update_fields):
    """Keep the vectors' copies of category and price (for the category indexes and the
    filter btrees) in step; one UPDATE that changes nothing unless one of them changed."""
    from .models import ProductEmbedding
    from .products import filter_copies

    fields = app_settings.PRODUCT_FIELDS
    category_field = instance._meta.get_field(fields["category"])
    price_field = instance._meta.get_field(fields["price"])
    if update_fields is not None and not {category_field.name, price_field.name} & set(
        update_fields
    ):
        return
    category, price = filter_copies(
        getattr(instance, category_field.attname), getattr(instance, price_field.attname)
    )
    ProductEmbedding.objects.filter(product_id=instance.pk).exclude(
        product_category=category, product_price=price
    ).update(product_category=category, product_price=price)


def _needs_index(pk, name, created):
    from .models import IndexFailure, ProductEmbedding

    if created:
        return bool(name)
    encoder = app_settings.ENCODER
    stored = (
        ProductEmbedding.objects.filter(product_id=pk, encoder=encoder)
        .values_list("image_name", flat=True)
        .first()
    )
    if not name:
        return stored is not None  # the image was removed: forget its vector
    if stored == name:
        return False
    return not IndexFailure.objects.filter(product_id=pk, encoder=encoder, image_name=name).exists()


def queue_stale_reindex(using=None):
    """Queue a stale reindex after commit, once per transaction."""
    connection = transaction.get_connection(using)
    if connection.in_atomic_block and any(
        entry[1] is _start_stale_job for entry in connection.run_on_commit
    ):
        return
    transaction.on_commit(_start_stale_job, using=using)


def _start_stale_job():
    from lookalike.jobs.services import JobAlreadyRunning

    from .services.jobs import start_reindex

    try:
        start_reindex("stale", coalesce=True)
    except JobAlreadyRunning:
        # A running stale job re-checks for changes before it finishes (STALE_PASSES).
        pass
    except Exception:  # never break the save that triggered it
        logger.exception("Could not queue a visual reindex job.")
