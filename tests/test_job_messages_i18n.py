"""Jobs write their progress, summaries and failures in the language active where they run
(the site's LANGUAGE_CODE in a worker): checked with a small French catalogue made here, so
that a message built with an f-string again, which no catalogue can translate, fails."""

import struct

import pytest
from django.utils import translation

PLURAL_HEADER = (
    "Content-Type: text/plain; charset=UTF-8\nPlural-Forms: nplurals=2; plural=(n > 1);\n"
)

CATALOGUE = {
    "Nothing to reindex: every vector is up to date (%(encoder)s, %(mode)s).": (
        "Rien à réindexer : tous les vecteurs sont à jour (%(encoder)s, %(mode)s)."
    ),
    ("%(count)s embedded", "%(count)s embedded"): ("%(count)s calculé", "%(count)s calculés"),
    ("%(count)s failed", "%(count)s failed"): ("%(count)s en échec", "%(count)s en échec"),
    "%(counts)s (%(encoder)s, %(mode)s).": "%(counts)s (%(encoder)s, mode %(mode)s).",
    (
        "Embedding %(count)s product image with %(encoder)s",
        "Embedding %(count)s product images with %(encoder)s",
    ): (
        "Calcul de %(count)s image de produit avec %(encoder)s",
        "Calcul de %(count)s images de produits avec %(encoder)s",
    ),
    ("No product with id %(ids)s.", "No products with ids %(ids)s."): (
        "Aucun produit d’identifiant %(ids)s.",
        "Aucun produit d’identifiants %(ids)s.",
    ),
    "Trained version %(version)s, now served": "Version %(version)s entraînée, servie",
    "The worker was stopped during the job; resume it to finish.": (
        "Le processus a été arrêté pendant la tâche ; reprenez-la pour la finir."
    ),
    "The worker running this job stopped; resume it to finish the work.": (
        "Le processus de cette tâche s’est arrêté ; reprenez-la pour finir le travail."
    ),
    "No worker started this job; check that `manage.py run_jobs` (or a Celery worker) "
    "is running, then resume it.": "Aucun processus n’a lancé cette tâche.",
}


def write_mo(path, messages):
    """A GNU gettext catalogue of ``messages`` (plural entries keyed by their two forms)."""
    entries = {"": PLURAL_HEADER}
    for source, translated in messages.items():
        key = "\0".join(source) if isinstance(source, tuple) else source
        entries[key] = "\0".join(translated) if isinstance(translated, tuple) else translated
    keys = sorted(entries, key=lambda k: k.encode())
    ids = [k.encode() for k in keys]
    strs = [entries[k].encode() for k in keys]
    start = 7 * 4 + 16 * len(keys)
    offsets, data = [], b""
    for text in ids + strs:
        offsets.append((len(text), start + len(data)))
        data += text + b"\0"
    n = len(keys)
    header = struct.pack("<7I", 0x950412DE, 0, n, 7 * 4, 7 * 4 + 8 * n, 0, 0)
    tables = b"".join(struct.pack("<2I", *pair) for pair in offsets)
    path.parent.mkdir(parents=True)
    path.write_bytes(header + tables + data)


@pytest.fixture
def french(tmp_path, settings):
    write_mo(tmp_path / "fr" / "LC_MESSAGES" / "django.mo", CATALOGUE)
    settings.LOCALE_PATHS = [tmp_path]
    with translation.override("fr"):
        yield


def test_reindex_summaries_and_progress_are_translated(french):
    from visualsearch.indexing.jobs import _summary
    from visualsearch.indexing.pipeline import embedding_message

    where = {"encoder": "pixel", "mode": "stale"}
    assert _summary({"candidates": 0, **where}) == (
        "Rien à réindexer : tous les vecteurs sont à jour (pixel, stale)."
    )
    done = {"candidates": 3, "embedded": 2, "failed": 1, **where}
    assert _summary(done) == "2 calculés, 1 en échec (pixel, mode stale)."
    assert embedding_message(1, "pixel") == "Calcul de 1 image de produit avec pixel"
    assert embedding_message(5, "pixel") == "Calcul de 5 images de produits avec pixel"


@pytest.mark.django_db
def test_reindex_refusals_and_training_messages_are_translated(french):
    from types import SimpleNamespace

    from recommendations.services.training import _trained_message
    from visualsearch.indexing.state import check_ids

    with pytest.raises(ValueError, match="Aucun produit d’identifiant 999999."):
        check_ids([999999])
    assert _trained_message(SimpleNamespace(is_active=True, version=4)) == (
        "Version 4 entraînée, servie"
    )


@pytest.mark.django_db(transaction=True)
def test_a_job_stopped_with_its_worker_says_so_in_the_active_language(french, settings):
    from lookalike.jobs import services
    from lookalike.jobs.models import Job
    from lookalike.jobs.runner import run_job

    settings.LOOKALIKE_JOBS_BACKEND = "worker"
    job = services.enqueue("tests.jobs.handlers.stopped_with_its_worker", lock_key="fr")
    with pytest.raises(SystemExit):
        run_job(job.pk)
    assert (
        Job.objects.get(pk=job.pk).message
        == CATALOGUE["The worker was stopped during the job; resume it to finish."]
    )


@pytest.mark.django_db(transaction=True)
def test_a_job_speaks_the_language_it_was_queued_in_not_the_workers(french, settings):
    """An admin reading French queues a reindex; a worker whose site language is English
    runs it: its messages are in French. Resumed on its own it stays French; resumed by a
    person, it speaks theirs."""
    from django.contrib.auth import get_user_model

    from lookalike.jobs import services
    from lookalike.jobs.models import Job
    from lookalike.jobs.runner import run_job

    settings.LOOKALIKE_JOBS_BACKEND = "worker"
    job = services.enqueue("tests.jobs.handlers.stopped_with_its_worker", lock_key="fr")
    assert job.language == "fr"
    with translation.override("en"), pytest.raises(SystemExit):
        run_job(job.pk)
    job.refresh_from_db()
    assert job.message == CATALOGUE["The worker was stopped during the job; resume it to finish."]

    with translation.override("en"):
        by_itself = services.resume(job)
    assert by_itself.language == "fr"
    Job.objects.filter(pk=by_itself.pk).update(status=Job.Status.FAILED)
    admin = get_user_model().objects.create_user("admin")
    with translation.override("de"):
        by_a_person = services.resume(Job.objects.get(pk=by_itself.pk), user=admin)
    assert by_a_person.language == "de"


@pytest.mark.django_db(transaction=True)
def test_reaped_jobs_are_told_in_their_own_language(french, settings):
    from datetime import timedelta

    from django.utils import timezone

    from lookalike.jobs.models import Job
    from lookalike.jobs.worker import reap_dead_jobs

    settings.LOOKALIKE_JOBS_QUEUED_TIMEOUT = 60
    old = timezone.now() - timedelta(hours=1)
    handler = "tests.jobs.handlers.stopped_with_its_worker"
    running = Job.objects.create(
        handler=handler, lock_key="a", status="running", heartbeat_at=old, language="fr"
    )
    with translation.override("en"):
        assert reap_dead_jobs() == 1
    running.refresh_from_db()
    assert running.message.startswith("Le processus de cette tâche")

    french_job, english_job, site_job = (
        Job.objects.create(handler=handler, lock_key=key, language=language)
        for key, language in [("b", "fr"), ("c", "en"), ("d", "")]
    )
    Job.objects.update(created_at=old)
    with translation.override("fr"):
        assert reap_dead_jobs() == 3
    messages = dict(Job.objects.values_list("lock_key", "message"))
    assert messages["b"] == "Aucun processus n’a lancé cette tâche."
    assert messages["c"].startswith("No worker started this job")
    assert messages["d"].startswith("No worker started this job")  # LANGUAGE_CODE: English
