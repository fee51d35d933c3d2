"""Where the spread of test accuracy comes from: the draw of clips, the training (model seed), and the finite test set.

- `crossed_components`: a grid of accuracies, draws x seeds (every draw trained under every seed, one run a
  cell), split by the two-way random-effects ANOVA into draw, seed and residual variances (the residual holds
  the draw x seed interaction: how one seed's training plays out on one draw), each with a 95% interval (the
  residual's exact from the chi-square; the others by Graybill and Wang's modified large-sample method, as in
  Burdick and Graybill 1992, "Confidence intervals on variance components").
- `sd_interval`: a standard deviation and its exact chi-square interval, for the spread of paired differences.
- `spread_over_test_sets`: how far one run's accuracy (or a paired difference) would move on another test set like this one,
  by resampling its clips, or whole speakers where they are known (test clips of one speaker are not independent).
"""

import numpy as np
from scipy import stats


def _mls_difference(ms1: float, df1: int, ms2: float, df2: int, c: float, alpha: float = 0.05) -> tuple[float, float]:
    """Interval for c * (ms1 - ms2), a variance estimated by a difference of two independent mean squares
    (Graybill and Wang 1980; Burdick and Graybill 1992, eq. 3.8-3.9), clipped at 0."""
    g1 = 1 - df1 / stats.chi2.ppf(1 - alpha / 2, df1)
    h1 = df1 / stats.chi2.ppf(alpha / 2, df1) - 1
    g2 = 1 - df2 / stats.chi2.ppf(1 - alpha / 2, df2)
    h2 = df2 / stats.chi2.ppf(alpha / 2, df2) - 1
    f_high = stats.f.ppf(1 - alpha / 2, df1, df2)
    f_low = stats.f.ppf(alpha / 2, df1, df2)
    g12 = ((f_high - 1) ** 2 - g1 ** 2 * f_high ** 2 - h2 ** 2) / f_high
    h12 = ((1 - f_low) ** 2 - h1 ** 2 * f_low ** 2 - g2 ** 2) / f_low
    estimate = ms1 - ms2
    low = estimate - np.sqrt(g1 ** 2 * ms1 ** 2 + h2 ** 2 * ms2 ** 2 + g12 * ms1 * ms2)
    high = estimate + np.sqrt(h1 ** 2 * ms1 ** 2 + g2 ** 2 * ms2 ** 2 + h12 * ms1 * ms2)
    return max(c * low, 0.0), max(c * high, 0.0)


def crossed_components(accuracy, alpha: float = 0.05) -> dict:
    """Variance components of a (draws, seeds) grid of accuracies: {"draw", "seed", "residual", "total"}, each
    (estimate, low, high) in variance units (estimates below 0 are set to 0); "total" is their sum, the variance
    of one run with a new draw and a new seed."""
    y = np.asarray(accuracy, dtype=np.float64)
    draws, seeds = y.shape
    if draws < 2 or seeds < 2:
        raise ValueError(f"a crossed grid needs at least 2 draws and 2 seeds, got {y.shape}")
    mean = y.mean()
    row, col = y.mean(axis=1), y.mean(axis=0)
    df_draw, df_seed, df_res = draws - 1, seeds - 1, (draws - 1) * (seeds - 1)
    ms_draw = seeds * ((row - mean) ** 2).sum() / df_draw
    ms_seed = draws * ((col - mean) ** 2).sum() / df_seed
    residual = y - row[:, None] - col[None, :] + mean
    ms_res = (residual ** 2).sum() / df_res
    out = {
        "draw": (max((ms_draw - ms_res) / seeds, 0.0), *_mls_difference(ms_draw, df_draw, ms_res, df_res, 1 / seeds, alpha)),
        "seed": (max((ms_seed - ms_res) / draws, 0.0), *_mls_difference(ms_seed, df_seed, ms_res, df_res, 1 / draws, alpha)),
        "residual": (ms_res, df_res * ms_res / stats.chi2.ppf(1 - alpha / 2, df_res),
                     df_res * ms_res / stats.chi2.ppf(alpha / 2, df_res)),
    }
    out["total"] = (sum(v[0] for v in out.values()), np.nan, np.nan)
    return out


def sd_interval(values, alpha: float = 0.05) -> tuple[float, float, float]:
    """The sample standard deviation of values and its exact interval under normality ((n - 1) s^2 / sigma^2 is
    chi-square with n - 1 degrees of freedom)."""
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    s = x.std(ddof=1)
    return (s, s * np.sqrt((n - 1) / stats.chi2.ppf(1 - alpha / 2, n - 1)),
            s * np.sqrt((n - 1) / stats.chi2.ppf(alpha / 2, n - 1)))


def spread_over_test_sets(correct, speakers=None, resamples: int = 2000, seed: int = 0) -> float:
    """The standard deviation of a mean over test clips, over test sets resampled from this one: correct is one
    value per test clip (1/0 right or wrong for an accuracy; the difference of two runs' for a paired
    difference), speakers the speaker of each clip (resampled whole, with replacement) or None (clips)."""
    values = np.asarray(correct, dtype=np.float64)
    rng = np.random.default_rng(seed)
    if speakers is None:
        groups = np.arange(len(values))
    else:
        _, groups = np.unique(np.asarray(speakers), return_inverse=True)
    sums = np.bincount(groups, weights=values)
    sizes = np.bincount(groups).astype(np.float64)
    picks = rng.integers(0, len(sums), size=(resamples, len(sums)))
    return float((sums[picks].sum(axis=1) / sizes[picks].sum(axis=1)).std(ddof=1))
