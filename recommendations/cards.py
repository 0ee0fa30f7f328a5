"""The widgets' product cards, rendered once per process and reused.

A strip renders ``LOOKALIKE_CARD_TEMPLATE`` for each of its products, and rendering a
dozen cards cost more than the blend that chose them. A card's markup depends only on
what the catalogue adapter says of its product (:class:`~lookalike.catalogue.ProductCard`:
title, URL, image, price, stock), the reason shown, the widget's ``?from=`` source and
the language; with those in the key (the product's key, title, image name, price and stock
standing for its card: the URL and image URL follow from them and cost a ``reverse()`` and
a storage call to compute), a card is rendered once and reused, and a product whose price
or stock changed (even by an ``update()`` that sends no signal) has another key. The
fragments are kept under the catalogue's stamp too
(:data:`lookalike.catalogue.CATALOGUE`), so saving a product or a category renders them
afresh. The card template is rendered with ``product``, ``reason``, ``source``,
``score`` (``None``) and ``recommendation_id`` only, without the page's context processors.
A strip served in an experiment carries an impression id per strip in its links: its
cards are rendered each time.
"""

from __future__ import annotations

from django.template.loader import render_to_string
from django.utils.translation import get_language

from lookalike.catalogue import CATALOGUE, get_adapter

__all__ = ["render_cards"]


def _render(template_name, product, reason, source, recommendation_id):
    return render_to_string(
        template_name,
        {
            "product": product,
            "reason": reason,
            "source": source,
            "score": None,
            "recommendation_id": recommendation_id,
        },
    )


def _identity(adapter, product):
    return (
        product.pk,
        adapter.get_title(product),
        adapter.get_image_name(product),
        adapter.get_price(product),
        bool(adapter.is_in_stock(product)),
    )


def render_cards(recommendations, template_name, source, recommendation_id=""):
    """The HTML of each recommendation's card, in order (safe strings)."""
    if recommendation_id:
        return [
            _render(template_name, rec.product, rec.reason, source, recommendation_id)
            for rec in recommendations
        ]
    adapter, language = get_adapter(), get_language()
    return [
        CATALOGUE.get(
            (
                "card",
                template_name,
                *_identity(adapter, rec.product),
                str(rec.reason),
                source,
                language,
            ),
            lambda rec=rec: _render(template_name, rec.product, rec.reason, source, ""),
        )
        for rec in recommendations
    ]
