from django.db import migrations

DEFAULT = {
    "name": "default",
    "is_default": True,
    "visual_weight": 0.4,
    "collaborative_weight": 0.3,
    "affinity_weight": 0.15,
    "popularity_weight": 0.1,
    "recency_weight": 0.05,
    "diversity": "mmr",
    "diversity_param": 0.7,
    "in_stock_only": True,
    "exclude_purchased": True,
    "exclude_current": True,
    "notes": (
        "Created by migration: mostly visual similarity and collaborative filtering, "
        "a little personal affinity, popularity and recency; MMR diversity (lambda 0.7)."
    ),
}


def create_default_profile(apps, schema_editor):
    BlendProfile = apps.get_model("recommendations", "BlendProfile")
    if BlendProfile.objects.filter(name=DEFAULT["name"]).exists():
        return
    has_default = BlendProfile.objects.filter(is_default=True).exists()
    BlendProfile.objects.create(**{**DEFAULT, "is_default": not has_default})


def remove_default_profile(apps, schema_editor):
    BlendProfile = apps.get_model("recommendations", "BlendProfile")
    BlendProfile.objects.filter(name=DEFAULT["name"]).delete()


class Migration(migrations.Migration):
    dependencies = [("recommendations", "0002_recommender_model_blend_profile")]

    operations = [migrations.RunPython(create_default_profile, remove_default_profile)]
