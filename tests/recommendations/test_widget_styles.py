"""A strip links its stylesheet, so it looks right on a host page that knows nothing of it."""

import pytest
from django.template import Context, Template
from django.test import RequestFactory

from tests.recommendations.blend_support import embed

pytestmark = pytest.mark.django_db


def strip_html(settings, product, strips="{% similar_items product %}"):
    request = RequestFactory().get("/")
    request.session = None
    return Template("{% load recommendations %}" + strips).render(
        Context({"request": request, "product": product})
    )


def test_the_strip_links_the_widget_stylesheet_unless_the_shop_styles_it(settings, product_factory):
    anchor, other = product_factory(), product_factory()
    embed(anchor, [1.0, 0.0, 0.0, 0.0])
    embed(other, [1.0, 0.1, 0.0, 0.0])
    settings.LOOKALIKE_WIDGET_STYLESHEET = "lookalike/lookalike.css"
    html = strip_html(settings, anchor)
    assert '<link rel="stylesheet" href="/static/lookalike/lookalike.css">' in html
    settings.LOOKALIKE_WIDGET_STYLESHEET = None  # the reference shop's setting
    html = strip_html(settings, anchor)
    assert "stylesheet" not in html and 'data-widget="similar-items"' in html


def test_a_page_with_two_strips_links_the_stylesheet_once(settings, product_factory):
    anchor, other = product_factory(), product_factory()
    embed(anchor, [1.0, 0.0, 0.0, 0.0])
    embed(other, [1.0, 0.1, 0.0, 0.0])
    settings.LOOKALIKE_WIDGET_STYLESHEET = "lookalike/lookalike.css"
    html = strip_html(settings, anchor, "{% similar_items product %}{% recommended_for_you %}")
    assert html.count('data-widget="') == 2
    assert html.count("lookalike/lookalike.css") == 1
    # The script that scrolls a focused card into view, likewise, even unstyled.
    assert html.count('<script src="/static/lookalike/strips.js" defer>') == 1
    settings.LOOKALIKE_WIDGET_STYLESHEET = None
    html = strip_html(settings, anchor, "{% similar_items product %}{% recommended_for_you %}")
    assert html.count("lookalike/strips.js") == 1


def test_two_strips_of_one_widget_have_headings_of_their_own(settings, product_factory):
    anchor, other = product_factory(), product_factory()
    embed(anchor, [1.0, 0.0, 0.0, 0.0])
    embed(other, [1.0, 0.1, 0.0, 0.0])
    html = strip_html(settings, anchor, "{% similar_items product %}" * 2)
    assert html.count('aria-labelledby="similar-items-title"') == 1
    assert html.count('<h2 id="similar-items-title">') == 1
    assert 'aria-labelledby="similar-items-title-2"' in html
    assert '<h2 id="similar-items-title-2">' in html


def test_an_empty_first_strip_leaves_the_link_to_the_next(settings, product_factory):
    """An empty strip renders nothing, its link neither: the next one links the sheet."""
    from recommendations.blending.blend import Recommendation
    from recommendations.templatetags.recommendations import _strip, _with_cards

    settings.LOOKALIKE_WIDGET_STYLESHEET = "lookalike/lookalike.css"
    request = RequestFactory().get("/")

    def strip(recommendations):
        made = _strip(recommendations, widget="w", title="T", source="s", profile_name="p")
        return _with_cards({**made, "recommendation_id": ""}, request)

    assert strip([])["stylesheet"] is None
    shown = strip([Recommendation(product=product_factory(), score=1.0, reason="New in")])
    assert shown["stylesheet"] == "lookalike/lookalike.css"
