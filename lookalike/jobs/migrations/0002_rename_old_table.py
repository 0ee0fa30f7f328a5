"""Databases created before 0.2 keep the jobs in ``jobs_job`` (the app's old label):
rename it once, so that upgrading keeps the job history. New databases have nothing to do."""

from django.db import migrations

RENAME = """
DO $$
BEGIN
    IF to_regclass('jobs_job') IS NOT NULL AND to_regclass('lookalike_jobs_job') IS NULL THEN
        ALTER TABLE jobs_job RENAME TO lookalike_jobs_job;
    END IF;
END $$;
"""


class Migration(migrations.Migration):
    dependencies = [("lookalike_jobs", "0001_initial")]

    operations = [migrations.RunSQL(RENAME, reverse_sql=migrations.RunSQL.noop)]
