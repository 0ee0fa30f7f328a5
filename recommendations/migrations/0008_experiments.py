"""Experiments between blend profiles: experiments and their arms, the impressions of the
strips served in them and what shoppers did after (clicks, carts, purchases)."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("recommendations", "0007_blend_profile_segments"),
        migrations.swappable_dependency(settings.LOOKALIKE_PRODUCT_MODEL),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Experiment",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.SlugField(unique=True, verbose_name="name")),
                ("description", models.TextField(blank=True, verbose_name="description")),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("draft", "Draft"),
                            ("running", "Running"),
                            ("stopped", "Stopped"),
                        ],
                        default="draft",
                        max_length=10,
                        verbose_name="status",
                    ),
                ),
                (
                    "min_impressions",
                    models.PositiveIntegerField(
                        default=2000,
                        help_text=(
                            "The sample size planned before starting: an ordinary significance "
                            "verdict is given only once every arm has shown this many strips "
                            "(see the stopping rule)."
                        ),
                        verbose_name="planned strips per arm",
                    ),
                ),
                (
                    "alpha",
                    models.FloatField(
                        default=0.05,
                        help_text="Two-sided, split between the comparisons with the control arm.",
                        verbose_name="significance level",
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True, verbose_name="created at")),
                (
                    "started_at",
                    models.DateTimeField(blank=True, null=True, verbose_name="started at"),
                ),
                (
                    "stopped_at",
                    models.DateTimeField(blank=True, null=True, verbose_name="stopped at"),
                ),
            ],
            options={
                "verbose_name": "experiment",
                "verbose_name_plural": "experiments",
                "ordering": ["-created_at"],
            },
        ),
        migrations.CreateModel(
            name="ExperimentArm",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.SlugField(verbose_name="name")),
                (
                    "share",
                    models.PositiveIntegerField(
                        default=1,
                        help_text="Relative weight of this arm's traffic.",
                        verbose_name="traffic share",
                    ),
                ),
                (
                    "position",
                    models.PositiveSmallIntegerField(
                        default=0,
                        help_text="The first arm is the control.",
                        verbose_name="position",
                    ),
                ),
                (
                    "experiment",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="arms",
                        to="recommendations.experiment",
                        verbose_name="experiment",
                    ),
                ),
                (
                    "profile",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="recommendations.blendprofile",
                        verbose_name="profile",
                    ),
                ),
            ],
            options={
                "verbose_name": "experiment arm",
                "verbose_name_plural": "experiment arms",
                "ordering": ["experiment", "position", "pk"],
            },
        ),
        migrations.AddField(
            model_name="experiment",
            name="winner",
            field=models.ForeignKey(
                blank=True,
                help_text="The arm whose profile became the default when the experiment stopped.",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="recommendations.experimentarm",
                verbose_name="winner",
            ),
        ),
        migrations.CreateModel(
            name="Impression",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("widget", models.CharField(max_length=30, verbose_name="widget")),
                ("position", models.PositiveSmallIntegerField(verbose_name="position")),
                (
                    "recommendation_id",
                    models.CharField(max_length=32, verbose_name="recommendation id"),
                ),
                (
                    "session_key",
                    models.CharField(blank=True, max_length=40, verbose_name="session key"),
                ),
                (
                    "created_at",
                    models.DateTimeField(
                        default=django.utils.timezone.now, verbose_name="created at"
                    ),
                ),
                ("simulated", models.BooleanField(default=False, verbose_name="simulated")),
                (
                    "arm",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="recommendations.experimentarm",
                        verbose_name="arm",
                    ),
                ),
                (
                    "experiment",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="recommendations.experiment",
                        verbose_name="experiment",
                    ),
                ),
                (
                    "product",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to=settings.LOOKALIKE_PRODUCT_MODEL,
                        verbose_name="product",
                    ),
                ),
                (
                    "profile",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="recommendations.blendprofile",
                        verbose_name="profile",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="user",
                    ),
                ),
            ],
            options={
                "verbose_name": "impression",
                "verbose_name_plural": "impressions",
            },
        ),
        migrations.CreateModel(
            name="ImpressionOutcome",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("click", "Click"),
                            ("cart", "Added to cart"),
                            ("purchase", "Purchase"),
                        ],
                        max_length=10,
                        verbose_name="kind",
                    ),
                ),
                (
                    "created_at",
                    models.DateTimeField(
                        default=django.utils.timezone.now, verbose_name="created at"
                    ),
                ),
                (
                    "event",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="recommendations.event",
                        verbose_name="event",
                    ),
                ),
                (
                    "impression",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="outcomes",
                        to="recommendations.impression",
                        verbose_name="impression",
                    ),
                ),
            ],
            options={
                "verbose_name": "impression outcome",
                "verbose_name_plural": "impression outcomes",
            },
        ),
        migrations.AddConstraint(
            model_name="experimentarm",
            constraint=models.UniqueConstraint(
                fields=("experiment", "name"), name="recommendations_arm_unique_name"
            ),
        ),
        migrations.AddConstraint(
            model_name="experimentarm",
            constraint=models.CheckConstraint(
                condition=models.Q(("share__gt", 0)), name="recommendations_arm_share_positive"
            ),
        ),
        migrations.AddConstraint(
            model_name="experiment",
            constraint=models.UniqueConstraint(
                condition=models.Q(("status", "running")),
                fields=("status",),
                name="recommendations_one_running_experiment",
            ),
        ),
        migrations.AddConstraint(
            model_name="experiment",
            constraint=models.CheckConstraint(
                condition=models.Q(("alpha__gt", 0), ("alpha__lt", 0.5)),
                name="recommendations_experiment_alpha_range",
            ),
        ),
        migrations.AddIndex(
            model_name="impression",
            index=models.Index(fields=["recommendation_id"], name="rec_impression_rec_idx"),
        ),
        migrations.AddIndex(
            model_name="impression",
            index=models.Index(
                fields=["session_key", "product"], name="rec_impression_session_idx"
            ),
        ),
        migrations.AddIndex(
            model_name="impression",
            index=models.Index(fields=["user", "product"], name="rec_impression_user_idx"),
        ),
        migrations.AddIndex(
            model_name="impression",
            index=models.Index(fields=["experiment", "arm"], name="rec_impression_arm_idx"),
        ),
        migrations.AddConstraint(
            model_name="impression",
            constraint=models.UniqueConstraint(
                fields=("recommendation_id", "position"),
                name="recommendations_impression_unique_position",
            ),
        ),
        migrations.AddConstraint(
            model_name="impressionoutcome",
            constraint=models.UniqueConstraint(
                fields=("impression", "kind"), name="recommendations_outcome_once_per_kind"
            ),
        ),
    ]
