import random
import threading
import weakref
from collections import Counter

import pytest
from celery.signals import worker_process_init
from django.db import connections

from audit.models import MediaType, ResultFingerprint
from audit.tests.factories import ResultFactory
from moderation_console import celery as celery_module
from samples import crophash, fingerprints, index, matching, warmup
from samples.fingerprint_base import FingerprintKind as Kind
from samples.models import Sample, SampleFingerprint, SampleLibrary


def code(seed: int) -> bytes:
    return random.Random(seed).randbytes(32)


def near(of: bytes, bits: int) -> bytes:
    return (int.from_bytes(of, "big") ^ ((1 << bits) - 1)).to_bytes(32, "big")


def result_with(media_type: str, *rows: tuple[str, bytes]):
    result = ResultFactory(media_type=media_type)
    for kind, value in rows:
        ResultFingerprint.objects.create(result=result, kind=kind, code=value, quality=100)
    return result


def sample_with(media_type: str, *rows: tuple[str, bytes]) -> Sample:
    library, _ = SampleLibrary.objects.get_or_create(
        media_type=media_type, suggestion="block", label="porn"
    )
    sample = Sample.objects.create(library=library, media_type=media_type)
    for kind, value in rows:
        SampleFingerprint.objects.create(sample=sample, kind=kind, code=value, quality=100)
    return sample


@pytest.mark.django_db
def test_the_warm_up_loads_the_indexes_propagation_and_scanning_search():
    result_with(MediaType.IMAGE, (Kind.PDQ, code(1)), (Kind.PDQ_VARIANT, code(2)))
    result_with(MediaType.IMAGE, (Kind.PDQ, code(3)))
    # A flat picture: its thumbnail gives the layout codes it is searched by (4 of them).
    result_with(MediaType.IMAGE, (Kind.IMAGE_FLAT, bytes(range(192))), (Kind.PDQ, code(9)))
    result_with(MediaType.VIDEO, (Kind.VIDEO_FRAME, code(4)), (Kind.VIDEO_FRAME, code(5)))
    sample_with(MediaType.IMAGE, (Kind.PDQ, code(6)), (Kind.PDQ_VARIANT, code(7)))
    sample_with(MediaType.VIDEO, (Kind.VIDEO_FRAME, code(8)))
    sample = sample_with(MediaType.IMAGE, (Kind.PDQ, code(10)), (Kind.PDQ_CROP, code(11)))
    sample.fingerprints.filter(kind=Kind.PDQ_CROP).update(form="trim")
    SampleFingerprint.objects.create(
        sample=sample, kind=Kind.CROP_CODE, code=crophash.code_bytes(12, 0), form="c80"
    )
    crop_forms = ",".join(fingerprints.CROP_STORED_FORMS)
    code_forms = ",".join(crophash.STORED_FORMS)

    matching.indexes_warm_up()

    sizes = {name: stats["size"] for name, stats in index.indexes_stats().items()}
    # Results: their own PDQ only (the query's forms go to them); samples: every form.
    assert sizes == {
        "results:pdq": 3,
        "results:layout": 4,
        "results:video_frame": 2,
        "samples:pdq,pdq_variant": 3,
        "samples:layout": 0,
        "samples:video_frame": 1,
        # The cropped forms queries are compared with (fingerprints.CROP_STORED_FORMS).
        f"results:pdq_crop:{crop_forms}": 0,
        f"samples:pdq_crop:{crop_forms}": 1,
        # crophash's codes, an entry per (owner, form).
        f"results:crop_code:{code_forms}:keyed": 0,
        f"samples:crop_code:{code_forms}:keyed": 1,
    }


def test_an_index_of_a_kind_the_store_does_not_index_by_id_is_refused():
    # The result store's (kind, id) index holds INDEXED_KINDS only (the warm-up above loads
    # every kind the finders search): another kind would be read by scanning the store.
    with pytest.raises(ValueError, match="INDEXED_KINDS"):
        matching.RESULTS.index((Kind.TEXT_BAND,))


def test_without_the_setting_nothing_starts(settings):
    settings.INDEX_WARMUP = False
    assert warmup.indexes_warm_up_in_background() is None


def test_each_worker_process_starts_a_warm_up(monkeypatch):
    started = []
    monkeypatch.setattr(warmup, "indexes_warm_up_in_background", lambda: started.append(1))
    receivers = [r() if isinstance(r, weakref.ref) else r for _, r in worker_process_init.receivers]
    assert celery_module.indexes_warm_up in receivers
    celery_module.indexes_warm_up(signal=worker_process_init, sender="worker@host")
    assert started == [1]


@pytest.mark.django_db(transaction=True)
def test_a_search_during_the_warm_up_waits_for_the_same_load(settings, monkeypatch):
    wanted = result_with(MediaType.IMAGE, (Kind.PDQ, code(1)))
    result_with(MediaType.IMAGE, (Kind.PDQ, code(2)))
    first_loads: Counter = Counter()
    loading, searching, proceed = threading.Event(), threading.Event(), threading.Event()
    catch_up, refresh = index.SyncedIndex._catch_up, index.SyncedIndex.refresh

    def held_catch_up(self):
        if self._index is None:
            first_loads[id(self)] += 1
        loading.set()
        proceed.wait(10)  # every load is held until the search has come
        catch_up(self)

    def noted_refresh(self, *, force=False):
        if threading.current_thread().name == "search":
            searching.set()
        refresh(self, force=force)

    monkeypatch.setattr(index.SyncedIndex, "_catch_up", held_catch_up)
    monkeypatch.setattr(index.SyncedIndex, "refresh", noted_refresh)
    settings.INDEX_WARMUP = True
    found = {}

    def search():
        query = {"kind": Kind.PDQ, "code": near(code(1), 5), "quality": 100}
        try:
            found.update(matching.similar(matching.RESULTS, MediaType.IMAGE, [query]))
        finally:
            connections.close_all()

    warming = warmup.indexes_warm_up_in_background()
    assert loading.wait(10)
    searcher = threading.Thread(target=search, name="search")
    searcher.start()
    assert searching.wait(10)
    proceed.set()
    searcher.join(10)
    warming.join(10)

    assert found == {wanted.id: matching.Match(wanted.id, 5, "pdq")}
    assert len(first_loads) == 10 and set(first_loads.values()) == {1}  # each index loaded once
