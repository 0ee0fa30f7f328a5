"""A shopper and an admin use visual search in a real browser (Debian's chromium)."""

import io
import threading

import pytest
from PIL import Image

from lookalike.jobs.models import Job
from recommendations.models import Event
from visualsearch.models import ProductEmbedding

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_find_similar_from_a_product_page(page, catalogue):
    product = catalogue[0]
    page.goto(product.get_absolute_url())
    page.get_by_role("link", name="Find similar").click()
    page.wait_for_url(f"**/visual/similar/{product.pk}/**")
    cards = page.locator(".card[data-product-id]")
    ids = [int(cards.nth(i).get_attribute("data-product-id")) for i in range(cards.count())]
    assert product.pk not in ids and len(ids) == 12  # the 12 most similar, never itself
    scores = [float(cards.nth(i).get_attribute("data-score")) for i in range(cards.count())]
    assert scores == sorted(scores, reverse=True)  # the closest first

    # Narrow to in-stock products of the same category: still full pages, all matching.
    page.get_by_label("Same category").check()
    page.get_by_label("In stock only").check()
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url("**in_stock=**")
    shown = page.locator(".vs-results .card[data-product-id]")
    assert 1 <= shown.count() <= 12
    by_id = {p.pk: p for p in catalogue}
    for i in range(shown.count()):
        hit = by_id[int(shown.nth(i).get_attribute("data-product-id"))]
        assert hit.category_id == product.category_id and hit.stock > 0

    shown.first.locator("a.title").click()
    page.wait_for_url("**?from=similar")
    assert Event.objects.filter(kind="similar_click", source="similar").count() == 1


def upload_on_the_photo_page(page, name, mime, data):
    page.goto("/visual/photo/")
    page.set_input_files(
        "#vs-upload input[name=image]", files=[{"name": name, "mimeType": mime, "buffer": data}]
    )
    page.locator("#vs-upload button[type=submit]").click()


def on_a_grey_photo(page):
    """The results page of a plain 96 x 64 grey photo; returns ``at(x, y)``, the page
    position of the photo's pixel, and ``drag(a, b)``, a mouse drag between two pixels."""
    photo = Image.new("RGB", (96, 64), (128, 128, 128))
    buf = io.BytesIO()
    photo.save(buf, format="PNG")
    upload_on_the_photo_page(page, "me.png", "image/png", buf.getvalue())
    page.wait_for_selector("#vs-crop")
    img = page.locator("#vs-photo").bounding_box()
    sx, sy = img["width"] / 96, img["height"] / 64

    def at(x, y):
        return img["x"] + x * sx, img["y"] + y * sy

    def drag(a, b):
        page.mouse.move(*at(*a))
        page.mouse.down()
        page.mouse.move(*at(*b), steps=6)
        page.mouse.up()

    return at, drag


def _png_of(product):
    product.image.open("rb")
    data = product.image.read()
    product.image.close()
    return data


def test_search_by_photo_and_crop_a_box(page, catalogue):
    target = catalogue[5]
    # A shopper's photo: the product on a wide grey background.
    original = Image.open(io.BytesIO(_png_of(target))).convert("RGB")
    photo = Image.new("RGB", (96, 64), (128, 128, 128))
    photo.paste(original, (50, 16))
    buf = io.BytesIO()
    photo.save(buf, format="JPEG", quality=95)

    page.goto("/")
    # Picking a photo searches at once, and the box says so before it is used (WCAG 3.2.2).
    hint = page.locator("#photo-hint")
    assert hint.is_visible() and "as soon as you pick a photo" in hint.text_content()
    assert page.locator("#photo-input").get_attribute("aria-describedby") == "photo-hint"
    assert not page.locator("#photo-submit").is_visible()  # for browsers without scripts
    page.set_input_files(
        "#photo-input",
        files=[{"name": "me.jpg", "mimeType": "image/jpeg", "buffer": buf.getvalue()}],
    )
    page.wait_for_url("**/visual/photo/**")
    assert page.locator(".vs-results .card").count() == 12
    # A new photo's page starts at the top, as any new page does.
    assert page.evaluate("document.activeElement.id") != "vs-results-heading"

    # Drag a rectangle around the product and search only that part.
    img = page.locator("#vs-photo")
    box = img.bounding_box()
    sx, sy = box["width"] / 96, box["height"] / 64
    page.mouse.move(box["x"] + 49 * sx, box["y"] + 15 * sy)
    page.mouse.down()
    page.mouse.move(box["x"] + 70 * sx, box["y"] + 40 * sy, steps=5)
    page.mouse.move(box["x"] + 83 * sx, box["y"] + 49 * sy, steps=5)
    page.mouse.up()
    assert page.locator("#vs-box").input_value() != ""
    page.get_by_role("button", name="Search selected area").click()
    page.wait_for_selector("text=for the selected area")
    first = page.locator(".vs-results .card[data-product-id]").first
    assert int(first.get_attribute("data-product-id")) == target.pk


def test_the_crop_box_takes_two_taps_and_moves_by_dragging(page, catalogue):
    """Without dragging (WCAG 2.5.7): a tap sets a corner, a second the opposite one; a tap
    never clears the area, and dragging inside the area moves it."""
    at, drag = on_a_grey_photo(page)
    area, status = page.locator("#vs-box"), page.locator("#vs-crop-status")
    page.mouse.click(*at(10, 10))
    assert area.input_value() == "" and "First corner set" in status.text_content()
    assert page.locator(".vs-corner").is_visible()
    page.mouse.click(*at(50, 40))
    assert area.input_value() == "10,10,50,40" and "Selected area" in status.text_content()
    assert not page.locator(".vs-corner").is_visible()
    # Dragged from inside, the area moves, its size kept.
    drag((30, 25), (40, 30))
    assert area.input_value() == "20,15,60,45"
    # A tap inside it leaves it where it is; the search is made with it.
    page.mouse.click(*at(30, 25))
    assert area.input_value() == "20,15,60,45"
    with page.expect_navigation():
        page.get_by_role("button", name="Search selected area").click()
    assert page.locator("#vs-box").input_value() == "20,15,60,45"


def test_the_crop_box_works_from_the_keyboard(page, catalogue):
    """A shopper without a pointer draws, moves, resizes, clears and searches the area
    with the keyboard, and hears each change."""
    target = catalogue[5]
    original = Image.open(io.BytesIO(_png_of(target))).convert("RGB")
    photo = Image.new("RGB", (96, 64), (128, 128, 128))
    photo.paste(original, (50, 16))  # the product spans x 50-78, y 16-44
    buf = io.BytesIO()
    photo.save(buf, format="JPEG", quality=95)
    upload_on_the_photo_page(page, "me.jpg", "image/jpeg", buf.getvalue())
    page.wait_for_selector("#vs-crop")
    # An application, so that screen readers pass it the arrow keys.
    frame = page.get_by_role("application", name="Your photo: choose the area to search")
    assert frame.get_attribute("aria-roledescription") == "area picker"
    # The live region reads each change; it is not read again as the description.
    assert frame.get_attribute("aria-describedby") == "vs-crop-keys"
    status = page.locator("#vs-crop-status")
    area = page.locator("#vs-box")
    assert area.input_value() == "" and page.locator("#vs-search-area").is_disabled()

    frame.focus()
    frame.press("ArrowRight")  # no area yet: one is drawn in the middle
    assert area.input_value() == "24,16,72,48"
    assert status.text_content() == (
        "Selected area: 50% of the width and 50% of the height, 25% from the left and 25% "
        "from the top."
    )
    for _ in range(20):  # moved right by 2% a press, never past the photo's edge
        frame.press("ArrowRight")
    assert area.input_value() == "48,16,96,48"
    for _ in range(7):
        frame.press("Shift+ArrowLeft")  # narrower, from the right
    assert area.input_value() == "48,16,82,48"
    frame.press("Escape")
    assert area.input_value() == "" and "No area selected" in status.text_content()
    assert page.locator("#vs-search-area").is_disabled()

    frame.press("ArrowDown")
    for _ in range(12):
        frame.press("ArrowRight")
    for _ in range(7):
        frame.press("Shift+ArrowLeft")
    assert area.input_value() == "48,16,82,48"
    frame.press("Enter")  # searches the area
    page.wait_for_selector("text=for the selected area")
    # The focus is on the new results, not back at the top of the page.
    assert page.evaluate("document.activeElement.id") == "vs-results-heading"
    first = page.locator(".vs-results .card[data-product-id]").first
    assert int(first.get_attribute("data-product-id")) == target.pk


def test_a_photo_of_two_products_offers_each_as_a_box(page, catalogue):
    from tests.visualsearch.test_photo_search import two_product_photo

    first, second = catalogue[4], catalogue[11]
    photo, _boxes = two_product_photo(first, second)
    buf = io.BytesIO()
    photo.save(buf, format="PNG")
    upload_on_the_photo_page(page, "two.png", "image/png", buf.getvalue())
    page.wait_for_selector("text=2 products found in your photo")
    assert page.locator(".vs-region").count() == 2
    # The boxes are drawn over the products, and a product's button outlines its box.
    outline = page.locator("#vs-region-1")
    assert outline.bounding_box()["width"] > 20
    page.get_by_role("button", name="Search product 1").focus()
    assert "vs-region-active" in outline.get_attribute("class")
    # Picking a product searches with its box alone, as the crop box does; both stay on
    # offer, the one searched marked, so the other is one press away.
    page.get_by_role("button", name="Search product 1").click()
    page.wait_for_selector("text=for the selected area")
    picked = page.locator("#vs-box").input_value()
    assert picked != "" and page.locator(".vs-region").count() == 2
    one = page.get_by_role("button", name="Search product 1")
    assert one.get_attribute("aria-pressed") == "true" and one.get_attribute("data-box") == picked
    two = page.get_by_role("button", name="Search product 2")
    assert two.get_attribute("aria-pressed") == "false"
    two.click()
    page.wait_for_selector('button[aria-pressed="true"]:has-text("Search product 2")')
    assert page.locator("#vs-box").input_value() != picked
    # The whole photo again: found anew, nothing marked.
    with page.expect_navigation():
        page.get_by_role("button", name="Search whole photo").click()
    page.wait_for_selector("text=2 products found in your photo")
    assert page.locator('.vs-region-pick[aria-pressed="true"]').count() == 0


def test_admin_reindex_shows_live_progress(page, catalogue, django_user_model, settings):
    settings.LOOKALIKE_JOBS_BACKEND = "worker"  # queued: a worker thread below runs it
    django_user_model.objects.create_superuser("boss", "b@example.com", "pw-boss-123")
    page.goto("/admin/login/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", "pw-boss-123")
    page.click("input[type=submit]")
    page.goto("/admin/visualsearch/indexjob/")
    page.evaluate("window.__notReloaded = true")
    asked = []  # "Reindex all" asks first; dismissed, nothing starts
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Reindex all").click()
    assert asked and not Job.objects.exists()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Reindex all").click()
    page.evaluate("window.__notReloaded = true")  # the POST redirects back once
    job = Job.objects.get(lock_key="visualsearch.reindex")
    bar = page.locator(f'.vs-progress[data-job-id="{job.pk}"]')
    assert bar.count() == 1

    from django.db import connection

    from lookalike.jobs.worker import work

    def run_worker():
        try:
            work(once=True)
        finally:
            connection.close()  # the thread's own connection, or the test DB can't be dropped

    worker = threading.Thread(target=run_worker)
    worker.start()
    worker.join(60)
    # The page polls the status endpoint: the bar fills without a reload.
    page.wait_for_function(
        f"""() => {{
            const bar = document.querySelector('.vs-progress[data-job-id="{job.pk}"]');
            return bar && bar.querySelector('.vs-count').textContent.trim() === '30 / 30';
        }}""",
        timeout=15_000,
    )
    assert page.evaluate("window.__notReloaded") is True
    assert bar.locator(".vs-bar span").evaluate("s => s.style.width") == "100%"
    # Heard, not only seen: the bar's spoken value, and the job's end in the page's one
    # live region, with its number and result.
    assert bar.locator(".vs-bar").get_attribute("aria-valuetext") == "30 of 30"
    page.wait_for_function(
        "() => document.getElementById('vs-announce').textContent.includes('Succeeded')",
        timeout=15_000,
    )
    announced = page.locator("#vs-announce").text_content()
    assert announced.startswith(f"Job #{job.pk}: Succeeded. 30 embedded, 0 failed")
    assert page.locator("[role=status], [aria-live]").count() == 1
    job.refresh_from_db()
    assert job.status == "succeeded" and ProductEmbedding.objects.count() == 30


def test_a_refused_form_puts_the_focus_on_the_field_in_error(page, catalogue):
    """The message is tied to its field; the focus goes there, so that it is read out."""
    with page.expect_navigation():
        upload_on_the_photo_page(page, "notes.txt", "text/plain", b"not a photo")
    focused = page.evaluate("[document.activeElement.name, document.activeElement.type]")
    assert focused == ["image", "file"]
    assert page.locator("#vs-upload-errors").is_visible()
    page.goto(f"/visual/similar/{catalogue[0].pk}/?min_price=abc")
    assert page.evaluate("document.activeElement.name") == "min_price"


def test_turning_a_photo_on_its_side_searches_it_the_right_way_up(page, catalogue):
    target = catalogue[5]
    upright = Image.open(io.BytesIO(_png_of(target))).convert("RGB")
    buf = io.BytesIO()
    upright.resize((56, 28)).rotate(90, expand=True).save(buf, format="PNG")  # 28 x 56
    upload_on_the_photo_page(page, "side.png", "image/png", buf.getvalue())
    page.wait_for_selector("#vs-crop")
    frame = page.locator("#vs-crop")
    assert (frame.get_attribute("data-width"), frame.get_attribute("data-height")) == ("28", "56")
    group = page.get_by_role("group", name="Photo on its side? Turn it:")
    with page.expect_navigation():
        group.get_by_role("button", name="Turn right").click()
    frame = page.locator("#vs-crop")
    assert (frame.get_attribute("data-width"), frame.get_attribute("data-height")) == ("56", "28")
    # The turned preview is what the next search sends: no second turn is asked for.
    with page.expect_navigation():
        page.get_by_role("button", name="Search whole photo").click()
    frame = page.locator("#vs-crop")
    assert (frame.get_attribute("data-width"), frame.get_attribute("data-height")) == ("56", "28")


def test_the_area_keeps_its_shape_and_enter_in_a_filter_searches_it(page, catalogue):
    """A drag that draws a line leaves the area as it was; drawing with the mouse gives
    the photo the keyboard (Escape clears); "Clear area" clears without a key; Enter in a
    price field searches the area, not with the form's first button (a turn)."""
    _at, drag = on_a_grey_photo(page)
    area, status = page.locator("#vs-box"), page.locator("#vs-crop-status")
    drag((10, 10), (60, 50))
    assert area.input_value() == "10,10,60,50"
    assert page.evaluate("document.activeElement.id") == "vs-crop"
    drag((70, 20), (90, 20))  # a flat line: no area
    assert area.input_value() == "10,10,60,50" and "too small" in status.text_content()
    assert not page.locator(".vs-corner").is_visible()  # a drag is no half-done tap
    page.keyboard.press("Escape")
    assert area.input_value() == ""
    drag((10, 10), (60, 50))
    clear = page.get_by_role("button", name="Clear area")
    clear.click()
    assert area.input_value() == "" and not clear.is_visible()
    drag((20, 10), (70, 50))
    page.get_by_label("Max price").fill("500")
    with page.expect_navigation():
        page.get_by_label("Max price").press("Enter")
    assert page.locator("#vs-box").input_value() == "20,10,70,50"
    frame = page.locator("#vs-crop")
    assert (frame.get_attribute("data-width"), frame.get_attribute("data-height")) == ("96", "64")


def test_a_turn_takes_the_area_with_it(page, catalogue):
    _at, drag = on_a_grey_photo(page)
    drag((10, 5), (40, 25))
    assert page.locator("#vs-box").input_value() == "10,5,40,25"
    with page.expect_navigation():
        page.get_by_role("button", name="Turn right").click()
    # Turned right, the 96 x 64 photo is 64 x 96, and the area (x 10-40, y 5-25) lies at
    # x 64-25 to 64-5, y 10 to 40.
    assert page.locator("#vs-box").input_value() == "39,10,59,40"
    assert page.evaluate("document.activeElement.dataset.turn") == "90"
    assert "Turned a quarter turn right." in page.content()


def test_a_pinch_on_the_photo_zooms_the_page_and_draws_nothing(browser, live_server, catalogue):
    """On a phone, two fingers on the photo zoom the page (WCAG 1.4.4) rather than being
    swallowed by the area tool; the area stays as it was."""
    context = browser.new_context(
        base_url=live_server.url,
        viewport={"width": 390, "height": 800},
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
    )
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        buf = io.BytesIO()
        Image.new("RGB", (800, 600), (128, 128, 128)).save(buf, format="PNG")
        upload_on_the_photo_page(page, "me.png", "image/png", buf.getvalue())
        photo = page.locator("#vs-photo")
        photo.scroll_into_view_if_needed()
        box = photo.bounding_box()
        assert box["width"] > 300 and page.evaluate("visualViewport.scale") == 1
        cdp = context.new_cdp_session(page)

        def touch(kind, *points):
            cdp.send(
                "Input.dispatchTouchEvent",
                {
                    "type": kind,
                    "touchPoints": [{"x": x, "y": y, "id": i} for i, (x, y) in enumerate(points)],
                },
            )

        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        touch("touchStart", (x - 10, y), (x + 10, y))
        for step in range(1, 16):
            touch("touchMove", (x - 10 - 5 * step, y), (x + 10 + 5 * step, y))
        touch("touchEnd")
        page.wait_for_function("visualViewport.scale > 1.3")
        assert page.locator("#vs-box").input_value() == ""
        # One finger draws a while, then a second lands: still a pinch, and nothing drawn.
        # (A new page at its first scale: the pinch above zoomed this one.)
        upload_on_the_photo_page(page, "me.png", "image/png", buf.getvalue())
        page.wait_for_function("visualViewport.scale === 1")
        photo.scroll_into_view_if_needed()
        box = photo.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        touch("touchStart", (x - 40, y - 40))
        for step in range(1, 6):
            touch("touchMove", (x - 40 + 8 * step, y - 40 + 8 * step))
        touch("touchStart", (x, y), (x + 10, y + 10))
        for step in range(1, 10):
            touch("touchMove", (x - 3 * step, y - 3 * step), (x + 10 + 3 * step, y + 10 + 3 * step))
        touch("touchEnd")
        assert page.locator("#vs-box").input_value() == ""
    finally:
        context.close()
