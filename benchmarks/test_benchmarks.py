"""The benchmarks still run (at a tiny size; the figures come from running them by hand)."""

import pytest

from moderation_console.celery import app as celery_app


@pytest.mark.django_db
def test_the_audit_page_benchmark_runs():
    from benchmarks import audit_page

    figures = audit_page.run(ensure=1500, depth=2, repeat=1)
    assert len(figures) == 8 and all(ms > 0 for ms in figures.values())


@pytest.mark.django_db
def test_the_ingest_benchmark_runs(capsys):
    from benchmarks import ingest

    celery_app.conf.task_always_eager = False  # queue the fetches (their URLs go nowhere)
    rates = ingest.run(batches=2, ensure=0, warmup=1)
    assert rates["ours"] > 0 and rates["naive"] > 0
    assert "ratio" in capsys.readouterr().out
