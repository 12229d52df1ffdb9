"""The crop code benchmark still runs and finds what the numpy multi-index finds (tiny size)."""

from benchmarks import codes


def test_the_crop_code_benchmark_finds_the_same_as_numpy(capsys):
    figures = codes.main(["--size", "20000", "--pictures", "5", "--real", "20", "--repeat", "1"])
    assert figures["same_as_numpy"] and figures["same_when_loaded"]
    assert figures["codes"] == 20_000 and figures["CodeIndex_p99"] > 0
    assert figures["sources_found"] > 0
    assert "ratio" in capsys.readouterr().out
