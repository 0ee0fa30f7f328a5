"""lookalike.querysets.as_sql: an adapter's queryset as a sub-query of a vector search."""

import pytest
from django.db import connection

from lookalike.querysets import as_sql
from shop.models import Product

pytestmark = pytest.mark.django_db


def rows(sql, params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def test_a_queryset_becomes_its_rows(product_factory):
    product = product_factory(title="Kept")
    product_factory(title="Left out")
    assert rows(*as_sql(Product.objects.filter(title="Kept"), "pk", "title")) == [
        (product.pk, "Kept")
    ]


def test_a_queryset_that_can_match_nothing_is_a_statement_of_no_row(product_factory):
    """Django compiles no SQL for ``none()`` (an adapter's filter on a category that cannot
    hold products does that); the search splices the sub-query in all the same."""
    product_factory()
    sql, params = as_sql(Product.objects.none(), "pk", "title")
    assert rows(sql, params) == []
    inner = as_sql(Product.objects.none(), "pk")
    assert rows(f"SELECT count(*) FROM shop_product WHERE id IN ({inner[0]})", inner[1]) == [(0,)]
