"""A save of one of the adapter's dependent models moves the catalogue's stamp unless the
adapter says it changed nothing shown (lookalike.changes), judged on the row as the
database held it before and after the save.

The reference shop has no dependent model (its price and stock are the product's own
fields), so a job row stands in for a stock record (tests.catalogue_adapters.LedgerAdapter:
``done`` is its stock level). django-oscar's stock records are tested in tests/hosts/oscar.
"""

import pytest
from django.db import connection, transaction
from django.db.models import F
from django.db.models.signals import post_delete, post_save, pre_save
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from lookalike import changes
from lookalike.catalogue import CATALOGUE
from lookalike.jobs.models import Job
from lookalike.stamps import current as current_stamp

pytestmark = pytest.mark.django_db


@pytest.fixture
def ledger(settings):
    """The ledger adapter, watched as ``LookalikeConfig.ready`` would watch it, and
    unwatched afterwards."""
    settings.LOOKALIKE_CATALOGUE_ADAPTER = "tests.catalogue_adapters.LedgerAdapter"
    changes.watch_catalogue()
    yield Job.objects.create(handler="ledger", lock_key="ledger", done=5)
    for kind, signal in (("pre_save", pre_save), ("save", post_save), ("delete", post_delete)):
        signal.disconnect(sender=Job, dispatch_uid=f"lookalike.catalogue.{kind}.lookalike_jobs.job")


def moves_the_stamp(change):
    before = current_stamp(CATALOGUE.name)
    change()
    return current_stamp(CATALOGUE.name) != before


def allocate(row, quantity):
    """As Oscar's ``StockRecord.allocate``: both signals around an atomic ``update()``."""
    pre_save.send(sender=Job, instance=row, raw=False, using="default", update_fields=None)
    Job.objects.filter(pk=row.pk).update(done=F("done") - quantity)
    row.refresh_from_db(fields=["done"])
    post_save.send(
        sender=Job, instance=row, created=False, raw=False, using="default", update_fields=None
    )


def test_a_save_that_changes_nothing_shown_keeps_the_stamp(ledger):
    assert not moves_the_stamp(lambda: allocate(ledger, 1))  # 4 left: still available
    ledger.done = 3
    assert not moves_the_stamp(ledger.save)  # through save() as well
    assert Job.objects.get(pk=ledger.pk).done == 3
    assert moves_the_stamp(lambda: allocate(ledger, 3))  # the last ones
    assert moves_the_stamp(lambda: allocate(ledger, -2))  # back in stock


def test_any_other_change_moves_the_stamp(ledger):
    ledger.message = "a new price"
    assert moves_the_stamp(ledger.save)
    assert moves_the_stamp(lambda: Job.objects.create(handler="h", lock_key="k"))
    assert moves_the_stamp(ledger.delete)
    fixture = Job(handler="h", lock_key="fixture", done=1, created_at=timezone.now())
    assert moves_the_stamp(lambda: fixture.save_base(raw=True))  # loaddata


def test_inside_a_transaction_the_row_is_read_where_it_is_written(ledger):
    with transaction.atomic():
        assert not moves_the_stamp(lambda: allocate(ledger, 2))
        assert moves_the_stamp(lambda: allocate(ledger, 3))
    assert Job.objects.get(pk=ledger.pk).done == 0


def test_a_failing_judgement_moves_the_stamp_and_keeps_the_save(ledger, monkeypatch):
    def broken(self, model, before, after):
        raise RuntimeError("adapter bug")

    monkeypatch.setattr("tests.catalogue_adapters.LedgerAdapter.changes_nothing_shown", broken)
    with transaction.atomic():
        assert moves_the_stamp(lambda: allocate(ledger, 1))
    assert Job.objects.get(pk=ledger.pk).done == 4


def test_an_adapter_that_judges_nothing_reads_nothing(settings):
    """The default adapter's dependent saves move the stamp without reading the row."""
    settings.LOOKALIKE_CATALOGUE_ADAPTER = "tests.catalogue_adapters.ShopAdapterWithLedger"
    changes.watch_catalogue()
    try:
        row = Job.objects.create(handler="ledger", lock_key="plain", done=5)
        before = current_stamp(CATALOGUE.name)
        with CaptureQueriesContext(connection) as queries:
            row.save(update_fields=["done"])
        assert current_stamp(CATALOGUE.name) != before
        reads = [q for q in queries.captured_queries if q["sql"].startswith("SELECT")]
        assert not [q for q in reads if "lookalike_jobs_job" in q["sql"]]
    finally:
        for kind, signal in (("save", post_save), ("delete", post_delete)):
            signal.disconnect(
                sender=Job, dispatch_uid=f"lookalike.catalogue.{kind}.lookalike_jobs.job"
            )
