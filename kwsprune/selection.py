"""Which clips a score keeps: floor(ratio x size) removed per group, a group never emptied, ties by index."""

import math

import numpy as np


def n_removed(group_size: int, ratio: float) -> int:
    """floor(ratio * size), as the original, but a group always keeps at least one clip."""
    return min(int(math.floor(ratio * group_size + 1e-9)), group_size - 1)


def keep_by_score(scores, ratio: float, keep_high: bool, groups=None) -> np.ndarray:
    """Sorted kept indices: in each group (None: one group of all clips) the lowest-scored clips are
    removed when keep_high, else the highest; floor(ratio x size) of them."""
    scores = np.asarray(scores)
    groups = np.zeros(len(scores), np.int64) if groups is None else np.asarray(groups)
    removed = []
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        order = members[np.argsort(scores[members], kind="stable")]
        count = n_removed(len(members), ratio)
        removed.append(order[:count] if keep_high else order[len(order) - count:])
    mask = np.ones(len(scores), bool)
    mask[np.concatenate(removed)] = False
    return np.flatnonzero(mask)


def coverage_centric(scores, n_keep: int, rng, beta: float = 0.1, n_bins: int = 50) -> np.ndarray:
    """Coverage-centric coreset selection (Zheng et al. 2023), sorted kept indices: drop the hardest beta
    fraction (highest scores; fewer if fewer than n_keep would remain), split the rest's score range into
    n_bins equal-width bins, then fill n_keep from the bins, the smallest bin first, each taking at most an
    even share of the budget left, uniformly at random inside a bin."""
    scores = np.asarray(scores)
    n = len(scores)
    n_hard = min(int(math.floor(beta * n + 1e-9)), n - n_keep)
    candidates = np.argsort(scores, kind="stable")[:n - n_hard]
    values = scores[candidates]
    edges = np.linspace(values.min(), values.max(), n_bins + 1)[1:-1]
    bin_of = np.searchsorted(edges, values, side="right")
    bins = [candidates[bin_of == b] for b in range(n_bins)]
    budget, kept = n_keep, []
    for left, b in enumerate(sorted(range(n_bins), key=lambda b: len(bins[b]))):
        take = min(len(bins[b]), budget // (n_bins - left))
        kept.append(rng.choice(bins[b], size=take, replace=False))
        budget -= take
    return np.sort(np.concatenate(kept))
