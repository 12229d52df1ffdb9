"""Image lookup at 1M PDQ hashes: samples.index against NumPy brute force.

    .venv/bin/python benchmarks/similar.py --size 1000000 --queries 200

Random 256-bit codes (seeded), with matches planted for each query at 0..31 bits (0 and 31
always among them) and near-miss decoys at 32..40 bits. Both sides search every query at
max distance 31:
- ours: samples.index.HashIndex.search (faiss IndexBinaryFlat range search, one query at a
  time), the same through SyncedIndex (what the app calls), and search_many over the batch;
- NumPy: the fastest brute force found here, the codes kept as four uint64 columns, XOR and
  np.bitwise_count per column (a row-major XOR + sum is ~7x slower).
It checks that every planted match is found, no decoy is, and both sides return the same ids,
then times the first load of a SyncedIndex from an in-memory table (its warm-up cost). No
database: this measures the index.

    .venv/bin/python benchmarks/similar.py --crops 7 --size 1000000 --queries 200

measures the index of cropped forms instead (issue 8): `size` images with `crops` codes each
(size x crops codes), planted as above, searched by a flat index and by multi-index hashing
(samples.multihash, what HashIndex switches to from MULTI_HASH_FROM codes): p50/p99
of one code, and of an image's CROP_QUERY_FORMS searched together (search_many), the ratio of
flat to multi-index, and the time to build each. Both must return the same ids.

    .venv/bin/python benchmarks/similar.py --crops 8 --radius 40 --size 500000

is the index of a library's PDQ codes at 1M samples (half of them images, each with its 8
flipped and turned forms), searched as a lookup does: to 40 bits (31 and the band that
thumbnails confirm).
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "moderation_console.settings")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django  # noqa: E402

django.setup()  # benchmarks.common and samples.fingerprints import the models

import numpy as np  # noqa: E402

from benchmarks.common import resident_mb  # noqa: E402
from samples import fingerprints  # noqa: E402
from samples.index import HashIndex, SyncedIndex  # noqa: E402

MAX_DISTANCE = 31
MATCHES = 8  # planted per query
DECOYS = 4


def flipped(code: np.ndarray, bits: int, rng: np.random.Generator) -> np.ndarray:
    unpacked = np.unpackbits(code)
    unpacked[rng.choice(256, bits, replace=False)] ^= 1
    return np.packbits(unpacked)


def planted(size: int, queries: int, rng: np.random.Generator, radius: int = MAX_DISTANCE):
    """The codes, the queries, and per query the planted match rows (0..radius bits away) and
    decoy rows (radius + 1..radius + 9)."""
    codes = rng.integers(0, 256, (size, 32), dtype=np.uint8)
    wanted = rng.integers(0, 256, (queries, 32), dtype=np.uint8)
    rows = rng.choice(size, (queries, MATCHES + DECOYS), replace=False)
    matches, decoys = [], []
    for query, its_rows in zip(wanted, rows, strict=True):
        near = [0, radius, *rng.integers(1, radius, MATCHES - 2)]
        far = [radius + 1, *rng.integers(radius + 2, radius + 10, DECOYS - 1)]
        for row, bits in zip(its_rows, near + far, strict=True):
            codes[row] = flipped(query, int(bits), rng)
        matches.append(dict(zip(its_rows[:MATCHES].tolist(), near, strict=True)))
        decoys.append(set(its_rows[MATCHES:].tolist()))
    return codes, wanted, matches, decoys


def numpy_search(columns: np.ndarray, query: np.ndarray, max_distance: int) -> np.ndarray:
    words = query.view(np.uint64)
    bits = np.bitwise_count(columns[0] ^ words[0]).astype(np.uint16)  # 256 overflows uint8
    for k in range(1, 4):
        bits += np.bitwise_count(columns[k] ^ words[k])
    return np.flatnonzero(bits <= max_distance)


def latencies(search, queries, repeat: int) -> np.ndarray:
    """Milliseconds per call, each query `repeat` times, after one untimed warm-up call."""
    search(queries[0])
    ms = []
    for _ in range(repeat):
        for query in queries:
            start = time.perf_counter()
            search(query)
            ms.append((time.perf_counter() - start) * 1000)
    return np.array(ms)


def in_memory_table(codes: np.ndarray):
    """fetch_since over rows (row id n, owner id n - 1, code), as the database would answer."""
    table = list(zip(range(1, len(codes) + 1), range(len(codes)), map(bytes, codes), strict=True))

    def fetch_since(last_id: int, limit: int):
        return table[last_id : last_id + limit]  # row id n sits at n - 1

    return fetch_since


def checked(queries, matches, decoys, found, numpy_found) -> dict:
    hits = sum(
        1
        for want, got in zip(matches, found, strict=True)
        for row, bits in want.items()
        if dict(got).get(row) == bits
    )
    decoys_returned = sum(
        len(d & {row for row, _ in got}) for d, got in zip(decoys, found, strict=True)
    )
    same = all(
        sorted(row for row, _ in got) == theirs.tolist()
        for got, theirs in zip(found, numpy_found, strict=True)
    )
    return {
        "recall": hits / (len(queries) * MATCHES),
        "decoys_returned": decoys_returned,
        "same_as_numpy": same,
    }


def percentiles(name: str, ms: np.ndarray, how: str) -> tuple[float, float]:
    p50, p99 = np.percentile(ms, 50), np.percentile(ms, 99)
    print(f"{name:>6}: p50 {p50:6.2f} ms   p99 {p99:6.2f} ms per query ({how})")
    return float(p50), float(p99)


def run(*, size: int, queries: int, repeat: int = 5, seed: int = 1) -> dict:
    codes, wanted, matches, decoys = planted(size, queries, np.random.default_rng(seed))
    print(
        f"{size:,} codes, {queries} queries, each with {MATCHES} planted matches at 0..31 bits "
        f"and {DECOYS} decoys at 32..40; max distance {MAX_DISTANCE}"
    )
    hashes = HashIndex()
    hashes.add(np.arange(size), codes)
    columns = np.ascontiguousarray(codes.view(np.uint64).T)  # untimed, like the faiss build

    fetch_since = in_memory_table(codes)
    start = time.perf_counter()
    synced = SyncedIndex(fetch_since, lambda: 0, batch_size=50_000)
    synced.refresh()
    load_seconds = time.perf_counter() - start

    figures = checked(
        wanted,
        matches,
        decoys,
        [hashes.search(q.tobytes(), MAX_DISTANCE) for q in wanted],
        [numpy_search(columns, q, MAX_DISTANCE) for q in wanted],
    )
    ours = latencies(lambda q: hashes.search(q.tobytes(), MAX_DISTANCE), wanted, repeat)
    via_synced = latencies(lambda q: synced.search(q.tobytes(), MAX_DISTANCE), wanted, repeat)
    brute = latencies(lambda q: numpy_search(columns, q, MAX_DISTANCE), wanted, repeat)
    batch = list(map(bytes, wanted))
    batches = latencies(lambda b: hashes.search_many(b, MAX_DISTANCE), [batch], repeat)
    batch_ms = float(np.median(batches)) / queries

    figures["ours_p50"], figures["ours_p99"] = percentiles("ours", ours, "HashIndex.search")
    figures["synced_p50"], figures["synced_p99"] = percentiles(
        "synced", via_synced, "SyncedIndex.search"
    )
    print(f" batch: {batch_ms:6.2f} ms per query (median search_many of {queries})")
    figures["numpy_p50"], figures["numpy_p99"] = percentiles(
        "numpy", brute, "XOR + bitwise_count over uint64 columns"
    )
    figures["batch_ms"], figures["load_seconds"] = batch_ms, load_seconds
    figures["ratio_p50"] = figures["numpy_p50"] / figures["ours_p50"]
    figures["ratio_p99"] = figures["numpy_p99"] / figures["ours_p99"]
    print(
        f" ratio: {figures['ratio_p50']:.1f}x faster than NumPy at p50, "
        f"{figures['ratio_p99']:.1f}x at p99 (target: <= 3 ms p99)"
    )
    print(
        f"recall {figures['recall']:.3f} on {queries * MATCHES} planted matches (target 1.0), "
        f"{figures['decoys_returned']} decoys returned, "
        f"{'the same' if figures['same_as_numpy'] else 'NOT the same'} ids as NumPy"
    )
    print(f"  load: {load_seconds:.2f} s for {size:,} rows into a SyncedIndex (batches of 50,000)")
    return figures


def run_crops(
    *, size: int, crops: int, queries: int, repeat: int = 5, seed: int = 1, radius: int
) -> dict:
    rng = np.random.default_rng(seed)
    codes, wanted, matches, decoys = planted(size * crops, queries, rng, radius)
    owners = np.arange(size * crops) // crops  # an image's forms share its id
    forms = len(fingerprints.CROP_QUERY_FORMS)
    print(
        f"{size:,} images x {crops} forms = {size * crops:,} codes, {queries} queries "
        f"(and {queries // forms} images of {forms} query forms), {MATCHES} planted matches "
        f"each at 0..{radius} bits, {DECOYS} decoys at {radius + 1}..{radius + 9}; max "
        f"distance {radius}"
    )
    figures: dict = {"codes": size * crops}
    indexes = {}
    for name, threshold in (("flat", None), ("multi", 0)):
        start, memory = time.perf_counter(), resident_mb()
        indexes[name] = HashIndex(multi_hash_from=threshold)
        indexes[name].add(owners, codes)
        figures[f"{name}_build_seconds"] = time.perf_counter() - start
        figures[f"{name}_mb"] = resident_mb() - memory
    found = {name: [h.search(q.tobytes(), radius) for q in wanted] for name, h in indexes.items()}
    want = [{int(owners[row]): bits for row, bits in m.items()} for m in matches]
    figures["recall"] = sum(
        dict(got).get(owner) == bits
        for w, got in zip(want, found["multi"], strict=True)
        for owner, bits in w.items()
    ) / sum(map(len, want))
    figures["same_as_flat"] = found["multi"] == found["flat"]
    images = [list(map(bytes, wanted[i : i + forms])) for i in range(0, queries - forms + 1, forms)]
    for name, hashes in indexes.items():
        one = latencies(lambda q, h=hashes: h.search(q.tobytes(), radius), wanted, repeat)
        many = latencies(lambda b, h=hashes: h.search_many(b, radius), images, repeat)
        figures[f"{name}_p50"], figures[f"{name}_p99"] = percentiles(name, one, "one code")
        figures[f"{name}_image_p50"], figures[f"{name}_image_p99"] = percentiles(
            name, many, f"an image's {forms} query forms, search_many"
        )
    for key in ("p50", "p99", "image_p50", "image_p99"):
        figures[f"ratio_{key}"] = figures[f"flat_{key}"] / figures[f"multi_{key}"]
    print(
        f" ratio: multi-index {figures['ratio_p50']:.1f}x faster than flat at p50, "
        f"{figures['ratio_p99']:.1f}x at p99 (one code); {figures['ratio_image_p50']:.1f}x, "
        f"{figures['ratio_image_p99']:.1f}x per image (target: <= 10 ms p99 per lookup)"
    )
    print(
        f"recall {figures['recall']:.3f} on the planted matches, "
        f"{'the same' if figures['same_as_flat'] else 'NOT the same'} ids as the flat index; "
        f"built in {figures['flat_build_seconds']:.1f} s (flat), "
        f"{figures['multi_build_seconds']:.1f} s (multi-index); resident memory "
        f"+{figures['flat_mb']:,.0f} MB (flat), +{figures['multi_mb']:,.0f} MB (multi-index)"
    )
    return figures


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="codes (images) in the index")
    parser.add_argument("--queries", type=int, default=200, help="queries, each with matches")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each query")
    parser.add_argument("--crops", type=int, default=0, help="cropped forms per image")
    parser.add_argument(
        "--radius",
        type=int,
        default=MAX_DISTANCE,
        help="with --crops: the max distance (40: a sample's PDQ forms, searched to 31 + 9 "
        "for the thumbnail-confirmed band)",
    )
    args = parser.parse_args(argv)
    if args.crops:
        return run_crops(
            size=args.size,
            crops=args.crops,
            queries=args.queries,
            repeat=args.repeat,
            radius=args.radius,
        )
    return run(size=args.size, queries=args.queries, repeat=args.repeat)


if __name__ == "__main__":
    main()
