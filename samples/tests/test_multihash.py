"""samples.multihash: exact at every distance, through loads, merges and a flat fallback."""

import threading

import numpy as np
import pytest

from samples.multihash import EXACT, MultiHashIndex


def reference(ids, codes, query, radius):
    """Every id's nearest code within radius, nearest first then by id (a brute force)."""
    bits = np.unpackbits(np.bitwise_xor(codes, query), axis=1).sum(axis=1)
    nearest: dict[int, int] = {}
    for i, d in zip(ids.tolist(), bits.tolist(), strict=True):
        if d <= radius:
            nearest[i] = min(d, nearest.get(i, d))
    return sorted(nearest.items(), key=lambda item: (item[1], item[0]))


@pytest.fixture
def data():
    """Codes in families (a base and copies 1-60 bits from it), 4 codes an id, and queries
    near the bases: neighbours at every distance, across the exact limit."""
    rng = np.random.default_rng(7)
    bases = rng.integers(0, 256, size=(60, 32), dtype=np.uint8)
    codes = []
    for base in bases:
        for flips in range(0, 61, 2):
            code = np.unpackbits(base.copy())
            code[rng.choice(256, size=flips, replace=False)] ^= 1
            codes.append(np.packbits(code))
    codes = np.concatenate([np.array(codes), rng.integers(0, 256, size=(3000, 32), dtype=np.uint8)])
    ids = np.arange(len(codes), dtype=np.int64) // 4
    queries = []
    for base in bases[:20]:
        query = np.unpackbits(base.copy())
        query[rng.choice(256, size=int(rng.integers(0, 8)), replace=False)] ^= 1
        queries.append(np.packbits(query))
    return ids, codes, np.array(queries)


def test_it_finds_exactly_what_a_brute_force_does_at_every_distance(data):
    ids, codes, queries = data
    index = MultiHashIndex(merge_at=500)
    for start in range(0, len(codes), 700):  # merged tables and a tail
        index.add(ids[start : start + 700], codes[start : start + 700])
    for radius in (0, 12, 31, 40, EXACT, EXACT + 1, 64, 256):
        got = index.search_many(queries, radius)
        assert got == [reference(ids, codes, q, radius) for q in queries]
    assert any(d > 31 for hits in index.search_many(queries, EXACT) for _, d in hits)


def test_merging_the_tail_changes_no_answer(data):
    ids, codes, queries = data
    tail_only = MultiHashIndex(merge_at=10**9)
    tail_only.add(ids, codes)
    merged = MultiHashIndex(merge_at=10**9)
    merged.add(ids, codes)
    merged.settle()
    merged_now = MultiHashIndex(merge_at=10**9)
    merged_now.add(ids, codes)
    assert merged_now.search_many(queries, 40) == tail_only.search_many(queries, 40)
    small = MultiHashIndex(merge_at=1)
    for start in range(0, len(codes), 333):
        small.add(ids[start : start + 333], codes[start : start + 333])
        small.settle()
    assert small.search_many(queries, 40) == tail_only.search_many(queries, 40)
    assert len(small) == len(codes)


def test_a_search_reads_the_codes_it_started_with_while_codes_are_added(data):
    ids, codes, queries = data
    index = MultiHashIndex(merge_at=100)
    index.add(ids[:1000], codes[:1000])
    before = index.search_many(queries, 40)
    index.add(ids[1000:] + 10**6, codes[1000:])  # grows the buffer, merges
    after = index.search_many(queries, 40)
    assert all(set(b) <= set(a) for b, a in zip(before, after, strict=True))


def test_bad_codes_are_refused():
    index = MultiHashIndex()
    with pytest.raises(ValueError, match="32 bytes"):
        index.add([1], [b"short"])
    with pytest.raises(ValueError, match="ids for"):
        index.add([1, 2], [bytes(32)])
    assert index.search(bytes(32), -1) == [] and index.search(bytes(32), 10) == []


def test_searches_during_adds_and_merges_always_see_the_first_codes():
    # Adds grow the code buffer (a copy) or write past a search's snapshot, and merges build
    # new tables beside the ones in use: a search never misses what was there when it began.
    rng = np.random.default_rng(6)
    first = rng.integers(0, 256, (1, 32), dtype=np.uint8)
    index = MultiHashIndex(merge_at=2000)
    index.add([0], first)
    failures, done = [], threading.Event()

    def search():
        while not done.is_set():
            if index.search(first[0].tobytes(), 40) != [(0, 0)]:
                failures.append(True)

    searchers = [threading.Thread(target=search) for _ in range(2)]
    for thread in searchers:
        thread.start()
    for start in range(1, 30_000, 500):
        codes = rng.integers(0, 256, (500, 32), dtype=np.uint8)  # ~128 bits from `first`
        index.add(np.arange(start, start + 500), codes)
    done.set()
    for thread in searchers:
        thread.join()
    assert not failures and len(index) == 30_001
