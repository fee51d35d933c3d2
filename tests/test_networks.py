"""The keyword-spotting networks of the literature: their papers' sizes, their shapes, that they learn, and that a
model trained alone equals itself trained among others."""

import numpy as np
import pytest
import torch

from kwsprune import networks
from kwsprune.models import MODELS, n_weights
from kwsprune.recipe import RECIPES
from kwsprune.training import train_runs

# weights for 12 classes as the papers report them: DS-CNN from the TC-ResNet paper's table of Hello Edge's models
# (24K, 140K), BC-ResNet from Kim et al. 2021 (9.2K, 54.2K)
PAPERS = {"ds-cnn-s": 24_000, "ds-cnn-m": 140_000, "bc-resnet-1": 9_200, "bc-resnet-3": 54_200}
SHAPES = {"ds-cnn-s": (99, 32), "ds-cnn-m": (99, 32), "bc-resnet-1": (99, 40), "bc-resnet-3": (99, 40)}


def toy(n, n_classes, seed, bands):
    """Maps whose class lights up its own band of coefficients, weakly: easy, but not at once."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    x = rng.standard_normal((n, 99, bands)).astype(np.float32)
    for c in range(n_classes):
        x[y == c, :, 3 * c:3 * c + 3] += 1.0
    return x, y


@pytest.mark.parametrize("name", list(PAPERS))
def test_each_network_has_its_papers_weight_count(name):
    assert MODELS[name].family == "kws"
    assert n_weights(name, 12, SHAPES[name]) == pytest.approx(PAPERS[name], rel=0.05)


@pytest.mark.parametrize("name", list(PAPERS))
def test_logits_for_clips_of_each_model_or_shared_by_all(name):
    params, buffers = networks.init_params(name, 7, [0, 1, 2])
    weights = {**params, **buffers}
    masks = [torch.ones(4, 3, width) for width in networks.dropout_widths(name)]
    own = networks.forward(name, weights, weights, torch.randn(4, 3, *SHAPES[name]), masks, training=True)
    shared = networks.forward(name, weights, weights, torch.randn(5, *SHAPES[name]))
    assert own.shape == (4, 3, 7) and shared.shape == (5, 3, 7)
    assert networks.forward_flops(name, 12, SHAPES[name]) > 1e6


def test_bc_resnet_refuses_bands_its_subspectral_norm_cannot_split():
    params, buffers = networks.init_params("bc-resnet-1", 4, [0])
    weights = {**params, **buffers}
    with pytest.raises(Exception, match="40 log-mel bands"):
        networks.forward("bc-resnet-1", weights, weights, torch.randn(2, 99, 32))


@pytest.mark.parametrize("name, recipe, faster", [("ds-cnn-s", "ds-cnn", 40), ("bc-resnet-1", "bc-resnet", 1)])
def test_a_network_alone_equals_itself_in_a_batch_and_learns(name, recipe, faster):
    from dataclasses import replace

    bands = SHAPES[name][1]
    x, y = toy(160, 4, 0, bands)
    x_valid, y_valid = toy(60, 4, 1, bands)
    subsets = [np.sort(np.random.default_rng(s).choice(160, 64, replace=False)) for s in range(3)]
    config = replace(RECIPES[recipe], max_epochs=3, warmup_epochs=1, batch_size=32, dtype="float64")
    alone = train_runs(x, y, subsets[1:2], x_valid, y_valid, x_valid, y_valid, 4, [11], config)[0]
    batch = train_runs(x, y, subsets, x_valid, y_valid, x_valid, y_valid, 4, [10, 11, 12], config)
    np.testing.assert_array_equal(batch[1].pop("predicted"), alone.pop("predicted"))
    if name.startswith("ds-cnn"):
        assert batch[1] == alone
    else:  # a grouped convolution's weight gradient sums in another order beside other models: the last bits differ
        assert batch[1] == {**alone, "test_loss": pytest.approx(alone["test_loss"], rel=1e-9)}
    learned = train_runs(x, y, [np.arange(160)], x_valid, y_valid, x_valid, y_valid, 4, [0],
                         replace(config, dtype="float32", max_epochs=12, learning_rate=config.learning_rate * faster))[0]
    assert learned["test_acc"] > 0.6  # chance is 0.25 (60 steps: DS-CNN's 5e-4 is for 30,000, and its BatchNorm statistics need steps to settle)
