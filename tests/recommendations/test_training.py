"""Training stores a complete artefact and a row, and switches the active version."""

import re

import numpy as np
import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from lookalike.jobs.models import Job
from recommendations.models import BlendProfile, RecommenderModel
from recommendations.recommenders import ALSRecommender
from recommendations.services import training
from tests.recommendations.recsys_support import (
    SMALL_ALS,
    recsys_environment,
    two_groups,
)


@pytest.fixture(autouse=True)
def _environment(settings, tmp_path):
    yield from recsys_environment(settings, tmp_path)


@pytest.mark.django_db
def test_no_events_is_a_clear_error():
    with pytest.raises(training.NoInteractions, match="simulate_shoppers"):
        training.train(**SMALL_ALS)
    assert not RecommenderModel.objects.exists()


@pytest.mark.django_db
def test_training_writes_artefact_row_and_activates(product_factory, category_factory, settings):
    two_groups(product_factory, category_factory)
    steps = []

    row = training.train(**SMALL_ALS, progress=lambda d, t, m: steps.append((d, t, m)))

    assert (row.version, row.is_active) == (1, True)
    assert (row.n_users, row.n_items, row.n_events) == (40, 16, 200)
    assert row.n_interactions == 200
    assert row.parameters["factors"] == 4 and row.parameters["event_weights"]["cart"] == 4.0
    assert row.data_from < row.data_to
    # The artefact sits under ARTIFACT_DIR, loads without pickles, and has our ids.
    path = row.artifact_file
    assert path.parent == settings.RECOMMENDATIONS_ARTIFACT_DIR and path.suffix == ".npz"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left
    model = ALSRecommender.load(path)
    assert model.item_factors.shape == (16, 4)
    keys, items = training.read_artifact_ids(path)
    assert len(keys) == 40 and keys[0].startswith("s:") and len(items) == 16
    # Holdout figures of the model and the baseline; ALS finds the two groups.
    figures = row.evaluation
    assert set(figures) >= {"model", "popularity", "k"}
    assert figures["model"]["precision_at_10"] > figures["popularity"]["precision_at_10"]
    # Progress: one call per ALS iteration of both fits, ending at the total.
    assert steps[-1][0] == steps[-1][1] == 2 * SMALL_ALS["iterations"] + 1
    assert len([s for s in steps if "holdout" in s[2]]) >= SMALL_ALS["iterations"]


@pytest.mark.django_db
def test_second_training_becomes_active_and_the_first_is_kept(product_factory, category_factory):
    two_groups(product_factory, category_factory)
    first = training.train(**SMALL_ALS, evaluate=False)
    second = training.train(**SMALL_ALS, evaluate=False)
    first.refresh_from_db()
    assert second.version == 2 and second.is_active and not first.is_active
    assert first.artifact_file.exists() and second.artifact_file != first.artifact_file
    third = training.train(**SMALL_ALS, evaluate=False, activate=False)
    second.refresh_from_db()
    assert not third.is_active and second.is_active
    assert RecommenderModel.objects.filter(is_active=True).count() == 1


@pytest.mark.django_db
def test_at_most_one_active_row_is_enforced_by_the_database():
    RecommenderModel.objects.create(version=1, artifact_path="a.npz", is_active=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        RecommenderModel.objects.create(version=2, artifact_path="b.npz", is_active=True)


@pytest.mark.django_db
def test_a_models_page_shows_its_figures_as_tables(admin_client):
    row = RecommenderModel.objects.create(
        version=3,
        artifact_path="c.npz",
        parameters={
            "factors": 32,
            "event_weights": {"view": 1.0, "cart": 4.0},
            "include_simulated": True,
        },
        evaluation={
            "k": 10,
            "protocol": "per-user random 75/25 holdout",
            "model": {"ndcg_at_10": 0.1001652136133989, "coverage": 0.0022022700321870235},
            "popularity": {"ndcg_at_10": 0.007092522573348917},
        },
    )
    url = reverse("admin:recommendations_recommendermodel_change", args=[row.pk])
    page = admin_client.get(url).content.decode()
    assert "<td>NDCG@10</td><td>0.100</td><td>0.0071</td>" in page
    assert "<td>Catalogue coverage</td><td>0.0022</td><td>—</td>" in page
    assert "Protocol: per-user random 75/25 holdout" in page
    assert "<td>Event weights</td><td>Add to cart: 4.000; View: 1.000</td>" in page
    assert "<td>Simulated shoppers included</td><td>Yes</td>" in page
    assert "0.1001652136133989" not in page and "<textarea" not in page
    assert 'name="_save"' not in page and 'name="_continue"' not in page  # nothing to save
    # Nor on a job's page; a job still queued or running cannot be deleted.
    job = Job.objects.create(lock_key="recommendations.train", status=Job.Status.RUNNING)
    page = admin_client.get(reverse("admin:lookalike_jobs_job_change", args=[job.pk]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    delete = reverse("admin:lookalike_jobs_job_delete", args=[job.pk])
    page = admin_client.get(delete, follow=True).content.decode()
    assert f"Job #{job.pk} is running and cannot be deleted: it ends first" in page
    changelist = reverse("admin:lookalike_jobs_job_changelist")
    action = {"action": "delete_selected", "_selected_action": [job.pk], "post": "yes"}
    page = admin_client.post(changelist, action, follow=True).content.decode()
    assert "cannot be deleted" in page and Job.objects.filter(pk=job.pk).exists()


@pytest.mark.django_db
def test_a_profiles_published_figures_are_shown_in_words(admin_client):
    """The figures notebook 02 publishes with a profile: nested, with codes as keys."""
    profile = BlendProfile.objects.create(
        name="tuned",
        metrics={
            "ndcg_at_10": 0.1,
            "diversity_method": "mmr",
            "als_only": {"ndcg_at_10": 0.109, "coverage": 0.16},
            "segments": {"cold_items": {"blend": 0.2, "visual_only": 0.15}},
            "candidates": 60,
        },
    )
    url = reverse("admin:recommendations_blendprofile_change", args=[profile.pk])
    page = admin_client.get(url).content.decode()
    assert "<td>Diversity re-ranking</td><td>maximal marginal relevance</td>" in page
    assert "<td>ALS alone</td><td>Catalogue coverage: 0.160; NDCG@10: 0.109</td>" in page
    assert (
        "<td>NDCG by segment</td><td>New products: (Blend: 0.200; Visual similarity alone: "
        "0.150)</td>" in page
    )
    assert "<td>Weightings tried</td><td>60</td>" in page
    assert "cold_items" not in page and "als_only" not in page


@pytest.mark.django_db
def test_the_events_list_says_where_clicks_came_from(admin_client, product_factory):
    from recommendations.models import Event

    product = product_factory()
    now = product.created_at
    Event.objects.create(
        session_key="s1", product=product, kind="similar_click", source="for-you", created_at=now
    )
    Event.objects.create(session_key="s2", product=product, kind="view", created_at=now)
    url = reverse("admin:recommendations_event_changelist")
    page = admin_client.get(url).content.decode()
    assert "“For you” strip" in page and "None (a plain view)" in page
    assert "A session key (or its first characters)" in page
    only = admin_client.get(url, {"source": "for-you"}).content.decode()
    assert "session s1" in only and "session s2" not in only
    # A NUL, which PostgreSQL's text cannot hold, is Django's "?e=1", not a 500.
    nul = admin_client.get(url, {"source": "for\x00you"})
    assert nul.status_code == 302 and nul["Location"] == f"{url}?e=1"


@pytest.mark.django_db
def test_the_events_date_drill_down_refuses_impossible_dates(admin_client):
    url = reverse("admin:recommendations_event_changelist")
    for query in ("created_at__year=99999999999999", "created_at__month=99999999999999999999"):
        response = admin_client.get(f"{url}?{query}")
        assert response.status_code == 302 and response["Location"].endswith("?e=1")
    assert admin_client.get(f"{url}?created_at__year=2026").status_code == 200


@pytest.mark.django_db
def test_admin_action_rolls_back_to_an_older_version(
    admin_client, product_factory, category_factory
):
    two_groups(product_factory, category_factory)
    first = training.train(**SMALL_ALS, evaluate=False)
    second = training.train(**SMALL_ALS, evaluate=False)
    url = reverse("admin:recommendations_recommendermodel_changelist")
    page = admin_client.get(url)
    assert page.status_code == 200 and b"Train now" in page.content
    events = admin_client.get(reverse("admin:recommendations_event_changelist"))
    assert events.status_code == 200 and b"session shopper-0039" in events.content

    # The action asks first, showing both versions; nothing switches until confirmed.
    asked = admin_client.post(url, {"action": "activate_version", "_selected_action": [first.pk]})
    assert asked.status_code == 200 and b"Activate version 1?" in asked.content
    assert b'data-row="2"' in asked.content and b'data-row="1"' in asked.content
    assert b"Version 1 will replace version 2" in asked.content
    first.refresh_from_db()
    assert not first.is_active

    response = admin_client.post(
        url,
        {"action": "activate_version", "_selected_action": [first.pk], "post": "yes"},
        follow=True,
    )

    assert b"Version 1 is now active" in response.content
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.is_active and not second.is_active
    # A version whose artefact vanished cannot be activated.
    second.artifact_file.unlink()
    missing = admin_client.post(
        url,
        {"action": "activate_version", "_selected_action": [second.pk], "post": "yes"},
        follow=True,
    )
    assert b"The artefact of version 2 is missing" in missing.content
    first.refresh_from_db()
    assert first.is_active


@pytest.mark.django_db(transaction=True)
def test_training_job_runs_through_jobs_and_refuses_a_second(
    product_factory, category_factory, settings
):
    two_groups(product_factory, category_factory)
    job = training.start_training(**SMALL_ALS, evaluate=False)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.message
    assert job.lock_key == "recommendations.train" and job.result["version"] == 1
    assert job.done == job.total == SMALL_ALS["iterations"] + 1
    assert RecommenderModel.objects.get(is_active=True).version == 1

    settings.LOOKALIKE_JOBS_BACKEND = "worker"  # stays queued
    queued = training.start_training(**SMALL_ALS)
    from lookalike.jobs.services import JobAlreadyRunning

    with pytest.raises(JobAlreadyRunning):
        training.start_training()
    assert queued.status == Job.Status.QUEUED


@pytest.mark.django_db(transaction=True)
def test_admin_train_now_starts_the_job_and_reports_progress(
    admin_client, product_factory, category_factory, settings
):
    two_groups(product_factory, category_factory)
    settings.RECOMMENDATIONS_ALS_PARAMETERS = SMALL_ALS
    changelist = admin_client.get(reverse("admin:recommendations_recommendermodel_changelist"))
    assert b'name="serve" value="1" checked' in changelist.content
    train_url = reverse("admin:recommendations_recommendermodel_train")
    status_url = reverse("admin:recommendations_recommendermodel_train_status")

    response = admin_client.post(train_url, {"serve": "1"}, follow=True)
    assert b"Training started" in response.content
    assert b"will serve every shopper when it is trained" in response.content
    data = admin_client.get(status_url).json()
    assert data["job"]["status"] == "succeeded" and data["job"]["percent"] == 100
    assert data["active_version"] == 1

    # With the box unticked the new version is stored, and the active one keeps serving.
    response = admin_client.post(train_url, follow=True)
    assert b"The active version keeps serving" in response.content
    data = admin_client.get(status_url).json()
    assert data["job"]["status"] == "succeeded" and data["active_version"] == 1
    assert "(not activated)" in data["job"]["message"]
    versions = RecommenderModel.objects.order_by("version")
    assert list(versions.values_list("is_active", flat=True)) == [True, False]
    # A finished job's panel gives its steps, and no longer says that training runs.
    panel = admin_client.get(reverse("admin:recommendations_recommendermodel_changelist"))
    panel = panel.content.decode()
    assert re.search(r'data-field="steps_label">(\d+) / \1 steps\.<', panel)
    assert "Training runs in the background" not in panel

    # A queued job has no steps to count yet, and the panel says it is waiting.
    settings.LOOKALIKE_JOBS_BACKEND = "worker"
    admin_client.post(train_url, {"serve": "1"})
    panel = admin_client.get(reverse("admin:recommendations_recommendermodel_changelist"))
    panel = panel.content.decode()
    assert 'data-field="steps_label">Waiting to start.<' in panel and "0 / 0 step" not in panel
    assert "Training runs in the background" in panel


def profile_form(name, **weights):
    """The admin's add form of a blend profile: every weight 0 unless given."""
    components = ("visual", "collaborative", "affinity", "popularity", "recency", "covisitation")
    return {
        "name": name,
        **{f"{c}_weight": weights.get(c, 0) for c in components},
        "diversity": "mmr",
        "diversity_param": 0.5,
    }


@pytest.mark.django_db
def test_default_blend_profile_exists_and_admin_validates_weights(admin_client):
    default = BlendProfile.objects.get(is_default=True)
    assert default.name == "default" and sum(default.weights.values()) > 0
    url = reverse("admin:recommendations_blendprofile_add")
    form = profile_form("zero")
    response = admin_client.post(url, form)
    assert response.status_code == 200
    assert b"At least one weight must be above zero" in response.content
    response = admin_client.post(url, {**form, "visual_weight": -1, "recency_weight": 1})
    assert b"Weights cannot be negative" in response.content
    # The form does not switch the default (the list's action does, after asking first):
    # a posted "is_default" is ignored.
    page = admin_client.get(url).content.decode()
    assert 'name="is_default"' not in page and "Make the selected profile the default" in page
    response = admin_client.post(url, {**form, "visual_weight": 1, "is_default": "on"})
    assert response.status_code == 302
    assert BlendProfile.objects.get(is_default=True).name == "default"
    assert np.isclose(BlendProfile.objects.get(name="zero").visual_weight, 1.0)


@pytest.mark.django_db
def test_the_admin_edits_segment_weights_as_numbers(admin_client):
    """Segment weights are a number field each, not JSON: blank keeps the profile's weight."""
    form = {
        **profile_form("segmented", visual=1, collaborative=1, popularity=0.5),
        "cold_item_visual_weight": "0.8",
        "cold_item_collaborative_weight": "0",
        "new_shopper_popularity_weight": "2",
    }
    add = reverse("admin:recommendations_blendprofile_add")
    assert admin_client.post(add, form).status_code == 302
    profile = BlendProfile.objects.get(name="segmented")
    assert profile.segments == {
        "cold_item": {"visual": 0.8, "collaborative": 0.0},
        "new_shopper": {"popularity": 2.0},
    }
    change = reverse("admin:recommendations_blendprofile_change", args=[profile.pk])
    page = admin_client.get(change).content.decode()
    assert "Weights for a new product" in page and "Weights for a new shopper" in page
    assert re.search(r'<input[^>]*name="cold_item_visual_weight"[^>]*value="0.8"', page)
    blank = re.search(r'<input[^>]*name="new_shopper_visual_weight"[^>]*>', page).group(0)
    assert "value=" not in blank  # blank: the weight above
    assert '<label for="id_cold_item_visual_weight">Visual weight:</label>' in page
    # Every weight of a segment at zero leaves it nothing to rank by: refused, kept as it was.
    zero = {f"cold_item_{c}_weight": "0" for c in ("visual", "collaborative", "popularity")}
    response = admin_client.post(change, {**form, **zero})
    assert response.status_code == 200
    assert "Every weight would be zero for a new product" in response.content.decode()
    assert admin_client.post(change, {**form, "cold_item_visual_weight": "-1"}).status_code == 200
    profile.refresh_from_db()
    assert profile.segments["cold_item"] == {"visual": 0.8, "collaborative": 0.0}
    # Cleared fields clear the segment.
    cleared = {k: "" for k in form if k.startswith(("cold_item_", "new_shopper_"))}
    assert admin_client.post(change, {**form, **cleared}).status_code == 302
    profile.refresh_from_db()
    assert profile.segments == {}


@pytest.mark.django_db
def test_profile_names_and_weights_are_refused_in_words(admin_client):
    url = reverse("admin:recommendations_blendprofile_add")
    form = profile_form("huge", visual=1e308, popularity=1e308)
    page = admin_client.post(url, form).content.decode()
    assert "use weights of at most 1000" in page
    page = admin_client.post(
        url, {**form, "visual_weight": 1, "popularity_weight": 0, "name": "DEFAULT"}
    ).content.decode()
    assert "Use lowercase letters, digits, hyphens and underscores." in page
    page = admin_client.post(
        url, {**form, "visual_weight": 1, "popularity_weight": 0, "cold_item_visual_weight": "5000"}
    ).content.decode()
    assert "Ensure this value is less than or equal to 1000" in page
    assert not BlendProfile.objects.filter(name__in=["huge", "DEFAULT"]).exists()
    # Underscores are allowed, as the help text says (a slug; notebooks publish such names).
    form = {**form, "visual_weight": 1, "popularity_weight": 0, "name": "summer_visual-2"}
    assert admin_client.post(url, form).status_code == 302
    assert BlendProfile.objects.filter(name="summer_visual-2").exists()


@pytest.mark.django_db
def test_the_default_profile_and_the_served_model_cannot_be_deleted(admin_client):
    """Refused in words, not as a missing permission or a bare 403."""
    default = BlendProfile.objects.get(is_default=True)
    page = admin_client.get(
        reverse("admin:recommendations_blendprofile_delete", args=[default.pk]), follow=True
    ).content.decode()
    assert "“default” is the default profile and cannot be deleted: make another" in page
    assert page.count('name="_save"') == 1  # back on its change page
    served = RecommenderModel.objects.create(version=7, artifact_path="s.npz", is_active=True)
    old = RecommenderModel.objects.create(version=6, artifact_path="o.npz")
    changelist = reverse("admin:recommendations_recommendermodel_changelist")
    for confirmed in ({}, {"post": "yes"}):
        action = {"action": "delete_selected", "_selected_action": [served.pk, old.pk]}
        page = admin_client.post(changelist, action | confirmed, follow=True).content.decode()
        assert "Version 7 serves every shopper and cannot be deleted" in page
        assert "permission" not in page
    assert RecommenderModel.objects.filter(pk__in=[served.pk, old.pk]).count() == 2
    # Without the served version the same action deletes as Django's does.
    action = {"action": "delete_selected", "_selected_action": [old.pk], "post": "yes"}
    admin_client.post(changelist, action)
    assert list(RecommenderModel.objects.values_list("version", flat=True)) == [7]


@pytest.mark.django_db
def test_a_serving_profile_keeps_serving_as_it_is_until_replaced(admin_client):
    """The default stays the default when its form is saved (the form has no box for it:
    no default at all would be left), and a profile in a running experiment's arm cannot
    change how it ranks; its name and notes can."""
    from recommendations.experiments.services import create_experiment, start_experiment

    default = BlendProfile.objects.get(is_default=True)
    change = reverse("admin:recommendations_blendprofile_change", args=[default.pk])
    assert 'name="is_default"' not in admin_client.get(change).content.decode()
    saved = {**profile_form("default", visual=1, affinity=1), "notes": "x"}
    assert admin_client.post(change, saved).status_code == 302
    assert BlendProfile.objects.filter(is_default=True).get().pk == default.pk

    arm = BlendProfile.objects.create(
        name="arm-b", visual_weight=1, collaborative_weight=0, affinity_weight=0,
        popularity_weight=0, recency_weight=0, covisitation_weight=0, diversity="mmr",
        diversity_param=0.5,
    )  # fmt: skip
    start_experiment(create_experiment("trial", [("a", "default", 1), ("b", "arm-b", 1)]))
    change = reverse("admin:recommendations_blendprofile_change", args=[arm.pk])
    page = admin_client.post(change, profile_form("arm-b", visual=1, popularity=1))
    assert "serves the arm “b” of the running experiment “trial”" in page.content.decode()
    arm.refresh_from_db()
    assert arm.popularity_weight == 0
    as_it_is = {**profile_form("arm-b", visual=1), "in_stock_only": "on"}
    as_it_is |= {"exclude_purchased": "on", "exclude_current": "on"}
    renamed = {**as_it_is, "notes": "the visual arm"}
    response = admin_client.post(change, renamed)
    assert response.status_code == 302, response.content.decode()[-3000:]
    arm.refresh_from_db()
    assert arm.notes == "the visual arm"


@pytest.mark.django_db
def test_the_make_default_action_is_served_from_the_next_request(admin_client):
    """Every process keeps the default profile under a stamp; the admin's action moves it."""
    from recommendations.blending.blend import resolve_settings

    fresh = BlendProfile.objects.create(
        name="fresh",
        visual_weight=0.0,
        recency_weight=1.0,
        segments={"cold_item": {"visual": 0.75}},
        in_stock_only=False,
    )
    before = resolve_settings(None)
    changelist = reverse("admin:recommendations_blendprofile_changelist")
    action = {"action": "make_default", "_selected_action": [fresh.pk]}
    # The action asks first, with both profiles' weights; nothing changes until confirmed.
    asked = admin_client.post(changelist, action).content.decode()
    assert "Make “fresh” the default profile?" in asked
    assert "“fresh” will replace “default” as the default profile" in asked
    assert 'data-row="default"' in asked and 'data-row="fresh"' in asked
    # Segment weights and rules show too: two profiles can differ only there.
    fresh_row = asked[asked.index('data-row="fresh"') :].split("</tr>")[0]
    assert "visual weight 0.75" in fresh_row and "the weights above" in fresh_row
    assert "Weights for a new product" in asked and "In stock only" in asked
    assert [cell for cell in re.findall(r"<td>(Yes|No)</td>", fresh_row)] == ["No", "Yes", "Yes"]
    assert resolve_settings(None) == before
    admin_client.post(changelist, {**action, "post": "yes"})
    after = resolve_settings(None)
    assert after != before and after.weights["recency"] == 1.0
    fresh.refresh_from_db()
    assert fresh.is_default and fresh.updated_at > fresh.created_at
    again = admin_client.post(changelist, action, follow=True).content.decode()
    assert "“fresh” is already the default profile." in again


@pytest.mark.django_db
def test_a_segments_error_of_the_model_shows_at_the_top_of_the_form():
    from django.core.exceptions import ValidationError

    from recommendations.forms import BlendProfileForm

    form = BlendProfileForm(data={})
    form.cleaned_data = {}
    form._update_errors(ValidationError({"segments": ["The segments are wrong."]}))
    assert form.non_field_errors() == ["The segments are wrong."]


@pytest.mark.django_db
def test_a_cap_per_category_shows_as_a_whole_number(admin_client):
    BlendProfile.objects.create(
        name="capped", visual_weight=1, diversity="category_cap", diversity_param=3
    )
    page = admin_client.get(
        reverse("admin:recommendations_blendprofile_changelist")
    ).content.decode()
    row = page[page.index(">capped<") :].split("</tr>")[0]
    assert '<td class="field-diversity_setting">3</td>' in row
    default = page[page.index(">default<") :].split("</tr>")[0]
    assert re.search(r'<td class="field-diversity_setting">0\.\d+</td>', default)
