"""Exact Hamming range search over 256-bit codes (PDQ hashes) by multi-index hashing, compiled
with numba: what a large index of PDQ codes switches to (samples.index.HashIndex).

The first 252 bits of a code are cut into 14 parts of 18 bits, and each part has a table: the
rows of the codes sorted by that part's value, and where each of its 262,144 values starts.
A query probes each part's own value and every value within 2 bits of it (172 probes a part),
and checks the full distance of every code found there. Two codes whose every part differs
in 3 bits or more are at least 42 bits apart, so every code within EXACT (41) bits is found:
the search is exact up to there, and a larger radius is answered by a flat scan of all codes.
(faiss's IndexBinaryMultiHash, used before, is exact to 32 bits at most with its 11 x 23 bits
and 2 flips, costs ~700 bytes a code, and enumerates its flips slowly; this costs ~100.)

A search gathers the rows of its buckets first, then reads their codes, each fetched a few
rows ahead: the codes are read at random, and fetching ahead lets those reads overlap.

Codes added go to a tail, searched by brute force, which is merged into the tables (one pass
over each) once it holds `merge_at` codes and an eighth of the tables, or at `settle()` (which
SyncedIndex calls after each load) once it holds `merge_at`. Codes live in one buffer that
grows by doubling; a search works on a snapshot (the buffer, its size and the tables) taken
when it starts, never waits for an add, and runs without the GIL.
"""

import threading
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numba import njit

# The compiled helpers the crop codes' index has already (numba calls them across modules).
from samples.codeindex import _grown, _popcount, _prefetch, _put_nearest, records

CODE_BYTES = 32
WORDS = 4  # a code as 4 little-endian uint64 words
PARTS, PART_BITS, FLIPS = 14, 18, 2
VALUES = 1 << PART_BITS
EXACT = PARTS * (FLIPS + 1) - 1
# Tail size that triggers a merge: its brute force costs ~0.05 ms a query code at 20,000, and a
# merge one pass over the 14 tables (0.23 s into 4M codes, measured here).
MERGE_AT = 20_000
PREFETCH_AHEAD = 8  # codes fetched ahead of their check


class _Snapshot(NamedTuple):
    codes: np.ndarray  # (capacity, WORDS) uint64: rows [0, size) are codes, by row
    ids: np.ndarray  # (capacity,) int64 by row
    size: int
    merged: int  # rows [0, merged) are in the tables, [merged, size) the tail
    offsets: np.ndarray  # (PARTS, VALUES + 1) int32: value v of part p at [v, v + 1)
    rows: np.ndarray  # (PARTS, merged) int32: the rows sorted by each part's value


class MultiHashIndex:
    """Codes with an int64 id each; several codes may share an id (a sample's 8 forms)."""

    def __init__(self, *, merge_at: int = MERGE_AT) -> None:
        self._merge_at = merge_at
        self._flips = _flips()
        self._snapshot = _Snapshot(
            np.zeros((0, WORDS), np.uint64),
            np.zeros(0, np.int64),
            0,
            0,
            np.zeros((PARTS, VALUES + 1), np.int32),
            np.zeros((PARTS, 0), np.int32),
        )
        self._adding = threading.Lock()  # one add at a time: each builds on the last one's

    def __len__(self) -> int:
        return self._snapshot.size

    @property
    def multi_hash(self) -> bool:
        return True

    def add(self, ids: Sequence[int] | np.ndarray, codes: Sequence[bytes] | np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        words = code_words(codes)
        if len(ids) != len(words):
            raise ValueError(f"{len(ids)} ids for {len(words)} codes")
        with self._adding:
            snap = self._snapshot
            size = snap.size + len(words)
            if size >= 2**31:
                raise ValueError("the tables' rows are int32")
            codes_buffer, ids_buffer = snap.codes, snap.ids
            if size > len(codes_buffer):
                # Copied into a larger buffer: searches keep reading the old one meanwhile.
                capacity = max(size, 2 * len(codes_buffer), 1024)
                codes_buffer = np.empty((capacity, WORDS), np.uint64)
                ids_buffer = np.empty(capacity, np.int64)
                codes_buffer[: snap.size] = snap.codes[: snap.size]
                ids_buffer[: snap.size] = snap.ids[: snap.size]
            # Rows past a snapshot's size are never read through it: writing them is safe.
            codes_buffer[snap.size : size], ids_buffer[snap.size : size] = words, ids
            self._snapshot = snap._replace(codes=codes_buffer, ids=ids_buffer, size=size)
            if size - snap.merged >= max(self._merge_at, snap.merged // 8):
                self._merge()

    def settle(self) -> None:
        """Merge the tail once it holds merge_at codes (after a load of many batches)."""
        with self._adding:
            snap = self._snapshot
            if snap.size - snap.merged >= self._merge_at:
                self._merge()

    def _merge(self) -> None:
        snap = self._snapshot
        offsets, rows = _merge(snap.codes, snap.size, snap.merged, snap.offsets, snap.rows)
        self._snapshot = snap._replace(merged=snap.size, offsets=offsets, rows=rows)

    def search(self, code: bytes, max_distance: int) -> list[tuple[int, int]]:
        """(id, distance) of every id with a code within max_distance, nearest first."""
        return self.search_many([code], max_distance)[0]

    def search_many(
        self, codes: Sequence[bytes] | np.ndarray, max_distance: int
    ) -> list[list[tuple[int, int]]]:
        queries = code_words(codes)
        if max_distance < 0 or not len(queries):
            return [[] for _ in range(len(queries))]
        snap = self._snapshot
        lims, ids, distances = _search(
            queries, min(max_distance, CODE_BYTES * 8), self._flips, *snap
        )
        lims, ids, distances = lims.tolist(), ids.tolist(), distances.tolist()
        return [
            list(zip(ids[start:end], distances[start:end], strict=True))
            for start, end in zip(lims[:-1], lims[1:], strict=True)
        ]


def code_words(codes: Sequence[bytes] | np.ndarray) -> np.ndarray:
    """(n, 4) uint64 words of 32-byte codes (bytes, or an (n, 32) uint8 array)."""
    # astype copies: native order, contiguous.
    return records(codes, CODE_BYTES).view("<u8").astype(np.uint64)


def warm_up() -> None:
    """Compile (or load from numba's cache) what MultiHashIndex runs, on a tiny index."""
    codes = np.zeros((2, CODE_BYTES), np.uint8)
    index = MultiHashIndex(merge_at=1)
    index.add([1, 2], codes)
    index.add([3], codes[:1])  # merged, then one in the tail
    index.search_many(codes, 10)
    index.search_many(codes, EXACT + 1)


def _flips() -> np.ndarray:
    """The masks of a part within FLIPS bits, fewest bits first."""
    masks = np.arange(VALUES, dtype=np.int64)
    bits = np.bitwise_count(masks)
    order = np.argsort(bits, kind="stable")
    return masks[order][bits[order] <= FLIPS].astype(np.int32)


# --- Compiled ----------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _part(code, p):
    """Part p's value: bits [18p, 18p + 18) of the code's words."""
    bit = p * PART_BITS
    word, shift = bit // 64, bit % 64
    value = code[word] >> np.uint64(shift)
    if shift + PART_BITS > 64:
        value |= code[word + 1] << np.uint64(64 - shift)
    return np.int64(value & np.uint64(VALUES - 1))


@njit(cache=True, nogil=True)
def _distance(a, b):
    total = 0
    for w in range(WORDS):
        total += _popcount(a[w] ^ b[w])
    return total


@njit(cache=True, nogil=True)
def _merge(codes, size, merged, offsets, rows):
    """(offsets, rows) of the tables with rows [merged, size) added: per part and bucket, its
    rows, then the tail's of that bucket. One pass over each table."""
    new_offsets = np.empty((PARTS, VALUES + 1), np.int32)
    new_rows = np.empty((PARTS, size), np.int32)
    tail = size - merged
    values = np.empty(tail, np.int64)
    counts = np.empty(VALUES + 1, np.int64)
    fill = np.empty(VALUES, np.int64)  # where a bucket's next tail row goes
    for p in range(PARTS):
        counts[:] = 0
        for i in range(tail):
            values[i] = _part(codes[merged + i], p)
            counts[values[i] + 1] += 1
        for v in range(VALUES):
            counts[v + 1] += counts[v]  # tail rows in buckets before v
        out = 0
        for v in range(VALUES):
            new_offsets[p, v] = out
            for j in range(offsets[p, v], offsets[p, v + 1]):
                new_rows[p, out] = rows[p, j]
                out += 1
            fill[v] = out  # the bucket's tail rows go here, below
            out += counts[v + 1] - counts[v]
        new_offsets[p, VALUES] = size
        for i in range(tail):
            v = values[i]
            new_rows[p, fill[v]] = merged + i
            fill[v] += 1
    return new_offsets, new_rows


@njit(cache=True, nogil=True)
def _search(queries, radius, flips, codes, ids, size, merged, offsets, rows):
    """(lims, ids, distances): query q's nearest hit per id at [lims[q], lims[q + 1]),
    nearest first, then by id."""
    lims = np.zeros(len(queries) + 1, np.int64)
    out_ids = np.empty(1024, np.int64)
    out_distances = np.empty(1024, np.int64)
    candidates = np.empty(4096, np.int32)
    hit_rows = np.empty(256, np.int64)
    hit_distances = np.empty(256, np.int64)
    flat = radius > EXACT
    for q in range(len(queries)):
        query = queries[q]
        # The rows of the buckets first, then their codes (see the module's docstring). The
        # arrays are grown here, not in the loops that fill them: an array assigned in a loop
        # is reference-counted at every turn.
        reach = 0 if flat else _bucket_sizes(query, flips, offsets)
        candidates = _grown(candidates, reach)
        if not flat:
            _gather(query, flips, offsets, rows, candidates)
        hit_rows = _grown(hit_rows, size if flat else reach + size - merged)
        hit_distances = _grown(hit_distances, len(hit_rows))
        hits = 0
        if not flat:
            hits = _check(query, radius, candidates, reach, codes, hit_rows, hit_distances)
        # By brute force: the tail, or every code beyond the tables' exact reach.
        for r in range(0 if flat else merged, size):
            distance = _distance(query, codes[r])
            if distance <= radius:
                hit_rows[hits], hit_distances[hits] = r, distance
                hits += 1
        out_ids, out_distances = _put_nearest(
            lims, q, out_ids, out_distances, ids[hit_rows[:hits]], hit_distances[:hits]
        )
    return lims, out_ids[: lims[-1]], out_distances[: lims[-1]]


@njit(cache=True, nogil=True)
def _bucket_sizes(query, flips, offsets):
    reach = 0
    for p in range(PARTS):
        value = _part(query, p)
        for f in range(len(flips)):
            probe = value ^ flips[f]
            reach += offsets[p, probe + 1] - offsets[p, probe]
    return reach


@njit(cache=True, nogil=True)
def _gather(query, flips, offsets, rows, candidates):
    """Fill candidates with the rows of every bucket probed, part by part."""
    out = 0
    for p in range(PARTS):
        value = _part(query, p)
        for f in range(len(flips)):
            probe = value ^ flips[f]
            for j in range(offsets[p, probe], offsets[p, probe + 1]):
                candidates[out] = rows[p, j]
                out += 1


@njit(cache=True, nogil=True)
def _check(query, radius, candidates, count, codes, hit_rows, hit_distances):
    """The candidates within radius. A code near the query in several parts is gathered from
    each of them: _nearest_per_id keeps one of its (equal) hits."""
    hits = 0
    for k in range(min(PREFETCH_AHEAD, count)):
        _prefetch(codes.ctypes.data + codes.itemsize * WORDS * candidates[k])
    for k in range(count):
        if k + PREFETCH_AHEAD < count:
            _prefetch(codes.ctypes.data + codes.itemsize * WORDS * candidates[k + PREFETCH_AHEAD])
        r = candidates[k]
        distance = _distance(query, codes[r])
        if distance <= radius:
            hit_rows[hits], hit_distances[hits] = r, distance
            hits += 1
    return hits
