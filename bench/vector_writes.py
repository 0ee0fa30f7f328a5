"""Benchmark of the vector write path of ``reindex``: :mod:`visualsearch.indexing.store`.

Usage::

    .venv/bin/python bench/vector_writes.py [--rows 100000] [--batch 10000] [--dim 1280]

Writes ``--rows`` random unit vectors for as many products, in batches of ``--batch`` (one
transaction each, as a reindex commits its batches), into a separate database
``<NAME>_writes`` on the same server (created and migrated here; its products are
replaced on every run), three times:

* ``insert``: new vectors, no HNSW index on the table (a first reindex, or a bulk load
  before the index is built, which is how ``reindex`` builds it);
* ``rewrite``: the same products again (the ``ON CONFLICT DO UPDATE`` path of a reindex
  ``--all`` or a projection refit), still without the index;
* ``insert_signed`` and ``rewrite_signed``: the first two again, after the table was
  emptied, for weights that have a sign-bits centre
  (:mod:`visualsearch.services.sign_bits`), so each row is also written with its bits and
  into their covering btree, as every write of a catalogue with more than
  ``EXACT_SEARCH_MAX_ROWS`` vectors is;
* ``copy_without_indexes``: the same rows copied the same way into a bare table of the
  same shape, without any index or constraint: the floor the other passes are measured
  against (what the table's btrees and the upsert cost);
* ``insert_parallel`` and ``rewrite_parallel`` (with ``--writers`` above 1): the first two
  passes again on an emptied table, the batches shared out among that many processes, each
  with its own connection, as the workers of a reindex fanned out over Celery write their
  chunks (one ``COPY`` keeps one server process busy, so one writer cannot use a second
  core);
* ``rewrite_indexed``: again, with the encoder's HNSW index present, on the first
  ``--indexed-rows`` products only (every row written is also inserted into the graph,
  which is far slower: the figure says by how much).

Also times the former path (``bulk_create(update_conflicts=True)``, vectors sent as text)
on ``--old-rows`` products, for the ratio. Prints one JSON object with vectors per second,
the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

ENCODER = "bench-writes"


def setup_django():
    import django
    from django.conf import settings

    source = dict(settings.DATABASES["default"])
    settings.DATABASES = {"default": dict(source, NAME=source["NAME"] + "_writes")}
    django.setup()


def make_products(rows):
    """``rows`` products (COPY), their keys in order."""
    from django.db import connection

    from bench.similar_search import copy_products
    from shop.demo.catalog import ensure_categories
    from shop.models import Category

    ensure_categories()
    category = Category.objects.values_list("pk", flat=True).first()
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE visualsearch_productembedding, visualsearch_indexfailure, shop_product "
            "RESTART IDENTITY CASCADE"
        )
        return copy_products(
            cursor, ((f"W {i}", category, "10.00", 1, f"w/{i}.png") for i in range(rows))
        )


def write_all(keys, vectors, batch, weights):
    """Write every vector through the production path, one transaction per batch; seconds."""
    from django.utils import timezone

    from visualsearch.indexing.store import upsert_vectors

    t = time.perf_counter()
    now = timezone.now()
    for start in range(0, len(keys), batch):
        chunk = keys[start : start + batch]
        rows = [(pk, f"w/{pk}.png", "0" * 64, 1, 10.0) for pk in chunk]
        upsert_vectors(ENCODER, weights, rows, vectors[start : start + batch], now)
    return time.perf_counter() - t


def _write_share(keys, vectors, batch, weights, writer, writers):
    """One writer's share of :func:`write_parallel`: every ``writers``-th batch."""
    starts = range(writer * batch, len(keys), writers * batch)
    for start in starts:
        write_all(keys[start : start + batch], vectors[start : start + batch], batch, weights)


def write_parallel(keys, vectors, batch, weights, writers):
    """:func:`write_all` with the batches shared out among ``writers`` processes (forked,
    each opening its own connection); seconds until the last has committed."""
    import multiprocessing

    from django.db import connections

    connections.close_all()  # a forked child must not share the parent's socket
    context = multiprocessing.get_context("fork")
    t = time.perf_counter()
    procs = [
        context.Process(target=_write_share, args=(keys, vectors, batch, weights, w, writers))
        for w in range(writers)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    seconds = time.perf_counter() - t
    failed = [proc.exitcode for proc in procs if proc.exitcode != 0]
    if failed:
        sys.exit(f"{len(failed)} of {writers} writers failed (exit codes {failed}).")
    return seconds


def write_bare(keys, vectors, batch):
    """The floor of any write path here: the same rows copied the same way into a table of
    the same shape with no index and no constraint; seconds."""
    from django.db import connection, transaction
    from django.utils import timezone

    from visualsearch.indexing import store

    bare = "bench_vectors_bare"
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {bare}")
        cursor.execute(
            f"CREATE TABLE {bare} (LIKE visualsearch_productembedding INCLUDING DEFAULTS "
            "INCLUDING IDENTITY INCLUDING STORAGE) WITH (toast_tuple_target = 8160)"
        )
        now = timezone.now()
        t = time.perf_counter()
        for start in range(0, len(keys), batch):
            chunk = vectors[start : start + batch]
            values = [
                (ENCODER, "bare", now, pk, f"w/{pk}.png", "0" * 64, data, 1, 10.0, None)
                for pk, data in zip(
                    keys[start : start + batch], store.vector_binary(chunk), strict=True
                )
            ]
            with transaction.atomic():
                store.copy_rows(cursor, bare, (*store.BATCH_COLUMNS, *store.COLUMNS), values)
        seconds = time.perf_counter() - t
        cursor.execute(f"DROP TABLE {bare}")
    return seconds


def write_old(keys, vectors, batch):
    """The former path: ``bulk_create(update_conflicts=True)``, vectors as text."""
    from django.db import transaction
    from django.utils import timezone

    from visualsearch.models import ProductEmbedding

    t = time.perf_counter()
    now = timezone.now()
    for start in range(0, len(keys), batch):
        objs = [
            ProductEmbedding(
                product_id=pk,
                encoder=ENCODER,
                weights_hash="old",
                image_name=f"w/{pk}.png",
                image_checksum="0" * 64,
                embedding=v,
                product_category=1,
                product_price=10.0,
                computed_at=now,
            )
            for pk, v in zip(
                keys[start : start + batch], vectors[start : start + batch], strict=True
            )
        ]
        with transaction.atomic():
            ProductEmbedding.objects.bulk_create(
                objs,
                update_conflicts=True,
                unique_fields=["product", "encoder"],
                update_fields=["weights_hash", "embedding", "computed_at"],
            )
    return time.perf_counter() - t


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--indexed-rows", type=int, default=2_000)
    parser.add_argument("--old-rows", type=int, default=5_000)
    parser.add_argument(
        "--writers", type=int, default=2, help="processes of the parallel passes (1: none)"
    )
    args = parser.parse_args()
    if (
        min(args.rows, args.batch, args.dim, args.writers) < 1
        or min(args.indexed_rows, args.old_rows) < 0
    ):
        parser.error(
            "--rows, --batch, --dim and --writers must be positive, the others not negative."
        )
    setup_django()
    from bench.similar_search import ensure_bench_database

    ensure_bench_database()  # creates and migrates this bench's own database
    from django.db import connection

    from visualsearch.models import ProductEmbedding, VectorCentre
    from visualsearch.services import sign_bits, vector_index

    VectorCentre.objects.filter(encoder=ENCODER).delete()
    report = {"rows": args.rows, "batch": args.batch, "dim": args.dim}
    report["load_average_before"] = [round(x, 2) for x in os.getloadavg()]
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(args.rows, args.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    keys = make_products(args.rows)
    vector_index.drop_index(ENCODER, args.dim)

    seconds = write_all(keys, vectors, args.batch, "first")
    report["insert_per_s"] = round(args.rows / seconds)
    seconds = write_all(keys, vectors[::-1].copy(), args.batch, "second")
    report["rewrite_per_s"] = round(args.rows / seconds)
    stored = ProductEmbedding.objects.filter(encoder=ENCODER)
    report["rows_after"] = stored.count()
    report["all_second_weights"] = not stored.exclude(weights_hash="second").exists()

    # The same two passes with the sign bits written: a centre for each set of weights, on
    # an emptied table (TRUNCATE: a DELETE would leave the first passes' dead rows behind).
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE visualsearch_productembedding")
    centre = vectors.mean(axis=0)
    for weights in ("first_signed", "second_signed"):
        sign_bits.record_mean(ENCODER, weights, centre, args.rows)
    seconds = write_all(keys, vectors, args.batch, "first_signed")
    report["insert_signed_per_s"] = round(args.rows / seconds)
    seconds = write_all(keys, vectors[::-1].copy(), args.batch, "second_signed")
    report["rewrite_signed_per_s"] = round(args.rows / seconds)
    report["signed_rows"] = stored.filter(signs__isnull=False).count()
    seconds = write_bare(keys, vectors, args.batch)
    report["copy_without_indexes_per_s"] = round(args.rows / seconds)

    if args.writers > 1:
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE visualsearch_productembedding")
        report["writers"] = args.writers
        for name, weights, data in (
            ("insert_parallel", "first_signed", vectors),
            ("rewrite_parallel", "second_signed", vectors[::-1].copy()),
        ):
            seconds = write_parallel(keys, data, args.batch, weights, args.writers)
            report[f"{name}_per_s"] = round(args.rows / seconds)
        report["parallel_rows_after"] = stored.count()
        report["parallel_all_second_weights"] = not stored.exclude(
            weights_hash="second_signed"
        ).exists()

    if args.indexed_rows:
        n = min(args.indexed_rows, args.rows)
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM visualsearch_productembedding WHERE product_id > {keys[n - 1]}"
            )
            cursor.execute("SET maintenance_work_mem = '1GB'")
        vector_index.ensure_index(ENCODER, args.dim)
        seconds = write_all(keys[:n], vectors[:n], args.batch, "third")
        report["rewrite_indexed_rows"] = n
        report["rewrite_indexed_per_s"] = round(n / seconds)
        vector_index.drop_index(ENCODER, args.dim)
    if args.old_rows:
        n = min(args.old_rows, args.rows)
        ProductEmbedding.objects.filter(encoder=ENCODER).delete()
        seconds = write_old(keys[:n], vectors[:n], args.batch)
        report["old_bulk_create_rows"] = n
        report["old_bulk_create_per_s"] = round(n / seconds)
        report["speed_up"] = round(report["insert_per_s"] / report["old_bulk_create_per_s"], 1)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
