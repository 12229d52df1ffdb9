"""The propagation and scan benchmarks still run (tiny sizes; figures come from full runs)."""

import pytest


@pytest.mark.django_db
def test_the_propagation_benchmark_runs(capsys):
    from audit.models import ResultFingerprint
    from benchmarks import propagation
    from benchmarks.common import ensure_rows

    ensure_rows(300)  # seed_demo fingerprints small stores: drop their PDQ for the backfill
    ResultFingerprint.objects.filter(kind="pdq").delete()
    # In-process: no worker subprocess under pytest (and no commit for on_commit to fire).
    figures = propagation.run(decisions=2, targets=5, ensure=300, worker=False, seed=1)
    assert figures["variant"] == "in-process"
    assert figures["pdq_added"] > 0
    assert figures["p50"] > 0 and figures["p95"] >= figures["p50"]
    assert figures["changed"] == [5, 5, 5]  # the warm-up and both timed decisions
    assert figures["baseline"]["changed"] == [5, 5, 5]
    assert "queue hop" in capsys.readouterr().out


@pytest.mark.django_db
def test_the_scan_benchmark_runs(capsys):
    from audit.models import Result
    from benchmarks import scan

    figures = scan.run(samples=20, repeat=2, lookups=3, pictures=5)
    assert figures["samples"] == 22  # 10 random images, 10 random texts, the 2 planted
    assert figures["crop_codes"] >= 10 * 3
    # The hard copy (cropped, resized, JPEG 60) is answered block too: by crophash.
    for kind in ("text", "image_before", "image", "image_hard"):
        assert figures[kind]["recall"] == 1.0, kind
        assert figures[kind]["scan"]["p95"] > 0 and figures[kind]["ingest"]["p95"] > 0
    assert figures["lookup"]["found"] and figures["lookup"]["p99"] > 0
    assert not Result.objects.exists()  # what the run stored is gone
    assert "recall 100%" in capsys.readouterr().out
