"""Downloading the media of results that arrived as URLs (the fetch task's work)."""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from audit import fetch, media
from audit.models import (
    FetchStatus,
    MediaType,
    Result,
)
from green import callbacks as alibaba_callbacks

from .fingerprinting import results_fingerprint
from .ingest import media_save

logger = logging.getLogger(__name__)


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
        with transaction.atomic():
            failed = Result.objects.filter(id=result.id, fetch_status=FetchStatus.PENDING).update(
                fetch_status=FetchStatus.PENDING if retry else FetchStatus.FAILED,
                fetch_error=str(error)[:500],
                fetch_attempts=attempts,
            )
            if failed and not retry:
                alibaba_callbacks.scan_callbacks_ready(result_id=result.id)
        logger.info("fetch of result %s failed (%s): %s", result.id, attempts, error)
        if retry:
            raise FetchRetry(str(error)) from error
        return
    with transaction.atomic():
        updated = Result.objects.filter(id=result.id, fetch_status=FetchStatus.PENDING).update(
            fetch_status=FetchStatus.DONE, fetch_error="", fetch_attempts=attempts, **stored
        )
        if updated:  # an async scan's result is ready: its Alibaba-form callback
            alibaba_callbacks.scan_callbacks_ready(result_id=result.id)
    if not updated:  # another run finished first and stored its own copy
        default_storage.delete(stored["file"])
        return
    results_fingerprint(result_ids=[result.id])


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
        name = media_save(result, fetched.content, info.extension)
        return {
            "file": name,
            "content_format": info.format,
            "width": info.width,
            "height": info.height,
        }
    return _video_store(result, fetched.content)


def _video_store(result: Result, data: bytes) -> dict:
    # PyAV reads a local file only; it is stored under a neutral name and checked there.
    name = media_save(result, data, "bin")
    try:
        info = media.video_inspect(
            default_storage.path(name), max_pixels=settings.RESULTS_MAX_IMAGE_PIXELS
        )
    except media.MediaError:
        default_storage.delete(name)
        raise
    final = media_save(result, data, info.extension)
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
