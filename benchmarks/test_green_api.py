"""The green API benchmark still runs (a tiny size; figures come from full runs)."""

import pytest


@pytest.mark.django_db
def test_the_green_api_benchmark_runs(capsys):
    from audit.models import Result
    from benchmarks import green_api

    figures = green_api.run(requests=3, warmup=1)
    for kind in ("token", "signed"):
        assert figures[kind]["rps"] > 0 and figures[kind]["p95"] > 0
    assert not Result.objects.exists()
    assert "signature checking costs" in capsys.readouterr().out
