"""Hamming range search over 63-bit crop codes, each with a 32-bit colour code (issue 8's
crophash stage): multi-index hashing compiled with numba.

A code is cut into 4 chunks of 16 bits, and each chunk has a table: the codes sorted by that
chunk and where each of its 65,536 values starts, so a probe is two reads.
A query probes each chunk's own value and every value within `nflip` bits of it (nflip 1: the
16 one-bit flips), and checks the full distance and the colour of every code found there. So
it finds every code that differs from the query in at most nflip bits of some chunk: all codes
within 4 * (nflip + 1) - 1 bits (7 for nflip 1, 3 for nflip 0). Beyond that it is approximate
by design: at radius 10 it misses the codes whose every chunk differs in 2 bits or more
(research/issue8_crophash REPORT.md: lowest recall over the hard edits 0.823 against 0.830 for
an exact search).

Codes added go to a tail, searched by brute force, which is merged into the tables (one pass
over them) once it holds `merge_at` codes and an eighth of the tables, or at `settle()` (which
SyncedIndex calls after each load) once it holds `merge_at`: a first load in many batches then
merges a few dozen times, not once per batch (10 s at 5M codes in batches of 50,000). Every
add makes new arrays and swaps them in with one assignment, and the tables are rebuilt beside
the ones in use: a search works on the arrays it read when it started, never waits for an
add, and runs without the GIL.
"""

import threading
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

CODE_BYTES = 12  # a little-endian uint64 code, then a little-endian uint32 colour code
CHUNKS, CHUNK_BITS = 4, 16
VALUES = 1 << CHUNK_BITS
# Tail size that triggers a merge. The tail's brute force costs ~0.05 ms per picture (85
# query codes) per 1,000 codes: ~1 ms at 20,000, a third of the budget; a merge costs 0.05 s
# at 1M codes, 0.25 s at 5M, paid by the add that triggers it (benchmarks/codes.py).
MERGE_AT = 5_000
# Buckets whose first codes are fetched ahead of their scan: p50 -20% at 5M codes over none
# (and over fetching all of a query's 68 at once).
PREFETCH_AHEAD = 4


class _Arrays(NamedTuple):
    """The merged codes sorted by each chunk, and the tail in the order added. The rows of
    the merged codes are in chunk 0's order, so chunk 0's table needs no rows."""

    table_codes: np.ndarray  # (CHUNKS, n) uint64: the codes sorted by chunk c
    offsets: np.ndarray  # (CHUNKS, VALUES + 1) int64: value v of chunk c at [v, v + 1)
    table_rows: np.ndarray  # (CHUNKS - 1, n) int32: rows of chunks 1.. sorted codes
    colours: np.ndarray  # (n,) uint32 by row
    ids: np.ndarray  # (n,) int64 by row
    tail_codes: np.ndarray
    tail_colours: np.ndarray
    tail_ids: np.ndarray


class CodeIndex:
    """Codes with an int64 id each; several codes may share an id (a picture's forms)."""

    def __init__(self, *, colour_radius: int = 3, nflip: int = 1, merge_at: int = MERGE_AT):
        self._colour_radius = colour_radius
        self._nflip = nflip
        self._flips = _flips(nflip)
        self._merge_at = merge_at
        self._arrays = _Arrays(
            np.zeros((CHUNKS, 0), np.uint64),
            np.zeros((CHUNKS, VALUES + 1), np.int64),
            np.zeros((CHUNKS - 1, 0), np.int32),
            np.zeros(0, np.uint32),
            np.zeros(0, np.int64),
            *_NO_TAIL,
        )
        self._adding = threading.Lock()  # one add at a time: each builds on the last one's arrays

    def __len__(self) -> int:
        arrays = self._arrays
        return arrays.table_codes.shape[1] + len(arrays.tail_codes)

    @property
    def multi_hash(self) -> bool:
        return True

    def add(self, ids: Sequence[int] | np.ndarray, codes: Sequence[bytes] | np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        codes, colours = _parsed(codes)
        if len(ids) != len(codes):
            raise ValueError(f"{len(ids)} ids for {len(codes)} codes")
        with self._adding:
            arrays = self._arrays
            tail_codes = np.concatenate([arrays.tail_codes, codes])
            tail_colours = np.concatenate([arrays.tail_colours, colours])
            tail_ids = np.concatenate([arrays.tail_ids, ids])
            self._arrays = arrays._replace(
                tail_codes=tail_codes, tail_colours=tail_colours, tail_ids=tail_ids
            )
            if len(tail_codes) >= max(self._merge_at, len(arrays.colours) // 8):
                self._merge()

    def settle(self) -> None:
        """Merge the tail once it holds merge_at codes (after a load of many batches)."""
        with self._adding:
            if len(self._arrays.tail_codes) >= self._merge_at:
                self._merge()

    def _merge(self) -> None:
        arrays = self._arrays
        if len(arrays.colours) + len(arrays.tail_codes) >= 2**31:
            raise ValueError("the tables' rows are int32")
        self._arrays = _Arrays(*_merge(*arrays), *_NO_TAIL)

    def search(self, code: bytes, max_distance: int) -> list[tuple[int, int]]:
        """(id, distance) of every id with a code within max_distance and a colour code
        within colour_radius (see the module's docstring for the codes it may miss), nearest
        first."""
        return self.search_many([code], max_distance)[0]

    def search_many(
        self, codes: Sequence[bytes] | np.ndarray, max_distance: int
    ) -> list[list[tuple[int, int]]]:
        queries, colours = _parsed(codes)
        if max_distance < 0 or not len(queries):
            return [[] for _ in range(len(queries))]
        arrays = self._arrays
        lims, ids, distances = _search(
            queries, colours, max_distance, self._colour_radius, self._nflip, self._flips, *arrays
        )
        lims, ids, distances = lims.tolist(), ids.tolist(), distances.tolist()
        return [
            list(zip(ids[start:end], distances[start:end], strict=True))
            for start, end in zip(lims[:-1], lims[1:], strict=True)
        ]


def warm_up() -> None:
    """Compile (or load from numba's cache) what CodeIndex runs, on a tiny index."""
    codes = np.zeros((2, CODE_BYTES), np.uint8)
    index = CodeIndex(merge_at=1)
    index.add([1, 2], codes)
    index.add([3], codes[:1])  # merged, then one in the tail
    index.search_many(codes, 10)


def records(codes: Sequence[bytes] | np.ndarray, size: int) -> np.ndarray:
    """An (n, size) uint8 array of fixed-size codes given as bytes or as such an array (the
    indexes here and samples.multihash take either)."""
    if isinstance(codes, np.ndarray):
        if codes.ndim != 2 or codes.shape[1] != size:
            raise ValueError(f"codes must be an (n, {size}) array")
        return np.ascontiguousarray(codes, dtype=np.uint8)
    if any(len(code) != size for code in codes):
        raise ValueError(f"codes must be {size} bytes each")
    return np.frombuffer(b"".join(codes), dtype=np.uint8).reshape(-1, size)


def _parsed(codes: Sequence[bytes] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n,) uint64 codes and (n,) uint32 colour codes of 12-byte records."""
    array = records(codes, CODE_BYTES)
    fields = array.view(np.dtype([("code", "<u8"), ("colour", "<u4")])).reshape(-1)
    return (
        fields["code"].astype(np.uint64),  # astype copies: native order, contiguous
        fields["colour"].astype(np.uint32),
    )


def _flips(nflip: int) -> np.ndarray:
    """The masks of a chunk within nflip bits, fewest bits first."""
    masks = np.arange(VALUES, dtype=np.int64)
    bits = np.bitwise_count(masks)
    order = np.argsort(bits, kind="stable")
    return masks[order][bits[order] <= nflip]


_NO_TAIL = (np.zeros(0, np.uint64), np.zeros(0, np.uint32), np.zeros(0, np.int64))


# --- Compiled ----------------------------------------------------------------------------------


@intrinsic
def _popcount(typingctx, value):
    """The set bits of an unsigned integer, as int64 (LLVM's ctpop: one instruction)."""

    def codegen(context, builder, signature, args):
        count = builder.ctpop(args[0])
        width = value.bitwidth
        return builder.zext(count, ir.IntType(64)) if width < 64 else count

    return types.int64(value), codegen


@intrinsic
def _prefetch(typingctx, address):
    """A hint to fetch the cache line at this address (LLVM's prefetch: read, keep)."""

    def codegen(context, builder, signature, args):
        pointer = builder.inttoptr(args[0], ir.PointerType(ir.IntType(8)))
        i32 = ir.IntType(32)
        function = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(ir.VoidType(), [pointer.type, i32, i32, i32]),
            "llvm.prefetch.p0",
        )
        builder.call(function, [pointer, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(address), codegen


@njit(cache=True, nogil=True)
def _chunk(code, c):
    return np.int64((code >> np.uint64(CHUNK_BITS * c)) & np.uint64(VALUES - 1))


@njit(cache=True, nogil=True)
def _sorted_by_chunk(codes, c):
    """(offsets, rows) of a stable counting sort of codes by chunk c."""
    offsets = np.zeros(VALUES + 1, np.int64)
    for i in range(len(codes)):
        offsets[_chunk(codes[i], c) + 1] += 1
    for v in range(VALUES):
        offsets[v + 1] += offsets[v]
    fill = offsets[:-1].copy()
    rows = np.empty(len(codes), np.int32)
    for i in range(len(codes)):
        v = _chunk(codes[i], c)
        rows[fill[v]] = i
        fill[v] += 1
    return offsets, rows


@njit(cache=True, nogil=True)
def _merge(table_codes, offsets, table_rows, colours, ids, tail_codes, tail_colours, tail_ids):
    """_Arrays' first five with the tail merged in: each bucket's codes, then the tail's of
    that bucket. One pass over the tables (no random reads or writes but the tail's)."""
    size = table_codes.shape[1] + len(tail_codes)
    new_codes = np.empty((CHUNKS, size), np.uint64)
    new_offsets = np.empty((CHUNKS, VALUES + 1), np.int64)
    new_rows = np.empty((CHUNKS - 1, size), np.int32)
    new_colours = np.empty(size, np.uint32)
    new_ids = np.empty(size, np.int64)
    before, order = _sorted_by_chunk(tail_codes, 0)  # before[v]: tail codes of chunk 0 < v
    tail_rows = np.empty(len(tail_codes), np.int64)
    for v in range(VALUES):
        out = new_offsets[0, v] = offsets[0, v] + before[v]
        for j in range(offsets[0, v], offsets[0, v + 1]):
            new_codes[0, out], new_colours[out] = table_codes[0, j], colours[j]
            new_ids[out] = ids[j]
            out += 1
        for i in order[before[v] : before[v + 1]]:
            new_codes[0, out], new_colours[out] = tail_codes[i], tail_colours[i]
            new_ids[out], tail_rows[i] = tail_ids[i], out
            out += 1
    for c in range(1, CHUNKS):
        tail_offsets, tail_order = _sorted_by_chunk(tail_codes, c)
        for v in range(VALUES):
            out = new_offsets[c, v] = offsets[c, v] + tail_offsets[v]
            for j in range(offsets[c, v], offsets[c, v + 1]):
                code = table_codes[c, j]
                # Its row moves down by the tail codes placed before it in chunk 0's order.
                new_codes[c, out] = code
                new_rows[c - 1, out] = table_rows[c - 1, j] + before[_chunk(code, 0)]
                out += 1
            for i in tail_order[tail_offsets[v] : tail_offsets[v + 1]]:
                new_codes[c, out], new_rows[c - 1, out] = tail_codes[i], tail_rows[i]
                out += 1
    new_offsets[:, VALUES] = size
    return new_codes, new_offsets, new_rows, new_colours, new_ids


@njit(cache=True, nogil=True)
def _grown(array, size):
    if size <= len(array):
        return array
    bigger = np.empty(max(size, 2 * len(array)), array.dtype)
    bigger[: len(array)] = array
    return bigger


@njit(cache=True, nogil=True)
def _found_before(x, c, nflip):
    """Whether a code at x = query ^ code was found through a chunk before c already."""
    for before in range(c):  # noqa: SIM110 (numba compiles no generator for any())
        if _popcount(np.uint64(_chunk(x, before))) <= nflip:
            return True
    return False


@njit(cache=True, nogil=True)
def _search(
    queries,
    query_colours,
    radius,
    colour_radius,
    nflip,
    flips,
    table_codes,
    offsets,
    table_rows,
    colours,
    ids,
    tail_codes,
    tail_colours,
    tail_ids,
):
    """(lims, ids, distances): query q's nearest hit per id at [lims[q], lims[q + 1]),
    nearest first, then by id."""
    lims = np.zeros(len(queries) + 1, np.int64)
    out_ids = np.empty(1024, np.int64)
    out_distances = np.empty(1024, np.int64)
    hit_ids = np.empty(256, np.int64)
    hit_distances = np.empty(256, np.int64)
    starts = np.empty(CHUNKS * len(flips), np.int64)  # of the buckets probed
    ends = np.empty(CHUNKS * len(flips), np.int64)
    for q in range(len(queries)):
        query, colour = queries[q], query_colours[q]
        # The buckets first, then their codes: the reads of the offsets wait neither for
        # each other nor for the codes. The hit arrays are grown here, not in the loops
        # that fill them: an array assigned in a loop is reference-counted at every turn.
        reach = _buckets(query, flips, offsets, starts, ends) + len(tail_codes)
        hit_ids = _grown(hit_ids, reach)
        hit_distances = _grown(hit_distances, reach)
        hits = _scan(
            query, colour, radius, colour_radius, nflip, len(flips), starts, ends,
            table_codes, table_rows, colours, ids, hit_ids, hit_distances,
        )  # fmt: skip
        for j in range(len(tail_codes)):
            # What the tables would find of it too (within nflip bits in some chunk): a code
            # is found alike before and after its merge.
            x = query ^ tail_codes[j]
            distance = _popcount(x)
            if (
                distance <= radius
                and _popcount(colour ^ tail_colours[j]) <= colour_radius
                and _found_before(x, CHUNKS, nflip)  # near in some chunk
            ):
                hit_ids[hits], hit_distances[hits] = tail_ids[j], distance
                hits += 1
        out_ids, out_distances = _put_nearest(
            lims, q, out_ids, out_distances, hit_ids[:hits], hit_distances[:hits]
        )
    return lims, out_ids[: lims[-1]], out_distances[: lims[-1]]


@njit(cache=True, nogil=True)
def _put_nearest(lims, q, out_ids, out_distances, ids, distances):
    """Append query q's nearest hit per id (of its hits `ids`, `distances`) to the output at
    lims[q] and set lims[q + 1]; the output arrays, grown if need be."""
    start = lims[q]
    nearest_ids, nearest_distances = _nearest_per_id(ids, distances)
    out_ids = _grown(out_ids, start + len(nearest_ids))
    out_distances = _grown(out_distances, start + len(nearest_ids))
    out_ids[start : start + len(nearest_ids)] = nearest_ids
    out_distances[start : start + len(nearest_ids)] = nearest_distances
    lims[q + 1] = start + len(nearest_ids)
    return out_ids, out_distances


@njit(cache=True, nogil=True)
def _buckets(query, flips, offsets, starts, ends):
    """Fill starts and ends with the buckets to probe, chunk by chunk; their total size."""
    reach = 0
    for c in range(CHUNKS):
        value = _chunk(query, c)
        for f in range(len(flips)):
            probe = value ^ flips[f]
            k = c * len(flips) + f
            starts[k], ends[k] = offsets[c, probe], offsets[c, probe + 1]
            reach += ends[k] - starts[k]
    return reach


@njit(cache=True, nogil=True)
def _scan(
    query, colour, radius, colour_radius, nflip, per_chunk, starts, ends,
    table_codes, table_rows, colours, ids, hit_ids, hit_distances,
):  # fmt: skip
    """Put the hits in the buckets into hit_ids and hit_distances; how many."""
    hits = 0
    for k in range(min(PREFETCH_AHEAD, len(starts))):
        _prefetch(_address(table_codes, k // per_chunk, starts[k]))
    for k in range(len(starts)):
        ahead = k + PREFETCH_AHEAD
        if ahead < len(starts):
            _prefetch(_address(table_codes, ahead // per_chunk, starts[ahead]))
        c = k // per_chunk
        for j in range(starts[k], ends[k]):
            x = query ^ table_codes[c, j]
            distance = _popcount(x)
            # A code near in several chunks is taken in the first of them only.
            if distance > radius or _found_before(x, c, nflip):
                continue
            row = j if c == 0 else table_rows[c - 1, j]
            if _popcount(colour ^ colours[row]) > colour_radius:
                continue
            hit_ids[hits], hit_distances[hits] = ids[row], distance
            hits += 1
    return hits


@njit(cache=True, nogil=True)
def _address(table, row, column):
    return table.ctypes.data + table.itemsize * (row * table.shape[1] + column)


@njit(cache=True, nogil=True)
def _nearest_per_id(ids, distances):
    """The nearest distance of each id, by distance then id."""
    by_id = np.argsort(ids, kind="mergesort")
    unique_ids = np.empty(len(ids), np.int64)
    nearest = np.empty(len(ids), np.int64)
    count = 0
    for i in by_id:
        if count and unique_ids[count - 1] == ids[i]:
            nearest[count - 1] = min(nearest[count - 1], distances[i])
        else:
            unique_ids[count], nearest[count] = ids[i], distances[i]
            count += 1
    order = np.argsort(nearest[:count], kind="mergesort")  # stable: ids stay ascending
    return unique_ids[:count][order], nearest[:count][order]
