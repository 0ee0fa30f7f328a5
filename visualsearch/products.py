"""The host's products as visual search needs them, asked of the catalogue adapter.

Visual search never reads a product field by name: which products are indexed, where their
images are and what their category and price are come from
:func:`lookalike.catalogue.get_adapter`. The helpers here turn the adapter's query
expressions into the few sets indexing and the vectors' copies need.
"""

from django.db import models
from django.db.models import Value

from lookalike.catalogue import CATALOGUE, IMAGE, get_adapter
from lookalike.querysets import as_sql
from lookalike.stamps import Stamped

_COPY_CATEGORY, _COPY_PRICE, _MAIN_CATEGORY = (
    "_lookalike_copy_category",
    "_lookalike_copy_price",
    "_lookalike_main_category",
)


def product_model():
    """The model named by ``LOOKALIKE_PRODUCT_MODEL``."""
    return get_adapter().get_product_model()


def with_images(queryset=None):
    """Indexed products (or ``queryset``) with their image's storage name attached as
    :data:`lookalike.catalogue.IMAGE`."""
    adapter = get_adapter()
    if queryset is None:
        queryset = adapter.get_indexed_queryset()
    return queryset.annotate(**{IMAGE: adapter.image_name_expression()})


def catalogue_sql():
    """``(sql, params)`` of every indexed product as ``(pk, image name)`` rows, to join with
    the vectors as ``(<sql>) p(pk, image)``."""
    return as_sql(with_images(), "pk", IMAGE)


def image_names(pks) -> dict:
    """``{pk: image name or None}`` of the indexed products among ``pks``."""
    return dict(with_images().filter(pk__in=list(pks)).values_list("pk", IMAGE))


def stands_for(key):
    """The key of the product searched in place of product ``key`` when that is another
    one (an Oscar variant's parent: :meth:`~lookalike.catalogue.CatalogueAdapter.
    get_canonical_keys`), else ``None``; asked only of a key the adapter does not show."""
    other = get_adapter().get_canonical_keys([key]).get(key, key)
    return None if other == key else other


def _with_copies(queryset):
    adapter = get_adapter()
    category = adapter.category_copy_expression()
    price = adapter.price_expression()
    return queryset.annotate(
        **{
            _COPY_CATEGORY: Value(None, output_field=models.BigIntegerField())
            if category is None
            else category,
            _COPY_PRICE: Value(None, output_field=models.FloatField()) if price is None else price,
        }
    )


def copies(pks) -> dict:
    """``{pk: (category, price)}`` as the vectors copy them (see
    :mod:`visualsearch.models`): the main category when the adapter's categories are
    exclusive and integer, else ``None``; the price as a double."""
    rows = (
        _with_copies(get_adapter().get_indexed_queryset().filter(pk__in=list(pks)))
        .order_by()
        .values_list("pk", _COPY_CATEGORY, _COPY_PRICE)
    )
    return {
        pk: (
            category if isinstance(category, int) else None,
            None if price is None else float(price),
        )
        for pk, category, price in rows
    }


def copies_sql(pks=None):
    """``(sql, params)`` of ``(pk, category, price)`` rows as :func:`copies` computes them,
    for every indexed product or those in ``pks``, to update the vectors in one statement."""
    queryset = get_adapter().get_indexed_queryset()
    if pks is not None:
        queryset = queryset.filter(pk__in=list(pks))
    return as_sql(_with_copies(queryset), "pk", _COPY_CATEGORY, _COPY_PRICE)


def main_categories(pks) -> dict:
    """``{pk: main category key}`` (absent without one), whatever the categories' kind:
    the labels the catalogue projection learns from."""
    adapter = get_adapter()
    expression = adapter.category_key_expression()
    if expression is None:
        return {}
    rows = (
        adapter.get_indexed_queryset()
        .filter(pk__in=list(pks))
        .annotate(**{_MAIN_CATEGORY: expression})
        .order_by()
        .values_list("pk", _MAIN_CATEGORY)
    )
    return {pk: category for pk, category in rows if category is not None}


class KeptCategories:
    """Products' main categories (:func:`main_categories`), kept per process under the
    catalogue's stamp (:data:`lookalike.catalogue.CATALOGUE`).

    Photo search's category prior asks for the categories of its 200-600 candidates on
    every photo, and the same catalogue products come back photo after photo; asked of the
    database, their ``IN`` list cost about 6 ms a photo on a 2-core machine. Saving a
    product or a category moves the stamp and every process asks again. A category changed
    by a queryset ``update()``, which sends no signal, is seen at the next save: the prior
    only nudges scores, and the results themselves are loaded fresh. At most ``limit``
    products are kept (the copies are dropped when it is passed).
    """

    def __init__(self, limit=100_000):
        self.store = Stamped(CATALOGUE.name, limit=limit)

    def get(self, pks) -> dict:
        """``{pk: main category key}`` of ``pks`` (absent without one)."""
        found = self.store.get_many(pks, main_categories)
        return {pk: category for pk, category in found.items() if category is not None}


#: The process's copy of candidates' main categories (photo search's category prior).
KEPT_CATEGORIES = KeptCategories()
