"""Near-duplicate texts are judged by their stored MinHash signatures (TEXT_MINHASH rows)."""

import pytest

from audit.models import MediaType, Suggestion
from samples import fingerprints, matching, services
from samples.fingerprint_base import FingerprintKind as Kind
from samples.models import Sample, SampleFingerprint

pytestmark = pytest.mark.django_db

SPAM = "Cheap watches at shop.example, call +1 555 0104 now, best deals this week only"
COPY = "CHEAP watches at shop.example!! call +1 555 0104 now, best deals this week"


def add(text: str) -> Sample:
    sample, _ = services.sample_add(
        media_type=MediaType.TEXT,
        suggestion=Suggestion.BLOCK,
        label="spam",
        rows=matching.text_rows(text),
        text=text,
    )
    return sample


def find(text: str) -> dict:
    rows = matching.text_rows(text)
    return matching.similar(matching.samples_store(), MediaType.TEXT, rows, text, fresh=True)


def test_a_text_sample_stores_its_signature():
    sample = add(SPAM)
    [row] = SampleFingerprint.objects.filter(sample=sample, kind=Kind.TEXT_MINHASH)
    expected = fingerprints.text_fingerprint(SPAM).minhash
    assert bytes(row.code) == fingerprints.minhash_pack(expected)
    assert len(bytes(row.code)) == 4 * fingerprints.MINHASH_PERMUTATIONS


def test_a_near_copy_is_found_from_the_stored_signature_not_the_text():
    sample = add(SPAM)
    # The sample's text column no longer says the same: only the signature can match it.
    Sample.objects.filter(id=sample.id).update(text="something else entirely")
    found = find(COPY)
    assert found[sample.id].matched_by == "text-near"


def test_a_candidate_sharing_a_band_but_below_the_threshold_is_not_a_match():
    sample = add(SPAM)
    signature = SampleFingerprint.objects.get(sample=sample, kind=Kind.TEXT_MINHASH)
    # Keep the band keys (still a candidate) but give it an unrelated text's signature.
    unrelated = fingerprints.text_fingerprint("Lovely weather for a picnic in the park today")
    signature.code = fingerprints.minhash_pack(unrelated.minhash)
    signature.save()
    assert sample.id not in find(COPY)


def test_similarities_of_many_signatures_at_once_agree_with_pairwise():
    texts = [SPAM, COPY, "Lovely weather for a picnic in the park today", "Cheap watches"]
    prints = [fingerprints.text_fingerprint(t) for t in texts]
    query = fingerprints.minhash_pack(prints[0].minhash)
    scores = fingerprints.minhash_similarities(
        query, [fingerprints.minhash_pack(p.minhash) for p in prints]
    )
    assert list(scores) == [fingerprints.text_similarity(prints[0], p) for p in prints]
    assert len(fingerprints.minhash_similarities(query, [])) == 0
