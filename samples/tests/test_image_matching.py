"""Images through samples.matching: the stored rows and the indexes judge as
fingerprints.image_similar does, flat pictures included."""

import io
import random

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from audit.models import MediaType, ResultFingerprint
from audit.tests.factories import ResultFactory
from samples import fingerprints, matching
from samples.fingerprint_base import FingerprintKind as Kind
from samples.models import Sample, SampleFingerprint, SampleLibrary
from samples.quality import dataset, hard_edits
from samples.refingerprint import CROP_KINDS
from samples.tests.test_fingerprints import _flipped, crop_copies

pytestmark = pytest.mark.django_db


def png(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    return buffer.getvalue()


def band(background: str, colour: str, top: int) -> bytes:
    img = Image.new("RGB", (480, 360), background)
    ImageDraw.Draw(img).rectangle((0, top, 480, top + 60), fill=colour)
    return png(img)


def edited(data: bytes, edit) -> bytes:
    return png(edit(Image.open(io.BytesIO(data)).convert("RGB")))


SOURCE = band("#a8dadc", "#457b9d", 120)
COPIES = {
    "brighter": lambda img: ImageEnhance.Brightness(img).enhance(1.25),
    "grayscale": lambda img: ImageOps.grayscale(img).convert("RGB"),
    "rot90": lambda img: img.transpose(Image.Transpose.ROTATE_90),
    "smaller-jpeg": lambda img: Image.open(
        io.BytesIO(dataset.encode(img.resize((240, 180)), "JPEG", 60))
    ),
}
UNRELATED = [band("#a8dadc", "#457b9d", 240), band("#f4a261", "#6a4c93", 120)]


def sample_of(data: bytes) -> Sample:
    library, _ = SampleLibrary.objects.get_or_create(
        media_type=MediaType.IMAGE, suggestion="block", label="porn"
    )
    sample = Sample.objects.create(library=library, media_type=MediaType.IMAGE)
    SampleFingerprint.objects.bulk_create(
        SampleFingerprint(sample=sample, **row) for row in matching.image_rows(data)
    )
    return sample


def result_of(data: bytes):
    """A stored image result with its file (propagation decodes it for crophash's query)."""
    result = ResultFactory(media_type=MediaType.IMAGE, text="")
    result.file.name = default_storage.save(f"results/{result.task_id}.img", ContentFile(data))
    result.save(update_fields=["file"])
    ResultFingerprint.objects.bulk_create(
        ResultFingerprint(result=result, **row) for row in matching.image_rows(data)
    )
    return result


def find(store, data: bytes) -> dict:
    rows = matching.image_rows(data)
    return matching.similar(store, MediaType.IMAGE, rows, fresh=True)


def exact_row(data: bytes) -> dict:
    [row] = [r for r in matching.image_rows(data) if r["kind"] in matching.EXACT_KINDS]
    return row


def test_a_picture_keeps_its_thumbnail_on_its_exact_row_of_a_kind_of_its_own_if_flat():
    assert exact_row(SOURCE)["kind"] == Kind.IMAGE_FLAT and len(exact_row(SOURCE)["code"]) == 192
    photo = png(dataset.draw_photo(random.Random(7), 480, 360))
    assert exact_row(photo)["kind"] == Kind.IMAGE_EXACT and len(exact_row(photo)["code"]) == 192


def test_an_identical_picture_is_found_exactly_whichever_kind_its_row_has():
    flat = sample_of(SOURCE)
    SampleFingerprint.objects.filter(sample=flat, kind=Kind.IMAGE_FLAT).update(
        kind=Kind.IMAGE_EXACT  # as rows fingerprinted before flat pictures had a kind
    )
    assert find(matching.samples_store(), SOURCE)[flat.id].matched_by == "exact"


@pytest.mark.parametrize("copy", list(COPIES))
def test_a_flat_sample_answers_its_edited_copies(copy):
    sample = sample_of(SOURCE)
    # A grey picture is compared by luma alone: the other-coloured band, as light and in the
    # same place, would pass for its original too.
    unrelated = UNRELATED[:1] if copy == "grayscale" else UNRELATED
    others = [sample_of(data) for data in unrelated]
    found = find(matching.samples_store(), edited(SOURCE, COPIES[copy]))
    assert sample.id in found
    assert not {s.id for s in others} & set(found)


def test_propagation_reaches_the_edited_copies_of_a_flat_result():
    decided = result_of(SOURCE)
    copies = [result_of(edited(SOURCE, edit)) for edit in COPIES.values()]
    unrelated = [result_of(data) for data in UNRELATED]
    found = {match.id for match in matching.results_similar(decided)}
    assert found == {copy.id for copy in copies}
    assert not {r.id for r in unrelated} & found


def test_a_pdq_hash_just_past_the_distance_matches_when_the_thumbnails_agree():
    files = {transform: data for _, _, transform, data in dataset.image_group(0, 92)}
    sample = sample_of(files["source"])
    match = find(matching.samples_store(), files["watermark"])[sample.id]
    assert match.distance > fingerprints.PDQ_DISTANCE and match.matched_by == "pdq"
    # The same hashes with another picture's thumbnail: no longer a match (nor by the central
    # crops, which leave the corner watermark out).
    SampleFingerprint.objects.filter(sample=sample, kind__in=CROP_KINDS).delete()
    other = fingerprints.image_fingerprint(UNRELATED[1]).thumb
    SampleFingerprint.objects.filter(sample=sample, kind__in=matching.EXACT_KINDS).update(
        code=other
    )
    assert sample.id not in find(matching.samples_store(), files["watermark"])


def test_rows_stored_before_thumbnails_are_matched_by_pdq_alone():
    files = {transform: data for _, _, transform, data in dataset.image_group(0, 92)}
    legacy = sample_of(files["source"])
    SampleFingerprint.objects.filter(sample=legacy, kind__in=matching.EXACT_KINDS).update(code=None)
    flat = sample_of(SOURCE)
    legacy_rows = SampleFingerprint.objects.filter(sample=flat, kind=Kind.IMAGE_FLAT)
    legacy_rows.update(kind=Kind.IMAGE_EXACT, code=None)
    SampleFingerprint.objects.filter(kind__in=CROP_KINDS).delete()  # nor cropped forms then
    assert legacy.id in find(matching.samples_store(), files["resize-0.5"])
    assert legacy.id not in find(matching.samples_store(), files["watermark"])
    assert flat.id not in find(matching.samples_store(), edited(SOURCE, COPIES["brighter"]))


@pytest.mark.parametrize("store_name", ["samples", "results"])
def test_the_stores_judge_as_image_similar_does(store_name):
    pictures = [SOURCE, *UNRELATED, *(edited(SOURCE, edit) for edit in COPIES.values())]
    files = {t: data for _, _, t, data in dataset.image_group(0, 92)}
    pictures += [files["source"], files["watermark"], files["flip-h"]]
    make = sample_of if store_name == "samples" else result_of
    stored = [make(data).id for data in pictures]
    store = matching.samples_store() if store_name == "samples" else matching.RESULTS
    prints = [fingerprints.image_fingerprint(data) for data in pictures]
    for query, data in zip(prints, pictures, strict=True):
        found = set(find(store, data))
        expected = {
            owner
            for owner, theirs in zip(stored, prints, strict=True)
            if fingerprints.image_similar(query, theirs)[0]
        }
        assert found == expected


def test_flat_pictures_stored_after_the_layout_index_loaded_are_found():
    store = matching.samples_store()
    sample_of(UNRELATED[0])
    find(store, SOURCE)  # loads the index
    sample_of(png(dataset.draw_photo(random.Random(7), 480, 360)))  # not flat: no layout codes
    sample = sample_of(SOURCE)
    assert find(store, edited(SOURCE, COPIES["brighter"]))[sample.id].matched_by == "layout"
    later = sample_of(UNRELATED[1])
    thumb = fingerprints.image_fingerprint(UNRELATED[1]).thumb
    own = [code for _, code in fingerprints.layout_codes(thumb)]
    hits = matching._layout_index(store).search_many(own, 0, fresh=True)
    assert all((later.id, 0) in found for found in hits)


@pytest.mark.parametrize(
    ("matched_by", "distance", "words"),
    [
        ("exact", 0, "identical pixels"),
        ("pdq", 12, "PDQ hashes 12 of 256 bits apart"),
        ("flip-h", 7, "a flipped left to right copy: its PDQ hash is 7 of 256 bits"),
        ("rot90", 3, "turned a quarter"),
        ("layout", 5, "layout codes 5 bits apart, thumbnails agree"),
        ("video-frames", 9, "the closest 9 of 256 bits apart"),
        ("whole~c80", 23, "a cropped copy: the whole picture of one matches the central 80%"),
        ("trim~whole", 4, "a copy with borders, bars or a caption added or removed"),
        ("c80~c80r-5", 20, "a slightly turned copy: the central 80% of one matches the central "),
        ("c80~c80", 20, "within 20 bits"),
        ("soft~whole", 9, "without its plain or blurred borders of one matches the whole"),
        ("something-new", 1, "something-new"),  # a way unknown to the page is shown as it is
    ],
)
def test_each_way_of_matching_reads_as_words(matched_by, distance, words):
    assert words in matching.match_reason(matched_by, distance)


# Cropped, bordered and captioned copies (issue 8) -------------------------------------------

PHOTO = dataset.draw_photo(random.Random(7), 480, 360)
CROPPED = {
    name: dataset.encode(img, "JPEG", 85)
    for name, img in crop_copies(PHOTO).items()
    if name in ("cropped", "bordered", "captioned", "blurred-border")
}


@pytest.mark.parametrize("copy", list(CROPPED))
@pytest.mark.parametrize("store_name", ["samples", "results"])
def test_a_cropped_bordered_or_captioned_copy_is_found_in_both_stores(store_name, copy):
    make = sample_of if store_name == "samples" else result_of
    store = matching.samples_store() if store_name == "samples" else matching.RESULTS
    source = make(png(PHOTO))
    others = [make(png(dataset.draw_photo(random.Random(seed), 480, 360))) for seed in (8, 9)]
    found = find(store, CROPPED[copy])
    match = found[source.id]
    if copy == "cropped":  # crophash's, since the central crops were retired
        assert match.matched_by.startswith(matching.CROPHASH_PREFIX)
    else:
        assert "~" in match.matched_by and match.distance <= fingerprints.CROP_DISTANCE
    assert not {other.id for other in others} & set(found)


def test_propagation_reaches_the_cropped_bordered_and_captioned_copies_of_a_result():
    decided = result_of(png(PHOTO))
    copies = {result_of(data).id for data in CROPPED.values()}
    unrelated = result_of(png(dataset.draw_photo(random.Random(8), 480, 360)))
    found = {match.id: match for match in matching.results_similar(decided)}
    assert set(found) == copies and unrelated.id not in found
    # And from a decided copy back to the picture.
    assert decided.id in {
        match.id for match in matching.results_similar(result_of(CROPPED["cropped"]))
    }


@pytest.mark.parametrize("store_name", ["samples", "results"])
def test_other_regions_of_one_large_picture_are_not_found(store_name):
    make = sample_of if store_name == "samples" else result_of
    store = matching.samples_store() if store_name == "samples" else matching.RESULTS
    rng = random.Random(11)
    pairs = [hard_edits.region_pair(rng)[1:] for _ in range(3)]
    stored = [make(first).id for first, _ in pairs]
    for (_, second), first_id in zip(pairs, stored, strict=True):
        assert first_id not in find(store, second)


@pytest.mark.parametrize("store_name", ["samples", "results"])
def test_the_stores_judge_cropped_copies_as_image_similar_does(store_name):
    rng = random.Random(11)
    pictures = [png(PHOTO), *CROPPED.values(), *hard_edits.region_pair(rng)[1:]]
    make = sample_of if store_name == "samples" else result_of
    stored = [make(data).id for data in pictures]
    store = matching.samples_store() if store_name == "samples" else matching.RESULTS
    prints = [fingerprints.image_fingerprint(data) for data in pictures]
    for query, data in zip(prints, pictures, strict=True):
        found = find(store, data)
        expected = {}
        for owner, theirs in zip(stored, prints, strict=True):
            matched, bits, form = fingerprints.image_similar(query, theirs)
            if matched:
                expected[owner] = (bits, form)
        assert set(found) == set(expected)
        for owner, (bits, form) in expected.items():
            if "~" in form:
                assert (found[owner].distance, found[owner].matched_by) == (bits, form)


def test_the_index_of_cropped_forms_holds_each_stored_form():
    sample = sample_of(CROPPED["bordered"])
    rows = SampleFingerprint.objects.filter(sample=sample, kind=Kind.PDQ_CROP)
    assert {"whole", "trim"} <= set(rows.values_list("form", flat=True))
    indexed = matching.crop_index(matching.samples_store())
    for code in rows.values_list("code", flat=True):
        assert dict(indexed.search(bytes(code), 0, fresh=True)) == {sample.id: 0}


def test_cropped_forms_of_little_gradient_match_closer_copies_only():
    sample = sample_of(png(PHOTO))
    stored = SampleFingerprint.objects.filter(sample=sample, kind=Kind.PDQ_CROP)
    for row in stored:  # each form 20 bits off: a copy further than the low-quality distance
        row.code = _flipped(bytes(row.code), 20)
        row.save()
    # The picture's cropped forms alone (its exact and PDQ rows would find it first).
    query = [r for r in matching.image_rows(png(PHOTO)) if r["kind"] == Kind.PDQ_CROP]
    store = matching.samples_store()
    found = matching.similar(store, MediaType.IMAGE, query, fresh=True)
    assert found[sample.id].distance == 20
    stored.update(quality=fingerprints.CROP_MIN_QUALITY - 1)
    assert sample.id not in matching.similar(store, MediaType.IMAGE, query, fresh=True)


def test_every_pair_of_cropped_forms_reads_as_words():
    for query in fingerprints.CROP_QUERY_FORMS:
        for stored in fingerprints.CROP_FORMS:
            words = matching.match_reason(f"{query}~{stored}", 17)
            assert words.endswith("within 17 bits (PDQ)") and "~" not in words


def test_a_cropped_copy_is_found_as_well_when_the_index_is_multi_hashed(monkeypatch):
    monkeypatch.setattr(matching, "CROP_MULTI_HASH_FROM", 0)  # as a large store's index is
    source = sample_of(png(PHOTO))
    other = sample_of(png(dataset.draw_photo(random.Random(8), 480, 360)))
    found = find(matching.samples_store(), CROPPED["bordered"])
    assert "~" in found[source.id].matched_by and other.id not in found
    assert matching.crop_index(matching.samples_store()).stats()["multi_hash"]


def test_an_operator_can_keep_the_crop_index_flat_for_its_memory(monkeypatch, settings):
    monkeypatch.setattr(matching, "CROP_MULTI_HASH_FROM", 0)
    settings.CROP_INDEX_MULTI_HASH = False
    source = sample_of(png(PHOTO))
    found = find(matching.samples_store(), CROPPED["bordered"])
    assert "~" in found[source.id].matched_by  # found all the same, by a flat scan
    assert not matching.crop_index(matching.samples_store()).stats()["multi_hash"]
