"""Daily partitions of the result store on PostgreSQL (declarative range partitioning).

A result's id carries the UTC day it was stored in its high bits (see RESULT_ID_SQL), so the
store is range-partitioned by id, one partition per day: the primary key stays `id` alone
(a partitioned table's unique keys must contain its partition key), and the rows that belong
to a result (scenes, fingerprints, its stub) are partitioned by `result_id` on the same
bounds. Purging a day then drops one partition of each table: no DELETE, no VACUUM, next to
no WAL. Ids stay below 2**53, so JavaScript reads them exactly.

Rows whose id falls outside every day partition (ids given explicitly, rows stored before the
store was partitioned) land in a DEFAULT partition, which the purge empties row by row.

SQLite has none of this: the same tables are plain, and the purge deletes in batches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

DAY_BITS = 36  # 68.7 billion rows a day before two could share an id
EPOCH = date(1970, 1, 1)
# The id of a new result: the UTC day number, then a sequence value. statement_timestamp()
# rather than now(): a long transaction must not put today's rows into yesterday.
RESULT_ID_SQL = (
    "((floor(extract(epoch from statement_timestamp()) / 86400)::bigint << {bits}) "
    "| (nextval('{sequence}') & {mask}))"
)


@dataclass(frozen=True)
class PartitionedTable:
    table: str
    key: str  # the partition key column: the result's id
    primary_key: tuple[str, ...]
    day_ids: bool = False  # its own id carries the day (audit_result)


def partitioned_tables() -> list[PartitionedTable]:
    """Children first: the order in which a day is dropped."""
    from audit.models import Result, ResultFingerprint, ResultScene, ResultStub

    def name(model) -> str:
        return model._meta.db_table

    return [
        PartitionedTable(name(ResultScene), "result_id", ("id", "result_id")),
        PartitionedTable(name(ResultFingerprint), "result_id", ("id", "result_id")),
        PartitionedTable(name(ResultStub), "result_id", ("result_id",)),
        PartitionedTable(name(Result), "id", ("id",), day_ids=True),
    ]


def day_bounds(day: date) -> tuple[int, int]:
    """The ids of results stored on `day` (UTC): [low, high)."""
    number = (day - EPOCH).days
    return number << DAY_BITS, (number + 1) << DAY_BITS


def day_id(day: date, serial: int) -> int:
    """The id a result stored on `day` gets from sequence value `serial` (RESULT_ID_SQL)."""
    return day_bounds(day)[0] | (serial & ((1 << DAY_BITS) - 1))


def day_of_id(result_id: int) -> date:
    return EPOCH + timedelta(days=result_id >> DAY_BITS)


def partition_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def default_name(table: str) -> str:
    return f"{table}_default"


_DAY_SUFFIX = re.compile(r"_p(\d{8})$")


# Introspection -----------------------------------------------------------------------------


def is_partitioned(cursor, table: str) -> bool:
    cursor.execute("SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass(%s)", [quote(table)])
    row = cursor.fetchone()
    return bool(row) and row[0] == "p"


def partition_days(cursor, table: str) -> list[date]:
    """The days that have a partition of `table`, oldest first."""
    cursor.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(%s)",
        [quote(table)],
    )
    days = []
    for (name,) in cursor.fetchall():
        if match := _DAY_SUFFIX.search(name):
            days.append(datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=UTC).date())
    return sorted(days)


# Creating and dropping partitions ------------------------------------------------------------


def ensure_day(cursor, spec: PartitionedTable, day: date) -> bool:
    """Create the partition of `day` unless it exists; True if created.

    Rows of that day that sit in the DEFAULT partition (ids given explicitly) are moved into
    it first: PostgreSQL refuses to attach a range the DEFAULT partition has rows of.
    """
    name = partition_name(spec.table, day)
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [quote(name)])
    if cursor.fetchone()[0]:
        return False
    low, high = day_bounds(day)
    table, default, key = quote(spec.table), quote(default_name(spec.table)), quote(spec.key)
    cursor.execute(
        f"SELECT EXISTS (SELECT 1 FROM {default} WHERE {key} >= %s AND {key} < %s)",  # noqa: S608
        [low, high],
    )
    if not cursor.fetchone()[0]:
        cursor.execute(
            f"CREATE TABLE {quote(name)} PARTITION OF {table} FOR VALUES FROM ({low}) TO ({high})"
        )
        return True
    cursor.execute(
        f"CREATE TABLE {quote(name)} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    )
    cursor.execute(
        f"WITH moved AS (DELETE FROM {default} WHERE {key} >= %s AND {key} < %s "  # noqa: S608
        f"RETURNING *) INSERT INTO {quote(name)} SELECT * FROM moved",
        [low, high],
    )
    cursor.execute(
        f"ALTER TABLE {table} ATTACH PARTITION {quote(name)} FOR VALUES FROM ({low}) TO ({high})"
    )
    return True


def ensure_days(cursor, first: date, last: date) -> int:
    """Partitions for every day from `first` to `last`, for every partitioned table."""
    created = 0
    day = first
    while day <= last:
        for spec in partitioned_tables():
            created += ensure_day(cursor, spec, day)
        day += timedelta(days=1)
    return created


def detach_day(cursor, day: date, specs: list[PartitionedTable] | None = None) -> None:
    """Detach the partitions of `day` from the given tables (all by default): a catalog
    change that holds the parent tables' exclusive lock only for an instant. The caller
    checked the day is past its retention; `drop_detached` then removes the tables, whose
    files are unlinked at that commit without the parents being locked."""
    # Deferred foreign-key checks queued in this transaction would block ALTER TABLE.
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    for spec in specs or partitioned_tables():
        name = partition_name(spec.table, day)
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(%s))",
            [quote(name)],
        )
        if cursor.fetchone()[0]:
            cursor.execute(f"ALTER TABLE {quote(spec.table)} DETACH PARTITION {quote(name)}")


def drop_detached(cursor) -> list[str]:
    """Drop day tables that are no partition any more (detached by `detach_day`, also by a
    run that stopped in between)."""
    dropped = []
    for spec in partitioned_tables():
        cursor.execute(
            "SELECT c.relname FROM pg_class c WHERE c.relname LIKE %s AND c.relkind = 'r' "
            "AND NOT c.relispartition AND c.relnamespace = current_schema()::regnamespace",
            [spec.table.replace("_", r"\_") + r"\_p%"],
        )
        for (name,) in cursor.fetchall():
            if _DAY_SUFFIX.search(name):
                cursor.execute(f"DROP TABLE {quote(name)}")
                dropped.append(name)
    return dropped


def drop_day(cursor, day: date, specs: list[PartitionedTable] | None = None) -> None:
    """Detach and drop in one transaction (tests and benchmarks; the purge uses two)."""
    detach_day(cursor, day, specs)
    drop_detached(cursor)


# Turning plain tables into partitioned ones (the migration) ------------------------------------


def partition_existing(cursor, spec: PartitionedTable, days: list[date]) -> None:
    """Rebuild `spec.table` as a range-partitioned table with the same columns, defaults,
    checks, indexes (same names, so later migrations find them) and foreign keys, a DEFAULT
    partition and one per day in `days`; its rows are copied over.

    Foreign keys that point at the table must have been removed before (PostgreSQL cannot
    reference a day-partitioned table cheaply enough to drop a day).
    """
    table, old = spec.table, f"{spec.table}_unpartitioned"
    cursor.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
        "AND tablename = %s AND indexname NOT IN "
        "(SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(%s))",
        [table, quote(table)],
    )
    indexes = cursor.fetchall()
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = to_regclass(%s) AND contype = 'f'",
        [quote(table)],
    )
    foreign_keys = cursor.fetchall()
    cursor.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(%s) AND contype IN "
        "('p', 'u')",
        [quote(table)],
    )
    keys = [name for (name,) in cursor.fetchall()]

    cursor.execute(f"ALTER TABLE {quote(table)} RENAME TO {quote(old)}")
    for name, _ in indexes:
        cursor.execute(f"DROP INDEX {quote(name)}")
    for name in keys:
        cursor.execute(f"ALTER TABLE {quote(old)} DROP CONSTRAINT {quote(name)}")
    cursor.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = "
        "current_schema() AND table_name = %s AND is_identity = 'YES'",
        [old],
    )
    for (column,) in cursor.fetchall():
        cursor.execute(f"ALTER TABLE {quote(old)} ALTER COLUMN {quote(column)} DROP IDENTITY")

    cursor.execute(
        f"CREATE TABLE {quote(table)} (LIKE {quote(old)} INCLUDING DEFAULTS "
        f"INCLUDING CONSTRAINTS INCLUDING GENERATED) PARTITION BY RANGE ({quote(spec.key)})"
    )
    if "id" in spec.primary_key:
        sequence = f"{table}_id_seq"
        cursor.execute(f"CREATE SEQUENCE {quote(sequence)} OWNED BY {quote(table)}.id")
        cursor.execute(f"SELECT coalesce(max(id), 0) FROM {quote(old)}")  # noqa: S608
        cursor.execute("SELECT setval(%s, %s)", [sequence, max(cursor.fetchone()[0], 1)])
        default = (
            RESULT_ID_SQL.format(bits=DAY_BITS, sequence=sequence, mask=(1 << DAY_BITS) - 1)
            if spec.day_ids
            else f"nextval('{sequence}')"
        )
        cursor.execute(f"ALTER TABLE {quote(table)} ALTER COLUMN id SET DEFAULT {default}")
    columns = ", ".join(quote(c) for c in spec.primary_key)
    cursor.execute(
        f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(table + '_pkey')} "
        f"PRIMARY KEY ({columns})"
    )
    for _, definition in indexes:
        cursor.execute(definition)
    for name, definition in foreign_keys:
        cursor.execute(f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(name)} {definition}")
    cursor.execute(f"CREATE TABLE {quote(default_name(table))} PARTITION OF {quote(table)} DEFAULT")
    for day in days:
        ensure_day(cursor, spec, day)
    cursor.execute(f"INSERT INTO {quote(table)} SELECT * FROM {quote(old)}")  # noqa: S608
    cursor.execute(f"DROP TABLE {quote(old)}")


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
