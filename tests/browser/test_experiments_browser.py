"""An experiment created, started and stopped from the admin in a real browser, with a
shopper in between whose click is attributed to the strip they were shown."""

import re

import pytest

from recommendations.models import BlendProfile, Experiment, ImpressionOutcome

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-boss-123")


def test_admin_starts_an_experiment_a_shopper_clicks_and_the_admin_stops_it(
    browser, live_server, catalogue, staff
):
    profiles = {
        "control": BlendProfile.objects.create(
            name="mixed", visual_weight=0.5, popularity_weight=1
        ),
        "visual": BlendProfile.objects.create(name="visual-only", visual_weight=1.0),
    }
    profiles["control"].make_default()
    admin = browser.new_context(base_url=live_server.url).new_page()
    admin.set_default_timeout(15_000)
    admin.goto("/admin/login/?next=/admin/recommendations/experiment/add/")
    admin.fill("#id_username", "boss")
    admin.fill("#id_password", "pw-boss-123")
    admin.click("input[type=submit]")
    admin.fill("#id_name", "visual-vs-default")
    for i, (name, profile) in enumerate(profiles.items()):
        admin.fill(f"#id_arms-{i}-name", name)
        admin.select_option(f"#id_arms-{i}-profile", value=str(profile.pk))
        admin.fill(f"#id_arms-{i}-position", str(i))
    admin.click("input[name=_continue]")
    asked = []  # the start and stop buttons ask first; the admin confirms
    admin.on("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    admin.click("#experiment-start")
    assert "is running" in admin.locator(".messagelist").inner_text()
    assert Experiment.objects.get(name="visual-vs-default").status == "running"

    # A shopper in another browser is served their arm's strip and follows a link.
    shopper = browser.new_context(base_url=live_server.url).new_page()
    shopper.set_default_timeout(15_000)
    anchor = catalogue[0]
    shopper.goto(anchor.get_absolute_url())
    shopper.goto(anchor.get_absolute_url())  # the session cookie comes back: events count
    link = shopper.locator('section[data-widget="similar-items"] a.title').first
    assert re.search(r"rec=[0-9a-f]{32}", link.get_attribute("href"))
    link.click()
    shopper.wait_for_url(re.compile(r"rec=[0-9a-f]{32}"))
    assert ImpressionOutcome.objects.filter(kind="click").count() == 1

    admin.reload()
    results = admin.locator(".experiment-results")
    assert results.locator("svg[role=img]").count() == 2  # click-through and conversion
    clicked = [
        int(results.locator(f"tr[data-arm={arm}] td").nth(3).inner_text())  # after its header
        for arm in ("control", "visual")
    ]
    assert sum(clicked) == 1

    admin.select_option("#experiment-winner", label="visual (visual-only) as the winner")
    admin.click("#experiment-stop")
    assert "is now the default profile" in admin.locator(".messagelist").inner_text()
    experiment = Experiment.objects.get(name="visual-vs-default")
    assert experiment.status == "stopped" and experiment.winner.name == "visual"
    assert BlendProfile.objects.get(is_default=True).name == "visual-only"
    assert admin.locator("#experiment-stop").count() == 0  # nothing more to stop
    assert [m.split("?")[0] for m in asked] == ["Start the experiment", "Stop the experiment"]
