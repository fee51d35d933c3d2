"""The batched Tiny CNN engine: its size, that it learns, and that batched models stay independent."""

import numpy as np
import torch

from kwsprune.training import TrainConfig, flat_features, n_parameters, train_runs


def toy_mfccs(n, n_classes, seed):
    """MFCC-shaped clips whose class lights up its own band of cepstra: easy to learn."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    x = rng.standard_normal((n, 99, 32)).astype(np.float32)
    for c in range(n_classes):
        x[y == c, :, 3 * c:3 * c + 3] += 3.0
    return x, y


def test_tiny_cnn_has_the_originals_size():
    assert flat_features((99, 32)) == 48
    assert n_parameters(35) == 3431  # Keras summary of the original's Tiny model with 35 classes


def test_it_learns_and_stops_early():
    x, y = toy_mfccs(600, 4, 0)
    x_valid, y_valid = toy_mfccs(200, 4, 1)
    x_test, y_test = toy_mfccs(200, 4, 2)
    config = TrainConfig(batch_size=64, max_epochs=60, stop_patience=3, lr_patience=2)
    [result] = train_runs(x, y, [np.arange(600)], x_valid, y_valid, x_test, y_test, 4, [0], config)
    assert result["test_acc"] > 0.95 and result["epochs"] < 60


def test_a_run_trained_alone_equals_the_same_run_in_a_batch_of_8():
    x, y = toy_mfccs(200, 4, 0)
    x_valid, y_valid = toy_mfccs(60, 4, 1)
    rng = np.random.default_rng(0)
    subsets = [np.sort(rng.choice(200, 64, replace=False)) for _ in range(8)]
    config = TrainConfig(batch_size=32, max_epochs=6, stop_patience=2, lr_patience=1)
    seeds = list(range(10, 18))
    alone = train_runs(x, y, subsets[3:4], x_valid, y_valid, x_valid, y_valid, 4, seeds[3:4], config, dtype=torch.float64)
    batch = train_runs(x, y, subsets, x_valid, y_valid, x_valid, y_valid, 4, seeds, config, dtype=torch.float64)
    assert batch[3] == alone[0]
    # some models stopped early and left the batch; the others trained on without them
    assert min(r["epochs"] for r in batch) < alone[0]["epochs"] == config.max_epochs
    assert len({r["test_loss"] for r in batch}) == 8  # the batch's models really differ
