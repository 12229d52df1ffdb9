"""Score crophash (candidate codes + confirm) on the quality set of one seed.

    cd /work/main && nice -n 10 /work/scratch/issue8b/venv/bin/python \
        /work/scratch/issue8b/evaluate.py --seed 0 [--images 200] [--generate] [--out FILE]

Generates the set (samples/quality/dataset.py, like benchmarks/quality.py) into
/work/scratch/issue8b/data/seed<S> with --generate (or if it is missing), computes every
file's stored and query codes, then for every pair the closest code pairs (up to R_MAX bits)
and, for pairs within R_CONFIRM, the confirm score of the best few hypotheses. Writes the
pairs to a pickle (analyse.py prints the tables) and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, "/work/scratch/issue8b")
import common  # noqa: E402,F401  (Django set-up)
import crophash as ch  # noqa: E402
import numpy as np  # noqa: E402

from samples.quality import dataset  # noqa: E402

CONFIRM = ch.confirm_both
R_MAX = 14
R_CONFIRM = 12
TOP = 4  # hypotheses confirmed per pair at most


def load(folder: Path, seed: int, images: int, generate: bool) -> dict:
    manifest = folder / "manifest.json"
    if generate or not manifest.exists():
        started = time.perf_counter()
        dataset.generate(folder, images=images, texts=0, seed=seed, workers=1, hard=True)
        print(f"generated in {time.perf_counter() - started:.0f} s", flush=True)
    return json.loads(manifest.read_text())


def featurise(folder: Path, files: list[str]) -> dict:
    out = {}
    started = time.perf_counter()
    for f in files:
        out[f] = common.features((folder / f).read_bytes())
    print(f"features of {len(files)} files in {time.perf_counter() - started:.0f} s", flush=True)
    return out


RC = None  # colour codes must be within this many bits (None: no colour filter)


def distances(query: ch.Query, stored: ch.Stored) -> np.ndarray:
    d = ch.popcount(query.codes[:, None] ^ stored.codes[None, :]).astype(np.int64)
    if RC is not None:
        dc = ch.popcount(query.colours[:, None] ^ stored.colours[None, :])
        d = np.where(dc > RC, d + 100, d)
    return d


def closest(query: ch.Query, stored: ch.Stored, r_max: int = R_MAX) -> list[tuple]:
    """Up to TOP (distance, query index, stored index), nearest first, within r_max; the
    overall minimum distance is always first when nothing is that close."""
    d = distances(query, stored)
    flat = d.ravel()
    order = np.argsort(flat, kind="stable")[: TOP * 4]
    out, seen = [], set()
    for k in order:
        i, j = divmod(int(k), d.shape[1])
        dist = int(flat[k])
        if out and dist > r_max:
            break
        # one hypothesis per (trim, stored form): neighbours of one grid point say the same
        key = (query.origins[i], j, tuple(np.round(query.rects[i] / 4)))
        if key in seen:
            continue
        seen.add(key)
        out.append((dist, i, j))
        if len(out) == TOP:
            break
    return out


CHUNKS = [np.uint64(((1 << 16) - 1) << (16 * c)) for c in range(4)]


def reachable(query: ch.Query, stored: ch.Stored) -> list[int]:
    """The closest code pair a multi-index hash of 4 x 16-bit chunks finds with nflip 0, 1, 2
    (some chunk within nflip bits): [best0, best1, best2] (99 if none)."""
    x = query.codes[:, None] ^ stored.codes[None, :]
    d = distances(query, stored)
    chunk = np.min([ch.popcount(x & m) for m in CHUNKS], axis=0)
    return [int(d[chunk <= f].min()) if (chunk <= f).any() else 99 for f in (0, 1, 2)]


def score_pair(query: ch.Query, stored: ch.Stored, r_confirm: int = R_CONFIRM) -> dict:
    near = closest(query, stored)
    best = near[0][0]
    mih = reachable(query, stored) if best <= R_MAX else [99, 99, 99]
    scores = []
    for dist, i, j in near:
        if dist > r_confirm:
            break
        name, angle = stored.forms[j]
        score, where = CONFIRM(query.grey, query.rects[i], -angle, stored.thumbs[name])
        colour = ch.chroma_distance(query.chroma, where, stored, name)
        detail = ch.detail_score(query.grey, where, stored.thumbs[name])
        masked = ch.content_score(query.grey, where, stored, name)
        scores.append(
            (
                dist,
                float(score),
                query.origins[i],
                stored.forms[j],
                float(query.strengths[i]),
                float(stored.strengths[j]),
                colour,
                detail,
                masked,
            )
        )
    return {"best": best, "confirmed": scores, "mih": mih}


class Bank:
    """The stored codes of many files at once: scan() scores a query against each, in detail
    only where some code pair is within R_MAX."""

    def __init__(self, stored: list, files: list[str]):
        self.files = files
        self.codes = np.concatenate([s.codes for s in stored])
        self.colours = np.concatenate([s.colours for s in stored])
        sizes = [len(s.codes) for s in stored]
        self.starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])

    def scan(self, query, q_file: str, feats: dict, skip: str | None = None) -> list[dict]:
        d = ch.popcount(query.codes[:, None] ^ self.codes[None, :]).astype(np.int64)
        if RC is not None:
            dc = ch.popcount(query.colours[:, None] ^ self.colours[None, :])
            d = np.where(dc > RC, d + 100, d)
        d = d.min(axis=0)
        best = np.minimum.reduceat(d, self.starts)
        out = []
        for k, f in enumerate(self.files):
            if f == skip or f == q_file:
                continue
            if best[k] <= R_MAX:
                out.append({"files": (q_file, f), **score_pair(query, feats[f][0])})
            else:
                out.append({"files": (q_file, f), "best": int(best[k]), "confirmed": []})
        return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--generate", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--no-benign", action="store_true")
    parser.add_argument("--levels", type=int, default=ch.CROP_LEVELS)
    parser.add_argument("--slack", type=str, default=",".join(map(str, ch.TRIM_SLACK)))
    parser.add_argument("--angles", type=str, default=",".join(map(str, ch.STORED_ANGLES)))
    parser.add_argument("--no-matcher", action="store_true")
    parser.add_argument("--rc", type=int, default=None, help="colour code radius")
    parser.add_argument("--tag", default="", help="suffix of the pairs file")
    parser.add_argument("--confirm", default="both", choices=("both", "ecc", "greedy"))
    parser.add_argument("--set", default="", help="NAME=VALUE;... crophash constants")
    args = parser.parse_args()
    global CONFIRM, RC
    RC = args.rc
    CONFIRM = {
        "both": lambda *a: ch.confirm_both(*a, threshold=0.95),
        "ecc": ch.confirm_ecc,
        "greedy": ch.confirm,
    }[args.confirm]
    for kv in args.set.split(";"):
        if kv:
            k, v = kv.split("=")
            setattr(ch, k, eval(v))
    ch.CROP_LEVELS = args.levels
    ch.TRIM_SLACK = tuple(float(x) for x in args.slack.split(","))
    ch.STORED_ANGLES = tuple(float(x) for x in args.angles.split(","))
    folder = Path(f"/work/scratch/issue8b/data/seed{args.seed}")
    manifest = load(folder, args.seed, args.images, args.generate)
    entries = manifest["images"]
    sources = {e["group"]: e["file"] for e in entries if e["transform"] == "source"}
    negatives = [e["file"] for e in entries if e["transform"] == "negative"]
    hard = [e for e in entries if e.get("set") == "hard" and e["transform"] != "hard-negative"]
    benign = [
        e
        for e in entries
        if e.get("set") != "hard" and e["transform"] not in ("source", "negative")
    ]
    if args.no_benign:
        benign = []
    pairs_of = defaultdict(list)
    for e in entries:
        if e["transform"] == "hard-negative":
            pairs_of[e["group"]].append(e)
    hnegs = [e["file"] for pair in pairs_of.values() for e in pair]
    files = sorted(
        set(sources.values())
        | set(negatives)
        | set(hnegs)
        | {e["file"] for e in hard}
        | {e["file"] for e in benign}
    )
    feats = featurise(folder, files)
    existing = {}
    if not args.no_matcher:
        # today's matcher (fp.image_similar) on each hard copy ~ its source, for the union
        started = time.perf_counter()
        prints = {
            f: common.fp.image_fingerprint((folder / f).read_bytes())
            for f in set(sources.values()) | {e["file"] for e in hard}
        }
        for e in hard:
            existing[e["file"]] = common.fp.image_similar(
                prints[e["file"]], prints[sources[e["group"]]]
            )[0]
        print(
            f"today's matcher on the hard copies in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
    np.savez(
        folder / "codes.npz",
        stored=np.concatenate([feats[f][0].codes for f in files]),
        query=np.concatenate([feats[f][1].codes for f in files]),
        query_sizes=np.array([len(feats[f][1].codes) for f in files]),
    )
    started = time.perf_counter()
    results = {"positives": [], "negatives": defaultdict(list)}
    for e in hard + benign:
        q = feats[e["file"]][1]
        s = feats[sources[e["group"]]][0]
        results["positives"].append(
            {
                "transform": e["transform"],
                "hard": e.get("set") == "hard",
                "kind": e["kind"],
                "file": e["file"],
                "today": existing.get(e["file"]),
                **score_pair(q, s),
            }
        )
    print(f"positives in {time.perf_counter() - started:.0f} s", flush=True)
    started = time.perf_counter()
    negs = results["negatives"]
    bank = {
        "sources": Bank([feats[f][0] for f in sources.values()], list(sources.values())),
        "negatives": Bank([feats[f][0] for f in negatives], negatives),
        "hnegs": Bank([feats[f][0] for f in hnegs], hnegs),
    }
    group_of = {f: g for g, f in sources.items()}
    kind_of = {e["file"]: e["negative"] for pair in pairs_of.values() for e in pair}
    partner = {}
    for pair in pairs_of.values():
        a, b = pair
        partner[a["file"]], partner[b["file"]] = b["file"], a["file"]
    for s_file in sources.values():
        q = feats[s_file][1]
        negs["source x unrelated"] += bank["negatives"].scan(q, s_file, feats)
        negs["source x hard negative"] += bank["hnegs"].scan(q, s_file, feats)
    for h in hnegs:
        q = feats[h][1]
        negs["source x hard negative"] += bank["sources"].scan(q, h, feats)
        negs["hard negative a x b"].append(
            {"files": (h, partner[h]), "what": kind_of[h], **score_pair(q, feats[partner[h]][0])}
        )
    print(f"source and hard negatives in {time.perf_counter() - started:.0f} s", flush=True)
    for e in hard:
        q = feats[e["file"]][1]
        negs["hard copy x other source"] += bank["sources"].scan(
            q, e["file"], feats, skip=sources[e["group"]]
        )
    print(f"all negatives in {time.perf_counter() - started:.0f} s", flush=True)
    stats = {
        "query_codes": [len(feats[f][1].codes) for f in files],
        "stored_codes": [len(feats[f][0].codes) for f in files],
        "trims": {f: list(feats[f][1].trims) for f in files},
    }
    out = args.out or folder / f"pairs{args.tag}.pkl"
    results["negatives"] = dict(negs)
    results["stats"] = stats
    results["params"] = {k: getattr(ch, k) for k in dir(ch) if k.isupper()}
    out.write_bytes(pickle.dumps(results))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
