import re
from decimal import Decimal

import pytest
from django.urls import reverse

from recommendations.models import Event
from shop import spelling
from shop.models import Product


@pytest.mark.django_db
def test_home_lists_categories_and_products(client, product):
    response = client.get(reverse("shop:home"))
    assert response.status_code == 200
    html = response.content.decode()
    assert product.title in html
    assert product.category.name in html
    assert product.image.url in html
    # Without scripts the header's photo box searches with its own button, and is not
    # described by the hint that says it searches at once (the script adds both).
    photo_input = re.search(r'<input id="photo-input"[^>]*>', html).group(0)
    assert "aria-describedby" not in photo_input and "required" in photo_input
    assert '<button type="submit" id="photo-submit">Search by photo</button>' in html


@pytest.mark.django_db
def test_category_page_paginates(client, product_factory, category_factory):
    cat = category_factory(name="Coats", slug="coats")
    product_factory.create_batch(30, category=cat)
    first = client.get(reverse("shop:category", args=["coats"]))
    assert first.status_code == 200
    assert first.content.decode().count('class="card"') == 24
    second = client.get(reverse("shop:category", args=["coats"]) + "?page=2")
    assert second.content.decode().count('class="card"') == 6
    assert client.get(reverse("shop:category", args=["nope"])).status_code == 404


@pytest.mark.django_db
def test_product_page_shows_image_price_stock_and_find_similar(client, product):
    response = client.get(product.get_absolute_url())
    html = response.content.decode()
    assert response.status_code == 200
    assert product.image.url in html and "€19.99" in html and "In stock" in html
    assert reverse("visualsearch:similar", args=[product.pk]) in html
    # The first, cookie-less visit starts a session holding its view; the shopper's next
    # request records it, once: a reload within the view window adds nothing.
    assert not Event.objects.exists() and client.cookies.get("sessionid")
    client.get(product.get_absolute_url())
    client.get(product.get_absolute_url())
    assert Event.objects.filter(product=product, kind="view").count() == 1


@pytest.mark.django_db
def test_inactive_product_is_not_found(client, product_factory):
    hidden = product_factory(is_active=False)
    assert client.get(hidden.get_absolute_url()).status_code == 404


@pytest.fixture
def spelling_cache():
    spelling.forget()  # the words of the catalogue another test made
    yield
    spelling.forget()


@pytest.mark.django_db
def test_keyword_search_corrects_spelling_then_widens(
    client, product_factory, category_factory, spelling_cache
):
    tops = category_factory(name="T-shirt/top", slug="tops")
    product_factory(title="Relaxed Denim Trousers")
    product_factory(title="Leather Ankle Boots")
    product_factory(title="Urban T-shirt", category=tops)

    def search(query):
        html = client.get(reverse("shop:search"), {"q": query}).content.decode()
        return html, re.findall(r"(Relaxed Denim Trousers|Leather Ankle Boots|Urban T-shirt)", html)

    # A misspelt word is replaced by the nearest word of the catalogue, and the page says so
    # with a link to the corrected search; a swap of two letters is one edit.
    html, found = search("trousrs")
    assert set(found) == {"Relaxed Denim Trousers"}
    assert 'showing results for “<a href="/search/?q=trousers">trousers</a>”' in html
    assert set(search("ankel boot")[1]) == {"Leather Ankle Boots"}
    assert set(search("tshirt")[1]) == {"Urban T-shirt"}  # a hyphenated word, run together
    # Words that match nothing of a product widen the search to some of the words.
    html, found = search("blue denim trousers")
    assert set(found) == {"Relaxed Denim Trousers"} and "these have some of them" in html
    # Beyond two edits (or a first letter off), titles with words spelt alike (trigrams).
    html, found = search("rousers")
    assert set(found) == {"Relaxed Denim Trousers"} and "words spelt like them" in html
    html, found = search("zzzzqqq")
    assert not found and "Nothing matches your search" in html
    # What matches as typed is never corrected.
    html, found = search("boots")
    assert set(found) == {"Leather Ankle Boots"} and "showing results for" not in html


def test_spelling_distance_counts_swaps_as_one_edit_and_stops_early():
    assert spelling.distance("ankel", "ankle", 2) == 1
    assert spelling.distance("sneeker", "sneakers", 2) == 2
    assert spelling.distance("boot", "boots", 1) == 1
    assert spelling.distance("coat", "sandals", 2) == 3  # past the limit: limit + 1
    assert spelling.distance("x" * 30, "y" * 30, 2) == 3


@pytest.mark.django_db
def test_keyword_search_matches_every_word_stemmed_and_ranks_titles_first(client, product_factory):
    product_factory(title="Coastal Sandals 00001", description="Coastal sandals.")
    product_factory(title="Vintage Coat 00002", description="Vintage coat.")
    product_factory(title="Vintage Bag 00003", description="Vintage bag.")
    product_factory(title="Urban Bag 00004", description="Goes with a vintage coat.")

    def titles(query):
        html = client.get(reverse("shop:search"), {"q": query}).content.decode()
        assert "words spelt like them" not in html
        return list(dict.fromkeys(re.findall(r"\w+ \w+ 0000\d", html)))

    # Stemmed ("coats" is "coat"), never a word that only starts alike ("Coastal").
    assert titles("coats") == ["Vintage Coat 00002", "Urban Bag 00004"]
    # Every word must match: not every vintage product, nor every bag.
    assert titles("vintage bag") == ["Vintage Bag 00003", "Urban Bag 00004"]
    assert titles('"vintage coat" -urban') == ["Vintage Coat 00002"]


@pytest.mark.django_db
def test_search_says_what_it_found_and_refuses_what_it_cannot_search(client, product_factory):
    product_factory(title="Relaxed Denim Trousers")
    found = client.get(reverse("shop:search"), {"q": "denim"}).content.decode()
    assert "1 product</span>" in found
    nothing = client.get(reverse("shop:search"), {"q": "zzzzqqq"}).content.decode()
    assert "0 products</span>" in nothing and "Nothing matches your search" in nothing
    empty = client.get(reverse("shop:search"), {"q": "  "}).content.decode()
    assert "Type what you are looking for" in empty and "Results for" not in empty
    # The database cannot store a NUL; a page of text is no search. Each says what is wrong.
    for bad, message in (
        ("a\x00b", "cannot be searched. Please search again with plain text."),
        ("x" * 201, "Your search is too long: use at most 200 characters (it has 201)."),
        # Bounded work: no index narrows a search of exclusions only, and every word costs.
        ("-x " * 10, "words starting with “-” only leave products out"),
        ("-x or -y", "words starting with “-” only leave products out"),
        ("-x -y the .", "words starting with “-” only leave products out"),
        ("a " * 17, "Your search has 17 words: use at most 16."),
    ):
        response = client.get(reverse("shop:search"), {"q": bad})
        assert response.status_code == 400
        assert message in response.content.decode()
    assert "plain text" not in response.content.decode()  # the long one has its own words
    # A quoted "-word" is a word to look for; a word beside exclusions is a search.
    for fine in ('"-denim"', "denim -wool"):
        assert client.get(reverse("shop:search"), {"q": fine}).status_code == 200


@pytest.mark.django_db
def test_cart_and_checkout_record_events_and_take_stock(client, product):
    client.post(reverse("shop:cart_add", args=[product.pk]), {"quantity": 2})
    assert Event.objects.filter(kind="cart", product=product).exists()
    response = client.post(reverse("shop:checkout"), follow=True)
    assert "Your order of 2 items is confirmed." in response.content.decode()
    product.refresh_from_db()
    assert product.stock == 3
    purchase = Event.objects.get(kind="purchase")
    assert purchase.session_key and purchase.user is None


@pytest.mark.django_db
def test_a_cart_sent_twice_at_once_is_bought_once(client, product):
    """Two checkouts of one session whose requests both loaded the full cart (sent at
    once): the second reads the cart again under the checkout's lock and finds it bought."""
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth.models import AnonymousUser
    from django.test import RequestFactory

    from shop.services import AlreadyBought, Cart

    client.post(reverse("shop:cart_add", args=[product.pk]), {"quantity": 2})
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    store = import_module(settings.SESSION_ENGINE).SessionStore

    def request():
        req = RequestFactory().post("/cart/checkout/")
        req.session = store(key)
        req.user = AnonymousUser()
        return req

    first, second = Cart(request()), Cart(request())
    assert first.items == second.items == {product.pk: 2}
    first.checkout()
    with pytest.raises(AlreadyBought, match="Your order is already confirmed."):
        second.checkout()
    product.refresh_from_db()
    assert product.stock == 3
    assert Event.objects.filter(kind="purchase").count() == 1


def _while_another_request_holds_the_cart(client, send, stored_meanwhile):
    """``send()``, a request of ``client``'s session, made while another request of the
    session holds the cart's lock (a connection of its own); that one stores the cart
    ``stored_meanwhile`` and ends. Checks that ``send`` waited; returns its response."""
    import threading
    from importlib import import_module

    from django.conf import settings
    from django.db import connections

    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    holder = connections.create_connection("default")
    holder.set_autocommit(False)
    with holder.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"shop.cart:{key}"]
        )
    answers = []

    def run():
        answers.append(send())
        connections.close_all()  # this thread's own connection

    waiting = threading.Thread(target=run)
    waiting.start()
    waiting.join(1.0)
    assert waiting.is_alive() and not answers  # waits for the lock
    store = import_module(settings.SESSION_ENGINE).SessionStore(key)
    store["cart"] = stored_meanwhile
    store.save()
    holder.rollback()
    holder.close()
    waiting.join(10)
    assert answers
    return answers[0]


@pytest.mark.django_db(transaction=True)
def test_a_checkout_waits_for_another_of_the_same_session(client, product):
    """The second of two checkouts sent at once waits on the first's lock, then finds the
    cart bought (the page says the order is confirmed, not that the cart is empty)."""
    client.post(reverse("shop:cart_add", args=[product.pk]), {"quantity": 2})
    answer = _while_another_request_holds_the_cart(
        client, lambda: client.post(reverse("shop:checkout"), follow=True), {}
    )
    assert "Your order is already confirmed." in answer.content.decode()
    product.refresh_from_db()
    assert product.stock == 5 and not Event.objects.filter(kind="purchase").exists()


@pytest.mark.django_db(transaction=True)
def test_two_adds_at_once_keep_both_products(client, product_factory):
    """Two tabs adding at once: the second waits for the first's lock, then adds to the
    cart the first stored, not to the copy it loaded before (which lacked the first's)."""
    from importlib import import_module

    from django.conf import settings

    first, second, third = product_factory.create_batch(3, stock=5)
    client.post(reverse("shop:cart_add", args=[first.pk]), {"quantity": 1})
    answer = _while_another_request_holds_the_cart(
        client,
        lambda: client.post(reverse("shop:cart_add", args=[third.pk]), {"quantity": 2}),
        {str(first.pk): 1, str(second.pk): 1},  # what the other tab stored
    )
    assert answer.status_code == 302
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    stored = import_module(settings.SESSION_ENGINE).SessionStore(key).load()["cart"]
    assert stored == {str(first.pk): 1, str(second.pk): 1, str(third.pk): 2}
    page = client.get(reverse("shop:cart")).content.decode()
    assert all(p.title in page for p in (first, second, third))


@pytest.mark.django_db
def test_cannot_buy_more_than_stock(client, product):
    """The message says how many more can be added (the product has 5)."""
    add = reverse("shop:cart_add", args=[product.pk])
    response = client.post(add, {"quantity": 6}, follow=True)
    assert f"Only 5 more of {product.title} can be added." in response.content.decode()
    assert not Event.objects.filter(kind="cart").exists()
    client.post(add, {"quantity": 3})
    response = client.post(add, {"quantity": 3}, follow=True)
    assert "Only 2 more" in response.content.decode() and "(3 already in your cart)" in (
        response.content.decode()
    )
    cart = client.get(reverse("shop:cart")).content.decode()
    assert '<th scope="col">Unit price</th>' in cart and "€19.99" in cart and "€59.97" in cart
    page = client.get(product.get_absolute_url()).content.decode()
    assert 'max="5"' in page


@pytest.mark.django_db
def test_bad_quantity_is_a_message_not_an_error(client, product):
    response = client.post(
        reverse("shop:cart_add", args=[product.pk]), {"quantity": "lots"}, follow=True
    )
    assert response.status_code == 200
    assert f"quantity between 1 and {min(20, product.stock)}." in response.content.decode()
    # The range said is what can be bought; a product out of stock says so.
    product.stock = 4
    product.save()
    add = reverse("shop:cart_add", args=[product.pk])
    assert (
        "quantity between 1 and 4."
        in client.post(add, {"quantity": "0"}, follow=True).content.decode()
    )
    product.stock = 0
    product.save()
    for quantity in ("1", "-3"):
        page = client.post(add, {"quantity": quantity}, follow=True).content.decode()
        assert f"{product.title} is out of stock." in page


@pytest.mark.django_db
def test_buying_an_empty_cart_says_it_is_empty_once(client):
    page = client.post(reverse("shop:checkout"), follow=True).content.decode()
    assert page.count("Your cart is empty.") == 1


@pytest.mark.django_db
def test_signup_login_logout(client):
    response = client.post(
        reverse("shop:signup"),
        {"username": "ann", "password1": "a-long-pass-123", "password2": "a-long-pass-123"},
    )
    assert response.status_code == 302
    assert "ann" in client.get(reverse("shop:home")).content.decode()
    client.post(reverse("logout"))
    assert client.login(username="ann", password="a-long-pass-123")


@pytest.mark.django_db
def test_events_of_a_signed_in_shopper_carry_the_user(client, django_user_model, product):
    user = django_user_model.objects.create_user("bob", password="pw-bob-12345")
    client.force_login(user)
    client.get(
        product.get_absolute_url() + "?from=similar",
        HTTP_REFERER=f"http://testserver{reverse('visualsearch:similar', args=[product.pk])}",
    )
    event = Event.objects.get()
    assert event.user == user and event.kind == "similar_click" and event.source == "similar"


@pytest.mark.django_db
def test_admin_change_list_has_thumbnails(admin_client, product):
    response = admin_client.get(reverse("admin:shop_product_changelist"))
    assert response.status_code == 200
    # The thumbnail is the row's first link: its alt text names the product.
    assert f'<img src="{product.image.url}" alt="{product.title}"' in response.content.decode()


@pytest.mark.django_db
def test_product_model_defaults(category_factory):
    p = Product.objects.create(title="T", category=category_factory(), price=Decimal("1.00"))
    assert p.is_active and p.stock == 0 and not p.in_stock
    assert p.created_at and p.updated_at


@pytest.mark.django_db
def test_admin_change_list_offers_the_visual_search_actions(admin_client, product):
    html = admin_client.get(reverse("admin:shop_product_changelist")).content.decode()
    assert 'value="compute_embeddings"' in html
    assert 'value="find_similar_to_selected"' in html


@pytest.mark.django_db
def test_cart_quantities_change_within_stock(client, product):
    """The cart page changes a line's quantity (the product has 5); 0 takes it out."""
    client.post(reverse("shop:cart_add", args=[product.pk]), {"quantity": 1})
    update = reverse("shop:cart_update", args=[product.pk])
    cart = client.get(reverse("shop:cart")).content.decode()
    assert f'action="{update}"' in cart and f"Quantity of {product.title}" in cart
    page = client.post(update, {"quantity": 3}, follow=True).content.decode()
    assert "€59.97" in page  # 3 x €19.99
    assert Event.objects.filter(kind="cart").count() == 1  # a change is not a new add
    # More than the stock, or no number: a message, and the cart as it was.
    page = client.post(update, {"quantity": 6}, follow=True).content.decode()
    assert f"Only 5 of {product.title} are in stock." in page and "€59.97" in page
    page = client.post(update, {"quantity": "-1"}, follow=True).content.decode()
    assert "Please choose a quantity between 0 and 5." in page and "€59.97" in page
    # A product not in the cart is not added by a change.
    other = reverse("shop:cart_update", args=[product.pk + 1000])
    assert client.post(other, {"quantity": 1}).status_code == 404
    client.post(reverse("shop:cart_remove", args=[product.pk]))
    page = client.post(update, {"quantity": 2}, follow=True).content.decode()
    assert f"{product.title} is not in your cart." in page and "Your cart is empty." in page
    client.post(reverse("shop:cart_add", args=[product.pk]), {"quantity": 2})
    page = client.post(update, {"quantity": 0}, follow=True).content.decode()
    assert "Your cart is empty." in page
    assert client.get(update).status_code == 405


@pytest.mark.django_db
def test_product_photos_are_served_with_a_day_of_browser_caching(client, product):
    response = client.get(product.image.url)
    response.close()  # a file streams: its request ends (and its request scope) on close
    assert response.status_code == 200
    assert "max-age=86400" in response["Cache-Control"] and "public" in response["Cache-Control"]


@pytest.mark.django_db
def test_a_photo_path_out_of_the_media_folder_is_a_plain_404(client, product, caplog):
    """``/media/../`` is refused as a missing file, without a security traceback in the
    log for each such request; the product's own photo is served."""
    assert client.get(product.image.url).status_code == 200
    for path in ("/media/../secret_key", "/media/a/../../secret_key", "/media/%2e%2e/x"):
        with caplog.at_level("INFO"):
            caplog.clear()
            assert client.get(path).status_code == 404
        assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
        assert not [r for r in caplog.records if r.exc_info]
