"""The statistics of a study: a group's order statistics, the Wilson interval of its solve rate,
and the verdicts between groups (paired by seed or Welch's), checked against scipy and hand values."""

import math
import statistics

import pytest
from scipy import stats

from seqcopy.results.spread import describe, format_solve_rate, solve_rate, wilson_interval
from seqcopy.results.verdicts import NO_SPREAD, NO_TEST, PAIRED, WELCH, permutation_p, verdict


def test_describe_gives_n_mean_median_min_and_max_of_the_finite_values():
    assert describe([0.2, 0.9, float("nan"), 0.4, None]) == {
        "n": 3, "mean": pytest.approx(0.5), "median": 0.4, "min": 0.2, "max": 0.9}
    assert describe([]) == {"n": 0, "mean": None, "median": None, "min": None, "max": None}


def wilson_by_hand(k: int, n: int, z: float = 1.959963985) -> tuple[float, float]:
    """Wilson's score interval as Wilson (1927) wrote it, to check scipy's use here."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize("k, n", [(3, 3), (2, 3), (0, 3), (1, 5), (7, 10)])
def test_the_wilson_interval_matches_the_formula_and_scipy(k, n):
    low, high = wilson_interval(k, n)
    assert (low, high) == pytest.approx(wilson_by_hand(k, n), abs=1e-9)
    scipy_ci = stats.binomtest(k, n).proportion_ci(method="wilson")
    assert (low, high) == pytest.approx((scipy_ci.low, scipy_ci.high))


def test_the_solve_rate_and_its_text():
    assert format_solve_rate([True, True, True]) == "3/3 [0.44, 1.00]"  # the headline case
    assert format_solve_rate([True, False, False]) == "1/3 [0.06, 0.79]"
    assert solve_rate([])[:2] == (0, 0) and format_solve_rate([]) == "—"
    assert wilson_interval(0, 0) == (0.0, 1.0)  # nothing known


# ---------------------------------------------------------------------------- verdicts
REFERENCE = {0: 0.61, 1: 0.72, 2: 0.55}
BETTER = {0: 0.70, 1: 0.80, 2: 0.66}  # better by 0.09, 0.08, 0.11 seed by seed


def test_the_same_seeds_are_paired_and_the_test_is_scipys_ttest_rel():
    result = verdict(REFERENCE, BETTER)
    seeds = sorted(REFERENCE)
    expected = stats.ttest_rel([BETTER[s] for s in seeds], [REFERENCE[s] for s in seeds])
    interval = expected.confidence_interval(0.95)
    assert result.paired and result.test == PAIRED
    assert result.difference == pytest.approx(statistics.fmean(BETTER.values()) - statistics.fmean(REFERENCE.values()))
    assert result.p == pytest.approx(expected.pvalue) and (result.low, result.high) == pytest.approx(
        (interval.low, interval.high))
    # Hand check: the differences 0.09, 0.08, 0.11 have mean 0.0933 and sd 0.01528; t(0.975, 2) = 4.3027.
    half = 4.302653 * statistics.stdev([0.09, 0.08, 0.11]) / math.sqrt(3)
    assert result.high - result.difference == pytest.approx(half, rel=1e-5)
    assert result.clear and result.describe().startswith("clear: higher by 0.093")
    # Unpaired the same numbers are not clear: the seeds' shared luck is no longer taken out.
    unpaired = verdict(REFERENCE, {seed + 10: value for seed, value in BETTER.items()})
    assert not unpaired.paired and not unpaired.clear


def test_seeds_are_matched_by_value_not_by_order():
    shuffled = {2: BETTER[2], 0: BETTER[0], 1: BETTER[1]}  # another insertion order
    assert verdict(REFERENCE, shuffled) == verdict(REFERENCE, BETTER)
    swapped = {0: BETTER[1], 1: BETTER[0], 2: BETTER[2]}  # other values on the same seeds
    assert verdict(REFERENCE, swapped).p != pytest.approx(verdict(REFERENCE, BETTER).p)


def test_different_seeds_get_welchs_test_as_scipy_computes_it():
    reference = {0: 0.9, 1: 0.8, 2: 0.85}
    group = {3: 0.5, 4: 0.7, 5: 0.4, 6: 0.65}
    result = verdict(reference, group)
    expected = stats.ttest_ind(list(group.values()), list(reference.values()), equal_var=False)
    interval = expected.confidence_interval(0.95)
    assert result.test == WELCH and not result.paired
    assert result.p == pytest.approx(expected.pvalue)
    assert (result.low, result.high) == pytest.approx((interval.low, interval.high))
    assert result.difference == pytest.approx(0.5625 - 0.85)
    # Only part of the seeds shared: still unpaired (pairing would drop runs).
    assert verdict(reference, {0: 0.5, 1: 0.7, 9: 0.4}).test == WELCH


def test_the_docs_k16_spreads_cannot_decide_at_three_seeds():
    # GRU 0.459 ± 0.103 against mGRU 0.536 ± 0.091 (mean ± SE) at K = 16: no clear difference.
    gru = {0: 0.459 - 0.178, 1: 0.459, 2: 0.459 + 0.178}
    mgru = {0: 0.536 + 0.158, 1: 0.536 - 0.158, 2: 0.536}
    result = verdict(gru, mgru)
    assert not result.clear and result.low < 0 < result.high
    assert "cannot decide" in result.describe() and "3 seeds" in result.describe()


def test_the_permutation_test_is_exact_and_cannot_reach_five_percent_with_three_seeds():
    assert permutation_p([0.9, 0.8, 0.7], [0.5, 0.6, 0.4], paired=True) == pytest.approx(2 / 8)  # 2³ sign flips
    assert permutation_p([0.9, 0.8, 0.7], [0.5, 0.6, 0.4], paired=False) == pytest.approx(2 / 20)  # C(6, 3)
    assert verdict(REFERENCE, BETTER).permutation_p == pytest.approx(0.25)


def test_too_few_seeds_no_spread_and_diverged_runs():
    one = verdict({0: 0.5}, {0: 0.9, 1: 0.8})
    assert one.test == NO_TEST and not one.clear and "at least 2 seeds" in one.describe()
    assert one.difference == pytest.approx(0.35)
    same = verdict({0: 1.0, 1: 1.0, 2: 1.0}, {0: 1.0, 1: 1.0, 2: 1.0})
    assert same.test == NO_SPREAD and not same.clear and "no difference" in same.describe()
    apart = verdict({0: 1.0, 1: 1.0}, {3: 0.111, 4: 0.111})
    assert apart.test == NO_SPREAD and apart.clear and apart.difference == pytest.approx(-0.889)
    nan = verdict({0: 0.5, 1: 0.6, 2: float("nan")}, {0: 0.9, 1: 0.95, 2: 0.99})
    assert nan.n_reference == 2 and not nan.paired  # the diverged seed is left out, so seeds differ
