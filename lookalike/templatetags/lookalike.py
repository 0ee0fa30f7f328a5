"""Template helpers shared by the plugin apps' templates and a host's card template.

``{% load lookalike %}``, then ``{% with card=product|product_card %}...{% endwith %}``
gives a :class:`~lookalike.catalogue.ProductCard` (title, URL, image URL, price, stock,
category) of any product, asked of the catalogue adapter, and ``{{ url|with_source:source }}``
adds ``?from=<source>`` to a product link so that the click is attributed to the widget.
"""

from urllib.parse import urlencode

from django import template

from ..catalogue import get_adapter

register = template.Library()


@register.filter
def product_card(product):
    """The adapter's :class:`~lookalike.catalogue.ProductCard` of ``product``."""
    return get_adapter().get_card(product)


@register.filter
def with_source(url, source):
    """``url`` with ``from=<source>`` added to its query string (unchanged without a source)."""
    if not source:
        return url
    separator = "&" if "?" in str(url) else "?"
    return f"{url}{separator}{urlencode({'from': source})}"
