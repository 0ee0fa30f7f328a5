"""Lookalike for django-oscar.

In the shop's settings::

    INSTALLED_APPS = [
        ...,
        "lookalike.contrib.oscar",  # before Oscar's apps: its templates extend Oscar's
        "oscar.config.Shop",
        ...,  # Oscar's apps
        "lookalike",
        "lookalike.jobs",
        "visualsearch",
        "recommendations",
    ]
    LOOKALIKE_PRODUCT_MODEL = "catalogue.Product"
    LOOKALIKE_CATALOGUE_ADAPTER = "lookalike.contrib.oscar.adapter.OscarCatalogueAdapter"
    LOOKALIKE_BASE_TEMPLATE = "oscar/layout.html"
    LOOKALIKE_CARD_TEMPLATE = "lookalike/oscar/product_card.html"

The adapter reads Oscar's products, images, category tree and stock records; the app
records shopper events from Oscar's signals and adds the "Similar items" and "Recommended
for you" widgets to Oscar's product and catalogue pages.
"""
