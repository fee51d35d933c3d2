"""Anytime-valid comparisons with random: a confidence sequence for the mean paired accuracy difference, the
verdict it allows, and how a study's error rate is shared among its comparisons.

The confidence sequence is Lai's (1976) scale-invariant Gaussian mixture (Wang & Ramdas 2023): for a mean m its
test martingale after t paired differences d is sqrt(c / (c + t)) * (1 - S^2 / ((c + t) V))^(-t / 2), with S and V
the sums of (d - m) and (d - m)^2; the sequence is every m whose martingale is below 1 / alpha. By Ville's
inequality it covers the true mean at every t at once with probability >= 1 - alpha, however often it is looked
at and whenever the sweep stops. It assumes the differences are independent draws (one pair per repeat, each
repeat with its own draws and initialisation) of a Gaussian; benchmarks/sequential.py checks the assumption on
the accuracies of real runs.
"""

import math

import numpy as np

ALPHA = 0.05        # the study's family-wise error: the chance that any of its verdicts is wrong
MARGIN = 0.01       # equivalent: the difference surely within one accuracy point
PRIOR_SCALE = 1.0   # Lai's c: the mixture's spread in units of the runs' own spread (Wang & Ramdas use 1)

BETTER, WORSE, EQUIVALENT = "better", "worse", "equivalent"
SLIGHTLY_BETTER, SLIGHTLY_WORSE = "better, by less than the margin", "worse, by less than the margin"
OPEN, UNDECIDED = "open", "undecided"  # open: more repeats may decide it; undecided: at --max-repeats
DECIDED = (BETTER, WORSE, EQUIVALENT, SLIGHTLY_BETTER, SLIGHTLY_WORSE)
BOUND = 1.0  # an accuracy difference lies in [-1, 1]


def half_width(t: int, sum_squares: float, alpha: float, c: float = PRIOR_SCALE) -> float:
    """Half-width of Lai's confidence set after t differences whose squared deviations from their mean sum to
    sum_squares; inf while it is still the whole line (too few differences for this alpha)."""
    shrink = 1.0 - (alpha * math.sqrt(c / (c + t))) ** (2.0 / t)
    room = t - shrink * (c + t)
    if room <= 0:
        return math.inf
    return math.sqrt(shrink * (c + t) * sum_squares / (t * room))


def confidence_sequence(differences, alpha: float, c: float = PRIOR_SCALE) -> tuple[float, float]:
    """The (low, high) ends of the confidence sequence after the differences in their order (by repeat): the
    intersection of Lai's sets over every prefix, within [-1, 1]."""
    low, high = -BOUND, BOUND
    total, total_squares = 0.0, 0.0
    for t, d in enumerate(np.asarray(differences, float), start=1):
        total += d
        total_squares += d * d
        mean = total / t
        h = half_width(t, max(total_squares - t * mean * mean, 0.0), alpha, c)
        low, high = max(low, mean - h), min(high, mean + h)
    return low, high


def confidence_sequences(differences: np.ndarray, alpha: float, c: float = PRIOR_SCALE) -> tuple[np.ndarray, np.ndarray]:
    """The ends after every prefix of many sequences at once: differences (n_sequences, t) -> low, high
    (n_sequences, t); the same numbers as confidence_sequence, for simulations."""
    differences = np.asarray(differences, float)
    t = np.arange(1, differences.shape[1] + 1)
    mean = np.cumsum(differences, axis=1) / t
    sum_squares = np.maximum(np.cumsum(differences ** 2, axis=1) - t * mean ** 2, 0.0)
    shrink = 1.0 - (alpha * np.sqrt(c / (c + t))) ** (2.0 / t)
    room = t - shrink * (c + t)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.where(room > 0, np.sqrt(shrink * (c + t) * sum_squares / (t * np.where(room > 0, room, 1.0))), np.inf)
    low = np.maximum.accumulate(np.maximum(mean - h, -BOUND), axis=1)
    high = np.minimum.accumulate(np.minimum(mean + h, BOUND), axis=1)
    return low, high


def verdict(low: float, high: float, margin: float = MARGIN, at_max: bool = False, gap: float = 0.0) -> str:
    """What a confidence sequence (low, high) for method minus random on the test set says of the difference on its
    population, given the test set's gap from it (at most `gap` either way). Better / worse: low - gap > 0 /
    high + gap < 0; by less than the margin when the whole interval also lies within the margin; equivalent: it lies
    within [-margin, margin]; undecided at --max-repeats, or at once where no number of repeats could decide it on
    this test set (out_of_reach); open otherwise."""
    wide_low, wide_high = low - gap, high + gap
    if wide_low > 0:
        return SLIGHTLY_BETTER if wide_high <= margin else BETTER
    if wide_high < 0:
        return SLIGHTLY_WORSE if wide_low >= -margin else WORSE
    if -margin <= wide_low and wide_high <= margin:
        return EQUIVALENT
    return UNDECIDED if at_max or out_of_reach(low, high, margin, gap) else OPEN


def out_of_reach(low: float, high: float, margin: float, gap: float) -> bool:
    """Whether the test set alone keeps a comparison undecided: every difference x on it that the sequence (low, high)
    still holds is undecidable even when known exactly (|x| <= gap: zero not excluded, and |x| + gap > margin: not
    within the margin)."""
    if gap <= margin - gap or not (-gap <= low and high <= gap):
        return False
    return margin - gap < 0 or low > margin - gap or high < gap - margin


def batch_alpha(alpha: float, batch: int) -> float:
    """The error spent on the comparisons a study's batch-th sweep (1, 2, ...) adds: half of what is left, so that
    every later addition has some and all of them together never spend more than alpha."""
    return alpha * 0.5 ** batch
