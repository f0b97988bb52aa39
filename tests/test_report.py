
from seqcopy.config import RunConfig
from seqcopy.results.report import build_report, first_reaching, mean_std
from seqcopy.runs.schema import EPOCH_METRICS
from seqcopy.runs.store import Store


def epoch_row(epoch, copy_acc, seconds=30.0):
    row = {name: 0.5 for name in EPOCH_METRICS}
    row.update(epoch=epoch, test_copy_acc=copy_acc, test_seq_acc=copy_acc / 2, seconds=seconds,
               stage_output_len=4, stage_seq_len=4)
    return row


def record(store, config, copy_accs):
    run_id = store.submit(config)
    store.claim("w")
    for epoch, acc in enumerate(copy_accs, start=1):
        store.record_epoch(run_id, "w", epoch_row(epoch, acc))
    store.finish(run_id, "w", "completed")
    return run_id


def test_mean_std_and_first_reaching():
    assert mean_std([0.5, 0.7]) == "0.600 ± 0.141"
    assert mean_std([0.25]) == "0.250"
    history = [epoch_row(1, 0.5), epoch_row(2, 0.95), epoch_row(3, 0.995)]
    assert first_reaching(history, 0.9) == (2, 1.0)
    assert first_reaching(history, 0.999) is None


def test_report_groups_by_tag_and_cell(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    base = RunConfig(cell="lstm", epochs=3, tag="demo")
    record(store, base.replace(seed=0), [0.5, 0.95, 0.99])
    record(store, base.replace(seed=1), [0.5, 0.91, 0.97])
    record(store, base.replace(cell="gru", seed=0), [0.1, 0.1, 0.1])
    store.submit(base.replace(cell="rnn"))  # queued: not in the report
    text = build_report(store)
    lstm = next(line for line in text.splitlines() if line.startswith("| lstm"))
    gru = next(line for line in text.splitlines() if line.startswith("| gru"))
    assert "2 (0, 1)" in lstm and "0.980 ± 0.014" in lstm  # final copy accuracies 0.99 and 0.97
    assert "2.0 ± 0.0 ep" in lstm  # both reached 90% at epoch 2
    assert "not reached by 1/2" in lstm  # only seed 0 reached 99%
    assert "not reached by 1/1" in gru
    assert "| rnn" not in text
    assert "### demo" in text


def test_without_by_each_row_holds_the_seeds_of_one_configuration(tmp_path, capsys):
    """Two train lengths × 3 seeds: two rows of seeds 0, 1, 2 (not one of 0, 0, 1, 1, 2, 2), as
    Compare groups by everything that varies but the seed."""
    from seqcopy.cli import commands as cli

    url = f"sqlite:///{tmp_path / 'lengths.db'}"
    store = Store(url)
    base = RunConfig(cell="lstm", epochs=2, tag="lengths", train_output_len=4)
    for k, finals in ((8, (0.9, 0.8, 0.7)), (4, (0.99, 0.98, 0.97))):
        for seed, final in enumerate(finals):
            record(store, base.replace(seed=seed, train_seq_len=k), [0.5, final])
    assert cli.main(["report", "--db", url]) == 0
    text = capsys.readouterr().out
    assert text == build_report(store) + "\n"
    rows = [line for line in text.splitlines() if line.startswith("| lstm")]
    assert rows == [row for row in rows if "| 3 (0, 1, 2) |" in row] and len(rows) == 2
    assert rows[0].startswith("| lstm | 4 |") and rows[1].startswith("| lstm | 8 |")  # numbers in order
    assert "| 0.980 ± 0.010 |" in rows[0] and "| 0.800 ± 0.100 |" in rows[1]
    header = next(line for line in text.splitlines() if line.startswith("| cell"))
    assert header.startswith("| cell | train_seq_len | seeds |")
    separator = text.splitlines()[text.splitlines().index(header) + 1]
    assert separator.count("|") == header.count("|")  # a column the markdown table knows of


def test_failed_runs_are_named_below_their_table(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'f.db'}")
    base = RunConfig(cell="lstm", epochs=3, tag="demo")
    record(store, base.replace(seed=0), [0.5, 0.95, 0.99])
    diverged = store.submit(base.replace(cell="mgru", seed=100))
    store.claim("w")
    store.record_epoch(diverged, "w", epoch_row(1, 0.1))
    store.finish(diverged, "w", "failed", error="training diverged at epoch 2, batch 7: the loss is nan\nmore")
    alone = store.submit(base.replace(tag="only failures", seed=0))
    store.claim("w")
    store.finish(alone, "w", "failed", error="RuntimeError: out of memory")
    text = build_report(store)
    assert "- mgru seed 100, after 1 of 3 epochs: training diverged at epoch 2, batch 7: the loss is nan" in text
    assert "more" not in text  # only the first line of the reason
    assert "| mgru" not in text  # not averaged into the table
    assert "### only failures" in text and "- lstm seed 0, after 0 of 3 epochs: RuntimeError: out of memory" in text
    assert "### only failures" not in build_report(store, tags=["demo"])


def test_empty_store(tmp_path):
    assert "No completed runs" in build_report(Store(f"sqlite:///{tmp_path / 'e.db'}"))


def test_the_settings_line_names_every_option_off_its_default(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    base = RunConfig(cell="lstm", epochs=2, tag="tuned", init="scaled", lr_schedule="cosine", fresh_data=True)
    record(store, base.replace(seed=0), [0.5, 0.6])
    record(store, base.replace(seed=1, lr=0.01), [0.5, 0.6])
    text = build_report(store)
    assert "--init scaled" in text and "--lr-schedule cosine" in text and "--fresh-data" in text
    assert "--clip" not in text  # at its default
    assert "differs between runs: lr" in text and "lr varies" in text


def test_copy_frontier_is_the_longest_stage_copied_on_unseen_sequences(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'f.db'}")
    config = RunConfig(cell="lstm", epochs=3, tag="frontier", curriculum=True, fresh_data=True,
                       curriculum_threshold=0.99)

    def run_with_stages(seed, stages_and_accs, fresh=True):
        run_id = store.submit(config.replace(seed=seed, fresh_data=fresh))
        store.claim("w")
        for epoch, (stage, acc) in enumerate(stages_and_accs, start=1):
            row = epoch_row(epoch, 0.5)
            row.update(stage_output_len=stage, train_copy_acc=acc)
            store.record_epoch(run_id, "w", row)
        store.finish(run_id, "w", "completed")

    run_with_stages(0, [(2, 0.995), (4, 0.999), (8, 0.95)])  # 4 is the longest copied stage
    run_with_stages(1, [(2, 0.98), (2, 0.985), (2, 0.97)])  # never reached 99%
    lstm = next(line for line in build_report(store).splitlines() if line.startswith("| lstm"))
    assert lstm.endswith("| 4, none |")

    store_fixed = Store(f"sqlite:///{tmp_path / 'fixed.db'}")
    record(store_fixed, config.replace(fresh_data=False), [0.5, 0.6, 0.7])
    assert "copy frontier" not in build_report(store_fixed)  # a reused training set flatters
    store_early = Store(f"sqlite:///{tmp_path / 'early.db'}")
    record(store_early, config.replace(curriculum_threshold=0.9), [0.5, 0.6, 0.7])
    assert "copy frontier" not in build_report(store_early)  # stages left before mastered


# ---------------------------------------------------------------------------- report --by
def by_store(tmp_path):
    """lstm at K = 4 and 8 with three seeds each, gru at K = 4 with one seed, and a failed run."""
    store = Store(f"sqlite:///{tmp_path / 'by.db'}")
    base = RunConfig(cell="lstm", epochs=2, tag="lengths", train_output_len=4)
    for seed, final in enumerate((0.9, 0.8, 0.4)):
        record(store, base.replace(seed=seed, train_seq_len=4), [0.5, final])
    for seed, final in enumerate((0.95, 0.91, 0.97)):
        record(store, base.replace(seed=seed, train_seq_len=8), [0.92, final])
    record(store, base.replace(cell="gru", seed=0, train_seq_len=4), [0.1, 0.3])
    failed = store.submit(base.replace(cell="gru", seed=1, train_seq_len=8))
    store.claim("w")
    store.finish(failed, "w", "failed", error="training diverged at epoch 1, batch 2: the loss is nan")
    return store


def row_of(text: str, cell: str, value: int) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {cell} | {value} |"))
    return [part.strip() for part in line.strip("|").split("|")]


def test_report_by_a_setting_gives_one_row_per_cell_and_value_with_the_standard_error(tmp_path):
    import math
    import statistics

    from seqcopy.results.report import build_by_report

    store = by_store(tmp_path)
    text = build_by_report(store, "train_seq_len")
    values = [0.9, 0.8, 0.4]
    se = statistics.stdev(values) / math.sqrt(3)
    row = row_of(text, "lstm", 4)
    assert row[2] == "3 (0, 1, 2)"
    assert row[3] == f"{statistics.fmean(values):.3f} ± {se:.3f}"  # test copy acc
    assert row[6] == "not reached by 2/3"  # only seed 0 reached 90%
    assert row_of(text, "lstm", 8)[6] == "1.0 ± 0.0"  # every seed at epoch 1
    assert row_of(text, "gru", 4)[3] == "0.300"  # one seed: no spread
    assert "| test copy acc (± SE) |" in text
    lines = text.splitlines()
    assert (lines.index(next(line for line in lines if line.startswith("| lstm | 4")))
            < lines.index(next(line for line in lines if line.startswith("| lstm | 8"))))
    assert "- gru seed 1, after 0 of 2 epochs: training diverged" in text  # named, not averaged
    assert "standard error (std/√n)" in text and "chance 1/9" in text
    assert "also mixes" not in text  # N is the same in every row
    t_row = row_of(build_by_report(store, "train_seq_len", error="ci95"), "lstm", 4)
    assert t_row[3] == f"{statistics.fmean(values):.3f} ± {4.302653 * se:.3f}"  # t(0.975, 2) = 4.3027


def test_report_by_from_the_command_line(tmp_path, capsys):
    from seqcopy.cli import commands as cli

    by_store(tmp_path)
    url = f"sqlite:///{tmp_path / 'by.db'}"
    assert cli.main(["report", "--by=-iseq", "--error", "std", "--db", url]) == 0
    out = capsys.readouterr().out
    assert "| cell | train_seq_len | seeds | test copy acc (± std) |" in out
    for argv, needle in ((["--by", "bogus"], "unknown setting 'bogus'"), (["--by", "cell"], "one per cell already"),
                         (["--by", "tag"], "a tag names runs, it is not a setting"),
                         (["--error", "se"], "--error goes with --by"),
                         (["--by", "lr", "--sweep", "9"], "no sweep with id 9")):
        assert cli.main(["report", *argv, "--db", url]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err, err


def test_report_by_warns_when_a_row_averages_different_configurations(tmp_path):
    from seqcopy.results.report import build_by_report

    store = Store(f"sqlite:///{tmp_path / 'mixed.db'}")
    base = RunConfig(cell="lstm", epochs=1, tag="mixed", train_seq_len=8, train_output_len=4)
    record(store, base.replace(seed=0), [0.5])
    record(store, base.replace(seed=1, hidden_size=64), [0.6])
    record(store, base.replace(seed=0, train_seq_len=16, train_output_len=16), [0.2])  # tied to K: fine
    text = build_by_report(store, "train_seq_len")
    assert "Each row also mixes runs that differ in hidden_size:" in text


def test_the_two_multiplicative_forms_are_rows_of_their_own(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'forms.db'}")
    base = RunConfig(cell="mlstm", epochs=2, tag="forms")
    record(store, base.replace(seed=0), [0.3, 0.5])
    record(store, base.replace(seed=0, mult_form="input"), [0.6, 0.9])
    record(store, base.replace(cell="lstm", seed=0, mult_form="input"), [0.7, 0.8])  # no second form: plain lstm
    text = build_report(store)
    rows = [line for line in text.splitlines() if line.startswith("| ") and "seeds" not in line]
    assert [row.split(" | ")[0] for row in rows] == ["| lstm", "| mlstm", "| mlstm (input form)"]
    assert "0.500" in rows[1] and "0.900" in rows[2]
    assert "mult" not in text.split("| cell")[0]  # the form is in the rows, not a 'differs between runs' setting


# ---------------------------------------------------------------------------- solved and verdicts
def test_the_solved_column_counts_seeds_that_reached_99_percent_with_wilsons_interval(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'solved.db'}")
    base = RunConfig(cell="lstm", epochs=3, tag="demo")
    for seed, accs in enumerate(([0.5, 0.99, 0.98], [0.5, 0.9, 0.995], [0.3, 0.4, 0.5])):
        record(store, base.replace(seed=seed), accs)
    lstm = next(line for line in build_report(store).splitlines() if line.startswith("| lstm"))
    assert "| 2/3 [0.21, 0.94] |" in lstm  # reached at some epoch counts, as the 'to 99%' column beside it
    assert "solved (≥ 99%, Wilson 95%)" in build_report(store)
    assert "| 3/3 [0.44, 1.00] |" in build_report(store, solved_at=0.5)


def verdict_store(tmp_path):
    """lstm, gru and mgru at K = 4 and 8 on seeds 0–2; at K = 8 gru ran seeds 3–5 instead."""
    store = Store(f"sqlite:///{tmp_path / 'verdicts.db'}")
    base = RunConfig(epochs=1, tag="lengths", train_output_len=4)
    finals = {("lstm", 4): (0.61, 0.72, 0.55), ("gru", 4): (0.70, 0.80, 0.66), ("mgru", 4): (0.50, 0.80, 0.60),
              ("lstm", 8): (0.40, 0.45, 0.42), ("gru", 8): (0.41, 0.50, 0.38)}
    for (cell, k), values in finals.items():
        seeds = range(3, 6) if (cell, k) == ("gru", 8) else range(3)
        for seed, value in zip(seeds, values, strict=True):
            record(store, base.replace(cell=cell, seed=seed, train_seq_len=k), [value])
    return store


def test_report_against_a_cell_pairs_the_same_seeds_and_says_what_is_clear(tmp_path):
    from scipy import stats

    from seqcopy.results.report import build_verdict_report

    text = build_verdict_report(verdict_store(tmp_path), "lstm", by="train_seq_len")
    gru4, mgru4, gru8 = (row_of_verdict(text, k, cell) for k, cell in ((4, "gru"), (4, "mgru"), (8, "gru")))
    paired = stats.ttest_rel([0.70, 0.80, 0.66], [0.61, 0.72, 0.55])
    assert gru4[2] == "3 / 3 (paired)" and gru4[6] == "paired t-test" and gru4[7] == f"{paired.pvalue:.3f}"
    assert gru4[5].startswith("+0.093 [") and gru4[9].startswith("clear: higher by 0.093")
    assert gru4[8] == "0.250"  # the exact sign-flip test: 2 of 8 flips as extreme
    assert mgru4[9].startswith("not clear") and "3 seeds cannot decide" in mgru4[9]
    welch = stats.ttest_ind([0.41, 0.50, 0.38], [0.40, 0.45, 0.42], equal_var=False)
    assert gru8[2] == "3 / 3" and gru8[6] == "Welch's t-test" and gru8[7] == f"{welch.pvalue:.3f}"
    assert not any(line.startswith("| 4 | lstm |") for line in text.splitlines())  # no row against itself
    assert "runs of one seed share their data" in text and "Not corrected for multiple comparisons" in text


def row_of_verdict(text: str, value, cell: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {value} | {cell} |"))
    return [part.strip() for part in line.strip("|").split("|")]


def test_report_against_from_the_command_line(tmp_path, capsys):
    from seqcopy.cli import commands as cli

    verdict_store(tmp_path)
    url = f"sqlite:///{tmp_path / 'verdicts.db'}"
    assert cli.main(["report", "--by", "iseq", "--against", "lstm", "--db", url]) == 0
    assert "| train_seq_len | cell | seeds (cell / lstm) |" in capsys.readouterr().out
    assert cli.main(["report", "--against", "gru", "--metric", "test_loss", "--db", url]) == 0
    out = capsys.readouterr().out
    assert "| tag | cell |" in out and "| lengths | lstm |" in out  # without --by: one row per tag and cell
    for argv, needle in ((["--against", "rnn"], "no completed run of the cell 'rnn'"),
                         (["--metric", "test_loss"], "--metric goes with --against"),
                         (["--against", "lstm", "--by", "iseq", "--error", "se"], "--error goes with --by"),
                         (["--solved-at", "1.5"], "--solved-at 1.5")):
        assert cli.main(["report", *argv, "--db", url]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err, err
