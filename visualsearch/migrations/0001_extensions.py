from django.db import migrations
from pgvector.django import VectorExtension


class Migration(migrations.Migration):
    """Creates the pgvector extension before any table uses the vector type."""

    initial = True
    dependencies = []
    operations = [VectorExtension()]
