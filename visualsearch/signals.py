"""Products get vectors without anyone running a command.

Saving a product whose image is new or changed queues one coalesced stale reindex job once
the transaction commits, or asks the reindex that is active to look for changes before it
finishes; nothing is embedded inside the request. A transaction saving thousands of
products queues a single job.

The catalogue adapter may name other models whose changes change a product (django-oscar's
stock records and product images, say: :meth:`~lookalike.catalogue.CatalogueAdapter.
get_dependent_models`); their saves and deletions are watched the same way. Every change
also brings the vectors' copies of category and price up to date (one UPDATE that writes
nothing unless a copy differs).
"""

from __future__ import annotations

import logging

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from lookalike.catalogue import get_adapter

from .conf import app_settings

logger = logging.getLogger(__name__)


def connect():
    try:
        adapter = get_adapter()
        adapter.get_product_model()
    except ImproperlyConfigured:
        return  # reported by the system checks (lookalike.checks), which must still run
    post_save.connect(
        product_saved,
        sender=adapter.get_product_model(),
        dispatch_uid="visualsearch.product_saved",
    )
    # The processes' copies of vectors (services.vectors) are good until a vector changes:
    # a deleted product takes its vectors with it, and a vector saved through the ORM (the
    # admin, a shop's own code) replaces one. No receiver on the vectors' deletion: it
    # would stop Django from deleting a product's vectors in one statement (it fetches
    # every row to send the signal), and the product's own deletion covers the cascade.
    post_delete.connect(
        _vectors_changed,
        sender=adapter.get_product_model(),
        dispatch_uid="visualsearch.product_deleted",
    )
    from .models import ProductEmbedding

    post_save.connect(
        _vectors_changed, sender=ProductEmbedding, dispatch_uid="visualsearch.embedding_saved"
    )
    for model, products_of in adapter.get_dependent_models().items():
        model = apps.get_model(model) if isinstance(model, str) else model
        receiver = _dependent_receiver(products_of)
        uid = f"visualsearch.dependent.{model._meta.label_lower}"
        # weak=False: the receiver is a closure that nothing else keeps alive.
        post_save.connect(receiver, sender=model, weak=False, dispatch_uid=uid + ".save")
        post_delete.connect(receiver, sender=model, weak=False, dispatch_uid=uid + ".delete")


def _dependent_receiver(products_of):
    def changed(sender, instance, raw=False, **kwargs):
        if raw:
            return
        try:
            pks = [pk for pk in products_of(instance) if pk is not None]
        except Exception:  # never break the save that triggered it
            logger.exception("Could not tell which products a %s change affects.", sender)
            return
        if pks:
            products_changed(pks)

    return changed


def _vectors_changed(sender, **kwargs):
    from .services.vectors import vectors_changed

    vectors_changed()


def product_saved(sender, instance, created=False, raw=False, update_fields=None, **kwargs):
    if raw:
        return
    products_changed([instance.pk], created=created)


def products_changed(pks, created=False):
    """Bring the products' vector copies up to date and queue a reindex if one of their
    images is new, changed or gone."""
    from .services.vector_index import sync_copies

    try:
        # A savepoint: a failure here must not break the transaction of the save.
        with transaction.atomic():
            if not created:
                sync_copies(product_ids=pks)
            needs_index = app_settings.INDEX_ON_SAVE and _needs_index(pks, created)
    except Exception:  # a product save never fails because of visual search
        logger.exception("Could not update the visual index after products %s changed.", pks)
        return
    if needs_index:
        queue_stale_reindex()


def _needs_index(pks, created):
    from .models import IndexFailure, ProductEmbedding
    from .products import image_names

    names = image_names(pks)
    if created:
        return any(names.values())
    encoder = app_settings.ENCODER
    stored = dict(
        ProductEmbedding.objects.filter(product_id__in=pks, encoder=encoder).values_list(
            "product_id", "image_name"
        )
    )
    failed = set(
        IndexFailure.objects.filter(product_id__in=pks, encoder=encoder).values_list(
            "product_id", "image_name"
        )
    )
    for pk in pks:
        name = names.get(pk) or ""
        if not name:
            if pk in stored:
                return True  # the image was removed: forget its vector
            continue
        if stored.get(pk) != name and (pk, name) not in failed:
            return True
    return False


def queue_stale_reindex(using=None):
    """Queue a stale reindex after commit, once per transaction."""
    connection = transaction.get_connection(using)
    if connection.in_atomic_block and any(
        entry[1] is _start_stale_job for entry in connection.run_on_commit
    ):
        return
    transaction.on_commit(_start_stale_job, using=using)


def _start_stale_job():
    from .indexing.jobs import request_stale_reindex

    try:
        # A stale job queued, or the active reindex asked to look for changes at its end.
        request_stale_reindex()
    except Exception:  # never break the save that triggered it
        logger.exception("Could not queue a visual reindex job.")
