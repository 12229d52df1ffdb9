"""The quality benchmark still runs (at a tiny size; the figures come from running it by hand:
.venv/bin/python benchmarks/quality.py)."""

import json

from benchmarks import quality
from samples import fingerprints
from samples.quality import dataset


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


def test_the_set_is_generated_the_same_way_every_time(tmp_path):
    first = dataset.generate(tmp_path / "a", images=2, texts=3, workers=1)
    second = dataset.generate(tmp_path / "b", images=2, texts=3, workers=1)
    assert first == second
    assert json.loads((tmp_path / "a" / "manifest.json").read_text()) == first
    for entry in first["images"]:
        assert (tmp_path / "a" / entry["file"]).read_bytes() == (
            tmp_path / "b" / entry["file"]
        ).read_bytes()
