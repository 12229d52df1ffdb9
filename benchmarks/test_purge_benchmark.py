"""The purge benchmark still runs (tiny size, no page load; figures come from running it by
hand). PostgreSQL only: it measures dropping day partitions."""

import pytest


@pytest.mark.django_db(transaction=True)  # VACUUM cannot run inside a transaction
def test_the_purge_benchmark_runs(db_vendor, capsys):
    if db_vendor != "postgresql":
        pytest.skip("the partition purge is PostgreSQL's (CI runs this on PostgreSQL)")
    from benchmarks import purge

    figures = purge.run(rows=2000, drops=2, page_load=False)
    assert figures["baseline"]["rows"] > 0 and figures["ours"][0]["rows"] > 0
    out = capsys.readouterr().out
    assert "less WAL" in out and "where the slowest drop" in out
    assert any("DROP TABLE" in sql for _, sql in figures["ours"][0]["statements"])
