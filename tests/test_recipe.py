"""Each ingredient of a recipe does what it says: the schedule's rates, the average's weights, the masks' bounds,
smoothed labels, standardised inputs, and a row's recipe column that names them all."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kwsprune.recipe import RECIPES, TrainConfig, check_config, input_statistics, learning_rate_at, recipe_text, spec_masks
from kwsprune.results import PLATEAU_RECIPE
from kwsprune.training import TrainState, _loss_per_model, _step, fit, network_of
from kwsprune.validation import InputError


def test_the_cosine_schedule_warms_up_then_falls_to_zero_at_the_last_step():
    config = TrainConfig(learning_rate=0.1, schedule="cosine", warmup_epochs=2, max_epochs=10)
    rates = [learning_rate_at(config, step, steps_per_epoch=4) for step in range(40)]
    assert rates[:8] == pytest.approx([0.1 * (s + 1) / 8 for s in range(8)])  # linear to the peak over 2 epochs
    assert rates[8] == pytest.approx(0.1)
    assert rates[8 + 16] == pytest.approx(0.05)  # half way through the cosine's 32 steps
    assert rates[39] == pytest.approx(0.05 * (1 + math.cos(math.pi * 31 / 32)))
    assert all(a >= b for a, b in zip(rates[8:], rates[9:]))


def test_a_cosine_run_trains_every_epoch_of_its_budget_without_reading_validation(monkeypatch):
    from kwsprune import training

    x = np.random.default_rng(0).standard_normal((64, 99, 32)).astype(np.float32)
    y = np.arange(64) % 4
    calls = []
    monkeypatch.setattr(training, "evaluate", lambda *args, **kwargs: calls.append(1) or (np.zeros(1), np.zeros(1)))
    config = replace(RECIPES["steady"], max_epochs=3, warmup_epochs=1, batch_size=16)
    _, _, epochs = fit(x, y, [np.arange(64)], x, y, 4, [0], config)
    assert list(epochs) == [3] and not calls


def test_the_average_weights_are_the_exponential_average_they_claim():
    config = TrainConfig(optimizer="sgd", momentum=0.0, learning_rate=0.5, weights="ema", ema_decay=0.9, dtype="float64")
    net = network_of("tiny", 4, (99, 32))
    state = TrainState.start(net, [0, 1], config, "cpu", torch.float64)
    name = "dense0.bias"
    expected = state.params[name].clone()
    for step in range(1, 30):
        grads = {k: torch.full_like(v, 0.01 * step) for k, v in state.params.items()}
        _step(state, grads, config, torch.float64, None)
        decay = min(0.9, (1 + step) / (10 + step))  # warmed up as timm's ModelEma
        expected = decay * expected + (1 - decay) * state.params[name]
    torch.testing.assert_close(state.average[name], expected)
    assert not torch.equal(state.average[name], state.params[name])


def test_specaugment_masks_zero_at_most_their_count_of_spans_each_narrower_than_the_widest():
    config = TrainConfig(time_masks=(2, 20), freq_masks=(2, 7))
    keep = spec_masks(torch.Generator().manual_seed(0), 500, (99, 40), config)
    assert keep.shape == (500, 99, 40) and set(keep.unique().tolist()) <= {0.0, 1.0}
    frames_cut = (keep == 0).all(dim=2)   # whole frames masked: the time masks
    bands_cut = (keep == 0).all(dim=1)    # whole bands masked: the band masks
    for clip in range(500):
        for cut, count, widest in ((frames_cut[clip], 2, 20), (bands_cut[clip], 2, 7)):
            runs = np.diff(np.concatenate([[0], cut.int().numpy(), [0]]))
            starts, ends = np.flatnonzero(runs == 1), np.flatnonzero(runs == -1)
            assert len(starts) <= count and ((ends - starts) <= 2 * (widest - 1)).all()  # two may touch
            assert cut.sum() <= count * (widest - 1)
    assert frames_cut.any(dim=1).float().mean() > 0.8  # most clips lose some frames
    assert spec_masks(torch.Generator(), 3, (99, 40), TrainConfig()) is None


def test_smoothed_labels_are_torchs_label_smoothing_per_model():
    logits = torch.randn(8, 3, 5)
    labels = torch.randint(0, 5, (8, 3))
    for m in range(3):
        expected = F.cross_entropy(logits[:, m], labels[:, m], label_smoothing=0.1)
        torch.testing.assert_close(_loss_per_model(logits, labels, 0.1)[m], expected)


def test_inputs_are_standardised_by_every_training_clips_statistics():
    x = np.random.default_rng(0).standard_normal((300, 99, 4)) * [1, 10, 100, 0] + [5, -3, 0, 7]
    mean, scale = input_statistics(x.astype(np.float32))
    np.testing.assert_allclose(mean, x.reshape(-1, 4).mean(axis=0), atol=1e-4)
    np.testing.assert_allclose(scale[:3], x.reshape(-1, 4).std(axis=0)[:3], rtol=1e-5)
    assert scale[3] == 1.0  # a constant coefficient is left as it is


def test_a_rows_recipe_column_spells_every_field_and_older_rows_trained_with_the_plateau_recipe():
    assert recipe_text(TrainConfig()) == PLATEAU_RECIPE  # what every row before the column trained with
    text = recipe_text(RECIPES["bc-resnet-3"])
    assert "optimizer=sgd" in text and "time_masks=2,20" in text and "weights=last" in text
    assert recipe_text(RECIPES["head"]) == "penalty=1.0"


@pytest.mark.parametrize("change, flag", [(dict(schedule="cosine", warmup_epochs=10, max_epochs=10), "--warmup-epochs"),
                                          (dict(label_smoothing=1.0), "--label-smoothing"),
                                          (dict(optimizer="lbfgs"), "--optimizer"), (dict(penalty=0.0), "--penalty")])
def test_a_recipe_that_contradicts_itself_is_refused_naming_the_flag(change, flag):
    with pytest.raises(InputError, match=flag):
        check_config(replace(TrainConfig(), **change))
