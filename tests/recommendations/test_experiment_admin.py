"""The experiments' admin pages and the simulate_experiment command, hostile input
included: every bad request gets a message or a 4xx, never a 500."""

import io
import re

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from recommendations.experiments.services import create_experiment, start_experiment
from recommendations.models import BlendProfile, Event, Experiment, Impression
from recommendations.offline.simulation import simulate_shoppers
from tests.recommendations.recsys_support import recsys_environment

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _environment(settings, tmp_path):
    yield from recsys_environment(settings, tmp_path)


@pytest.fixture
def draft():
    BlendProfile.objects.create(name="popular", visual_weight=0.0, popularity_weight=1.0)
    BlendProfile.objects.create(name="fresh", visual_weight=0.0, recency_weight=1.0)
    return create_experiment("pop-vs-fresh", [("control", "popular", 1), ("fresh", "fresh", 1)])


def url(name, experiment):
    return reverse(f"admin:recommendations_experiment_{name}", args=[experiment.pk])


def test_change_page_shows_figures_and_start_stop(admin_client, draft):
    page = admin_client.get(url("change", draft)).content.decode()
    assert 'id="experiment-start"' in page and 'id="experiment-stop"' not in page
    assert page.count('<svg xmlns="http://www.w3.org/2000/svg" role="img"') == 2
    response = admin_client.post(url("start", draft), follow=True)
    assert "is running" in response.content.decode()
    page = admin_client.get(url("change", draft)).content.decode()
    assert 'id="experiment-stop"' in page and 'id="experiment-start"' not in page
    refused = admin_client.get(url("delete", draft), follow=True).content.decode()
    assert f"“{draft.name}” is running and cannot be deleted: stop it first." in refused
    fresh = draft.arms.get(name="fresh")
    response = admin_client.post(url("stop", draft), {"winner": str(fresh.pk)}, follow=True)
    assert "“fresh” is now the default profile" in response.content.decode()
    assert admin_client.get(url("delete", draft)).status_code == 200
    assert BlendProfile.objects.get(is_default=True).name == "fresh"


@pytest.mark.parametrize("winner", ["999999", "abc", "-1", "1 OR 1=1", "\x00", "²", "①", "9" * 25])
def test_stop_with_an_unknown_arm_says_so(admin_client, draft, winner):
    start_experiment(draft)
    response = admin_client.post(url("stop", draft), {"winner": winner}, follow=True)
    assert response.status_code == 200
    assert "not part of this experiment" in response.content.decode()
    assert Experiment.objects.get(pk=draft.pk).status == "running"


def test_wrong_methods_states_and_ids_get_4xx_or_a_message(admin_client, draft):
    from django.test import Client

    assert admin_client.get(url("start", draft)).status_code == 405
    assert admin_client.get(url("stop", draft)).status_code == 405
    missing = reverse("admin:recommendations_experiment_start", args=[999999])
    assert admin_client.post(missing).status_code == 404
    # Not a number: the admin's own catch-all answers ("... doesn't exist").
    bad = admin_client.get("/admin/recommendations/experiment/abc/start/", follow=True)
    assert bad.status_code == 200 and "doesn’t exist" in bad.content.decode()
    # Digits to str.isdigit but not to int(): the same answer, not a 500.
    for key in ("%C2%B2", "%E2%91%A0", "9" * 25):
        odd = admin_client.get(f"/admin/recommendations/experiment/{key}/change/", follow=True)
        assert odd.status_code == 200 and "doesn’t exist" in odd.content.decode()
    response = admin_client.post(url("stop", draft), follow=True)  # still a draft
    assert (
        f"Only a running experiment can stop. “{draft.name}” is still a draft."
        in response.content.decode()
    )
    # Not staff: the admin's login page, and nothing started.
    assert Client().post(url("start", draft)).status_code == 302
    assert Experiment.objects.get(pk=draft.pk).status == "draft"


def test_simulate_experiment_command(draft, product_factory, category_factory):
    for c in range(2):
        category = category_factory(name=f"Cat {c}", slug=f"cat-{c}")
        for i in range(8):
            product_factory(category=category, price=10 + i, title=f"C{c} {i}")
    simulate_shoppers(users=30, seed=5, days=5)
    with pytest.raises(CommandError, match="Unknown experiment"):
        call_command("simulate_experiment", "nope", stdout=io.StringIO())
    with pytest.raises(CommandError, match="not running"):
        call_command("simulate_experiment", draft.name, stdout=io.StringIO())
    start_experiment(draft)
    with pytest.raises(CommandError, match="No simulated shoppers of seed 9"):
        call_command("simulate_experiment", draft.name, "--seed", "9", stdout=io.StringIO())
    with pytest.raises(CommandError, match="Unknown widget"):
        call_command(
            "simulate_experiment", draft.name, "--seed", "5", "--widgets", "x", stdout=io.StringIO()
        )
    out = io.StringIO()
    call_command(
        "simulate_experiment",
        draft.name,
        "--seed",
        "5",
        "--shoppers",
        "10",
        "--visits",
        "2",
        "--widgets",
        "for-you,similar-items",
        stdout=out,
        verbosity=0,
    )
    text = out.getvalue()
    assert "10 shoppers, 40 strips" in text and "control (popular)" in text
    shown = Impression.objects.filter(experiment=draft)
    assert shown.exists() and not shown.filter(simulated=False).exists()
    assert set(shown.values_list("widget", flat=True)) == {"for-you", "similar-items"}
    clicks = Event.objects.filter(kind="similar_click", source__in=["for-you", "similar-widget"])
    assert not clicks.filter(simulated=False).exists()
    assert clicks.count() == int(text.split(" clicks")[0].rsplit(" ", 1)[-1])


def test_a_new_experiment_has_no_rates_before_its_first_strip(admin_client, draft):
    start_experiment(draft)
    page = admin_client.get(url("change", draft)).content.decode()
    # Twice in the table, and twice in each of the two charts; no interval of everything.
    assert page.count("no strips yet") == 6 and "[0.000, 1.000]" not in page
    assert "[0.0%, 100.0%]" not in page


def test_the_experiment_forms_say_what_is_wrong_in_words(admin_client, draft):
    add = reverse("admin:recommendations_experiment_add")
    form = {
        "name": "Shouty",
        "description": "",
        "min_impressions": "2000",
        "alpha": "0.7",
        "arms-TOTAL_FORMS": "2",
        "arms-INITIAL_FORMS": "0",
        "arms-MIN_NUM_FORMS": "0",
        "arms-MAX_NUM_FORMS": "1000",
        "arms-0-position": "0",
        "arms-0-name": "control",
        "arms-0-profile": str(BlendProfile.objects.get(name="popular").pk),
        "arms-0-share": "0",
        "arms-1-position": "1",
        "arms-1-name": "fresh",
        "arms-1-profile": str(BlendProfile.objects.get(name="fresh").pk),
        "arms-1-share": "1",
    }
    page = admin_client.post(add, form).content.decode()
    assert "Use lowercase letters, digits, hyphens and underscores." in page
    assert "The significance level must be above 0 and below 0.5" in page
    assert "A share must be at least 1" in page
    assert "Constraint" not in page and "recommendations_" not in page
    assert not Experiment.objects.filter(name__iexact="shouty").exists()


def test_every_input_of_an_arm_row_names_itself(admin_client, draft):
    """The arms' table heads each column once; each input says which arm and field it is."""
    page = admin_client.get(url("change", draft)).content.decode()
    for number, field in [(1, "Name"), (1, "Profile"), (2, "Traffic share"), (2, "Position")]:
        assert f'aria-label="Arm {number}: {field}"' in page
    assert 'aria-label="Arm 2: Profile"' in page.split('name="arms-1-profile"')[1].split(">")[0]


def test_two_arms_at_one_position_are_refused_and_new_rows_come_numbered(admin_client, draft):
    add = reverse("admin:recommendations_experiment_add")
    page = admin_client.get(add).content.decode()
    assert 'name="arms-0-position" value="0"' in page
    assert 'name="arms-1-position" value="1"' in page
    # An existing experiment's empty rows come after its arms.
    last = max(arm.position for arm in draft.arms.all())
    page = admin_client.get(url("change", draft)).content.decode()
    extra = len(draft.arms.all())
    assert f'name="arms-{extra}-position" value="{last + 1}"' in page
    delete_box = re.search(r'<input type="checkbox" name="arms-0-DELETE"[^>]*>', page).group(0)
    assert 'aria-label="Arm 1: Delete"' in delete_box
    # Every id a row's input points at is on the page (the help is in the columns' headers).
    for ids in re.findall(r'name="arms-\d+-[^"]*"[^>]*aria-describedby="([^"]+)"', page):
        assert all(f'id="{i}"' in page for i in ids.split()), ids
    assert 'aria-describedby="id_arms-0-name_helptext"' not in page
    assert "Lowercase letters, digits, hyphens and underscores." in page

    form = {
        "name": "same-place",
        "description": "",
        "min_impressions": "2000",
        "alpha": "0.05",
        "arms-TOTAL_FORMS": "2",
        "arms-INITIAL_FORMS": "0",
        "arms-MIN_NUM_FORMS": "0",
        "arms-MAX_NUM_FORMS": "1000",
        "arms-0-position": "0",
        "arms-0-name": "control",
        "arms-0-profile": str(BlendProfile.objects.get(name="popular").pk),
        "arms-0-share": "1",
        "arms-1-position": "0",
        "arms-1-name": "fresh",
        "arms-1-profile": str(BlendProfile.objects.get(name="fresh").pk),
        "arms-1-share": "1",
    }
    page = admin_client.post(add, form).content.decode()
    assert "Two arms have position 0: give each arm its own" in page
    assert not Experiment.objects.filter(name="same-place").exists()
    form["arms-1-position"] = "1"
    # Two arms with one profile are refused when the draft is saved, not only at start.
    same = {**form, "arms-1-profile": form["arms-0-profile"]}
    page = admin_client.post(add, same).content.decode()
    assert "Two arms serve the profile “popular”: each arm needs its own." in page
    assert not Experiment.objects.filter(name="same-place").exists()
    assert admin_client.post(add, form).status_code == 302
    assert [a.name for a in Experiment.objects.get(name="same-place").arms.all()] == [
        "control",
        "fresh",
    ]


def test_an_empty_arm_row_left_as_shown_is_skipped(admin_client, draft):
    """The numbered empty rows come back as they were shown: unchanged, not arms without a
    name (a new experiment with one arm so far, and a draft saved as it is)."""
    popular = str(BlendProfile.objects.get(name="popular").pk)
    plan = {"description": "", "min_impressions": "2000", "alpha": "0.05"}
    management = {"arms-MIN_NUM_FORMS": "0", "arms-MAX_NUM_FORMS": "1000"}
    blank = {"name": "", "profile": "", "share": "1"}
    add = reverse("admin:recommendations_experiment_add")
    form = {
        "name": "one-so-far",
        **plan,
        **management,
        "arms-TOTAL_FORMS": "2",
        "arms-INITIAL_FORMS": "0",
        "arms-0-position": "0",
        "arms-0-name": "control",
        "arms-0-profile": popular,
        "arms-0-share": "1",
        "arms-1-position": "1",
        **{f"arms-1-{k}": v for k, v in blank.items()},
    }
    assert admin_client.post(add, form).status_code == 302
    assert [a.name for a in Experiment.objects.get(name="one-so-far").arms.all()] == ["control"]

    arms = list(draft.arms.all())
    form = {
        "name": draft.name,
        **plan,
        **management,
        "arms-TOTAL_FORMS": str(len(arms) + 2),
        "arms-INITIAL_FORMS": str(len(arms)),
    }
    for i, arm in enumerate(arms):
        fields = {"id": arm.pk, "experiment": draft.pk, "position": arm.position}
        fields |= {"name": arm.name, "profile": arm.profile_id, "share": arm.share}
        form |= {f"arms-{i}-{k}": str(v) for k, v in fields.items()}
    after = max(arm.position for arm in arms) + 1
    for j in range(2):
        form |= {f"arms-{len(arms) + j}-position": str(after + j)}
        form |= {f"arms-{len(arms) + j}-{k}": v for k, v in blank.items()}
    assert admin_client.post(url("change", draft), form).status_code == 302
    assert [a.name for a in draft.arms.all()] == [a.name for a in arms]


def test_no_p_value_is_shown_against_a_control_without_strips():
    """A p-value of 1 against an empty control would read as "no difference found"."""
    from django.template.loader import render_to_string

    def arm(name, strips, verdict):
        rate = {"value": 0.5, "low": 0.1, "high": 0.9}
        row = {"arm": name, "profile": name, "share": 1, "strips": strips, "clicked": 2}
        row |= {"carted": 0, "purchased": 0, "ctr": rate, "conversion": rate}
        row |= {"verdict_label": verdict}
        return row

    control, other = arm("a", 0, "control"), arm("b", 4, "")
    other["vs_control"] = {"ctr": {"p_value": 1.0}}
    report = {"arms": [control, other], "planned": 10, "alpha": 0.05, "split": {}}
    html = render_to_string("admin/recommendations/experiment/results.html", {"report": report})
    row_b = html[html.index('data-arm="b"') :].split("</tr>")[0]
    assert "1.0000" not in row_b and row_b.count("—") == 1
    control["strips"] = 3
    html = render_to_string("admin/recommendations/experiment/results.html", {"report": report})
    assert "1.0000" in html[html.index('data-arm="b"') :].split("</tr>")[0]


def test_the_default_cannot_change_while_an_experiment_runs(admin_client, draft):
    """Stopped without a winner, an experiment serves the default profile: the one it ran
    beside, named in the stop form, and no other can become the default meanwhile."""
    from recommendations.services.profiles import InvalidProfile, publish_profile

    before = BlendProfile.objects.get(is_default=True)
    start_experiment(draft)
    page = admin_client.get(url("change", draft)).content.decode()
    assert f"the default profile, {before.name} (no winner)" in page
    with pytest.raises(InvalidProfile, match="'pop-vs-fresh' is running"):
        publish_profile("tuned", {"popularity": 1.0}, make_default=True)
    assert not BlendProfile.objects.filter(name="tuned").exists()
    assert publish_profile("tuned", {"popularity": 1.0}).is_default is False  # beside it
    fresh = BlendProfile.objects.get(name="fresh")
    response = admin_client.post(
        reverse("admin:recommendations_blendprofile_changelist"),
        {"action": "make_default", "_selected_action": [fresh.pk]},
        follow=True,
    )
    assert "“pop-vs-fresh” is running" in response.content.decode()
    assert BlendProfile.objects.get(is_default=True) == before
    admin_client.post(url("stop", draft), {"winner": ""})
    assert publish_profile("tuned", {"popularity": 1.0}, make_default=True).is_default


def test_the_results_say_what_is_simulated_and_what_a_stop_left(
    admin_client, draft, product_factory
):
    """The table scrolls in its own box; the strips of simulated shoppers are counted
    apart; a stopped experiment's page says what it left served, not "so far"."""
    from recommendations.experiments.recording import record_impressions

    start_experiment(draft)
    control, fresh = draft.arms.order_by("position")
    shown = [product_factory().pk for _ in range(2)]
    record_impressions(control, "for-you", shown, session_key="real")
    for n in range(2):
        record_impressions(fresh, "for-you", shown, session_key=f"sim{n}", simulated=True)
    page = admin_client.get(url("change", draft)).content.decode()
    assert 'class="experiment-table" role="region" tabindex="0"' in page
    assert "2 of these 3 strips were shown to simulated shoppers" in page
    assert "With the data so far" in page
    admin_client.post(url("stop", draft), {"winner": str(fresh.pk)})
    page = admin_client.get(url("change", draft)).content.decode()
    assert "with “fresh” as the winner: its profile, fresh, became the default" in page
    assert "These figures are final" in page and "With the data so far" not in page
