"""A copy of the product's price on each vector, and btree indexes over the copies.

Selective filters (a category and a price band, or a price band alone) are then searched
exactly by a range scan of the vectors' own btree (see ``visualsearch.services.search``).

Existing rows get their price copy from ``reindex --stale`` (``vector_index.sync_copies``,
which asks the catalogue adapter), as their category copy since migration 0004.
"""

from django.conf import settings
from django.db import migrations, models

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
    ]
