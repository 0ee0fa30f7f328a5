"""Template helpers shared by the plugin apps' templates and a host's card template.

``{% load lookalike %}``, then ``{% with card=product|product_card %}...{% endwith %}``
gives a :class:`~lookalike.catalogue.ProductCard` (title, URL, image URL, price, stock,
category) of any product, asked of the catalogue adapter, and ``{{ url|with_source:source }}``
adds ``?from=<source>`` to a product link so that the click is attributed to the widget.
``{% result_cards results source=source reuse=reuse_cards as cards %}`` renders a result
grid's ``(product, score)`` pairs with ``LOOKALIKE_CARD_TEMPLATE`` (:mod:`lookalike.cards`).
``{% form_fields form "app/_fields.html" %}`` renders a form's fields with that template,
once per process while the shopper has not filled the form in (:mod:`lookalike.fragments`).
"""

from urllib.parse import urlencode

from django import template

from ..cards import Card, render_cards
from ..catalogue import get_adapter
from ..conf import app_settings
from ..fragments import render_form_fields

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


@register.simple_tag(takes_context=True)
def result_cards(context, results, source="", reuse=True):
    """The HTML of each card of ``results``, ``(product, score)`` pairs, in order; reused
    while the same answer is shown again unless ``reuse`` is false (:mod:`lookalike.cards`)."""
    return render_cards(
        [Card(product, score) for product, score in results],
        app_settings.CARD_TEMPLATE,
        source,
        reuse=reuse,
        request=context.get("request"),
    )


@register.simple_tag(takes_context=True)
def form_fields(context, form, template_name):
    """``template_name`` rendered for ``form``; reused while the form is not filled in
    (:mod:`lookalike.fragments`)."""
    return render_form_fields(form, template_name, context.flatten())
