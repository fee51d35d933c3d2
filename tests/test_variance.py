"""Where the spread comes from: variance components of a crossed grid, a spread's interval, the test set's spread."""

import numpy as np
import pytest

from kwsprune.variance import crossed_components, sd_interval, spread_over_test_sets


def test_a_grid_with_only_a_draw_effect_is_all_draw():
    grid = np.array([[0.5] * 4, [0.6] * 4, [0.7] * 4])  # 3 draws, 4 seeds: each draw's runs agree exactly
    parts = crossed_components(grid)
    assert parts["draw"][0] == pytest.approx(0.01) and parts["seed"][0] == pytest.approx(0, abs=1e-20)
    assert parts["residual"][0] == pytest.approx(0, abs=1e-20)
    assert parts["total"][0] == pytest.approx(0.01)


def test_the_components_by_hand_on_a_2_x_2_grid():
    grid = np.array([[1.0, 2.0], [3.0, 6.0]])
    # row means 1.5, 4.5; column means 2, 4; mean 3: MS draw = 2 * 4.5 = 9, MS seed = 2 * 2 = 4, residual = 1
    parts = crossed_components(grid)
    assert parts["residual"][0] == pytest.approx(1.0)
    assert parts["draw"][0] == pytest.approx((9 - 1) / 2) and parts["seed"][0] == pytest.approx((4 - 1) / 2)


def test_the_intervals_cover_the_true_components_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    misses = {"draw": 0, "residual": 0}
    trials = 600
    for _ in range(trials):
        grid = 1.0 * rng.standard_normal((5, 1)) + 0.5 * rng.standard_normal((1, 5)) + 2.0 * rng.standard_normal((5, 5))
        parts = crossed_components(grid)
        misses["draw"] += not parts["draw"][1] <= 1.0 <= parts["draw"][2]
        misses["residual"] += not parts["residual"][1] <= 4.0 <= parts["residual"][2]
    assert all(0.02 <= m / trials <= 0.09 for m in misses.values()), misses


def test_a_spreads_interval_holds_its_estimate():
    s, low, high = sd_interval(np.random.default_rng(1).standard_normal(30))
    assert low < s < high and 0.7 < s < 1.3


def test_the_test_sets_spread_by_speaker_is_wider_when_a_speakers_clips_agree():
    """Clips of one speaker all right or all wrong: resampling speakers sees that, resampling clips does not."""
    speakers = np.repeat(np.arange(6), 50)
    correct = np.repeat([1, 1, 1, 0, 0, 1], 50).astype(float)
    by_clip, by_speaker = spread_over_test_sets(correct), spread_over_test_sets(correct, speakers)
    assert by_clip == pytest.approx(np.sqrt(4 / 6 * 2 / 6 / 300), rel=0.15)
    assert by_speaker == pytest.approx(np.sqrt(4 / 6 * 2 / 6 / 6), rel=0.2) and by_speaker > 5 * by_clip
