"""The recommendation widgets follow a shopper who clicks around, in a real browser."""

import pytest

from recommendations.models import Event

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def strip_ids(page, widget):
    cards = page.locator(f'section[data-widget="{widget}"] .card[data-product-id]')
    return [int(cards.nth(i).get_attribute("data-product-id")) for i in range(cards.count())]


def test_widgets_change_as_the_shopper_clicks(page, catalogue):
    page.goto("/")
    # No events, no model: the home page's own "New in" grid, not a strip repeating it.
    assert strip_ids(page, "for-you") == []
    assert page.get_by_role("heading", name="New in").is_visible()

    anchor = catalogue[0]
    page.goto(anchor.get_absolute_url())
    similar = page.locator('section[data-widget="similar-items"]')
    assert similar.locator(".card img").count() >= 5
    assert "Looks similar" in similar.inner_text()
    assert "€" in similar.inner_text()
    assert anchor.pk not in strip_ids(page, "similar-items")

    # Click through the "Similar items" strip twice: each click is logged with its source.
    similar.locator("a.title").first.click()
    page.wait_for_url("**from=similar-widget")
    page.locator('section[data-widget="similar-items"] a.title').first.click()
    page.wait_for_url("**from=similar-widget")
    assert Event.objects.filter(kind="similar_click", source="similar-widget").count() == 2

    page.goto("/")
    warm = strip_ids(page, "for-you")
    assert len(warm) >= 5  # personalised from this session's clicks
    viewed = set(Event.objects.values_list("product_id", flat=True))
    assert "Looks similar" in page.locator('section[data-widget="for-you"]').inner_text()
    assert not viewed & set(warm[:1])  # leads with something new, not what was just seen


def test_a_card_reached_by_keyboard_is_scrolled_wholly_into_view_on_a_phone(page, catalogue):
    """At 360 px a strip shows two cards and part of a third (it says it scrolls); a card
    the keyboard reaches is scrolled in whole, not left half off its strip."""
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(catalogue[0].get_absolute_url())
    strip = page.locator('section[data-widget="similar-items"] .strip')
    box = strip.bounding_box()
    cards = strip.locator("[data-product-id]")
    assert cards.count() >= 5
    partly = [cards.nth(i).bounding_box() for i in range(3)]
    assert partly[2]["x"] < box["x"] + box["width"] < partly[2]["x"] + partly[2]["width"]
    for i in range(4):  # the title links of the first four cards, in turn
        cards.nth(i).locator("a.title").focus()
        page.wait_for_timeout(400)  # the smooth scroll
        card = cards.nth(i).bounding_box()
        left, right = card["x"], card["x"] + card["width"]
        assert box["x"] - 1 <= left and right <= box["x"] + box["width"] + 1
