"""PostgreSQL: the DEFAULT partitions of the result store (0007) become range partitions for
the ids below the first day ("legacy"), so that purging can DETACH ... CONCURRENTLY, which
PostgreSQL refuses while a table has a DEFAULT partition. Rows move to the legacy partition or
to the partition of their day. Reversible; nothing to do on SQLite."""

from django.db import migrations


def default_to_legacy(apps, schema_editor):
    if not _partitioned(schema_editor):
        return
    from audit import partitions

    with schema_editor.connection.cursor() as cursor:
        partitions.default_replace(cursor)


def legacy_to_default(apps, schema_editor):
    if not _partitioned(schema_editor):
        return
    from audit import partitions

    with schema_editor.connection.cursor() as cursor:
        partitions.default_restore(cursor)


def _partitioned(schema_editor) -> bool:
    if schema_editor.connection.vendor != "postgresql":
        return False
    from audit import partitions

    with schema_editor.connection.cursor() as cursor:
        return partitions.is_partitioned(cursor, "audit_result")


class Migration(migrations.Migration):
    dependencies = [("audit", "0010_fingerprint_kind_id")]

    operations = [migrations.RunPython(default_to_legacy, legacy_to_default)]
