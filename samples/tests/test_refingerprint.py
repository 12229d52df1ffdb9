"""Images fingerprinted before thumbnails were kept get theirs (samples.refingerprint)."""

import random

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command

from audit.models import MediaType, ResultFingerprint
from audit.tests.factories import ResultFactory
from samples import fingerprints, matching, refingerprint
from samples.fingerprint_base import FingerprintKind as Kind
from samples.models import Sample, SampleFingerprint, SampleLibrary
from samples.quality import dataset
from samples.tests.test_crophash_matching import PHOTO, hard_copy
from samples.tests.test_image_matching import COPIES, SOURCE, edited, png

pytestmark = pytest.mark.django_db


def as_stored_before_thumbnails(rows: list[dict]) -> list[dict]:
    """What the matcher stored before: a plain exact row with no thumbnail, PDQ rows as now,
    no cropped forms."""
    old = []
    for row in as_stored_before_crops(rows):
        if row["kind"] in (Kind.IMAGE_EXACT, Kind.IMAGE_FLAT):
            row = {"kind": Kind.IMAGE_EXACT, "key": row["key"]}
        old.append(row)
    return old


def as_stored_before_crops(rows: list[dict]) -> list[dict]:
    return [row for row in rows if row["kind"] not in refingerprint.CROP_KINDS]


def as_stored_before_crophash(rows: list[dict]) -> list[dict]:
    """With the cropped PDQ forms (issue 8 step 2), without crophash's codes (step 3)."""
    return [row for row in rows if row["kind"] not in (Kind.CROP_CODE, Kind.CROP_THUMB)]


def old_result(data: bytes, name="old.png", stored_as=as_stored_before_thumbnails):
    result = ResultFactory(media_type=MediaType.IMAGE)
    result.file.save(name, ContentFile(data), save=True)
    rows = stored_as(matching.image_rows(data))
    ResultFingerprint.objects.bulk_create(ResultFingerprint(result=result, **r) for r in rows)
    return result


def old_sample(data: bytes, stored_as=as_stored_before_thumbnails) -> Sample:
    library, _ = SampleLibrary.objects.get_or_create(
        media_type=MediaType.IMAGE, suggestion="block", label="porn"
    )
    sample = Sample.objects.create(library=library, media_type=MediaType.IMAGE)
    sample.file.save("old.png", ContentFile(data), save=True)
    rows = stored_as(matching.image_rows(data))
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


@pytest.mark.parametrize("stored_as", [as_stored_before_crops, as_stored_before_crophash])
@pytest.mark.parametrize("store_name", ["samples", "results"])
def test_images_stored_before_cropped_forms_get_them_once_and_keep_their_other_rows(
    store_name, stored_as
):
    photo = png(PHOTO)
    if store_name == "samples":
        owner, store, rows = (
            old_sample(photo, stored_as),
            matching.samples_store(),
            SampleFingerprint,
        )
    else:
        owner, store, rows = (
            old_result(photo, stored_as=stored_as),
            matching.RESULTS,
            ResultFingerprint,
        )
    field = store.owner_field
    others = rows.objects.filter(**{field: owner.id}).exclude(kind__in=refingerprint.CROP_KINDS)
    kept = set(others.values_list("id", flat=True))
    # A copy that only crophash finds (the cropped PDQ forms miss it).
    cropped = matching.image_rows(hard_copy("crop+resize+jpeg"))
    assert owner.id not in matching.similar(store, MediaType.IMAGE, cropped, fresh=True)

    assert refingerprint.stale_images_refingerprint(store, batch=1) == 1
    assert refingerprint.stale_images_refingerprint(store) == 0  # nothing is left to do

    mine = rows.objects.filter(**{field: owner.id})
    # Its other rows stay as they were; its crop rows are all recomputed.
    assert kept == set(mine.exclude(kind__in=refingerprint.CROP_KINDS).values_list("id", flat=True))
    forms = [form for form, _, _ in fingerprints.image_fingerprint(photo).crops]
    assert sorted(mine.filter(kind=Kind.PDQ_CROP).values_list("form", flat=True)) == sorted(forms)
    codes = fingerprints.image_fingerprint(photo).crop_stored.forms
    assert sorted(mine.filter(kind=Kind.CROP_CODE).values_list("form", flat=True)) == sorted(codes)
    assert mine.filter(kind=Kind.CROP_THUMB).count() == 1
    found = matching.similar(store, MediaType.IMAGE, cropped, fresh=True)[owner.id]
    assert found.matched_by.startswith(matching.CROPHASH_PREFIX)


def test_the_backfill_resumes_after_an_interruption(monkeypatch):
    done = [
        old_sample(png(dataset.draw_photo(random.Random(n), 200, 150)), as_stored_before_crops)
        for n in range(3)
    ]
    calls = []
    real = refingerprint._image_refingerprint

    def interrupted(store, owner, **options):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(owner.id)
        return real(store, owner, **options)

    monkeypatch.setattr(refingerprint, "_image_refingerprint", interrupted)
    with pytest.raises(KeyboardInterrupt):
        refingerprint.stale_images_refingerprint(matching.samples_store(), batch=1)
    monkeypatch.setattr(refingerprint, "_image_refingerprint", real)
    assert refingerprint.stale_images_refingerprint(matching.samples_store()) == 1
    assert SampleFingerprint.objects.filter(kind=Kind.PDQ_CROP).values(
        "sample"
    ).distinct().count() == len(done)
