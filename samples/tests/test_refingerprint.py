"""Images fingerprinted before thumbnails were kept get theirs (samples.refingerprint)."""

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command

from audit.models import MediaType, ResultFingerprint
from audit.tests.factories import ResultFactory
from samples import matching, refingerprint
from samples.fingerprint_base import FingerprintKind as Kind
from samples.models import Sample, SampleFingerprint, SampleLibrary
from samples.tests.test_image_matching import COPIES, SOURCE, edited

pytestmark = pytest.mark.django_db


def as_stored_before_thumbnails(rows: list[dict]) -> list[dict]:
    """What the matcher stored before: a plain exact row with no thumbnail, PDQ rows as now."""
    old = []
    for row in rows:
        if row["kind"] in (Kind.IMAGE_EXACT, Kind.IMAGE_FLAT):
            row = {"kind": Kind.IMAGE_EXACT, "key": row["key"]}
        old.append(row)
    return old


def old_result(data: bytes, name="old.png"):
    result = ResultFactory(media_type=MediaType.IMAGE)
    result.file.save(name, ContentFile(data), save=True)
    rows = as_stored_before_thumbnails(matching.image_rows(data))
    ResultFingerprint.objects.bulk_create(ResultFingerprint(result=result, **r) for r in rows)
    return result


def old_sample(data: bytes) -> Sample:
    library, _ = SampleLibrary.objects.get_or_create(
        media_type=MediaType.IMAGE, suggestion="block", label="porn"
    )
    sample = Sample.objects.create(library=library, media_type=MediaType.IMAGE)
    sample.file.save("old.png", ContentFile(data), save=True)
    rows = as_stored_before_thumbnails(matching.image_rows(data))
    SampleFingerprint.objects.bulk_create(SampleFingerprint(sample=sample, **r) for r in rows)
    return sample


def test_a_flat_picture_stored_without_a_thumbnail_is_found_once_refingerprinted():
    sample = old_sample(SOURCE)  # a flat picture: its PDQ alone misses the brightened copy
    brighter = matching.image_rows(edited(SOURCE, COPIES["brighter"]))
    store = matching.samples_store()
    assert sample.id not in matching.similar(store, MediaType.IMAGE, brighter, fresh=True)

    call_command("refingerprint_images")

    exact = SampleFingerprint.objects.get(
        sample=sample, kind__in=[Kind.IMAGE_EXACT, Kind.IMAGE_FLAT]
    )
    assert exact.kind == Kind.IMAGE_FLAT and len(bytes(exact.code)) == 192
    assert sample.id in matching.similar(store, MediaType.IMAGE, brighter, fresh=True)
    # Its PDQ rows were replaced, not added to.
    assert SampleFingerprint.objects.filter(sample=sample, kind=Kind.PDQ).count() == 1


def test_results_are_refingerprinted_once_and_missing_media_is_skipped():
    stale = old_result(SOURCE)
    gone = old_result(SOURCE, "gone.png")
    gone.file.storage.delete(gone.file.name)
    ids_before = set(ResultFingerprint.objects.values_list("id", flat=True))

    assert refingerprint.stale_images_refingerprint(matching.RESULTS) == 1
    assert refingerprint.stale_images_refingerprint(matching.RESULTS) == 0  # nothing is stale

    assert ResultFingerprint.objects.filter(result=stale, code__isnull=True).count() == 0
    # The one whose file is gone keeps the rows it had.
    kept = ResultFingerprint.objects.filter(result=gone)
    assert set(kept.values_list("id", flat=True)) <= ids_before and kept.count() == 9
