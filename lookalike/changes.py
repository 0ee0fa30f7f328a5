"""Which saves move the catalogue's stamp.

What every process keeps under the catalogue's stamp (:data:`lookalike.catalogue.CATALOGUE`:
kept search answers, candidates' categories, forms, a shop's navigation) is recomputed
everywhere once the stamp moves. Saving or deleting a product or a category moves it
always: those are a shop admin's edits, and rare.

The adapter's dependent models (:meth:`~lookalike.catalogue.CatalogueAdapter.
get_dependent_models`) are saved far more often: django-oscar allocates stock for every
order line and sends ``post_save`` for the stock record, so a stamp moved by each of those
saves would let nothing be kept longer than the time between two orders. Their changes
move the stamp only when they changed a product's *state*
(:meth:`~lookalike.catalogue.CatalogueAdapter.get_states`: its price, stock, category or
image as the plugins see them). The state each product was last recorded in is a short
digest in a table of its own (:class:`~lookalike.models.ProductState`); a product without
one counts as changed.

A change is checked twice, as :func:`lookalike.stamps.bump` writes twice: at once, inside
the saving transaction, moving the stamp if the state differs from the recorded one (what
this transaction shows next is fresh), and after the commit, which records the committed
states and moves the stamp again if they differ. The checks after commit hold a
PostgreSQL advisory lock while they read and record, so two transactions committing
changes of one product record the later state, never the earlier one after it. A
transaction saving many dependent rows runs one check after its commit for all their
products, and its checks at once stop after the first that moves the stamp.
"""

from __future__ import annotations

import hashlib
import logging

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, router, transaction
from django.db.models.signals import post_delete, post_save

from .catalogue import CATALOGUE, get_adapter
from .models import ProductState

__all__ = ["products_changed", "watch_catalogue"]

logger = logging.getLogger(__name__)

#: The advisory lock (``pg_advisory_xact_lock``, namespace and key) that serialises
#: recording states; apart from the jobs' locks (:mod:`lookalike.jobs.locks`).
LOCK = (0x4C53, 0)  # "LS"

_ABSENT = "-"  # the digest of a product that is not browsable


def _digest(state) -> str:
    return hashlib.blake2b(repr(state).encode(), digest_size=8).hexdigest()


def _database():
    return router.db_for_write(ProductState)


def _changed_digests(pks) -> dict:
    """``{key: digest}`` of the products among ``pks`` whose state differs from the
    recorded one."""
    states = get_adapter().get_states(pks)
    digests = {str(pk): _digest(states[pk]) if pk in states else _ABSENT for pk in pks}
    recorded = dict(
        ProductState.objects.using(_database())
        .filter(key__in=list(digests))
        .values_list("key", "digest")
    )
    return {key: digest for key, digest in digests.items() if recorded.get(key) != digest}


def _check_now(pks) -> bool:
    """Move the stamp if a product's state in this transaction differs from the recorded
    one; whether it moved."""
    if _changed_digests(pks):
        CATALOGUE.bump()
        return True
    return False


def _record(pks):
    """After a commit: record the products' committed states, and move the stamp if one
    differs from the recorded one."""
    alias = _database()
    try:
        with transaction.atomic(using=alias):
            with connections[alias].cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", LOCK)
            changed = _changed_digests(pks)
            if changed:
                ProductState.objects.using(alias).bulk_create(
                    [ProductState(key=key, digest=digest) for key, digest in changed.items()],
                    update_conflicts=True,
                    unique_fields=["key"],
                    update_fields=["digest"],
                )
                CATALOGUE.bump()
    except Exception:  # what changed is committed: never fail its request here
        logger.exception("Could not record the catalogue's states after a change.")
        CATALOGUE.bump()


class _PendingRecord:
    """The check after commit of one transaction, gathering its changed products."""

    def __init__(self):
        self.pks: set = set()
        self.bumped = False

    def __call__(self):
        _record(sorted(self.pks, key=str))


def _pending(connection):
    """The transaction's pending check that covers the current savepoint (one registered
    at this level or an outer one: a rolled-back savepoint drops the checks it
    registered), or a new one."""
    current = set(connection.savepoint_ids)
    for savepoints, callback, *_ in connection.run_on_commit:
        if isinstance(callback, _PendingRecord) and savepoints <= current:
            return callback
    pending = _PendingRecord()
    transaction.on_commit(pending, using=connection.alias)
    return pending


def products_changed(pks):
    """Something the adapter's states read changed for products ``pks``: move the
    catalogue's stamp if one of their states differs from the recorded one, now and once
    the transaction commits. Never raises: the save that called it goes on."""
    pks = [pk for pk in dict.fromkeys(pks) if pk is not None]
    if not pks:
        return
    alias = router.db_for_write(get_adapter().get_product_model())
    connection = connections[alias]
    if not connection.in_atomic_block:
        _record(pks)
        return
    pending = _pending(connection)
    pending.pks.update(pks)
    if pending.bumped:
        return
    try:
        with transaction.atomic(using=alias):  # a failing read must not abort the save's
            pending.bumped = _check_now(pks)
    except Exception:
        logger.exception("Could not check the catalogue's states after a change.")
        CATALOGUE.bump()
        pending.bumped = True


def _catalogue_changed(sender, **kwargs):
    CATALOGUE.bump()


def _product_deleted(sender, instance, **kwargs):
    """A deleted product's recorded state goes with it."""
    ProductState.objects.using(_database()).filter(key=str(instance.pk)).delete()


def _dependent_receiver(products_of):
    def changed(sender, instance, raw=False, **kwargs):
        if raw:  # fixtures: the rows they refer to may not be loaded yet
            CATALOGUE.bump()
            return
        try:
            pks = list(products_of(instance))
        except Exception:  # never break the save that triggered it
            logger.exception("Could not tell which products a %s change affects.", sender)
            CATALOGUE.bump()
            return
        products_changed(pks)

    return changed


def _connect(receiver, model):
    """``receiver`` on the saves and deletions of ``model``; weak=False: a receiver may be
    a closure that nothing else keeps alive."""
    for kind, signal in (("save", post_save), ("delete", post_delete)):
        signal.connect(
            receiver,
            sender=model,
            weak=False,
            dispatch_uid=f"lookalike.catalogue.{kind}.{model._meta.label_lower}",
        )


def watch_catalogue():
    """Move the catalogue's stamp whenever the product model or its category model is
    saved or deleted, and when a dependent model's save or deletion changes a product's
    state. A misconfigured adapter connects nothing: the system checks report it."""
    try:
        adapter = get_adapter()
        products = adapter.get_product_model()
        dependents = adapter.get_dependent_models()
        categories = adapter.get_category_queryset()
    except (ImproperlyConfigured, LookupError, ValueError):
        return
    always = [products] + ([categories.model] if categories is not None else [])
    for model in always:
        _connect(_catalogue_changed, model)
    post_delete.connect(
        _product_deleted, sender=products, weak=False, dispatch_uid="lookalike.product_state"
    )
    for model, products_of in dependents.items():
        model = apps.get_model(model) if isinstance(model, str) else model
        if model not in always:
            _connect(_dependent_receiver(products_of), model)
