"""The default product card (``lookalike/product_card.html``): what a shopper reads."""

from decimal import Decimal

import pytest
from django.template.loader import render_to_string

from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def test_price_shows_two_decimals_whatever_the_adapter_computed(settings):
    """An adapter that divides cents returns numerics such as 95.2300000000000000; the
    card shows 95.23, as the API does."""
    settings.LOOKALIKE_CURRENCY = "GBP"  # not the shop's own euros, which it writes "€95.23"
    product = ProductFactory(price=Decimal("95.23"))
    product.price = Decimal("95.2300000000000000")
    html = render_to_string("lookalike/product_card.html", {"product": product, "source": ""})
    assert '<span class="lookalike-card-price">95.23 GBP</span>' in html
    # The link is named once, by the title: the picture inside it has an empty alt text.
    assert 'alt=""' in html and f'<span class="lookalike-card-title">{product.title}</span>' in html
