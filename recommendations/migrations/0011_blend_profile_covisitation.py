"""Blend profiles weigh a sixth component, co-visitation (the products looked at by the
shoppers of the shopper's products, :mod:`recommendations.blending.covisitation`); it
weighs 0 in every existing profile, which therefore blends as before, except the default
profile's new-shopper weights: tuned on the demo's simulated shoppers (README, "Blending on
the demo's simulated shoppers"), a shopper with one or two events is served mostly from
ALS and co-visitation.

The default profile's segments are updated only while they are still migration 0009's (an
administrator's changes are kept); the literal values are history and are not read from
the code, which may move on.
"""

from django.db import migrations, models

OLD_SEGMENTS = {
    "cold_item": {
        "visual": 0.14,
        "collaborative": 0.29,
        "affinity": 0.57,
        "popularity": 0.0,
        "recency": 0.0,
    },
    "new_shopper": {
        "visual": 0.05,
        "collaborative": 0.05,
        "affinity": 0.4,
        "popularity": 0.3,
        "recency": 0.0,
    },
}

SEGMENTS = {
    "cold_item": {
        "visual": 0.14,
        "collaborative": 0.29,
        "affinity": 0.57,
        "popularity": 0.0,
        "recency": 0.0,
        "covisitation": 0.0,
    },
    "new_shopper": {
        "visual": 0.05,
        "collaborative": 0.0,
        "affinity": 0.4,
        "popularity": 0.05,
        "recency": 0.0,
        "covisitation": 0.3,
    },
}


def forwards(apps, schema_editor):
    BlendProfile = apps.get_model("recommendations", "BlendProfile")
    for profile in BlendProfile.objects.filter(name="default"):
        if profile.segments == OLD_SEGMENTS:
            profile.segments = SEGMENTS
            profile.save(update_fields=["segments"])


def backwards(apps, schema_editor):
    BlendProfile = apps.get_model("recommendations", "BlendProfile")
    for profile in BlendProfile.objects.filter(name="default"):
        if profile.segments == SEGMENTS:
            profile.segments = OLD_SEGMENTS
            profile.save(update_fields=["segments"])


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
        migrations.RunPython(forwards, backwards),
    ]
