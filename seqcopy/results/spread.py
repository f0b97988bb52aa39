"""The spread of a metric over seeds: standard error, standard deviation or a 95% interval.

The assignment behind seqcopy reports each cell's mean over 3 trials with its **standard error**,
so that is the default everywhere a sweep is summarised (``report --by``, Compare's figures and
tables). With n seeds of values x₁…xₙ, mean m and sample standard deviation s (ddof 1):

    std   s
    se    s / √n                       the standard error of the mean
    ci95  t(0.975, n − 1) · s / √n     half-width of Student's t 95% interval for the mean

The t quantile, not the normal 1.96, because a sweep has a handful of seeds: with n = 3 the
interval is 4.30 standard errors each side, not 1.96. One value has no spread (None). The quantile
is scipy's (scipy.stats.t.ppf), not a table of our own.

Beside the spread: a group's order statistics (:func:`describe`: n, mean, median, min, max) and
its **solve rate** (:func:`solve_rate`): how many seeds reached a threshold, with the Wilson 95%
interval of that share (scipy.stats.binomtest(...).proportion_ci(method="wilson")). Wilson's, not
the normal approximation, because at 3 of 3 the normal interval is [1, 1]; Wilson's is
[0.44, 1.00]: three seeds that all solve still leave a 1-in-2 failure rate plausible.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

ERROR_KINDS = {
    "se": "standard error (std/√n)",
    "std": "standard deviation (sample, ddof 1)",
    "ci95": "95% interval (Student's t: t(0.975, n−1) · std/√n)",
}
ERROR_SHORT = {"se": "SE", "std": "std", "ci95": "95% CI"}
DEFAULT_ERROR = "se"
# scipy.stats is imported where it is used: it takes a second or more to import, and every
# command of the command line loads this module (for --error's choices).


def t975(degrees: int) -> float:
    """Student's t 0.975 quantile with ``degrees`` degrees of freedom (scipy.stats.t.ppf)."""
    if degrees < 1:
        raise ValueError("a t quantile needs at least one degree of freedom")
    from scipy import stats

    return float(stats.t.ppf(0.975, degrees))


def check_kind(kind: str) -> str:
    if kind not in ERROR_KINDS:
        raise ValueError(f"unknown error kind {kind!r}: choose one of {', '.join(ERROR_KINDS)}")
    return kind


def half_width(values: Sequence[float], kind: str = DEFAULT_ERROR) -> float | None:
    """How far the error bar reaches each side of the mean; None for fewer than two values."""
    check_kind(kind)
    n = len(values)
    if n < 2:
        return None
    std = statistics.stdev(values)
    if kind == "std":
        return std
    se = std / math.sqrt(n)
    return se if kind == "se" else t975(n - 1) * se


def summarise(values: Sequence[float], kind: str = DEFAULT_ERROR) -> tuple[float | None, float | None, int]:
    """(mean, half-width, n) of the finite values (a diverged run's NaN is left out)."""
    kept = finite(values)
    if not kept:
        return None, None, 0
    return statistics.fmean(kept), half_width(kept, kind), len(kept)


def format_summary(values: Sequence[float], kind: str = DEFAULT_ERROR, digits: int = 3, labelled: bool = True,
                   significant: bool = False) -> str:
    """'0.912 ± 0.013 SE (n=3)', '0.912 (1 seed)', or '—' with no values; ``labelled=False``
    leaves out the kind and n for a table whose header says them: '0.912 ± 0.013', '0.912'.
    ``digits`` decimals, or with ``significant`` ``digits`` significant figures of the mean and
    the spread to the same decimal (a loss of 0.0012 ± 0.0003 is not '0.001 ± 0.000')."""
    mean, half, n = summarise(values, kind)
    if mean is None:
        return "—"
    if significant and mean != 0 and math.isfinite(mean):
        digits = max(0, digits - 1 - math.floor(math.log10(abs(mean))))
    if half is None:
        return f"{mean:.{digits}f}" + (" (1 seed)" if labelled else "")
    return f"{mean:.{digits}f} ± {half:.{digits}f}" + (f" {ERROR_SHORT[kind]} (n={n})" if labelled else "")


def finite(values: Sequence[float]) -> list[float]:
    """The values that are numbers (a diverged run's NaN and a missing None left out)."""
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def describe(values: Sequence[float]) -> dict:
    """{n, mean, median, min, max} of the finite values; the statistics are None with none."""
    kept = finite(values)
    if not kept:
        return {"n": 0, "mean": None, "median": None, "min": None, "max": None}
    return {"n": len(kept), "mean": statistics.fmean(kept), "median": statistics.median(kept),
            "min": min(kept), "max": max(kept)}


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of ``successes`` / ``trials`` (scipy.stats.binomtest); (0, 1)
    for no trials, where nothing is known."""
    if trials <= 0:
        return 0.0, 1.0
    from scipy import stats

    interval = stats.binomtest(successes, trials).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def solve_rate(reached: Sequence[bool]) -> tuple[int, int, float, float]:
    """(solved, seeds, low, high): how many seeds reached the threshold, of how many, and the
    Wilson 95% interval of the share."""
    solved, trials = sum(bool(r) for r in reached), len(reached)
    return (solved, trials, *wilson_interval(solved, trials))


def format_solve_rate(reached: Sequence[bool]) -> str:
    """'3/3 [0.44, 1.00]': seeds that reached the threshold, and the Wilson 95% interval; '—' for none."""
    solved, trials, low, high = solve_rate(reached)
    return f"{solved}/{trials} [{low:.2f}, {high:.2f}]" if trials else "—"
