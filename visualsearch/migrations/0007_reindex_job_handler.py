"""The reindex job handler moved from ``visualsearch.services.jobs`` to the package
``visualsearch.indexing``: rename it in the job rows written before (queued, failed,
finished), so that they still run and resume (``Job.handler`` is a dotted path)."""

from django.db import migrations

RENAMED = {"visualsearch.services.jobs.reindex_job": "visualsearch.indexing.reindex_job"}


def _rename(apps, schema_editor, names):
    Job = apps.get_model("lookalike_jobs", "Job")
    rows = Job.objects.using(schema_editor.connection.alias)
    for old, new in names.items():
        rows.filter(handler=old).update(handler=new)


def forwards(apps, schema_editor):
    _rename(apps, schema_editor, RENAMED)


def backwards(apps, schema_editor):
    _rename(apps, schema_editor, {new: old for old, new in RENAMED.items()})


class Migration(migrations.Migration):
    dependencies = [
        ("lookalike_jobs", "0005_translatable_labels"),
        ("visualsearch", "0006_translatable_labels"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
