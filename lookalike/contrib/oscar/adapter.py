"""The catalogue adapter for django-oscar's own models.

``LOOKALIKE_CATALOGUE_ADAPTER = "lookalike.contrib.oscar.adapter.OscarCatalogueAdapter"``
with ``LOOKALIKE_PRODUCT_MODEL = "catalogue.Product"``. Every model is looked up with
:func:`oscar.core.loading.get_model`, so a shop that forked Oscar's ``catalogue`` or
``partner`` app gets its own models (they keep the labels and the abstract models' fields).

Oscar keeps what the plugins need outside the product row: images in ``ProductImage``,
categories in a treebeard tree joined through ``ProductCategory``, prices and stock in the
partners' ``StockRecord`` rows, and for a product with variants (a *parent*) on its
*children*. Each is one query expression or one filter here, so a grid of cards is still
one query (:meth:`OscarCatalogueAdapter.annotate`) and a filtered search still runs where
the data is.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.aggregates import StringAgg
from django.core.exceptions import ImproperlyConfigured
from django.db import models, router
from django.db.models import Exists, F, OuterRef, Subquery, Value

from lookalike.catalogue import CatalogueAdapter
from lookalike.conf import app_settings

from .stock import available, buyable, by_structure, cheapest_first, records_of

__all__ = ["OscarCatalogueAdapter"]

#: Values :meth:`OscarCatalogueAdapter.annotate` attaches besides the base class's.
CATEGORY_LABEL, CURRENCY, IN_STOCK = (
    "_lookalike_oscar_category_label",
    "_lookalike_oscar_currency",
    "_lookalike_oscar_in_stock",
)


class OscarCatalogueAdapter(CatalogueAdapter):
    """django-oscar's catalogue as the plugins see it.

    Products
        Shoppers are shown Oscar's *browsable* products (``parent=None, is_public=True``,
        as ``Product.objects.browsable()``): standalone products and parents. A child
        (a size or colour of a parent) has no page of its own in Oscar's listings and
        usually no photo of its own, so it is shown, indexed and recommended through its
        parent, and events on a child are recorded on its parent (see
        :mod:`lookalike.contrib.oscar.receivers`). Non-public products are indexed too:
        publishing one again then costs nothing.
    Image
        The product's ``ProductImage`` with the lowest ``display_order`` (then the lowest
        key), the one Oscar's ``primary_image()`` shows in lists.
    Categories
        A product sits in several categories of a tree, so ``categories_are_exclusive`` is
        ``False``: a category filter keeps the products of that category *or any of its
        descendants*, decided on the product table. The main category (for "same
        category" and diversity) is the first one assigned to the product.
    Price and stock
        From the partners' stock records; see :meth:`price_expression` and
        :meth:`in_stock_expression`.
    """

    categories_are_exclusive = False

    # -- Oscar's models ----------------------------------------------------------------------

    def get_model(self, app_label, model_name):
        """Oscar's model, or the forked app's: a missing app is a configuration error that
        names the setting to fix (the system checks report it)."""
        try:
            from oscar.core.loading import get_model
        except ImportError as exc:
            raise ImproperlyConfigured(
                "OscarCatalogueAdapter needs django-oscar: pip install 'lookalike[oscar]'."
            ) from exc
        try:
            return get_model(app_label, model_name)
        except LookupError as exc:
            raise ImproperlyConfigured(
                f"OscarCatalogueAdapter needs django-oscar's {app_label!r} app "
                f"({app_label}.{model_name}); add it (or your fork of it) to INSTALLED_APPS."
            ) from exc

    def get_product_model(self):
        """Oscar's ``catalogue.Product``, whatever ``LOOKALIKE_PRODUCT_MODEL`` says, so that
        a setting naming another model is reported by the system checks instead of
        producing queries on the wrong table."""
        return self.get_model("catalogue", "Product")

    def _products(self):
        return self.get_product_model()._default_manager

    # -- which products --------------------------------------------------------------------

    def get_queryset(self):
        return self._products().filter(parent=None, is_public=True)

    def get_indexed_queryset(self):
        return self._products().filter(parent=None)

    # -- images ------------------------------------------------------------------------------

    def _image_field(self):
        return self.get_model("catalogue", "ProductImage")._meta.get_field("original")

    def image_name_expression(self):
        """The storage name of the first image by ``display_order``: Oscar's dashboard makes
        the image at position 0 the primary one. Making another image primary (a new one,
        or a reordering) changes the name, so the vector becomes stale as it should."""
        images = self.get_model("catalogue", "ProductImage")._default_manager
        first = images.filter(product=OuterRef("pk")).order_by("display_order", "pk")
        return Subquery(first.values("original")[:1], output_field=models.CharField())

    def get_image_storage(self):
        return self._image_field().storage

    # -- words and links -------------------------------------------------------------------

    def get_title(self, product):
        """``get_title()``: a child without a title of its own inherits its parent's."""
        return product.get_title()

    def get_url(self, product):
        return product.get_absolute_url()

    # -- categories --------------------------------------------------------------------------

    def _product_categories(self):
        return self.get_model("catalogue", "ProductCategory")._default_manager

    def _main_category(self, product_ref):
        """The product's first ``ProductCategory`` by key: the first category a merchant
        assigned, which Oscar's dashboard saves first. A stable choice that does not move
        when the tree is reorganised, unlike the first category by tree path."""
        return self._product_categories().filter(product=product_ref).order_by("pk")

    def category_key_expression(self):
        return Subquery(
            self._main_category(OuterRef("pk")).values("category_id")[:1],
            output_field=models.BigIntegerField(),
        )

    def category_label_expression(self):
        """The main category's ``full_name`` ("Clothing > Shirts"), computed in the
        database: in treebeard's materialised paths an ancestor's path is a prefix of its
        descendants' paths, so the names of the categories whose path starts the main
        category's, in depth order, are the full name. Computing it in the query keeps a
        grid of cards to one query (``str(category)`` would cost several per card)."""
        category = self.get_model("catalogue", "Category")
        main_path = Subquery(
            self._main_category(OuterRef(OuterRef("pk"))).values("category__path")[:1]
        )
        names = (
            category._default_manager.order_by()
            .alias(main_path=main_path)
            .filter(main_path__startswith=F("path"))
            # One group of all the ancestors: a constant groups by nothing.
            .annotate(one=Value(1))
            .values("one")
            .annotate(
                label=StringAgg("name", delimiter=category._full_name_separator, order_by="depth")
            )
            .values("label")
        )
        return Subquery(names, output_field=models.TextField())

    def get_category_label(self, product):
        return self._value(product, CATEGORY_LABEL, self.category_label_expression()) or None

    def get_category_queryset(self):
        """Oscar's browsable categories: public, with public ancestors."""
        category = self.get_model("catalogue", "Category")
        return category._default_manager.filter(is_public=True, ancestors_are_public=True)

    def get_category_labels(self, categories):
        """Each category's ``full_name`` from two queries: the categories, and the names of
        the whole tree by path. (Oscar's ``full_name`` reads the category's ancestors, one
        query per category on a photo page that lists them all.)"""
        category = self.get_model("catalogue", "Category")
        names = dict(category._default_manager.order_by().values_list("path", "name"))
        step = category.steplen
        return {
            key: category._full_name_separator.join(
                names.get(path[:end], "") for end in range(step, len(path) + 1, step)
            )
            for key, path in categories.values_list("pk", "path")
        }

    def filter_category(self, queryset, key):
        """Products of ``queryset`` in category ``key`` or in any category below it.

        One ``EXISTS`` over ``ProductCategory`` with the category's path as a prefix
        (``LIKE 'path%'``): the tree is never walked in Python, and the filter stays a lazy
        queryset the search composes into its own statement.
        """
        category = self.get_model("catalogue", "Category")
        path = category._default_manager.filter(pk=key).values("path")[:1]
        in_subtree = self._product_categories().filter(
            product=OuterRef("pk"), category__path__startswith=Subquery(path)
        )
        return queryset.filter(Exists(in_subtree))

    # -- price and stock ---------------------------------------------------------------------

    def _stock_records(self):
        return self.get_model("partner", "StockRecord")._default_manager

    def price_expression(self):
        """The lowest ``StockRecord.price`` of the product among the records it can be
        bought from now (among all its records when none can); for a parent, among its
        public children's records, so a parent's "from" price is never that of a sold-out
        variant while another is for sale.

        Oscar's default strategy (``UseFirstStockRecord``) prices a product from its first
        record, an order the database does not promise and a shop's own strategy may
        change. A price filter needs one number per product that the database can compare,
        and the lowest is the one a shopper filtering "up to 50" cares about: the product
        (or one of its variants) can be had for it. The price is the record's base price,
        before tax, as Oscar stores it. :meth:`filter_price` is the base class's, so it
        filters on exactly this expression.
        """
        own, children = records_of(self._stock_records(), OuterRef("pk"))
        field = self._stock_records().model._meta.get_field("price")
        decimal = models.DecimalField(max_digits=field.max_digits, decimal_places=2)
        return by_structure(
            Subquery(cheapest_first(own, False).values("price")[:1]),
            Subquery(cheapest_first(children, True).values("price")[:1]),
            decimal,
        )

    def currency_expression(self):
        """``price_currency`` of the record that gives :meth:`price_expression`."""
        own, children = records_of(self._stock_records(), OuterRef("pk"))
        return by_structure(
            Subquery(cheapest_first(own, False).values("price_currency")[:1]),
            Subquery(cheapest_first(children, True).values("price_currency")[:1]),
            models.CharField(),
        )

    def get_currency(self, product):
        """The currency of the product's price; without a price, Oscar's
        ``OSCAR_DEFAULT_CURRENCY`` (the default of every new stock record), else
        ``LOOKALIKE_CURRENCY``."""
        currency = self._value(product, CURRENCY, self.currency_expression())
        return (
            currency or getattr(settings, "OSCAR_DEFAULT_CURRENCY", None) or app_settings.CURRENCY
        )

    def in_stock_expression(self):
        """Whether the product can be bought now, as Oscar's default availability policy
        (``StockRequired``) decides for one record: a record with a net stock level
        (``num_in_stock - num_allocated``) above zero, or any record at all when the
        product class does not track stock. A parent is in stock when one of its public
        children is. Oscar asks only the *first* record; any record is asked here, for the
        same reason as the price: a product some partner can ship is for sale.
        """
        own, children = records_of(self._stock_records(), OuterRef("pk"))
        own = own.filter(buyable(of_children=False))
        children = children.filter(buyable(of_children=True))
        return by_structure(Exists(own), Exists(children), models.BooleanField())

    def filter_in_stock(self, queryset):
        return queryset.filter(self.in_stock_expression())

    def is_in_stock(self, product):
        return bool(self._value(product, IN_STOCK, self.in_stock_expression()))

    # -- time ----------------------------------------------------------------------------------

    def created_expression(self):
        return F("date_created")

    # -- changes -------------------------------------------------------------------------------

    def get_canonical_keys(self, keys):
        """A variant stands for its parent (Oscar's ``parent``), every other product for
        itself; one query. Read from the primary: a replica that lags would take a new
        variant for a product of its own."""
        keys = list(keys)
        model = self._products().model
        parents = dict(
            model._base_manager.using(router.db_for_write(model))
            .filter(pk__in=keys)
            .values_list("pk", "parent_id")
        )
        return {key: parents.get(key) or key for key in keys}

    def _product_or_parent(self, product_id):
        """The indexed product a change of product ``product_id`` touches: itself, or its
        parent when it is a child."""
        return [self.get_canonical_keys([product_id])[product_id]]

    def changes_nothing_shown(self, model, before, after):
        """A stock record save that changes nothing but the stock level and leaves the
        record as available as it was (:meth:`in_stock_expression`): an order's allocation
        (``StockRecord.allocate``), a shipment (``consume_allocation``) or a restock of
        a record that had stock. The allocation that takes the last item, a new price or
        another product changes what shoppers are shown, and moves the stamp."""
        if model is not self._stock_records().model or before is None or after is None:
            return False
        stock = {"num_in_stock", "num_allocated", "date_updated"}
        if any(before[name] != after[name] for name in before if name not in stock):
            return False
        return available(before) == available(after)

    def get_dependent_models(self):
        """Stock records (price and stock; a child's record changes its parent), product
        images (a new first image means a new vector), product categories (the main
        category), child products (publishing or hiding a variant changes its parent's
        price and stock), and product classes (whether their products track stock
        decides whether they are in stock)."""
        products = self._products().model
        return {
            self.get_model("catalogue", "ProductClass"): lambda product_class: list(
                products._base_manager.filter(product_class=product_class).values_list(
                    "pk", flat=True
                )
            ),
            self.get_model("partner", "StockRecord"): (
                lambda record: self._product_or_parent(record.product_id)
            ),
            self.get_model("catalogue", "ProductImage"): lambda image: [image.product_id],
            self.get_model("catalogue", "ProductCategory"): lambda link: [link.product_id],
            self.get_product_model(): lambda product: [product.parent_id],
        }

    # -- sets ----------------------------------------------------------------------------------

    def annotate(self, queryset):
        """The base class's values plus the category label, the price's currency and the
        stock flag, so that a card (:meth:`get_card`) asks nothing more of the database."""
        return (
            super()
            .annotate(queryset)
            .annotate(
                **{
                    CATEGORY_LABEL: self.category_label_expression(),
                    CURRENCY: self.currency_expression(),
                    IN_STOCK: self.in_stock_expression(),
                }
            )
        )

    # -- checks --------------------------------------------------------------------------------

    def check(self):
        from django.apps import apps
        from django.core.checks import Error, Warning

        errors = []
        for app_label, model_name in (
            ("catalogue", "Product"),
            ("catalogue", "ProductImage"),
            ("catalogue", "ProductCategory"),
            ("catalogue", "Category"),
            ("partner", "StockRecord"),
        ):
            try:
                self.get_model(app_label, model_name)
            except ImproperlyConfigured as exc:
                errors.append(Error(str(exc), id="lookalike_oscar.E001"))
        if not apps.is_installed("lookalike.contrib.oscar"):
            errors.append(
                Warning(
                    "LOOKALIKE_CATALOGUE_ADAPTER is the Oscar adapter, but "
                    "'lookalike.contrib.oscar' is not in INSTALLED_APPS: Oscar's pages will "
                    "record no shopper events and show no recommendation widgets.",
                    hint="Add 'lookalike.contrib.oscar' to INSTALLED_APPS, before Oscar's apps.",
                    id="lookalike_oscar.W001",
                )
            )
        return errors
