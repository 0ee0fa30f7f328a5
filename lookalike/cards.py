"""Product cards, rendered once per process and reused.

Result grids and both widgets render ``LOOKALIKE_CARD_TEMPLATE`` once per product, and a
dozen cards cost more than the search or the blend that chose them (about half of a "find
similar" page's CPU). A card's markup depends only on what the catalogue adapter says of
its product (:class:`~lookalike.catalogue.ProductCard`: title, URL, image, price, stock),
the score and reason shown, the ``?from=`` source and the language. With those in the key
(the product's key, title, image name, price and stock standing for its card: the URL and
image URL follow from them and cost a ``reverse()`` and a storage call to compute), a card
is rendered once and reused, and a product whose price or stock changed (even by an
``update()`` that sends no signal) has another key. The cards are kept under the
catalogue's stamp (:data:`lookalike.catalogue.CATALOGUE`), so saving a product or a
category renders them afresh, but in a store of their own, so that they never push the
catalogue's other values out.

A score is a float of one query's answer, so a scored card is reused only when the same
answer is shown again: the "find similar" page of a product shoppers keep opening, whose
hits are themselves kept per process (:mod:`visualsearch.search.remembered`). Scored cards
are kept apart (:data:`SCORED_CARDS`), so that browsing many products' look-alikes never
pushes out the widgets' cards, which every page shows. Answers that are never shown twice
(a shopper's photo) pass ``reuse=False`` and are rendered each time, as is a strip served
in an experiment, whose links carry an impression id.

The card template is rendered with ``product``, ``score``, ``reason``, ``source`` and
``recommendation_id`` only, without the page's context processors: a card must not depend
on the shopper. A shop whose card does (an add-to-basket form with its CSRF token) sets
``LOOKALIKE_REUSE_CARDS = False``, and every card is rendered each time with the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.template.loader import render_to_string
from django.utils.translation import get_language

from .catalogue import get_adapter
from .conf import app_settings
from .stamps import Stamped

__all__ = ["CARDS", "SCORED_CARDS", "Card", "render_cards"]

#: Rendered cards without a score (the widgets'; about a kilobyte each), under the
#: catalogue's stamp.
CARDS = Stamped("lookalike.catalogue", limit=10_000)
#: Rendered cards with a score (result grids), in a store of their own.
SCORED_CARDS = Stamped("lookalike.catalogue", limit=10_000)


@dataclass(frozen=True)
class Card:
    """One product to show, with what its card says besides the product."""

    product: Any
    score: float | None = None
    reason: str = ""


def _render(template_name, card, source, recommendation_id, request=None):
    return render_to_string(
        template_name,
        {
            "product": card.product,
            "score": card.score,
            "reason": card.reason,
            "source": source,
            "recommendation_id": recommendation_id,
        },
        request=request,
    )


def _key(adapter, template_name, card, source, language):
    product = card.product
    return (
        template_name,
        product.pk,
        adapter.get_title(product),
        adapter.get_image_name(product),
        adapter.get_price(product),
        bool(adapter.is_in_stock(product)),
        card.score,
        str(card.reason),
        source,
        language,
    )


def render_cards(cards, template_name, source="", recommendation_id="", reuse=True, request=None):
    """The HTML of each :class:`Card`'s card, in order (safe strings).

    ``reuse=False`` renders every card afresh and keeps none (answers never shown twice);
    so does a ``recommendation_id``, which makes every strip's links its own. With
    ``LOOKALIKE_REUSE_CARDS`` off, every card is rendered afresh with ``request``'s
    context processors.
    """
    if not app_settings.REUSE_CARDS:
        return [_render(template_name, card, source, recommendation_id, request) for card in cards]
    if recommendation_id or not reuse:
        return [_render(template_name, card, source, recommendation_id) for card in cards]
    adapter, language = get_adapter(), get_language()
    return [
        (CARDS if card.score is None else SCORED_CARDS).get(
            _key(adapter, template_name, card, source, language),
            lambda card=card: _render(template_name, card, source, ""),
        )
        for card in cards
    ]
