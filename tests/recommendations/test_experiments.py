"""Experiments in the shop: serving the shopper's arm, impressions, attribution of clicks,
carts and purchases, the figures per arm, and starting and stopping."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from recommendations.conf import app_settings
from recommendations.experiments.report import experiment_report, report_chart_svg
from recommendations.experiments.services import (
    ExperimentError,
    create_experiment,
    start_experiment,
    stop_experiment,
)
from recommendations.experiments.widgets import assign
from recommendations.models import (
    BlendProfile,
    Event,
    Experiment,
    Impression,
    ImpressionOutcome,
)
from tests.recommendations.blend_support import (  # noqa: F401 (fixtures)
    blend_environment,
    embed,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def profiles():
    visual = BlendProfile.objects.create(name="visual", visual_weight=1.0)
    visual.make_default()
    popular = BlendProfile.objects.create(name="popular", visual_weight=0.2, popularity_weight=1)
    return visual, popular


@pytest.fixture
def running(profiles):
    """A running experiment of two arms; each test finds its shopper's arm."""
    experiment = create_experiment("try-popular", [("control", "visual", 1), ("pop", "popular", 1)])
    return start_experiment(experiment)


def strip(html, widget):
    match = re.search(rf'<section [^>]*data-widget="{widget}".*?</section>', html, re.S)
    assert match, f"no {widget} strip"
    return match.group(0)


def shopper_arm(client, experiment):
    from recommendations.events import hash_session_key

    arms = list(experiment.arms.select_related("experiment", "profile").order_by("position"))
    return assign(arms, None, hash_session_key(client.session.session_key))


def test_lifecycle_rules(profiles):
    visual, popular = profiles
    with pytest.raises(ExperimentError, match="at least two arms"):
        create_experiment("lonely", [("only", "visual", 1)])
    with pytest.raises(ExperimentError, match="Unknown blend profile"):
        create_experiment("typo", [("a", "visual", 1), ("b", "nope", 1)])
    with pytest.raises(ExperimentError, match="same profile"):
        create_experiment("twins", [("a", "visual", 1), ("b", "visual", 1)])
    assert not Experiment.objects.exists()  # nothing half-made
    first = start_experiment(create_experiment("one", [("a", visual, 1), ("b", popular, 1)]))
    second = create_experiment("two", [("a", visual, 1), ("b", popular, 2)])
    with pytest.raises(ExperimentError, match="is running"):
        start_experiment(second)
    with pytest.raises(
        ExperimentError, match="Only a draft experiment can start. “one” is already running."
    ):
        start_experiment(first)
    stop_experiment(first)  # no winner: the default stays
    with pytest.raises(ExperimentError, match="“one” is stopped; an experiment runs once."):
        start_experiment(first)
    assert BlendProfile.objects.get(is_default=True) == visual
    start_experiment(second)
    winner = second.arms.get(name="b")
    with pytest.raises(ExperimentError, match="not part"):
        stop_experiment(second, first.arms.get(name="a"))
    stop_experiment(second, winner)
    assert BlendProfile.objects.get(is_default=True) == popular
    second.refresh_from_db()
    assert second.status == "stopped" and second.winner == winner and second.stopped_at


def test_strips_serve_the_arm_record_impressions_and_attribute(client, catalogue, running):
    anchor, others = catalogue
    client.get(anchor.get_absolute_url())  # the first, cookie-less visit starts the session
    html = client.get(anchor.get_absolute_url()).content.decode()
    arm = shopper_arm(client, running)
    similar = strip(html, "similar-items")
    assert f'data-profile="{arm.profile.name}"' in similar
    rec_id = re.search(r"rec=([0-9a-f]{32})", similar).group(1)
    shown = list(Impression.objects.filter(recommendation_id=rec_id).order_by("position"))
    assert shown and {i.arm_id for i in shown} == {arm.pk}
    assert shown[0].profile == arm.profile and shown[0].widget == "similar-items"
    assert [i.position for i in shown] == list(range(len(shown)))
    assert shown[0].session_key and shown[0].user is None and not shown[0].simulated
    # Follow the first link as a browser would (from the page): a click on that impression.
    target = shown[0].product
    page = f"http://testserver{anchor.get_absolute_url()}"
    url = f"{target.get_absolute_url()}?from=similar-widget&rec={rec_id}"
    assert url in similar.replace("&amp;", "&")
    client.get(url, HTTP_REFERER=page)
    click = ImpressionOutcome.objects.get(kind="click")
    assert click.impression == shown[0] and click.event.kind == "similar_click"
    # The cart and the purchase that follow count for the same impression.
    client.post(reverse("shop:cart_add", args=[target.pk]), {"quantity": 1})
    client.post(reverse("shop:checkout"))
    kinds = set(
        ImpressionOutcome.objects.filter(impression=shown[0]).values_list("kind", flat=True)
    )
    assert kinds == {"click", "cart", "purchase"}
    report = experiment_report(running)
    row = next(r for r in report["arms"] if r["arm"] == arm.name)
    assert row["clicked"] == 1 and row["carted"] == 1 and row["purchased"] == 1
    assert row["strips"] >= 1 and 0 < row["ctr"]["value"] <= 1


def test_reloading_a_page_shows_the_same_strip_without_recording_it_again(
    client, catalogue, running
):
    """A reload within the view window keeps the strip's recommendation id and writes no
    rows: reloads must not lower an arm's rates nor grow the table."""
    anchor, others = catalogue
    client.get(anchor.get_absolute_url())
    first = strip(client.get(anchor.get_absolute_url()).content.decode(), "similar-items")
    rec_id = re.search(r"rec=([0-9a-f]{32})", first).group(1)
    rows = Impression.objects.count()
    for _ in range(5):
        again = strip(client.get(anchor.get_absolute_url()).content.decode(), "similar-items")
        assert re.search(r"rec=([0-9a-f]{32})", again).group(1) == rec_id
    assert Impression.objects.count() == rows
    strips = sum(row["strips"] for row in experiment_report(running)["arms"])
    assert strips == Impression.objects.values("recommendation_id").distinct().count()
    # Another shopper's strip is their own; past the window, a reload is a new strip.
    from django.test import Client

    other = Client()
    other.get(anchor.get_absolute_url())
    theirs = strip(other.get(anchor.get_absolute_url()).content.decode(), "similar-items")
    assert re.search(r"rec=([0-9a-f]{32})", theirs).group(1) != rec_id
    window = timedelta(seconds=app_settings.VIEW_WINDOW_SECONDS + 1)
    Impression.objects.filter(recommendation_id=rec_id).update(created_at=timezone.now() - window)
    later = strip(client.get(anchor.get_absolute_url()).content.decode(), "similar-items")
    assert re.search(r"rec=([0-9a-f]{32})", later).group(1) != rec_id


def test_clicks_from_elsewhere_bots_and_forged_ids_are_not_attributed(client, catalogue, running):
    anchor, others = catalogue
    client.get(anchor.get_absolute_url())
    html = client.get(anchor.get_absolute_url()).content.decode()
    rec_id = re.search(r"rec=([0-9a-f]{32})", strip(html, "similar-items")).group(1)
    target = Impression.objects.filter(recommendation_id=rec_id).order_by("position")[0].product
    page = f"http://testserver{anchor.get_absolute_url()}"
    base = f"{target.get_absolute_url()}?from=similar-widget"
    hostile = [
        (f"{base}&rec={rec_id}", "https://elsewhere.example/"),  # another site's link
        (f"{base}&rec={'0' * 32}", page),  # a well-formed id nobody was shown
        (f"{base}&rec=<script>", page),  # garbage
        (f"{base}&rec={rec_id}&rec=x", page),  # a repeated parameter
    ]
    for url, referer in hostile:
        assert client.get(url, HTTP_REFERER=referer).status_code == 200
    assert not ImpressionOutcome.objects.exists()
    # Another shopper cannot claim this shopper's strip.
    from django.test import Client

    other = Client()
    other.get(anchor.get_absolute_url())
    assert other.get(f"{base}&rec={rec_id}", HTTP_REFERER=page).status_code == 200
    assert not ImpressionOutcome.objects.exists()
    # Bots and HEAD requests are not shown experiment strips and record nothing.
    before = Impression.objects.count()
    client.get(anchor.get_absolute_url(), HTTP_USER_AGENT="Googlebot/2.1")
    client.head(anchor.get_absolute_url())
    assert Impression.objects.count() == before


def test_no_experiment_or_an_explicit_profile_records_nothing(client, catalogue, profiles):
    anchor, _ = catalogue
    client.get(anchor.get_absolute_url())
    html = client.get(anchor.get_absolute_url()).content.decode()
    assert "rec=" not in strip(html, "similar-items")
    assert not Impression.objects.exists()
    experiment = start_experiment(create_experiment("x", [("a", "visual", 1), ("b", "popular", 1)]))
    from django.template import Context, Template
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    request.user = type("Anon", (), {"is_authenticated": False, "pk": None})()
    request.session = client.session
    rendered = Template(
        '{% load recommendations %}{% similar_items product profile="visual" %}'
    ).render(Context({"request": request, "product": anchor}))
    assert 'data-profile="visual"' in rendered and "rec=" not in rendered
    assert not Impression.objects.filter(experiment=experiment).exists()


def test_report_counts_strips_and_charts_escape_names(catalogue, profiles):
    anchor, others = catalogue
    experiment = start_experiment(
        create_experiment("r", [("control", "visual", 1), ("<b>x</b>", "popular", 1)])
    )
    from recommendations.experiments.recording import attribute_event, record_impressions

    control, treated = experiment.arms.order_by("position")
    ids = [p.pk for p in others]
    for n in range(4):
        record_impressions(control, "for-you", ids, session_key=f"c{n}")
    recs = [record_impressions(treated, "for-you", ids, session_key=f"t{n}") for n in range(2)]
    for n, rec in enumerate(recs[:1]):
        for product in others[:2]:  # two clicks on one strip count once
            click = Event.objects.create(
                session_key=f"t{n}",
                product=product,
                kind="similar_click",
                source="for-you",
                created_at=Impression.objects.filter(recommendation_id=rec)[0].created_at,
            )
            attribute_event(click, rec)
    report = experiment_report(experiment)
    first, second = report["arms"]
    assert (first["strips"], first["products"], first["clicked"]) == (4, 20, 0)
    assert (second["strips"], second["clicked"]) == (2, 1)
    assert second["ctr"]["value"] == 0.5 and second["ctr"]["low"] < 0.5 < second["ctr"]["high"]
    assert second["verdict"] == "collecting" and report["leader"] is None
    svg = report_chart_svg(report)
    assert svg.startswith("<svg") and "<b>" not in svg and "&lt;b&gt;x&lt;/b&gt;" in svg
    # Four shoppers against two on equal shares: too few to call it a mismatch.
    assert (first["shoppers"], second["shoppers"]) == (4, 2)
    assert not report["split"]["mismatch"]


def test_a_split_unlike_the_shares_is_flagged(catalogue, profiles, admin_client):
    """A sample ratio mismatch: one arm holds far more shoppers than its share."""
    from recommendations.experiments.recording import record_impressions

    _, others = catalogue
    experiment = start_experiment(
        create_experiment("skewed", [("control", "visual", 1), ("other", "popular", 1)])
    )
    control, treated = experiment.arms.order_by("position")
    ids = [p.pk for p in others[:2]]
    for n in range(60):
        record_impressions(control, "for-you", ids, session_key=f"c{n}")
    for n in range(20):
        record_impressions(treated, "for-you", ids, session_key=f"t{n}")
    report = experiment_report(experiment)
    assert report["split"]["mismatch"] and report["split"]["p_value"] < 0.001
    page = admin_client.get(f"/admin/recommendations/experiment/{experiment.pk}/change/")
    assert "sample ratio test" in page.content.decode()


def test_signed_in_shoppers_are_assigned_by_user_and_a_stop_ends_it(
    client, catalogue, running, django_user_model
):
    anchor, _ = catalogue
    user = django_user_model.objects.create_user("ann", password="pw-ann-123")
    client.force_login(user)
    html = client.get(anchor.get_absolute_url()).content.decode()
    arms = list(running.arms.select_related("experiment", "profile").order_by("position"))
    arm = assign(arms, user.pk, "any-session-key")  # the user id decides, not the session
    assert f'data-profile="{arm.profile.name}"' in strip(html, "similar-items")
    shown = Impression.objects.filter(user=user)
    assert shown.exists() and set(shown.values_list("arm", flat=True)) == {arm.pk}
    # Stopped with the other arm as the winner: everyone gets that profile, unrecorded.
    other = next(a for a in arms if a != arm)
    stop_experiment(running, other)
    before = Impression.objects.count()
    html = client.get(anchor.get_absolute_url()).content.decode()
    similar = strip(html, "similar-items")
    assert f'data-profile="{other.profile.name}"' not in similar  # the tag says "default"
    assert 'data-profile="default"' in similar and "rec=" not in similar
    assert BlendProfile.objects.get(is_default=True) == other.profile
    assert Impression.objects.count() == before


def test_a_shoppers_strips_count_as_one_shopper_in_the_figures(catalogue, profiles):
    """Four shoppers an arm, six strips each: one shopper clicked all of theirs. Counting
    strips, 6 of 24 is a tight rate; the report counts the shoppers, so its interval is
    wider than the strips' Wilson interval and its test less sure than the strips' test."""
    from recommendations.experiments.recording import attribute_event, record_impressions
    from recommendations.experiments.stats import two_proportion_test, wilson_interval

    anchor, others = catalogue
    experiment = start_experiment(
        create_experiment("u", [("control", "visual", 1), ("pop", "popular", 1)])
    )
    control, treated = experiment.arms.order_by("position")
    ids = [p.pk for p in others]
    for arm, prefix in ((control, "c"), (treated, "t")):
        for n in range(4):
            for _ in range(6):
                rec = record_impressions(arm, "for-you", ids, session_key=f"{prefix}{n}")
                if arm == treated and n == 0:
                    click = Event.objects.create(
                        session_key="t0", product=others[0], kind="similar_click",
                        source="for-you",
                        created_at=Impression.objects.filter(recommendation_id=rec)[0].created_at,
                    )  # fmt: skip
                    attribute_event(click, rec)
    report = experiment_report(experiment)
    first, second = report["arms"]
    assert (second["strips"], second["clicked"], second["ctr"]["value"]) == (24, 6, 0.25)
    strips_low, strips_high = wilson_interval(6, 24)
    assert second["ctr"]["high"] - second["ctr"]["low"] > 1.5 * (strips_high - strips_low)
    assert second["vs_control"]["ctr"]["p_value"] > two_proportion_test(0, 24, 6, 24)[2]
