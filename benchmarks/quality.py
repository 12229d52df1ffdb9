"""Quality of the near-duplicate matcher (samples/fingerprints.py) on the generated set.

    .venv/bin/python benchmarks/quality.py [--images 200] [--texts 200] [--folder PATH]

Generates the set (samples/quality/dataset.py) into the folder, fingerprints every file and
text, and prints:
- images: per transform, recall of a copy against its source at the default distance, for
  our matcher (exact, PDQ and the pixel-transformed variants), plain PDQ (no variants) and
  PDQ with pdqhash's own dihedral hashes; the false-positive rate of every source against
  every unrelated image; a sweep of distances for low-quality hashes, from which
  LOW_QUALITY_DISTANCE was chosen;
- texts: per edit, recall of the edited text against its source at TEXT_THRESHOLD (found
  through a shared LSH band key and estimated similarity at or above the threshold); false
  positives of every benign text against every source; a sweep of thresholds;
- timings.
Targets: image recall >= 0.98 per transform with FPR <= 0.1%; text recall >= 0.95 per edit
with no false positive on benign texts.
"""

import argparse
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "moderation_console.settings")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
import pdqhash  # noqa: E402

from samples import fingerprints as fp  # noqa: E402
from samples.quality import dataset  # noqa: E402

IMAGE_TARGET, FPR_TARGET, TEXT_TARGET = 0.98, 0.001, 0.95
LOW_QUALITY_SWEEP = (4, 8, 12, 16, 20, 24, 31)
THRESHOLD_SWEEP = (0.3, 0.4, 0.5, 0.6, 0.7)


def run(*, images: int, texts: int, folder: Path, seed: int = 0, out=print) -> dict:
    started = time.perf_counter()
    manifest = dataset.generate(folder, images=images, texts=texts, seed=seed)
    out(
        f"generated {len(manifest['images'])} images, {len(manifest['texts'])} texts "
        f"into {folder} in {time.perf_counter() - started:.1f} s"
    )
    figures = {"images": image_scores(manifest, folder, out), "texts": text_scores(manifest, out)}
    figures["timings"] = timings(out)
    out(f"total {time.perf_counter() - started:.1f} s")
    return figures


# --- Images ---------------------------------------------------------------------------------


def image_scores(manifest: dict, folder: Path, out) -> dict:
    started = time.perf_counter()
    prints, sources, negatives = {}, {}, []
    by_group = defaultdict(list)
    for entry in manifest["images"]:
        prints[entry["file"]] = fp.image_fingerprint((folder / entry["file"]).read_bytes())
        if entry["transform"] == "source":
            sources[entry["group"]] = entry
        elif entry["transform"] == "negative":
            negatives.append(entry)
        else:
            by_group[entry["transform"]].append(entry)
    elapsed = time.perf_counter() - started
    out(
        f"fingerprinted {len(prints)} images in {elapsed:.1f} s "
        f"({elapsed / len(prints) * 1000:.1f} ms each)\n"
    )
    dihedral = {g: _pdqhash_dihedral(folder / e["file"]) for g, e in sources.items()}

    rows, low_pairs = {}, []
    for transform, copies in by_group.items():
        ours = plain = lib = 0
        for entry in copies:
            copy, source = prints[entry["file"]], prints[sources[entry["group"]]["file"]]
            matched, best, _ = fp.image_similar(copy, source)
            limit = fp.pdq_threshold(min(copy.quality, source.quality))
            ours += matched
            plain += fp.hamming(copy.pdq, source.pdq) <= limit
            lib += min(fp.hamming(copy.pdq, h) for h in dihedral[entry["group"]]) <= limit
            if min(copy.quality, source.quality) < fp.PDQ_MIN_QUALITY:
                low_pairs.append(best)
        rows[transform] = {
            "ours": ours / len(copies),
            "plain": plain / len(copies),
            "pdqhash_dihedral": lib / len(copies),
            "pairs": len(copies),
        }

    false, plain_false, low_negative, worst = 0, 0, [], []
    for source_entry in sources.values():
        source = prints[source_entry["file"]]
        for negative_entry in negatives:
            negative = prints[negative_entry["file"]]
            matched, best, form = fp.image_similar(source, negative)
            false += matched
            plain_false += fp.hamming(source.pdq, negative.pdq) <= fp.pdq_threshold(
                min(source.quality, negative.quality)
            )
            if min(source.quality, negative.quality) < fp.PDQ_MIN_QUALITY:
                low_negative.append(best)
            if matched:
                worst.append((best, form, source_entry["file"], negative_entry["file"]))
    pairs = len(sources) * len(negatives)
    low_sources = sum(prints[e["file"]].quality < fp.PDQ_MIN_QUALITY for e in sources.values())

    out(
        f"IMAGES: {len(sources)} sources ({low_sources} with PDQ quality < "
        f"{fp.PDQ_MIN_QUALITY}), {len(negatives)} unrelated, distance {fp.PDQ_DISTANCE} "
        f"({fp.LOW_QUALITY_DISTANCE} under quality {fp.PDQ_MIN_QUALITY})"
    )
    out(f"{'transform':<16}{'recall':>8}{'plain PDQ':>11}{'pdqhash dihedral':>18}")
    for transform, row in rows.items():
        flag = "" if row["ours"] >= IMAGE_TARGET else "  < target"
        out(
            f"{transform:<16}{row['ours']:>8.3f}{row['plain']:>11.3f}"
            f"{row['pdqhash_dihedral']:>18.3f}{flag}"
        )
    out(
        f"false positives: {false} of {pairs} source x unrelated pairs = {false / pairs:.4%} "
        f"(plain PDQ: {plain_false} = {plain_false / pairs:.4%})"
    )
    for best, form, a, b in sorted(worst)[:5]:
        out(f"  matched at {best} ({form}): {a} ~ {b}")
    out(
        f"\nlow-quality pairs: {len(low_pairs)} copy~source, {len(low_negative)} "
        "source~unrelated; recall and false positives by distance:"
    )
    sweep = {}
    for distance in LOW_QUALITY_SWEEP:
        found = sum(d <= distance for d in low_pairs) / max(1, len(low_pairs))
        wrong = sum(d <= distance for d in low_negative)
        sweep[distance] = (found, wrong)
        out(f"  distance {distance:>2}: recall {found:.3f}, false positives {wrong}")
    out("")
    return {
        "transforms": rows,
        "fpr": false / pairs,
        "plain_fpr": plain_false / pairs,
        "pairs": pairs,
        "low_quality_sweep": sweep,
    }


def _pdqhash_dihedral(path: Path) -> list[bytes]:
    """The 8 hashes pdqhash derives from one picture (what our variants replace)."""
    small = fp._image_shrink(fp._image_decode(path.read_bytes()), fp.HASH_SIZE)
    hashes = pdqhash.compute_dihedral(np.asarray(small))[0]
    return [np.packbits(h.astype(np.uint8)).tobytes() for h in hashes]


# --- Texts ----------------------------------------------------------------------------------


def text_scores(manifest: dict, out) -> dict:
    started = time.perf_counter()
    entries = manifest["texts"]
    prints = [fp.text_fingerprint(e["text"]) for e in entries]
    keys = [set(fp.text_band_keys(p)) for p in prints]
    elapsed = time.perf_counter() - started
    out(
        f"fingerprinted {len(entries)} texts in {elapsed:.2f} s "
        f"({elapsed / len(entries) * 1000:.2f} ms each, band keys included)\n"
    )
    sources = {e["group"]: i for i, e in enumerate(entries) if e["edit"] == "source"}
    benign = [i for i, e in enumerate(entries) if e["edit"] == "negative"]

    def found(i: int, j: int, threshold: float) -> bool:
        if prints[i].exact == prints[j].exact:
            return True
        return bool(keys[i] & keys[j]) and fp.text_similarity(prints[i], prints[j]) >= threshold

    edits = defaultdict(list)
    for i, entry in enumerate(entries):
        if entry["edit"] not in ("source", "negative"):
            edits[entry["edit"]].append((i, sources[entry["group"]]))
    rows = {}
    for edit, pairs in edits.items():
        similarity = [fp.text_similarity(prints[i], prints[j]) for i, j in pairs]
        rows[edit] = {
            "recall": sum(found(i, j, fp.TEXT_THRESHOLD) for i, j in pairs) / len(pairs),
            "similarity_recall": sum(s >= fp.TEXT_THRESHOLD for s in similarity) / len(pairs),
            "median": statistics.median(similarity),
            "min": min(similarity),
            "pairs": len(pairs),
        }
    benign_pairs = [(b, s) for b in benign for s in sources.values()]
    benign_similarity = [fp.text_similarity(prints[b], prints[s]) for b, s in benign_pairs]
    false = sum(found(b, s, fp.TEXT_THRESHOLD) for b, s in benign_pairs)
    candidates = sum(bool(keys[b] & keys[s]) for b, s in benign_pairs)

    out(
        f"TEXTS: {len(sources)} sources, {len(benign)} benign texts on the same topics, "
        f"threshold {fp.TEXT_THRESHOLD}, {fp.SHINGLE}-character shingles, "
        f"{fp.LSH_BANDS} bands x {fp.LSH_ROWS} rows"
    )
    out(f"{'edit':<14}{'recall':>8}{'similarity >= t':>17}{'median sim':>12}{'min sim':>9}")
    for edit, row in rows.items():
        flag = "" if row["recall"] >= TEXT_TARGET else "  < target"
        out(
            f"{edit:<14}{row['recall']:>8.3f}{row['similarity_recall']:>17.3f}"
            f"{row['median']:>12.2f}{row['min']:>9.2f}{flag}"
        )
    out(
        f"false positives: {false} of {len(benign_pairs)} benign x source pairs "
        f"(sharing a band key: {candidates}; highest similarity "
        f"{max(benign_similarity):.2f})"
    )
    out("by threshold (similarity alone): lowest recall over edits, benign false positives")
    sweep = {}
    for threshold in THRESHOLD_SWEEP:
        lowest = min(
            sum(fp.text_similarity(prints[i], prints[j]) >= threshold for i, j in pairs)
            / len(pairs)
            for pairs in edits.values()
        )
        wrong = sum(s >= threshold for s in benign_similarity)
        sweep[threshold] = (lowest, wrong)
        out(f"  {threshold:.1f}: {lowest:.3f}, {wrong}")
    out("")
    return {
        "edits": rows,
        "false_positives": false,
        "pairs": len(benign_pairs),
        "threshold_sweep": sweep,
    }


# --- Timings --------------------------------------------------------------------------------


def timings(out) -> dict:
    rng = dataset.demo.rng_for(0, "quality-timing", 0)
    photo = dataset.draw_photo(rng, 2000, 1500)
    jpeg = dataset.encode(photo, "JPEG", 92)
    text = " ".join(dataset.spam_text(rng) for _ in range(12))[:1000]
    image_ms = _median_ms(lambda: fp.image_fingerprint(jpeg), 20)
    text_ms = _median_ms(lambda: fp.text_fingerprint(text), 200)
    out(
        f"image fingerprint of a {len(jpeg) / 1e6:.1f} MB {photo.width}x{photo.height} JPEG: "
        f"{image_ms:.1f} ms; text fingerprint of {len(text)} characters: {text_ms:.2f} ms"
    )
    return {"image_ms": image_ms, "text_ms": text_ms, "jpeg_bytes": len(jpeg)}


def _median_ms(call, repeat: int) -> float:
    call()
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=200, help="source images")
    parser.add_argument("--texts", type=int, default=200, help="source texts")
    parser.add_argument("--folder", type=Path, default=dataset.DEFAULT_FOLDER)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()
    figures = run(images=args.images, texts=args.texts, folder=args.folder, seed=args.seed)
    if args.json:
        print(json.dumps(figures, indent=1, default=str))


if __name__ == "__main__":
    main()
