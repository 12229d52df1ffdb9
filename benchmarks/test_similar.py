"""The similar-image benchmark still runs and stays exact (at a tiny size)."""

from benchmarks import similar


def test_the_similar_benchmark_finds_every_planted_match(capsys):
    figures = similar.main(["--size", "5000", "--queries", "20", "--repeat", "1"])
    assert figures["recall"] == 1.0
    assert figures["decoys_returned"] == 0 and figures["same_as_numpy"]
    assert figures["ours_p99"] > 0 and figures["numpy_p99"] > 0
    assert "ratio" in capsys.readouterr().out


def test_the_cropped_forms_benchmark_finds_the_same_as_a_flat_index(capsys):
    figures = similar.main(["--crops", "7", "--size", "2000", "--queries", "20", "--repeat", "1"])
    assert figures["recall"] == 1.0 and figures["same_as_flat"]
    assert figures["codes"] == 14000 and figures["multi_p99"] > 0 and figures["flat_p99"] > 0
    assert "ratio" in capsys.readouterr().out


def test_the_pdq_forms_benchmark_finds_the_same_as_a_flat_index_to_40_bits(capsys):
    figures = similar.main(
        ["--crops", "8", "--radius", "40", "--size", "2000", "--queries", "20", "--repeat", "1"]
    )
    assert figures["recall"] == 1.0 and figures["same_as_flat"]
    assert "0..40 bits" in capsys.readouterr().out
