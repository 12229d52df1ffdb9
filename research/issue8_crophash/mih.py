"""A multi-index hash over 63-bit codes in numpy: 4 tables of 16-bit chunks, each a sorted
array of (chunk value, row); a query probes each chunk's value and its 16 one-bit flips
(nflip 1; nflip 0: the value only), gathers the rows of those buckets and keeps those within
the radius. Exact up to radius 4 * (nflip + 1) - 1; beyond that it misses pairs whose
every chunk differs in more than nflip bits (measured: analyse.py --mih)."""

from __future__ import annotations

import numpy as np

CHUNKS, BITS = 4, 16


class MultiIndex:
    def __init__(self, codes: np.ndarray):
        self.codes = np.ascontiguousarray(codes, dtype=np.uint64)
        self.tables = []
        for c in range(CHUNKS):
            values = ((self.codes >> np.uint64(BITS * c)) & np.uint64(0xFFFF)).astype(np.uint32)
            order = np.argsort(values, kind="stable")
            self.tables.append((values[order], order))
        self.flips = np.concatenate([[0], 1 << np.arange(BITS)]).astype(np.uint32)

    def search(self, queries: np.ndarray, radius: int, nflip: int = 1):
        """(query index, row, distance) of every stored code within radius reached."""
        queries = np.asarray(queries, dtype=np.uint64)
        flips = self.flips if nflip else self.flips[:1]
        qi_all, rows_all = [], []
        for c, (values, order) in enumerate(self.tables):
            chunk = ((queries >> np.uint64(BITS * c)) & np.uint64(0xFFFF)).astype(np.uint32)
            probes = (chunk[:, None] ^ flips[None, :]).ravel()
            owner = np.repeat(np.arange(len(queries)), len(flips))
            lo = np.searchsorted(values, probes, "left")
            hi = np.searchsorted(values, probes, "right")
            sizes = hi - lo
            keep = sizes > 0
            lo, sizes, owner = lo[keep], sizes[keep], owner[keep]
            if not len(lo):
                continue
            starts = np.repeat(lo - np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes)
            idx = starts + np.arange(sizes.sum())
            rows_all.append(order[idx])
            qi_all.append(np.repeat(owner, sizes))
        if not rows_all:
            return np.zeros(0, int), np.zeros(0, int), np.zeros(0, int)
        qi, rows = np.concatenate(qi_all), np.concatenate(rows_all)
        d = np.bitwise_count(queries[qi] ^ self.codes[rows])
        hit = d <= radius
        qi, rows, d = qi[hit], rows[hit], d[hit]
        # one entry per (query, row): a pair found through several chunks
        key = np.unique(qi.astype(np.int64) * len(self.codes) + rows, return_index=True)[1]
        return qi[key], rows[key], d[key]
