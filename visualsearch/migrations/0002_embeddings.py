
import django.db.models.deletion
import django.utils.timezone
import pgvector.django.vector
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('lookalike_jobs', '0001_initial'),
        migrations.swappable_dependency(settings.LOOKALIKE_PRODUCT_MODEL),
        ('visualsearch', '0001_extensions'),
    ]

    operations = [
        migrations.CreateModel(
            name='IndexJob',
            fields=[
            ],
            options={
                'verbose_name': 'visual index',
                'verbose_name_plural': 'visual index',
                'permissions': [('reindex', 'Can start and resume visual reindexing')],
                'proxy': True,
                'indexes': [],
                'constraints': [],
            },
            bases=('lookalike_jobs.job',),
        ),
        migrations.CreateModel(
            name='IndexFailure',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('encoder', models.CharField(max_length=64)),
                ('image_name', models.CharField(max_length=255)),
                ('image_checksum', models.CharField(blank=True, help_text='Empty when the file itself could not be read.', max_length=64)),
                ('reason', models.TextField()),
                ('failed_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('product', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='visual_index_failures', to=settings.LOOKALIKE_PRODUCT_MODEL)),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('product', 'encoder'), name='visualsearch_failure_product_encoder')],
            },
        ),
        migrations.CreateModel(
            name='ProductEmbedding',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('encoder', models.CharField(max_length=64)),
                ('weights_hash', models.CharField(help_text='Encoder weights the vector came from; others make it stale.', max_length=64)),
                ('image_name', models.CharField(help_text='Storage name of the image; a new upload gets a new name.', max_length=255)),
                ('image_checksum', models.CharField(help_text='SHA-256 of the image bytes.', max_length=64)),
                ('embedding', pgvector.django.vector.VectorField()),
                ('computed_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('product', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='visual_embeddings', to=settings.LOOKALIKE_PRODUCT_MODEL)),
            ],
            options={
                'indexes': [models.Index(fields=['encoder', 'computed_at'], name='visualsearc_encoder_e10b0c_idx')],
                'constraints': [models.UniqueConstraint(fields=('product', 'encoder'), name='visualsearch_embedding_product_encoder')],
            },
        ),
    ]
