"""Blend profiles can weigh their sources differently per segment of requests (a product
nobody has interacted with yet, a shopper with one or two events): ``segments`` holds the
weights that replace the profile's own there. Empty for every existing profile, which
therefore blends exactly as before."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("recommendations", "0006_default_profile_weights")]

    operations = [
        migrations.AddField(
            model_name="blendprofile",
            name="segments",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text=(
                    "Weights that replace the ones above for a segment of requests, for "
                    'example {"cold_item": {"visual": 0.8}}: the missing components keep '
                    "the weights above."
                ),
                verbose_name="segment weights",
            ),
        ),
    ]
