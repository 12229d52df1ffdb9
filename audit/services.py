"""Every write to the result store goes through here."""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit import fetch, media, tasks
from audit.models import (
    SUGGESTION_SEVERITY,
    FetchStatus,
    MediaType,
    Result,
    ResultScene,
)

logger = logging.getLogger(__name__)

TASK_ID_PREFIX = {MediaType.IMAGE: "img", MediaType.VIDEO: "vid", MediaType.TEXT: "txt"}
PURGE_BATCH = 5000


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

    Idempotent by task_id: an item whose task_id is already stored is returned as it is.
    """
    try:
        return _results_ingest_once(media_type=media_type, biz_type=biz_type, items=items)
    except IntegrityError:
        # A concurrent request stored one of our task_ids between our check and insert;
        # the second pass finds it stored and returns it instead.
        return _results_ingest_once(media_type=media_type, biz_type=biz_type, items=items)


def _results_ingest_once(*, media_type, biz_type, items) -> list[Ingested]:
    given = [item["task_id"] for item in items if item.get("task_id")]
    existing = {r.task_id: r for r in Result.objects.filter(task_id__in=given)} if given else {}
    now = timezone.now()
    expires_at = now + timedelta(days=settings.RESULT_RETENTION_DAYS)
    new_rows = []
    outcomes: list[Ingested | Result] = []
    for item in items:
        if (task_id := item.get("task_id")) in existing:
            outcomes.append(Ingested(existing[task_id], created=False))
            continue
        row = _result_build(item, media_type, biz_type, now, expires_at)
        new_rows.append((row, item))
        outcomes.append(row)

    saved_files = []
    try:
        for row, item in new_rows:
            if image := item.get("image"):
                row.file.name = _media_save(row, image.data, image.info.extension)
                saved_files.append(row.file.name)
        with transaction.atomic():
            Result.objects.bulk_create([row for row, _ in new_rows])
            ResultScene.objects.bulk_create(
                ResultScene(
                    result=row,
                    scene=r["scene"],
                    label=r["label"],
                    suggestion=r["suggestion"],
                    rate=r["rate"],
                )
                for row, _ in new_rows
                for r in row.scene_results
            )
            to_fetch = [row.id for row, _ in new_rows if row.fetch_status == FetchStatus.PENDING]
            if to_fetch:
                transaction.on_commit(lambda: tasks.results_fetch.delay(to_fetch))
    except Exception:
        for name in saved_files:
            default_storage.delete(name)
        raise
    return [o if isinstance(o, Ingested) else Ingested(o, created=True) for o in outcomes]


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


def _media_save(result: Result, data: bytes, extension: str) -> str:
    name = f"results/{result.created_at:%Y/%m/%d}/{result.task_id}.{extension}"
    return default_storage.save(name, ContentFile(data))


# Fetching image and video URLs ------------------------------------------------------------


class FetchRetry(Exception):
    """A transient fetch failure that is worth another attempt later."""


def result_fetch(*, result_id: int) -> None:
    """Download, check and store the media of one result. Safe to run twice.

    Raises FetchRetry when the failure was transient and attempts remain.
    """
    result = Result.objects.filter(id=result_id, fetch_status=FetchStatus.PENDING).first()
    if result is None:
        return
    attempts = result.fetch_attempts + 1
    try:
        stored = _media_fetch_and_store(result)
    except (fetch.FetchError, media.MediaError) as error:
        transient = getattr(error, "transient", False)
        retry = transient and attempts < settings.FETCH_MAX_ATTEMPTS
        Result.objects.filter(id=result.id, fetch_status=FetchStatus.PENDING).update(
            fetch_status=FetchStatus.PENDING if retry else FetchStatus.FAILED,
            fetch_error=str(error)[:500],
            fetch_attempts=attempts,
        )
        logger.info("fetch of result %s failed (%s): %s", result.id, attempts, error)
        if retry:
            raise FetchRetry(str(error)) from error
        return
    updated = Result.objects.filter(id=result.id, fetch_status=FetchStatus.PENDING).update(
        fetch_status=FetchStatus.DONE, fetch_error="", fetch_attempts=attempts, **stored
    )
    if not updated:  # another run finished first and stored its own copy
        default_storage.delete(stored["file"])


def _media_fetch_and_store(result: Result) -> dict:
    is_image = result.media_type == MediaType.IMAGE
    fetched = fetch.fetch_url(
        result.url,
        max_bytes=settings.RESULTS_MAX_IMAGE_BYTES
        if is_image
        else settings.RESULTS_MAX_VIDEO_BYTES,
        timeout=settings.FETCH_TIMEOUT_SECONDS,
        allowed_content_types=media.IMAGE_CONTENT_TYPES if is_image else media.VIDEO_CONTENT_TYPES,
        max_redirects=settings.FETCH_MAX_REDIRECTS,
        allowed_networks=settings.FETCH_ALLOWED_NETWORKS,
    )
    if is_image:
        info = media.image_inspect(fetched.content, max_pixels=settings.RESULTS_MAX_IMAGE_PIXELS)
        name = _media_save(result, fetched.content, info.extension)
        return {
            "file": name,
            "content_format": info.format,
            "width": info.width,
            "height": info.height,
        }
    return _video_store(result, fetched.content)


def _video_store(result: Result, data: bytes) -> dict:
    # PyAV reads a local file only; it is stored under a neutral name and checked there.
    name = _media_save(result, data, "bin")
    try:
        info = media.video_inspect(
            default_storage.path(name), max_pixels=settings.RESULTS_MAX_IMAGE_PIXELS
        )
    except media.MediaError:
        default_storage.delete(name)
        raise
    final = _media_save(result, data, info.extension)
    default_storage.delete(name)
    return {
        "file": final,
        "content_format": info.extension,
        "width": info.width,
        "height": info.height,
        "duration": info.duration,
    }


def results_fetch_stale(*, older_than: timedelta = timedelta(minutes=10)) -> list[int]:
    """Ids of results whose fetch is still pending after a while: the broker may have lost
    their task (Redis here keeps nothing on disk), so they are sent again."""
    cutoff = timezone.now() - older_than
    return list(
        Result.objects.filter(fetch_status=FetchStatus.PENDING, created_at__lt=cutoff)
        .order_by("id")
        .values_list("id", flat=True)[:1000]
    )


# Retention ---------------------------------------------------------------------------------


def results_purge(*, now: datetime | None = None) -> int:
    """Delete expired results in batches; their own media files go with them."""
    now = now or timezone.now()
    removed = 0
    while True:
        batch = list(
            Result.objects.filter(expires_at__lte=now)
            .order_by("id")
            .values_list("id", "file")[:PURGE_BATCH]
        )
        if not batch:
            break
        with transaction.atomic():
            Result.objects.filter(id__in=[i for i, _ in batch]).delete()
        for _, name in batch:
            # Demo rows share files under demo/; only a result's own upload is removed.
            if name and name.startswith("results/"):
                default_storage.delete(name)
        removed += len(batch)
    logger.info("purged %s expired results", removed)
    return removed
