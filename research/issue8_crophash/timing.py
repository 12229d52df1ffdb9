"""Time figures of the crophash design.

    cd /work/main && nice -n 10 /work/scratch/issue8b/venv/bin/python \
        /work/scratch/issue8b/timing.py fingerprint
    ... timing.py index --db-seeds 0,1 --query-seed 2 --stored 3000000 --radius 8
    ... timing.py confirm --seed 0

fingerprint: the extra cost of the codes on the 1 MB 2000x1500 JPEG of benchmarks/quality.py
(beside fp.image_fingerprint's own time). index: faiss IndexBinaryMultiHash / IndexBinaryFlat
over `--stored` 64-bit codes (the real codes of one seed's pictures, topped up with random
ones), searched with each picture's query codes of another seed at `--radius`: time per picture
(all its codes in one call) and hits. confirm: the time of one confirm on candidate pairs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

sys.path.insert(0, "/work/scratch/issue8b")
import common  # noqa: E402
import crophash as ch  # noqa: E402
import faiss  # noqa: E402
import numpy as np  # noqa: E402

from samples import fingerprints as fp  # noqa: E402
from samples.quality import dataset  # noqa: E402


def _median_ms(call, repeat: int) -> tuple[float, float]:
    call()
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    seconds.sort()
    return statistics.median(seconds) * 1000, seconds[int(0.95 * (len(seconds) - 1))] * 1000


def fingerprint() -> None:
    rng = dataset.demo.rng_for(0, "quality-timing", 0)
    photo = dataset.draw_photo(rng, 2000, 1500)
    jpeg = dataset.encode(photo, "JPEG", 90)
    base = _median_ms(lambda: fp.image_fingerprint(jpeg), 30)
    small = common.decoded_small(jpeg)
    grey = _median_ms(lambda: ch.grey_copy(small), 50)
    g = ch.grey_copy(small)
    stored = _median_ms(lambda: ch.stored_codes(small, g), 50)
    query = _median_ms(lambda: ch.query_codes(small, g), 50)
    both = _median_ms(
        lambda: (
            ch.stored_codes(small, ch.grey_copy(small)),
            ch.query_codes(small, ch.grey_copy(small)),
        ),
        50,
    )
    print(
        f"{len(jpeg) / 1e6:.2f} MB {photo.width}x{photo.height} JPEG: image_fingerprint "
        f"p50 {base[0]:.1f} ms (p95 {base[1]:.1f}); extra from its 256-px copy: grey copy "
        f"{grey[0]:.2f}, stored codes {stored[0]:.2f}, query codes {query[0]:.2f} "
        f"({len(ch.query_codes(small, g).codes)} codes), grey + both {both[0]:.2f} ms "
        f"(p95 {both[1]:.2f})"
    )


PICTURES = 100


def index(
    db_seeds: list[int], query_seed: int, stored: int, radius: int, configs: list[str]
) -> None:
    real = np.concatenate(
        [np.load(f"/work/scratch/issue8b/data/seed{s}/codes.npz")["stored"] for s in db_seeds]
    )
    rng = np.random.default_rng(0)
    rng.shuffle(real)
    real = real[:stored]
    fill = rng.integers(0, 2**63, stored - len(real), dtype=np.uint64)
    codes = np.concatenate([real, fill])
    print(
        f"{len(codes)} stored codes: {len(real)} real (stored codes of every picture of "
        f"seeds {db_seeds}), {len(fill)} random; queries: the query codes of 100 pictures of "
        f"seed {query_seed}, duplicates removed; radius {radius}"
    )
    # how skewed the real codes' 16-bit chunks are (what a multi-index hash's buckets see):
    # the chance two real codes share a chunk value, against 1/65536 for random codes
    for c in range(4):
        values = ((real >> np.uint64(16 * c)) & np.uint64(0xFFFF)).astype(np.int64)
        counts = np.bincount(values, minlength=65536).astype(np.float64)
        p = counts / counts.sum()
        print(
            f"  chunk {c}: collision probability {float((p * p).sum()):.2e} "
            f"({float((p * p).sum()) * 65536:.0f}x random), largest bucket share {p.max():.4f}"
        )
    q = np.load(f"/work/scratch/issue8b/data/seed{query_seed}/codes.npz")
    bounds = np.concatenate([[0], np.cumsum(q["query_sizes"])])
    picks = rng.choice(len(bounds) - 1, 100, replace=False)
    batches = [ch.codes_to_bytes(np.unique(q["query"][bounds[i] : bounds[i + 1]])) for i in picks]
    batches = batches[:PICTURES]
    data = ch.codes_to_bytes(codes)
    faiss.omp_set_num_threads(1)
    for config in configs:
        if config.startswith("np"):  # mih.MultiIndex (numpy), nflip from "np1" / "np0"
            import mih

            started = time.perf_counter()
            mi = mih.MultiIndex(codes)
            built = time.perf_counter() - started
            nflip = int(config[2:])
            times, hits = [], []
            for batch in batches:
                qcodes = batch.view("<u8").ravel()
                start = time.perf_counter()
                qi, rows, d = mi.search(qcodes, radius, nflip)
                times.append((time.perf_counter() - start) * 1000)
                hits.append(len(rows))
            times.sort()
            print(
                f"  {config:<10} built {built:.1f} s; per picture p50 {statistics.median(times):.2f} ms "
                f"p95 {np.percentile(times, 95):.2f} ms max {times[-1]:.2f}; hits per picture mean "
                f"{np.mean(hits):.0f}",
                flush=True,
            )
            continue
        if config == "flat":
            idx = faiss.IndexBinaryFlat(64)
        else:
            nhash, bits, nflip = (int(x) for x in config.split("x"))
            idx = faiss.IndexBinaryMultiHash(64, nhash, bits)
            idx.nflip = nflip
        started = time.perf_counter()
        idx.add(data)
        built = time.perf_counter() - started
        times, hits = [], []
        for batch in batches:
            start = time.perf_counter()
            lims, _, _ = idx.range_search(batch, radius + 1)
            times.append((time.perf_counter() - start) * 1000)
            hits.append(int(lims[-1]))
        times.sort()
        print(
            f"  {config:<10} built {built:.1f} s; per picture ({np.mean([len(b) for b in batches]):.0f}"
            f" codes) p50 {statistics.median(times):.2f} ms p95 {np.percentile(times, 95):.2f} ms max "
            f"{times[-1]:.2f}; hits per picture mean {np.mean(hits):.0f} p95 "
            f"{np.percentile(hits, 95):.0f}",
            flush=True,
        )
        del idx


def confirm(seed: int, count: int) -> None:
    """Time of the confirm steps on real pairs: each hard copy against its source (the best
    code pair) and against the next source (its best code pair, whatever the distance: what a
    wrong candidate costs); and quick_scores of 32 candidates in one call."""
    import json
    from pathlib import Path

    folder = Path(f"/work/scratch/issue8b/data/seed{seed}")
    entries = json.loads((folder / "manifest.json").read_text())["images"]
    sources = {e["group"]: e["file"] for e in entries if e["transform"] == "source"}
    hard = [e for e in entries if e.get("set") == "hard" and e["transform"] != "hard-negative"]
    rng = np.random.default_rng(1)
    picks = rng.choice(len(hard), count, replace=False)
    times = {k: ([], []) for k in ("quick", "ecc", "greedy", "both")}
    groups = list(sources)
    batch = []
    for k in picks:
        e = hard[k]
        q = common.features((folder / e["file"]).read_bytes())[1]
        other = sources[groups[(groups.index(e["group"]) + 1) % len(groups)]]
        for target, side in ((sources[e["group"]], 0), (other, 1)):
            s = common.features((folder / target).read_bytes())[0]
            d = ch.popcount(q.codes[:, None] ^ s.codes[None, :])
            i, j = np.unravel_index(np.argmin(d), d.shape)
            name, angle = s.forms[j]
            batch.append((q.rects[i], -angle, s.thumbs[name]))
            for label, call in (
                ("quick", ch.quick_score),
                ("ecc", ch.confirm_ecc),
                ("greedy", ch.confirm),
                ("both", ch.confirm_both),
            ):
                start = time.perf_counter()
                out = call(q.grey, q.rects[i], -angle, s.thumbs[name])
                if label != "quick":
                    ch.chroma_distance(q.chroma, out[1], s, name)
                times[label][side].append((time.perf_counter() - start) * 1000)
    for label, (pos, neg) in times.items():
        pos.sort()
        neg.sort()
        print(
            f"{label:<7} (+ colour check): copy~source p50 {statistics.median(pos):.2f} ms p95 "
            f"{pos[int(0.95 * (len(pos) - 1))]:.2f}; copy~other source p50 "
            f"{statistics.median(neg):.2f} ms p95 {neg[int(0.95 * (len(neg) - 1))]:.2f}"
        )
    rects = np.array([b[0] for b in batch[:32]])
    angles = np.array([b[1] for b in batch[:32]])
    thumbs = np.stack([b[2] for b in batch[:32]])
    g = q.grey
    t = _median_ms(lambda: ch.quick_scores(g, rects, angles, thumbs), 50)
    print(f"quick_scores of 32 candidates in one call: p50 {t[0]:.2f} ms")


def main() -> None:
    global ch
    if "--exp" in sys.argv:  # crophash_exp: + the 80-bit mid-frequency codes
        sys.argv.remove("--exp")
        import crophash_exp

        ch = common.crophash = crophash_exp
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=("fingerprint", "index", "confirm"))
    parser.add_argument("--db-seeds", default="0")
    parser.add_argument("--query-seed", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stored", type=int, default=3_000_000)
    parser.add_argument("--radius", type=int, default=8)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--configs", default="4x16x1,4x16x2,flat")
    parser.add_argument("--pictures", type=int, default=100)
    args = parser.parse_args()
    global PICTURES
    PICTURES = args.pictures
    if args.what == "fingerprint":
        fingerprint()
    elif args.what == "index":
        index(
            [int(x) for x in args.db_seeds.split(",")],
            args.query_seed,
            args.stored,
            args.radius,
            args.configs.split(","),
        )
    else:
        confirm(args.seed, args.count)


if __name__ == "__main__":
    main()
