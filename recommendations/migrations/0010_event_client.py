"""Events say which client address sent them, as a keyed hash (``Event.client``), so that
the many sessions of one address weigh as one shopper in popularity and training.

Earlier events keep an empty ``client`` and count per shopper as before. The column has a
database default (PostgreSQL adds it without rewriting the table), which also serves the
``COPY`` of ``simulate_shoppers``, that does not name it.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("recommendations", "0009_default_profile_segments"),
    ]

    operations = [
        migrations.AddField(
            model_name="event",
            name="client",
            field=models.CharField(
                blank=True,
                db_default="",
                default="",
                editable=False,
                max_length=40,
                verbose_name="client",
            ),
        ),
    ]
