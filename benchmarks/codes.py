"""Crop code lookup at 5M codes: samples.codeindex.CodeIndex against the research's numpy
multi-index (research/issue8_crophash/mih.py).

    nice -n 10 .venv/bin/python benchmarks/codes.py --size 5000000 --pictures 200

The data is made to look like real codes, whose 16-bit chunks collide far more than random
ones (what a multi-index's buckets see):
- real stored codes: samples.crophash.stored_codes (63-bit codes and 32-bit colour
  codes, ~5 a picture) of `--real` pictures drawn by the quality set's generators
  (samples/quality/dataset.py draw_source, shrunk to fingerprints.HASH_SIZE as the product
  does), cached in the temp folder;
- query pictures: a hard edit (samples/quality/hard_edits.py: crop, border, letterbox,
  caption, turn) of a stored picture, their crophash.query_codes (~85 a picture);
- topped up to `--size`: `--derived` of the rest are real codes with 16-24 random bits
  flipped within two of their four 16-bit chunks, the other two kept (flips spread over all
  four chunks leave every chunk near random: 1.0-2.0x), with the parent's colour code (the
  harder case: more of them pass the colour check); the rest plain random codes with a real
  colour code. It prints how much more often chunks collide than random ones: 7.0x at the
  defaults, largest bucket 0.22% (the research measured 9-12x and 0.2-0.3% on 104k real
  codes alone; this set's real codes alone 14-20x, 0.48%).
Each query picture's codes are searched together (search_many) within RADIUS bits and
COLOUR_RADIUS colour bits: p50/p95/p99 per picture, build time and memory; the same with a
full tail (MERGE_AT - 1 codes added after the last merge); the time to load the codes in a
SyncedIndex's batches of 50,000 and of one merge into the full index; then the numpy
multi-index (its search alone is timed, not the colour check and the nearest per id), and
all must find the same (id, distance) pairs.
"""

import argparse
import functools
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "moderation_console.settings")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "research" / "issue8_crophash"))

import django  # noqa: E402

django.setup()  # the quality set's generators import the models

import mih  # noqa: E402

from audit import demo  # noqa: E402
from benchmarks.common import resident_mb  # noqa: E402
from samples import crophash, fingerprints  # noqa: E402
from samples.codeindex import MERGE_AT, CodeIndex, warm_up  # noqa: E402
from samples.fingerprint_base import FingerprintKind as Kind  # noqa: E402
from samples.quality import dataset, hard_edits  # noqa: E402

RADIUS = crophash.RADIUS
COLOUR_RADIUS = crophash.COLOUR_RADIUS
LOAD_BATCH = 50_000  # rows a SyncedIndex reads at a time
SEED = 11  # of the generated pictures (the quality set's scoring uses seeds 0-3)


def _small(img: Image.Image) -> Image.Image:
    return fingerprints._image_shrink(img.convert("RGB"), fingerprints.HASH_SIZE)


def real_codes(pictures: int, queries: int) -> dict:
    """Stored codes (and their picture numbers) of `pictures` generated pictures, and the
    query codes of `queries` hard edits of some of them (cached: ~0.1 s a picture)."""
    cache = Path(tempfile.gettempdir()) / f"mc-codes-product-{SEED}-{pictures}-{queries}.npz"
    if cache.exists():
        return dict(np.load(cache))
    print(f"drawing {pictures} pictures and {queries} edited copies (cached in {cache}) ...")
    stored = {"codes": [], "colours": [], "owners": []}
    query = {"query_codes": [], "query_colours": [], "query_sizes": [], "query_sources": []}
    edits = list(hard_edits.HARD_TRANSFORMS.values())
    for number in range(pictures):
        rng = demo.rng_for(SEED, "quality-img", number)
        _, img = dataset.draw_source(rng, number)
        codes = crophash.stored_codes(crophash.crop_picture(_small(img)))
        stored["codes"].append(codes.codes)
        stored["colours"].append(codes.colours)
        stored["owners"].append(np.full(len(codes.codes), number))
        if number < queries:
            change, fmt, quality = edits[number % len(edits)]
            edited = Image.open(io.BytesIO(dataset.encode(change(rng, img), fmt, quality)))
            codes = crophash.query_codes(crophash.crop_picture(_small(edited)))
            query["query_codes"].append(codes.codes)
            query["query_colours"].append(codes.colours)
            query["query_sizes"].append(len(codes.codes))
            query["query_sources"].append(number)
    data = {key: np.concatenate(value) for key, value in stored.items()}
    data |= {key: np.concatenate(query[key]) for key in ("query_codes", "query_colours")}
    data |= {key: np.array(query[key]) for key in ("query_sizes", "query_sources")}
    np.savez(cache, **data)
    return data


# What an image stores beside its PDQ rows since issue 8, for benchmarks that fill a store.
THUMB_PICTURES = 40  # generated pictures whose real thumbnails the random rows reuse


@functools.cache
def _crop_pool(pictures: int) -> tuple[np.ndarray, np.ndarray]:
    real = real_codes(pictures, 1)
    return real["codes"].astype(np.uint64), real["colours"].astype(np.uint32)


@functools.cache
def _thumbs_pool() -> dict[int, list[bytes]]:
    """Real CropStored.thumbs by how many codes their picture has (3: one region, 6: two),
    so that a candidate's confirm reads and aligns them as it would a real sample's."""
    pool: dict[int, list[bytes]] = {3: [], 6: []}
    for number in range(THUMB_PICTURES):
        _, img = dataset.draw_source(demo.rng_for(SEED + 1, "quality-img", number), number)
        stored = crophash.stored_codes(crophash.crop_picture(_small(img)))
        pool[len(stored.forms)].append(stored.thumbs)
    return pool


def image_crop_rows(rng: np.random.Generator, pictures: int = 1000) -> list[tuple]:
    """(kind, key, code, quality, form) of an image's cropped PDQ forms (random codes) and
    crophash rows, as many as a generated picture has: its codes derived from the real codes
    of `pictures` generated pictures (derived_masks), its thumbnails another generated
    picture's (_thumbs_pool)."""
    # 1-3 distinct forms: "whole", and trims where a generated picture has them (1: 22%, 2: 48%)
    forms = fingerprints.CROP_STORED_FORMS[: int(rng.choice([1, 2, 3], p=[0.22, 0.48, 0.30]))]
    pdq = rng.bytes(32 * len(forms))
    rows = [
        (Kind.PDQ_CROP.value, None, pdq[32 * i : 32 * (i + 1)], 100, form)
        for i, form in enumerate(forms)
    ]
    pool, colours = _crop_pool(pictures)
    stored = crophash.STORED_FORMS[: 6 if rng.random() < 0.5 else 3]
    parents = rng.integers(0, len(pool), len(stored))
    derived = pool[parents] ^ derived_masks(len(stored), rng)
    rows += [
        (Kind.CROP_CODE.value, None, crophash.code_bytes(int(c), int(colours[p])), None, form)
        for form, c, p in zip(stored, derived, parents, strict=True)
    ]
    thumbs = _thumbs_pool()[len(stored)]
    rows.append((Kind.CROP_THUMB.value, None, thumbs[int(rng.integers(len(thumbs)))], None, ""))
    return rows


def topped_up(real: dict, size: int, derived: float, rng: np.random.Generator):
    """(codes, colours, ids) of `size` codes: the real ones, derived ones and random ones."""
    codes, colours = real["codes"].astype(np.uint64), real["colours"].astype(np.uint32)
    extra = max(0, size - len(codes))
    n_derived = round(extra * derived)
    parents = rng.integers(0, len(codes), extra)
    new_codes = np.concatenate(
        [
            codes[parents[:n_derived]] ^ derived_masks(n_derived, rng),
            rng.integers(0, 2**63, extra - n_derived, dtype=np.uint64),
        ]
    )
    all_codes = np.concatenate([codes, new_codes])[:size]
    all_colours = np.concatenate([colours, colours[parents]])[:size]
    first_extra = int(real["owners"].max()) + 1
    ids = np.concatenate([real["owners"], first_extra + np.arange(extra) // 5])[:size]
    return all_codes, all_colours, ids.astype(np.int64)


def derived_masks(count: int, rng: np.random.Generator) -> np.ndarray:
    """(count,) uint64 masks of 16-24 random bits within two random 16-bit chunks (bit 63
    never): the other two chunks keep their real values, and their skew."""
    weights = np.uint64(1) << np.arange(64, dtype=np.uint64)
    masks = np.empty(count, np.uint64)
    for start in range(0, count, 100_000):
        n = min(100_000, count - start)
        chunks = rng.permuted(np.tile(np.arange(4), (n, 1)), axis=1)[:, :2]
        keys = np.full((n, 4, 16), 2.0)  # over 1: never among the lowest
        keys[np.arange(n)[:, None], chunks] = rng.random((n, 2, 16))
        keys = keys.reshape(n, 64)
        keys[:, 63] = 2.0
        bits = rng.integers(16, 25, n)
        threshold = np.sort(keys, axis=1)[np.arange(n), bits - 1]
        masks[start : start + n] = ((keys <= threshold[:, None]) * weights).sum(
            axis=1, dtype=np.uint64
        )
    return masks


def chunk_skew(codes: np.ndarray) -> tuple[float, float]:
    """How much more often two codes share a 16-bit chunk value than random codes do (mean
    over the 4 chunks; self-pairs left out), and the largest bucket's share of the codes."""
    ratios, largest = [], 0.0
    n = len(codes)
    for c in range(4):
        values = ((codes >> np.uint64(16 * c)) & np.uint64(0xFFFF)).astype(np.int64)
        counts = np.bincount(values, minlength=65536).astype(np.float64)
        ratios.append(float((counts * counts).sum() - n) / (n * (n - 1)) * 65536)
        largest = max(largest, float(counts.max()) / n)
    return float(np.mean(ratios)), largest


def nearest_per_id(ids: np.ndarray, distances: np.ndarray) -> list[tuple[int, int]]:
    nearest: dict[int, int] = {}
    for owner, bits in zip(ids.tolist(), distances.tolist(), strict=True):
        nearest[owner] = min(bits, nearest.get(owner, bits))
    return sorted(nearest.items(), key=lambda item: (item[1], item[0]))


def baseline_hits(found, pictures, codes, colours, ids) -> list[list[list[tuple[int, int]]]]:
    """What CodeIndex answers, from the numpy multi-index's (query, row, distance) triples."""
    out = []
    for (qi, rows, bits), (_, query_colours) in zip(found, pictures, strict=True):
        keep = np.bitwise_count(colours[rows] ^ query_colours[qi]) <= COLOUR_RADIUS
        qi, rows, bits = qi[keep], rows[keep], bits[keep]
        out.append(
            [nearest_per_id(ids[rows[qi == q]], bits[qi == q]) for q in range(len(query_colours))]
        )
    return out


def timed(call, items, repeat: int) -> tuple[np.ndarray, list]:
    """Milliseconds of call(item) for every item, `repeat` times, and the first answers."""
    answers = [call(item) for item in items]  # also the warm-up
    ms = []
    for _ in range(repeat):
        for item in items:
            start = time.perf_counter()
            call(item)
            ms.append((time.perf_counter() - start) * 1000)
    return np.array(ms), answers


def percentiles(name: str, ms: np.ndarray) -> dict:
    p50, p95, p99 = (float(np.percentile(ms, p)) for p in (50, 95, 99))
    print(f"{name:>10}: p50 {p50:6.2f} ms   p95 {p95:6.2f} ms   p99 {p99:6.2f} ms per picture")
    return {f"{name}_p50": p50, f"{name}_p95": p95, f"{name}_p99": p99}


def run(*, size: int, pictures: int, real: int, derived: float, repeat: int, nflip: int) -> dict:
    data = real_codes(real, pictures)
    codes, colours, ids = topped_up(data, size, derived, np.random.default_rng(SEED))
    skew, largest = chunk_skew(codes)
    bounds = np.concatenate([[0], np.cumsum(data["query_sizes"])])
    queries = [
        (data["query_codes"][a:b].astype(np.uint64), data["query_colours"][a:b].astype(np.uint32))
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    print(
        f"{len(codes):,} codes: {len(data['codes']):,} real of {real:,} pictures, "
        f"{derived:.0%} of the rest derived, the others random; chunks collide {skew:.1f}x "
        f"more than random ones, largest bucket {largest:.2%}; {len(queries)} query pictures "
        f"of {np.mean(data['query_sizes']):.0f} codes (hard edits of stored ones); radius "
        f"{RADIUS}, colour radius {COLOUR_RADIUS}, nflip {nflip}"
    )
    warm_up()
    figures = {"codes": len(codes), "skew": skew}
    start, memory = time.perf_counter(), resident_mb()
    index = CodeIndex(colour_radius=COLOUR_RADIUS, nflip=nflip)
    index.add(ids, crophash.code_records(codes, colours))
    figures["build_seconds"] = time.perf_counter() - start
    figures["resident_mb"] = resident_mb() - memory
    figures["bytes_per_code"] = sum(a.nbytes for a in index._arrays) / len(codes)
    batches = [crophash.code_records(*picture) for picture in queries]
    ms, found = timed(lambda batch: index.search_many(batch, RADIUS), batches, repeat)
    figures |= percentiles("CodeIndex", ms)
    figures |= loaded_in_batches(codes, colours, ids, batches, found)

    start = time.perf_counter()
    baseline = mih.MultiIndex(codes)
    figures["numpy_build_seconds"] = time.perf_counter() - start
    numpy_ms, numpy_found = timed(
        lambda picture: baseline.search(picture[0], RADIUS, nflip), queries, repeat
    )
    figures |= percentiles("numpy", numpy_ms)
    figures["same_as_numpy"] = found == baseline_hits(numpy_found, queries, codes, colours, ids)
    figures["sources_found"] = np.mean(
        [
            any(owner == source for hits in answer for owner, _ in hits)
            for answer, source in zip(found, data["query_sources"], strict=True)
        ]
    )
    figures["hits_per_picture"] = np.mean([sum(map(len, answer)) for answer in found])
    for p in ("p50", "p95", "p99"):
        figures[f"ratio_{p}"] = figures[f"numpy_{p}"] / figures[f"CodeIndex_{p}"]
    print(
        f"     ratio: {figures['ratio_p50']:.1f}x faster than numpy at p50, "
        f"{figures['ratio_p95']:.1f}x at p95, {figures['ratio_p99']:.1f}x at p99 "
        "(target: <= 2-3 ms p99 per picture at 5M codes)"
    )
    print(
        f"     build: {figures['build_seconds']:.1f} s (numpy {figures['numpy_build_seconds']:.1f} "
        f"s); {figures['bytes_per_code']:.0f} bytes per code in its arrays, resident "
        f"+{figures['resident_mb']:,.0f} MB"
    )
    print(
        f"      load: {figures['load_seconds']:.1f} s in adds of {LOAD_BATCH:,} (a SyncedIndex's "
        f"first load), {'the same' if figures['same_when_loaded'] else 'NOT the same'} hits; "
        f"a merge of {MERGE_AT:,} codes into the full index {figures['merge_seconds']:.2f} s"
    )
    print(
        f"      hits: {figures['hits_per_picture']:.0f} (id, distance) per picture, the edited "
        f"picture's source among them for {figures['sources_found']:.0%}; "
        f"{'the same' if figures['same_as_numpy'] else 'NOT the same'} hits as numpy"
    )
    return figures


def loaded_in_batches(codes, colours, ids, batches, found) -> dict:
    """Time to load the codes in SyncedIndex's batches and settle (as its first load does),
    then of a refresh that adds MERGE_AT codes and settles (one merge into the full index),
    and searches with a tail of MERGE_AT - 1 codes (the most a settled index holds); and that
    the loaded index finds the same."""
    start = time.perf_counter()
    index = CodeIndex(colour_radius=COLOUR_RADIUS)
    for first in range(0, len(codes), LOAD_BATCH):
        part = slice(first, first + LOAD_BATCH)
        index.add(ids[part], crophash.code_records(codes[part], colours[part]))
    index.settle()
    load_seconds = time.perf_counter() - start
    same = [index.search_many(batch, RADIUS) for batch in batches] == found
    extra = np.arange(MERGE_AT, dtype=np.uint64)
    start = time.perf_counter()
    index.add(np.arange(MERGE_AT) - MERGE_AT, crophash.code_records(extra, extra.astype(np.uint32)))
    index.settle()
    merge_seconds = time.perf_counter() - start
    index.add(
        np.full(MERGE_AT - 1, -1), crophash.code_records(extra[1:], extra[1:].astype(np.uint32))
    )
    ms, _ = timed(lambda batch: index.search_many(batch, RADIUS), batches, 1)
    return {
        "load_seconds": load_seconds,
        "same_when_loaded": same,
        "merge_seconds": merge_seconds,
    } | percentiles("full tail", ms)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=5_000_000, help="stored codes")
    parser.add_argument("--pictures", type=int, default=200, help="query pictures")
    parser.add_argument("--real", type=int, default=1000, help="pictures of real stored codes")
    parser.add_argument("--derived", type=float, default=0.9, help="share of derived codes")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each picture")
    parser.add_argument("--nflip", type=int, default=1, help="bits flipped per chunk probed")
    args = parser.parse_args(argv)
    return run(
        size=args.size,
        pictures=args.pictures,
        real=max(args.real, args.pictures),
        derived=args.derived,
        repeat=args.repeat,
        nflip=args.nflip,
    )


if __name__ == "__main__":
    main()
