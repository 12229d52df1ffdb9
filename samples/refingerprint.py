"""Recomputing the image fingerprints of results and samples stored before the matcher kept
thumbnails (an exact row without a `code`).

Such images still match by PDQ alone, as they did; recomputed, they are also confirmed by
their thumbnails and, when flat, found by layout. A row's id changes with it, so the indexes,
which read rows by id, take the new rows in at their next refresh; the old PDQ codes they hold
name the same owner and go at their daily rebuild.
"""

import logging

from django.core.files.storage import default_storage
from django.db import transaction

from audit import media
from audit.models import MediaType
from samples import matching
from samples.fingerprint_base import FingerprintKind as Kind

logger = logging.getLogger(__name__)

IMAGE_KINDS = (Kind.IMAGE_EXACT, Kind.IMAGE_FLAT, Kind.PDQ, Kind.PDQ_VARIANT)


def stale_images_refingerprint(store: matching.Store, *, batch: int = 200) -> int:
    """Recompute, a batch per transaction, every image of the store whose exact row has no
    thumbnail; returns how many were recomputed. Safe to rerun or to interrupt: an image is
    stale until its own transaction replaces all its image rows."""
    done, last = 0, 0
    rows = store.rows.objects
    while True:
        owners = list(
            rows.filter(
                kind=Kind.IMAGE_EXACT, code__isnull=True, **{f"{store.owner_field}__gt": last}
            )
            .order_by(store.owner_field)
            .values_list(store.owner_field, flat=True)
            .distinct()[:batch]
        )
        if not owners:
            return done
        last = owners[-1]
        for owner in store.owners.objects.filter(id__in=owners, media_type=MediaType.IMAGE):
            done += _image_refingerprint(store, owner)


def _image_refingerprint(store: matching.Store, owner) -> int:
    if not owner.file:
        return 0
    try:
        with default_storage.open(owner.file.name, "rb") as f:
            new = matching.image_rows(f.read())
    except (OSError, media.MediaError) as error:
        # Its media is gone or unreadable: the rows it has are all it can have.
        logger.warning("%s %s: image not refingerprinted: %s", store.name, owner.id, error)
        return 0
    with transaction.atomic():
        store.rows.objects.filter(**{store.owner_field: owner.id}, kind__in=IMAGE_KINDS).delete()
        store.rows.objects.bulk_create(
            store.rows(**{store.owner_field: owner.id}, **row) for row in new
        )
    return 1
