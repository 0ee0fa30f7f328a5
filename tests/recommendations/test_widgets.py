"""The "Similar items" and "For you" strips in the shop's pages."""

import re

import pytest
from django.contrib.auth.models import AnonymousUser
from django.template import Context, Template
from django.test import RequestFactory
from django.urls import reverse

from recommendations.models import BlendProfile, Event
from tests.recommendations.blend_support import (  # noqa: F401 (fixtures)
    blend_environment,
    embed,
    event,
)


def section(html, widget):
    match = re.search(
        rf'<section class="recommendations[^"]*" data-widget="{widget}".*?</section>', html, re.S
    )
    assert match, f"no {widget} strip in the page"
    return match.group(0)


@pytest.mark.django_db
def test_product_page_shows_similar_items_with_images_prices_reasons(client, catalogue):
    anchor, others = catalogue
    html = client.get(anchor.get_absolute_url()).content.decode()
    strip = section(html, "similar-items")
    assert "Similar items" in strip and 'class="strip"' in strip
    assert f'href="{anchor.get_absolute_url()}' not in strip  # never itself
    for p in others:
        assert f"{p.get_absolute_url()}?from=similar-widget" in strip
        assert p.image.url in strip
        assert f"€{p.price}" in strip
    assert strip.count("Looks similar") == 5
    # Following a link from the page records a similar_click with the widget as its
    # source (the first visit started the session; this one counts).
    page = f"http://testserver{anchor.get_absolute_url()}"
    client.get(f"{others[0].get_absolute_url()}?from=similar-widget", HTTP_REFERER=page)
    click = Event.objects.get(product=others[0], kind="similar_click")
    assert click.source == "similar-widget" and click.session_key
    # The stored key is a keyed hash of the session key, never the live key.
    assert click.session_key != client.session.session_key and len(click.session_key) == 40


@pytest.mark.django_db
def test_for_you_strip_when_cold_and_on_a_page_of_new_products(client, rf, catalogue):
    """No events, no model: the strip shows the newest products, titled as such, unless the
    page lists new products itself (``new_in=False``, the shop's home page)."""
    request = rf.get("/")
    request.user, request.session = AnonymousUser(), None
    strip = render("{% recommended_for_you %}", request)
    assert strip.count("?from=for-you") >= 5  # image and title links of each product
    assert "Looks similar" not in strip and "Picked for you" not in strip
    assert '<h2 id="for-you-title">New in</h2>' in strip
    assert "Recommended for you" not in strip
    assert "<section" not in render("{% recommended_for_you new_in=False %}", request)
    home = client.get(reverse("shop:home")).content.decode()
    assert 'class="recommendations for-you"' not in home and "<h2>New in</h2>" in home
    # Once something sells, the strip has more to say than the grid below it.
    anchor, dresses = catalogue
    event(dresses[2], "purchase", session_key="someone-else")
    request = rf.get("/")  # a new page: the first one has shown the new products
    request.user, request.session = AnonymousUser(), None
    strip = render("{% recommended_for_you new_in=False %}", request)
    assert ">Popular and new</h2>" in strip
    home = client.get(reverse("shop:home")).content.decode()
    assert "Popular and new" in section(home, "for-you")


def test_for_you_title_says_what_the_strip_holds():
    from recommendations.blending.blend import Recommendation
    from recommendations.blending.core import REASONS
    from recommendations.templatetags.recommendations import _for_you_title

    def strip(*components):
        return [Recommendation(None, 0.5, REASONS[c]) for c in components]

    assert _for_you_title(strip("popularity", "popularity")) == "Popular now"
    assert _for_you_title(strip("recency")) == "New in"
    assert _for_you_title(strip("recency", "popularity")) == "Popular and new"
    # One product picked for the shopper makes the strip theirs.
    assert _for_you_title(strip("popularity", "affinity")) == "Recommended for you"
    assert _for_you_title(strip("visual", "recency")) == "Recommended for you"


@pytest.mark.django_db
def test_for_you_follows_the_session(client, catalogue, product_factory, category_factory):
    anchor, dresses = catalogue
    shoes = category_factory(name="Shoes", slug="shoes")
    boots = [product_factory(category=shoes, title=f"Boot {i}") for i in range(4)]
    for i, b in enumerate(boots):
        embed(b, [0.0, 0.0, 1.0, 0.1 * i])
    client.get(anchor.get_absolute_url())  # the first, cookie-less visit starts the session
    client.get(boots[0].get_absolute_url())
    client.get(boots[1].get_absolute_url())
    strip = section(client.get(reverse("shop:home")).content.decode(), "for-you")
    first_two = re.findall(r'data-product-id="(\d+)"', strip)[:2]
    assert {int(pk) for pk in first_two} == {boots[2].pk, boots[3].pk}
    assert '<h2 id="for-you-title">Recommended for you</h2>' in strip
    assert "Looks similar" in strip


def render(template, request, **context):
    return Template("{% load recommendations %}" + template).render(
        Context({"request": request, **context})
    )


@pytest.mark.django_db
def test_widget_can_name_a_profile_and_survives_an_unknown_one(catalogue, django_user_model):
    anchor, dresses = catalogue
    BlendProfile.objects.create(
        name="summer",
        visual_weight=0,
        collaborative_weight=0,
        affinity_weight=0,
        popularity_weight=1,
        recency_weight=0,
        diversity="none",
    )
    event(dresses[4], "purchase", session_key="someone-else")
    request = RequestFactory().get("/")
    request.user = django_user_model.objects.create_user("ann", password="pw-ann-123")
    request.session = None
    html = render('{% similar_items product profile="summer" k=3 %}', request, product=anchor)
    assert 'data-profile="summer"' in html and html.count('class="card"') == 3
    cards = re.findall(r'data-product-id="(\d+)"', html)
    assert int(cards[0]) == dresses[4].pk and "Popular now" in html
    html = render('{% similar_items product profile="nope" %}', request, product=anchor)
    assert 'data-profile="default"' in html
    assert int(re.findall(r'data-product-id="(\d+)"', html)[0]) == dresses[0].pk


@pytest.mark.django_db
def test_strip_is_left_out_when_nothing_qualifies(rf, django_user_model, product):
    product.stock = 0
    product.save()
    request = rf.get("/")
    request.user = django_user_model.objects.create_user("bob", password="pw-bob-123")
    request.session = None
    assert "<section" not in render("{% recommended_for_you %}", request)


@pytest.mark.django_db
def test_for_you_leaves_out_the_product_of_the_page(rf, catalogue):
    """A shopper's first product page is not in their history yet: without ``exclude`` the
    strip of new products would show the product the shopper is looking at."""
    anchor, others = catalogue
    request = rf.get("/")
    request.user = AnonymousUser()
    request.session = None
    shown = set(
        map(
            int,
            re.findall(
                r'data-product-id="(\d+)"', render("{% recommended_for_you k=50 %}", request)
            ),
        )
    )
    assert anchor.pk in shown
    request = rf.get("/")  # another page: this one has shown those products
    request.user, request.session = AnonymousUser(), None
    html = render("{% recommended_for_you k=50 exclude=product %}", request, product=anchor)
    left = set(map(int, re.findall(r'data-product-id="(\d+)"', html)))
    assert anchor.pk not in left and left == shown - {anchor.pk}


@pytest.mark.django_db
def test_for_you_leaves_out_what_the_similar_strip_above_it_shows(rf, catalogue):
    """A page with both strips shows each product once: "For you" below "Similar items"
    skips the similar products, and fills its length with others."""

    def page(template):
        request = rf.get("/")
        request.user, request.session = AnonymousUser(), None
        html = render(template, request, product=catalogue[0])
        return [
            [int(pk) for pk in re.findall(r'data-product-id="(\d+)"', part)]
            for part in html.split('data-widget="')[1:]
        ]

    [alone] = page("{% recommended_for_you k=5 exclude=product %}")
    similar, for_you = page(
        "{% similar_items product k=3 %}{% recommended_for_you k=2 exclude=product %}"
    )
    assert len(alone) == 5 and set(similar) < set(alone)  # alone, it repeats them
    assert set(for_you) == set(alone) - set(similar)


@pytest.mark.django_db
def test_a_strip_length_given_as_text_is_read_and_a_bad_one_is_the_default(
    rf, catalogue, caplog, settings
):
    """``k="3"`` (a quoted number or a text variable) is a length; ``k="lots"`` or a
    negative one is logged and the widget size used, never an error that breaks the page;
    ``k=0`` shows no strip."""
    anchor, _ = catalogue
    settings.RECOMMENDATIONS_WIDGET_SIZE = 4

    def cards(template, **context):
        request = rf.get("/")  # a page each: a page's strips do not repeat products
        request.user, request.session = AnonymousUser(), None
        html = render(template, request, product=anchor, **context)
        return len(re.findall(r'data-product-id="(\d+)"', html))

    assert cards('{% similar_items product k="3" %}') == 3
    assert cards("{% recommended_for_you k=n %}", n=" 2 ") == 2
    assert cards('{% recommended_for_you k="0" %}') == 0
    assert cards("{% similar_items product k=0 %}") == 0
    caplog.clear()
    assert cards('{% similar_items product k="lots" %}') == 4
    assert cards("{% recommended_for_you k=-3 %}") == 4
    assert cards("{% recommended_for_you k=100000 %}") == 4
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 3 and "k='lots' is not a number of products" in warned[0]


@pytest.mark.django_db
def test_similar_items_of_no_product_shows_nothing_and_says_so(rf, catalogue, caplog):
    """``{% similar_items missing %}`` (a misspelt variable) is not a strip of popular
    products under "Similar items"."""
    request = rf.get("/")
    request.user = AnonymousUser()
    request.session = None
    assert "<section" not in render("{% similar_items missing %}", request)
    assert "similar_items was given no product shown" in caplog.text
    caplog.clear()
    # A key that names no product shown is the same mistake; a real key is a product.
    assert "<section" not in render('{% similar_items "NOPE" %}', request)
    assert "similar_items was given no product shown ('NOPE')" in caplog.text
    assert "<section" in render("{% similar_items key %}", request, key=catalogue[0].pk)
