import io

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from shop.demo import fashion_mnist
from shop.models import Category, Product


def test_stratified_sample_is_balanced_and_prefix_stable():
    labels = np.repeat(np.arange(10), 50)
    small = fashion_mnist.stratified_indices(labels, 20, seed=0)
    large = fashion_mnist.stratified_indices(labels, 100, seed=0)
    assert np.bincount(labels[small], minlength=10).tolist() == [2] * 10
    assert np.bincount(labels[large], minlength=10).tolist() == [10] * 10
    assert large[:20].tolist() == small.tolist()


def test_reads_the_debian_dataset():
    split = fashion_mnist.load_split("test")
    assert split.images.shape == (10000, 28, 28)
    assert sorted(set(split.labels.tolist())) == list(range(10))


@pytest.mark.django_db
def test_load_demo_catalog_is_idempotent_and_stores_pngs():
    out = io.StringIO()
    call_command("load_demo_catalog", size=30, stdout=out)
    assert "30 products created" in out.getvalue()
    assert Category.objects.count() == 10
    assert Product.objects.count() == 30
    # 30 products over 10 categories: exactly 3 each.
    assert set(Product.objects.values_list("category", flat=True).distinct()) == set(
        Category.objects.values_list("id", flat=True)
    )
    for cat in Category.objects.all():
        assert cat.products.count() == 3
    product = Product.objects.first()
    assert product.image.name.endswith(".png")
    assert product.image.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "Generated demo product" in product.description

    out = io.StringIO()
    call_command("load_demo_catalog", size=40, stdout=out)
    assert "10 products created, 30 already present" in out.getvalue()
    assert Product.objects.count() == 40


@pytest.mark.django_db
def test_missing_dataset_is_a_clear_command_error(tmp_path):
    with pytest.raises(CommandError, match="dataset-fashion-mnist"):
        call_command("load_demo_catalog", size=5, path=str(tmp_path), stdout=io.StringIO())
    assert Product.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"), [(["--size", "-5"], "--size"), (["--shoppers", "0"], "--shoppers")]
)
def test_prepare_demo_checks_its_options_before_any_step(args, message, monkeypatch):
    steps = []
    monkeypatch.setattr(
        "shop.management.commands.prepare_demo.call_command", lambda *a, **k: steps.append(a)
    )
    with pytest.raises(CommandError, match=message):
        call_command("prepare_demo", *args)
    assert steps == []


@pytest.mark.django_db
def test_prepare_demo_leaves_the_index_to_a_reindex_job_already_running(monkeypatch):
    """A shop restarted during a reindex: its prepare_demo must not fail on the job's lock
    (which stopped the whole shop), the job brings the index up to date."""
    from io import StringIO

    from lookalike.jobs.models import Job
    from shop.management.commands.prepare_demo import Command as PrepareDemo

    steps = []
    monkeypatch.setattr(
        "shop.management.commands.prepare_demo.call_command", lambda *a, **k: steps.append(a)
    )
    job = Job.objects.create(lock_key="visualsearch.reindex", status=Job.Status.RUNNING)
    out = StringIO()
    PrepareDemo(stdout=out).index_catalogue()
    assert steps == [] and f"The reindex job #{job.pk} is running" in out.getvalue()
    job.status = Job.Status.SUCCEEDED
    job.save()
    PrepareDemo(stdout=out).index_catalogue()
    assert steps and steps[0][0] == "reindex"


@pytest.mark.django_db
def test_bad_size_is_a_clear_command_error():
    with pytest.raises(CommandError, match="between 1 and 60000"):
        call_command("load_demo_catalog", size=0, stdout=io.StringIO())


@pytest.mark.django_db
def test_prepare_demo_prints_the_admin_link_where_the_shop_runs():
    from io import StringIO

    from django.contrib.auth import get_user_model

    from shop.management.commands.prepare_demo import Command as PrepareDemo

    out = StringIO()
    command = PrepareDemo(stdout=out)
    command.ensure_admin("http://127.0.0.1:8123/")
    command.ensure_admin("http://127.0.0.1:8123/")  # a second run creates nobody
    assert get_user_model().objects.filter(username="admin", is_superuser=True).count() == 1
    assert out.getvalue().count("Created the demo admin account.") == 1
    assert "Admin: http://127.0.0.1:8123/admin/  user 'admin'" in out.getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize("damage", ["empty", "not gzip", "truncated", "announces too much"])
def test_a_damaged_dataset_is_a_clear_command_error(tmp_path, damage):
    """Each of the four files damaged in turn: a one-line error, nothing loaded, and
    never the whole of a file that expands without end read into memory."""
    import gzip
    import shutil
    import struct

    source = fashion_mnist.find_dataset_dir()
    for pair in fashion_mnist.FILES.values():
        for name in pair:
            shutil.copy(source / name, tmp_path / name)
    target = tmp_path / fashion_mnist.FILES["train"][0]
    if damage == "empty":
        target.write_bytes(b"")
    elif damage == "not gzip":
        target.write_bytes(b"plain text, not a gzip file")
    elif damage == "truncated":
        target.write_bytes(gzip.compress(gzip.decompress(target.read_bytes())[:1000]))
    else:
        target.write_bytes(gzip.compress(struct.pack(">IIII", 2051, 10**6, 28, 28)))
    with pytest.raises(CommandError, match=str(target)):
        call_command("load_demo_catalog", "--size", "20", "--path", str(tmp_path))
    assert not Product.objects.exists()
