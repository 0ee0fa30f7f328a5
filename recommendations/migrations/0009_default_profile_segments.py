"""The default profile's weights and segment weights, tuned on the demo's simulated
shoppers (docs/figures.md, "Blending on the demo's simulated shoppers"): ALS's picks first for
shoppers with a history and MMR at lambda 0.95, predicted collaborative scores with
visual similarity for products nobody has interacted with yet, more popular products for
new shoppers.

The default profile is updated only while it still has migration 0003's weights and no
segments (an administrator's changes are kept); the literal values are history and are
not read from the code, which may move on.
"""

from django.db import migrations, models

OLD = {
    "diversity_param": 0.85,
    "visual_weight": 0.25,
    "collaborative_weight": 0.2,
    "affinity_weight": 0.45,
    "popularity_weight": 0.1,
    "recency_weight": 0.0,
}

NEW = {
    "diversity_param": 0.95,
    "visual_weight": 0.16,
    "collaborative_weight": 0.0,
    "affinity_weight": 0.8,
    "popularity_weight": 0.04,
    "recency_weight": 0.0,
}

SEGMENTS = {
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


def forwards(apps, schema_editor):
    BlendProfile = apps.get_model("recommendations", "BlendProfile")
    for profile in BlendProfile.objects.filter(name="default"):
        untouched = all(getattr(profile, k) == v for k, v in OLD.items()) and not profile.segments
        untouched = untouched and profile.diversity == "mmr"
        if untouched:
            for key, value in NEW.items():
                setattr(profile, key, value)
            profile.segments = SEGMENTS
            profile.save()


def backwards(apps, schema_editor):
    BlendProfile = apps.get_model("recommendations", "BlendProfile")
    for profile in BlendProfile.objects.filter(name="default"):
        if all(getattr(profile, k) == v for k, v in NEW.items()) and profile.segments == SEGMENTS:
            for key, value in OLD.items():
                setattr(profile, key, value)
            profile.segments = {}
            profile.save()


class Migration(migrations.Migration):
    dependencies = [("recommendations", "0008_experiments")]

    operations = [
        migrations.AlterField(
            model_name="blendprofile",
            name="visual_weight",
            field=models.FloatField(default=0.16, verbose_name="visual weight"),
        ),
        migrations.AlterField(
            model_name="blendprofile",
            name="collaborative_weight",
            field=models.FloatField(default=0.0, verbose_name="collaborative weight"),
        ),
        migrations.AlterField(
            model_name="blendprofile",
            name="affinity_weight",
            field=models.FloatField(default=0.8, verbose_name="affinity weight"),
        ),
        migrations.AlterField(
            model_name="blendprofile",
            name="popularity_weight",
            field=models.FloatField(default=0.04, verbose_name="popularity weight"),
        ),
        migrations.RunPython(forwards, backwards),
    ]
