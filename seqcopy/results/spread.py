"""The spread of a metric over seeds: standard error, standard deviation or a 95% interval.

The assignment behind seqcopy reports each cell's mean over 3 trials with its **standard error**,
so that is the default everywhere a sweep is summarised (``report --by``, Compare's figures and
tables). With n seeds of values x₁…xₙ, mean m and sample standard deviation s (ddof 1):

    std   s
    se    s / √n                       the standard error of the mean
    ci95  t(0.975, n − 1) · s / √n     half-width of Student's t 95% interval for the mean

The t quantile, not the normal 1.96, because a sweep has a handful of seeds: with n = 3 the
interval is 4.30 standard errors each side, not 1.96. One value has no spread (None).
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

# Student's t 0.975 quantile by degrees of freedom (checked against the regularised incomplete
# beta function to three decimals).
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)
_Z975 = 1.959964


def t975(degrees: int) -> float:
    """Student's t 0.975 quantile: the table up to 30 degrees of freedom, then the
    Cornish–Fisher expansion around the normal quantile (within 1e-4 beyond 30)."""
    if degrees < 1:
        raise ValueError("a t quantile needs at least one degree of freedom")
    if degrees <= len(_T975):
        return _T975[degrees - 1]
    z, v = _Z975, float(degrees)
    return (z + (z**3 + z) / (4 * v) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3))


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
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None, None, 0
    return statistics.fmean(finite), half_width(finite, kind), len(finite)


def format_summary(values: Sequence[float], kind: str = DEFAULT_ERROR, digits: int = 3, labelled: bool = True) -> str:
    """'0.912 ± 0.013 SE (n=3)', '0.912 (1 seed)', or '—' with no values; ``labelled=False``
    leaves out the kind and n for a table whose header says them: '0.912 ± 0.013', '0.912'."""
    mean, half, n = summarise(values, kind)
    if mean is None:
        return "—"
    if half is None:
        return f"{mean:.{digits}f}" + (" (1 seed)" if labelled else "")
    return f"{mean:.{digits}f} ± {half:.{digits}f}" + (f" {ERROR_SHORT[kind]} (n={n})" if labelled else "")
