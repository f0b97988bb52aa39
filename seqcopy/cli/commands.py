"""seqcopy {train,evaluate,submit,search,continue,worker,ray,workers,runs,cancel,report,rerun,bench}, also
``python -m seqcopy``.

Bad input (a flag, a config, a name, a file, a database URL, a run id) exits with status 2 and one
line on stderr, never a traceback, and writes nothing.
"""

from __future__ import annotations

import json
import math
import os
import sys

from sqlalchemy.exc import SQLAlchemyError

from seqcopy.cli.flags import config_from_args
from seqcopy.cli.parser import (
    MAX_RAY_WORKERS,
    RECENT_HOURS,
    TEST_SETTINGS,
    OneLineParser,
    UsageError,
    build_parser,
    parse_list,
)
from seqcopy.cli.queue import cmd_continue, cmd_search, cmd_submit
from seqcopy.config import SETTINGS, RunConfig, cell_label
from seqcopy.devices import resolve_device
from seqcopy.errors import InputError
from seqcopy.results.spread import DEFAULT_ERROR
from seqcopy.results.sweeps import (
    GRID_FIELDS,
    SweepError,
    setting_named,
)
from seqcopy.runs.capacity import RECENT_S
from seqcopy.runs.ray_plan import RayPlan
from seqcopy.runs.redact import display_url
from seqcopy.runs.states import FINISHED, Outcome, RunStatus
from seqcopy.runs.store import (
    DEFAULT_LEASE,
    UnknownSweep,
    database_url,
    describe_error,
    lease_problem,
    open_store,
    run_note,
    worker_name,
)
from seqcopy.text import parse_id, printable

# torch is imported only by the commands that train or load models (train, evaluate, worker,
# bench), so listing or cancelling runs starts in a fraction of a second.


def _config_or_exit(config: RunConfig, check_device: bool = True) -> RunConfig:
    errors = config.validate(check_device)
    if errors:
        field, message = next(iter(errors.items()))
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise UsageError(f"{SETTINGS[field].spelling}: {message}{more}")
    return config


class ProgressPrinter:
    """Each epoch's line on stdout and in the runtime log; while an epoch runs, a tqdm bar on
    stderr when it is a terminal (never in a pipe or a log file)."""

    def __init__(self, config: RunConfig, log_folder):
        self.config = config
        self.log_folder = log_folder
        self.show_bar = sys.stderr.isatty()
        self.bar = None
        self.epoch = 1

    def on_batch(self, done: int, total: int) -> None:
        if not self.show_bar:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, desc=f"epoch {self.epoch}/{self.config.epochs}", unit="batch", leave=False, file=sys.stderr
            )
        self.bar.update(done - self.bar.n)

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_epoch(self, epoch) -> None:
        from seqcopy.cli.log_folder import epoch_line

        self.close_bar()
        self.epoch = epoch.epoch + 1
        line = epoch_line(epoch, self.config)
        print(line, flush=True)
        self.log_folder.log(line)


def _json_safe(summary: dict) -> dict:
    """NaN and infinities (a diverged run) as null: JSON has no NaN."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in summary.items()}


def cmd_train(args) -> int:
    from seqcopy.cli.log_folder import LogFolder
    from seqcopy.runs.worker import RunExecution, StopSignals

    config = _config_or_exit(config_from_args(args))
    log_folder = LogFolder(args.log, args.logs_dir)
    log_folder.prepare()  # a bad name or an unwritable folder is refused before any run exists
    try:
        store = open_store(args.db)
    except BaseException:
        log_folder.discard()
        raise
    worker_id = f"cli:{worker_name()}"
    run_id = store.submit(config, status=RunStatus.RUNNING, worker_id=worker_id,
                          device_used=resolve_device(config.device))
    print(
        f"run {run_id}: {cell_label(config)}, seed {config.seed}, recorded in {store.safe_url}; "
        f"outputs in {log_folder.folder}",
        flush=True,
    )
    log_folder.start_log(run_id, config, store.safe_url)  # a log that cannot be written is said, and training goes on
    printer = ProgressPrinter(config, log_folder)
    signals = StopSignals()
    execution = RunExecution(store, store.get_run(run_id), worker_id, DEFAULT_LEASE, signals,
                             printer.on_epoch, printer.on_batch, requeue_on_stop=False)
    try:
        signals.install()  # the first SIGINT/SIGTERM finishes the epoch, a second the batch
        status = execution.execute()  # a failure inside training is recorded, not raised
        printer.close_bar()
        return _report_training(store, run_id, status, execution.result, log_folder)
    finally:
        signals.restore()
        log_folder.close_log()


def _report_training(store, run_id: int, status: Outcome, result, log_folder) -> int:
    """The run's last lines, on the terminal and in the runtime log, and its outputs in the
    log_folder folder (whatever epochs it finished, also when it was stopped or diverged)."""

    def say(line: str, stream=sys.stdout) -> None:
        print(line, file=stream, flush=True)
        log_folder.log(line)

    if status == Outcome.LOST:
        say(f"run {run_id} was taken back by another process; its result is not recorded", sys.stderr)
        return 1
    if result is not None and result.epochs:
        try:
            log_folder.save_results(result)
            say(f"plots, model and config saved in {log_folder.folder}")
        except OSError as error:  # the run and its checkpoint are safe in the store all the same
            say(
                f"outputs not saved in {log_folder.folder}: {error.strerror or error} (the run is in the store)",
                sys.stderr,
            )
    if status == Outcome.FAILED or result is None:
        say(f"run {run_id} failed: {(store.get_run(run_id).error or 'unknown error').splitlines()[0]}", sys.stderr)
        return 1
    if status == Outcome.CANCELLED:
        say(f"run {run_id}: {(store.get_run(run_id).error or str(Outcome.CANCELLED)).splitlines()[0]}", sys.stderr)
    summary = result.summary() | {"run_id": run_id, "status": str(status)}  # the plain word, as stored
    say(json.dumps(_json_safe(summary)))
    return 0


def load_model(source: str, db: str | None = None):
    """The model of a run (an id in the store at ``db``) or of a ``.pth``/``.pt`` file: a
    seqcopy.core.evaluation.LoadedModel."""
    from seqcopy.core.evaluation import EvaluationError, model_from_file, model_from_run, names_a_file

    if not (source.isascii() and source.isdigit()) or names_a_file(source):
        return model_from_file(source)
    try:
        run_id = parse_id(source)
    except ValueError as error:
        raise EvaluationError(str(error)) from None
    from seqcopy.runs.lineage import kept_weights

    store = open_store(db, create=False)
    try:
        run = store.get_run(run_id)  # UnknownRun for an id that is not there
        found = kept_weights(store, run_id)  # a run stopped between epochs: its last state's weights
    finally:
        store.close()
    if found is None:
        raise EvaluationError(f"run {run_id} ({run.status}) has no checkpoint to evaluate")
    return model_from_run(run_id, found[1])


def cmd_evaluate(args) -> int:
    from seqcopy.core.evaluation import evaluate_model, with_test_settings

    loaded = load_model(args.model, args.db)
    given = {name: getattr(args, name) for name in TEST_SETTINGS if hasattr(args, name)}
    config = _config_or_exit(with_test_settings(loaded.config, **given))
    evaluation = evaluate_model(loaded, config)
    for line in evaluation.report_lines():
        print(line)
    print(json.dumps(_json_safe(evaluation.summary())), flush=True)
    return 0


def _check_worker_flags(args) -> None:
    # A lease shorter than a few heartbeats (or NaN) lets this worker's own runs be taken back.
    problem = lease_problem(args.lease)
    if problem:
        raise UsageError(f"--lease: {problem}")
    if args.idle_exit is not None and not args.idle_exit >= 0:
        raise UsageError(f"--idle-exit: must be 0 seconds or more, got {args.idle_exit}")


def cmd_worker(args) -> int:
    _check_worker_flags(args)
    from seqcopy.devices import DeviceUnavailable
    from seqcopy.runs.worker import StateEvery, Worker

    try:
        state_every = StateEvery.parse(args.state_every)
    except ValueError as error:
        raise UsageError(str(error)) from None
    store = open_store(args.db)
    try:
        worker = Worker(store, lease=args.lease, device=args.device, state_every=state_every)
    except DeviceUnavailable as error:
        raise UsageError(f"--device: {error}") from None
    worker.install_signal_handlers()
    print(f"worker {worker.worker_id} on {store.safe_url}, serving {','.join(worker.serves)} runs "
          f"('auto' runs on {worker.device})", file=sys.stderr, flush=True)
    done = worker.run(once=args.once, idle_exit=args.idle_exit)
    print(f"worker {worker.worker_id} stopped after {done} run(s)", file=sys.stderr, flush=True)
    return 0


def _ray_plan(args) -> RayPlan:
    """The checked request of ``seqcopy ray``; UsageError (exit 2) for anything unusable, before
    Ray is imported or any cluster contacted."""
    _check_worker_flags(args)
    if not 1 <= args.workers <= MAX_RAY_WORKERS:
        raise UsageError(f"--workers: from 1 to {MAX_RAY_WORKERS}, got {args.workers}")
    if not 0 < args.cpus_per_worker <= 1024:
        raise UsageError(f"--cpus-per-worker: more than 0 and at most 1024, got {args.cpus_per_worker}")
    if not 0 <= args.gpus_per_worker <= 64:
        raise UsageError(f"--gpus-per-worker: from 0 to 64, got {args.gpus_per_worker}")
    device = args.device or ("cuda" if args.gpus_per_worker else "cpu")
    if device in ("cuda", "mps") and not args.gpus_per_worker:
        raise UsageError(
            f"--device {device}: give --gpus-per-worker (Ray hides the GPUs from a worker that asked for none)"
        )
    url = database_url(args.db)
    if url.lower().startswith("sqlite"):
        raise UsageError(f"{display_url(url)} is a SQLite file: Ray workers on other machines cannot share it safely; "
                         "give --db (or SEQCOPY_DB) a postgresql:// URL")
    store = open_store(url)  # unreachable, or not a runs store: one line, before any cluster is bothered
    shown_url = store.safe_url
    store.close()
    return RayPlan(address=args.address or os.environ.get("RAY_ADDRESS") or "auto", url=url, shown_url=shown_url,
                   workers=args.workers, cpus_per_worker=args.cpus_per_worker,
                   gpus_per_worker=args.gpus_per_worker, device=device, lease=args.lease, idle_exit=args.idle_exit)


def cmd_ray(args) -> int:
    plan = _ray_plan(args)  # bad flags or store first: they need no Ray, and are not "Ray is missing"
    try:
        import ray  # noqa: F401 - imported only to say clearly that it is missing
    except ImportError:
        raise UsageError("Ray is not installed here: pip install 'seqcopy[ray]' (or -r requirements-ray.txt)") from None
    from seqcopy.runs.ray_workers import launch

    return launch(plan)


def cmd_workers(args) -> int:
    import time

    from seqcopy.runs.capacity import ago, summary, worker_rows

    store = open_store(args.db, create=False)
    now = time.time()
    workers = store.list_workers(since=None if args.all else now - RECENT_S)
    rows = worker_rows(workers, now)
    if args.json:
        print(json.dumps(rows))
        return 0
    if not rows:
        print("no workers registered" + ("" if args.all else f" in the last {RECENT_HOURS} hours")
              + ": start one with seqcopy worker (or seqcopy ray …)")
        return 0
    print(summary(workers, now))
    print(f"{'worker':28} {'state':8} {'serves':10} {'threads':>7} {'run':>6} {'done':>5} {'last seen':>10}  origin")
    for row in rows:
        run = "—" if row["run"] is None else f"#{row['run']}"
        print(f"{printable(row['worker'])[:28]:28} {row['state']:8} {row['serves']:10} {row['threads']:>7} {run:>6} "
              f"{row['runs_done']:>5} {ago(row['last_seen_s']) + ' ago':>10}  {printable(row['origin'])}")
    return 0


def cmd_runs(args) -> int:
    store = open_store(args.db, create=False)
    runs = store.list_runs()
    rows = [
        {
            "id": r.id, "cell": cell_label(r.config), "seed": r.config.seed, "status": str(r.status),
            "epochs_done": r.epochs_done, "epochs": r.epochs_total, "tag": r.tag, **r.latest,
            "lineage": r.lineage, "note": run_note(r),
        }
        for r in runs
    ]
    if args.json:
        print(json.dumps([_json_safe(row) for row in rows]))
        return 0
    if not rows:
        print("no runs yet: seqcopy submit … or the dashboard's Launch page")
        return 0
    print(f"{'id':>5} {'cell':6} {'seed':>5} {'status':10} {'epochs':>7} {'test copy acc':>13} {'test acc':>8}  tag")
    for row in rows:
        copy = "—" if row["test_copy_acc"] is None else f"{row['test_copy_acc']:.3f}"
        acc = "—" if row["test_acc"] is None else f"{row['test_acc']:.3f}"
        print(f"{row['id']:>5} {row['cell']:6} {row['seed']:>5} {row['status']:10} "
              f"{row['epochs_done']:>3}/{row['epochs']:<3} {copy:>13} {acc:>8}  {printable(row['tag'])}"
              + "".join(f"  [{printable(text)}]" for text in (row["lineage"], row["note"]) if text))
    return 0


def cmd_cancel(args) -> int:
    store = open_store(args.db, create=False)
    before = store.get_run(args.run_id).status  # request_cancel answers 'cancelled' either way
    if before in FINISHED:
        print(f"run {args.run_id} already {before}")
        return 0
    status = store.request_cancel(args.run_id)
    cancelled = f"run {args.run_id} cancelled"
    if status == RunStatus.CANCELLED:
        from seqcopy.runs.lineage import kept_weights

        run = store.get_run(args.run_id)
        cancelled = f"run {args.run_id} {run.error}"
        kept = kept_weights(store, args.run_id) if run.epochs_done else None
        if kept is not None:
            cancelled += f"; its weights after epoch {kept[0]} are kept (evaluate, submit --from, continue)"
    message = {
        RunStatus.CANCELLED: cancelled,
        RunStatus.RUNNING: f"run {args.run_id} will stop within seconds (at its worker's next heartbeat, "
                           "then the next batch)",
    }.get(status, f"run {args.run_id} already {status}")
    print(message)
    return 0


def cmd_report(args) -> int:
    from seqcopy.results.report import SOLVED_AT, build_by_report, build_report, build_verdict_report

    tags = parse_list(args.tags, "tags") or None
    if args.error is not None and (args.by is None or args.against is not None):
        raise UsageError("--error goes with --by: the table without --by shows mean ± std, and --against gives "
                         "95% intervals")
    if args.metric is not None and args.against is None:
        raise UsageError("--metric goes with --against: the metric two cells are compared on")
    solved_at = SOLVED_AT if args.solved_at is None else args.solved_at
    if not 0 < solved_at <= 1:
        raise UsageError(f"--solved-at {args.solved_at}: give a copy accuracy above 0 and at most 1, e.g. 0.99")
    by = None
    if args.by is not None:
        try:
            by = setting_named(args.by)
        except SweepError as error:
            raise UsageError(f"--by: {error}") from None
        if by in GRID_FIELDS:
            raise UsageError(f"--by {args.by}: rows are one per cell already, and seeds are averaged; choose a setting")
        if not SETTINGS[by].sweepable:  # the tag: free text that names runs (and can be edited)
            raise UsageError(f"--by {args.by}: a tag names runs, it is not a setting; without --by the report has "
                             "one table per tag (--tags chooses them)")
    store = open_store(args.db, create=False)
    if args.search is not None:
        return _report_search(store, args)
    if args.sweep is not None:
        try:
            store.get_sweep(args.sweep)
        except UnknownSweep as error:
            raise UsageError(f"--sweep: {error}") from None
    if args.against is not None:
        try:
            print(build_verdict_report(store, args.against.strip(), by, args.metric or "test_copy_acc", tags,
                                       args.sweep, include_pruned=args.include_pruned))
        except ValueError as error:
            raise UsageError(f"--against: {error}") from None
    elif by is None:
        print(build_report(store, tags, args.sweep, solved_at, include_pruned=args.include_pruned))
    else:
        print(build_by_report(store, by, args.error or DEFAULT_ERROR, tags, args.sweep, solved_at,
                              include_pruned=args.include_pruned))
    return 0


def _report_search(store, args) -> int:
    from seqcopy.results.search import SearchError, search_report

    if args.by is not None or args.sweep is not None or args.tags is not None:
        raise UsageError("--search goes alone: its table has one row per trial")
    try:
        store.get_sweep(args.search)
    except UnknownSweep as error:
        raise UsageError(f"--search: {error}") from None
    try:
        print(search_report(store, args.search))
    except SearchError as error:
        raise UsageError(str(error)) from None
    return 0


# What may differ between two trainings of one config on one machine: the wall clock's figures.
RERUN_SKIPS = ("seconds", "samples_per_sec")


def epoch_differences(before: dict, after: dict) -> dict[str, float]:
    """metric → |difference| of every metric of an epoch that is not bit for bit the same (a
    metric both leave unmeasured, None, is the same; NaN equals NaN)."""
    found = {}
    for name, value in after.items():
        if name in RERUN_SKIPS or name == "epoch" or name not in before:
            continue
        old = before[name]
        if old == value or (old is not None and value is not None and math.isnan(old) and math.isnan(value)):
            continue
        found[name] = math.inf if old is None or value is None else abs(value - old)
    return found


def cmd_rerun(args) -> int:
    """The run's config trained again here and now as a new run, compared with it epoch by epoch."""
    import torch

    from seqcopy.runs.worker import RunExecution, StopSignals

    store = open_store(args.db, create=False)
    original = store.get_run(args.run_id)
    before = {row["epoch"]: row for row in store.epochs([original.id])}
    if not before:
        raise UsageError(f"run {original.id} ({original.status}) has no epochs to compare a rerun with")
    threads = args.threads
    if threads is None:
        threads = next((s.get("threads") for s in original.environments if s.get("threads")), None)
    if threads is not None and not 1 <= threads <= 1024:
        raise UsageError(f"--threads: a whole number from 1 to 1024, got {threads}")
    config = _config_or_exit(original.config.replace(epochs=max(before)))
    worker_id = f"cli:{worker_name()}"
    run_id = store.submit(config, status=RunStatus.RUNNING, worker_id=worker_id,
                          device_used=resolve_device(config.device), rerun_of=original.id)
    print(f"run {run_id}: rerun of #{original.id} ({cell_label(config)}, seed {config.seed}, {config.epochs} epochs"
          + (f", {threads} thread(s)" if threads else "") + ")", flush=True)
    first: list[tuple[int, dict[str, float]]] = []

    def compare(epoch) -> None:
        differences = epoch_differences(before.get(epoch.epoch, {}), epoch.to_dict())
        if differences and not first:
            first.append((epoch.epoch, differences))
        shown = ", ".join(f"{name} by {value:.3g}" for name, value in sorted(differences.items(),
                                                                             key=lambda kv: -kv[1])[:3])
        print(f"epoch {epoch.epoch}: " + (f"differs ({shown})" if differences else "identical"), flush=True)

    threads_before = torch.get_num_threads()
    signals = StopSignals()
    try:
        if threads:
            torch.set_num_threads(threads)
        signals.install()
        execution = RunExecution(store, store.get_run(run_id), worker_id, DEFAULT_LEASE, signals, compare,
                                 requeue_on_stop=False)
        status = execution.execute()
    finally:
        signals.restore()
        torch.set_num_threads(threads_before)
    if status != Outcome.COMPLETED:
        print(f"run {run_id} {status}: {(store.get_run(run_id).error or str(status)).splitlines()[0]}",
              file=sys.stderr)
        return 1
    if first:
        epoch, differences = first[0]
        name, value = max(differences.items(), key=lambda kv: kv[1])
        print(f"rerun #{run_id} of #{original.id}: first differs at epoch {epoch} ({name} by {value:.3g})")
    else:
        print(f"rerun #{run_id} of #{original.id}: identical in every epoch ({config.epochs})")
    return 0


def cmd_bench(args) -> int:
    from seqcopy.core import benchmark

    parser = OneLineParser(prog="seqcopy bench", description=benchmark.__doc__, allow_abbrev=False)
    benchmark.add_arguments(parser)
    bench_args = parser.parse_args(args.extra)
    problem = benchmark.check_arguments(bench_args)
    if problem:
        raise UsageError(problem)
    return benchmark.run(bench_args)


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "submit": cmd_submit, "worker": cmd_worker, "ray": cmd_ray,
            "workers": cmd_workers, "runs": cmd_runs, "continue": cmd_continue, "cancel": cmd_cancel,
            "report": cmd_report, "bench": cmd_bench, "search": cmd_search, "rerun": cmd_rerun}


def main(argv: list[str] | None = None) -> int:
    args = None
    try:
        args, extra = build_parser().parse_known_args(argv)
        if extra and args.command != "bench":  # only bench passes its arguments on
            raise UsageError(f"unrecognized arguments: {' '.join(extra)}")
        args.extra = extra
        return COMMANDS[args.command](args)
    except InputError as error:  # the project's own verdicts on bad input; a bug keeps its traceback
        print(f"seqcopy: error: {error}", file=sys.stderr)
        return 2
    except SQLAlchemyError as error:  # the database went away mid-command
        url = database_url(getattr(args, "db", None))
        print(f"seqcopy: database error: {describe_error(error, url)}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `seqcopy runs | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return 0
