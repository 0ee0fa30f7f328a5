"""Fixtures shared by the recommendation tests."""

import pytest

from tests.recommendations.blend_support import embed


@pytest.fixture
def catalogue(product_factory, category_factory):
    """A red dress and five dresses ever less like it (the widgets' and experiments' shop)."""
    cat = category_factory(name="Dresses", slug="dresses")
    anchor = product_factory(category=cat, title="Red dress")
    embed(anchor, [1.0, 0.0, 0.0, 0.0])
    others = []
    for i in range(5):
        p = product_factory(category=cat, title=f"Dress {i}", price=f"{20 + i}.50")
        embed(p, [1.0, 0.2 * (i + 1), 0.0, 0.0])
        others.append(p)
    return anchor, others
