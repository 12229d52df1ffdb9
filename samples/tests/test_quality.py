"""The quality benchmark still runs (at a tiny size; the figures come from running it by hand:
.venv/bin/python benchmarks/quality.py)."""

import io
import json
import random

import numpy as np
from PIL import Image

from benchmarks import quality
from samples import fingerprints
from samples.quality import dataset, hard_edits


def test_the_quality_benchmark_scores_every_transform_and_edit(tmp_path):
    lines = []
    # 11 images: one of each kind of picture, the last a flat one.
    figures = quality.run(images=11, texts=8, folder=tmp_path, workers=1, out=lines.append)

    transforms = figures["images"]["transforms"]
    assert set(transforms) == set(dataset.IMAGE_TRANSFORMS)
    for row in transforms.values():
        assert 0 <= row["recall"] <= 1 and 0 <= row["plain_pdq"] <= 1
        assert 0 <= row["recall_flat"] <= 1
    assert 0 <= figures["images"]["fpr"] <= 1
    # At the matcher's own THUMB_DISTANCE the sweep gives the matcher's figures.
    own = figures["images"]["thumb_sweep"][fingerprints.THUMB_DISTANCE]
    assert own["lowest_recall"] == min(row["recall"] for row in transforms.values())
    assert own["false_positives"] == round(figures["images"]["fpr"] * figures["images"]["pairs"])
    edits = figures["texts"]["edits"]
    assert set(edits) <= set(dataset.TEXT_EDITS) and "look-alikes" in edits
    assert all(0 <= row["recall"] <= 1 for row in edits.values())
    assert figures["timings"]["image_ms"] > 0 and figures["timings"]["text_ms"] > 0
    printed = "\n".join(lines)
    assert all(name in printed for name in dataset.IMAGE_TRANSFORMS)
    assert figures["images"]["pairs"] == 11 * 11  # the hard negatives are not among these
    _assert_hard_scores(figures["images"]["hard"], lines)


def _assert_hard_scores(hard: dict, lines: list[str]) -> None:
    assert list(hard["edits"]) == list(hard_edits.HARD_TRANSFORMS)
    for row in hard["edits"].values():
        assert row["copies"] == 11
        assert 0 <= row["plain_pdq"] <= 1 and 0 <= row["recall"] <= 1
    # Each edit's line, marked where our matcher misses the target.
    for transform, row in hard["edits"].items():
        (line,) = [line for line in lines if line.startswith(f"{transform} ")]
        assert line.endswith("< target") == (row["recall"] < quality.HARD_TARGET), line
    false = hard["false_positives"]
    assert false["hard negative a x b"]["pairs"] == 11 * 2  # 11 pairs, both ways round
    assert false["source x hard negative"]["pairs"] == 11 * 22 * 2
    assert false["hard copy x other source"]["pairs"] == 11 * 10 * 10
    for label in ("hard negative a x b", "source x hard negative", "hard copy x other source"):
        assert false[label]["false_positives"] == round(false[label]["fpr"] * false[label]["pairs"])
    by_kind = false["hard pairs by kind"]
    assert set(by_kind) == set(hard_edits.HARD_NEGATIVES)
    assert sum(row["pairs"] for row in by_kind.values()) == 22
    assert json.loads(json.dumps(hard))["edits"]


def test_the_quality_benchmark_skips_the_hard_set_when_asked(tmp_path, monkeypatch, capsys):
    argv = ["quality.py", "--images", "2", "--texts", "2", "--workers", "1", "--no-hard"]
    monkeypatch.setattr("sys.argv", [*argv, "--folder", str(tmp_path), "--json"])
    quality.main()

    printed = capsys.readouterr().out
    figures = json.loads(printed[printed.index("\n{") :])
    assert "hard" not in figures["images"] and "HARD IMAGES" not in printed
    assert not list((tmp_path / "images").glob("hneg-*"))


def test_the_set_is_generated_the_same_way_every_time(tmp_path):
    first = dataset.generate(tmp_path / "a", images=2, texts=3, workers=1)
    second = dataset.generate(tmp_path / "b", images=2, texts=3, workers=1)
    assert first == second
    assert json.loads((tmp_path / "a" / "manifest.json").read_text()) == first
    for entry in first["images"]:
        assert (tmp_path / "a" / entry["file"]).read_bytes() == (
            tmp_path / "b" / entry["file"]
        ).read_bytes()


def test_the_hard_copies_and_negatives_are_the_same_every_time():
    _, kind, _, source = dataset.image_group(0, 3)[0]

    first = hard_edits.hard_copies(0, 3, kind, source)
    assert hard_edits.hard_copies(0, 3, kind, source) == first
    assert [transform for _, _, transform, _ in first] == list(hard_edits.HARD_TRANSFORMS)
    assert hard_edits.hard_copies(1, 3, kind, source) != first  # the seed matters
    for number in range(4):  # one of each kind of hard negative
        pair = hard_edits.hard_negative_files(0, number)
        assert hard_edits.hard_negative_files(0, number) == pair
        assert [what for _, _, what, _ in pair] == [hard_edits.HARD_NEGATIVES[number]] * 2


def test_adding_the_hard_set_leaves_the_other_items_as_they_were(tmp_path):
    plain = dataset.generate(tmp_path / "a", images=2, texts=1, workers=1, hard=False)
    with_hard = dataset.generate(tmp_path / "b", images=2, texts=1, workers=1)

    hard = [e for e in with_hard["images"] if e.get("set") == "hard"]
    assert [e for e in with_hard["images"] if e not in hard] == plain["images"]
    assert len(hard) == 2 * len(hard_edits.HARD_TRANSFORMS) + 2 * 2
    for entry in plain["images"]:
        assert (tmp_path / "a" / entry["file"]).read_bytes() == (
            tmp_path / "b" / entry["file"]
        ).read_bytes()


def test_region_negatives_are_two_different_informative_windows():
    for number in range(0, 24, 4):  # region pairs
        for seed in (0, 2):
            (_, _, what, a), (_, _, _, b) = hard_edits.hard_negative_files(seed, number)
            assert what == "region"
            assert a != b
            assert min(_quality(a), _quality(b)) >= fingerprints.PDQ_MIN_QUALITY
            assert _grey_difference(a, b) >= hard_edits.REGION_MIN_DIFFERENCE


def test_a_window_pair_of_the_same_pixels_or_a_flat_area_is_drawn_again():
    photo = dataset.encode(dataset.draw_photo(random.Random(1), 400, 300), "JPEG", 90)
    other = dataset.encode(dataset.draw_photo(random.Random(2), 400, 300), "JPEG", 90)
    flat = dataset.encode(Image.new("RGB", (400, 300), (90, 120, 200)), "JPEG", 90)

    assert hard_edits.region_acceptable(photo, other)
    assert not hard_edits.region_acceptable(photo, photo)
    assert not hard_edits.region_acceptable(photo, flat)


def test_region_windows_overlap_by_at_most_a_tenth():
    # Each pixel of the large picture says where it is: the windows tell where they came from.
    w, h = 1000, 800
    ys, xs = np.mgrid[0:h, 0:w]
    big = Image.fromarray(
        np.dstack([xs % 256, xs // 256 * 64 + ys // 256, ys % 256]).astype(np.uint8)
    )
    for n in range(50):
        a, b = hard_edits._windows(random.Random(n), big)
        assert a.size == b.size and 0.4 * w - 1 <= a.width <= 0.5 * w + 1
        overlap = _overlap(_origin(a), _origin(b), a.size)
        assert overlap <= 0.1 * a.width * a.height + a.width + a.height, n


def _origin(window: Image.Image) -> tuple[int, int]:
    r, g, b = window.getpixel((0, 0))
    return r + (g // 64) * 256, b + (g % 64) * 256


def _overlap(a: tuple[int, int], b: tuple[int, int], size: tuple[int, int]) -> int:
    across = max(0, size[0] - abs(a[0] - b[0]))
    down = max(0, size[1] - abs(a[1] - b[1]))
    return across * down


def _quality(data: bytes) -> int:
    return fingerprints.image_fingerprint(data).quality


def _grey_difference(a: bytes, b: bytes) -> float:
    grey = [
        np.asarray(Image.open(io.BytesIO(data)).convert("L").resize((32, 32)), dtype=np.float32)
        for data in (a, b)
    ]
    return float(np.abs(grey[0] - grey[1]).mean())


def test_the_quality_benchmark_scores_a_set_generated_before_when_asked(tmp_path, monkeypatch):
    dataset.generate(tmp_path, images=2, texts=2, seed=5, workers=1)
    monkeypatch.setattr(dataset, "generate", lambda *args, **kwargs: 1 / 0)  # not again
    lines = []
    figures = quality.run(
        images=2, texts=2, folder=tmp_path, seed=5, workers=1, reuse=True, out=lines.append
    )
    assert "already in" in lines[0] and figures["images"]["pairs"] == 2 * 2
