"""Anonymous shoppers' session keys are stored as a keyed hash from now on.

Events recorded before kept the live session key, which staff allowed to read events could
use to take over the shopper's session. They are replaced by the same keyed hash that
``recommendations.events.hash_session_key`` stores now (HMAC with the project's
``SECRET_KEY``), so those shoppers keep their history. Simulated shoppers' keys are not
sessions and are kept.
"""

from django.db import migrations

BATCH = 1000


def hash_keys(apps, schema_editor):
    from recommendations.events import hash_session_key

    Event = apps.get_model("recommendations", "Event")
    keys = list(
        Event.objects.filter(user__isnull=True, simulated=False)
        .exclude(session_key="")
        .values_list("session_key", flat=True)
        .distinct()
    )
    table = schema_editor.quote_name(Event._meta.db_table)
    with schema_editor.connection.cursor() as cursor:
        for start in range(0, len(keys), BATCH):
            batch = keys[start : start + BATCH]
            values = ", ".join(["(%s, %s)"] * len(batch))
            params = [value for key in batch for value in (key, hash_session_key(key))]
            cursor.execute(
                f"UPDATE {table} e SET session_key = m.hashed FROM (VALUES {values}) "
                "AS m(raw, hashed) WHERE e.session_key = m.raw AND e.user_id IS NULL "
                "AND NOT e.simulated",
                params,
            )


class Migration(migrations.Migration):
    dependencies = [("recommendations", "0004_translatable_labels")]

    operations = [migrations.RunPython(hash_keys, migrations.RunPython.noop)]
