"""Admin: the product actions and the "Visual index" page with its live progress endpoint."""

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.test import Client
from django.urls import reverse

from lookalike.jobs.models import Job
from shop.models import Product
from visualsearch.admin import compute_embeddings, find_similar_to_selected
from visualsearch.indexing.jobs import HANDLER, LOCK_KEY
from visualsearch.models import IndexFailure, IndexJob, ProductEmbedding

pytestmark = pytest.mark.django_db

PAGE = reverse("admin:visualsearch_indexjob_changelist")
START = reverse("admin:visualsearch_indexjob_start")
RESUME = reverse("admin:visualsearch_indexjob_resume")
STATUS = reverse("admin:visualsearch_indexjob_status")


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # Autouse, so it applies before admin_client creates its superuser: the default
    # PBKDF2 costs about a second per user and buys nothing in tests.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def texts(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def action_request(rf, user):
    request = rf.post("/admin/shop/product/")
    request.user = user
    request.session = {}
    request._messages = FallbackStorage(request)
    return request


@pytest.fixture
def staff(django_user_model):
    """A staff user with no permissions at all, and a way to grant one."""
    user = django_user_model.objects.create_user("clerk", password="pw-clerk-123", is_staff=True)

    def grant(codename):
        user.user_permissions.add(Permission.objects.get(codename=codename))
        return django_user_model.objects.get(pk=user.pk)  # fresh permission cache

    user.grant = grant
    return user


# -- the page -------------------------------------------------------------------------------


def test_the_page_counts_reindex_jobs(admin_client):
    assert "No reindex job yet" in admin_client.get(PAGE).content.decode()
    for _ in range(2):
        Job.objects.create(handler=HANDLER, lock_key=LOCK_KEY, status=Job.Status.SUCCEEDED)
    page = admin_client.get(PAGE).content.decode()
    assert "2 reindex jobs" in page and "visual index\n" not in page


def test_page_shows_counts_buttons_and_jobs(admin_client, catalogue, product_factory):
    product_factory()  # one product not indexed yet
    product_factory(image="")  # one that has nothing to index
    Job.objects.create(handler=HANDLER, lock_key=LOCK_KEY, status=Job.Status.FAILED, total=4)
    Job.objects.create(handler="x.y", lock_key="other", status=Job.Status.FAILED)
    response = admin_client.get(PAGE)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Visual index" in html
    [row] = response.context["index_counts"]
    assert row["encoder"] == "pixel" and row["current"]
    assert (row["indexed"], row["missing"], row["stale"], row["failed"]) == (
        len(catalogue),
        1,
        0,
        0,
    )
    assert f'<td data-count="indexed">{len(catalogue)}</td>' in html
    assert row["no_image"] == 1 and '<td data-count="no_image">1</td>' in html
    assert 'value="stale"' in html and 'value="all"' in html
    assert "Reindex stale" in html and "Reindex all" in html
    # Only reindex jobs are listed, with a resume button for the failed one.
    assert response.context["cl"].result_count == 1
    assert 'form="vs-resume-form"' in html
    assert "visualsearch/admin/index.js" in html


def test_starting_a_reindex_runs_a_job_and_status_reports_progress(
    admin_client, catalogue, product_factory, django_capture_on_commit_callbacks
):
    new = product_factory()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(START, {"mode": "stale"})
    assert response.status_code == 302 and response.url == PAGE
    job = IndexJob.objects.get(lock_key=LOCK_KEY)
    assert job.status == Job.Status.SUCCEEDED, job.message
    assert job.created_by == admin_client.user and job.params["mode"] == "stale"
    assert ProductEmbedding.objects.filter(product=new).exists()
    assert any("job #" in m and "started" in m for m in texts(response))

    data = admin_client.get(STATUS, {"counts": 1}).json()
    assert data["active"] is False
    [state] = data["jobs"]
    assert (state["id"], state["status"], state["percent"]) == (job.pk, "succeeded", 100)
    assert state["done"] == state["total"] == 1
    assert data["counts"][0]["indexed"] == len(catalogue) + 1


def test_status_reports_a_running_job(admin_client, pixel_encoder):
    job = Job.objects.create(
        handler=HANDLER, lock_key=LOCK_KEY, status=Job.Status.RUNNING, done=3, total=12
    )
    data = admin_client.get(STATUS).json()
    assert data["active"] is True and "counts" not in data
    state = data["jobs"][0]
    assert (state["id"], state["done"], state["total"], state["percent"]) == (job.pk, 3, 12, 25)
    html = admin_client.get(PAGE).content.decode()
    assert f'data-job-id="{job.pk}" data-active="1"' in html and 'style="width:25%"' in html


def test_second_start_while_a_job_runs_is_refused(admin_client, pixel_encoder, settings):
    settings.LOOKALIKE_JOBS_BACKEND = "worker"  # the first job stays queued
    admin_client.post(START, {"mode": "all"})
    response = admin_client.post(START, {"mode": "stale"}, follow=True)
    assert IndexJob.objects.filter(lock_key=LOCK_KEY).count() == 1
    assert "already running" in response.content.decode()


@pytest.mark.django_db(transaction=True)  # the job is sent when its queueing commits
def test_a_job_the_broker_cannot_take_is_reported_as_an_error_not_started(
    admin_client, pixel_encoder, settings, monkeypatch
):
    """With Celery's broker unreachable the job fails as it is queued: the admin says so,
    with the reason, instead of "started"."""
    from lookalike.jobs import services

    def unreachable(name, calls):
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    settings.LOOKALIKE_JOBS_BACKEND = "celery"
    monkeypatch.setattr(services, "send_tasks", unreachable)
    response = admin_client.post(START, {"mode": "stale"}, follow=True)
    job = IndexJob.objects.get(lock_key=LOCK_KEY)
    html = response.content.decode()
    assert job.status == "failed" and f"Job #{job.pk} could not start" in html
    assert "could not be sent to the workers" in html, html
    assert f"job #{job.pk} started" not in html


def test_unknown_mode_and_get_are_refused(admin_client, pixel_encoder):
    response = admin_client.post(START, {"mode": "everything"}, follow=True)
    assert "Unknown reindex mode" in response.content.decode()
    # A reload of the start URL goes back to the page, starting nothing.
    response = admin_client.get(START)
    assert response.status_code == 302 and response.url == PAGE
    assert admin_client.put(START).status_code == 405
    assert not Job.objects.exists()


def test_resume_a_failed_job(admin_client, pixel_encoder, settings):
    settings.LOOKALIKE_JOBS_BACKEND = "worker"
    failed = Job.objects.create(
        handler=HANDLER, lock_key=LOCK_KEY, status=Job.Status.FAILED, params={"mode": "stale"}
    )
    response = admin_client.post(RESUME, {"job": failed.pk}, follow=True)
    new = Job.objects.get(resumed_from=failed)
    assert new.status == Job.Status.QUEUED and new.params == failed.params
    assert f"resumed as #{new.pk}" in response.content.decode()
    other = Job.objects.create(handler="x.y", lock_key="other", status=Job.Status.FAILED)
    assert admin_client.post(RESUME, {"job": other.pk}).status_code == 404
    # Whatever else is posted is a job that does not exist.
    for odd in ("abc", "1e3", "²", "\x00", "-1", "9" * 25, ""):
        assert admin_client.post(RESUME, {"job": odd}).status_code == 404


def test_non_staff_are_sent_to_the_login(client, django_user_model, pixel_encoder):
    shopper = django_user_model.objects.create_user("shopper", password="pw-shopper-123")
    client.force_login(shopper)
    for response in (client.get(PAGE), client.get(STATUS), client.post(START, {"mode": "all"})):
        assert response.status_code == 302 and "/admin/login/" in response.url
    assert not Job.objects.exists()


def test_staff_need_the_reindex_permission(client, staff, pixel_encoder, settings):
    settings.LOOKALIKE_JOBS_BACKEND = "worker"
    client.force_login(staff)
    assert client.get(PAGE).status_code == 403
    assert client.get(STATUS).status_code == 403
    assert client.post(START, {"mode": "all"}).status_code == 403

    staff.grant("view_indexjob")  # may look, not start
    page = client.get(PAGE)
    assert page.status_code == 200 and 'value="all"' not in page.content.decode()
    assert client.post(START, {"mode": "all"}).status_code == 403
    assert not Job.objects.exists()

    staff.grant("reindex")
    assert client.post(START, {"mode": "all"}).status_code == 302
    assert IndexJob.objects.get().created_by == staff


def test_start_needs_a_csrf_token(django_user_model, pixel_encoder):
    user = django_user_model.objects.create_superuser("csrf", "c@example.com", "pw-csrf-123")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(START, {"mode": "all"}).status_code == 403
    assert not Job.objects.exists()


# -- product actions ------------------------------------------------------------------------


def test_compute_embeddings_action(
    rf, admin_client, pixel_encoder, product_factory, django_capture_on_commit_callbacks
):
    products = product_factory.create_batch(3)
    request = action_request(rf, admin_client.user)
    queryset = Product.objects.filter(pk__in=[p.pk for p in products[:2]])
    with django_capture_on_commit_callbacks(execute=True):
        compute_embeddings(admin.site._registry[Product], request, queryset)
    assert set(ProductEmbedding.objects.values_list("product_id", flat=True)) == {
        p.pk for p in products[:2]
    }
    job = IndexJob.objects.get()
    assert job.params["mode"] == "ids" and job.created_by == admin_client.user
    [message] = [str(m) for m in get_messages(request)]
    # Queued when the message was written (the job ran when the action's transaction ended).
    assert "2 products" in message and f"job #{job.pk}</a> queued." in message


def test_compute_embeddings_while_a_job_runs(rf, admin_client, pixel_encoder, product, settings):
    settings.LOOKALIKE_JOBS_BACKEND = "worker"
    Job.objects.create(handler=HANDLER, lock_key=LOCK_KEY, status=Job.Status.RUNNING)
    request = action_request(rf, admin_client.user)
    compute_embeddings(admin.site._registry[Product], request, Product.objects.all())
    assert IndexJob.objects.count() == 1
    assert "already running" in str(list(get_messages(request))[0])


def test_find_similar_to_selected(rf, admin_client, product_factory):
    first, second = product_factory(title="A first"), product_factory(title="B second")
    request = action_request(rf, admin_client.user)
    response = find_similar_to_selected(
        admin.site._registry[Product], request, Product.objects.filter(pk=second.pk)
    )
    assert response.status_code == 302
    assert response.url == reverse("visualsearch:similar", args=[second.pk])
    assert list(get_messages(request)) == []

    request = action_request(rf, admin_client.user)
    response = find_similar_to_selected(
        admin.site._registry[Product], request, Product.objects.all()
    )
    assert response.url == reverse("visualsearch:similar", args=[first.pk])
    [message] = [str(m) for m in get_messages(request)]
    assert "2 products were selected" in message and "A first" in message


def test_find_similar_skips_inactive_products(rf, admin_client, product_factory):
    hidden = product_factory(is_active=False)
    request = action_request(rf, admin_client.user)
    response = find_similar_to_selected(
        admin.site._registry[Product], request, Product.objects.filter(pk=hidden.pk)
    )
    assert response is None
    assert "Only active products" in str(list(get_messages(request))[0])


def test_actions_declare_their_permissions():
    assert compute_embeddings.allowed_permissions == ["change"]
    assert find_similar_to_selected.allowed_permissions == ["view"]
    assert compute_embeddings.short_description == "Compute visual embeddings for selected"
    assert find_similar_to_selected.short_description == "Find similar to selected"


def test_index_failures_are_listed_with_their_reason(admin_client, product_factory):
    product = product_factory()
    IndexFailure.objects.create(
        product=product, encoder="pixel", image_name=product.image.name, reason="truncated file"
    )
    response = admin_client.get(reverse("admin:visualsearch_indexfailure_changelist"))
    assert response.status_code == 200
    assert "truncated file" in response.content.decode()
    add = admin_client.get(reverse("admin:visualsearch_indexfailure_add"))
    assert add.status_code == 403
