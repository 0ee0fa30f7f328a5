"""Settings shared by both plugin apps, read from Django settings on every access.

All names carry the ``LOOKALIKE_`` prefix in the project's settings. Each is a property
with its default, so ``override_settings`` and pytest-django's ``settings`` fixture take
effect at once.
"""


class AppSettings:
    prefix = "LOOKALIKE_"

    def _setting(self, name, default):
        from django.conf import settings

        return getattr(settings, self.prefix + name, default)

    @property
    def PRODUCT_MODEL(self):
        """``app_label.ModelName`` of the host's product model: the target of every foreign
        key the plugins keep to a product (like ``AUTH_USER_MODEL``). Required."""
        return self._setting("PRODUCT_MODEL", None)

    @property
    def CATALOGUE_ADAPTER(self):
        """Dotted path of the :class:`lookalike.catalogue.CatalogueAdapter` subclass that
        answers every question the plugins ask about products. The default reads flat
        fields of the product model named in ``LOOKALIKE_PRODUCT_FIELDS``."""
        return self._setting("CATALOGUE_ADAPTER", "lookalike.catalogue.FieldsCatalogueAdapter")

    @property
    def PRODUCT_FIELDS(self):
        """The product model's fields that :class:`~lookalike.catalogue.FieldsCatalogueAdapter`
        reads, ``{role: field name or None}``; ``None`` means the model has no such field
        (no category: no category filter; no stock: always in stock; and so on)."""
        fields = {
            "image": "image",
            "title": "title",
            "category": "category",
            "price": "price",
            "stock": "stock",
            "active": "is_active",
            "created": "created_at",
        }
        fields.update(self._setting("PRODUCT_FIELDS", {}))
        return fields

    @property
    def WIDGET_STYLESHEET(self):
        """Static path of the stylesheet the recommendation strips link to, so that they
        look right on any page with the default card; ``None`` when the shop styles them."""
        return self._setting("WIDGET_STYLESHEET", "lookalike/lookalike.css")

    @property
    def CURRENCY(self):
        """Currency code of the prices the adapter returns, for display (``"EUR"``)."""
        return self._setting("CURRENCY", "EUR")

    @property
    def BASE_TEMPLATE(self):
        """Template that the plugin pages ("Find similar", "Search by photo") extend. It
        must define the blocks ``title``, ``extrahead``, ``content`` and ``extrascripts``
        (django-oscar's ``oscar/layout.html`` does)."""
        return self._setting("BASE_TEMPLATE", "base.html")

    @property
    def CARD_TEMPLATE(self):
        """Template of one product in result grids and recommendation strips, used by both
        apps. It receives ``product`` (the model instance), ``card`` (a
        :class:`~lookalike.catalogue.ProductCard`), ``score``, ``reason`` and ``source``."""
        return self._setting("CARD_TEMPLATE", "lookalike/product_card.html")


app_settings = AppSettings()
