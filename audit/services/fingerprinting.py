"""Fingerprints of results, computed by the worker once their content is stored."""

import logging

from django.db import transaction

from audit import media
from audit.models import (
    Result,
    ResultFingerprint,
)
from samples import matching

logger = logging.getLogger(__name__)


def fingerprints_ensure(result: Result) -> None:
    """Compute a result's fingerprints if it has none yet (and its media is there)."""
    if result.fingerprints.exists():
        return
    try:
        rows = matching.result_rows(result)
    except media.MediaError as error:
        logger.warning("result %s: no fingerprints: %s", result.id, error)
        return
    ResultFingerprint.objects.bulk_create(ResultFingerprint(result=result, **row) for row in rows)


def results_fingerprint(*, result_ids: list[int]) -> None:
    for result in Result.objects.filter(id__in=result_ids):
        with transaction.atomic():
            fingerprints_ensure(result)


def results_fingerprint_missing(*, batch: int = 2000) -> int:
    """Fingerprint every result that has none (a backfill, and seed_demo's demo data).

    Results that share a file or a text are hashed once.
    """
    done, cache = 0, {}
    last_id = 0
    while True:
        results = list(
            Result.objects.filter(id__gt=last_id, fingerprints__isnull=True)
            .order_by("id")
            .only("id", "media_type", "file", "text")[:batch]
        )
        if not results:
            return done
        rows = []
        for result in results:
            key = (result.media_type, result.file.name or "", result.text)
            if key not in cache:
                try:
                    cache[key] = matching.result_rows(result)
                except media.MediaError:
                    cache[key] = []
            rows += [ResultFingerprint(result=result, **row) for row in cache[key]]
        ResultFingerprint.objects.bulk_create(rows, batch_size=5000)
        done += len(results)
        last_id = results[-1].id
