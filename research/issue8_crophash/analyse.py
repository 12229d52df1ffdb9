"""Tables from evaluate.py's pairs: candidate recall, confirmed recall, false positives.

    /work/main/.venv/bin/python /work/scratch/issue8b/analyse.py PAIRS.pkl [PAIRS2.pkl ...]
        [--radius 10] [--threshold 0.9] [--qmin 0] [--smin 0]

Several pickles (seeds) are pooled.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
from collections import defaultdict

import numpy as np

HARD = (
    "crop-asym", "crop-10%", "crop+resize+jpeg", "border-uniform", "border-blurred",
    "letterbox", "caption-top", "caption-bottom", "rotate-fill", "rotate-crop",
)  # fmt: skip


CMAX = 20.0
DMIN = -1.0  # detail correlation at least this
MMIN = -1.0  # masked correlation (textured cells only) at least this
MIH = None  # nflip of a 4 x 16-bit multi-index hash: candidates only if it reaches them


def hits(
    pair: dict, radius: int, threshold: float | None, qmin: float, smin: float, origins=None
) -> bool:
    """Whether the pair is a candidate (threshold None) or a confirmed match (correlation at
    the threshold and colour within CMAX)."""
    if MIH is not None and pair.get("mih", [99] * 3)[MIH] > radius:
        return False
    for dist, score, origin, form, qs, ss, colour, detail, *more in pair["confirmed"]:
        if dist > radius or qs < qmin or ss < smin:
            continue
        if origins is not None and origin not in origins:
            continue
        masked = more[0] if more else 1.0
        if threshold is None or (
            score >= threshold and colour <= CMAX and detail >= DMIN and masked >= MMIN
        ):
            return True
    return False


KIND: dict = {}  # file -> kind of picture (from the manifests beside the pickles)


def unrelated_pairs(negatives):
    return negatives.get("source x unrelated", []) + negatives.get("hard copy x other source", [])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("pickles", nargs="+")
    parser.add_argument("--radius", type=int, default=10)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--qmin", type=float, default=0.0)
    parser.add_argument("--smin", type=float, default=0.0)
    parser.add_argument("--cmax", type=float, default=CMAX)
    parser.add_argument("--mih", type=int, default=None, choices=(0, 1, 2))
    parser.add_argument("--dmin", type=float, default=DMIN)
    parser.add_argument("--mmin", type=float, default=MMIN)
    args = parser.parse_args()
    globals()["MMIN"] = args.mmin
    globals()["DMIN"] = args.dmin
    globals()["CMAX"] = args.cmax
    globals()["MIH"] = args.mih
    positives, negatives, stats = [], defaultdict(list), defaultdict(list)
    for path in args.pickles:
        data = pickle.loads(open(path, "rb").read())
        manifest = json.loads(open(os.path.join(os.path.dirname(path), "manifest.json")).read())
        KIND.update({e["file"]: e["kind"] for e in manifest["images"]})
        positives += data["positives"]
        for k, v in data["negatives"].items():
            negatives[k] += v
        for k in ("query_codes", "stored_codes"):
            stats[k] += data["stats"][k]
    r, t, qmin, smin = args.radius, args.threshold, args.qmin, args.smin
    print(
        f"query codes per picture: mean {np.mean(stats['query_codes']):.0f}, "
        f"p95 {np.percentile(stats['query_codes'], 95):.0f}; stored codes: mean "
        f"{np.mean(stats['stored_codes']):.1f}"
    )
    by = defaultdict(list)
    for p in positives:
        by[p["transform"]].append(p)
    radii = (4, 6, 8, 10, 12, 14)
    print(
        f"colour check <= {CMAX}; detail >= {DMIN}; masked >= {MMIN}; multi-index reach: "
        f"{'exact' if MIH is None else f'4 x 16 bits, nflip {MIH}'}"
    )
    print(
        f"\n{'edit':<18}"
        + "".join(f"{'<=' + str(x):>6}" for x in radii)
        + f"{'cand@' + str(r):>9}{'match':>7}{'today':>7}{'union':>7}{'n':>6}   (candidate "
        f"recall by min distance; match: radius {r}, confirm >= {t}; today's matcher; either)"
    )
    for name in HARD + tuple(k for k in by if k not in HARD):
        pairs = by.get(name)
        if not pairs:
            continue
        best = np.array([p["best"] for p in pairs])
        cand = np.mean([hits(p, r, None, qmin, smin) for p in pairs])
        match = np.mean([hits(p, r, t, qmin, smin) for p in pairs])
        today = [p.get("today") for p in pairs]
        known = all(x is not None for x in today)
        today_s = f"{np.mean(today):>7.3f}" if known else f"{'':>7}"
        union = np.mean([hits(p, r, t, qmin, smin) or bool(p.get("today")) for p in pairs])
        union_s = f"{union:>7.3f}" if known else f"{'':>7}"
        flag = "  <0.8" if name in HARD and max(match, union if known else 0) < 0.8 else ""
        print(
            f"{name:<18}"
            + "".join(f"{np.mean(best <= x):>6.2f}" for x in radii)
            + f"{cand:>9.3f}{match:>7.3f}{today_s}{union_s}{len(pairs):>6}{flag}"
        )
    print(
        "\nnegatives: candidate pairs (rate; x 1M = expected candidates per query at 1M "
        "stored pictures) and confirmed matches"
    )
    for name, pairs in negatives.items():
        cand = sum(hits(p, r, None, qmin, smin) for p in pairs)
        match = [p for p in pairs if hits(p, r, t, qmin, smin)]
        print(
            f"  {name:<26}{len(pairs):>8} pairs  candidates {cand:>6} "
            f"({cand / len(pairs):.2e}, x1M {cand / len(pairs) * 1e6:>8.0f})  "
            f"matched {len(match)} ({len(match) / len(pairs):.4%})"
        )
        for p in match[:4]:
            best = max(
                (
                    c
                    for c in p["confirmed"]
                    if c[0] <= r and c[6] <= CMAX and c[7] >= DMIN and (c[8:] or [1])[0] >= MMIN
                ),
                key=lambda c: c[1],
            )
            print(
                f"      {p['files']} {p.get('what', '')} d={best[0]} score={best[1]:.3f} "
                f"colour={best[6]:.1f} detail={best[7]:.2f} masked={(best[8:] or [1])[0]:.2f} "
                f"{best[2]} {best[3]}"
            )
    print(
        "\ncandidates per query picture (distinct stored pictures within the radius), scaled to"
        " 1M stored pictures:"
    )
    for name in ("source x unrelated", "hard copy x other source", "source x hard negative"):
        per = defaultdict(lambda: [0, 0])
        for p in negatives.get(name, []):
            row = per[p["files"][0]]
            row[0] += hits(p, r, None, qmin, smin)
            row[1] += 1
        if not per:
            continue
        counts = np.array([c for c, n in per.values()])
        stored = np.mean([n for c, n in per.values()])
        scale = 1e6 / stored
        print(
            f"  {name:<26} {len(per)} queries x {stored:.0f} stored: mean {counts.mean():.3f} "
            f"p95 {np.percentile(counts, 95):.0f} p99 {np.percentile(counts, 99):.0f} max "
            f"{counts.max()} -> at 1M: mean {counts.mean() * scale:.0f}, p95 "
            f"{np.percentile(counts, 95) * scale:.0f}; queries with none: "
            f"{np.mean(counts == 0):.3f}"
        )
    # At 1M stored pictures with at most M candidates confirmed (nearest codes first): the
    # chance that fewer than M unrelated pictures are nearer than the true source, with the
    # unrelated pictures' nearest-code distances as measured here (Poisson, ties half).
    # per kind of query picture (decoys come in template families: ads, avatars, landscapes)
    neg_by_kind = defaultdict(list)
    for p in unrelated_pairs(negatives):
        neg_by_kind[KIND.get(p["files"][0], "?")].append(p["best"])
    neg_by_kind = {k: np.array(v) for k, v in neg_by_kind.items()}

    def decoys(d, kind):
        best = neg_by_kind.get(kind)
        if best is None or len(best) < 1000:
            best = np.concatenate(list(neg_by_kind.values()))
        return 1e6 * (np.mean(best < d) + np.mean(best == d) / 2)

    from math import exp

    def p_within(lam, m):
        term, total = exp(-lam), 0.0
        for k in range(m):
            total += term
            term *= lam / (k + 1)
        return total

    print(
        "\nextrapolated to 1M stored pictures, at most M candidates confirmed per query "
        "(nearest codes first): lowest hard recall over edits, and per edit for M=32"
    )
    caps = (8, 32, 128, 512)
    rows = {}
    for name in HARD:
        pairs = by.get(name, [])
        if not pairs:
            continue
        rows[name] = [
            np.mean(
                [
                    hits(p, r, t, qmin, smin)
                    * p_within(decoys(p["best"], KIND.get(p["file"], "?")), m)
                    for p in pairs
                ]
            )
            for m in caps
        ]
    for k, m in enumerate(caps):
        print(f"  M={m:<4} lowest {min(v[k] for v in rows.values()):.3f}")
    print("  M=32: " + ", ".join(f"{n} {v[1]:.2f}" for n, v in rows.items()))
    if r in (6, 8, 10, 12) and any("comb" in p for p in positives):
        # the same, candidates ranked by d_low + d_mid (the 80-bit mid-frequency ring code)
        ri = (6, 8, 10, 12).index(r)
        comb_by_kind = defaultdict(list)
        for p in unrelated_pairs(negatives):
            comb_by_kind[KIND.get(p["files"][0], "?")].append(p.get("comb", [999] * 4)[ri])
        comb_by_kind = {k: np.array(v) for k, v in comb_by_kind.items()}

        def decoys_comb(c, kind):
            best = comb_by_kind.get(kind)
            if best is None or len(best) < 1000:
                best = np.concatenate(list(comb_by_kind.values()))
            return 1e6 * (np.mean(best < c) + np.mean(best == c) / 2)

        rows = {}
        for name in HARD:
            pairs = by.get(name, [])
            if pairs:
                rows[name] = [
                    np.mean(
                        [
                            hits(p, r, t, qmin, smin)
                            * p_within(
                                decoys_comb(p.get("comb", [999] * 4)[ri], KIND.get(p["file"], "?")),
                                m,
                            )
                            for p in pairs
                        ]
                    )
                    for m in caps
                ]
        print(
            "  ranked by d_low + d_mid: "
            + ", ".join(
                f"M={m} lowest {min(v[k] for v in rows.values()):.3f}" for k, m in enumerate(caps)
            )
        )
        print("  M=32: " + ", ".join(f"{n} {v[1]:.2f}" for n, v in rows.items()))
    print(
        "\nsweep: radius x threshold -> lowest hard recall, FP (all negative sets), "
        "candidate rate of unrelated (source x unrelated + hard copy x other source)"
    )
    unrelated = negatives["source x unrelated"] + negatives["hard copy x other source"]
    allneg = [p for v in negatives.values() for p in v]
    for radius in (6, 8, 10, 12):
        rate = np.mean([hits(p, radius, None, qmin, smin) for p in unrelated])
        row = []
        for threshold in (0.8, 0.85, 0.9, 0.93, 0.95, 0.97):
            lowest = min(
                np.mean([hits(p, radius, threshold, qmin, smin) for p in by[n]])
                for n in HARD
                if n in by
            )
            fp = sum(hits(p, radius, threshold, qmin, smin) for p in allneg)
            row.append(f"{threshold}: {lowest:.3f}/{fp}")
        print(f"  r={radius:<3} cand rate {rate:.2e}  " + "  ".join(row))


if __name__ == "__main__":
    main()
