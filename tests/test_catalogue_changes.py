"""A change reported by a dependent model moves the catalogue's stamp only when it changed
what the plugins keep of a product (lookalike.changes), and never misses one that did.

The reference shop has no dependent model (its price and stock are the product's own
fields), so these tests change a product with a queryset ``update()`` (no signal) and
report the change as a dependent model's receiver would. django-oscar's stock records are
tested in tests/hosts/oscar."""

from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from lookalike import changes
from lookalike.catalogue import CATALOGUE, get_adapter
from lookalike.models import ProductState
from lookalike.stamps import current as current_stamp
from shop.models import Product
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def stamp():
    return current_stamp(CATALOGUE.name)


@pytest.fixture
def product():
    return ProductFactory(price=Decimal("10.00"), stock=3)


def report(pks, capture):
    """Report a change of ``pks`` in a transaction of its own, run its check after commit,
    and say whether the stamp moved."""
    before = stamp()
    with capture(execute=True):
        with transaction.atomic():
            changes.products_changed(pks)
    return stamp() != before


def test_a_first_change_moves_the_stamp_and_an_unchanged_product_does_not(
    product, django_capture_on_commit_callbacks
):
    assert report([product.pk], django_capture_on_commit_callbacks)  # nothing recorded yet
    assert ProductState.objects.filter(key=str(product.pk)).exists()
    # Reported again without a change (an order that leaves it in stock): kept values stay.
    assert not report([product.pk], django_capture_on_commit_callbacks)


@pytest.mark.parametrize(
    "change",
    [{"price": Decimal("12.00")}, {"stock": 0}, {"is_active": False}],
    ids=["price", "sold out", "hidden"],
)
def test_a_changed_state_moves_the_stamp(product, change, django_capture_on_commit_callbacks):
    report([product.pk], django_capture_on_commit_callbacks)
    Product.objects.filter(pk=product.pk).update(**change)  # no signal
    assert report([product.pk], django_capture_on_commit_callbacks)
    assert not report([product.pk], django_capture_on_commit_callbacks)


def test_a_change_rolled_back_is_not_recorded(product, django_capture_on_commit_callbacks):
    report([product.pk], django_capture_on_commit_callbacks)
    before = stamp()
    with pytest.raises(RuntimeError), transaction.atomic():
        Product.objects.filter(pk=product.pk).update(price=Decimal("12.00"))
        changes.products_changed([product.pk])
        assert stamp() != before  # moved at once: this transaction sees the new price
        raise RuntimeError("rolled back")
    # The same change made for real later must still move the stamp: the rolled-back one
    # left the recorded state as it was.
    Product.objects.filter(pk=product.pk).update(price=Decimal("12.00"))
    assert report([product.pk], django_capture_on_commit_callbacks)


def test_one_check_after_commit_for_a_transaction_of_many_changes(
    django_capture_on_commit_callbacks,
):
    products = ProductFactory.create_batch(5)
    pks = [p.pk for p in products]
    with django_capture_on_commit_callbacks() as callbacks:
        with transaction.atomic():
            with CaptureQueriesContext(connection) as queries:
                for pk in pks:
                    changes.products_changed([pk])
    pending = [c for c in callbacks if isinstance(c, changes._PendingRecord)]
    assert len(pending) == 1 and pending[0].pks == set(pks)
    # The first change moved the stamp at once; the others read nothing more.
    state_reads = [q for q in queries.captured_queries if "lookalike_productstate" in q["sql"]]
    assert len(state_reads) == 1
    before = stamp()
    pending[0]()
    assert stamp() != before
    assert set(ProductState.objects.values_list("key", flat=True)) >= {str(pk) for pk in pks}


def test_a_change_in_a_rolled_back_savepoint_keeps_the_outer_check(
    product, django_capture_on_commit_callbacks
):
    """The check registered inside a savepoint that rolls back is dropped with it; a change
    the outer transaction reports afterwards gets a check of its own."""
    other = ProductFactory()
    with django_capture_on_commit_callbacks() as callbacks:
        with transaction.atomic():
            with pytest.raises(RuntimeError), transaction.atomic():
                changes.products_changed([other.pk])
                raise RuntimeError("rolled back")
            changes.products_changed([product.pk])
    pending = [c for c in callbacks if isinstance(c, changes._PendingRecord)]
    assert [c.pks for c in pending] == [{product.pk}]


def test_states_follow_the_adapter(product):
    state = get_adapter().get_states([product.pk])[product.pk]
    Product.objects.filter(pk=product.pk).update(stock=0)
    assert get_adapter().get_states([product.pk])[product.pk] != state
    Product.objects.filter(pk=product.pk).update(is_active=False)
    assert get_adapter().get_states([product.pk]) == {}  # not browsable


def test_a_deleted_product_takes_its_state_along(product, django_capture_on_commit_callbacks):
    report([product.pk], django_capture_on_commit_callbacks)
    product.delete()
    assert not ProductState.objects.filter(key=str(product.pk)).exists()


def test_a_failing_check_moves_the_stamp_and_keeps_the_save(
    product, monkeypatch, django_capture_on_commit_callbacks
):
    def broken(self, keys):
        raise RuntimeError("adapter down")

    monkeypatch.setattr(type(get_adapter()), "get_states", broken)
    with transaction.atomic():
        Product.objects.filter(pk=product.pk).update(price=Decimal("11.00"))
        before = stamp()
        changes.products_changed([product.pk])
        assert stamp() != before
    product.refresh_from_db()
    assert product.price == Decimal("11.00")
