"""The seed's sixteen training flags, shared by ``train`` and ``submit``.

Short names and defaults are the seed's; each long name is the RunConfig field it sets.
"""

from __future__ import annotations

import argparse

from .config import CELL_NAMES, CLIP_MODES, INIT_SCHEMES, LR_SCHEDULES, RunConfig

DEFAULTS = RunConfig()

# (short, long, type, help) for each seed flag; the long name maps to the RunConfig field.
SEED_FLAGS = [
    ("-d", "--device", str, "cpu, cuda, mps or auto"),
    ("-iseq", "--train-seq-len", int, "K: symbols read while training"),
    ("-tseq", "--test-seq-len", int, "K at test time"),
    ("-p", "--padding", int, "P: delimiters '$' before the copy"),
    ("-oseq", "--train-output-len", int, "N: symbols to copy while training (<= K)"),
    ("-toseq", "--test-output-len", int, "N at test time (<= test K)"),
    ("-b", "--batch-size", int, "sequences per mini-batch"),
    ("-em", "--embedding-size", int, "embedding size"),
    ("-hs", "--hidden-size", int, "hidden size"),
    ("-c", "--cell", str, f"cell: {', '.join(CELL_NAMES)}"),
    ("-ep", "--epochs", int, "epochs"),
    ("-lr", "--lr", float, "Adam's learning rate"),
    ("-s", "--seed", int, "seed of the data and the initial weights"),
    ("-trs", "--train-samples", int, "training sequences"),
    ("-ts", "--test-samples", int, "test sequences"),
]


def field_name(long_flag: str) -> str:
    return long_flag.lstrip("-").replace("-", "_")


def add_config_flags(parser: argparse.ArgumentParser, with_location: bool = True) -> None:
    group = parser.add_argument_group("the seed's flags")
    if with_location:
        group.add_argument(
            "-l", "--log", default="rnn.log", metavar="NAME",
            help="names the experiment: its log, plots, model (.pth) and config go to LOGS_DIR/NAME/, "
            "NAME less a trailing .log (default: rnn.log, the seed's, so logs/rnn/)",
        )
        group.add_argument(
            "--logs-dir", default="logs", metavar="LOGS_DIR",
            help="the folder that holds the experiments' folders (default: logs)",
        )
    for short, long, kind, text in SEED_FLAGS:
        default = getattr(DEFAULTS, field_name(long))
        group.add_argument(short, long, type=kind, default=default, help=f"{text} (default: {default})")
    extra = parser.add_argument_group("options beyond the seed")
    extra.add_argument("--curriculum", action="store_true", help="start with short copies, lengthen them as they are learnt")
    extra.add_argument("--curriculum-start", type=int, default=DEFAULTS.curriculum_start, help="first stage's output length")
    extra.add_argument("--curriculum-threshold", type=float, default=DEFAULTS.curriculum_threshold, help="copy accuracy that moves to the next stage")
    extra.add_argument("--curriculum-step", type=int, default=DEFAULTS.curriculum_step, help="lengthen each stage's output by this much (0: double it)")
    extra.add_argument("--lr-schedule", default=DEFAULTS.lr_schedule, help=f"{', '.join(LR_SCHEDULES)}")
    extra.add_argument("--warmup-epochs", type=int, default=DEFAULTS.warmup_epochs, help="linear learning-rate warm-up")
    extra.add_argument("--clip", default=DEFAULTS.clip, help=f"gradient clipping: {', '.join(CLIP_MODES)} (value = the seed's [-1, 1])")
    extra.add_argument("--init", default=DEFAULTS.init, help=f"initialisation: {', '.join(INIT_SCHEMES)} (uniform = the seed's)")
    extra.add_argument("--fresh-data", action="store_true", help="draw a new training set every epoch (no memorising a fixed set)")
    extra.add_argument("--reference-cells", action="store_true", help="train the readable reference cells, not the fused kernels")
    extra.add_argument("--tag", default="", help="a short note stored with the run")


def config_from_args(args: argparse.Namespace, **overrides) -> RunConfig:
    values = {field_name(long): getattr(args, field_name(long)) for _, long, _, _ in SEED_FLAGS}
    values.update(
        curriculum=args.curriculum,
        curriculum_start=args.curriculum_start,
        curriculum_threshold=args.curriculum_threshold,
        curriculum_step=args.curriculum_step,
        lr_schedule=args.lr_schedule,
        warmup_epochs=args.warmup_epochs,
        clip=args.clip,
        fused=not args.reference_cells,
        fresh_data=args.fresh_data,
        init=args.init,
        tag=args.tag,
    )
    values.update(overrides)
    return RunConfig(**values)
