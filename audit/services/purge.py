"""Retention: results older than RESULT_RETENTION_DAYS leave the store."""

import logging
from datetime import datetime

from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from audit.models import (
    Result,
)

logger = logging.getLogger(__name__)


PURGE_BATCH = 5000


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
