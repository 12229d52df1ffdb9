"""Recomputing the image fingerprints of results and samples stored before the matcher kept
thumbnails (an exact row without a `code`), or before it kept cropped forms and crophash codes
(no CROP_THUMB row, the last kind added).

Such images still match as they did; recomputed, they are also confirmed by their thumbnails
and, when flat, found by layout, and their cropped, bordered and captioned copies are found.
An image without a thumbnail gets all its image rows replaced: a row's id changes with it, so
the indexes, which read rows by id, take the new rows in at their next refresh; the old PDQ
codes they hold name the same owner and go at their daily rebuild. An image with a thumbnail
but no cropped forms only gets those added, leaving its other rows (and the indexes) as they
are.
"""

import logging

from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Exists, OuterRef, Q

from audit import media
from audit.models import MediaType
from samples import matching
from samples.fingerprint_base import FingerprintKind as Kind

logger = logging.getLogger(__name__)

CROP_KINDS = (Kind.PDQ_CROP, Kind.CROP_CODE, Kind.CROP_THUMB)
IMAGE_KINDS = (Kind.IMAGE_EXACT, Kind.IMAGE_FLAT, Kind.PDQ, Kind.PDQ_VARIANT, *CROP_KINDS)


def stale_images_refingerprint(store: matching.Store, *, batch: int = 200) -> int:
    """Recompute, a batch per transaction, every image of the store whose exact row has no
    thumbnail or that has no cropped forms; returns how many were recomputed. Safe to rerun or
    to interrupt: an image is stale until its own transaction writes its new rows."""
    done, last = 0, 0
    rows = store.rows.objects
    cropped = rows.filter(kind=Kind.CROP_THUMB, **{store.owner_field: OuterRef(store.owner_field)})
    stale = rows.filter(
        Q(code__isnull=True) | ~Exists(cropped), kind__in=matching.EXACT_KINDS
    ).values_list(store.owner_field, "code")
    while True:
        found = list(
            stale.filter(**{f"{store.owner_field}__gt": last}).order_by(store.owner_field)[:batch]
        )
        if not found:
            return done
        last = found[-1][0]
        thumbless = {owner for owner, code in found if code is None}
        owners = store.owners.objects.filter(
            id__in=[o for o, _ in found], media_type=MediaType.IMAGE
        )
        for owner in owners:
            done += _image_refingerprint(store, owner, crops_only=owner.id not in thumbless)


def _image_refingerprint(store: matching.Store, owner, *, crops_only: bool) -> int:
    if not owner.file:
        return 0
    try:
        with default_storage.open(owner.file.name, "rb") as f:
            new = matching.image_rows(f.read(), query=False)
    except (OSError, media.MediaError) as error:
        # Its media is gone or unreadable: the rows it has are all it can have.
        logger.warning("%s %s: image not refingerprinted: %s", store.name, owner.id, error)
        return 0
    kinds = CROP_KINDS if crops_only else IMAGE_KINDS
    with transaction.atomic():
        store.rows.objects.filter(**{store.owner_field: owner.id}, kind__in=kinds).delete()
        store.rows.objects.bulk_create(
            store.rows(**{store.owner_field: owner.id}, **row)
            for row in new
            if row["kind"] in kinds
        )
    return 1
