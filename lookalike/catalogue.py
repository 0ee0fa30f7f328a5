"""The host seam: one adapter answers every question the plugins ask about products.

A shop names a subclass of :class:`CatalogueAdapter` in ``LOOKALIKE_CATALOGUE_ADAPTER``
(as django-allauth's ``ACCOUNT_ADAPTER``); nothing in ``visualsearch`` or
``recommendations`` reads a product field by name. The adapter answers in two ways,
because the plugins need both:

* **per product**, for pages and the API: :meth:`~CatalogueAdapter.get_title`,
  :meth:`~CatalogueAdapter.get_url`, :meth:`~CatalogueAdapter.get_image_url`,
  :meth:`~CatalogueAdapter.get_price`, :meth:`~CatalogueAdapter.is_in_stock`, gathered in a
  :class:`ProductCard`;
* **for whole sets**, in the database, for search and indexing over a million products:
  querysets (:meth:`~CatalogueAdapter.get_queryset`, the ``filter_*`` methods) and query
  expressions (:meth:`~CatalogueAdapter.image_name_expression`,
  :meth:`~CatalogueAdapter.price_expression`, ...) that the plugins compose into their own
  SQL. A price kept in a related stock record or in cents, images in a related model,
  categories in a many-to-many tree: each is one expression or one filter.

:class:`FieldsCatalogueAdapter`, the default, reads flat fields of the product model named
in ``LOOKALIKE_PRODUCT_FIELDS``. ``lookalike.contrib.oscar.adapter.OscarCatalogueAdapter``
reads django-oscar's models. Primary keys may be integers or UUIDs.

Per-product answers read the values that :meth:`CatalogueAdapter.annotate` attached to the
instance when they are there (the plugins load every result list through it, so a grid of
cards costs one query) and ask the database otherwise.

This module is long because it is the contract a host implements: the interface with each
method's documentation, and the default implementation beside it, so that the two are read
(and changed) together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured, ValidationError
from django.core.files.storage import default_storage
from django.core.signals import setting_changed
from django.db import models
from django.db.models import F, Q

from .conf import app_settings, import_class
from .stamps import Stamped

__all__ = [
    "CATALOGUE",
    "CatalogueAdapter",
    "FieldsCatalogueAdapter",
    "ProductCard",
    "get_adapter",
    "product_model",
]

#: Names of the values :meth:`CatalogueAdapter.annotate` attaches to each product.
IMAGE, CATEGORY, PRICE, CREATED = (
    "_lookalike_image",
    "_lookalike_category",
    "_lookalike_price",
    "_lookalike_created",
)

_BIGINT = 2**63


def product_model() -> type[models.Model]:
    """The model named by ``LOOKALIKE_PRODUCT_MODEL``, the target of the plugins' foreign
    keys, whatever the adapter serves (the system checks compare the two).

    Raises
    ------
    ImproperlyConfigured
        When the setting is missing or names no installed model, naming the setting (as
        ``django.contrib.auth.get_user_model()`` names ``AUTH_USER_MODEL``).
    """
    label = app_settings.PRODUCT_MODEL
    if not label:
        raise ImproperlyConfigured(
            "LOOKALIKE_PRODUCT_MODEL is not set; set it to your product model, e.g. "
            "LOOKALIKE_PRODUCT_MODEL = 'catalogue.Product'."
        )
    try:
        return apps.get_model(label, require_ready=False)
    except (LookupError, ValueError) as exc:
        raise ImproperlyConfigured(
            f"LOOKALIKE_PRODUCT_MODEL refers to {label!r}, which is not an installed model."
        ) from exc


@dataclass(frozen=True)
class ProductCard:
    """What the plugins show of one product: the API's result card and the context of the
    shipped card template.

    Attributes
    ----------
    pk : int or uuid.UUID
        The product's primary key.
    title : str
    url : str
        The product's page, relative to the site (``/products/7/``).
    image_url : str or None
        The main image's URL in its storage, ``None`` without an image.
    price : Decimal or None
        In the shop's currency units (not cents); ``None`` when the product has no price.
    currency : str or None
        ISO 4217 code (``LOOKALIKE_CURRENCY`` unless the adapter knows better).
    in_stock : bool
    category : str or None
        Label of the product's main category.
    """

    pk: Any
    title: str
    url: str
    image_url: str | None
    price: Decimal | None
    currency: str | None
    in_stock: bool
    category: str | None


class CatalogueAdapter:
    """Everything the plugins need to know about the host's products.

    Subclass it and override what differs from the defaults; a subclass must at least
    give :meth:`image_name_expression`. Methods that take a queryset return a queryset of
    the same model and never evaluate it.
    """

    #: Whether a product belongs to its main category only (:meth:`category_key_expression`).
    #: When it does, the vectors carry a copy of that key and a category filter is answered
    #: from the copies (per-category HNSW graphs, range scans). Shops whose products sit in
    #: several categories or in a tree set it to ``False``: a category filter then goes
    #: through :meth:`filter_category` on the product table, exactly but without the
    #: category graphs.
    categories_are_exclusive = True

    # -- the model and its keys ------------------------------------------------------------

    def get_product_model(self) -> type[models.Model]:
        """The model named by ``LOOKALIKE_PRODUCT_MODEL``."""
        return product_model()

    def parse_pk(self, value):
        """The product key written as ``value`` (from a URL, a form, JSON).

        Raises
        ------
        ValueError
            When ``value`` cannot be a key of the product model (``"abc"`` for an integer
            key, an integer beyond 64 bits, a malformed UUID).
        """
        field = self.get_product_model()._meta.pk
        try:
            key = field.to_python(value)
        except (ValidationError, TypeError) as exc:
            raise ValueError(f"{value!r} is not a product id.") from exc
        if key is None or (isinstance(key, int) and not -_BIGINT <= key < _BIGINT):
            raise ValueError(f"{value!r} is not a product id.")
        return key

    # -- which products --------------------------------------------------------------------

    def get_queryset(self) -> models.QuerySet:
        """Products that shoppers may be shown. Every result of the plugins passes through
        it: a product it leaves out is never shown, whatever its vector or its events."""
        return self.get_product_model()._default_manager.all()

    def get_indexed_queryset(self) -> models.QuerySet:
        """Products that get a vector: every product that :meth:`get_queryset` may list now
        or later (a hidden product keeps its vector, so showing it again costs nothing)."""
        return self.get_product_model()._default_manager.all()

    # -- images ------------------------------------------------------------------------------

    def image_name_expression(self) -> models.Expression:
        """A query expression giving the storage name of a product's main image, the one
        that is embedded; ``NULL`` or ``''`` when it has none. A changed name makes the
        vector stale, so a replaced image should get a new name (Django's storages do)."""
        raise NotImplementedError(f"{type(self).__name__} must define image_name_expression().")

    def get_image_storage(self):
        """The storage the image names live in."""
        return default_storage

    def open_image(self, name):
        """The image file ``name`` opened for binary reading."""
        return self.get_image_storage().open(name, "rb")

    def get_image_name(self, product) -> str | None:
        """Storage name of the product's main image, or ``None``."""
        return self._value(product, IMAGE, self.image_name_expression()) or None

    def get_image_url(self, product) -> str | None:
        name = self.get_image_name(product)
        return self.get_image_storage().url(name) if name else None

    # -- words and links -------------------------------------------------------------------

    def get_title(self, product) -> str:
        return str(product)

    def get_url(self, product) -> str:
        """The product's page; links from the plugins add ``?from=<widget>``."""
        return product.get_absolute_url()

    # -- categories --------------------------------------------------------------------------

    def category_key_expression(self) -> models.Expression | None:
        """A query expression giving the key of the product's main category (the one that
        "same category" and diversity use), or ``None`` when the shop has no categories."""
        return None

    def category_copy_expression(self) -> models.Expression | None:
        """The expression whose value the vectors copy to answer category filters: the main
        category when products belong to it alone and its key is an integer, else ``None``."""
        if not self.categories_are_exclusive:
            return None
        return self.category_key_expression()

    def get_category_key(self, product):
        """Key of the product's main category, or ``None``."""
        expression = self.category_key_expression()
        return None if expression is None else self._value(product, CATEGORY, expression)

    def get_category_label(self, product) -> str | None:
        """Label of the product's main category, for cards."""
        key = self.get_category_key(product)
        if key is None:
            return None
        categories = self.get_category_queryset()
        category = None if categories is None else categories.filter(pk=key).first()
        return str(category) if category is not None else None

    def get_category_queryset(self) -> models.QuerySet | None:
        """Categories a shopper may filter by (the photo-search form lists them); ``None``
        when the shop has no categories."""
        return None

    def get_category_labels(self, categories) -> dict:
        """The photo page's label of each category of ``categories`` (a queryset of
        :meth:`get_category_queryset`), by key.

        ``str(category)`` here; a shop whose categories form a tree overrides it so that a
        child says where it sits ("Clothing > Shirts", not a second "Shirts") in a query or
        two for the whole list, rather than a walk up the tree for each category.
        """
        return {category.pk: str(category) for category in categories}

    def parse_category_key(self, value):
        """The category key written as ``value``; ``ValueError`` when it cannot be a key of
        :meth:`get_category_queryset`'s model.

        A well-formed key that no category has is returned as it is: filtered on, it finds
        no product, as an empty price range does. The API's schema can say what a key looks
        like, not which categories exist, and a request it calls valid is answered.
        """
        categories = self.get_category_queryset()
        if categories is None:
            raise ValueError("This shop has no categories.")
        try:
            key = categories.model._meta.pk.to_python(value)
        except (ValidationError, TypeError) as exc:
            raise ValueError(f"{value!r} is not a category id.") from exc
        if isinstance(key, int) and not -_BIGINT <= key < _BIGINT:
            raise ValueError(f"{value!r} is not a category id.")
        if key is None:
            raise ValueError(f"{value!r} is not a category id.")
        return key

    def filter_category(self, queryset, key) -> models.QuerySet:
        """Products of ``queryset`` in category ``key`` (with its subcategories, where the
        shop's categories form a tree)."""
        expression = self.category_key_expression()
        if expression is None:
            return queryset.none()
        return queryset.alias(**{CATEGORY: expression}).filter(**{CATEGORY: key})

    # -- price -------------------------------------------------------------------------------

    def price_expression(self) -> models.Expression | None:
        """A query expression giving the product's price in currency units, as a decimal
        (divide cents by 100 here); ``None`` when products have no price."""
        return None

    def get_price(self, product) -> Decimal | None:
        expression = self.price_expression()
        if expression is None:
            return None
        value = self._value(product, PRICE, expression)
        return None if value is None else Decimal(value)

    def get_currency(self, product) -> str | None:
        return app_settings.CURRENCY

    def filter_price(self, queryset, min_price=None, max_price=None) -> models.QuerySet:
        """Products of ``queryset`` priced within ``[min_price, max_price]`` (either bound may
        be ``None``); products without a price are left out by any bound."""
        expression = self.price_expression()
        if expression is None:
            return queryset if min_price is None and max_price is None else queryset.none()
        conditions = Q()
        if min_price is not None:
            conditions &= Q(**{f"{PRICE}__gte": Decimal(min_price)})
        if max_price is not None:
            conditions &= Q(**{f"{PRICE}__lte": Decimal(max_price)})
        return queryset.alias(**{PRICE: expression}).filter(conditions)

    # -- stock -------------------------------------------------------------------------------

    def filter_in_stock(self, queryset) -> models.QuerySet:
        """Products of ``queryset`` that can be bought now. By default everything can."""
        return queryset

    def is_in_stock(self, product) -> bool:
        return True

    # -- time ----------------------------------------------------------------------------------

    def created_expression(self) -> models.Expression | None:
        """A query expression giving when the product was added (the "New in" reason and
        recency); ``None`` when the shop does not know."""
        return None

    def get_created(self, product) -> datetime | None:
        expression = self.created_expression()
        return None if expression is None else self._value(product, CREATED, expression)

    # -- changes -------------------------------------------------------------------------------

    def get_dependent_models(self) -> dict:
        """Models other than the product whose saves and deletions change what this adapter
        answers: ``{model or "app_label.Model": function(instance) -> product keys}``.
        The plugins watch them to keep vectors and their copies of category and price in
        step (a new stock record price, a new main image)."""
        return {}

    def get_canonical_keys(self, keys) -> dict:
        """``{key: the key that stands for it}`` of ``keys``: a product the plugins do not
        index on its own is searched and recommended as another one. In django-oscar a
        variant (a child product) stands for its parent, whose page Oscar also serves:
        the "find similar" page of a variant redirects to its parent's, the API answers
        for the parent, and the admin's reindex action embeds the parent. By default
        every key stands for itself (no query)."""
        return {key: key for key in keys}

    def changes_nothing_shown(self, model, before, after) -> bool:
        """Whether a save that changed a row of dependent ``model`` from ``before`` to
        ``after`` (``{attname: value}`` as read from the database; ``before`` is ``None``
        for a new row) changed nothing the plugins read of any product.

        Such a save moves no version stamp (:mod:`lookalike.changes`), so what every
        process keeps under the catalogue's stamp (search answers, candidates, cards)
        stays. In django-oscar every order line allocates stock and saves its stock
        record: an allocation that leaves the record available changes no price, no
        stock flag, no category and no photo. The default answers ``False`` for every
        save: each one moves the stamp.
        """
        return False

    # -- sets ----------------------------------------------------------------------------------

    def annotate(self, queryset) -> models.QuerySet:
        """``queryset`` with each product's image name, main category key, price and
        creation time attached, so per-product answers need no further query."""
        values = {IMAGE: self.image_name_expression()}
        for name, expression in (
            (CATEGORY, self.category_key_expression()),
            (PRICE, self.price_expression()),
            (CREATED, self.created_expression()),
        ):
            if expression is not None:
                values[name] = expression
        return queryset.annotate(**values)

    def get_card(self, product) -> ProductCard:
        return ProductCard(
            pk=product.pk,
            title=self.get_title(product),
            url=self.get_url(product),
            image_url=self.get_image_url(product),
            price=self.get_price(product),
            currency=self.get_currency(product),
            in_stock=bool(self.is_in_stock(product)),
            category=self.get_category_label(product),
        )

    # -- checks --------------------------------------------------------------------------------

    def check(self) -> list:
        """System-check messages about this adapter's configuration (``manage.py check``)."""
        return []

    # -- helpers -------------------------------------------------------------------------------

    def _value(self, product, attribute, expression):
        """The value :meth:`annotate` attached, or the expression evaluated for ``product``."""
        if hasattr(product, attribute):
            return getattr(product, attribute)
        model = type(product)
        return (
            model._base_manager.filter(pk=product.pk)
            .annotate(**{attribute: expression})
            .values_list(attribute, flat=True)
            .first()
        )


#: ``{(adapter class, role): model field or None}`` of :meth:`FieldsCatalogueAdapter._field`.
_resolved_fields: dict = {}


def _forget_fields(**kwargs):
    _resolved_fields.clear()


setting_changed.connect(_forget_fields, dispatch_uid="lookalike.catalogue.forget_fields")


class FieldsCatalogueAdapter(CatalogueAdapter):
    """Products whose image, title, category, price, stock, "active" flag and creation time
    are fields of the product model, named in ``LOOKALIKE_PRODUCT_FIELDS``.

    ``image`` must be a file or image field, ``category`` a foreign key (or ``None``),
    ``price`` a decimal or number field in currency units, ``stock`` a number field (in
    stock above 0), ``active`` a boolean field, ``created`` a date-time field; every role
    but ``image`` may be ``None`` when the model has no such field.
    """

    ROLES = ("image", "title", "category", "price", "stock", "active", "created")

    def fields(self) -> dict:
        return app_settings.PRODUCT_FIELDS

    def _field(self, role):
        """The model field playing ``role``, or ``None``. Resolved once per adapter class and
        role (a page asks some sixty times, for every card), again after a setting changes."""
        key = (type(self), role)
        try:
            return _resolved_fields[key]
        except KeyError:
            pass
        name = self.fields().get(role)
        if not name:
            field = None
        else:
            try:
                field = self.get_product_model()._meta.get_field(name)
            except FieldDoesNotExist as exc:
                # Only "image" is required: the others are merged from the defaults, so a
                # model without such a field says so with None.
                remedy = "" if role == "image" else f" (None if it has no {role} field)"
                raise ImproperlyConfigured(
                    f"LOOKALIKE_PRODUCT_FIELDS[{role!r}] names {name!r}, which is not a field of "
                    f"{app_settings.PRODUCT_MODEL}: name the model's field{remedy}."
                ) from exc
        _resolved_fields[key] = field
        return field

    def get_queryset(self):
        queryset = super().get_queryset()
        active = self._field("active")
        if active is not None:
            queryset = queryset.filter(**{active.name: True})
        category = self._field("category")
        # Cards show the category's name: load it with the products.
        return queryset if category is None else queryset.select_related(category.name)

    def get_indexed_queryset(self):
        return super().get_indexed_queryset()

    # images
    def image_name_expression(self):
        return F(self._field("image").attname)

    def get_image_storage(self):
        return self._field("image").storage

    def get_image_name(self, product):
        image = getattr(product, self._field("image").name)
        return image.name if image else None

    # words
    def get_title(self, product):
        title = self._field("title")
        return str(product) if title is None else str(getattr(product, title.attname))

    # categories
    def category_key_expression(self):
        category = self._field("category")
        return None if category is None else F(category.attname)

    def category_copy_expression(self):
        category = self._field("category")
        if category is None or not isinstance(category.target_field, models.IntegerField):
            return None  # only integer keys are copied onto the vectors
        return super().category_copy_expression()

    def get_category_key(self, product):
        category = self._field("category")
        return None if category is None else getattr(product, category.attname)

    def get_category_label(self, product):
        category = self._field("category")
        if category is None or getattr(product, category.attname) is None:
            return None
        return str(getattr(product, category.name))

    def get_category_queryset(self):
        category = self._field("category")
        return None if category is None else category.related_model._default_manager.all()

    def filter_category(self, queryset, key):
        category = self._field("category")
        if category is None:
            return queryset.none()
        return queryset.filter(**{category.attname: key})

    # price
    def price_expression(self):
        price = self._field("price")
        return None if price is None else F(price.attname)

    def _own_price_expression(self):
        """Whether a subclass computes the price (cents to units, say): then its
        :meth:`price_expression` is the price everywhere, not the field read as it is."""
        return type(self).price_expression is not FieldsCatalogueAdapter.price_expression

    def get_price(self, product):
        if self._own_price_expression():
            return super().get_price(product)
        price = self._field("price")
        value = None if price is None else getattr(product, price.attname)
        return None if value is None else Decimal(value)

    def filter_price(self, queryset, min_price=None, max_price=None):
        price = self._field("price")
        if price is None or self._own_price_expression():
            return super().filter_price(queryset, min_price, max_price)
        if min_price is not None:
            queryset = queryset.filter(**{f"{price.attname}__gte": Decimal(min_price)})
        if max_price is not None:
            queryset = queryset.filter(**{f"{price.attname}__lte": Decimal(max_price)})
        return queryset

    # stock
    def filter_in_stock(self, queryset):
        stock = self._field("stock")
        return queryset if stock is None else queryset.filter(**{f"{stock.attname}__gt": 0})

    def is_in_stock(self, product):
        stock = self._field("stock")
        return True if stock is None else (getattr(product, stock.attname) or 0) > 0

    # time
    def created_expression(self):
        created = self._field("created")
        return None if created is None else F(created.attname)

    def get_created(self, product):
        created = self._field("created")
        return None if created is None else getattr(product, created.attname)

    def check(self):
        from django.core.checks import Error

        errors = []
        fields = self.fields()
        unknown = sorted(set(fields) - set(self.ROLES))
        if unknown:
            errors.append(
                Error(
                    f"LOOKALIKE_PRODUCT_FIELDS has unknown roles: {', '.join(unknown)}.",
                    hint=f"The roles are {', '.join(self.ROLES)}.",
                    id="lookalike.E010",
                )
            )
        expected = {
            "image": (models.FileField,),
            "title": (models.Field,),
            "category": (models.ForeignKey,),
            "price": (models.DecimalField, models.IntegerField, models.FloatField),
            "stock": (models.IntegerField, models.FloatField, models.DecimalField),
            "active": (models.BooleanField,),
            "created": (models.DateTimeField, models.DateField),
        }
        for role, kinds in expected.items():
            name = fields.get(role)
            if not name:
                if role == "image":
                    errors.append(
                        Error(
                            "LOOKALIKE_PRODUCT_FIELDS['image'] must name the product's image "
                            "field.",
                            id="lookalike.E011",
                        )
                    )
                continue
            try:
                field = self._field(role)
            except ImproperlyConfigured as exc:
                errors.append(Error(str(exc), id="lookalike.E012"))
                continue
            if not isinstance(field, kinds):
                wanted = " or ".join(kind.__name__ for kind in kinds)
                errors.append(
                    Error(
                        f"LOOKALIKE_PRODUCT_FIELDS[{role!r}] names {name!r}, a "
                        f"{type(field).__name__}; it must be a {wanted}.",
                        hint=_ROLE_HINTS.get(role),
                        id="lookalike.E013",
                    )
                )
        return errors


#: What to do instead when a product model keeps a role in another kind of field.
_ROLE_HINTS = {
    "active": "Products hidden another way (a soft-delete timestamp such as deleted_at, a "
    "status) need a CatalogueAdapter subclass whose get_queryset() filters them, with "
    "'active' set to None: see docs/install.md, section 7.",
}


@lru_cache(maxsize=8)
def _adapter(path: str) -> CatalogueAdapter:
    return import_class("LOOKALIKE_CATALOGUE_ADAPTER", path, CatalogueAdapter)()


def get_adapter() -> CatalogueAdapter:
    """The adapter named by ``LOOKALIKE_CATALOGUE_ADAPTER`` (one instance per class)."""
    return _adapter(app_settings.CATALOGUE_ADAPTER)


# -- the catalogue's version ---------------------------------------------------------------------

#: Values derived from the catalogue and kept per process (the shop's navigation, its newest
#: products; the rendered cards are in :data:`lookalike.cards.CARDS`), good until a
#: product or a category is saved or deleted, or a model the adapter depends on changes
#: what the plugins read of a product (:mod:`lookalike.changes`, :mod:`lookalike.stamps`).
CATALOGUE = Stamped("lookalike.catalogue", limit=20_000)
