"""Blend profiles weigh a sixth component, co-visitation (the products looked at by the
shoppers of the shopper's products, :mod:`recommendations.blending.covisitation`). It
weighs 0 in every existing profile, the default's segments included, which therefore blend
exactly as before."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("recommendations", "0010_event_client")]

    operations = [
        migrations.RemoveConstraint(
            model_name="blendprofile",
            name="recommendations_blend_weights_nonnegative",
        ),
        migrations.AddField(
            model_name="blendprofile",
            name="covisitation_weight",
            field=models.FloatField(default=0.0, verbose_name="co-visitation weight"),
        ),
        migrations.AddConstraint(
            model_name="blendprofile",
            constraint=models.CheckConstraint(
                condition=models.Q(visual_weight__gte=0)
                & models.Q(collaborative_weight__gte=0)
                & models.Q(affinity_weight__gte=0)
                & models.Q(popularity_weight__gte=0)
                & models.Q(recency_weight__gte=0)
                & models.Q(covisitation_weight__gte=0),
                name="recommendations_blend_weights_nonnegative",
            ),
        ),
    ]
