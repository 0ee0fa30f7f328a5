"""A new blend profile starts from the default profile's weights (migration 0003's), which
are now written once, in ``recommendations.blending.core.DEFAULT_WEIGHTS``. Python-side
defaults only: nothing changes in the database."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("recommendations", "0005_hash_session_keys")]

    operations = [
        migrations.AlterField(
            model_name="blendprofile",
            name="visual_weight",
            field=models.FloatField(default=0.25, verbose_name="visual weight"),
        ),
        migrations.AlterField(
            model_name="blendprofile",
            name="collaborative_weight",
            field=models.FloatField(default=0.2, verbose_name="collaborative weight"),
        ),
        migrations.AlterField(
            model_name="blendprofile",
            name="affinity_weight",
            field=models.FloatField(default=0.45, verbose_name="affinity weight"),
        ),
        migrations.AlterField(
            model_name="blendprofile",
            name="recency_weight",
            field=models.FloatField(default=0.0, verbose_name="recency weight"),
        ),
    ]
