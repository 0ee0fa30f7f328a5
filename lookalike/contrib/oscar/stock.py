"""How Oscar's stock records price and supply a product, as query expressions.

Oscar keeps price and stock on the partners' ``StockRecord`` rows, and a product with
variants (a *parent*) has none of its own: its public children's records stand for it.
:class:`~.adapter.OscarCatalogueAdapter` builds its price, currency and stock expressions
from the pieces here, so that all three read the records the same way.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Coalesce

__all__ = ["PARENT", "available", "buyable", "by_structure", "cheapest_first", "records_of"]

#: Oscar's value of ``Product.structure`` for a product with variants.
PARENT = "parent"


def records_of(records, product_ref):
    """``(own, children)``: the records that price and supply the product, its own, and
    for a parent those of its public children (what Oscar's strategies read, through
    ``get_public_children()``). ``records`` is the ``StockRecord`` manager."""
    own = records.filter(product=product_ref)
    children = records.filter(product__parent=product_ref, product__is_public=True)
    return own, children


def by_structure(own, children, output_field):
    """``children`` for a parent, ``own`` for any other product."""
    return Case(When(structure=PARENT, then=children), default=own, output_field=output_field)


def buyable(of_children):
    """The condition on a record that the product (or variant) can be bought from it now, as
    Oscar's default availability policy (``StockRequired``) decides: a net stock level
    (``num_in_stock - num_allocated``) above zero, or a product class that tracks no stock.
    A child has no product class of its own: its parent's says whether stock counts."""
    track = "product__parent__" if of_children else "product__"
    in_stock = Q(num_in_stock__gt=Coalesce(F("num_allocated"), Value(0)))
    return in_stock | Q(**{f"{track}product_class__track_stock": False})


def cheapest_first(records, of_children):
    """The priced ``records``, those the product can be bought from now first, each group
    cheapest first: a "from" price is never a sold-out variant's while another is for sale."""
    sold_out = Case(
        When(buyable(of_children), then=Value(0)),
        default=Value(1),
        output_field=models.IntegerField(),
    )
    return (
        records.filter(price__isnull=False)
        .annotate(lookalike_sold_out=sold_out)
        .order_by("lookalike_sold_out", "price", "pk")
    )


def available(row):
    """Whether a record, read as a dict of its fields, has stock to sell, as :func:`buyable`
    reads it (a product class that tracks no stock makes every record available; a save of
    the record cannot change that)."""
    return row["num_in_stock"] is not None and row["num_in_stock"] > (row["num_allocated"] or 0)
