"""Verdicts between groups of seeds: is one cell better than a reference cell, and how sure are we?

:func:`verdict` takes each group's final metric by seed and returns the difference of the means
(other − reference), its 95% interval, a p-value, and whether the difference is **clear**.

Which test, and why:

- **Paired by seed** (scipy.stats.ttest_rel on the per-seed differences) when both groups ran
  exactly the same seeds, matched by value. Runs of one seed share their training and test data
  (seqcopy.core.data draws both from the seed), so an easy draw lifts both cells alike; the
  difference seed by seed cancels that shared luck, and the interval is narrower for it.
- **Welch's t-test** (scipy.stats.ttest_ind, equal_var=False) otherwise: the groups ran different
  seeds (or a different number), so there is nothing to pair; Welch's does not assume the two
  groups spread alike (a cell that always solves has no spread, one that sometimes fails has a lot).
- The 95% interval is the t-test's own (``confidence_interval(0.95)``): Student's t with n − 1
  degrees of freedom paired, Welch–Satterthwaite's unpaired.
- An **exact permutation test** (scipy.stats.permutation_test, every sign flip or relabelling;
  a fixed sample of them past 100,000, as in a sweep of many seeds) is reported beside it as a
  check that assumes no normal distribution. It is not the verdict: with 3 seeds it cannot go
  below p = 0.25 paired (2³ = 8 sign flips) or 0.10 unpaired (20 relabellings), so it could
  never call anything clear at the seed counts this project runs.

**Clear** means the t-test's 95% interval of the difference excludes 0 (p < 0.05). Otherwise the
verdict says plainly that these seeds cannot decide; with 2–3 seeds that is the usual answer for
differences of a few points of accuracy. A group with fewer than 2 finite values gets no test. When
neither group has any spread (every seed the same value), the t-test is undefined: equal values
are no difference, different ones are a difference every seed shows (clear). The verdicts of a
table are not corrected for multiple comparisons: among 20 comparisons of equal cells, one is
expected to look clear by chance.

Pure: numbers in, a frozen dataclass out; no database, no pandas.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from seqcopy.text import rounded

ALPHA = 0.05  # two-sided: a 95% interval
PAIRED = "paired t-test"
WELCH = "Welch's t-test"
NO_SPREAD = "no spread"
NO_TEST = "no test"
WHY = {
    PAIRED: "both groups ran the same seeds, and runs of one seed share their data: differences seed by seed",
    WELCH: "the groups ran different seeds: nothing to pair, and their spreads may differ",
    NO_SPREAD: "every seed of both groups gives one value: no spread for a t-test to measure",
    NO_TEST: "a test needs at least 2 seeds in each group",
}


@dataclass(frozen=True)
class Verdict:
    """One group against the reference on one metric (difference = group − reference)."""

    n_reference: int
    n_group: int
    paired: bool
    test: str  # PAIRED, WELCH, NO_SPREAD or NO_TEST
    difference: float | None  # mean(group) − mean(reference)
    # What a test measures; left at their defaults where no test ran (NO_TEST) or none could (NO_SPREAD).
    low: float | None = None  # the 95% interval of the difference
    high: float | None = None
    p: float | None = None  # the t-test's two-sided p-value
    permutation_p: float | None = None  # the exact permutation test's, as a check
    clear: bool = False

    @property
    def seeds(self) -> int:
        """The seeds behind the verdict: pairs when paired, else the smaller group."""
        return min(self.n_reference, self.n_group)

    def interval_text(self, digits: int = 3, significant: bool = False) -> str:
        """'+0.093 [+0.055, +0.131]': the difference and its 95% interval to ``digits`` decimals
        (the report's columns), or to ``digits`` significant figures with ``significant`` (a page:
        '+0.0933 [+0.0554, +0.131]', and a loss's 0.00120 keeps its figures); '' with no difference."""
        if self.difference is None:
            return ""

        def shown(value: float) -> str:
            return rounded(value, digits, signed=True) if significant else f"{value:+.{digits}f}"

        text = shown(self.difference)
        return text + (f" [{shown(self.low)}, {shown(self.high)}]" if self.low is not None else "")

    def describe(self) -> str:
        """The verdict in words: 'clear: higher by 0.120 (+0.120 [+0.050, +0.190])', or why it is not."""
        if self.test == NO_TEST:
            return f"no test: {WHY[NO_TEST]} (has {self.n_reference} and {self.n_group})"
        if self.clear:
            direction = "higher" if self.difference > 0 else "lower"
            return f"clear: {direction} by {abs(self.difference):.3f} ({self.interval_text()})"
        if self.test == NO_SPREAD:
            return "no difference: every seed gives the same value in both groups"
        return (f"not clear: the 95% interval {self.interval_text()} includes 0; "
                f"{self.seeds} seed{'s' if self.seeds != 1 else ''} cannot decide")

    def short(self, lower_is_better: bool = False) -> str:
        """The verdict in a few words, for a table whose other columns give the numbers:
        'better', 'worse', 'cannot decide', 'no difference', 'no test'."""
        if self.test == NO_TEST:
            return "no test (needs 2 seeds each)"
        if self.clear:
            return "better" if (self.difference < 0) == lower_is_better else "worse"
        if self.test == NO_SPREAD:
            return "no difference"
        return "cannot decide"

    def headline(self, group: str, reference: str, lower_is_better: bool = False,
                 seeds: Sequence[int] = ()) -> str:
        """One line that answers 'which is better': 'gru − lstm: −0.011 [−0.080, +0.058], paired
        over seeds 0, 1, 2: these 3 seeds cannot decide', or 'gru − lstm: +0.120 [+0.050,
        +0.190], paired over seeds 0, 1, 2: gru is better (the 95% interval excludes 0)'.
        ``seeds``: the seeds both groups ran, named when the test paired them."""
        how = (f"paired over seed{'s' if len(seeds) != 1 else ''} {', '.join(str(s) for s in seeds)}"
               if self.paired and seeds else
               f"{self.n_group} against {self.n_reference} seeds, unpaired" if self.test == WELCH else
               f"{self.n_group} and {self.n_reference} seeds")
        numbers = self.interval_text(significant=True)
        if self.test == NO_TEST:
            return f"{group} − {reference}: {numbers or 'no values'} ({how}): {WHY[NO_TEST]}"
        if self.clear:
            better = group if (self.difference < 0) == lower_is_better else reference
            interval = "every seed shows it" if self.test == NO_SPREAD else "the 95% interval excludes 0"
            return f"{group} − {reference}: {numbers}, {how}: {better} is better ({interval})"
        if self.test == NO_SPREAD:
            return f"{group} − {reference}: no difference, {how}: every seed gives the same value"
        return f"{group} − {reference}: {numbers}, {how}: these {self.seeds} seeds cannot decide"

    def to_dict(self) -> dict:
        return asdict(self) | {"verdict": self.describe()}


def _finite(values: Mapping[int, float]) -> dict[int, float]:
    return {int(seed): float(v) for seed, v in values.items() if v is not None and math.isfinite(v)}


def _mean_difference(a, b, axis):
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


EXACT_LIMIT = 100_000  # arrangements an exact test enumerates; past it, a fixed sample of them
SAMPLED = 20_000


def permutation_p(group: list[float], reference: list[float], paired: bool) -> float:
    """The exact two-sided permutation p-value of the difference of means: every sign flip of
    the per-seed differences (paired) or every relabelling of the pooled values (unpaired).
    Past EXACT_LIMIT arrangements (17 pairs, or 10 seeds against 10: a big sweep), a fixed
    sample of SAMPLED of them instead, from a seeded generator so the page shows one value:
    exact enumeration grows as 2ⁿ or C(2n, n), and would stall a page for minutes."""
    from scipy import stats  # here: slow to import, and the command line loads this module

    arrangements = 2 ** len(group) if paired else math.comb(len(group) + len(reference), len(group))
    exact = arrangements <= EXACT_LIMIT
    result = stats.permutation_test(
        (np.asarray(group), np.asarray(reference)), _mean_difference, vectorized=True,
        n_resamples=np.inf if exact else SAMPLED, rng=None if exact else np.random.default_rng(0),
        permutation_type="samples" if paired else "independent", alternative="two-sided",
    )
    return float(result.pvalue)


def verdict(reference: Mapping[int, float], group: Mapping[int, float]) -> Verdict:
    """``group`` against ``reference``, each a metric by seed (NaN and None left out). Paired
    when both hold the same seeds (by value), Welch's otherwise; see the module's docstring."""
    ref, other = _finite(reference), _finite(group)
    n_ref, n_other = len(ref), len(other)
    paired = n_ref >= 2 and set(ref) == set(other)
    if n_ref < 2 or n_other < 2:
        difference = statistics.fmean(other.values()) - statistics.fmean(ref.values()) if ref and other else None
        return Verdict(n_reference=n_ref, n_group=n_other, paired=False, test=NO_TEST, difference=difference)
    seeds = sorted(ref)
    a = [other[s] for s in seeds] if paired else list(other.values())
    b = [ref[s] for s in seeds] if paired else list(ref.values())
    difference = statistics.fmean(a) - statistics.fmean(b)
    spreadless = (len({x - y for x, y in zip(a, b, strict=True)}) == 1 if paired
                  else len(set(a)) == 1 and len(set(b)) == 1)
    if spreadless:  # the t statistic divides by zero: decide by the values themselves
        return Verdict(n_reference=n_ref, n_group=n_other, paired=paired, test=NO_SPREAD, difference=difference,
                       low=difference, high=difference, clear=difference != 0)
    from scipy import stats

    with warnings.catch_warnings():  # scipy warns on nearly equal values; the numbers stand
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_rel(a, b) if paired else stats.ttest_ind(a, b, equal_var=False)
        interval = result.confidence_interval(1 - ALPHA)
    low, high, p = float(interval.low), float(interval.high), float(result.pvalue)
    return Verdict(n_reference=n_ref, n_group=n_other, paired=paired, test=PAIRED if paired else WELCH,
                   difference=difference, low=low, high=high, p=p, permutation_p=permutation_p(a, b, paired),
                   clear=bool(low > 0 or high < 0))
