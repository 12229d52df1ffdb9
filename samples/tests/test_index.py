import random
import threading

import pytest

from samples import index
from samples.index import HashIndex, SyncedIndex


def random_code(rng: random.Random) -> bytes:
    return rng.randbytes(32)


def flipped(code: bytes, bits: int, rng: random.Random) -> bytes:
    value = int.from_bytes(code, "big")
    for bit in rng.sample(range(256), bits):
        value ^= 1 << bit
    return value.to_bytes(32, "big")


def distance(a: bytes, b: bytes) -> int:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()


def reference(ids, codes, query, max_distance) -> list[tuple[int, int]]:
    nearest: dict[int, int] = {}
    for owner, code in zip(ids, codes, strict=True):
        bits = distance(code, query)
        if bits <= max_distance:
            nearest[owner] = min(bits, nearest.get(owner, bits))
    return sorted(nearest.items(), key=lambda item: (item[1], item[0]))


@pytest.fixture
def clustered():
    """Codes in clusters (random codes are ~128 bits apart, so nothing would match)."""
    rng = random.Random(7)
    centers = [random_code(rng) for _ in range(40)]
    codes = [flipped(rng.choice(centers), rng.randint(0, 60), rng) for _ in range(3000)]
    ids = [i // 3 for i in range(len(codes))]  # three codes per id, like a sample's forms
    queries = [flipped(rng.choice(centers), rng.randint(0, 30), rng) for _ in range(150)]
    return ids, codes, queries


def test_search_returns_exactly_the_ids_within_the_distance(clustered):
    ids, codes, queries = clustered
    hashes = HashIndex()
    hashes.add(ids, codes)
    for max_distance in (0, 12, 31, 50):
        for query in queries:
            assert hashes.search(query, max_distance) == reference(ids, codes, query, max_distance)


def test_search_many_answers_like_single_searches(clustered):
    ids, codes, queries = clustered
    hashes = HashIndex()
    hashes.add(ids, codes)
    assert hashes.search_many(queries, 31) == [hashes.search(q, 31) for q in queries]
    assert hashes.search_many([], 31) == []


def test_a_code_at_exactly_the_distance_is_found_and_one_bit_further_is_not():
    rng = random.Random(1)
    query = random_code(rng)
    hashes = HashIndex()
    hashes.add([1, 2], [flipped(query, 31, rng), flipped(query, 32, rng)])
    assert hashes.search(query, 31) == [(1, 31)]
    assert hashes.search(query, 30) == []
    assert hashes.search(query, 32) == [(1, 31), (2, 32)]
    assert hashes.search(query, 256) == [(1, 31), (2, 32)]
    assert hashes.search(query, -1) == []


def test_several_codes_of_one_id_count_once_at_the_nearest():
    rng = random.Random(2)
    query = random_code(rng)
    hashes = HashIndex()
    hashes.add([5, 5, 5, 9], [flipped(query, b, rng) for b in (20, 3, 11, 3)])
    assert hashes.search(query, 31) == [(5, 3), (9, 3)]
    assert len(hashes) == 4


def test_codes_must_be_32_bytes():
    hashes = HashIndex()
    with pytest.raises(ValueError):
        hashes.add([1, 2], [bytes(31), bytes(33)])
    with pytest.raises(ValueError):
        hashes.add([1], [bytes(32), bytes(32)])


def test_an_empty_index_finds_nothing():
    assert HashIndex().search(bytes(32), 31) == []


def test_multi_index_hashing_finds_exactly_what_the_flat_index_does_at_every_distance(clustered):
    ids, codes, queries = clustered
    flat, multi = HashIndex(), HashIndex(multi_hash_from=0)
    flat.add(ids, codes)
    multi.add(ids, codes)
    assert multi.multi_hash and not flat.multi_hash
    for max_distance in (0, 12, 23, 31, 32, 40, 41, 42, 64):
        assert multi.search_many(queries, max_distance) == flat.search_many(queries, max_distance)


def test_an_index_switches_to_multi_index_hashing_at_its_threshold_keeping_its_codes(clustered):
    ids, codes, queries = clustered
    hashes = HashIndex(multi_hash_from=2000)
    hashes.add(ids[:1500], codes[:1500])
    assert not hashes.multi_hash
    hashes.add(ids[1500:], codes[1500:])
    assert hashes.multi_hash and len(hashes) == len(codes)
    for query in queries:
        assert hashes.search(query, 31) == reference(ids, codes, query, 31)


class Table:
    """The database, as SyncedIndex sees it."""

    def __init__(self):
        self.rows: list[tuple[int, int, bytes]] = []
        self.removals = 0
        self.fetches = 0

    def insert(self, row_id: int, owner_id: int, code: bytes) -> None:
        self.rows = sorted([*self.rows, (row_id, owner_id, code)])

    def remove(self, owner_id: int) -> None:
        self.rows = [row for row in self.rows if row[1] != owner_id]
        self.removals += 1

    def fetch_since(self, last_id: int, limit: int):
        self.fetches += 1
        return [row for row in self.rows if row[0] > last_id][:limit]

    def synced(self, clock, **options) -> SyncedIndex:
        return SyncedIndex(self.fetch_since, lambda: self.removals, clock=clock, **options)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def table():
    rng = random.Random(3)
    table = Table()
    for row_id in range(1, 101):
        table.insert(row_id, row_id * 10, random_code(rng))
    return table


def test_synced_index_loads_in_batches_on_first_search(table):
    synced = table.synced(Clock(), batch_size=7)
    for _, owner, code in table.rows:
        assert synced.search(code, 0) == [(owner, 0)]
    assert table.fetches == 15  # 100 rows in batches of 7, loaded once
    assert synced.stats()["size"] == 100 and synced.stats()["last_row_id"] == 100


def test_new_rows_appear_after_the_refresh_interval_or_when_asked_fresh(table):
    clock = Clock()
    synced = table.synced(clock, refresh_seconds=1.0)
    synced.search(bytes(32), 31)
    new_code = random_code(random.Random(4))
    table.insert(101, 7, new_code)
    assert synced.search(new_code, 0) == []  # within the interval: the copy is as it was
    assert synced.search(new_code, 0, fresh=True) == [(7, 0)]

    table.insert(102, 8, new_code)
    clock.now += 1.0
    assert synced.search(new_code, 0) == [(7, 0), (8, 0)]
    assert len(synced.stats()) == 4 and synced.stats()["size"] == 102


def test_a_row_committed_after_a_higher_id_was_read_is_picked_up(table):
    table.rows = [row for row in table.rows if row[0] != 95]  # id 95 is handed out, uncommitted
    synced = table.synced(Clock(), overlap_ids=10)
    synced.refresh()
    late = random_code(random.Random(5))
    table.insert(95, 3, late)
    assert synced.search(late, 0, fresh=True) == [(3, 0)]
    assert synced.stats()["size"] == 100  # the re-read rows were not added twice


def test_removing_rows_rebuilds_the_index(table):
    synced = table.synced(Clock())
    code = table.rows[0][2]
    assert synced.search(code, 0) == [(10, 0)]
    table.remove(10)
    assert synced.search(code, 0, fresh=True) == []
    assert synced.stats()["size"] == 99


def test_a_multi_hashed_index_rebuilds_after_removals_and_switches_again(table):
    # Multi-index hashing cannot remove codes: a removal rebuilds the index, flat at first.
    synced = table.synced(Clock(), multi_hash_from=50, batch_size=30)
    code = table.rows[0][2]
    assert synced.search(code, 0) == [(10, 0)] and synced.stats()["multi_hash"]
    table.remove(10)
    assert synced.search(code, 0, fresh=True) == []
    assert synced.stats()["size"] == 99 and synced.stats()["multi_hash"]
    for _, owner, other in table.rows:
        assert synced.search(other, 0) == [(owner, 0)]


def test_a_failed_refresh_rebuilds_without_duplicates(table):
    synced = table.synced(Clock(), batch_size=30)
    synced.refresh()
    for row_id in range(101, 161):
        table.insert(row_id, row_id * 10, random_code(random.Random(row_id)))
    fetch, calls = table.fetch_since, []

    def failing_second_batch(last_id, limit):
        calls.append(last_id)
        if len(calls) == 2:
            raise ConnectionError("database went away")
        return fetch(last_id, limit)

    synced._fetch_since = failing_second_batch
    with pytest.raises(ConnectionError):
        synced.refresh(force=True)
    synced.refresh(force=True)
    assert synced.stats()["size"] == 160


def test_searches_stay_exact_while_codes_are_added():
    rng = random.Random(6)
    codes = [random_code(rng) for _ in range(500)]
    hashes = HashIndex()
    hashes.add(range(500), codes)
    more = [random_code(rng) for _ in range(20_000)]  # grows the storage, so faiss moves it
    errors = []

    def search_all():
        try:
            for _ in range(5):
                for owner, code in enumerate(codes[:100]):
                    assert hashes.search(code, 31) == [(owner, 0)]
                assert hashes.search_many(codes[:50], 31) == [[(i, 0)] for i in range(50)]
        except Exception as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=search_all) for _ in range(4)]
    for thread in threads:
        thread.start()
    for start in range(0, len(more), 500):
        hashes.add(range(1000 + start, 1500 + start), more[start : start + 500])
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(hashes) == 20_500 and hashes.search(more[-1], 0) == [(20_999, 0)]


def test_synced_searches_from_threads_while_rows_arrive(table):
    synced = table.synced(Clock(), refresh_seconds=0)
    errors = []

    def search_known():
        try:
            for _ in range(50):
                for _, owner, code in table.rows[:20]:
                    assert synced.search(code, 0) == [(owner, 0)]
        except Exception as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=search_known) for _ in range(4)]
    for thread in threads:
        thread.start()
    for row_id in range(101, 301):
        table.insert(row_id, row_id * 10, random_code(random.Random(row_id)))
    for thread in threads:
        thread.join()
    assert errors == []
    synced.refresh(force=True)
    assert synced.stats()["size"] == 300


def test_the_registry_keeps_one_index_per_name():
    made = []

    def factory():
        made.append(SyncedIndex(lambda last_id, limit: [], lambda: 0))
        return made[-1]

    threads = [
        threading.Thread(target=index.get_index, args=("test-registry", factory)) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 1
    assert index.get_index("test-registry", factory) is made[0]
    assert index.get_index("test-registry-other", factory) is not made[0]
    index.clear_indexes()
    assert index.get_index("test-registry", factory) is made[-1] is not made[0]
