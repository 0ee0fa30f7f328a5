"""Centred sign bits on each vector, the centres they are taken around, and their covering btree.

The btree keeps the bits (and the product key and the weights that made the vector, so that
stale rows are passed over without reading the table) beside the copies of category and
price, so that a selective filter is ranked by Hamming distance from the index alone (see
``visualsearch.services.sign_bits``). Existing rows get their bits from ``manage.py
vector_index`` or the next ``reindex`` that writes vectors, which take their weights' centre
first; on a large catalogue, ``manage.py vector_index --rebuild`` writes them while its graphs
are dropped (the update would otherwise re-insert every row into them).
"""

import django.utils.timezone
import pgvector.django.vector
from django.db import migrations, models

import visualsearch.models


class Migration(migrations.Migration):
    dependencies = [
        ("visualsearch", "0007_reindex_job_handler"),
    ]

    operations = [
        migrations.CreateModel(
            name="VectorCentre",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("encoder", models.CharField(max_length=64, verbose_name="encoder")),
                ("weights_hash", models.CharField(max_length=64, verbose_name="weights hash")),
                ("centre", pgvector.django.vector.VectorField(verbose_name="centre")),
                (
                    "vectors",
                    models.PositiveIntegerField(
                        help_text="How many vectors the mean was taken over.",
                        verbose_name="vectors",
                    ),
                ),
                (
                    "computed_at",
                    models.DateTimeField(
                        default=django.utils.timezone.now, verbose_name="computed at"
                    ),
                ),
            ],
            options={
                "verbose_name": "vector centre",
                "verbose_name_plural": "vector centres",
                "constraints": [
                    models.UniqueConstraint(
                        fields=("encoder", "weights_hash"),
                        name="visualsearch_centre_encoder_weights",
                    )
                ],
            },
        ),
        migrations.AddField(
            model_name="productembedding",
            name="signs",
            field=visualsearch.models.SignBitsField(
                blank=True, editable=False, null=True, verbose_name="sign bits"
            ),
        ),
        migrations.AddIndex(
            model_name="productembedding",
            index=models.Index(
                condition=models.Q(("signs__isnull", False)),
                fields=["encoder", "product_category", "product_price"],
                include=("product_id", "signs", "weights_hash"),
                name="visualsearch_emb_signs",
            ),
        ),
    ]
