import pytest

from recommendations.models import Event

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_shopper_browses_a_category_and_buys(page, product_factory, category_factory):
    coats = category_factory(name="Coats", slug="coats")
    product = product_factory(title="Heritage Coat 00042", category=coats, stock=3)
    other = product_factory(title="Urban Coat 00007", category=coats)

    page.goto("/")
    page.get_by_role("link", name="Coats").first.click()
    # The first product page a new browser opens starts its session, holding the view ...
    page.locator("a.title", has_text="Urban Coat 00007").click()
    assert not Event.objects.exists()
    page.goto("/")  # ... which counts as the browser comes back with the cookie
    assert list(Event.objects.values_list("product", "kind")) == [(other.pk, "view")]
    page.get_by_role("link", name="Coats").first.click()
    page.locator("a.title", has_text="Heritage Coat 00042").click()
    assert page.locator("img.hero").evaluate("img => img.naturalWidth") > 0
    page.get_by_role("button", name="Add to cart").click()
    assert "Cart (1)" in page.content()
    page.get_by_role("button", name="Buy now").click()
    assert "Your order of 1 item is confirmed" in page.content()

    product.refresh_from_db()
    assert product.stock == 2
    kinds = set(Event.objects.filter(product=product).values_list("kind", flat=True))
    assert kinds == {"view", "cart", "purchase"}
    assert Event.objects.filter(product=other).count() == 1


def test_a_long_query_wraps_on_a_phone(page, product_factory):
    """The query is repeated in the results' heading: one long word must not widen the page."""
    product_factory(title="Heritage Coat 00042")
    page.set_viewport_size({"width": 375, "height": 700})
    page.goto("/search/?q=" + "W" * 200)
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 375, width
