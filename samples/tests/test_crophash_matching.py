"""crophash in the stores (issue 8): the scan's and propagation's searches find the hard
copies that the cropped PDQ forms miss, through the compiled index of crop codes."""

import random

import pytest
from django.core.files.storage import default_storage

from audit.models import MediaType
from audit.services.decisions import decision_record
from audit.tests.factories import user_in
from samples import crophash, fingerprints, index, matching
from samples.fingerprint_base import FingerprintKind as Kind
from samples.models import Sample, SampleFingerprint, SampleOrigin
from samples.quality import dataset, hard_edits
from samples.services import sample_add
from samples.tests.test_image_matching import find, png, result_of, sample_of

pytestmark = pytest.mark.django_db

PHOTO = dataset.draw_photo(random.Random(21), 640, 480)
OTHERS = [dataset.draw_photo(random.Random(seed), 640, 480) for seed in (22, 23)]
# The edits that the cropped PDQ forms miss most (recall 0.1-0.8 on the quality set).
EDITS = ("crop-asym", "crop+resize+jpeg", "rotate-crop", "border-blurred", "caption-top")


def hard_copy(edit: str, seed: int = 5) -> bytes:
    change, fmt, quality = hard_edits.HARD_TRANSFORMS[edit]
    return dataset.encode(change(random.Random(seed), PHOTO.copy()), fmt, quality)


def test_an_image_keeps_its_crop_codes_and_the_thumbnails_that_confirm_them():
    rows = matching.image_rows(png(PHOTO))
    codes = [r for r in rows if r["kind"] == Kind.CROP_CODE]
    [thumbs] = [r for r in rows if r["kind"] == Kind.CROP_THUMB]
    assert codes and all(r["form"] in crophash.STORED_FORMS for r in codes)
    assert all(len(r["code"]) == 12 for r in codes)
    assert len(thumbs["code"]) > 1000
    # What a search from these rows needs in memory comes with them, and is not a row.
    assert rows.crop_query is not None
    assert all(isinstance(r, dict) and "kind" in r for r in rows)


@pytest.mark.parametrize("edit", EDITS)
@pytest.mark.parametrize("store_name", ["samples", "results"])
def test_a_hard_copy_is_found_by_crophash_in_both_stores(store_name, edit):
    make = sample_of if store_name == "samples" else result_of
    store = matching.samples_store() if store_name == "samples" else matching.RESULTS
    source = make(png(PHOTO))
    others = [make(png(other)).id for other in OTHERS]
    found = find(store, hard_copy(edit))
    assert source.id in found, edit
    assert not set(others) & set(found)
    match = found[source.id]
    if match.matched_by.startswith(matching.CROPHASH_PREFIX):
        assert match.distance <= crophash.RADIUS
        assert "crophash" in matching.match_reason(match.matched_by, match.distance)


def test_crophash_finds_what_the_cropped_forms_miss():
    """An asymmetric crop with resizing and JPEG: the cropped PDQ forms' weakest edit (0.1-0.2)."""
    sample = sample_of(png(PHOTO))
    found = [
        find(matching.samples_store(), hard_copy("crop+resize+jpeg", seed)).get(sample.id)
        for seed in range(6)
    ]
    by_crophash = [m for m in found if m and m.matched_by.startswith(matching.CROPHASH_PREFIX)]
    assert len(by_crophash) >= 3, found


def test_propagation_reaches_hard_copies_from_the_picture_and_back():
    decided = result_of(png(PHOTO))
    copies = {result_of(hard_copy(edit)).id for edit in EDITS}
    unrelated = result_of(png(OTHERS[0]))
    reached = {match.id for match in matching.results_similar(decided)}
    assert unrelated.id not in reached
    assert copies <= reached, copies - reached
    copy = result_of(hard_copy("caption-top", seed=9))
    assert decided.id in {match.id for match in matching.results_similar(copy)}


def test_a_decided_original_reaches_the_crops_that_only_its_held_cuts_find():
    """Propagation's query also holds the hypotheses of stored pictures cropped from it
    (crophash.HELD_CUTS): the pair judgement from the original (a scan's direction) misses
    these copies, the decided original's search does not."""
    photo = dataset.draw_photo(random.Random(30), 640, 480)
    decided = result_of(png(photo))
    change, fmt, quality = hard_edits.HARD_TRANSFORMS["crop-asym"]
    copies = [dataset.encode(change(random.Random(s), photo.copy()), fmt, quality) for s in (0, 1)]
    original = fingerprints.image_fingerprint(png(photo))
    for copy in copies:
        assert not fingerprints.image_similar(original, fingerprints.image_fingerprint(copy))[0]
    ids = {result_of(copy).id for copy in copies}
    reached = {m.id: m for m in matching.results_similar(decided)}
    assert ids <= set(reached)
    assert all(reached[i].matched_by.startswith(matching.CROPHASH_PREFIX) for i in ids)


def test_a_result_whose_file_is_gone_is_still_matched_the_other_ways():
    decided = result_of(png(PHOTO))
    same = result_of(png(PHOTO))
    default_storage.delete(decided.file.name)
    assert same.id in {match.id for match in matching.results_similar(decided)}


def test_the_index_holds_each_stored_code_under_its_owner_and_form():
    sample = sample_of(png(PHOTO))
    rows = [r for r in matching.image_rows(png(PHOTO)) if r["kind"] == Kind.CROP_CODE]
    searched = matching.crophash_index(matching.samples_store())
    forms = crophash.STORED_FORMS
    for row in rows:
        [(key, bits)] = searched.search_many([row["code"]], 0, fresh=True)[0][:1]
        assert bits == 0
        assert divmod(key, len(forms)) == (sample.id, forms.index(row["form"]))


def test_a_stricter_policy_distance_narrows_crophash_and_turns_it_off_at_last():
    sample = sample_of(png(PHOTO))
    store = matching.samples_store()
    rows = next(
        rows
        for rows in (matching.image_rows(hard_copy("crop+resize+jpeg", s)) for s in range(6))
        if (m := matching.similar(store, MediaType.IMAGE, rows, fresh=True).get(sample.id))
        and m.matched_by.startswith(matching.CROPHASH_PREFIX)
    )
    # Under PDQ distance 21 (31 - crophash.RADIUS) no crophash match is made.
    off = matching.similar(store, MediaType.IMAGE, rows, distance=20, fresh=True)
    assert not (m := off.get(sample.id)) or not m.matched_by.startswith(matching.CROPHASH_PREFIX)


def test_an_operator_can_turn_crop_matching_off(settings):
    settings.IMAGE_CROP_MATCHING = False
    sample = sample_of(png(PHOTO))
    assert sample.id not in find(matching.samples_store(), hard_copy("crop-asym"))
    assert sample.id in find(matching.samples_store(), png(PHOTO))
    assert not [name for name in index.indexes_stats() if "crop" in name]


def test_the_stores_agree_with_the_pair_judgement_on_crophash_matches():
    """What the stores find by crophash, fingerprints.image_similar finds for the pair too (the
    index is a multi-index with one flipped bit per chunk: it may miss a rare far pair the
    pair's exact search has, never the other way round)."""
    pictures = [png(PHOTO), *(hard_copy(edit) for edit in EDITS), *map(png, OTHERS)]
    stored = [sample_of(data).id for data in pictures]
    prints = [fingerprints.image_fingerprint(data) for data in pictures]
    agreed = 0
    for query, data in zip(prints, pictures, strict=True):
        found = find(matching.samples_store(), data)
        for owner, theirs in zip(stored, prints, strict=True):
            match = found.get(owner)
            if match and match.matched_by.startswith(matching.CROPHASH_PREFIX):
                assert fingerprints.image_similar(query, theirs)[0]
                agreed += 1
    assert agreed


def test_a_library_holds_no_hard_copy_of_a_sample():
    """sample_add links a hard copy to the sample it copies (a library holds no near-copies),
    through the query that image_rows brings with the rows."""

    def added(data: bytes, extension: str):
        return sample_add(
            media_type=MediaType.IMAGE,
            suggestion="block",
            label="porn",
            rows=matching.image_rows(data),
            image=(data, extension),
        )

    first, action = added(png(PHOTO), ".png")
    assert action == "added"
    second, action = added(hard_copy("caption-top"), ".jpg")
    assert (second.id, action) == (first.id, "linked")


def test_a_decided_hard_copy_is_linked_to_the_sample_its_original_taught(
    django_capture_on_commit_callbacks,
):
    """Deciding a stored result teaches the library from its stored rows: the query is read
    from its file (matching.with_crop_query)."""

    def blocked(result) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            decision_record(
                reviewer=user_in("Reviewer"),
                task_ids=[result.task_id],
                suggestion="block",
                label="porn",
                channel="console",
            )

    blocked(result_of(png(PHOTO)))
    [sample] = Sample.objects.all()
    copy = result_of(hard_copy("crop+resize+jpeg", seed=3))
    blocked(copy)
    assert list(Sample.objects.all()) == [sample]
    assert SampleOrigin.objects.filter(sample=sample, task_id=copy.task_id).exists()
    # Its stored rows alone (no query) do not reach the sample: crophash made the link.
    stored_rows = list(copy.fingerprints.all())
    store = matching.samples_store()
    assert sample.id not in matching.similar(store, MediaType.IMAGE, stored_rows, fresh=True)


def test_warm_up_loads_the_crophash_indexes():
    matching.indexes_warm_up()
    names = set(index.indexes_stats())
    assert {n for n in names if Kind.CROP_CODE in n}


def test_a_damaged_thumbnail_row_costs_that_match_not_the_search(caplog):
    sample = sample_of(png(PHOTO))
    SampleFingerprint.objects.filter(sample=sample, kind=Kind.CROP_THUMB).update(code=b"\xdb" * 40)
    found = find(matching.samples_store(), hard_copy("crop+resize+jpeg"))
    match = found.get(sample.id)
    assert not match or not match.matched_by.startswith(matching.CROPHASH_PREFIX)
    assert "crophash thumbnails unreadable" in caplog.text


def test_an_index_reads_on_from_where_it_ended_not_from_its_own_last_row():
    """Images among many newer texts: a refresh of the image indexes reads the rows since its
    last read (less the overlap), not every text row since the last image."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    sample_of(png(PHOTO))
    searched = matching.crophash_index(matching.samples_store())
    searched.refresh(force=True)
    other = sample_of(png(OTHERS[0]))
    texts = SampleFingerprint.objects.bulk_create(
        SampleFingerprint(sample=other, kind=Kind.TEXT_BAND, key=n)
        for n in range(matching.OVERLAP_IDS + 500)
    )
    searched.refresh(force=True)  # reads the other picture's rows and the texts' once
    with CaptureQueriesContext(connection) as queries:
        searched.refresh(force=True)
    [read] = [q["sql"] for q in queries if 'kind" IN' in q["sql"]]
    since = int(read.split('"id" > ')[1].split()[0].rstrip(")"))
    assert since >= texts[-1].id - matching.OVERLAP_IDS
