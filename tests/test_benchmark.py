import argparse
import json

from seqcopy import benchmark
from seqcopy.cells import CELL_NAMES


def test_quick_benchmark_json(capsys):
    parser = argparse.ArgumentParser()
    benchmark.add_arguments(parser)
    assert benchmark.run(parser.parse_args(["--quick", "--json"])) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["matmul_peak_gflops"] > 0
    cells = report["settings"]["quick"]["cells"]
    assert set(cells) == set(CELL_NAMES)
    for figures in cells.values():
        for key in ("ms_per_step", "seed_ms", "torch_ms", "vs_seed", "vs_torch", "gflops", "peak_share"):
            assert figures[key] > 0, key
