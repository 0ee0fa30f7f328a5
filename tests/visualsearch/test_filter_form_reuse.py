"""The "find similar" page's filter fields, rendered once per process while no filter is set
(``lookalike.fragments``): the same markup as rendering them, a filled-in or invalid form
rendered each time, and the template's context as documented."""

import pytest
from django import forms
from django.http import QueryDict
from django.utils import translation

from lookalike.fragments import FORMS, filled_in, render_form_fields
from shop.models import Product
from tests.recommendations.blend_support import (  # noqa: F401 (fixture)
    blend_environment,
    embed,
)
from visualsearch.forms import SimilarFiltersForm

pytestmark = pytest.mark.django_db

FILTERS = "visualsearch/_filters.html"


@pytest.fixture
def catalogue(product_factory):
    products = [product_factory(title=f"P{i}", stock=5) for i in range(3)]
    for i, p in enumerate(products):
        embed(p, [1.0, 0.2 * i, 0.0, 0.0])
    FORMS.clear()
    yield products
    FORMS.clear()  # nothing a test's own templates rendered is kept for the next


def filter_renders(response):
    return sum(t.name == FILTERS for t in response.templates)


def form_html(response):
    html = response.content.decode()
    start = html.index('<form class="filters"')
    return html[start : html.index("</form>", start)]


def url(product, query=""):
    return f"/visual/similar/{product.pk}/{query}"


def test_the_form_is_rendered_once_for_every_product(catalogue, client):
    first = client.get(url(catalogue[0]))
    assert filter_renders(first) == 1
    other = client.get(url(catalogue[1]))
    assert other.status_code == 200 and filter_renders(other) == 0
    # The same fields as rendering them afresh (the form's action is the page's own).
    FORMS.clear()
    fresh = client.get(url(catalogue[1]))
    assert filter_renders(fresh) == 1
    assert form_html(other) == form_html(fresh)
    assert 'name="min_price"' in form_html(other) and 'name="same_category"' in form_html(other)


def test_a_filled_in_form_is_rendered_each_time_and_keeps_nothing(catalogue, client):
    client.get(url(catalogue[0]))
    for _ in range(2):
        page = client.get(url(catalogue[0], "?min_price=7"))
        assert filter_renders(page) == 1
        assert 'value="7"' in form_html(page)
    plain = client.get(url(catalogue[1]))
    assert filter_renders(plain) == 0 and 'value="7"' not in form_html(plain)
    assert len(FORMS._values) == 1


def test_blank_values_show_the_kept_form_and_a_sent_box_does_not(catalogue, client):
    client.get(url(catalogue[0]))
    blank = client.get(url(catalogue[1], "?min_price=&in_stock="))
    assert filter_renders(blank) == 0
    FORMS.clear()
    assert form_html(blank) == form_html(client.get(url(catalogue[1])))
    ticked = client.get(url(catalogue[1], "?in_stock=off"))  # any text ticks a checkbox
    assert filter_renders(ticked) == 1
    assert 'name="in_stock" id="id_in_stock" checked' in form_html(ticked)


def test_an_invalid_filter_shows_its_error_not_a_kept_form(catalogue, client):
    client.get(url(catalogue[0]))
    page = client.get(url(catalogue[0], "?max_price=abc"))
    assert page.status_code == 400
    assert filter_renders(page) == 1
    assert 'class="vs-error"' in form_html(page)


def test_a_saved_product_renders_the_form_afresh(catalogue, client):
    client.get(url(catalogue[0]))
    assert filter_renders(client.get(url(catalogue[0]))) == 0
    Product.objects.get(pk=catalogue[2].pk).save()  # moves the catalogue's stamp
    assert filter_renders(client.get(url(catalogue[0]))) == 1


class TagsForm(forms.Form):
    tags = forms.MultipleChoiceField(choices=[("a", "A"), ("b", "B")], required=False)
    count = forms.IntegerField(required=False)


def test_filled_in_reads_what_the_widgets_show():
    assert not filled_in(TagsForm(QueryDict("")))
    assert filled_in(TagsForm(QueryDict("tags=a&tags=")))  # a list, not its last value
    assert filled_in(TagsForm(QueryDict("count=0")))
    assert filled_in(TagsForm(initial={"count": 0}))  # an unbound form shows its initial
    assert not filled_in(TagsForm())


def test_filled_in_reads_values_and_errors_not_blank_fields():
    assert not filled_in(SimilarFiltersForm())
    assert not filled_in(SimilarFiltersForm({"min_price": "", "unknown": "x"}))
    assert filled_in(SimilarFiltersForm({"in_stock": "on"}))
    assert filled_in(SimilarFiltersForm({"min_price": "3"}, prefix="f")) is False
    assert filled_in(SimilarFiltersForm({"f-min_price": "3"}, prefix="f"))
    invalid = SimilarFiltersForm({"min_price": "5", "max_price": "1"})
    assert filled_in(invalid) and invalid.errors


def test_each_language_and_prefix_has_its_own_markup(catalogue, settings, tmp_path):
    (tmp_path / "fields.html").write_text(
        "{% load i18n %}{% get_current_language as lang %}{{ lang }} {{ form.min_price }}"
    )
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path]}]
    english = render_form_fields(SimilarFiltersForm({}), "fields.html")
    with translation.override("fr"):
        french = render_form_fields(SimilarFiltersForm({}), "fields.html")
    prefixed = render_form_fields(SimilarFiltersForm({}, prefix="f"), "fields.html")
    assert english.startswith("en") and french.startswith("fr")
    assert 'name="f-min_price"' in prefixed and 'name="f-min_price"' not in english
    assert render_form_fields(SimilarFiltersForm({}), "fields.html") == english
    assert len(FORMS._values) == 3


def test_the_template_sees_the_page_only_when_reuse_is_off(catalogue, client, settings, tmp_path):
    """Reused, the filter template gets ``form`` alone, so markup made for one product is
    never shown on another's page; with LOOKALIKE_REUSE_FORMS off it is rendered with the
    page's context, as an include would be."""
    (tmp_path / "visualsearch").mkdir()
    (tmp_path / FILTERS).write_text(
        '<span id="fields">{{ form.min_price.name }} {{ product.title|default:"none" }}</span>'
    )
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path]}]
    assert (
        '<span id="fields">min_price none</span>' in client.get(url(catalogue[0])).content.decode()
    )
    settings.LOOKALIKE_REUSE_FORMS = False
    for product in catalogue[:2]:
        html = client.get(url(product)).content.decode()
        assert f'<span id="fields">min_price {product.title}</span>' in html
