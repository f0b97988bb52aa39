"""Run a trained model over a typed sequence: what it read, what it wrote, how sure it was, and
what happened inside the cell on the way; what changes when one letter or the delay changes.

The input is laid out exactly as in training (``data.make_sequences``): the typed symbols, the
run's P delimiters ``$`` (more for a what-if), then one blank per symbol to copy back (N = the
typed length). The pass goes through :mod:`seqcopy.ui.inside`, step by step, so it yields the
gates and needs no compiled kernel. Torch, no Streamlit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import torch

from seqcopy.config import RunConfig, cell_label
from seqcopy.core.data import Layout, make_sequences
from seqcopy.core.model import CopyModel
from seqcopy.text import parse_id, shorten
from seqcopy.ui.inside import UNIT_ORDERS, phase_means, phases, state_trajectory, summary_line, trace_model, unit_order
from seqcopy.vocab import ALPHABET, SYMBOLS, VISIBLE_BLANK, InvalidSequence, decode, validate_symbols

MAX_PLAYGROUND_LENGTH = 500  # keeps the heatmaps drawable in a browser
MAX_EXTRA_DELIMITERS = 200  # a what-if's longer delay; bounds the pass like the length does
SYMBOL_LABELS = [VISIBLE_BLANK if s == " " else s for s in SYMBOLS]  # 11 row labels


def max_sequence_length(config: RunConfig) -> int:
    """How long a typed sequence may be: five times the training length (the length sweep's
    largest factor), at least 20, at most MAX_PLAYGROUND_LENGTH."""
    return int(min(MAX_PLAYGROUND_LENGTH, max(20, 5 * config.train_seq_len)))


def random_sequence(length: int, rng: np.random.Generator) -> str:
    return "".join(ALPHABET[i] for i in rng.integers(0, len(ALPHABET), size=length))


@dataclass(frozen=True)
class CopyTrace:
    """One pass of the model over one sequence, step by step. Never changed once made: the page
    caches one per pass and shares it between reruns (and the summaries below with it)."""

    sequence: str  # the letters it had to copy
    inputs: list[str]  # the symbol fed at each step ('·' for a blank)
    targets: list[str]  # the symbol it should write at each step
    outputs: list[str]  # the symbol it wrote (argmax) at each step
    probabilities: pd.DataFrame  # (11 symbols × T steps) softmax
    states: dict[str, pd.DataFrame] = field(default_factory=dict)  # name (inside.QUANTITIES) → (H units × T steps)
    copy_start: int = 0  # first step whose target is a copied symbol
    padding: int = 0  # delimiters fed between reading and copying

    @property
    def steps(self) -> int:
        return len(self.inputs)

    @property
    def phases(self) -> list[str]:
        return phases(len(self.sequence), self.padding, self.steps)

    @property
    def copied(self) -> pd.DataFrame:
        """The copy, symbol by symbol: what was asked, what came out, right or not, how sure it
        was (the top probability) and the probability it gave the right symbol."""
        rows = []
        for position, step in enumerate(range(self.copy_start, self.steps), start=1):
            target, output = self.targets[step], self.outputs[step]
            column = self.probabilities.iloc[:, step]
            rows.append({
                "position": position, "step": step, "target": target, "output": output,
                "right": output == target, "confidence": float(column.max()), "p_right": float(column[target]),
            })
        return pd.DataFrame(rows, columns=["position", "step", "target", "output", "right", "confidence", "p_right"])

    @property
    def copy_accuracy(self) -> float:
        copied = self.copied
        return float(copied["right"].mean()) if len(copied) else 0.0

    @cached_property
    def phase_summary(self) -> str:
        """The line under the step-by-step view (inside.summary_line): the same at every step."""
        return summary_line(phase_means(self.states, self.phases))

    @property
    def ordering(self) -> str:
        """The state whose units the view orders: the cell state c where there is one, else h."""
        return "c" if "c" in self.states else "h"

    @cached_property
    def unit_orders(self) -> dict[str, list[int]]:
        """Each way of ordering the units (inside.UNIT_ORDERS) → the order, by :attr:`ordering`."""
        return {by: unit_order(self.states[self.ordering], len(self.sequence), by) for by in UNIT_ORDERS}


def copy_inputs(
    text: str, config: RunConfig, extra_delimiters: int = 0
) -> tuple[list[int], Layout, torch.Tensor, torch.Tensor]:
    """The typed letters' indices, their layout and the (1, T) inputs and targets. Raises
    vocab.InvalidSequence (one line) for text that is not a sequence of the alphabet's letters."""
    indices = validate_symbols(text, max_sequence_length(config))
    if not 0 <= extra_delimiters <= MAX_EXTRA_DELIMITERS:
        raise InvalidSequence(f"extra delimiters must be between 0 and {MAX_EXTRA_DELIMITERS}, got {extra_delimiters}")
    layout = Layout(symbols=len(indices), padding=config.padding + extra_delimiters, output=len(indices))
    inputs, targets = make_sequences(np.array([indices], dtype=np.int64), layout)
    return indices, layout, inputs, targets


def run_copy(model: CopyModel, config: RunConfig, text: str, extra_delimiters: int = 0) -> CopyTrace:
    """Let ``model`` read ``text`` and copy it back, after ``extra_delimiters`` more ``$`` than
    it was trained with. Raises vocab.InvalidSequence (one line naming what is wrong) for text
    that is not a sequence of the alphabet's letters, inside.UntraceableCell for a cell the
    Playground cannot trace."""
    indices, layout, inputs, targets = copy_inputs(text, config, extra_delimiters)
    model.eval()
    with torch.inference_mode():
        logits, parts = trace_model(model, inputs)
    probs = torch.softmax(logits[0].float(), dim=-1).numpy()  # (T, 11)
    steps = list(range(layout.length))
    return CopyTrace(
        sequence=decode(indices),
        inputs=list(decode(inputs[0].tolist())),
        targets=list(decode(targets[0].tolist())),
        outputs=list(decode(logits[0].argmax(-1).tolist())),
        probabilities=pd.DataFrame(probs.T, index=SYMBOL_LABELS, columns=steps),
        # (units × steps) each; the input form's m_t has E units, everything else H.
        states={
            name: pd.DataFrame(
                value[0].float().numpy().T, index=[f"u{i}" for i in range(value.shape[-1])], columns=steps
            )
            for name, value in parts.items()
        },
        copy_start=layout.copy_start,
        padding=layout.padding,
    )


# ----------------------------------------------------------------------------- what if, side by side
def edit_sequence(text: str, position: int, letter: str) -> str:
    """``text`` (cleaned as the Playground cleans it) with the letter at 1-based ``position``
    replaced by ``letter``. Raises InvalidSequence for a position or letter out of range."""
    cleaned = text.strip().lower()
    if letter not in ALPHABET or len(letter) != 1:
        raise InvalidSequence(f"the new letter must be one of {' '.join(ALPHABET)}")
    if not 1 <= position <= len(cleaned):
        raise InvalidSequence(f"position must be between 1 and {len(cleaned)}, got {position}")
    return cleaned[: position - 1] + letter + cleaned[position:]


def copies_frame(traces: Mapping[str, CopyTrace]) -> pd.DataFrame:
    """The copies of several passes (labelled: two models, or an original and its edit) in one
    long frame: label, position, target, output, right, p_right."""
    frames = [trace.copied.assign(label=label) for label, trace in traces.items()]
    columns = ["label", "position", "target", "output", "right", "p_right"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def changed_positions(copies: pd.DataFrame, before: str, after: str) -> list[int]:
    """The copied positions whose output differs between passes ``before`` and ``after``."""
    a = copies[copies["label"] == before].set_index("position")["output"]
    b = copies[copies["label"] == after].set_index("position")["output"]
    common = a.index.intersection(b.index)
    return [int(p) for p in common if a[p] != b[p]]


def marked_copy(trace: CopyTrace) -> str:
    """The copy as markdown, each symbol green (right) or red (wrong); the symbols are letters of
    the alphabet, never user text."""
    return " ".join(f":green[**{row.output}**]" if row.right else f":red[**{row.output}**]"
                    for row in trace.copied.itertuples())


def suggest_partner(candidates: Sequence, chosen) -> int | None:
    """Which run (an index into ``candidates``, RunInfo-like) to show beside ``chosen``: first one
    of another cell with the same tag (as it is now, edited or not) and task lengths (the same
    sweep), then another cell with the same lengths, then any other run."""
    def lengths(run):
        return (run.config.train_seq_len, run.config.padding)

    others = [(i, run) for i, run in enumerate(candidates) if run.id != chosen.id]
    preferences = (
        lambda run: (
            cell_label(run.config) != cell_label(chosen.config)
            and lengths(run) == lengths(chosen)
            and run.tag == chosen.tag
        ),
        lambda run: cell_label(run.config) != cell_label(chosen.config) and lengths(run) == lengths(chosen),
        lambda run: True,
    )
    for matches in preferences:
        for index, run in others:
            if matches(run):
                return index
    return None


def play_toggled(playing: bool, step: int, steps: int) -> tuple[bool, int]:
    """Play/Pause pressed: whether it plays now, and from which step (from the start again when
    it stands at the last step)."""
    if not playing and step >= steps - 1:
        return True, 0
    return not playing, step


def play_tick(step: int, steps: int) -> tuple[int, bool]:
    """One tick while playing: the next step, and whether to play on (not past the last step)."""
    step = min(step + 1, steps - 1)
    return step, step < steps - 1


def position_from_selection(selection: Mapping | None, letters: int) -> int | None:
    """The 1-based input position a click on the input row chose (Streamlit's plotly selection
    state: {'selection': {'points': [{'x': step, ...}]}}), or None when nothing usable was
    clicked."""
    try:
        points = selection["selection"]["points"]
        step = int(round(float(points[0]["x"])))
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return step + 1 if 0 <= step < letters else None


def trajectory_frame(trace: CopyTrace, quantity: str = "h") -> tuple[pd.DataFrame, np.ndarray]:
    """The state ``quantity`` (h or c) over time on its first two principal components, one row
    per step (step, pc1, pc2, phase, symbol: the one read, or while copying the one written), and
    the share of variance of each component."""
    coordinates, shares = state_trajectory(trace.states[quantity])
    frame = pd.DataFrame({
        "step": range(trace.steps), "pc1": coordinates[:, 0], "pc2": coordinates[:, 1], "phase": trace.phases,
        "symbol": [written if step >= trace.copy_start else read
                   for step, (read, written) in enumerate(zip(trace.inputs, trace.outputs, strict=True))],
    })
    return frame, shares


# ----------------------------------------------------------------------------- the Epoch slider
FINAL = "final"
NO_SNAPSHOTS = "no snapshots kept for this run (an older store): showing its final model"


def epoch_choices(kept: Sequence, final_epoch: int) -> list:
    """The Epoch slider's stops: the kept snapshots' epochs before the final one, then "final"
    (a snapshot of the last epoch is the final model itself, so it is not offered twice)."""
    return [snapshot.epoch for snapshot in kept if snapshot.epoch < final_epoch] + [FINAL]


def epoch_caption(choice, kept: Sequence, final_epoch: int) -> str:
    """Which weights the page shows and why they were kept; NO_SNAPSHOTS for a run with none."""
    if not kept:
        return NO_SNAPSHOTS
    if choice == FINAL:
        return f"Showing the final model (epoch {final_epoch}), the run's checkpoint."
    reason = next((snapshot.reason for snapshot in kept if snapshot.epoch == choice), "kept")
    return f"Showing the model after epoch {choice} of {final_epoch}: kept as {reason}."


# ----------------------------------------------------------------------------- a shareable link
URL_KEYS = ("run", "epoch", "seq")  # ?run=12&epoch=8&seq=axcry


def run_from_url(value: str, run_ids: Sequence[int]) -> tuple[int | None, str | None]:
    """The run a link's ``run=`` names, or None and why it is ignored (one line)."""
    try:
        run_id = parse_id(value)
    except ValueError as error:
        return None, str(error)
    if run_id not in run_ids:
        return None, f"run {run_id} has no model to play with here"
    return run_id, None


def epoch_from_url(value: str, choices: Sequence) -> tuple[object | None, str | None]:
    """The Epoch slider's stop a link's ``epoch=`` names (a kept epoch, or "final"), or None and why."""
    if value.strip().lower() == FINAL:
        return FINAL, None
    kept = [choice for choice in choices if choice != FINAL]
    if value.strip().isascii() and value.strip().isdecimal() and len(value.strip()) < 10 \
            and int(value) in kept:
        return int(value), None
    shown = ", ".join(map(str, kept)) or "none"
    return None, f"epoch {shorten(value)!r} was not kept for this run (kept: {shown}; or final)"


def sequence_from_url(value: str, config: RunConfig) -> tuple[str | None, str | None]:
    """The sequence a link's ``seq=`` gives, cleaned, or None and why it cannot be copied."""
    try:
        return decode(validate_symbols(value, max_sequence_length(config))), None
    except InvalidSequence as error:
        return None, f"sequence {shorten(value)!r}: {error}"


def url_query(run_id: int, epoch, sequence: str) -> dict[str, str]:
    """What the link says for a run, an Epoch slider's stop and a sequence: no epoch for the final model."""
    query = {"run": str(run_id), "seq": sequence}
    if epoch is not None and epoch != FINAL:
        query["epoch"] = str(epoch)
    return query
