"""A copy of the product's price on each vector, and btree indexes over the copies.

Selective filters (a category and a price band, or a price band alone) are then searched
exactly by a range scan of the vectors' own btree (see ``visualsearch.services.search``).

Existing rows get their price in one UPDATE. Every HNSW index of the table is dropped first
and built again afterwards with its own definition, as in migration 0004: rows a page wide
cannot be updated in place, so each updated row would otherwise be inserted into every graph
again, one at a time.
"""

from django.conf import settings
from django.db import migrations, models

TABLE = "visualsearch_productembedding"


def copy_prices(apps, schema_editor):
    from visualsearch.conf import app_settings

    product = apps.get_model(settings.LOOKALIKE_PRODUCT_MODEL)
    qn = schema_editor.quote_name
    price = product._meta.get_field(app_settings.PRODUCT_FIELDS["price"])
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
        cursor.execute(
            f"UPDATE {TABLE} e SET product_price = p.{qn(price.column)}::float8 "
            f"FROM {qn(product._meta.db_table)} p WHERE p.{qn(product._meta.pk.column)} = "
            "e.product_id"
        )
        if hnsw:
            cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
        for _, definition in hnsw:
            cursor.execute(definition)


class Migration(migrations.Migration):
    dependencies = [
        migrations.swappable_dependency(settings.LOOKALIKE_PRODUCT_MODEL),
        ("visualsearch", "0004_embedding_category_inline"),
    ]

    operations = [
        migrations.AddField(
            model_name="productembedding",
            name="product_price",
            field=models.FloatField(blank=True, editable=False, null=True),
        ),
        migrations.RemoveIndex(
            model_name="productembedding", name="visualsearch_emb_category"
        ),
        migrations.AddIndex(
            model_name="productembedding",
            index=models.Index(
                fields=["encoder", "product_category", "product_price"],
                name="visualsearch_emb_cat_price",
            ),
        ),
        migrations.AddIndex(
            model_name="productembedding",
            index=models.Index(fields=["encoder", "product_price"], name="visualsearch_emb_price"),
        ),
        migrations.RunPython(copy_prices, migrations.RunPython.noop),
    ]
