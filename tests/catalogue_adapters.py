"""Custom catalogue adapters over the reference shop's products, for the system checks: a
minimal one that works, and the mistakes a host makes in its own (tests/test_catalogue.py)."""

from django.contrib.sessions.models import Session
from django.db.models import F

from lookalike.catalogue import CatalogueAdapter, FieldsCatalogueAdapter
from shop.models import Category, Product


class ShopAdapter(CatalogueAdapter):
    """What a host writes at the least: its products, their image, and prices and categories
    by expression."""

    def get_queryset(self):
        return Product.objects.filter(is_active=True)

    def get_indexed_queryset(self):
        return Product.objects.all()

    def image_name_expression(self):
        return F("image")

    def price_expression(self):
        return F("price")

    def category_key_expression(self):
        return F("category_id")

    def get_category_queryset(self):
        return Category.objects.all()


class NoImageAdapter(CatalogueAdapter):
    """Forgets the one method every adapter must define."""


class MissingFieldAdapter(ShopAdapter):
    """A price in cents, from a field the product model does not have."""

    def price_expression(self):
        return F("cost_cent") / 100


class MissingStockFieldAdapter(ShopAdapter):
    def filter_in_stock(self, queryset):
        return queryset.filter(quantity__gt=0)


class TextCategoryKeysAdapter(FieldsCatalogueAdapter):
    """Categories with text keys. Sessions stand in for them: the one model of the
    reference project with a text primary key."""

    def get_category_queryset(self):
        return Session.objects.all()

    def filter_category(self, queryset, key):
        return queryset.none()


class LedgerAdapter(FieldsCatalogueAdapter):
    """The reference shop's fields, with a stand-in dependent model whose saves can change
    nothing shown (tests/test_catalogue_changes.py): a job row plays a stock record, its
    ``done`` the stock level, available while above zero."""

    def get_dependent_models(self):
        from lookalike.jobs.models import Job

        return {Job: lambda job: []}

    def changes_nothing_shown(self, model, before, after):
        if before is None or after is None:
            return False
        others = [name for name in before if name not in ("done", "heartbeat_at")]
        if any(before[name] != after[name] for name in others):
            return False
        return (before["done"] > 0) == (after["done"] > 0)


class ShopAdapterWithLedger(FieldsCatalogueAdapter):
    """A dependent model, and no judgement of its saves: every one moves the stamp."""

    def get_dependent_models(self):
        from lookalike.jobs.models import Job

        return {Job: lambda job: []}


class CentsAdapter(FieldsCatalogueAdapter):
    """A shop whose price field holds cents: the price, read and filtered, is its own
    expression (the reference shop's prices stand in as cents)."""

    def price_expression(self):
        return F("price") / 100
