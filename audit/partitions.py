"""Daily partitions of the result store on PostgreSQL (declarative range partitioning).

A result's id carries the UTC day it was stored in its high bits (see RESULT_ID_SQL), so the
store is range-partitioned by id, one partition per day: the primary key stays `id` alone
(a partitioned table's unique keys must contain its partition key), and the rows that belong
to a result (scenes, fingerprints, its stub) are partitioned by `result_id` on the same
bounds. Purging a day then drops one partition of each table: no DELETE, no VACUUM, next to
no WAL. Ids stay below 2**53, so JavaScript reads them exactly.

Ids below the first day (day 0, 1970-01-01: rows stored before the store was partitioned, ids
given explicitly) sit in a "legacy" range partition, which the purge empties row by row. There
is no DEFAULT partition: PostgreSQL cannot detach a partition CONCURRENTLY while one exists, and
a plain DETACH makes every query on the store wait for it. So a row of a day that has no
partition yet is refused ("no partition of relation ... found for row"): the purge job creates
PARTITIONS_AHEAD days ahead, and ingest creates a missing day and retries.

SQLite has none of this: the same tables are plain, and the purge deletes in batches.
"""

from __future__ import annotations

import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.db import transaction

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


def legacy_name(table: str) -> str:
    return f"{table}_legacy"


def default_name(table: str) -> str:
    """The DEFAULT partition migration 0007 made (0009 replaces it)."""
    return f"{table}_default"


LEGACY_HIGH = day_bounds(EPOCH)[1]  # the legacy partition holds every id below this


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
            days.append(_day_of_suffix(match))
    return sorted(days)


def _day_of_suffix(match: re.Match) -> date:
    return datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=UTC).date()


# Creating and dropping partitions ------------------------------------------------------------


def ensure_day(cursor, spec: PartitionedTable, day: date) -> bool:
    """Create the partition of `day` unless it exists; True if created."""
    return _partition_ensure(
        cursor, spec, partition_name(spec.table, day), "FROM ({}) TO ({})".format(*day_bounds(day))
    )


def legacy_ensure(cursor, spec: PartitionedTable) -> bool:
    return _partition_ensure(
        cursor, spec, legacy_name(spec.table), f"FROM (MINVALUE) TO ({LEGACY_HIGH})"
    )


def _partition_ensure(cursor, spec: PartitionedTable, name: str, bounds: str) -> bool:
    with transaction.atomic(using=cursor.db.alias):
        # Two sessions making the same day (ingest's retry, the job) wait for each other
        # instead of failing on the second CREATE.
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('audit.partitions'))")
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [quote(name)])
        if cursor.fetchone()[0]:
            return False
        # CREATE TABLE ... PARTITION OF would take an ACCESS EXCLUSIVE lock on the parent (every
        # query on the store waits); ATTACH takes SHARE UPDATE EXCLUSIVE, which reads and
        # writes pass, and checks the new table's rows: there are none.
        table = quote(spec.table)
        cursor.execute(
            f"CREATE TABLE {quote(name)} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        )
        cursor.execute(f"ALTER TABLE {table} ATTACH PARTITION {quote(name)} FOR VALUES {bounds}")
    return True


def ensure_today(cursor) -> int:
    """Partitions for the database's current day and the next (a statement near midnight)."""
    cursor.execute("SELECT (statement_timestamp() AT TIME ZONE 'UTC')::date")
    today = cursor.fetchone()[0]
    return ensure_days(cursor, today, today + timedelta(days=1))


def is_missing_partition(error: Exception) -> bool:
    """True if `error` is PostgreSQL refusing a row that no partition takes."""
    cause = error.__cause__
    return getattr(cause, "sqlstate", None) == "23514" and "no partition of relation" in str(cause)


def ensure_days(cursor, first: date, last: date) -> int:
    """Partitions for every day from `first` to `last`, for every partitioned table."""
    wanted = {}  # quoted partition name: (table spec, day)
    day = first
    while day <= last:
        for spec in partitioned_tables():
            wanted[quote(partition_name(spec.table, day))] = (spec, day)
        day += timedelta(days=1)
    # One look for all of them: the daily run asks for 8 days of 4 tables and finds all but
    # one day there (ensure_day checks again, under its lock, before it creates one).
    cursor.execute(
        "SELECT name FROM unnest(%s::text[]) AS name WHERE to_regclass(name) IS NOT NULL",
        [list(wanted)],
    )
    present = {name for (name,) in cursor.fetchall()}
    return sum(ensure_day(cursor, *wanted[name]) for name in wanted if name not in present)


def detach_day(cursor, day: date, specs: list[PartitionedTable] | None = None, pace=None) -> None:
    """Detach the partitions of `day` from the given tables (all by default); the caller
    checked the day is past its retention. `drop_detached` then removes the tables.

    Outside a transaction it detaches CONCURRENTLY: the parent tables take only a SHARE UPDATE
    EXCLUSIVE lock, so reads and inserts go on, and the command waits for the queries that
    already see the partition. Interrupted, it leaves the partition "detach pending", which
    `finalize_detaches` completes. Inside a transaction (tests) it falls back to a plain
    DETACH, which holds an ACCESS EXCLUSIVE lock on the parent until the commit. `pace` as in
    `drop_detached`."""
    concurrently = not cursor.db.in_atomic_block
    if not concurrently:
        # Deferred foreign-key checks queued in this transaction would block ALTER TABLE.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    for spec in specs or partitioned_tables():
        name = partition_name(spec.table, day)
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(%s))",
            [quote(name)],
        )
        if cursor.fetchone()[0]:
            with paced(pace):
                cursor.execute(
                    f"ALTER TABLE {quote(spec.table)} DETACH PARTITION {quote(name)}"
                    + (" CONCURRENTLY" if concurrently else "")
                )


def finalize_detaches(cursor) -> list[str]:
    """Complete the detaches an interrupted DETACH ... CONCURRENTLY left pending (while one is
    pending, no other partition of that table can be detached concurrently)."""
    finalized = []
    for spec in partitioned_tables():
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(%s) AND i.inhdetachpending",
            [quote(spec.table)],
        )
        for (name,) in cursor.fetchall():
            cursor.execute(
                f"ALTER TABLE {quote(spec.table)} DETACH PARTITION {quote(name)} FINALIZE"
            )
            finalized.append(name)
    return finalized


def detached_days(cursor) -> list[tuple[PartitionedTable, date, str]]:
    """Day tables that are no partition any more (detached by `detach_day`, also by a run that
    stopped before dropping them): (table spec, day, table name)."""
    found = []
    for spec in partitioned_tables():
        cursor.execute(
            "SELECT c.relname FROM pg_class c WHERE c.relname LIKE %s AND c.relkind = 'r' "
            "AND NOT c.relispartition AND c.relnamespace = current_schema()::regnamespace",
            [spec.table.replace("_", r"\_") + r"\_p%"],
        )
        for (name,) in cursor.fetchall():
            if match := _DAY_SUFFIX.search(name):
                found.append((spec, _day_of_suffix(match), name))
    return found


def drop_detached(cursor, before_drop=None, pace=None) -> list[str]:
    """Drop every detached day table (see `detached_days`): first its indexes, then the
    table, each in a transaction of its own. PostgreSQL unlinks a relation's files at the
    commit, which takes the kernel ~0.3 ms per cached MB (a day's fingerprints are ~400 MB):
    in pieces, no single commit holds a core for long. `pace(seconds)` is called after each
    piece with the time it took (the purge rests in between). `before_drop(spec, day)` runs in
    the table's own transaction first."""
    dropped = []
    for spec, day, name in detached_days(cursor):
        for index in _plain_indexes(cursor, name):
            with paced(pace), transaction.atomic(using=cursor.db.alias):
                cursor.execute(f"DROP INDEX IF EXISTS {quote(index)}")
        with paced(pace), transaction.atomic(using=cursor.db.alias):
            if before_drop is not None:
                before_drop(spec, day)
            cursor.execute(f"DROP TABLE {quote(name)}")
        dropped.append(name)
    return dropped


@contextmanager
def paced(pace=None):
    """Times the block, commit included when it holds a transaction, and passes the seconds
    to `pace` once it succeeded (the purge rests after each heavy piece)."""
    started = time.perf_counter()
    yield
    if pace is not None:
        pace(time.perf_counter() - started)


def _plain_indexes(cursor, table: str) -> list[str]:
    """The indexes of `table` that no constraint owns (its primary key goes with the table)."""
    cursor.execute(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = to_regclass(%s) AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) ORDER BY c.relname",
        [quote(table)],
    )
    return [name for (name,) in cursor.fetchall()]


def drop_day(cursor, day: date, specs: list[PartitionedTable] | None = None) -> None:
    """Detach and drop (tests and benchmarks; the purge also clears the links to the day's
    results)."""
    detach_day(cursor, day, specs)
    drop_detached(cursor)


# Turning plain tables into partitioned ones (the migration) ------------------------------------


def partition_existing(cursor, spec: PartitionedTable, days: list[date]) -> None:
    """Rebuild `spec.table` as a range-partitioned table with the same columns, defaults,
    checks, indexes (same names, so later migrations find them) and foreign keys, the legacy
    partition and one per day in `days` or in its rows; its rows are copied over.

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
    legacy_ensure(cursor, spec)
    for day in sorted(set(days) | set(_days_in(cursor, old, spec.key))):
        ensure_day(cursor, spec, day)
    cursor.execute(f"INSERT INTO {quote(table)} SELECT * FROM {quote(old)}")  # noqa: S608
    cursor.execute(f"DROP TABLE {quote(old)}")


def _days_in(cursor, table: str, key: str) -> list[date]:
    """The days of the day-carrying ids in `table` (ids below LEGACY_HIGH carry none)."""
    cursor.execute(
        f"SELECT DISTINCT {quote(key)} >> {DAY_BITS} FROM {quote(table)} "  # noqa: S608
        f"WHERE {quote(key)} >= %s",
        [LEGACY_HIGH],
    )
    return [EPOCH + timedelta(days=number) for (number,) in cursor.fetchall()]


def default_replace(cursor) -> None:
    """Migration 0009: the DEFAULT partitions become the legacy range partitions; their rows
    move to the legacy partition or to a partition of their day (made if missing)."""
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # deferred checks would block the DROP
    specs = partitioned_tables()
    olds = {}
    for spec in specs:
        default = default_name(spec.table)
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [quote(default)])
        if cursor.fetchone()[0]:
            cursor.execute(f"ALTER TABLE {quote(spec.table)} DETACH PARTITION {quote(default)}")
            olds[spec.table] = default
        legacy_ensure(cursor, spec)
    days = {
        day
        for spec in specs
        if spec.table in olds
        for day in _days_in(cursor, olds[spec.table], spec.key)
    }
    for day in sorted(days):
        for spec in specs:  # every table, so a result's rows have a place like the result
            ensure_day(cursor, spec, day)
    for table, old in olds.items():
        cursor.execute(f"INSERT INTO {quote(table)} SELECT * FROM {quote(old)}")  # noqa: S608
        cursor.execute(f"DROP TABLE {quote(old)}")


def default_restore(cursor) -> None:
    """Migration 0009 reversed: the legacy partitions' rows go back to DEFAULT partitions
    (the day partitions stay)."""
    for spec in partitioned_tables():
        table, legacy = quote(spec.table), quote(legacy_name(spec.table))
        cursor.execute(f"ALTER TABLE {table} DETACH PARTITION {legacy}")
        cursor.execute(
            f"CREATE TABLE {quote(default_name(spec.table))} PARTITION OF {table} DEFAULT"
        )
        cursor.execute(f"INSERT INTO {table} SELECT * FROM {legacy}")  # noqa: S608
        cursor.execute(f"DROP TABLE {legacy}")


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
