"""Storing results: validated items in, rows and their scene index out, all or nothing."""

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from audit import partitions, tasks
from audit.models import (
    SUGGESTION_SEVERITY,
    FetchStatus,
    MediaType,
    Result,
    ResultScene,
    ResultStub,
)

logger = logging.getLogger(__name__)


TASK_ID_PREFIX = {MediaType.IMAGE: "img", MediaType.VIDEO: "vid", MediaType.TEXT: "txt"}


@dataclass(frozen=True)
class Ingested:
    result: Result
    created: bool


def worst_scene(scene_results: list[dict]) -> dict:
    """The scene result that decides the item: worst suggestion, then highest rate."""
    return max(scene_results, key=lambda r: (SUGGESTION_SEVERITY[r["suggestion"]], r["rate"]))


def task_id_generate(media_type: str) -> str:
    return TASK_ID_PREFIX[media_type] + uuid.uuid4().hex


def results_ingest(*, media_type: str, biz_type: str, items: list[dict]) -> list[Ingested]:
    """Store validated items (see serializers.IngestSerializer), all or nothing.

    Idempotent by task_id: an item whose task_id is already stored is returned as it is. Two
    requests with the same task id never both store it: on PostgreSQL each holds a lock per
    given task id from its check to its commit; SQLite lets one writer in at a time.
    """
    saved_files = []
    try:
        with transaction.atomic():
            given = [item["task_id"] for item in items if item.get("task_id")]
            _task_ids_lock(given)
            existing = (
                {r.task_id: r for r in Result.objects.filter(task_id__in=given)} if given else {}
            )
            now = timezone.now()
            expires_at = now + timedelta(days=settings.RESULT_RETENTION_DAYS)
            new_rows = []
            outcomes: list[Ingested | Result] = []
            for item in items:
                if (task_id := item.get("task_id")) in existing:
                    outcomes.append(Ingested(existing[task_id], created=False))
                    continue
                row = _result_build(item, media_type, biz_type, now, expires_at)
                if image := item.get("image"):
                    row.file.name = media_save(row, image.data, image.info.extension)
                    saved_files.append(row.file.name)
                new_rows.append(row)
                outcomes.append(row)
            _rows_insert(new_rows)
            to_fetch = [row.id for row in new_rows if row.fetch_status == FetchStatus.PENDING]
            # Texts and inline images have their content now (fetched media get fingerprints
            # after the fetch): hashing is the worker's job, not the request's.
            to_hash = [row.id for row in new_rows if row.text or row.file]
            if to_fetch or to_hash:
                # One message per request; robust: the rows are committed, and a broker that
                # is down must not turn that into an error (the stale-fetch job resends).
                transaction.on_commit(
                    lambda: tasks.results_arrived.delay(to_fetch, to_hash), robust=True
                )
    except Exception:
        for name in saved_files:
            default_storage.delete(name)
        raise
    return [o if isinstance(o, Ingested) else Ingested(o, created=True) for o in outcomes]


def _rows_insert(results: list[Result]) -> None:
    """The results with their scene rows and stubs. On PostgreSQL a day whose partitions do
    not exist yet (beat stopped for longer than the job makes days ahead) is created, once,
    and the rows are inserted again: a request is never refused for want of a partition."""
    try:
        with transaction.atomic():
            _rows_insert_once(results)
    except IntegrityError as error:
        if not partitions.is_missing_partition(error):
            raise
        logger.warning("ingest: creating today's partitions, which the purge job should have made")
        for row in results:
            row.id = None  # the database gives the ids again
        with transaction.atomic(), connection.cursor() as cursor:
            partitions.ensure_today(cursor)
            _rows_insert_once(results)


def _rows_insert_once(results: list[Result]) -> None:
    Result.objects.bulk_create(results)
    _scenes_insert(results)
    ResultStub.objects.bulk_create(stub_of(row) for row in results)


def stub_of(result: Result) -> ResultStub:
    """The row that answers 410 Gone for the result's task id once it is purged."""
    return ResultStub(
        result_id=result.id,
        task_id=result.task_id,
        media_type=result.media_type,
        expires_at=result.expires_at,
    )


def _task_ids_lock(task_ids: list[str]) -> None:
    """Transaction-scoped PostgreSQL advisory locks, one per task id, taken in a fixed order
    so two requests sharing several ids cannot deadlock. (SQLite: the IMMEDIATE transaction
    already excludes other writers.)"""
    if not task_ids or connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(key) FROM (SELECT DISTINCT "
            "hashtextextended(task_id, 0) AS key FROM unnest(%s::text[]) AS task_id "
            "ORDER BY key) AS keys",
            [task_ids],
        )


def _scenes_insert(results: list[Result]) -> None:
    # One multi-row INSERT of plain values: building a model instance per scene row cost a
    # quarter of the ingest time (benchmarks/ingest.py). At most 100 items x 20 scenes.
    rows = [
        (result.id, r["scene"], r["label"], r["suggestion"], r["rate"])
        for result in results
        for r in result.scene_results
    ]
    if not rows:
        return
    values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(rows))
    sql = (
        f"INSERT INTO {ResultScene._meta.db_table} "  # noqa: S608 - no user text in the SQL
        f"(result_id, scene, label, suggestion, rate) VALUES {values}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for row in rows for value in row])


def _result_build(item, media_type, biz_type, now, expires_at) -> Result:
    scene_results = item["results"]
    worst = worst_scene(scene_results)
    row = Result(
        media_type=media_type,
        task_id=item.get("task_id") or task_id_generate(media_type),
        data_id=item.get("data_id", ""),
        biz_type=biz_type,
        url=item.get("url", ""),
        text=item.get("text", ""),
        scene_results=scene_results,
        frames=item.get("frames", []),
        machine_suggestion=worst["suggestion"],
        machine_label=worst["label"],
        suggestion=worst["suggestion"],
        label=worst["label"],
        created_at=now,
        expires_at=expires_at,
    )
    if image := item.get("image"):
        row.content_format = image.info.format
        row.width, row.height = image.info.width, image.info.height
        row.fetch_status = FetchStatus.DONE
    elif row.url and media_type != MediaType.TEXT:
        row.fetch_status = FetchStatus.PENDING
    return row


def media_save(result: Result, data: bytes, extension: str) -> str:
    name = f"results/{result.created_at:%Y/%m/%d}/{result.task_id}.{extension}"
    return default_storage.save(name, ContentFile(data))
