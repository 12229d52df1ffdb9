"""Exact Hamming range search over 256-bit codes (PDQ hashes), kept in step with the database.

Brute force over every code with faiss (IndexBinaryFlat, the index Meta's Hasher-Matcher-Actioner
uses too): each search finds every code within the distance. The approximate faiss indexes
(HNSW, IVF, BinaryHash) missed true matches on our data, so none is used here. A large index
(a sample's 8 forms, the cropped forms) switches to exact multi-index hashing instead
(samples.multihash), which answers the same at every distance.

The database stays the source of truth: each web or worker process keeps its own copy, loads it
on first use, adds rows newer than the last one it saw and rebuilds after removals.
"""

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime

import faiss
import numpy as np

from samples.codeindex import records
from samples.multihash import MultiHashIndex

CODE_BYTES = 32
# From this many codes a HashIndex that may switch to multi-index hashing does. One code
# searched within 40 bits: flat 0.29 ms at 200,000 codes and multi-index 0.10 ms; at 4M codes
# 15.4 ms and 0.90 ms (benchmarks/similar.py --crops 8 --radius 40 --size 500000).
MULTI_HASH_FROM = 100_000

Row = tuple[int, int, bytes]  # (row id, owner id, code)
SINGLE_THREAD_QUERIES = 16  # a batch searched in the calling thread alone (see search_many)
# ... and so is a larger batch over a small index: codes compared at most (a flat scan compares
# ~1M a ms). A flat picture's 32 layout probes over the few flat pictures' codes took 15 ms
# a search with a team of threads on a busy 2-core machine.
SINGLE_THREAD_WORK = 4_000_000


class HashIndex:
    """Codes with an int64 id each; several codes may share an id (a sample's 8 forms)."""

    def __init__(self, *, multi_hash_from: int | None = None) -> None:
        """A flat index; with `multi_hash_from`, one that switches to multi-index hashing once
        it holds that many codes (0: from the start)."""
        self._multi_hash_from = multi_hash_from
        self._faiss = faiss.IndexBinaryIDMap(faiss.IndexBinaryFlat(CODE_BYTES * 8))
        self._lock = _ReadWriteLock()
        # Once set, it holds every code and the flat index is gone; it needs no lock of ours.
        self._hashed: MultiHashIndex | None = MultiHashIndex() if multi_hash_from == 0 else None

    def __len__(self) -> int:
        hashed = self._hashed
        return len(hashed) if hashed is not None else self._faiss.ntotal

    @property
    def multi_hash(self) -> bool:
        return self._hashed is not None

    def add(self, ids: Sequence[int] | np.ndarray, codes: Sequence[bytes] | np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        codes = records(codes, CODE_BYTES)
        if len(ids) != len(codes):
            raise ValueError(f"{len(ids)} ids for {len(codes)} codes")
        threshold = self._multi_hash_from
        if self._hashed is None and threshold and len(self) + len(ids) >= threshold:
            # Built beside the flat index, which answers searches meanwhile, and swapped in
            # unless codes were added in between.
            with self._lock.reading():
                hashed, size = _multi_hash_copy(self._faiss), len(self)
            with self._lock.writing():
                if self._hashed is None and len(self) == size:
                    self._hashed = hashed
                    self._faiss = faiss.IndexBinaryIDMap(faiss.IndexBinaryFlat(CODE_BYTES * 8))
        if self._hashed is not None:
            self._hashed.add(ids, codes)
            return
        with self._lock.writing():
            self._faiss.add_with_ids(codes, ids)

    def settle(self) -> None:
        """After a load of many batches (SyncedIndex): merge what multi-index hashing holds
        back."""
        if self._hashed is not None:
            self._hashed.settle()

    def search(self, code: bytes, max_distance: int) -> list[tuple[int, int]]:
        """(id, distance) of every id with a code within max_distance, nearest first."""
        return self.search_many([code], max_distance)[0]

    def search_many(
        self, codes: Sequence[bytes] | np.ndarray, max_distance: int
    ) -> list[list[tuple[int, int]]]:
        queries = records(codes, CODE_BYTES)
        if max_distance < 0 or not len(queries) or not len(self):
            return [[] for _ in range(len(queries))]
        if (hashed := self._hashed) is not None:
            return hashed.search_many(queries, max_distance)
        # One query is one thread's work in faiss anyway, and an image's few (its forms) little
        # more; a team of OpenMP threads only adds a barrier, and when another process holds a
        # core that barrier costs tens of ms (p50 40 ms instead of 0.9 ms measured here with one
        # core busy; 28 ms instead of 1 ms for an image's 6 cropped forms).
        small = (
            len(queries) <= SINGLE_THREAD_QUERIES or len(queries) * len(self) <= SINGLE_THREAD_WORK
        )
        threads = _omp_threads(1) if small else nullcontext()
        with threads, self._lock.reading():
            if self._hashed is not None:  # switched while this search waited
                return self._hashed.search_many(queries, max_distance)
            # faiss keeps distances strictly below the radius.
            radius = min(max_distance, CODE_BYTES * 8) + 1
            lims, distances, ids = self._faiss.range_search(queries, radius)
        distances = distances.astype(np.int64)
        return [
            _nearest_per_id(ids[start:end], distances[start:end])
            for start, end in zip(lims[:-1], lims[1:], strict=True)
        ]


class SyncedIndex:
    """A HashIndex in step with rows the caller reads from the database.

    fetch_since(last_id, limit): rows with row id > last_id, ascending, at most limit.
    removed_marker(): a cheap value that changes whenever rows were removed or disabled.
    multi_hash_from: as HashIndex's (a rebuild starts flat again and switches as it loads).
    index_factory: makes the index instead of HashIndex (at the first load and each rebuild):
    any object with HashIndex's add, search, search_many, len and multi_hash.
    """

    def __init__(
        self,
        fetch_since: Callable[[int, int], Sequence[Row]],
        removed_marker: Callable[[], object],
        *,
        refresh_seconds: float = 1.0,
        batch_size: int = 50_000,
        overlap_ids: int = 1000,
        multi_hash_from: int | None = None,
        index_factory: Callable[[], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch_since = fetch_since
        self._new_index = index_factory or (lambda: HashIndex(multi_hash_from=multi_hash_from))
        self._removed_marker = removed_marker
        self._refresh_seconds = refresh_seconds
        self._batch_size = batch_size
        self._overlap_ids = overlap_ids
        self._clock = clock
        self._lock = threading.Lock()  # one refresh at a time
        self._index: HashIndex | None = None
        self._marker: object = _STALE
        self._last_row_id = 0
        self._recent: set[int] = set()  # indexed row ids within overlap_ids of the last one
        self._refreshed_at = 0.0
        self._refreshed_wall: datetime | None = None

    def search(
        self, code: bytes, max_distance: int, *, fresh: bool = False
    ) -> list[tuple[int, int]]:
        self.refresh(force=fresh)
        return self._index.search(code, max_distance)

    def search_many(
        self, codes: Sequence[bytes] | np.ndarray, max_distance: int, *, fresh: bool = False
    ) -> list[list[tuple[int, int]]]:
        self.refresh(force=fresh)
        return self._index.search_many(codes, max_distance)

    def refresh(self, *, force: bool = False) -> None:
        if not force and self._is_fresh():
            return
        # While another thread refreshes, searches answer from the current copy (behind by
        # that one refresh) instead of queueing behind a rebuild; only the first load, and a
        # caller who asked for fresh results, wait.
        if not self._lock.acquire(blocking=force or self._index is None):
            return
        try:
            if force or not self._is_fresh():
                self._catch_up()
        finally:
            self._lock.release()

    def stats(self) -> dict:
        return {
            "size": len(self._index) if self._index is not None else 0,
            "multi_hash": self._index is not None and self._index.multi_hash,
            "last_row_id": self._last_row_id,
            "refreshed_at": self._refreshed_wall,
        }

    def _is_fresh(self) -> bool:
        return (
            self._index is not None and self._clock() - self._refreshed_at < self._refresh_seconds
        )

    def _catch_up(self) -> None:
        # Read the marker before the rows: a removal that races the fetch changes it after
        # this read, so the next refresh rebuilds.
        marker = self._removed_marker()
        try:
            if marker != self._marker:
                if restart := getattr(self._fetch_since, "restart", None):
                    restart()  # a reader that reads on from its last read starts over
                # Built aside and swapped in: searches keep using the old copy meanwhile.
                fresh_index = self._new_index()
                self._last_row_id, self._recent = self._load(fresh_index, 0, set())
                self._index = fresh_index
            else:
                self._last_row_id, self._recent = self._load(
                    self._index, self._last_row_id, self._recent
                )
        except BaseException:
            self._marker = _STALE  # rows may be half added: rebuild next time
            raise
        self._marker = marker
        self._refreshed_at = self._clock()
        self._refreshed_wall = datetime.now(UTC)

    def _load(self, index: HashIndex, last_row_id: int, recent: set[int]) -> tuple[int, set]:
        # Row ids come from a sequence, handed out at insert and visible at commit: a row can
        # appear after a higher id was already read. Re-reading the last overlap_ids ids
        # picks those up; rows already indexed are skipped.
        since = max(0, last_row_id - self._overlap_ids)
        while True:
            batch = self._fetch_since(since, self._batch_size)
            rows = [row for row in batch if row[0] not in recent] if recent else batch
            if rows:
                row_ids, owner_ids, codes = zip(*rows, strict=True)
                index.add(owner_ids, codes)
                last_row_id = max(last_row_id, row_ids[-1])
                recent.update(r for r in row_ids if r > last_row_id - self._overlap_ids)
            if len(batch) < self._batch_size:
                break
            since = batch[-1][0]
        if settle := getattr(index, "settle", None):
            settle()  # an index that defers work while batches arrive (codeindex.CodeIndex)
        return last_row_id, {r for r in recent if r > last_row_id - self._overlap_ids}


_STALE = object()  # equal to no marker, so the first refresh loads everything
_registry: dict[str, SyncedIndex] = {}
_registry_lock = threading.Lock()


def get_index(name: str, factory: Callable[[], SyncedIndex]) -> SyncedIndex:
    """This process's index called `name`, made by `factory` on first use (it loads lazily)."""
    with _registry_lock:
        if name not in _registry:
            _registry[name] = factory()
        return _registry[name]


def indexes_stats() -> dict[str, dict]:
    """SyncedIndex.stats() of each index this process holds, by name."""
    with _registry_lock:
        return {name: synced.stats() for name, synced in _registry.items()}


def clear_indexes() -> None:
    """Forget every index of this process (tests whose database rolls back between them)."""
    with _registry_lock:
        _registry.clear()


def _forget_after_fork() -> None:
    # A fork copies the indexes but not a thread loading one (a warm-up started before
    # gunicorn --preload or uWSGI forks its workers): its locks would stay held in the child
    # for ever. The child loads its own instead.
    global _registry, _registry_lock
    _registry, _registry_lock = {}, threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def _multi_hash_copy(flat: faiss.IndexBinaryIDMap) -> MultiHashIndex:
    """A multi-index hashing index of the codes and ids of a flat one."""
    codes = faiss.vector_to_array(faiss.downcast_IndexBinary(flat.index).xb)
    ids = faiss.vector_to_array(flat.id_map)
    index = MultiHashIndex()
    if len(ids):
        index.add(ids, codes.reshape(-1, CODE_BYTES))
    return index


def _nearest_per_id(ids: np.ndarray, distances: np.ndarray) -> list[tuple[int, int]]:
    if not len(ids):
        return []  # most queries' lot; the sorts below cost ~15 us even on nothing
    order = np.lexsort((ids, distances))  # by distance, then id
    ids, distances = ids[order], distances[order]
    _, first = np.unique(ids, return_index=True)  # the nearest code of each id
    first.sort()
    return list(zip(ids[first].tolist(), distances[first].tolist(), strict=True))


@contextmanager
def _omp_threads(count: int) -> Iterator[None]:
    # The OpenMP thread count is per calling thread, so this leaves other threads alone.
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(count)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


class _ReadWriteLock:
    """Many searches at once, or one add alone: faiss may move its codes while adding."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._readers = 0
        self._writing = False

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(lambda: not self._writing)
            self._readers += 1
        try:
            yield
        finally:
            with self._changed:
                self._readers -= 1
                self._changed.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(lambda: not self._writing)
            self._writing = True  # new searches wait from here, so a steady stream can't starve it
            self._changed.wait_for(lambda: not self._readers)
        try:
            yield
        finally:
            with self._changed:
                self._writing = False
                self._changed.notify_all()
