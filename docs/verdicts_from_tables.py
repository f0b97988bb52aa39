"""The verdicts of docs/results.md, computed with `seqcopy report --against` over the numbers the
page lists (the runs themselves are not in this checkout's store).

    PYTHONPATH=. python docs/verdicts_from_tables.py

- Copies of 20 symbols: the page lists each seed's final test copy accuracy for LSTM (1.000 on
  every seed), GRU and mLSTM, so those are recorded as runs of seeds 0, 42 and 100 and compared
  paired by seed, exactly as `report --against lstm` compares real runs. mGRU's seeds are not
  listed one by one, so it is left out.
- The length study lists mean ± SE (n = 3) only. Three pseudo-seeds m − s, m, m + s with
  s = SE·√3 have exactly that mean and standard error, and Welch's t-test depends on nothing else,
  so giving each cell its own pseudo-seeds makes `report --against` run Welch's test from the
  table's summary. The paired test the real runs would get needs the sweep's store:
  `seqcopy report --by train_seq_len --sweep 1 --against lstm`. The table's three decimals limit
  what this can say about differences near 0.001.
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from seqcopy.cli import commands  # noqa: E402
from seqcopy.config import RunConfig  # noqa: E402
from seqcopy.runs.schema import EPOCH_METRICS  # noqa: E402
from seqcopy.runs.store import Store  # noqa: E402

COPY_20 = {  # final test copy accuracy by seed, as the page's text gives them
    "lstm": {0: 1.000, 42: 1.000, 100: 1.000},
    "gru": {0: 0.986, 42: 0.983, 100: 0.998},
    "mlstm": {0: 0.942, 42: 0.33, 100: 0.29},
}
LENGTH_STUDY = {  # (cell, K): (mean, SE) of the final test copy accuracy over seeds 0, 1, 2
    ("rnn", 4): (1.000, 0.000), ("rnn", 8): (0.724, 0.255), ("rnn", 16): (0.174, 0.065), ("rnn", 40): (0.117, 0.008),
    ("lstm", 4): (1.000, 0.000), ("lstm", 8): (0.975, 0.010), ("lstm", 16): (0.687, 0.034),
    ("lstm", 40): (0.140, 0.013),
    ("gru", 4): (1.000, 0.000), ("gru", 8): (0.955, 0.017), ("gru", 16): (0.459, 0.103), ("gru", 40): (0.191, 0.035),
    ("mlstm", 4): (0.998, 0.002), ("mlstm", 8): (0.816, 0.043), ("mlstm", 16): (0.272, 0.035),
    ("mlstm", 40): (0.154, 0.008),
    ("mgru", 4): (1.000, 0.000), ("mgru", 8): (0.919, 0.019), ("mgru", 16): (0.536, 0.091),
    ("mgru", 40): (0.228, 0.018),
}
CELLS = ("rnn", "lstm", "gru", "mlstm", "mgru")


def record(store: Store, config: RunConfig, final: float) -> None:
    run_id = store.submit(config)
    store.claim("docs")
    row = {name: 0.0 for name in EPOCH_METRICS} | {"epoch": 1, "test_copy_acc": final, "seconds": 60.0,
                                                   "stage_output_len": config.train_output_len,
                                                   "stage_seq_len": config.train_seq_len}
    store.record_epoch(run_id, "docs", row)
    store.finish(run_id, "docs", "completed")


def main() -> int:
    folder = Path(tempfile.mkdtemp(prefix="seqcopy-docs-"))
    copy20, lengths = f"sqlite:///{folder / 'copy20.db'}", f"sqlite:///{folder / 'lengths.db'}"
    store = Store(copy20)
    base = RunConfig(train_seq_len=20, train_output_len=20, test_seq_len=20, test_output_len=20, epochs=1,
                     tag="copy20")
    for cell, finals in COPY_20.items():
        for seed, final in finals.items():
            record(store, base.replace(cell=cell, seed=seed), final)
    store.close()
    store = Store(lengths)
    for (cell, k), (mean, se) in LENGTH_STUDY.items():
        spread = se * math.sqrt(3)
        for offset, final in enumerate((mean - spread, mean, mean + spread)):
            seed = 10 * CELLS.index(cell) + offset  # each cell its own seeds: nothing to pair
            record(store, RunConfig(cell=cell, seed=seed, train_seq_len=k, train_output_len=k, epochs=1,
                                    tag="lengths"), final)
    store.close()
    print("## Copies of 20 symbols, paired by seed\n")
    commands.main(["report", "--against", "lstm", "--db", copy20])
    print("\n## The length study, Welch's test from the table's mean ± SE\n")
    commands.main(["report", "--by", "train_seq_len", "--against", "lstm", "--db", lengths])
    print("\n## The length study against GRU\n")
    commands.main(["report", "--by", "train_seq_len", "--against", "gru", "--db", lengths])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
