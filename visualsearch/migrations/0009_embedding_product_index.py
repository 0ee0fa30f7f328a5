"""Drop the vectors' own index on the product key.

The unique ``(product, encoder)`` btree starts with the product, so it already serves the
cascade from a deleted product and every lookup by product; the second btree only cost each
vector write one more index insertion.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        migrations.swappable_dependency(settings.LOOKALIKE_PRODUCT_MODEL),
        ("visualsearch", "0008_sign_bits"),
    ]

    operations = [
        migrations.AlterField(
            model_name="productembedding",
            name="product",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="visual_embeddings",
                to=settings.LOOKALIKE_PRODUCT_MODEL,
                verbose_name="product",
            ),
        ),
    ]
