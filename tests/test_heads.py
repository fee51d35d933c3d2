"""Heads on frozen embeddings: scikit-learn's standardised logistic regression, many fitted at once."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from kwsprune.heads import evaluate_heads, fit_logistic


def blobs(n, dim, n_classes, seed):
    """Overlapping Gaussian classes (the same centres whatever the seed) with features on very different scales:
    standardising matters."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    centres = np.random.default_rng(n_classes * dim).standard_normal((n_classes, dim))
    x = centres[y] + 1.5 * rng.standard_normal((n, dim))
    return (x * np.logspace(-2, 2, dim) + 5).astype(np.float32), y


def test_a_head_is_scikit_learns_standardised_logistic_regression():
    x, y = blobs(600, 12, 4, 0)
    x_test, y_test = blobs(400, 12, 4, 1)
    subsets = [np.sort(np.random.default_rng(s).choice(600, 200, replace=False)) for s in range(3)]
    head = fit_logistic(x, y, subsets, 4, penalty=0.5, tol=1e-9)
    _, accuracy, predicted = evaluate_heads(head, x_test, y_test)
    for h, subset in enumerate(subsets):
        reference = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, tol=1e-10, max_iter=10_000))
        reference.fit(x[subset].astype(np.float64), y[subset])  # in float32 scikit-learn stops short
        lr = reference[-1]
        # the same weights on the raw inputs, and the same class for every test clip
        np.testing.assert_allclose(head["weight"][h].numpy(), (lr.coef_ / reference[0].scale_[None]).T, rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(predicted[:, h], reference.predict(x_test))
        assert accuracy[h] == pytest.approx(reference.score(x_test, y_test))
    assert (accuracy > 0.5).all()  # well above chance (0.25)


def test_a_head_fitted_alone_equals_itself_fitted_among_others():
    x, y = blobs(500, 20, 5, 2)
    subsets = [np.sort(np.random.default_rng(s).choice(500, 150, replace=False)) for s in range(6)]
    batch = fit_logistic(x, y, subsets, 5)
    alone = fit_logistic(x, y, subsets[4:5], 5)
    assert torch.equal(batch["weight"][4], alone["weight"][0]) and torch.equal(batch["bias"][4], alone["bias"][0])
    assert batch["iterations"][4] == alone["iterations"][0]
    assert len({tuple(h.flatten()[:3].tolist()) for h in batch["weight"]}) == 6  # the heads really differ


def test_a_head_has_no_seed_refitting_one_draw_gives_the_same_head():
    x, y = blobs(300, 8, 3, 3)
    subset = [np.arange(0, 300, 2)]
    assert torch.equal(fit_logistic(x, y, subset, 3)["weight"], fit_logistic(x, y, subset, 3)["weight"])


def test_a_constant_feature_is_left_alone():
    x, y = blobs(200, 6, 3, 4)
    x[:, 2] = 7.0
    head = fit_logistic(x, y, [np.arange(200)], 3)
    assert torch.isfinite(head["weight"]).all() and (head["weight"][0, 2] == 0).all()
