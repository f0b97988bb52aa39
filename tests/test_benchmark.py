import argparse
import json

import pytest

from seqcopy.core import benchmark
from seqcopy.core.cells import CELL_NAMES


def _args(*argv):
    parser = argparse.ArgumentParser()
    benchmark.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_quick_benchmark_json(capsys, tmp_path):
    """One run times every cell (both forms of mLSTM and mGRU) at each thread count of the grid."""
    assert benchmark.run(_args("--quick", "--json", "--threads", "1,2")) == 0
    text = capsys.readouterr().out
    report = json.loads(text)
    saved = tmp_path / "report.json"
    saved.write_text(text)
    assert benchmark.run(_args("--from-json", str(saved), "--markdown")) == 0
    table = capsys.readouterr().out.splitlines()
    assert "| cell | 1 thread: ms/step | vs original-style | vs torch's fused | 2 threads: ms/step" in table[2]
    assert sum(line.startswith("| mlstm (input) |") for line in table) == 1
    assert len([line for line in table if line.startswith("| ")]) == 1 + 7  # header and one row per cell and form
    assert report["threads"] == [1, 2]
    assert set(report["matmul_peak_gflops"]) == {"1", "2"}
    rows = report["settings"]["quick"]["rows"]
    keys = {(r["cell"], r["mult_form"], r["threads"]) for r in rows}
    expected = {(cell, None, threads) for cell in ("rnn", "lstm", "gru") for threads in (1, 2)}
    expected |= {(cell, form, threads)
                 for cell in ("mlstm", "mgru") for form in ("krause", "input") for threads in (1, 2)}
    assert keys == expected and len(rows) == len(expected)
    assert {r["cell"] for r in rows} == set(CELL_NAMES)
    for figures in rows:
        for key in ("ms_per_step", "original_ms", "torch_ms", "vs_original", "vs_torch", "gflops", "peak_share"):
            assert figures[key] > 0, key
        assert figures["vs_torch"] == pytest.approx(figures["ms_per_step"] / figures["torch_ms"])
    assert "load_average" in report


def test_text_report_names_forms_and_thread_counts(capsys):
    assert benchmark.run(_args("--quick", "--threads", "1", "--cells", "mgru", "--forms", "input")) == 0
    text = capsys.readouterr().out
    assert "mgru (input)" in text and "1 thread(s)" in text and "mgru (krause)" not in text


@pytest.mark.parametrize("argv, message", [
    (["--threads", "0"], "--threads"),
    (["--threads", "one"], "--threads"),
    (["--forms", "outer"], "--forms"),
    (["--settings", "huge"], "--settings"),
    (["--cells", "tcn"], "--cells"),
    (["--from-json", "/nonexistent/report.json"], "--from-json"),
])
def test_bad_arguments_get_one_line(argv, message):
    problem = benchmark.check_arguments(_args(*argv))
    assert problem.startswith(message) and "\n" not in problem
