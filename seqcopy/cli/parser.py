"""The command line's parser: every command's flags, each bad one a single line and exit status 2.

The run settings' flags come from their declarations (:mod:`seqcopy.cli.flags`); what each command
does is :mod:`seqcopy.cli.commands`.
"""

from __future__ import annotations

import argparse

from seqcopy.cli.flags import add_config_flags, add_setting_flag
from seqcopy.config import CELL_NAMES, DEVICES
from seqcopy.errors import InputError
from seqcopy.results.report import FINAL_METRICS
from seqcopy.results.search import MAX_TRIALS
from seqcopy.results.spread import ERROR_KINDS
from seqcopy.results.sweeps import GRID_OPTIONS, MAX_RUNS
from seqcopy.runs.capacity import RECENT_S
from seqcopy.runs.schema import DEFAULT_MAX_RESTARTS
from seqcopy.runs.store import DEFAULT_LEASE
from seqcopy.runs.trials import GRID_PRUNERS, PRUNERS, SAMPLERS
from seqcopy.text import parse_id

MAX_RAY_WORKERS = 1024
RECENT_HOURS = RECENT_S // 3600
# The settings `evaluate` may change; the rest (the cell, its sizes, the training length that
# sets the chunks) belong to the model.
TEST_SETTINGS = ("test_seq_len", "test_output_len", "padding", "test_samples", "seed", "device")


class UsageError(InputError):
    """A bad flag or argument."""


class CompactHelp(argparse.HelpFormatter):
    """'-iseq, --train_seq_len, --train-seq-len K' rather than the value's name after each spelling."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if not action.option_strings or action.nargs == 0:
            return super()._format_action_invocation(action)
        value = self._format_args(action, self._get_default_metavar_for_optional(action))
        return f"{', '.join(action.option_strings)} {value}"


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (no usage dump) and exit status 2."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", CompactHelp)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        raise UsageError(message)


def id_argument(kind: str):
    """argparse type of a run (or sweep) id: a positive 63-bit integer, else one line and exit 2."""

    def parse(text: str) -> int:
        try:
            return parse_id(text, kind)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parse


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="SQLAlchemy URL of the runs store (default: $SEQCOPY_DB or sqlite:///runs.db)")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="seqcopy", description="Train and compare recurrent cells on the delayed-copy task.", allow_abbrev=False
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    train = commands.add_parser("train", help="train one run here and now, recorded in the store", allow_abbrev=False)
    add_config_flags(train)
    _add_db(train)

    evaluate = commands.add_parser(
        "evaluate", help="test a saved model (a run or a .pth file) at any length", allow_abbrev=False,
        description="Test a saved model as its training run's test pass does: the state carried across "
        "chunks of the training length. Unset flags take the model's own setting.",
    )
    evaluate.add_argument("model", metavar="RUN_ID|FILE", help="a run id in the store, or a .pth/.pt checkpoint file")
    _add_test_flags(evaluate)
    _add_db(evaluate)

    submit = commands.add_parser(
        "submit", help="queue a grid: cells × seeds × every --sweep; prints the run ids", allow_abbrev=False,
        description="Queue one run per cell × seed × point of every --sweep, all validated before any is "
        "queued, as one sweep. A --preset that carries a grid (length-study) brings its cells, seeds, "
        "sweep and ties; --cells, --seeds, --sweep and --tie replace them.",
    )
    add_config_flags(submit, with_log=False)
    grid = submit.add_argument_group("the grid")
    grid.add_argument("--cells",
                      help=f"comma-separated cells ({','.join(CELL_NAMES)}): {GRID_OPTIONS['cells'][1]}; default: -c")
    grid.add_argument("--seeds", help=f"{GRID_OPTIONS['seeds'][1]}; default: -s")
    grid.add_argument("--sweep", action="append", metavar="SETTING=V1,V2,…",
                      help="several values of any setting, named by field or flag (train_seq_len, iseq, lr, "
                           "hidden_size…; a leading dash needs --sweep=-iseq=…); settings that move together: "
                           f"A,B=a1:b1,a2:b2. Repeat for a product of sweeps; at most {MAX_RUNS} runs in all")
    grid.add_argument("--tie", action="append", metavar="SETTING=OTHER[*F]",
                      help="SETTING follows OTHER (times F) in every run, e.g. train_output_len=train_seq_len")
    grid.add_argument("--sweep-name", metavar="NAME", help=f"the sweep's name, {GRID_OPTIONS['sweep_name'][1]}")
    grid.add_argument("--prune", choices=GRID_PRUNERS, default=None,
                      help="stop runs of the grid that trail the others at the same epoch (Optuna's pruner)")
    grid.add_argument("--objective", default=None,
                      help="with --prune: the epochs metric compared (default test_copy_acc)")
    lineage = submit.add_argument_group("a fork")
    lineage.add_argument("--from", dest="from_run", type=id_argument("run"), metavar="RUN_ID",
                         help="start every run from that finished run's final weights, with its settings as the "
                              "base that the flags change (K, N, lr, epochs, a grid…); a fresh optimiser and the "
                              "run's own schedule from epoch 1. The cell, its form, the embedding and hidden sizes "
                              "must stay. Recorded as 'from #ID @ epoch E'")
    _add_restarts(submit)
    _add_db(submit)

    resume = commands.add_parser(
        "continue", help="more epochs for a finished run, as a new run that continues it", allow_abbrev=False,
        description="Queue a new run that goes on from a completed run's last epoch with its whole resume state "
                    "(weights, optimiser, random streams, curriculum stage), numbering its epochs on from the "
                    "parent's: 'from #ID @ epoch E'. The schedule: constant and plateau go on from the last learning "
                    "rate; cosine and linear decay again over the new epochs from --lr (a warm restart: their own "
                    "decay ended near 0), without warm-up. A constant-rate continuation equals, bit for bit on "
                    "the CPU, the run trained for the longer total from the start. The parent stays as it was.",
    )
    resume.add_argument("run_id", type=id_argument("run"), metavar="RUN_ID")
    resume.add_argument("--epochs", type=int, required=True, metavar="N", help="epochs to add (at least 1)")
    _add_restarts(resume)
    _add_db(resume)

    rerun = commands.add_parser(
        "rerun", help="train a run's config again, here and now, and say whether it repeats bit for bit",
        allow_abbrev=False,
        description="Train the config of RUN_ID again as a new run ('rerun of #ID'), on the thread count RUN_ID "
                    "started with unless --threads says otherwise, and print epoch by epoch whether every "
                    "metric equals RUN_ID's bit for bit; at the end the first epoch that differs and by how much.",
    )
    rerun.add_argument("run_id", type=id_argument("run"), metavar="RUN_ID")
    rerun.add_argument("--threads", type=int, default=None, metavar="N",
                       help="torch's thread count for the rerun (default: the run's own, as recorded)")
    _add_db(rerun)

    _add_search(commands)

    worker = commands.add_parser("worker", help="run queued runs until stopped", allow_abbrev=False)
    worker.add_argument("--once", action="store_true", help="run one queued run, then exit")
    worker.add_argument(
        "--lease",
        type=float,
        default=DEFAULT_LEASE,
        help="seconds without a heartbeat before a run is taken back (at least 1; heartbeats come four to a lease)",
    )
    worker.add_argument("--idle-exit", type=float, help="exit after this many seconds with an empty queue")
    worker.add_argument("--state-every", default="1", metavar="N|Ns",
                        help="write a run's resume state every N epochs, or every N seconds with 's' (default 1: "
                             "every epoch, a fraction of a percent of an epoch, docs/scaling.md); always before "
                             "a stop and after the last epoch. A resume goes on from the last state written")
    worker.add_argument("--device", choices=DEVICES, default="auto",
                        help="the runs it claims: auto (default) serves every device this machine has, "
                             "'auto' runs on the best; cpu, cuda or mps serve that device only (and 'auto' runs)")
    _add_db(worker)

    ray = commands.add_parser(
        "ray", help="start workers as Ray actors on a Ray cluster; wait for them (Ctrl-C stops them)",
        allow_abbrev=False,
        description="Place N workers on an existing Ray cluster, each the same worker loop against the shared "
                    "PostgreSQL store, exiting once the queue stays empty. Needs Ray (pip install 'seqcopy[ray]').",
    )
    ray.add_argument(
        "--address",
        default=None,
        help="the cluster: HOST:PORT of its head, ray://HOST:PORT, or auto (default: $RAY_ADDRESS, else auto)",
    )
    ray.add_argument("--workers", type=int, default=1, help="worker actors to start (default 1)")
    ray.add_argument(
        "--cpus-per-worker", type=float, default=1.0, help="CPUs Ray reserves for each (default 1; its torch threads)"
    )
    ray.add_argument("--gpus-per-worker", type=float, default=0.0,
                     help="GPUs Ray reserves for each, so it lands on a GPU node (default 0; fractions share a GPU)")
    ray.add_argument("--device", choices=DEVICES, default=None,
                     help="the runs they claim (default: cuda with --gpus-per-worker, else cpu)")
    ray.add_argument("--idle-exit", type=float, default=60.0,
                     help="each worker exits after this many seconds with an empty queue (default 60)")
    ray.add_argument("--lease", type=float, default=DEFAULT_LEASE,
                     help="seconds without a heartbeat before a run is taken back (at least 1)")
    _add_db(ray)

    workers = commands.add_parser("workers", help="list the workers: live, vanished and stopped", allow_abbrev=False)
    workers.add_argument("--json", action="store_true", help="one JSON array instead of a table")
    workers.add_argument("--all", action="store_true",
                         help=f"also workers gone for more than {RECENT_HOURS} hours")
    _add_db(workers)

    runs = commands.add_parser("runs", help="list runs", allow_abbrev=False)
    runs.add_argument("--json", action="store_true", help="one JSON array instead of a table")
    _add_db(runs)

    cancel = commands.add_parser("cancel", help="cancel a queued run, or stop a running one", allow_abbrev=False)
    cancel.add_argument("run_id", type=id_argument("run"))
    _add_db(cancel)

    report = commands.add_parser(
        "report", help="completed runs as a markdown table (mean ± std over seeds), a row per configuration: "
                       "the cell and every other setting the runs differ in but the seed", allow_abbrev=False
    )
    report.add_argument("--tags", help="comma-separated tags to include (default: all)")
    report.add_argument("--sweep", type=id_argument("sweep"), metavar="ID", help="only the runs of this sweep")
    report.add_argument("--by", metavar="SETTING",
                        help="one row per cell × value of this setting, by field or flag name: train_seq_len, iseq, "
                             "--by=-iseq, lr…")
    report.add_argument("--search", type=id_argument("sweep"), metavar="ID",
                        help="the best trials of this search as a markdown table")
    report.add_argument("--error", choices=sorted(ERROR_KINDS), default=None,
                        help="with --by: the spread shown beside each mean (default: se, the standard error)")
    report.add_argument("--against", metavar="CELL",
                        help="every other cell against this one (lstm, 'mlstm (input form)'…) at each --by value "
                             "(each tag without --by): difference of means, 95%% interval, test and verdict")
    report.add_argument("--metric", choices=FINAL_METRICS, default=None,
                        help="with --against: the final metric compared (default: test_copy_acc)")
    report.add_argument("--include-pruned", action="store_true",
                        help="count the runs a search's pruner stopped early in the final-metric means "
                             "(left out by default, and said)")
    report.add_argument("--solved-at", type=float, default=None, metavar="ACC",
                        help="the test copy accuracy a seed must reach to count as solved (default 0.99)")
    _add_db(report)

    # The benchmark's own parser (seqcopy.core.benchmark) reads these arguments; it needs torch.
    commands.add_parser("bench", help="training-step speed of each cell, as ratios (bench --help)", add_help=False)
    return parser


def _add_restarts(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-restarts", type=int, default=DEFAULT_MAX_RESTARTS, metavar="N",
                        help="times a run whose worker vanished after a first epoch (a lapsed lease) is resumed by "
                             f"another before it fails with the reason (default {DEFAULT_MAX_RESTARTS}; a SIGTERM or "
                             "Ctrl-C of a worker requeues it without counting)")


def _add_search(commands) -> None:
    """``seqcopy search``: the base flags of a run, the space, and how trials are chosen."""
    search = commands.add_parser(
        "search", help="an Optuna search: trials asked by free workers, pruned epoch by epoch", allow_abbrev=False,
        description="Record a search over any declared settings; workers ask its trials as they become free "
                    "(one run per seed each) and report every epoch to the pruner. Every value the space can "
                    "produce is validated first. Prints the search's sweep id.",
    )
    add_config_flags(search, with_log=False)
    group = search.add_argument_group("the search")
    group.add_argument("--space", action="append", metavar="SETTING=SPEC", default=[],
                       help="a setting and its range: int(8,64), float(0.1,3), log(1e-4,1e-2) or choices 16,32,64; "
                            "repeat for each setting")
    group.add_argument("--trials", type=int, required=True, help=f"trials in all (at most {MAX_TRIALS})")
    group.add_argument("--objective", required=True, help="the epochs metric to optimise, e.g. test_copy_acc")
    group.add_argument("--direction", choices=("max", "min"), default=None,
                       help="default: min for a loss, max otherwise")
    group.add_argument("--sampler", choices=SAMPLERS, default="tpe")
    group.add_argument("--pruner", choices=PRUNERS, default="median")
    group.add_argument("--seeds", help="each trial's seeds (one run each); the objective is their mean; default: -s")
    group.add_argument("--sampler-seed", type=int, default=None, help="the same seed gives the same trials")
    group.add_argument("--sweep-name", metavar="NAME", help="the search's name (default: made from the space)")
    _add_db(search)


def _add_test_flags(parser: argparse.ArgumentParser) -> None:
    """The original assignment's flags of the test settings, each defaulting to the model's own."""
    group = parser.add_argument_group("test settings (default: the model's own)")
    for name in TEST_SETTINGS:
        add_setting_flag(group, name)


def parse_list(text: str | None, name: str) -> list[str]:
    """'a, b,,a' → ['a', 'b'] (--cells, --tags); [] when the flag is not given."""
    if text is None:
        return []
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise UsageError(f"--{name}: the list is empty")
    return list(dict.fromkeys(items))  # a repeat would queue the very same run twice (the form drops them too)
