"""Vectors inline in the heap, and a copy of the product's category on each vector.

* ``toast_tuple_target = 8160`` keeps rows up to a page inline: pgvector's types default to
  ``STORAGE EXTERNAL``, so every vector over ~2 KB (512 float32) went to the TOAST table, and
  the exact plan paid an index probe and several chunk reads per candidate (measured at 1,000
  candidates of 1280-d: 15-25 ms, 5-7 ms inline). Wider vectors (2048-d) still go out of line.
* ``product_category`` lets large categories have their own partial HNSW index
  (:mod:`visualsearch.services.vector_index`).

Existing rows are rewritten once so that their vectors move inline. Their category copies are
filled by ``reindex --stale`` (``vector_index.sync_copies``, which asks the catalogue adapter),
not here: a migration cannot use the adapter, which reads the live models. Every HNSW index of the table is dropped first and built again afterwards with its own
definition: updating rows under an HNSW index would insert every row into the graph again.
"""

from django.conf import settings
from django.db import migrations, models

TABLE = "visualsearch_productembedding"


def rewrite_rows(apps, schema_editor):
    qn = schema_editor.quote_name
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {TABLE})")
        if not cursor.fetchone()[0]:
            return
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s "
            "AND indexdef ILIKE '%%USING hnsw%%'",
            [TABLE],
        )
        hnsw = cursor.fetchall()
        for name, _ in hnsw:
            cursor.execute(f"DROP INDEX {qn(name)}")
        # A new datum (the array round trip is exact) instead of the old TOAST pointer,
        # which an UPDATE would otherwise keep.
        cursor.execute(f"UPDATE {TABLE} e SET embedding = e.embedding::real[]::vector")
        if hnsw:
            cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
        for _, definition in hnsw:
            cursor.execute(definition)


class Migration(migrations.Migration):
    dependencies = [
        migrations.swappable_dependency(settings.LOOKALIKE_PRODUCT_MODEL),
        ("visualsearch", "0003_hnsw_efficientnet_lite0"),
    ]

    operations = [
        migrations.AddField(
            model_name="productembedding",
            name="product_category",
            field=models.BigIntegerField(blank=True, editable=False, null=True),
        ),
        migrations.AddIndex(
            model_name="productembedding",
            index=models.Index(
                fields=["encoder", "product_category"], name="visualsearch_emb_category"
            ),
        ),
        migrations.RunSQL(
            f"ALTER TABLE {TABLE} SET (toast_tuple_target = 8160)",
            f"ALTER TABLE {TABLE} RESET (toast_tuple_target)",
        ),
        migrations.RunPython(rewrite_rows, migrations.RunPython.noop),
    ]
