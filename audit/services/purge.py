"""Retention: results leave the store once they expire (RESULT_RETENTION_DAYS after arriving).

On PostgreSQL a day whose results have all expired is removed by detaching its partitions
CONCURRENTLY, then dropping them (audit.partitions): the Audit page and ingest never wait for
it. Whatever else has expired (the legacy partition, a day that still holds a later-expiring
row, every row on SQLite) is deleted in batches. Decisions, sample libraries and policy
history are other tables and stay; decisions keep the task ids and verdicts and lose only the
link to the result. Result stubs (for 410 Gone) go RESULT_STUB_DAYS later.

One run at a time (audit.locks); each run is recorded (PurgeRun) for the admin.
"""

import logging
from datetime import UTC, date, datetime, time, timedelta
from time import sleep

from django.conf import settings
from django.contrib.postgres.aggregates import ArrayAgg
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.models import SET_NULL, Count, Q
from django.utils import timezone

from audit import partitions, thumbnails
from audit.locks import job_lock
from audit.models import (
    PurgeRun,
    PurgeStatus,
    Result,
    ResultStub,
)

logger = logging.getLogger(__name__)

PURGE_BATCH = 5000
LOCK_TTL = timedelta(hours=2)
# Days of empty partitions kept ready, in case beat stops for a while. Not more: every query
# on the store plans over every partition (about 0.1 ms each with a warm connection).
PARTITIONS_AHEAD = 7
# DETACH ... CONCURRENTLY waits for the queries that already see the partition (nobody waits
# for it). A query running this long is stuck: stop, the partition stays "detach pending" and
# the next run finalizes it.
DETACH_TIMEOUT = "5min"
# The purge shares a small server with the reviewers: after each heavy piece of a day's removal
# (its scan, a detach, an index or table dropped) it rests a while, so that it never holds the
# machine for long. A third of the piece's time: taking turns on one store of 1M results
# (benchmarks/purge.py --paces 1,0.3,0), rests as long as the pieces did not spare the Audit
# page (its p95 +22% against +16% and +15%) and made a day take up to 1.2 s (0.88 s, 0.80 s).
PACE_SHARE = 0.3  # rest / work
PACE_FROM = 0.005  # seconds: shorter pieces don't rest
PACE_MAX = 0.2
OWN_MEDIA = "results/"  # where ingest stores a result's media (demo rows share demo/ files)


def uses_partitions() -> bool:
    return connection.vendor == "postgresql" and _partitioned()


def results_purge(*, now: datetime | None = None) -> PurgeRun:
    """Remove every expired result (and its rows and media), stubs past their time, and make
    the partitions of the coming days. Idempotent; a run that finds another one going is
    recorded as skipped."""
    now = now or timezone.now()
    run = PurgeRun.objects.create(started_at=timezone.now(), status=PurgeStatus.RUNNING, cutoff=now)
    with job_lock("results-purge", ttl=LOCK_TTL) as held:
        if not held:
            return _finish(run, PurgeStatus.SKIPPED)
        try:
            partitioned = uses_partitions()
            if partitioned:
                _purge_partitions(run, now)
            _purge_rows(run, now)
            _purge_stubs(run, now, partitioned)
        except Exception as error:
            run.error = f"{type(error).__name__}: {error}"[:2000]
            _finish(run, PurgeStatus.FAILED)
            raise
    logger.info(
        "purge: %s results removed (%s days dropped, %s rows deleted), %s files, %s stubs",
        run.results_removed,
        len(run.partitions_dropped),
        run.rows_deleted,
        run.files_removed,
        run.stubs_removed,
    )
    return _finish(run, PurgeStatus.DONE)


def _finish(run: PurgeRun, status: str) -> PurgeRun:
    run.status = status
    run.finished_at = timezone.now()
    run.save()
    return run


# PostgreSQL: a day at a time ------------------------------------------------------------------


def _purge_partitions(run: PurgeRun, now: datetime) -> None:
    today = now.date()
    _drop_detached()  # left by a run that stopped between detaching and dropping
    with connection.cursor() as cursor:
        days = [d for d in partitions.partition_days(cursor, Result._meta.db_table) if d < today]
    retention = timedelta(days=settings.RESULT_RETENTION_DAYS)
    for day in days:
        # A day is a candidate once its last moment is past the retention period (so the
        # empty partitions made ahead are never dropped), and goes once nothing in it is
        # still unexpired (a row may have been given a later expiry).
        if _day_over(day, retention, now) and _day_expired(day, now):
            removed, files = _drop_day(day)
            run.results_removed += removed
            run.files_removed += files
            run.partitions_dropped.append(day.isoformat())
    with transaction.atomic(), connection.cursor() as cursor:
        run.partitions_created = partitions.ensure_days(
            cursor, today, today + timedelta(days=PARTITIONS_AHEAD)
        )


def _day_expired(day: date, now: datetime) -> bool:
    """True if no result stored on `day` is still within its retention."""
    low, high = partitions.day_bounds(day)
    return not Result.objects.filter(id__gte=low, id__lt=high, expires_at__gt=now).exists()


def _drop_day(day: date) -> tuple[int, int]:
    count, names = _day_contents(day)
    files = _delete_files(names)
    specs = [s for s in partitions.partitioned_tables() if s.table != ResultStub._meta.db_table]
    _detach_and_drop(day, specs)
    return count, files  # nothing adds to a day past its retention


def _day_contents(day: date) -> tuple[int, list[str]]:
    """How many results `day` holds and the media they stored themselves. One sequential scan
    on one core: a parallel scan would take both cores of a small server from the Audit page,
    and slices read by index would push the page's own pages out of shared buffers (a large
    sequential scan goes through a small ring of buffers instead)."""
    low, high = partitions.day_bounds(day)
    with partitions.paced(_rest), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        rows = Result.objects.filter(id__gte=low, id__lt=high).aggregate(
            count=Count("id"),
            files=ArrayAgg("file", filter=Q(file__startswith=OWN_MEDIA), default=[]),
        )
    return rows["count"], rows["files"]


def _rest(seconds: float) -> None:
    if seconds >= PACE_FROM:
        sleep(min(seconds * PACE_SHARE, PACE_MAX))


def _detach_and_drop(day: date, specs: list) -> None:
    with connection.cursor() as cursor:
        if connection.in_atomic_block:
            partitions.detach_day(cursor, day, specs)
        else:
            cursor.execute(f"SET lock_timeout = '{DETACH_TIMEOUT}'")
            try:
                partitions.detach_day(cursor, day, specs, pace=_rest)
            finally:
                cursor.execute("RESET lock_timeout")
    _drop_detached()


def _drop_detached() -> None:
    """Finalize pending detaches, then drop each detached day table, clearing the links to a
    result day's rows in the same transaction as its table."""
    with connection.cursor() as cursor:
        partitions.finalize_detaches(cursor)
        partitions.drop_detached(cursor, before_drop=_links_clear, pace=_rest)


def _links_clear(spec, day: date) -> None:
    if not spec.day_ids:
        return
    low, high = partitions.day_bounds(day)
    for model, field in _referrers():
        model.objects.filter(**{f"{field}__gte": low, f"{field}__lt": high}).update(**{field: None})


def _referrers() -> list[tuple[type, str]]:
    """(model, field) of every row that points at a result and outlives it (on_delete
    SET_NULL): a dropped day takes no such row with it, so its link is cleared first. Read
    from the models, hidden relations included, so a new one (in any app) is never missed."""
    return [
        (relation.related_model, relation.field.attname)
        for relation in Result._meta.get_fields(include_hidden=True)
        if relation.one_to_many and relation.auto_created and relation.on_delete is SET_NULL
    ]


def _day_over(day: date, keep: timedelta, now: datetime) -> bool:
    """True once the last moment of `day` (UTC) is `keep` or more in the past."""
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)
    return end + keep <= now


# Everything else, and SQLite: batched DELETE ------------------------------------------------


def _purge_rows(run: PurgeRun, now: datetime) -> None:
    while True:
        batch = list(
            Result.objects.filter(expires_at__lte=now)
            .order_by("expires_at", "id")
            .values_list("id", "file")[:PURGE_BATCH]
        )
        if not batch:
            return
        run.files_removed += _delete_files(name for _, name in batch)
        with transaction.atomic():
            # The collector clears the referrers' links and deletes scenes and fingerprints.
            Result.objects.filter(id__in=[i for i, _ in batch], expires_at__lte=now).delete()
        run.rows_deleted += len(batch)
        run.results_removed += len(batch)


def _purge_stubs(run: PurgeRun, now: datetime, partitioned: bool) -> None:
    cutoff = now - timedelta(days=settings.RESULT_STUB_DAYS)
    stubs = ResultStub._meta.db_table
    if partitioned:
        with connection.cursor() as cursor:
            days = partitions.partition_days(cursor, stubs)
        spec = [s for s in partitions.partitioned_tables() if s.table == stubs]
        keep = timedelta(days=settings.RESULT_RETENTION_DAYS + settings.RESULT_STUB_DAYS)
        for day in days:
            low, high = partitions.day_bounds(day)
            in_day = ResultStub.objects.filter(result_id__gte=low, result_id__lt=high)
            if _day_over(day, keep, now) and not in_day.filter(expires_at__gt=cutoff).exists():
                run.stubs_removed += in_day.count()
                _detach_and_drop(day, spec)
        # Legacy stubs only (ids below the first day): stubs have no expiry index, and a scan
        # of every partition would cost the Audit page more than these few rows are worth.
        legacy = partitions.quote(partitions.legacy_name(stubs))
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {legacy} WHERE expires_at <= %s", [cutoff])  # noqa: S608
            run.stubs_removed += cursor.rowcount
        return
    while True:
        ids = list(
            ResultStub.objects.filter(expires_at__lte=cutoff).values_list("result_id", flat=True)[
                :PURGE_BATCH
            ]
        )
        if not ids:
            return
        ResultStub.objects.filter(result_id__in=ids).delete()
        run.stubs_removed += len(ids)


def _delete_files(names) -> int:
    """Delete the media a result stored itself (demo rows share files under demo/), with the
    thumbnails made of them. Before the rows go: a crash in between leaves rows without
    media, which the pages show as missing, never files without rows."""
    removed = 0
    for name in names:
        if name and name.startswith(OWN_MEDIA):
            thumbnails.thumbnails_delete(name)
            if default_storage.exists(name):
                default_storage.delete(name)
                removed += 1
    return removed


def _partitioned() -> bool:
    with connection.cursor() as cursor:
        return partitions.is_partitioned(cursor, Result._meta.db_table)
