"""Which saves move the catalogue's stamp.

What every process keeps under the catalogue's stamp (:data:`lookalike.catalogue.CATALOGUE`:
kept search answers, candidates' categories, rendered cards, forms, a shop's navigation) is
recomputed everywhere once the stamp moves. Saving or deleting a product or a category moves
it, always: those are a shop admin's edits, and rare. So does deleting a row of one of the
adapter's dependent models (:meth:`~lookalike.catalogue.CatalogueAdapter.
get_dependent_models`), and saving one, unless the adapter says that the save changed
nothing the plugins read of any product (:meth:`~lookalike.catalogue.CatalogueAdapter.
changes_nothing_shown`).

That exception is for orders. django-oscar allocates stock for every order line and sends
``post_save`` for the stock record; a stamp moved by each of those saves would keep nothing
longer than the time between two orders. An allocation that leaves the record with stock
to sell changes no price, no stock flag, no category and no photo, so it moves nothing; the
one that sells the last item does, so that answers kept under an in-stock filter are
searched again and come back full.

A save is judged on the row as the database held it just before (read when ``pre_save`` is
sent, as Oscar does before its atomic ``update()``) and just after (read when ``post_save``
is sent, inside the saving transaction): two reads by primary key, only for the dependent
models of an adapter that overrides ``changes_nothing_shown``. Each save is judged on its
own change, so concurrent orders need no coordination: a product's stock flag can only
change through a save that changes a record's, and that save moves the stamp. The one
blind spot is a save that overwrites a concurrent change with the values it read first (a
lost update, already a bug in the shop's stock): it is judged against what it read.
"""

from __future__ import annotations

import logging

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import router
from django.db.models.signals import post_delete, post_save, pre_save

from .catalogue import CATALOGUE, CatalogueAdapter, get_adapter

__all__ = ["catalogue_changed", "watch_catalogue"]

logger = logging.getLogger(__name__)

#: Where ``pre_save`` leaves the row as it was, for ``post_save`` (on the instance).
_BEFORE = "_lookalike_row_before_save"


def _row(model, pk) -> dict | None:
    """The row ``pk`` of ``model`` as the primary holds it (in the caller's transaction),
    ``{attname: value}``; ``None`` when there is none."""
    fields = [field.attname for field in model._meta.concrete_fields]
    database = router.db_for_write(model)
    return model._base_manager.using(database).filter(pk=pk).values(*fields).first()


def catalogue_changed():
    """Tell every process that the catalogue changed without a model save: call it after a
    queryset ``update()`` or ``bulk_update()``, ``bulk_create()``, raw SQL or an import that
    changed what the plugins show of products (stock, prices, categories, visibility,
    photos), in the transaction that made the change or after it. What each process keeps
    under the catalogue's stamp (search answers, cards, navigation) is computed again at its
    next request. Without it, a kept answer that shows a product no longer shown is noticed
    and searched again (:func:`visualsearch.search.remembered.still_current`), but a product
    that became shown, or a price or stock badge on a kept card, waits for the next save."""
    CATALOGUE.bump()


def _catalogue_changed(sender, **kwargs):
    catalogue_changed()


def _remember_row(sender, instance, raw=False, **kwargs):
    if raw or instance._state.adding or instance.pk is None:
        return
    try:
        instance.__dict__[_BEFORE] = _row(sender, instance.pk)
    except Exception:  # never break the save: judged as a change that can bring products in
        logger.exception("Could not read a %s row before its save.", sender)


def _dependent_saved(sender, instance, raw=False, **kwargs):
    before = instance.__dict__.pop(_BEFORE, None)
    if not raw and before is not None:
        try:
            if get_adapter().changes_nothing_shown(sender, before, _row(sender, instance.pk)):
                return
        except Exception:  # never break the save; the stamp moves instead
            logger.exception("Could not judge a %s save.", sender)
    CATALOGUE.bump()


def _connect(receiver, model, kinds):
    """``receiver`` on the signals ``kinds`` of ``model``; weak=False, as it lives as long
    as the process."""
    signals = {"pre_save": pre_save, "save": post_save, "delete": post_delete}
    for kind in kinds:
        signals[kind].connect(
            receiver,
            sender=model,
            weak=False,
            dispatch_uid=f"lookalike.catalogue.{kind}.{model._meta.label_lower}",
        )


def watch_catalogue():
    """Move the catalogue's stamp whenever the product model, its category model or a
    dependent model is saved or deleted, except for saves of a dependent model that change
    nothing shown (module docstring). A misconfigured adapter connects nothing: the
    system checks report it."""
    try:
        adapter = get_adapter()
        products = adapter.get_product_model()
        dependents = adapter.get_dependent_models()
        categories = adapter.get_category_queryset()
    except (ImproperlyConfigured, LookupError, ValueError):
        return
    always = [products] + ([categories.model] if categories is not None else [])
    for model in always:
        _connect(_catalogue_changed, model, ("save", "delete"))
    judged = type(adapter).changes_nothing_shown is not CatalogueAdapter.changes_nothing_shown
    for model in dependents:
        model = apps.get_model(model) if isinstance(model, str) else model
        if model in always:
            continue
        _connect(_catalogue_changed, model, ("delete",))
        if judged:
            _connect(_remember_row, model, ("pre_save",))
            _connect(_dependent_saved, model, ("save",))
        else:
            _connect(_catalogue_changed, model, ("save",))
